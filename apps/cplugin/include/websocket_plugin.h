/*
 * websocket_plugin.h: the plugin interface of wsgate, binary and source
 * compatible with apache-websocket's (plugin version 0, server version 1),
 * so plugins written for mod_websocket build against it unchanged and
 * run in mod_wsgate and in the standalone wsgate daemon.
 *
 * A plugin is a shared object that exports one initialization function
 * (named by the WebSocketHandler directive, or by a route's plugin.init)
 * returning a WebSocketPlugin. The server calls:
 *
 *   on_connect     before the handshake completes; return NULL to refuse
 *                  the client (403), or a pointer the other callbacks get;
 *   on_message     for every complete text or binary message (the buffer
 *                  is contiguous, not NUL-terminated, and valid only for
 *                  the duration of the call);
 *   on_disconnect  once, when the connection has ended;
 *   destroy        when the configuration is unloaded.
 *
 * The plugin may call server->send from any thread. It returns the number
 * of bytes accepted, or 0 when the connection is closed (a 0-byte message
 * cannot report success, as in mod_websocket). server->close sends an
 * empty close frame: the client sees 1005. server->request returns httpd's
 * request_rec in mod_wsgate; the standalone daemon gives each connection
 * one of its own, with a pool, the request line, the URI fields, the
 * hostname, headers_in and headers_out (copied into the 101), and the
 * client's and local addresses, and loads APR for plugins that use it
 * (see the README's "C plugins in the daemon").
 */
#ifndef WSGATE_WEBSOCKET_PLUGIN_H
#define WSGATE_WEBSOCKET_PLUGIN_H

#include <stddef.h>
#include <stdlib.h> /* apache-websocket's header included it, and plugins rely on it */

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#  define EXPORT __declspec(dllexport)
#  define CALLBACK __stdcall
#else
#  define EXPORT
#  define CALLBACK
#endif

/* Message types for on_message and send. */
#define MESSAGE_TYPE_INVALID  -1
#define MESSAGE_TYPE_TEXT      0
#define MESSAGE_TYPE_BINARY  128
#define MESSAGE_TYPE_CLOSE   255
#define MESSAGE_TYPE_PING    256
#define MESSAGE_TYPE_PONG    257

struct _WebSocketServer;
struct _WebSocketState;
struct _WebSocketPlugin;
/* httpd's request_rec; plugins that need its fields include httpd.h. */
struct request_rec;

/* What the server offers the plugin. */
typedef struct request_rec *(CALLBACK *WS_Request)(const struct _WebSocketServer *server);
typedef const char *(CALLBACK *WS_Header_Get)(const struct _WebSocketServer *server, const char *key);
typedef void (CALLBACK *WS_Header_Set)(const struct _WebSocketServer *server, const char *key,
                                       const char *value);
typedef size_t (CALLBACK *WS_Protocol_Count)(const struct _WebSocketServer *server);
typedef const char *(CALLBACK *WS_Protocol_Index)(const struct _WebSocketServer *server,
                                                  const size_t index);
typedef void (CALLBACK *WS_Protocol_Set)(const struct _WebSocketServer *server, const char *protocol);
typedef size_t (CALLBACK *WS_Send)(const struct _WebSocketServer *server, const int type,
                                   const unsigned char *buffer, const size_t buffer_size);
typedef void (CALLBACK *WS_Close)(const struct _WebSocketServer *server);

#define WEBSOCKET_SERVER_VERSION_1 1

typedef struct _WebSocketServer {
    unsigned int size;               /* sizeof(WebSocketServer) */
    unsigned int version;            /* WEBSOCKET_SERVER_VERSION_1 */
    struct _WebSocketState *state;   /* the server's; opaque to plugins */
    WS_Request request;
    WS_Header_Get header_get;        /* request header, NULL if absent */
    WS_Header_Set header_set;        /* response header; in on_connect only */
    WS_Protocol_Count protocol_count;
    WS_Protocol_Index protocol_index;/* NULL when out of range */
    WS_Protocol_Set protocol_set;    /* in on_connect only */
    WS_Send send;
    WS_Close close;
} WebSocketServer;

/* What the plugin offers the server. */
typedef struct _WebSocketPlugin *(CALLBACK *WS_Init)(void);
typedef void (CALLBACK *WS_Destroy)(struct _WebSocketPlugin *plugin);
typedef void *(CALLBACK *WS_OnConnect)(const WebSocketServer *server);
typedef size_t (CALLBACK *WS_OnMessage)(void *plugin_private, const WebSocketServer *server,
                                        const int type, unsigned char *buffer,
                                        const size_t buffer_size);
typedef void (CALLBACK *WS_OnDisconnect)(void *plugin_private, const WebSocketServer *server);

#define WEBSOCKET_PLUGIN_VERSION_0 0

typedef struct _WebSocketPlugin {
    unsigned int size;               /* sizeof(WebSocketPlugin) */
    unsigned int version;            /* WEBSOCKET_PLUGIN_VERSION_0 */
    WS_Destroy destroy;              /* may be NULL */
    WS_OnConnect on_connect;         /* may be NULL: every client is accepted */
    WS_OnMessage on_message;         /* required */
    WS_OnDisconnect on_disconnect;   /* may be NULL */
} WebSocketPlugin;

#ifdef __cplusplus
}
#endif

#endif /* WSGATE_WEBSOCKET_PLUGIN_H */
