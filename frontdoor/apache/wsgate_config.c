/*
 * wsgate_config.c: mod_wsgate's directives. apache-websocket's keep its
 * messages; wsgate's compile, with them, to one route of wsgate's
 * configuration per section (wsgate_route.c). Values are checked here as
 * far as C can without the Go engine, which the parent never loads; the
 * rest (application names, producer and docroot settings) is checked by
 * Go at startup through wsgate_check_config.
 */
#include "mod_wsgate.h"

APLOG_USE_MODULE(wsgate);

void *wsgate_create_server_conf(apr_pool_t *p, server_rec *s)
{
    (void)s;
    return apr_pcalloc(p, sizeof(wsgate_server_conf));
}

void *wsgate_merge_server_conf(apr_pool_t *p, void *basev, void *addv)
{
    wsgate_server_conf *base = basev, *add = addv, *c = apr_pcalloc(p, sizeof(*c));
    c->library = add->library ? add->library : base->library;
    c->cluster_urls = add->cluster_urls ? add->cluster_urls : base->cluster_urls;
    c->cluster_options = add->cluster_options ? add->cluster_options : base->cluster_options;
    c->release_workers = add->release_workers ? add->release_workers : base->release_workers;
    return c;
}

void *wsgate_create_dir_conf(apr_pool_t *p, char *path)
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

/* The sections of this configuration that choose an application, for
 * wsgate_check_config. Allocated from pconf, so a new one is made for each
 * reading of the configuration (pre_config). */
static apr_array_header_t *sections;

int wsgate_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    sections = apr_array_make(pconf, 8, sizeof(wsgate_dir_conf *));
    return OK;
}

const apr_array_header_t *wsgate_sections(void) { return sections; }

/* chose_app records where a section chooses its application. Sections of
 * the server configuration are checked by the engine at startup;
 * .htaccess files are read per request, and checked then. */
static wsgate_dir_conf *chose_app(cmd_parms *cmd, void *confv)
{
    wsgate_dir_conf *conf = in_section(cmd, confv);
    if (cmd->directive) {
        conf->app_file = cmd->directive->filename;
        conf->app_line = cmd->directive->line_num;
    }
    if (!in_htaccess(cmd) && sections && !conf->recorded) {
        conf->recorded = 1;
        APR_ARRAY_PUSH(sections, wsgate_dir_conf *) = conf;
    }
    return conf;
}

#define MERGE_PTR(f) c->f = add->f ? add->f : base->f
#define MERGE_INT(f) c->f = add->f != UNSET ? add->f : base->f

/* Nested sections inherit what they do not set, which mod_websocket,
 * having no merge function, did not do. */
void *wsgate_merge_dir_conf(apr_pool_t *p, void *basev, void *addv)
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
    MERGE_PTR(backend_hold);
    MERGE_PTR(events);
    MERGE_PTR(upstream);
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

/* WebSocketApp <name>: the name is checked by the engine, which knows its
 * applications (wsgate_check_config), not against a list kept here. */
static const char *set_app(cmd_parms *cmd, void *confv, const char *name)
{
    chose_app(cmd, confv)->app = name;
    return NULL;
}

static const char *set_backend(cmd_parms *cmd, void *confv, const char *address, const char *mode)
{
    wsgate_dir_conf *conf = chose_app(cmd, confv);
    if (mode && strcmp(mode, "mux") && strcmp(mode, "per-client") && strcmp(mode, "raw")) {
        return "WebSocketBackend's mode must be mux, per-client or raw";
    }
    conf->backend = address;
    conf->backend_mode = mode;
    return NULL;
}

/* WebSocketUpstream URL...: a WebSocket server behind the section, with
 * every frame checked both ways (apps/upstream). The URLs are checked by
 * the engine. Each directive adds to the list. */
