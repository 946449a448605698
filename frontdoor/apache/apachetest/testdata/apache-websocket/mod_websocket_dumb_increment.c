/*
 * libwebsockets' dumb-increment-protocol the way apache-websocket's
 * example does it: the request's pool for memory, an APR thread that
 * sends the counter every 50 ms, and the subprotocol chosen in on_connect
 * (a client without it is refused: 403). "reset\n" resets the counter.
 */
#include <stdio.h>
#include <string.h>

#include "httpd.h"
#include "apr_thread_proc.h"
#include "apr_time.h"

#include "websocket_plugin.h"

typedef struct {
    const WebSocketServer *server;
    apr_pool_t *pool;
    apr_thread_t *thread;
    volatile int counter;
    volatile int active;
} increment_t;

static void *APR_THREAD_FUNC increment_run(apr_thread_t *thread, void *data)
{
    increment_t *inc = data;
    char text[32];

    (void)thread;
    while (inc->active) {
        apr_sleep(apr_time_from_msec(50));
        snprintf(text, sizeof(text), "%d", inc->counter++);
        inc->server->send(inc->server, MESSAGE_TYPE_TEXT, (unsigned char *)text, strlen(text));
    }
    return NULL;
}

static void *CALLBACK increment_on_connect(const WebSocketServer *server)
{
    request_rec *r;
    apr_pool_t *pool = NULL;
    apr_threadattr_t *attr = NULL;
    increment_t *inc;
    size_t i, n;

    if (server->version != WEBSOCKET_SERVER_VERSION_1 || (r = server->request(server)) == NULL) {
        return NULL;
    }
    n = server->protocol_count(server);
    for (i = 0; i < n; i++) {
        const char *p = server->protocol_index(server, i);
        if (p && !strcmp(p, "dumb-increment-protocol")) {
            server->protocol_set(server, p);
            break;
        }
    }
    if (i == n || apr_pool_create(&pool, r->pool) != APR_SUCCESS) {
        return NULL;
    }
    inc = apr_pcalloc(pool, sizeof(*inc));
    inc->server = server;
    inc->pool = pool;
    inc->active = 1;
    if (apr_threadattr_create(&attr, pool) != APR_SUCCESS || apr_threadattr_detach_set(attr, 0) != APR_SUCCESS ||
        apr_thread_create(&inc->thread, attr, increment_run, inc, pool) != APR_SUCCESS) {
        apr_pool_destroy(pool);
        return NULL;
    }
    return inc;
}

static size_t CALLBACK increment_on_message(void *plugin_private, const WebSocketServer *server, const int type,
                                            unsigned char *buffer, const size_t buffer_size)
{
    increment_t *inc = plugin_private;

    (void)server;
    (void)type;
    if (buffer_size == 6 && !memcmp(buffer, "reset\n", 6)) {
        inc->counter = 0;
    }
    return 0;
}

static void CALLBACK increment_on_disconnect(void *plugin_private, const WebSocketServer *server)
{
    increment_t *inc = plugin_private;
    apr_status_t rv;

    (void)server;
    inc->active = 0;
    apr_thread_join(&rv, inc->thread);
    apr_pool_destroy(inc->pool);
}

static WebSocketPlugin increment_plugin = {
    sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0,     NULL, increment_on_connect, increment_on_message,
    increment_on_disconnect,
};

extern EXPORT WebSocketPlugin *CALLBACK dumb_increment_init(void)
{
    return &increment_plugin;
}
