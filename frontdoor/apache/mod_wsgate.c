/*
 * mod_wsgate.c: the httpd side of mod_wsgate.
 *
 * This shim is deliberately thin. It parses the directives (those of
 * apache-websocket's mod_websocket, with its messages, plus wsgate's),
 * loads C plugins at configuration time as mod_websocket does, and does
 * every httpd API call. The WebSocket engine is wsgate's Go code, built as
 * a c-shared library (libwsgate.so) that the shim loads in child_init:
 * never in the parent, because the Go runtime does not survive fork().
 *
 * A request whose handler is websocket-handler is described to Go, which
 * answers with an HTTP status and headers. For a 101 the shim sends the
 * interim response and hands the worker thread to Go, which serves the
 * connection until it ends, calling back into the shim for I/O. Only this
 * thread touches the connection's filters, pool and bucket allocator, as
 * mod_ssl requires; Go's other goroutines queue frames and wake it.
 */
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

module AP_MODULE_DECLARE_DATA wsgate_module;

#ifndef WSGATE_LIBRARY
#define WSGATE_LIBRARY "/usr/lib/apache2/modules/libwsgate.so"
#endif

#define UNSET -1

typedef struct {
    const char *library; /* WsgateLibrary */
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
} wsgate_dir_conf;

/* The Go library, once loaded in this child. */
static struct {
    void *dl;
    wsgate_init_fn init;
    wsgate_handle_fn handle;
    wsgate_free_response_fn free_response;
    wsgate_serve_fn serve;
    wsgate_stopping_fn stopping;
} go;

/*
 * Configuration
 */

static void *create_server_conf(apr_pool_t *p, server_rec *s)
{
    (void)s;
    return apr_pcalloc(p, sizeof(wsgate_server_conf));
}

static void *merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    wsgate_server_conf *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));
    c->library = add->library ? add->library : base->library;
    return c;
}

static void *create_dir_conf(apr_pool_t *p, char *path)
{
    wsgate_dir_conf *c = apr_pcalloc(p, sizeof(*c));
    c->location = path ? apr_pstrdup(p, path) : NULL;
    c->origin_check = UNSET;
    c->allow_reserved = UNSET;
    c->deflate = UNSET;
    return c;
}

/* Every directive records the section it appears in (its parent node in
 * the configuration tree; in .htaccess, the file). */
static wsgate_dir_conf *in_section(cmd_parms *cmd, void *confv)
{
    wsgate_dir_conf *conf = confv;
    const ap_directive_t *d = cmd->directive;
    if (d && d->parent) {
        conf->section = apr_psprintf(cmd->pool, "%s:%d", d->parent->filename, d->parent->line_num);
    } else if (d) {
        conf->section = d->filename;
    }
    return conf;
}

/* Whether the directive is being read from an .htaccess file: there the
 * override bits are AllowOverride's, without ACCESS_CONF or RSRC_CONF. */
static int in_htaccess(cmd_parms *cmd)
{
    return !(cmd->override & (ACCESS_CONF | RSRC_CONF));
}

#define MERGE_PTR(f) c->f = add->f ? add->f : base->f
#define MERGE_INT(f) c->f = add->f != UNSET ? add->f : base->f

/* Nested sections inherit what they do not set, which mod_websocket,
 * having no merge function, did not do. */
static void *merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
{
    wsgate_dir_conf *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));
    MERGE_PTR(location);
    MERGE_PTR(section);
    if (add->plugin) {
        c->plugin = add->plugin;
        c->plugin_init = add->plugin_init;
    } else {
        c->plugin = base->plugin;
        c->plugin_init = base->plugin_init;
    }
    c->max_message_size = add->max_message_size ? add->max_message_size : base->max_message_size;
    MERGE_INT(origin_check);
    MERGE_PTR(trusted);
    MERGE_INT(allow_reserved);
    MERGE_PTR(app);
    if (add->backend) {
        c->backend = add->backend;
        c->backend_mode = add->backend_mode;
    } else {
        c->backend = base->backend;
        c->backend_mode = base->backend_mode;
    }
    MERGE_PTR(docroot);
    MERGE_PTR(allow);
    MERGE_PTR(deny);
    MERGE_PTR(program);
    MERGE_INT(deflate);
    MERGE_PTR(idle_timeout);
    MERGE_PTR(keepalive);
    return c;
}

