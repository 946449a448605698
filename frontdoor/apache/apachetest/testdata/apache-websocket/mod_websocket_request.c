/*
 * A plugin that reads httpd's request: on_connect refuses a client
 * without an X-Client-Token header (403), and otherwise answers it with
 * response headers set in r->headers_out. Each message names a field of
 * the request, which comes back:
 *
 *   uri, args, hostname, method, protocol, the_request, client,
 *   conn-client, header NAME, pool (allocates from r->pool),
 *   user, auth_type (who httpd's auth modules found the client to be)
 */
#include <string.h>

#include "httpd.h"
#include "apr_strings.h"
#include "apr_tables.h"

#include "websocket_plugin.h"

typedef struct {
    request_rec *r;
    int messages;
} request_state;

static void *CALLBACK request_on_connect(const WebSocketServer *server)
{
    request_rec *r = server->request(server);
    const char *token;
    request_state *st;

    if (r == NULL || (token = apr_table_get(r->headers_in, "X-Client-Token")) == NULL) {
        return NULL;
    }
    apr_table_set(r->headers_out, "X-Token-Seen", token);
    apr_table_setn(r->headers_out, "X-Request-Uri", apr_pstrdup(r->pool, r->uri));
    st = apr_pcalloc(r->pool, sizeof(*st));
    st->r = r;
    return st;
}

static const char *or_null(const char *s)
{
    return s ? s : "(null)";
}

static size_t CALLBACK request_on_message(void *plugin_private, const WebSocketServer *server, const int type,
                                          unsigned char *buffer, const size_t buffer_size)
{
    request_state *st = plugin_private;
    request_rec *r = st->r;
    char *cmd = apr_pstrmemdup(r->pool, (const char *)buffer, buffer_size);
    const char *out;

    (void)type;
    st->messages++;
    if (!strcmp(cmd, "uri")) {
        out = r->uri;
    } else if (!strcmp(cmd, "args")) {
        out = or_null(r->args);
    } else if (!strcmp(cmd, "hostname")) {
        out = or_null(r->hostname);
    } else if (!strcmp(cmd, "method")) {
        out = r->method;
    } else if (!strcmp(cmd, "protocol")) {
        out = r->protocol;
    } else if (!strcmp(cmd, "the_request")) {
        out = r->the_request;
    } else if (!strcmp(cmd, "client")) {
        out = or_null(r->useragent_ip);
    } else if (!strcmp(cmd, "conn-client")) {
        out = or_null(r->connection->client_ip);
    } else if (!strcmp(cmd, "user")) {
        out = or_null(r->user);
    } else if (!strcmp(cmd, "auth_type")) {
        out = or_null(r->ap_auth_type);
    } else if (!strncmp(cmd, "header ", 7)) {
        out = or_null(apr_table_get(r->headers_in, cmd + 7));
    } else if (!strcmp(cmd, "pool")) {
        out = apr_psprintf(r->pool, "message %d from the pool", st->messages);
    } else {
        out = "unknown";
    }
    return server->send(server, MESSAGE_TYPE_TEXT, (const unsigned char *)out, strlen(out));
}

static WebSocketPlugin request_plugin = {
    sizeof(WebSocketPlugin), WEBSOCKET_PLUGIN_VERSION_0, NULL, request_on_connect, request_on_message, NULL,
};

extern EXPORT WebSocketPlugin *CALLBACK request_init(void)
{
    return &request_plugin;
}
