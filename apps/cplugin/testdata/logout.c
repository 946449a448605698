/*
 * logout.c: a plugin written as apache-websocket's users write them, which
 * logs its client out in the 101: two cookies cleared with header_set,
 * and a header set twice (the second replaces the first, as
 * apr_table_set does in httpd).
 */
#include "websocket_plugin.h"

static void *CALLBACK logout_on_connect(const WebSocketServer *server)
{
    server->header_set(server, "Set-Cookie", "session=; Max-Age=0; Path=/");
    server->header_set(server, "Set-Cookie", "remember_me=; Max-Age=0; Path=/");
    server->header_set(server, "X-Logged-Out", "no");
    server->header_set(server, "X-Logged-Out", "yes");
    return (void *)server;
}

static size_t CALLBACK logout_on_message(void *plugin_private, const WebSocketServer *server,
                                         const int type, unsigned char *buffer,
                                         const size_t buffer_size)
{
    (void)plugin_private;
    return server->send(server, type, buffer, buffer_size);
}

static WebSocketPlugin logout_plugin = {
    sizeof(WebSocketPlugin),
    WEBSOCKET_PLUGIN_VERSION_0,
    NULL, /* destroy */
    logout_on_connect,
    logout_on_message,
    NULL  /* on_disconnect */
};

EXPORT WebSocketPlugin *CALLBACK logout_init(void)
{
    return &logout_plugin;
}