static apr_status_t plugin_cleanup(void *data)
{
    WebSocketPlugin *plugin = data;
    if (plugin && plugin->destroy) {
        plugin->destroy(plugin);
    }
    return APR_SUCCESS;
}

/* WebSocketHandler <library> <init>: loaded now, in the configuration
 * phase, with mod_websocket's checks and messages. */
static const char *set_handler(cmd_parms *cmd, void *confv, const char *path, const char *name)
{
    wsgate_dir_conf *conf = in_section(cmd, confv);
    apr_dso_handle_t *dso = NULL;
    apr_dso_handle_sym_t sym;
    WebSocketPlugin *plugin;
    const char *problem = NULL;
    char err[256];

    /* Loading code into httpd is the server administrator's decision;
     * mod_websocket allowed it in .htaccess, where a plugin would also be
     * loaded and destroyed on every request. */
    if (in_htaccess(cmd)) {
        return "WebSocketHandler is not allowed in .htaccess files: load plugins in the server configuration";
    }
    if (apr_dso_load(&dso, ap_server_root_relative(cmd->pool, path), cmd->pool) != APR_SUCCESS) {
        return apr_pstrcat(cmd->pool, "Could not load WebSocketHandler ", path, ": ",
                           apr_dso_error(dso, err, sizeof(err)), NULL);
    }
    if (apr_dso_sym(&sym, dso, name) != APR_SUCCESS || !sym) {
        apr_dso_unload(dso);
        return apr_psprintf(cmd->pool, "Could not find initialization function \"%s\" for WebSocketHandler %s",
                            name, path);
    }
    plugin = ((WS_Init)sym)();
    if (!plugin) {
        problem = "returned NULL";
    } else if (plugin->version != WEBSOCKET_PLUGIN_VERSION_0) {
        problem = apr_psprintf(cmd->pool, "unsupported plugin version %u", plugin->version);
    } else if (plugin->size < sizeof(WebSocketPlugin)) {
        problem = "invalid plugin size; check plugin version and compiler";
    } else if (!plugin->on_message) {
        problem = "on_message handler is NULL";
    }
    if (problem) {
        apr_dso_unload(dso);
        return apr_pstrcat(cmd->pool, "Invalid response from WebSocketHandler initialization function ", name,
                           " (", problem, ")", NULL);
    }
    conf->plugin = plugin;
    conf->plugin_init = apr_pstrdup(cmd->pool, name);
    /* The DSO is unloaded by its pool; destroy runs first. */
    apr_pool_cleanup_register(cmd->pool, plugin, plugin_cleanup, apr_pool_cleanup_null);
    return NULL;
}

static const char *set_max_message_size(cmd_parms *cmd, void *confv, const char *arg)
{
    wsgate_dir_conf *conf = in_section(cmd, confv);
    apr_int64_t limit;

    if (cmd->cmd->name[0] == 'M') {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, cmd->server,
                     "The MaxMessageSize directive (%s:%d) is deprecated; use WebSocketMaxMessageSize instead",
                     cmd->directive->filename, cmd->directive->line_num);
    }
    limit = apr_atoi64(arg);
    if (limit <= 0) {
        return "Invalid maximum message size";
    }
    if ((apr_uint64_t)limit > APR_SIZE_MAX) {
        return apr_psprintf(cmd->pool, "Max message size is too large for your system (reduce to %" APR_SIZE_T_FMT ")",
                            (apr_size_t)APR_SIZE_MAX);
    }
    conf->max_message_size = limit;
    return NULL;
}

