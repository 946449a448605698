/*
 * echo.c: a wsgate plugin (websocket_plugin.h) that sends every message
 * back as it came. With mod_wsgate:
 *
 *   <Location /echo>
 *     SetHandler websocket-handler
 *     WebSocketHandler /usr/lib/wsgate/plugins/echo.so echo_init
 *   </Location>
 */
#include "websocket_plugin.h"

static size_t CALLBACK echo_on_message(void *plugin_private, const WebSocketServer *server,
                                       const int type, unsigned char *buffer,
                                       const size_t buffer_size)
{
    (void)plugin_private;
    return server->send(server, type, buffer, buffer_size);
}

static WebSocketPlugin echo_plugin = {
    sizeof(WebSocketPlugin),
    WEBSOCKET_PLUGIN_VERSION_0,
    NULL, /* destroy */
    NULL, /* on_connect: every client is accepted */
    echo_on_message,
    NULL  /* on_disconnect */
};

EXPORT WebSocketPlugin *CALLBACK echo_init(void)
{
    return &echo_plugin;
}
