/* The C side of package cplugin; see cplugin.h. The WebSocketServer
 * functions plugins call forward to Go through the exported functions in
 * cplugin.go. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "_cgo_export.h"
#include "cplugin.h"

unsigned char empty_message[1];

static struct request_rec *CALLBACK ws_request(const WebSocketServer *s) { return s->state->r; }

static const char *CALLBACK ws_header_get(const WebSocketServer *s, const char *key)
{
    return key ? wsgatePluginHeaderGet(s->state->handle, (char *)key) : NULL;
}

static void CALLBACK ws_header_set(const WebSocketServer *s, const char *key, const char *value)
{
    if (key && value) {
        wsgatePluginHeaderSet(s->state->handle, (char *)key, (char *)value);
    }
}

static size_t CALLBACK ws_protocol_count(const WebSocketServer *s)
{
    return wsgatePluginProtocolCount(s->state->handle);
}

static const char *CALLBACK ws_protocol_index(const WebSocketServer *s, const size_t i)
{
    return wsgatePluginProtocolIndex(s->state->handle, i);
}

static void CALLBACK ws_protocol_set(const WebSocketServer *s, const char *p)
{
    if (p) {
        wsgatePluginProtocolSet(s->state->handle, (char *)p);
    }
}

static size_t CALLBACK ws_send(const WebSocketServer *s, const int type, const unsigned char *buf,
                               const size_t n)
{
    return wsgatePluginSend(s->state->handle, type, (unsigned char *)buf, buf ? n : 0);
}

static void CALLBACK ws_close(const WebSocketServer *s)
{
    wsgatePluginSend(s->state->handle, MESSAGE_TYPE_CLOSE, NULL, 0);
}

WebSocketServer *ws_new_server(uintptr_t handle, void *r)
{
    WebSocketServer *s = calloc(1, sizeof(WebSocketServer));
    struct _WebSocketState *st = calloc(1, sizeof(struct _WebSocketState));
    if (!s || !st) {
        free(s);
        free(st);
        return NULL;
    }
    st->handle = handle;
    st->r = (struct request_rec *)r;
    s->size = sizeof(WebSocketServer);
    s->version = WEBSOCKET_SERVER_VERSION_1;
    s->state = st;
    s->request = ws_request;
    s->header_get = ws_header_get;
    s->header_set = ws_header_set;
    s->protocol_count = ws_protocol_count;
    s->protocol_index = ws_protocol_index;
    s->protocol_set = ws_protocol_set;
    s->send = ws_send;
    s->close = ws_close;
    return s;
}

void ws_free_server(WebSocketServer *s)
{
    if (s) {
        free(s->state);
        free(s);
    }
}

WebSocketPlugin *call_init(void *fn) { return ((WS_Init)fn)(); }

/* dlopen, and on failure a copy of dlerror's message (free it) in *err:
 * in one call, because dlerror's state is the calling thread's and a
 * goroutine can change threads between two cgo calls, which left the
 * message empty. */
void *ws_dlopen(const char *path, char **err)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const char *msg;

    *err = NULL;
    if (h == NULL && (msg = dlerror()) != NULL) {
        *err = strdup(msg);
    }
    return h;
}
int has_on_connect(WebSocketPlugin *p) { return p->on_connect != NULL; }
void *call_on_connect(WebSocketPlugin *p, WebSocketServer *s) { return p->on_connect(s); }

void call_on_message(WebSocketPlugin *p, void *priv, WebSocketServer *s, int type,
                     unsigned char *buf, size_t n)
{
    p->on_message(priv, s, type, buf, n);
}

void call_on_disconnect(WebSocketPlugin *p, void *priv, WebSocketServer *s)
{
    if (p->on_disconnect) {
        p->on_disconnect(priv, s);
    }
}

void call_destroy(WebSocketPlugin *p)
{
    if (p->destroy) {
        p->destroy(p);
    }
}

int plugin_version(WebSocketPlugin *p) { return (int)p->version; }
int plugin_size_ok(WebSocketPlugin *p) { return p->size >= sizeof(WebSocketPlugin); }
int plugin_has_on_message(WebSocketPlugin *p) { return p->on_message != NULL; }
