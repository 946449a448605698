/*
 * wsgate_go.c: the Go engine, libwsgate.so. It is loaded after fork, in
 * each child (the Go runtime does not survive fork, and the parent forks
 * again at every restart), and in a short-lived child of the parent that
 * checks the configuration at startup and exits.
 */
#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apr_shm.h"
#include "mod_status.h"

#include "mod_wsgate.h"

APLOG_USE_MODULE(wsgate);

wsgate_go_t wsgate_go;

/* wsgate_library is the engine to load: WsgateLibrary, or libwsgate.so
 * next to the mod_wsgate.so httpd loaded when there is one (found with
 * dladdr, so a build directory or a module copied anywhere finds its
 * engine), or the compiled-in path (the packages install the engine in
 * /usr/lib/wsgate: it is not an httpd module). */
const char *wsgate_library(server_rec *s)
{
    wsgate_server_conf *sc = ap_get_module_config(s->module_config, &wsgate_module);
    static char next_to_module[4096];
    Dl_info info;

    if (sc->library) {
        return sc->library;
    }
    if (!next_to_module[0] && dladdr((void *)&wsgate_module, &info) && info.dli_fname) {
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash) {
            apr_snprintf(next_to_module, sizeof(next_to_module), "%.*s/libwsgate.so", (int)(slash - info.dli_fname),
                         info.dli_fname);
        }
        if (access(next_to_module, F_OK) != 0) {
            apr_snprintf(next_to_module, sizeof(next_to_module), "%s", WSGATE_LIBRARY);
        }
    }
    return next_to_module[0] ? next_to_module : WSGATE_LIBRARY;
}

void *wsgate_counters_shm(long *size);

/* The engine's log goes through httpd's, with its time, pid and module
 * tag ([wsgate:info], or [websocket:info] when loaded under
 * apache-websocket's name), so LogLevel and ErrorLog apply to it. */
static server_rec *log_server;

static void engine_log(int level, const char *msg)
{
    ap_log_error(APLOG_MARK, level, 0, log_server, "%s", msg);
}

void wsgate_child_init(apr_pool_t *p, server_rec *s)
{
    const char *lib = wsgate_library(s);
    int threaded = 0;
    void *shm;
    long shm_size = 0;

    log_server = s;
    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    wsgate_go.dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!wsgate_go.dl) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_wsgate: cannot load %s: %s; WebSocket requests get 500", lib,
                     dlerror());
        return;
    }
    wsgate_go.init = (wsgate_init_fn)dlsym(wsgate_go.dl, "WsgateInit");
    wsgate_go.handle = (wsgate_handle_fn)dlsym(wsgate_go.dl, "WsgateHandle");
    wsgate_go.free_response = (wsgate_free_response_fn)dlsym(wsgate_go.dl, "WsgateFreeResponse");
    wsgate_go.serve = (wsgate_serve_fn)dlsym(wsgate_go.dl, "WsgateServe");
    wsgate_go.stopping = (wsgate_stopping_fn)dlsym(wsgate_go.dl, "WsgateStopping");
    wsgate_go.metrics = (wsgate_metrics_fn)dlsym(wsgate_go.dl, "WsgateMetrics");
    wsgate_go.publish = (wsgate_publish_fn)dlsym(wsgate_go.dl, "WsgatePublish");
    wsgate_go.serve_async = (wsgate_serve_async_fn)dlsym(wsgate_go.dl, "WsgateServeAsync");
    wsgate_go.resume = (wsgate_resume_fn)dlsym(wsgate_go.dl, "WsgateResume");
    wsgate_go.gone = (wsgate_gone_fn)dlsym(wsgate_go.dl, "WsgateGone");
    if (!wsgate_go.resume || !wsgate_go.gone) {
        wsgate_go.serve_async = NULL;
    }
    shm = wsgate_counters_shm(&shm_size);
    if (!wsgate_go.init || !wsgate_go.handle || !wsgate_go.free_response || !wsgate_go.serve || !wsgate_go.stopping ||
        !wsgate_go.metrics || !wsgate_go.publish ||
        wsgate_go.init(WSGATE_MODULE_ABI, (char *)ap_get_server_banner(), threaded != 0, shm, shm_size,
                       ap_get_server_module_loglevel(s, APLOG_MODULE_INDEX), engine_log,
                       (char *)wsgate_cluster_json(p, s)) != 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, "mod_wsgate: %s is not a usable libwsgate", lib);
        wsgate_go.handle = NULL;
        wsgate_go.metrics = NULL;
        wsgate_go.publish = NULL;
    }
}

