/*
 * debug.c: a plugin for testing the plugin interface, in the spirit of
 * apache-websocket's test plugins. It answers text commands:
 *
 *   close            closes with an empty close frame (the client sees 1005)
 *   header: NAME     answers the request header's value, or <null>
 *   version          answers the server structure's version
 *   proto-count      answers the number of offered subprotocols
 *   threads N M      starts N threads that each send M messages "i: m"
 *                    (m counting down to 1), then closes with 1000 when the
 *                    last thread is done
 *   request          answers "yes" when server->request is not NULL
 *   ping             sends a ping, then "pinged"
 *   sent: TEXT       sends TEXT, then what send() returned (its length)
 *   anything else    is echoed
 *
 * A request header X-Refuse-Connection makes on_connect refuse; with
 * X-Choose-Subprotocol: <index> it selects that offered subprotocol. It
 * sets the response header X-Debug-Header: true.
 *
 * Its destroy appends a line "destroy" to the file named by the
 * environment variable WSGATE_DEBUG_PLUGIN_LOG, if set, so that tests can
 * count how many times a host destroyed it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "websocket_plugin.h"

typedef struct {
    const WebSocketServer *server;
    pthread_mutex_t lock;
    int running;
    pthread_t threads[64];
    int nthreads;
} debug_state;

typedef struct {
    debug_state *st;
    int index;
    int count;
} thread_arg;

static void send_text(const WebSocketServer *s, const char *text)
{
    s->send(s, MESSAGE_TYPE_TEXT, (const unsigned char *)text, strlen(text));
}

static void *CALLBACK debug_on_connect(const WebSocketServer *server)
{
    const char *choose;
    debug_state *st;

    if (server->header_get(server, "X-Refuse-Connection")) {
        return NULL;
    }
    choose = server->header_get(server, "X-Choose-Subprotocol");
    if (choose) {
        const char *p = server->protocol_index(server, (size_t)atoi(choose));
        if (p) {
            server->protocol_set(server, p);
        }
    }
    server->header_set(server, "X-Debug-Header", "true");
    st = calloc(1, sizeof(*st));
    if (!st) {
        return NULL;
    }
    st->server = server;
    pthread_mutex_init(&st->lock, NULL);
    return st;
}

static void *sender(void *p)
{
    thread_arg *a = p;
    debug_state *st = a->st;
    char buf[64];
    int last;

    for (int m = a->count; m > 0; m--) {
        int n = snprintf(buf, sizeof(buf), "%d: %d", a->index, m);
        st->server->send(st->server, MESSAGE_TYPE_TEXT, (const unsigned char *)buf, (size_t)n);
    }
    pthread_mutex_lock(&st->lock);
    last = --st->running == 0;
    pthread_mutex_unlock(&st->lock);
    if (last) {
        const unsigned char normal[2] = {0x03, 0xE8};
        st->server->send(st->server, MESSAGE_TYPE_CLOSE, normal, sizeof(normal));
    }
    free(a);
    return NULL;
}

static size_t CALLBACK debug_on_message(void *plugin_private, const WebSocketServer *server,
                                        const int type, unsigned char *buffer,
                                        const size_t buffer_size)
{
    debug_state *st = plugin_private;
    char cmd[256], out[512];
    size_t n = buffer_size < sizeof(cmd) - 1 ? buffer_size : sizeof(cmd) - 1;

    if (type != MESSAGE_TYPE_TEXT) {
        return server->send(server, type, buffer, buffer_size);
    }
    memcpy(cmd, buffer, n);
    cmd[n] = '\0';
    if (strcmp(cmd, "close") == 0) {
        server->close(server);
    } else if (strncmp(cmd, "header: ", 8) == 0) {
        const char *v = server->header_get(server, cmd + 8);
        send_text(server, v ? v : "<null>");
    } else if (strcmp(cmd, "version") == 0) {
        snprintf(out, sizeof(out), "%u", server->version);
        send_text(server, out);
    } else if (strcmp(cmd, "proto-count") == 0) {
        snprintf(out, sizeof(out), "%zu", server->protocol_count(server));
        send_text(server, out);
    } else if (strcmp(cmd, "request") == 0) {
        send_text(server, server->request(server) ? "yes" : "no");
    } else if (strncmp(cmd, "sent: ", 6) == 0) {
        size_t r = server->send(server, MESSAGE_TYPE_TEXT, (const unsigned char *)cmd + 6, strlen(cmd + 6));
        snprintf(out, sizeof(out), "%zu", r);
        send_text(server, out);
    } else if (strcmp(cmd, "ping") == 0) {
        server->send(server, MESSAGE_TYPE_PING, (const unsigned char *)"hi", 2);
        send_text(server, "pinged");
    } else if (strncmp(cmd, "threads ", 8) == 0) {
        int threads = 0, count = 0;
        if (sscanf(cmd + 8, "%d %d", &threads, &count) != 2 || threads < 1 || threads > 64) {
            send_text(server, "bad threads command");
            return 0;
        }
        pthread_mutex_lock(&st->lock);
        st->running = threads;
        pthread_mutex_unlock(&st->lock);
        for (int i = 0; i < threads; i++) {
            thread_arg *a = malloc(sizeof(*a));
            a->st = st;
            a->index = i;
            a->count = count;
            pthread_create(&st->threads[st->nthreads++], NULL, sender, a);
        }
    } else {
        server->send(server, type, buffer, buffer_size);
    }
    return 0;
}

static void CALLBACK debug_on_disconnect(void *plugin_private, const WebSocketServer *server)
{
    debug_state *st = plugin_private;
    (void)server;
    for (int i = 0; i < st->nthreads; i++) {
        pthread_join(st->threads[i], NULL);
    }
    pthread_mutex_destroy(&st->lock);
    free(st);
}

static void CALLBACK debug_destroy(WebSocketPlugin *plugin)
{
    const char *log = getenv("WSGATE_DEBUG_PLUGIN_LOG");
    FILE *f;

    (void)plugin;
    if (log && (f = fopen(log, "a"))) {
        fputs("destroy\n", f);
        fclose(f);
    }
}

static WebSocketPlugin debug_plugin = {
    sizeof(WebSocketPlugin),
    WEBSOCKET_PLUGIN_VERSION_0,
    debug_destroy,
    debug_on_connect,
    debug_on_message,
    debug_on_disconnect
};

EXPORT WebSocketPlugin *CALLBACK debug_init(void)
{
    return &debug_plugin;
}

/* Broken plugins, for the loader's error messages. */
static WebSocketPlugin no_on_message = {sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, NULL, NULL, NULL, NULL};
static WebSocketPlugin wrong_version = {sizeof(WebSocketPlugin), 7, NULL, NULL, debug_on_message, NULL};
EXPORT WebSocketPlugin *CALLBACK null_init(void) { return NULL; }
EXPORT WebSocketPlugin *CALLBACK no_message_init(void) { return &no_on_message; }
EXPORT WebSocketPlugin *CALLBACK version_init(void) { return &wrong_version; }