static const char *set_origin_check(cmd_parms *cmd, void *confv, const char *mode)
{
    wsgate_dir_conf *conf = in_section(cmd, confv);
    if (!strcasecmp(mode, "Off")) {
        conf->origin_check = 0;
    } else if (!strcasecmp(mode, "Same")) {
        conf->origin_check = 1;
    } else if (!strcasecmp(mode, "Trusted")) {
        conf->origin_check = 2;
    } else {
        return "WebSocketOriginCheck must be Off, Same, or Trusted";
    }
    return NULL;
}

static const char *add_string(apr_pool_t *p, apr_array_header_t **list, const char *v)
{
    if (!*list) {
        *list = apr_array_make(p, 4, sizeof(const char *));
    }
    APR_ARRAY_PUSH(*list, const char *) = apr_pstrdup(p, v);
    return NULL;
}

static const char *add_trusted_origin(cmd_parms *cmd, void *confv, const char *origin)
{
    wsgate_dir_conf *conf = in_section(cmd, confv);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, cmd->server, "added Origin '%s' to the Trusted list for %s", origin,
                 cmd->path ? cmd->path : "null");
    return add_string(cmd->pool, &conf->trusted, origin);
}

static const char *set_allow_reserved(cmd_parms *cmd, void *confv, int on)
{
    in_section(cmd, confv)->allow_reserved = on;
    return NULL;
}

static const char *set_app(cmd_parms *cmd, void *confv, const char *name)
{
    if (strcmp(name, "echo") && strcmp(name, "dumb-increment") && strcmp(name, "chat")) {
        return "WebSocketApp must be echo, dumb-increment or chat";
    }
    in_section(cmd, confv)->app = name;
    return NULL;
}

static const char *set_backend(cmd_parms *cmd, void *confv, const char *address, const char *mode)
{
    wsgate_dir_conf *conf = in_section(cmd, confv);
    (void)cmd;
    if (mode && strcmp(mode, "mux") && strcmp(mode, "per-client") && strcmp(mode, "raw")) {
        return "WebSocketBackend's mode must be mux, per-client or raw";
    }
    conf->backend = address;
    conf->backend_mode = mode;
    return NULL;
}

static const char *set_docroot(cmd_parms *cmd, void *confv, const char *dir)
{
    in_section(cmd, confv)->docroot = ap_server_root_relative(cmd->pool, dir);
    return NULL;
}

static const char *add_allow(cmd_parms *cmd, void *confv, const char *glob)
{
    return add_string(cmd->pool, &in_section(cmd, confv)->allow, glob);
}

static const char *add_deny(cmd_parms *cmd, void *confv, const char *glob)
{
    return add_string(cmd->pool, &in_section(cmd, confv)->deny, glob);
}

/* WebSocketProgram <program> [args...]: split with httpd's own quoting
 * rules, as every directive's arguments are. */
static const char *set_program(cmd_parms *cmd, void *confv, const char *args)
{
    wsgate_dir_conf *conf = in_section(cmd, confv);
    apr_array_header_t *words = NULL;

    while (*args) {
        const char *w = ap_getword_conf(cmd->pool, &args);
        if (*w) {
            add_string(cmd->pool, &words, w);
        }
    }
    if (!words) {
        return "WebSocketProgram needs the program to run";
    }
    conf->program = words;
    return NULL;
}

static const char *set_deflate(cmd_parms *cmd, void *confv, int on)
{
    in_section(cmd, confv)->deflate = on;
    return NULL;
}

/* A duration: Go's syntax (30s, 1m30s, 1.5h, 250ms) or a number of
 * seconds. It is checked here, with Go's grammar, so that a mistake is a
 * configuration error at httpd -t rather than a 500 at the first request:
 * the Go engine is not loaded in the parent. */
