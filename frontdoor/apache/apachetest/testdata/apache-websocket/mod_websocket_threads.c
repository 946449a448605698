/*
 * Threads the way apache-websocket's tests start them: the message
 * "start N M" starts N APR threads that each send "i: m" for m = M down
 * to 1; an APR atomic counts the threads still running, and the last one
 * to finish closes with 1000.
 */
#include <stdio.h>
#include <string.h>

#include "httpd.h"
#include "apr_atomic.h"
#include "apr_thread_proc.h"

#include "websocket_plugin.h"

#define MAX_THREADS 32

typedef struct threads_state threads_state;

typedef struct {
    threads_state *st;
    int index;
    int count;
} worker_t;

struct threads_state {
    const WebSocketServer *server;
    apr_pool_t *pool;
    apr_thread_t *threads[MAX_THREADS];
    worker_t workers[MAX_THREADS];
    int started;
    volatile apr_uint32_t running;
};

static void *APR_THREAD_FUNC worker_run(apr_thread_t *thread, void *data)
{
    worker_t *w = data;
    const WebSocketServer *server = w->st->server;
    char text[32];

    (void)thread;
    for (int m = w->count; m > 0; m--) {
        int n = snprintf(text, sizeof(text), "%d: %d", w->index, m);
        if (server->send(server, MESSAGE_TYPE_TEXT, (unsigned char *)text, (size_t)n) == 0) {
            break; /* the connection is gone */
        }
    }
    if (apr_atomic_dec32(&w->st->running) == 0) {
        static const unsigned char normal[2] = {0x03, 0xe8};
        server->send(server, MESSAGE_TYPE_CLOSE, normal, sizeof(normal));
    }
    return NULL;
}

static void *CALLBACK threads_on_connect(const WebSocketServer *server)
{
    request_rec *r = server->request(server);
    apr_pool_t *pool;
    threads_state *st;

    if (r == NULL || apr_pool_create(&pool, r->pool) != APR_SUCCESS) {
        return NULL;
    }
    st = apr_pcalloc(pool, sizeof(*st));
    st->server = server;
    st->pool = pool;
    return st;
}

static size_t CALLBACK threads_on_message(void *plugin_private, const WebSocketServer *server, const int type,
                                          unsigned char *buffer, const size_t buffer_size)
{
    threads_state *st = plugin_private;
    char cmd[64];
    int n, m;

    (void)server;
    (void)type;
    if (st->started || buffer_size >= sizeof(cmd)) {
        return 0;
    }
    memcpy(cmd, buffer, buffer_size);
    cmd[buffer_size] = '\0';
    if (sscanf(cmd, "start %d %d", &n, &m) != 2 || n < 1 || n > MAX_THREADS) {
        return 0;
    }
    apr_atomic_set32(&st->running, (apr_uint32_t)n);
    for (int i = 0; i < n; i++) {
        st->workers[i].st = st;
        st->workers[i].index = i;
        st->workers[i].count = m;
        if (apr_thread_create(&st->threads[i], NULL, worker_run, &st->workers[i], st->pool) != APR_SUCCESS) {
            st->threads[i] = NULL;
            apr_atomic_dec32(&st->running);
        }
        st->started++;
    }
    return 0;
}

static void CALLBACK threads_on_disconnect(void *plugin_private, const WebSocketServer *server)
{
    threads_state *st = plugin_private;
    apr_status_t rv;

    (void)server;
    for (int i = 0; i < st->started; i++) {
        if (st->threads[i]) {
            apr_thread_join(&rv, st->threads[i]);
        }
    }
    apr_pool_destroy(st->pool);
}

static WebSocketPlugin threads_plugin = {
    sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, NULL, threads_on_connect, threads_on_message,
    threads_on_disconnect,
};

extern EXPORT WebSocketPlugin *CALLBACK threads_init(void)
{
    return &threads_plugin;
}