static const char *add_upstream(cmd_parms *cmd, void *confv, const char *u)
{
    wsgate_dir_conf *conf = chose_app(cmd, confv);
    if (strncmp(u, "ws://", 5) && strncmp(u, "wss://", 6)) {
        return "WebSocketUpstream takes ws:// and wss:// URLs";
    }
    if (!conf->upstream) {
        conf->upstream = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    APR_ARRAY_PUSH(conf->upstream, const char *) = u;
    return NULL;
}

static const char *set_docroot(cmd_parms *cmd, void *confv, const char *dir)
{
    chose_app(cmd, confv)->docroot = ap_server_root_relative(cmd->pool, dir);
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
    wsgate_dir_conf *conf = chose_app(cmd, confv);
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

static const char *set_backend_hold(cmd_parms *cmd, void *confv, const char *arg)
{
    return duration(cmd, arg, &in_section(cmd, confv)->backend_hold);
}

/* WebSocketEventHandler <target>: every event of the location's WebSockets
 * goes to target in WebSocket-over-HTTP: an http(s):// URL (a request from
 * the engine), or a subrequest into this httpd: a file when target names
 * one now (or says file:PATH), otherwise a URL path. */
static const char *set_events(cmd_parms *cmd, void *confv, const char *target)
{
    wsgate_dir_conf *conf = chose_app(cmd, confv);
    apr_finfo_t fi;

    if (!strncmp(target, "http://", 7) || !strncmp(target, "https://", 8)) {
        conf->events = target;
        return NULL;
    }
    if (!strncmp(target, "file:", 5)) {
        target += 5;
        if (target[0] != '/') {
            return "WebSocketEventHandler's file: must be an absolute path";
        }
        conf->events = apr_pstrcat(cmd->pool, "file:", target, NULL);
        return NULL;
    }
    if (target[0] != '/') {
        return "WebSocketEventHandler needs an http:// or https:// URL, a file (an absolute path) or a URL path";
    }
    if (apr_stat(&fi, target, APR_FINFO_TYPE, cmd->temp_pool) == APR_SUCCESS && fi.filetype == APR_REG) {
        conf->events = apr_pstrcat(cmd->pool, "file:", target, NULL);
    } else {
        conf->events = target;
    }
    return NULL;
}

static const char *set_release_workers(cmd_parms *cmd, void *confv, int on)
{
    wsgate_server_conf *sc = ap_get_module_config(cmd->server->module_config, &wsgate_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)confv;
    if (err) {
        return err;
    }
    sc->release_workers = on ? 1 : 2;
    return NULL;
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

static const char *add_cluster_url(cmd_parms *cmd, void *confv, const char *url)
{
    wsgate_server_conf *sc = ap_get_module_config(cmd->server->module_config, &wsgate_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    (void)confv;
    if (err) {
        return err;
    }
    if (strncmp(url, "nats://", 7) && strncmp(url, "tls://", 6) && strncmp(url, "ws://", 5) && strncmp(url, "wss://", 6)) {
        return apr_psprintf(cmd->pool, "WsgateCluster: '%s' is not a NATS URL (nats://host:port, tls://, ws://, wss://)", url);
    }
    if (!sc->cluster_urls) {
        sc->cluster_urls = apr_array_make(cmd->pool, 3, sizeof(const char *));
    }
    APR_ARRAY_PUSH(sc->cluster_urls, const char *) = apr_pstrdup(cmd->pool, url);
    return NULL;
}

/* The keys of the daemon's cluster block, but nats (WsgateCluster). */
static const char *const cluster_keys[] = {"name", "prefix", "credentials", "nkey", "user", "password",
                                           "token", "tls.ca", "tls.cert", "tls.key", "buffer", NULL};

static const char *set_cluster_option(cmd_parms *cmd, void *confv, const char *key, const char *value)
{
    wsgate_server_conf *sc = ap_get_module_config(cmd->server->module_config, &wsgate_module);
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    int known = 0;
    (void)confv;
    if (err) {
        return err;
    }
    for (int i = 0; cluster_keys[i]; i++) {
        known |= !strcmp(key, cluster_keys[i]);
    }
    if (!known) {
        return apr_psprintf(cmd->pool,
                            "WsgateClusterOption: unknown key '%s' (name, prefix, credentials, nkey, user, password, "
                            "token, tls.ca, tls.cert, tls.key, buffer)",
                            key);
    }
    if (!sc->cluster_options) {
        sc->cluster_options = apr_table_make(cmd->pool, 4);
    }
    if (!strcmp(key, "credentials") || !strcmp(key, "nkey") || !strncmp(key, "tls.", 4)) {
        value = ap_server_root_relative(cmd->pool, value);
    }
    apr_table_set(sc->cluster_options, key, value);
    return NULL;
}

typedef struct {
    apr_pool_t *p;
    apr_array_header_t *out;
    int tls;
} cluster_json_ctx;

static int cluster_option_json(void *v, const char *key, const char *value)
{
    cluster_json_ctx *c = v;
    if (strncmp(key, "tls.", 4)) {
        APR_ARRAY_PUSH(c->out, const char *) =
            apr_psprintf(c->p, ",%s:%s", wsgate_json_string(c->p, key), wsgate_json_string(c->p, value));
    }
    return 1;
}

const char *wsgate_cluster_json(apr_pool_t *p, server_rec *s)
{
    wsgate_server_conf *sc = ap_get_module_config(s->module_config, &wsgate_module);
    cluster_json_ctx c = {p, apr_array_make(p, 8, sizeof(const char *)), 0};
    const char *tls = "";

    if (!sc->cluster_urls || sc->cluster_urls->nelts == 0) {
        return "";
    }
    APR_ARRAY_PUSH(c.out, const char *) = "{\"nats\":[";
    for (int i = 0; i < sc->cluster_urls->nelts; i++) {
        APR_ARRAY_PUSH(c.out, const char *) =
            apr_pstrcat(p, i ? "," : "", wsgate_json_string(p, APR_ARRAY_IDX(sc->cluster_urls, i, const char *)), NULL);
    }
    APR_ARRAY_PUSH(c.out, const char *) = "]";
    if (sc->cluster_options) {
        apr_table_do(cluster_option_json, &c, sc->cluster_options, NULL);
        for (const char *const *k = (const char *const[]){"tls.ca", "tls.cert", "tls.key", NULL}; *k; k++) {
            const char *v = apr_table_get(sc->cluster_options, *k);
            if (v) {
                tls = apr_psprintf(p, "%s%s%s:%s", tls, *tls ? "," : "", wsgate_json_string(p, *k + 4),
                                   wsgate_json_string(p, v));
            }
        }
    }
    if (*tls) {
        APR_ARRAY_PUSH(c.out, const char *) = apr_psprintf(p, ",\"tls\":{%s}", tls);
    }
    APR_ARRAY_PUSH(c.out, const char *) = "}";
    return apr_array_pstrcat(p, c.out, 0);
}

const command_rec wsgate_cmds[] = {
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
                  "A built-in application (wsgate apps lists them)"),
    AP_INIT_TAKE12("WebSocketBackend", set_backend, NULL, OR_AUTHCFG,
                   "A producer: a UNIX socket path (or tcp:host:port), then mux, per-client or raw"),
    AP_INIT_ITERATE("WebSocketUpstream", add_upstream, NULL, OR_AUTHCFG,
                    "WebSocket servers (ws:// or wss:// URLs) this location proxies to, every frame checked"),
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
    AP_INIT_TAKE1("WebSocketBackendHold", set_backend_hold, NULL, OR_AUTHCFG,
                  "Keep a WebSocketBackend's clients open this long while its producer restarts (mux)"),
    AP_INIT_TAKE1("WebSocketEventHandler", set_events, NULL, OR_AUTHCFG,
                  "Serve the WebSockets with an HTTP application in WebSocket-over-HTTP: a URL path, a file "
                  "(each event is a subrequest into httpd), or an http:// URL"),
    AP_INIT_FLAG("WsgateReleaseWorkers", set_release_workers, NULL, RSRC_CONF,
                 "On (the default): an idle WebSocket gives its worker back to the event MPM; Off: it keeps it"),
    AP_INIT_TAKE1("WsgateLibrary", set_library, NULL, RSRC_CONF,
                  "Path of libwsgate.so, the Go engine (default: next to mod_wsgate.so)"),
    AP_INIT_ITERATE("WsgateCluster", add_cluster_url, NULL, RSRC_CONF,
                    "NATS servers through which every child shares rooms and broadcasts"),
    AP_INIT_TAKE2("WsgateClusterOption", set_cluster_option, NULL, RSRC_CONF,
                  "A setting of the cluster's NATS connection: name, prefix, credentials, nkey, user, password, "
                  "token, tls.ca, tls.cert, tls.key, buffer"),
    {NULL}
};
