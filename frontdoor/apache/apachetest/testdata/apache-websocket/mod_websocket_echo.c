/*
 * An echo plugin written as apache-websocket's users write them: httpd's
 * headers, the plugin header, and an init function returning a static
 * structure. Built with apxs; loaded unchanged by mod_wsgate and by the
 * wsgate daemon.
 */
#include "httpd.h"

#include "websocket_plugin.h"

static size_t CALLBACK echo_on_message(void *plugin_private, const WebSocketServer *server, const int type,
                                       unsigned char *buffer, const size_t buffer_size)
{
    (void)plugin_private;
    return server->send(server, type, buffer, buffer_size);
}

static WebSocketPlugin echo_plugin = {
    sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, NULL, NULL, echo_on_message, NULL,
};

extern EXPORT WebSocketPlugin *CALLBACK echo_init(void)
{
    return &echo_plugin;
}
