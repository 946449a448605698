/*
 * wsgate_module.h: the interface between mod_wsgate.c (the C shim httpd
 * loads) and libwsgate.so (the Go engine, a c-shared library the shim
 * loads in each child after fork). The shim makes every httpd API call;
 * Go reaches the connection only through the functions in wsgate_io,
 * always on the worker thread that serves the request.
 */
#ifndef WSGATE_MODULE_H
#define WSGATE_MODULE_H

#include <stdint.h>

/* Bumped whenever a structure or function below changes: a mod_wsgate.so
 * and a libwsgate.so from different builds refuse each other at child
 * start instead of misreading each other's structures. */
#define WSGATE_MODULE_ABI 8

/* One event of WebSocket-over-HTTP (WebSocketEventHandler) as an internal
 * subrequest into httpd: a POST of body to target, which is "file:PATH"
 * for a file, or a URL path with an optional query. The header list
 * replaces the subrequest's request headers. */
typedef struct wsgate_subreq {
    const char *target;
    const char *body;
    long len;
    int nheaders;
    const char **header_names;
    const char **header_values;
    long max_body; /* a longer response body is an error */
} wsgate_subreq;

/* Its answer. status is the HTTP status (a handler's error included);
 * too_large is set when the body went past max_body. The body and headers
 * are malloc'ed by the shim; Go frees them with free_subresp. */
typedef struct wsgate_subresp {
    int status;
    int too_large;
    char *body;
    long len;
    int nheaders;
    char **header_names;
    char **header_values;
} wsgate_subresp;

/* Runs a subrequest for the WebSocket whose request_rec is r. Called by Go
 * on the worker thread that serves that WebSocket, and only there. */
typedef void (*wsgate_subrequest_fn)(void *request_rec, const wsgate_subreq *in, wsgate_subresp *out);
typedef void (*wsgate_free_subresp_fn)(wsgate_subresp *out);

/* A request asking to become a WebSocket, described for the Go side. */
typedef struct wsgate_request {
    const char *method;
    int proto_major, proto_minor;
    const char *host;        /* the Host header, NULL if absent */
    const char *path;        /* decoded path (r->uri) */
    const char *query;       /* r->args, NULL if none */
    const char *remote;      /* client "ip:port" */
    const char *self_origin; /* scheme://host[:port] as apache-websocket builds it */
    int tls;
    int nheaders;
    const char **header_names;
    const char **header_values;
    void *request_rec;       /* for plugins' request() */
    /* The merged directives as one route of wsgate's configuration (JSON),
     * and the C plugin WebSocketHandler loaded, if any. section names the
     * configuration section the directives come from ("file:line", or the
     * .htaccess file): with the JSON it identifies the route, so that
     * every request of one section shares one route (its hub, its
     * producer pool) and the number of routes is bounded by the
     * configuration, not by the URLs clients ask for. */
    const char *section;
    const char *route;
    void *plugin;
    const char *plugin_init;
    /* The shim's subrequests, for WebSocketEventHandler. */
    wsgate_subrequest_fn subrequest;
    wsgate_free_subresp_fn free_subresp;
    /* Who httpd's own auth modules (Require, AuthType) found the client
     * to be: r->user and r->ap_auth_type, NULL when anonymous. */
    const char *user;
    const char *auth_type;
} wsgate_request;

/* The answer. status 0 means "not a WebSocket upgrade": decline. Header
 * names and values are malloc'ed by Go; the shim copies them and calls
 * WsgateFreeResponse. */
typedef struct wsgate_response {
    int status;
    int nheaders;
    char **header_names;
    char **header_values;
    uintptr_t conn; /* for WsgateServe when status is 101 */
} wsgate_response;