static const char *duration(cmd_parms *cmd, const char *arg, const char **dst)
{
    static const char *const units[] = {"ns", "us", "\xc2\xb5s", "\xce\xbcs", "ms", "s", "m", "h", NULL};
    const char *p = arg;

    while (apr_isdigit(*p)) {
        p++;
    }
    if (*arg && !*p) {
        *dst = apr_pstrcat(cmd->pool, arg, "s", NULL);
        return NULL;
    }
    p = arg;
    while (*p) {
        const char *unit;
        size_t digits = 0, len;
        int known = 0;
        for (; apr_isdigit(*p); p++) {
            digits++;
        }
        if (*p == '.') {
            for (p++; apr_isdigit(*p); p++) {
                digits++;
            }
        }
        unit = p;
        while (*p && !apr_isdigit(*p) && *p != '.') {
            p++;
        }
        len = (size_t)(p - unit);
        for (int i = 0; units[i] && !known; i++) {
            known = len == strlen(units[i]) && !strncmp(unit, units[i], len);
        }
        if (!digits || !known) {
            return apr_psprintf(cmd->pool, "%s: invalid duration \"%s\"; use a number of seconds or Go's syntax, such as 30s or 1m30s",
                                cmd->cmd->name, arg);
        }
    }
    if (!*arg) {
        return apr_pstrcat(cmd->pool, cmd->cmd->name, " needs a duration such as 30s", NULL);
    }
    *dst = arg;
    return NULL;
}

static const char *set_idle_timeout(cmd_parms *cmd, void *confv, const char *arg)
{
    return duration(cmd, arg, &in_section(cmd, confv)->idle_timeout);
}

static const char *set_keepalive(cmd_parms *cmd, void *confv, const char *arg)
{
    return duration(cmd, arg, &in_section(cmd, confv)->keepalive);
}

static const char *set_library(cmd_parms *cmd, void *confv, const char *path)
{
    wsgate_server_conf *sc = ap_get_module_config(cmd->server->module_config, &wsgate_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)confv;
    if (err) {
        return err;
    }
    sc->library = ap_server_root_relative(cmd->pool, path);
    return NULL;
}

static const command_rec wsgate_cmds[] = {
    AP_INIT_TAKE2("WebSocketHandler", set_handler, NULL, OR_AUTHCFG,
                  "Shared library containing a WebSocket plugin, and its initialization function"),
    AP_INIT_TAKE1("WebSocketMaxMessageSize", set_max_message_size, NULL, OR_AUTHCFG,
                  "Maximum size (in bytes) of a message to accept; default 33554432 (32 MiB)"),
    AP_INIT_TAKE1("MaxMessageSize", set_max_message_size, NULL, OR_AUTHCFG,
                  "Deprecated name of WebSocketMaxMessageSize"),
    AP_INIT_TAKE1("WebSocketOriginCheck", set_origin_check, NULL, OR_AUTHCFG,
                  "Origin check: Off, Same (the default) or Trusted"),
    AP_INIT_ITERATE("WebSocketTrustedOrigin", add_trusted_origin, NULL, OR_AUTHCFG,
                    "Origins accepted with WebSocketOriginCheck Trusted"),
    AP_INIT_FLAG("WebSocketAllowReservedStatusCodes", set_allow_reserved, NULL, OR_AUTHCFG,
                 "Accept the reserved close codes 1004, 1014 and 1016-2999 from clients"),
    AP_INIT_TAKE1("WebSocketApp", set_app, NULL, OR_AUTHCFG,
                  "A built-in application: echo, dumb-increment or chat"),
    AP_INIT_TAKE12("WebSocketBackend", set_backend, NULL, OR_AUTHCFG,
                   "A producer: a UNIX socket path (or tcp:host:port), then mux, per-client or raw"),
    AP_INIT_TAKE1("WebSocketDocroot", set_docroot, NULL, OR_AUTHCFG,
                  "A directory of producer sockets, one per name below the location"),
    AP_INIT_ITERATE("WebSocketAllow", add_allow, NULL, OR_AUTHCFG, "Socket names a WebSocketDocroot serves (globs)"),
    AP_INIT_ITERATE("WebSocketDeny", add_deny, NULL, OR_AUTHCFG, "Socket names a WebSocketDocroot refuses (globs)"),
    AP_INIT_RAW_ARGS("WebSocketProgram", set_program, NULL, OR_AUTHCFG,
                     "A program to run for each connection, with its arguments"),
    AP_INIT_FLAG("WebSocketDeflate", set_deflate, NULL, OR_AUTHCFG, "Offer permessage-deflate (RFC 7692)"),
    AP_INIT_TAKE1("WebSocketIdleTimeout", set_idle_timeout, NULL, OR_AUTHCFG,
                  "Close a connection that has received nothing for this long"),
    AP_INIT_TAKE1("WebSocketKeepalive", set_keepalive, NULL, OR_AUTHCFG,
                  "Send a ping after this long without traffic"),
    AP_INIT_TAKE1("WsgateLibrary", set_library, NULL, RSRC_CONF,
                  "Path of libwsgate.so, the Go engine (default " WSGATE_LIBRARY ")"),
    {NULL}
};