#if AP_MODULE_MAGIC_AT_LEAST(20120211, 110)
/* The child is stopping (graceful or not): Go closes its WebSockets with
 * 1001 at once instead of waiting for the next poll timeout. */
void wsgate_child_stopping(apr_pool_t *p, int graceful)
{
    (void)p;
    if (wsgate_go.handle) {
        wsgate_go.stopping(graceful);
    }
}
#endif

/* The directive that sets the part of a route a key names, for messages
 * in httpd's terms. Only the first word of the key matters: "docroot.root"
 * came from WebSocketDocroot. */
static const char *directive_of(apr_pool_t *p, const char *key)
{
    static const struct {
        const char *key, *directive;
    } names[] = {{"app", "WebSocketApp"},
                 {"backend", "WebSocketBackend"},
                 {"docroot", "WebSocketDocroot"},
                 {"program", "WebSocketProgram"},
                 {NULL, NULL}};
    size_t n = strcspn(key, ".[");

    if (!strncmp(key, "backend.http", 12) || !strncmp(key, "backend.subrequest", 18)) {
        return "WebSocketEventHandler";
    }
    if (!strncmp(key, "backend.hold", 12)) {
        return "WebSocketBackendHold";
    }
    if (!strncmp(key, "backend.upstream", 16)) {
        return "WebSocketUpstream";
    }
    for (int i = 0; names[i].key; i++) {
        if (strlen(names[i].key) == n && !strncmp(key, names[i].key, n)) {
            return key[n] ? apr_pstrcat(p, names[i].directive, " (", key + n + 1, ")", NULL) : names[i].directive;
        }
    }
    return key;
}

/* The warnings of this configuration cycle that belong in the ErrorLog.
 * check_config runs before httpd opens its logs: what it logs goes to
 * stderr, which is the terminal of "apache2 -k start" (then /dev/null)
 * and the ErrorLog only on a restart. So the first pass and "httpd -t"
 * say them on stderr, and every cycle that starts serving (the start's
 * second pass, each restart) says them again in post_config, where the
 * ErrorLog is open. Allocated from pconf, made again for each cycle. */
static apr_array_header_t *pending_warnings;

static apr_status_t forget_warnings(void *p)
{
    *(apr_array_header_t **)p = NULL;
    return APR_SUCCESS;
}

static int first_pass(void)
{
    return ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG ||
           ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST;
}

/* broadcast_warning: a section whose application uses rooms or broadcast
 * ("file:line<TAB>application"), under an MPM that runs more than one
 * child, with no WsgateCluster: its clients in different children would
 * not see each other's messages, and the administrator is told so. */
static void broadcast_warning(apr_pool_t *pconf, server_rec *s, char *what, int have_cluster)
{
    int daemons = 1;
    char *app = strchr(what, '\t');
    const char *msg;

    if (have_cluster) {
        return;
    }
    if (app) {
        *app++ = '\0';
    }
    if (ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS) {
        daemons = 2; /* unknown: assume more than one */
    }
    if (daemons <= 1) {
        return;
    }
    msg = apr_psprintf(pconf,
                       "mod_wsgate: the section at %s (%s) uses rooms or broadcast, but httpd may run %d child "
                       "processes and WsgateCluster is not set: clients in different children will not get each "
                       "other's messages. Set WsgateCluster nats://... (see the README)",
                       what, app ? app : "?", daemons);
    if (first_pass()) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_WARNING, 0, s, "%s", msg);
        return;
    }
    if (!pending_warnings) {
        pending_warnings = apr_array_make(pconf, 2, sizeof(const char *));
        apr_pool_cleanup_register(pconf, &pending_warnings, forget_warnings, apr_pool_cleanup_null);
    }
    APR_ARRAY_PUSH(pending_warnings, const char *) = msg;
}

