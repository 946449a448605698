/* The C side of package cplugin: the WebSocketServer handed to plugins and
 * trampolines for calling a plugin's function pointers from Go. */
#ifndef WSGATE_CPLUGIN_H
#define WSGATE_CPLUGIN_H

#include <stdint.h>
#include "websocket_plugin.h"

struct _WebSocketState {
    uintptr_t handle;      /* cgo.Handle of the Go connection */
    struct request_rec *r; /* httpd's request in mod_wsgate, NULL otherwise */
};

WebSocketServer *ws_new_server(uintptr_t handle, void *r);
void ws_free_server(WebSocketServer *s);

WebSocketPlugin *call_init(void *fn);
void *ws_dlopen(const char *path, char **err);
int has_on_connect(WebSocketPlugin *p);
void *call_on_connect(WebSocketPlugin *p, WebSocketServer *s);
void call_on_message(WebSocketPlugin *p, void *priv, WebSocketServer *s, int type,
                     unsigned char *buf, size_t n);
void call_on_disconnect(WebSocketPlugin *p, void *priv, WebSocketServer *s);
void call_destroy(WebSocketPlugin *p);
int plugin_version(WebSocketPlugin *p);
int plugin_size_ok(WebSocketPlugin *p);
int plugin_has_on_message(WebSocketPlugin *p);

extern unsigned char empty_message[1];

/* request.c: APR and a request_rec for plugins in the daemon. */
typedef struct {
    const char *method, *request_line, *unparsed_uri, *path, *query, *host;
    int proto_major, proto_minor, tls;
    const char *client_ip, *local_ip;
    const char *user, *auth_type; /* NULL: anonymous */
    int client_port, local_port;
    long conn_id;
    size_t nheaders;
    const char **header_names, **header_values;
} ws_request_info;

const char *ws_apr_load(void);
int ws_apr_ready(void);
void *ws_request_new(const ws_request_info *in);
size_t ws_request_headers_out(void *r, const char ***names, const char ***values);
void ws_request_free(void *r);

#endif
