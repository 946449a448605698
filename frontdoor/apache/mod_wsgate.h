/*
 * mod_wsgate.h: what the files of the httpd shim share. The shim is split
 * by concern:
 *
 *   mod_wsgate.c     the module, its hooks, and the handler: a request is
 *                    described to Go, and a 101 hands the worker to Go
 *   wsgate_config.c  the directives (apache-websocket's and wsgate's),
 *                    per-directory configuration and its merge
 *   wsgate_route.c   a section's directives as a route of wsgate's
 *                    configuration, in JSON, for Go
 *   wsgate_go.c      loading the Go engine (libwsgate.so) in each child,
 *                    and checking the configuration with it at startup
 *   wsgate_io.c      the connection's I/O, called by Go on the worker
 *   wsgate_events.c  WebSocketEventHandler's subrequests (on that same
 *                    worker) and SetHandler wsgate-publish
 *   wsgate_async.c   under the event MPM, the connection after the 101:
 *                    idle WebSockets give their worker back
 *
 * All logic is in Go; these files hold only what needs httpd's API.
 */
#ifndef MOD_WSGATE_H
#define MOD_WSGATE_H

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "apr_dso.h"
#include "apr_lib.h"
#include "apr_strings.h"

#include "ap_mmn.h"
#include "ap_mpm.h"
#include "http_config.h"
#include "http_connection.h"
#include "http_core.h"
#include "http_log.h"
#include "http_protocol.h"
#include "http_request.h"
#include "httpd.h"
#include "mpm_common.h"
#include "util_filter.h"
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 112)
#include "http_ssl.h"
#endif

#include "websocket_plugin.h"
#include "wsgate_module.h"

#ifndef WSGATE_LIBRARY
#define WSGATE_LIBRARY "/usr/lib/apache2/modules/libwsgate.so"
#endif

#define UNSET -1

extern module AP_MODULE_DECLARE_DATA wsgate_module;

typedef struct {
    const char *library; /* WsgateLibrary */
    /* WsgateCluster and WsgateClusterOption: the bus the children share
     * (NATS), as the daemon's cluster block in JSON; NULL for none. */
    apr_array_header_t *cluster_urls;
    apr_table_t *cluster_options;
    /* WsgateReleaseWorkers: 0 unset (on where the MPM can), 1 on, 2 off */
    int release_workers;
} wsgate_server_conf;

typedef struct {
    const char *location; /* the section's path: a URL path for <Location> */
    const char *section;  /* where the section is: "file:line" */
    /* apache-websocket's */
    WebSocketPlugin *plugin;
    const char *plugin_init;
    apr_int64_t max_message_size; /* 0: unset */
    int origin_check;             /* UNSET, 0 off, 1 same, 2 trusted */
    apr_array_header_t *trusted;  /* NULL: unset */
    int allow_reserved;
    /* wsgate's */
    const char *app;
    const char *backend;
    const char *backend_mode;
    const char *docroot;
    apr_array_header_t *allow, *deny;
    apr_array_header_t *program; /* the command's words */
    int deflate;
    const char *idle_timeout;
    const char *keepalive;
    const char *backend_hold; /* WebSocketBackendHold */
    /* WebSocketEventHandler: an http(s) URL, or "file:PATH" or a URL path
     * for subrequests */
    const char *events;
    /* WebSocketUpstream: the upstreams' ws:// or wss:// URLs. */
    apr_array_header_t *upstream;
    /* Where the directive choosing the application is, for messages. */
    const char *app_file;
    int app_line;
    int recorded; /* in wsgate_sections() */
    /* Not a directive: set on a request's copy for apache-ws's
     * AddHandler websocket, whose docroot speaks raw text. */
    int raw_text;
} wsgate_dir_conf;

/* The Go library, once loaded in this child (wsgate_go.c). */
typedef struct {
    void *dl;
    wsgate_init_fn init;
    wsgate_handle_fn handle;
    wsgate_free_response_fn free_response;
    wsgate_serve_fn serve;
    wsgate_stopping_fn stopping;
    wsgate_metrics_fn metrics;
    wsgate_publish_fn publish;
    wsgate_serve_async_fn serve_async; /* NULL: workers are not released */
    wsgate_resume_fn resume;
    wsgate_gone_fn gone;
} wsgate_go_t;
extern wsgate_go_t wsgate_go;

/* wsgate_config.c */
extern const command_rec wsgate_cmds[];
void *wsgate_create_server_conf(apr_pool_t *p, server_rec *s);
void *wsgate_merge_server_conf(apr_pool_t *p, void *basev, void *addv);
void *wsgate_create_dir_conf(apr_pool_t *p, char *path);
void *wsgate_merge_dir_conf(apr_pool_t *p, void *basev, void *addv);
int wsgate_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp);
/* The sections of the server configuration (not .htaccess) that set a
 * directive, as wsgate_dir_conf pointers, for the configuration check. */
const apr_array_header_t *wsgate_sections(void);

/* wsgate_route.c */
/* apache-ws's AddHandler websocket: the route for a request whose mapped
 * file (r->filename) is its producer's socket, or NULL (and *status set)
 * when the request cannot be served so. */
const char *wsgate_apachews_route(request_rec *r, const wsgate_dir_conf *conf, int *status);
const char *wsgate_json_string(apr_pool_t *p, const char *s);
/* The cluster configuration of the main server as JSON ("" for none). */
const char *wsgate_cluster_json(apr_pool_t *p, server_rec *s);
const char *wsgate_route_path(request_rec *r, const char *section_path);
const char *wsgate_route_json(apr_pool_t *p, const wsgate_dir_conf *conf, const char *path);

/* wsgate_go.c */
const char *wsgate_library(server_rec *s);
void wsgate_child_init(apr_pool_t *p, server_rec *s);
void wsgate_child_stopping(apr_pool_t *p, int graceful);
int wsgate_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
int wsgate_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s);
int wsgate_metrics_handler(request_rec *r);
int wsgate_publish_handler(request_rec *r);

/* wsgate_events.c: WebSocket-over-HTTP's subrequests. */
void wsgate_events_register(apr_pool_t *p);
void wsgate_subrequest(void *request_rec, const wsgate_subreq *in, wsgate_subresp *out);
void wsgate_free_subresp(wsgate_subresp *out);
int wsgate_status_hook(request_rec *r, int flags);

/* wsgate_io.c: the I/O table handed to Go for one connection. */
typedef struct {
    request_rec *r;
    conn_rec *c;
    apr_bucket_brigade *ibb, *obb;
} wsgate_conn_io;
void wsgate_io_setup(wsgate_io *gio, wsgate_conn_io *io, request_rec *r);
/* The same for a connection that outlives its request (io->r is NULL:
 * reads go through the connection's filters; brigades are the
 * connection's). */
void wsgate_io_setup_conn(wsgate_io *gio, wsgate_conn_io *io, conn_rec *c);

/* wsgate_async.c: releasing the worker while a WebSocket is idle. */
int wsgate_async_mode(const char **why);
int wsgate_async_start(request_rec *r, const wsgate_dir_conf *conf, uintptr_t conn);
void wsgate_async_register(apr_pool_t *p);

#endif