/* run_check is the helper child: it loads the engine and writes what
 * WsgateCheck says to fd, then exits without running anything of the
 * parent's (no atexit handlers, no pool cleanups). */
static void run_check(const char *lib, const char *json, int fd)
{
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    wsgate_check_fn check;
    char *out;
    size_t len;

    if (!dl) {
        dprintf(fd, "\t\tcannot load the Go engine %s: %s (set WsgateLibrary)\n", lib, dlerror());
        _exit(1);
    }
    check = (wsgate_check_fn)dlsym(dl, "WsgateCheck");
    if (!check) {
        dprintf(fd, "\t\t%s is not a libwsgate built with this mod_wsgate (no WsgateCheck)\n", lib);
        _exit(1);
    }
    out = check(WSGATE_MODULE_ABI, (char *)json);
    len = out ? strlen(out) : 0;
    while (len > 0) {
        ssize_t n = write(fd, out, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        out += n;
        len -= (size_t)n;
    }
    _exit(0);
}

/* wsgate_check_config asks the Go engine whether every configuration
 * section's route is usable: its application exists, its producer or
 * docroot settings make sense, its program can be found. The engine is
 * never loaded into this process (the parent forks every child), so a
 * child is forked to load it, check, and exit. It also proves, before any
 * request, that the engine can be loaded at all. */
int wsgate_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    const apr_array_header_t *sections = wsgate_sections();
    apr_array_header_t *j = apr_array_make(ptemp, 16, sizeof(const char *));
    const char *lib = wsgate_library(s), *json, *cluster;
    apr_array_header_t *chunks = apr_array_make(ptemp, 4, sizeof(const char *));
    int fds[2], status = 0, failed = 0;
    char buf[4096], *out, *line, *save;
    pid_t pid;
    ssize_t n;

    (void)plog;
    APR_ARRAY_PUSH(j, const char *) = "{\"sections\":[";
    for (int i = 0; sections && i < sections->nelts; i++) {
        const wsgate_dir_conf *conf = APR_ARRAY_IDX(sections, i, const wsgate_dir_conf *);
        const char *path = conf->location && *conf->location == '/' ? conf->location : "/";
        APR_ARRAY_PUSH(j, const char *) = apr_psprintf(
            ptemp, "%s{\"section\":%s,\"route\":%s}", i ? "," : "",
            wsgate_json_string(ptemp, apr_psprintf(ptemp, "%s:%d", conf->app_file, conf->app_line)),
            wsgate_route_json(ptemp, conf, path));
    }
    cluster = wsgate_cluster_json(ptemp, s);
    APR_ARRAY_PUSH(j, const char *) = apr_pstrcat(ptemp, "],\"cluster\":", *cluster ? cluster : "null", "}", NULL);
    json = apr_array_pstrcat(ptemp, j, 0);

    if (pipe(fds) != 0) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, errno, s, "mod_wsgate: pipe");
        return !OK;
    }
    pid = fork();
    if (pid < 0) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_ERR, errno, s, "mod_wsgate: fork");
        close(fds[0]);
        close(fds[1]);
        return !OK;
    }
    if (pid == 0) {
        close(fds[0]);
        run_check(lib, json, fds[1]);
    }
    close(fds[1]);
    /* Read to EOF before waiting, or a long answer would block the child. */
    while ((n = read(fds[0], buf, sizeof(buf) - 1)) != 0) {
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        buf[n] = '\0';
        APR_ARRAY_PUSH(chunks, const char *) = apr_pstrdup(ptemp, buf);
    }
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    out = apr_array_pstrcat(ptemp, chunks, 0);
    /* Each line is "file:line<TAB>key<TAB>message"; an empty location is
     * about the engine itself. */
    for (line = apr_strtok(out, "\n", &save); line; line = apr_strtok(NULL, "\n", &save)) {
        char *key = strchr(line, '\t'), *msg, *colon;
        if (!strncmp(line, "!broadcast\t", 11)) {
            broadcast_warning(pconf, s, line + 11, *cluster != '\0');
            continue;
        }
        if (!key || !(msg = strchr(key + 1, '\t'))) {
            continue;
        }
        *key++ = '\0';
        *msg++ = '\0';
        failed = 1;
        colon = strrchr(line, ':');
        if (!*line || !colon) {
            ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s, "mod_wsgate: %s", msg);
            continue;
        }
        *colon = '\0';
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s, "Syntax error on line %s of %s:", colon + 1, line);
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s, "%s%s%s", *key ? directive_of(ptemp, key) : "",
                     *key ? ": " : "", msg);
    }
    if (!failed && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
        ap_log_error(APLOG_MARK, APLOG_STARTUP | APLOG_CRIT, 0, s,
                     "mod_wsgate: checking the configuration with %s failed (status %d)", lib, status);
        failed = 1;
    }
    return failed ? !OK : OK;
}