/*
 * The route, as JSON, from the merged directives
 */

/* The JSON is built as a list of pieces, joined once at the end. */
static void json_str(apr_array_header_t *j, const char *s)
{
    char *buf = apr_palloc(j->pool, strlen(s) * 6 + 3), *d = buf;
    *d++ = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *d++ = '\\';
            *d++ = (char)ch;
        } else if (ch < 0x20) {
            d += apr_snprintf(d, 7, "\\u%04x", ch);
        } else {
            *d++ = (char)ch;
        }
    }
    *d++ = '"';
    *d = '\0';
    APR_ARRAY_PUSH(j, const char *) = buf;
}

#define LIT(s) (APR_ARRAY_PUSH(j, const char *) = (s))

static void json_list(apr_array_header_t *j, apr_array_header_t *list)
{
    LIT("[");
    for (int i = 0; list && i < list->nelts; i++) {
        if (i) {
            LIT(",");
        }
        json_str(j, APR_ARRAY_IDX(list, i, const char *));
    }
    LIT("]");
}

/* The route's URL prefix, which docroot names and programs' SCRIPT_NAME
 * are relative to: a <Location>'s path; for a <Directory> or .htaccess,
 * the URL the directory is reached by; otherwise "/" (a regex or <Files>
 * section has no fixed prefix). Never the request's own URI, which would
 * make one route per URL. */
static const char *route_path(request_rec *r, const char *section_path)
{
    size_t len;

    if (!section_path || *section_path != '/') {
        return "/";
    }
    len = strlen(section_path);
    if (!strncmp(r->uri, section_path, len)) {
        return section_path;
    }
    if (r->filename && !strncmp(r->filename, section_path, len)) {
        /* uri = prefix + (filename below the directory) + path_info */
        const char *below = r->filename + len;
        size_t nb = strlen(below), ni = r->path_info ? strlen(r->path_info) : 0, nu = strlen(r->uri);
        if (nu >= nb + ni && !strncmp(r->uri + nu - ni - nb, below, nb) &&
            (!ni || !strcmp(r->uri + nu - ni, r->path_info))) {
            return apr_pstrndup(r->pool, r->uri, nu - ni - nb);
        }
    }
    return "/";
}

