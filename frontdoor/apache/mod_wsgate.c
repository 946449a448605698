/*
 * mod_wsgate.c: the httpd side of mod_wsgate.
 *
 * This shim is deliberately thin (see mod_wsgate.h for its files). It
 * parses the directives (those of apache-websocket's mod_websocket, with
 * its messages, plus wsgate's), loads C plugins at configuration time as
 * mod_websocket does, and does every httpd API call. The WebSocket engine
 * is wsgate's Go code, built as a c-shared library (libwsgate.so) that the
 * shim loads in child_init: never in the parent, because the Go runtime
 * does not survive fork().
 *
 * A request whose handler is websocket-handler is described to Go, which
 * answers with an HTTP status and headers. For a 101 the shim sends the
 * interim response; under the event MPM the connection then leaves HTTP
 * for wsgate_async.c, which serves it on whichever worker the MPM gives
 * it while it works and gives the worker back while it is idle.
 * Otherwise the shim hands this worker thread to Go, which serves the
 * connection until it ends, calling back into the shim for I/O. One
 * thread at a time touches the connection's filters, pool and bucket
 * allocator, as mod_ssl requires; Go's other goroutines queue frames and
 * wake it.
 */
#include "mod_status.h"

#include "mod_wsgate.h"

static int is_tls(conn_rec *c)
{
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 112)
    return ap_ssl_conn_is_ssl(c);
#else
    APR_OPTIONAL_FN_TYPE(ssl_is_https) *fn = APR_RETRIEVE_OPTIONAL_FN(ssl_is_https);
    return fn && fn(c);
#endif
}

/* The request's own origin, built as apache-websocket builds it. */
static const char *self_origin(request_rec *r)
{
    const char *host = r->hostname ? r->hostname : "";
    apr_port_t port = ap_get_server_port(r);
    if (ap_strchr_c(host, ':')) {
        host = apr_pstrcat(r->pool, "[", host, "]", NULL);
    }
    return apr_pstrcat(r->pool, ap_http_scheme(r), "://", host,
                       ap_is_default_port(port, r) ? "" : apr_psprintf(r->pool, ":%u", port), NULL);
}

static void copy_headers(apr_table_t *t, wsgate_response *resp)
{
    for (int i = 0; i < resp->nheaders; i++) {
        apr_table_add(t, resp->header_names[i], resp->header_values[i]);
    }
}

/* The 101's headers: the engine's replace those of the same name, and
 * what a plugin's on_connect set in r->headers_out stays, as in
 * mod_websocket. */
static void merge_headers(apr_table_t *t, wsgate_response *resp)
{
    for (int i = 0; i < resp->nheaders; i++) {
        apr_table_unset(t, resp->header_names[i]);
    }
    copy_headers(t, resp);
}