/* The connection's I/O, called by Go on the worker thread only. */
typedef struct wsgate_io {
    void *ctx;
    /* >0 bytes read, 0 nothing available now, <0 end of stream or error */
    long (*read)(void *ctx, char *buf, long len);
    /* 0 when written to the output filters, -1 on error */
    int (*write)(void *ctx, const char *buf, long len);
    int (*flush)(void *ctx);
    /* shut the socket's write side: the client reads EOF after our close */
    void (*shutdown_write)(void *ctx);
    /* 1 when the MPM is stopping this child */
    int (*stopping)(void);
    int fd; /* the client socket, for poll() */
    /* Released workers only (NULL otherwise), called with the engine's
     * lock on the connection held: busy 1 as a resumption that reads
     * starts, 0 as it parks. The connection's memory is kept for reuse
     * while it is busy and handed back while it waits. */
    void (*trim)(void *ctx, int busy);
} wsgate_io;

/* Exported by libwsgate.so. shm is the segment the parent made for the
 * children's counters (NULL if it could not); the child claims a slot in
 * it and publishes its counters there (see libwsgate/children.go). */
/* Writes one line of the engine's log to httpd's error log, at an httpd
 * level (APLOG_ERR ... APLOG_DEBUG), tagged with the module's name as
 * LogLevel knows it. Safe from any thread. */
typedef void (*wsgate_log_fn)(int level, const char *msg);
/* loglevel is the module's LogLevel in the main server (APLOG_*): the
 * engine does not format what httpd would drop. */
/* cluster is WsgateCluster's configuration as JSON (the daemon's cluster
 * block: {"nats": [...], "name": ...}), or "" for none: every child then
 * joins the bus, so rooms and broadcasts span the children. */
typedef int (*wsgate_init_fn)(int abi, char *software, int mpm_threaded, void *shm, long shm_size, int loglevel,
                              wsgate_log_fn log, char *cluster);
/* The counters of every child: format 0 is Prometheus's text format, 1
 * mod_status's HTML section, 2 its machine-readable lines (?auto). The
 * result is malloc'ed; the caller frees it. */
typedef char *(*wsgate_metrics_fn)(int format, long *len);
typedef void (*wsgate_handle_fn)(wsgate_request *req, wsgate_response *resp);
typedef void (*wsgate_free_response_fn)(wsgate_response *resp);
typedef void (*wsgate_serve_fn)(uintptr_t conn, wsgate_io *io);
/* Released workers (event MPM with CONN_STATE_ASYNC_WAITIO). schedule
 * asks httpd to call WsgateResume(id, 1) soon on a worker (a timed
 * callback): the engine has output for a parked connection. serve_async
 * takes the connection, whose io lives in the connection's pool (timeout_ms:
 * the server's Timeout, within which the engine pings a quiet client), and
 * returns its id (0: serve it with WsgateServe instead). resume serves it
 * on the calling worker (why 0: the socket is readable or it is new; 1: a
 * timed callback) and returns 0 to wait for the socket, 1 when it is over
 * (close it), 2 when a timed callback had nothing to do. gone: httpd is
 * closing or has freed the connection. */
typedef void (*wsgate_schedule_fn)(uintptr_t id);
typedef uintptr_t (*wsgate_serve_async_fn)(uintptr_t conn, wsgate_io *io, wsgate_schedule_fn schedule, long timeout_ms);
typedef int (*wsgate_resume_fn)(uintptr_t id, int why);
typedef void (*wsgate_gone_fn)(uintptr_t id);
typedef void (*wsgate_stopping_fn)(int graceful);
/* Checks the configuration (see WsgateCheck in libwsgate): config_json is
 * {"sections": [{"section": "file:line", "route": {...}}...], "cluster":
 * {...}}. Only ever called in a child forked for that purpose, which then
 * exits. Each line of the answer is "file:line<TAB>key<TAB>message" for
 * an error, or "!broadcast<TAB>file:line<TAB>application" for a section
 * whose application uses rooms or broadcast. */
typedef char *(*wsgate_check_fn)(int abi, char *config_json);
/* SetHandler wsgate-publish: Pushpin's publish API. Returns the HTTP
 * status; *answer (malloc'ed, the caller frees it) is the response body. */
typedef int (*wsgate_publish_fn)(char *body, long len, char **answer);

#endif