static const char *route_json(request_rec *r, wsgate_dir_conf *conf)
{
    apr_array_header_t *j = apr_array_make(r->pool, 32, sizeof(const char *));
    const char *loc = route_path(r, conf->location);

    LIT("{\"path\":");
    json_str(j, loc);
    if (conf->max_message_size) {
        LIT(",\"max_message_size\":");
        json_str(j, apr_psprintf(r->pool, "%" APR_INT64_T_FMT, conf->max_message_size));
    }
    if (conf->origin_check != UNSET) {
        static const char *modes[] = {"\"off\"", "\"same\"", "\"trusted\""};
        LIT(",\"origin_check\":");
        LIT(modes[conf->origin_check]);
    }
    if (conf->trusted) {
        LIT(",\"trusted_origins\":");
        json_list(j, conf->trusted);
    }
    if (conf->allow_reserved == 1) {
        LIT(",\"allow_reserved_status_codes\":true");
    }
    if (conf->deflate == 1) {
        LIT(",\"deflate\":true");
    }
    if (conf->idle_timeout) {
        LIT(",\"idle_timeout\":");
        json_str(j, conf->idle_timeout);
    }
    if (conf->keepalive) {
        LIT(",\"keepalive_interval\":");
        json_str(j, conf->keepalive);
    }
    /* The application: a plugin goes separately, as a pointer. */
    if (!conf->plugin) {
        if (conf->app) {
            LIT(",\"app\":");
            json_str(j, conf->app);
        } else if (conf->backend) {
            const char *addr = conf->backend;
            LIT(",\"backend\":{");
            if (!strncmp(addr, "tcp:", 4)) {
                LIT("\"address\":");
                json_str(j, addr + 4);
            } else {
                LIT("\"socket\":");
                json_str(j, !strncmp(addr, "unix:", 5) ? addr + 5 : addr);
            }
            if (conf->backend_mode && !strcmp(conf->backend_mode, "raw")) {
                LIT(",\"protocol\":\"raw\"");
            } else if (conf->backend_mode) {
                LIT(",\"mode\":");
                json_str(j, conf->backend_mode);
            }
            LIT("}");
        } else if (conf->docroot) {
            LIT(",\"docroot\":{\"root\":");
            json_str(j, conf->docroot);
            if (conf->allow) {
                LIT(",\"allow\":");
                json_list(j, conf->allow);
            }
            if (conf->deny) {
                LIT(",\"deny\":");
                json_list(j, conf->deny);
            }
            LIT("}");
        } else if (conf->program) {
            LIT(",\"program\":{\"command\":");
            json_list(j, conf->program);
            LIT("}");
        }
    }
    LIT("}");
    return apr_array_pstrcat(r->pool, j, 0);
}

/*
 * Child lifecycle: Go is loaded after fork, in each child.
 */

static void child_init(apr_pool_t *p, server_rec *s)
{
    wsgate_server_conf *sc = ap_get_module_config(s->module_config, &wsgate_module);
    const char *lib = sc->library ? sc->library : WSGATE_LIBRARY;
    int threaded = 0;

    (void)p;
    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    go.dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!go.dl) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_wsgate: cannot load %s: %s; WebSocket requests get 500",
                     lib, dlerror());
        return;
    }
    go.init = (wsgate_init_fn)dlsym(go.dl, "WsgateInit");
    go.handle = (wsgate_handle_fn)dlsym(go.dl, "WsgateHandle");
    go.free_response = (wsgate_free_response_fn)dlsym(go.dl, "WsgateFreeResponse");
    go.serve = (wsgate_serve_fn)dlsym(go.dl, "WsgateServe");
    go.stopping = (wsgate_stopping_fn)dlsym(go.dl, "WsgateStopping");
    if (!go.init || !go.handle || !go.free_response || !go.serve || !go.stopping ||
        go.init(WSGATE_MODULE_ABI, (char *)ap_get_server_banner(), threaded != 0) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_wsgate: %s is not a usable libwsgate", lib);
        go.handle = NULL;
    }
}

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
/* The child is stopping (graceful or not): Go closes its WebSockets with
 * 1001 at once instead of waiting for the next poll timeout. */
static void child_stopping(apr_pool_t *p, int graceful)
{
    (void)p;
    if (go.handle) {
        go.stopping(graceful);
    }
}
#endif

/*
 * The connection's I/O, for Go, on the worker thread
 */

typedef struct {
    request_rec *r;
    conn_rec *c;
    apr_bucket_brigade *ibb, *obb;
} conn_io;

static long io_read(void *ctx, char *buf, long len)
{
    conn_io *io = ctx;
    apr_size_t n = (apr_size_t)len;
    apr_status_t rv = ap_get_brigade(io->r->input_filters, io->ibb, AP_MODE_READBYTES, APR_NONBLOCK_READ, n);

    if (APR_STATUS_IS_EAGAIN(rv)) {
        return 0;
    }
    if (rv != APR_SUCCESS) {
        return -1; /* EOF, reset, TLS error */
    }
    if (!APR_BRIGADE_EMPTY(io->ibb) && APR_BUCKET_IS_EOS(APR_BRIGADE_FIRST(io->ibb))) {
        apr_brigade_cleanup(io->ibb);
        return -1;
    }
    rv = apr_brigade_flatten(io->ibb, buf, &n);
    apr_brigade_cleanup(io->ibb);
    if (rv != APR_SUCCESS) {
        return -1;
    }
    return (long)n; /* 0: a non-blocking read that found nothing */
}