static int wsgate_handler(request_rec *r)
{
    wsgate_dir_conf *conf;
    wsgate_request req;
    wsgate_response resp;
    const apr_array_header_t *hdrs;
    const apr_table_entry_t *e;
    wsgate_conn_io io;
    wsgate_io gio;
    apr_table_t *saved;
    int status;

    int apachews;

    /* websocket-handler is apache-websocket's SetHandler; websocket is
     * apache-ws's AddHandler websocket .ws. */
    if (!r->handler || (strcmp(r->handler, "websocket-handler") && strcmp(r->handler, "websocket"))) {
        return DECLINED;
    }
    apachews = !strcmp(r->handler, "websocket");
    if (!wsgate_go.handle) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, 0, r, "mod_wsgate: the Go engine is not loaded in this child");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    conf = ap_get_module_config(r->per_dir_config, &wsgate_module);

    memset(&req, 0, sizeof(req));
    req.method = r->method;
    req.proto_major = HTTP_VERSION_MAJOR(r->proto_num);
    req.proto_minor = HTTP_VERSION_MINOR(r->proto_num);
    req.host = apr_table_get(r->headers_in, "Host");
    req.path = r->uri;
    req.query = r->args;
    req.remote = apr_psprintf(r->pool, r->useragent_addr && r->useragent_addr->family == APR_INET6 ? "[%s]:%u" : "%s:%u",
                              r->useragent_ip, r->useragent_addr ? r->useragent_addr->port : 0);
    req.self_origin = self_origin(r);
    req.tls = is_tls(r->connection);
    req.user = r->user;
    req.auth_type = r->ap_auth_type;
    hdrs = apr_table_elts(r->headers_in);
    e = (const apr_table_entry_t *)hdrs->elts;
    req.nheaders = hdrs->nelts;
    req.header_names = apr_palloc(r->pool, sizeof(char *) * (hdrs->nelts + 1));
    req.header_values = apr_palloc(r->pool, sizeof(char *) * (hdrs->nelts + 1));
    for (int i = 0; i < hdrs->nelts; i++) {
        req.header_names[i] = e[i].key;
        req.header_values[i] = e[i].val ? e[i].val : "";
    }
    req.request_rec = r;
    req.subrequest = wsgate_subrequest;
    req.free_subresp = wsgate_free_subresp;
    req.section = conf->section ? conf->section : "";
    if (apachews) {
        req.route = wsgate_apachews_route(r, conf, &status);
        if (!req.route) {
            return status;
        }
        req.section = apr_pstrcat(r->pool, req.section, "\tapache-ws", NULL);
    } else {
        req.route = wsgate_route_json(r->pool, conf, wsgate_route_path(r, conf->location));
        req.plugin = conf->plugin;
        req.plugin_init = conf->plugin_init;
    }

    /* As mod_websocket: the 101 starts from nothing, and what the
     * plugin's on_connect (run inside handle) puts in headers_out is
     * kept. */
    saved = apr_table_copy(r->pool, r->headers_out);
    apr_table_clear(r->headers_out);
    memset(&resp, 0, sizeof(resp));
    wsgate_go.handle(&req, &resp);
    status = resp.status;
    if (status == 0) {
        wsgate_go.free_response(&resp);
        r->headers_out = saved;
        return DECLINED; /* not a WebSocket upgrade: other handlers may serve it */
    }
    if (status != HTTP_SWITCHING_PROTOCOLS) {
        copy_headers(r->err_headers_out, &resp);
        wsgate_go.free_response(&resp);
        r->connection->keepalive = AP_CONN_CLOSE;
        return status;
    }

    /* mod_reqtimeout would time the WebSocket stream out. */
    ap_remove_input_filter_byhandle(r->input_filters, "reqtimeout");
    merge_headers(r->headers_out, &resp);
    wsgate_go.free_response(&resp);
    r->status = HTTP_SWITCHING_PROTOCOLS;
    r->status_line = ap_get_status_line(r->status);
    ap_send_interim_response(r, 1);

    if (wsgate_async_start(r, conf, resp.conn)) {
        /* The connection is the process_connection hook's now
         * (wsgate_async.c), which reads below HTTP's request body filter;
         * the request ends here, its (empty) body discarded. */
        return OK;
    }
    /* Served on this thread: the request body filter would treat the
     * WebSocket stream as a body. */
    ap_remove_input_filter_byhandle(r->input_filters, "http_in");
    wsgate_io_setup(&gio, &io, r);
    wsgate_go.serve(resp.conn, &gio);

    /* The WebSocket has ended, its close frame flushed: nothing more may be
     * written on this connection. */
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    /* Loaded as apache-websocket's module (LoadModule websocket_module),
     * answer to its source name too: <IfModule mod_websocket.c>. httpd
     * has just set the short name from the symbol LoadModule named; the
     * symbol name serves <IfModule websocket_module> and LogLevel
     * websocket:... by itself. */
    if (wsgate_module.module_index >= 0) {
        const char *as = ap_find_module_short_name(wsgate_module.module_index);
        if (as && !strcmp(as, "websocket")) {
            wsgate_module.name = "mod_websocket.c";
        }
    }
    ap_hook_pre_config(wsgate_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(wsgate_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(wsgate_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(wsgate_metrics_handler, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(wsgate_publish_handler, NULL, NULL, APR_HOOK_MIDDLE);
    wsgate_events_register(p);
    wsgate_async_register(p);
    APR_OPTIONAL_HOOK(ap, status_hook, wsgate_status_hook, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(wsgate_handler, NULL, NULL, APR_HOOK_FIRST - 1);
    ap_hook_child_init(wsgate_child_init, NULL, NULL, APR_HOOK_MIDDLE);
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
    ap_hook_child_stopping(wsgate_child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
#endif
}

AP_DECLARE_MODULE(wsgate) = {
    STANDARD20_MODULE_STUFF,
    wsgate_create_dir_conf,
    wsgate_merge_dir_conf,
    wsgate_create_server_conf,
    wsgate_merge_server_conf,
    wsgate_cmds,
    register_hooks,
#ifdef AP_MODULE_FLAG_NONE
    AP_MODULE_FLAG_NONE
#endif
};

/* apache-websocket's name for the same module: configurations written for
 * mod_websocket load mod_wsgate.so with their own LoadModule line,
 * "LoadModule websocket_module /path/to/mod_wsgate.so". Load the module
 * once, under one of its two names. */
extern module AP_MODULE_DECLARE_DATA websocket_module __attribute__((alias("wsgate_module")));
