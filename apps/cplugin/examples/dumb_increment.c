/*
 * dumb_increment.c: libwebsockets' dumb-increment-protocol as a wsgate
 * plugin. A client must offer the "dumb-increment-protocol" subprotocol
 * (others are refused with 403). A thread of the plugin's own sends the
 * counter as text every 50 ms; the message "reset\n" resets it.
 *
 *   WebSocketHandler /usr/lib/wsgate/plugins/dumb_increment.so dumb_increment_init
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "websocket_plugin.h"

#define PROTOCOL "dumb-increment-protocol"

typedef struct {
    const WebSocketServer *server;
    pthread_t thread;
    pthread_mutex_t lock;
    int active;
    unsigned long counter;
} increment_state;

static void *increment_run(void *arg)
{
    increment_state *st = arg;
    struct timespec tick = {0, 50 * 1000 * 1000};
    char buf[32];

    for (;;) {
        nanosleep(&tick, NULL);
        pthread_mutex_lock(&st->lock);
        if (!st->active) {
            pthread_mutex_unlock(&st->lock);
            break;
        }
        int n = snprintf(buf, sizeof(buf), "%lu", st->counter++);
        pthread_mutex_unlock(&st->lock);
        /* send may be called from any thread. */
        st->server->send(st->server, MESSAGE_TYPE_TEXT, (const unsigned char *)buf, (size_t)n);
    }
    return NULL;
}

static void *CALLBACK increment_on_connect(const WebSocketServer *server)
{
    size_t i, count = server->protocol_count(server);
    increment_state *st;

    for (i = 0; i < count; i++) {
        const char *p = server->protocol_index(server, i);
        if (p && strcmp(p, PROTOCOL) == 0) {
            break;
        }
    }
    if (i == count) {
        return NULL; /* refused: 403 */
    }
    server->protocol_set(server, PROTOCOL);
    st = calloc(1, sizeof(*st));
    if (!st) {
        return NULL;
    }
    st->server = server;
    st->active = 1;
    pthread_mutex_init(&st->lock, NULL);
    if (pthread_create(&st->thread, NULL, increment_run, st) != 0) {
        pthread_mutex_destroy(&st->lock);
        free(st);
        return NULL;
    }
    return st;
}

static size_t CALLBACK increment_on_message(void *plugin_private, const WebSocketServer *server,
                                            const int type, unsigned char *buffer,
                                            const size_t buffer_size)
{
    increment_state *st = plugin_private;
    (void)server;
    if (type == MESSAGE_TYPE_TEXT && buffer_size == 6 && memcmp(buffer, "reset\n", 6) == 0) {
        pthread_mutex_lock(&st->lock);
        st->counter = 0;
        pthread_mutex_unlock(&st->lock);
    }
    return 0;
}

static void CALLBACK increment_on_disconnect(void *plugin_private, const WebSocketServer *server)
{
    increment_state *st = plugin_private;
    (void)server;
    pthread_mutex_lock(&st->lock);
    st->active = 0;
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->thread, NULL);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static WebSocketPlugin increment_plugin = {
    sizeof(WebSocketPlugin),
    WEBSOCKET_PLUGIN_VERSION_0,
    NULL,
    increment_on_connect,
    increment_on_message,
    increment_on_disconnect
};

EXPORT WebSocketPlugin *CALLBACK dumb_increment_init(void)
{
    return &increment_plugin;
}