static int io_write(void *ctx, const char *buf, long len)
{
    conn_io *io = ctx;
    return ap_fwrite(io->c->output_filters, io->obb, buf, (apr_size_t)len) == APR_SUCCESS ? 0 : -1;
}

static int io_flush(void *ctx)
{
    conn_io *io = ctx;
    return ap_fflush(io->c->output_filters, io->obb) == APR_SUCCESS ? 0 : -1;
}

static void io_shutdown_write(void *ctx)
{
    conn_io *io = ctx;
    apr_socket_shutdown(ap_get_conn_socket(io->c), APR_SHUTDOWN_WRITE);
}

static int io_stopping(void)
{
    int state = AP_MPMQ_RUNNING;
    ap_mpm_query(AP_MPMQ_MPM_STATE, &state);
    return state == AP_MPMQ_STOPPING;
}

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

static int wsgate_handler(request_rec *r)
{
    wsgate_dir_conf *conf;
    wsgate_request req;
    wsgate_response resp;
    const apr_array_header_t *hdrs;
    const apr_table_entry_t *e;
    conn_io io;
    wsgate_io gio;
    apr_os_sock_t fd = -1;
    int status;

    if (!r->handler || strcmp(r->handler, "websocket-handler")) {
        return DECLINED;
    }
    if (!go.handle) {
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
    req.section = conf->section ? conf->section : "";
    req.route = route_json(r, conf);
    req.plugin = conf->plugin;
    req.plugin_init = conf->plugin_init;

    memset(&resp, 0, sizeof(resp));
    go.handle(&req, &resp);
    status = resp.status;
    if (status == 0) {
        go.free_response(&resp);
        return DECLINED; /* not a WebSocket upgrade: other handlers may serve it */
    }
    if (status != HTTP_SWITCHING_PROTOCOLS) {
        copy_headers(r->err_headers_out, &resp);
        go.free_response(&resp);
        r->connection->keepalive = AP_CONN_CLOSE;
        return status;
    }

    /* The request body filters would treat the WebSocket stream as a
     * body, and mod_reqtimeout would time it out: both go. */
    ap_remove_input_filter_byhandle(r->input_filters, "http_in");
    ap_remove_input_filter_byhandle(r->input_filters, "reqtimeout");
    apr_table_clear(r->headers_out);
    copy_headers(r->headers_out, &resp);
    go.free_response(&resp);
    r->status = HTTP_SWITCHING_PROTOCOLS;
    r->status_line = ap_get_status_line(r->status);
    ap_send_interim_response(r, 1);

    io.r = r;
    io.c = r->connection;
    io.ibb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    io.obb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    apr_os_sock_get(&fd, ap_get_conn_socket(r->connection));
    gio.ctx = &io;
    gio.read = io_read;
    gio.write = io_write;
    gio.flush = io_flush;
    gio.shutdown_write = io_shutdown_write;
    gio.stopping = io_stopping;
    gio.fd = (int)fd;
    go.serve(resp.conn, &gio);

    /* The WebSocket has ended, its close frame flushed: nothing more may be
     * written on this connection. */
    r->connection->keepalive = AP_CONN_CLOSE;
    r->connection->aborted = 1;
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_handler(wsgate_handler, NULL, NULL, APR_HOOK_FIRST - 1);
    ap_hook_child_init(child_init, NULL, NULL, APR_HOOK_MIDDLE);
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
    ap_hook_child_stopping(child_stopping, NULL, NULL, APR_HOOK_MIDDLE);
#endif
}

AP_DECLARE_MODULE(wsgate) = {
    STANDARD20_MODULE_STUFF,
    create_dir_conf,
    merge_dir_conf,
    create_server_conf,
    merge_server_conf,
    wsgate_cmds,
    register_hooks,
#ifdef AP_MODULE_FLAG_NONE
    AP_MODULE_FLAG_NONE
#endif
};