/*
 * Counters across the children (see libwsgate/children.go): the parent
 * makes one shared memory segment, once for its whole life (graceful
 * restarts keep it, so counters do not go back to zero), with a slot per
 * child httpd may run, old generation included.
 */

#define WSGATE_SHM_MAGIC 0x7773676174655f31ULL
#define WSGATE_SHM_HEADER 64
#define WSGATE_SLOT_SIZE (32 * 1024)

static apr_shm_t *counters_shm;

int wsgate_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp, server_rec *s)
{
    int limit = 0, slots;
    apr_size_t size;
    unsigned char *base;

    (void)pconf;
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    for (int i = 0; pending_warnings && i < pending_warnings->nelts; i++) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, "%s", APR_ARRAY_IDX(pending_warnings, i, const char *));
    }
    {
        const char *why = "";
        if (wsgate_async_mode(&why)) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s,
                         "mod_wsgate: workers are released while WebSockets are idle (CONN_STATE_ASYNC_WAITIO); "
                         "WebSockets with a C plugin or WebSocketEventHandler subrequests keep theirs");
        } else {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, "mod_wsgate: each WebSocket holds a worker thread for its life: %s",
                         why);
        }
    }
    if (counters_shm) {
        return OK;
    }
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit);
    slots = (limit > 0 ? limit : 16) * 2;
    size = WSGATE_SHM_HEADER + (apr_size_t)slots * WSGATE_SLOT_SIZE;
    if (apr_shm_create(&counters_shm, size, NULL, s->process->pool) != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s,
                     "mod_wsgate: no shared memory for the children's counters; wsgate-metrics reports one child");
        counters_shm = NULL;
        return OK;
    }
    base = apr_shm_baseaddr_get(counters_shm);
    memset(base, 0, size);
    *(apr_uint64_t *)base = WSGATE_SHM_MAGIC;
    *(apr_uint32_t *)(base + 8) = (apr_uint32_t)slots;
    *(apr_uint32_t *)(base + 12) = WSGATE_SLOT_SIZE;
    return OK;
}

void *wsgate_counters_shm(long *size)
{
    if (!counters_shm) {
        *size = 0;
        return NULL;
    }
    *size = (long)apr_shm_size_get(counters_shm);
    return apr_shm_baseaddr_get(counters_shm);
}

/* SetHandler wsgate-metrics: Prometheus's text format, summed over every
 * child, whichever child answers. */
int wsgate_metrics_handler(request_rec *r)
{
    char *out;
    long len = 0;

    if (!r->handler || strcmp(r->handler, "wsgate-metrics")) {
        return DECLINED;
    }
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (!wsgate_go.metrics) {
        return HTTP_SERVICE_UNAVAILABLE;
    }
    out = wsgate_go.metrics(0, &len);
    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    if (out) {
        ap_rwrite(out, (int)len, r);
        free(out);
    }
    return OK;
}

/* mod_status's page (with ExtendedStatus): mod_wsgate's section, summed
 * over the children. */
int wsgate_status_hook(request_rec *r, int flags)
{
    char *out;
    long len = 0;

    if (!wsgate_go.metrics) {
        return OK;
    }
    out = wsgate_go.metrics((flags & AP_STATUS_SHORT) ? 2 : 1, &len);
    if (out) {
        ap_rwrite(out, (int)len, r);
        free(out);
    }
    return OK;
}
