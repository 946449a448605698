/*
 * wsgate_async.c: releasing the worker while a WebSocket is idle, under an
 * MPM that supports CONN_STATE_ASYNC_WAITIO (event, httpd 2.4.63 and
 * later). After the 101 the connection leaves HTTP: its WebSocket state
 * moves to the connection's pool and this file's process_connection hook
 * serves it. Go serves it while it is busy; when it goes quiet the hook
 * returns CONN_STATE_ASYNC_WAITIO and the MPM watches the socket, calling
 * the hook again on any worker when bytes arrive. Output for a parked
 * connection comes through a timed callback, on a worker too. Go's
 * per-connection lock keeps one thread at a time on the connection, and
 * the pre_close_connection hook takes it before httpd's lingering close
 * touches the filters (see libwsgate/async.go).
 */
#include "http_main.h"

#include "mod_wsgate.h"

APLOG_USE_MODULE(wsgate);

static int can_waitio = -1;
static const char *no_waitio;

typedef struct {
    wsgate_conn_io io;
    wsgate_io gio;
    uintptr_t id;  /* Go's, 0 once gone */
    int switching; /* the request that upgraded is ending */
} wsgate_async;

/* What the connection's allocator keeps free while the WebSocket reads:
 * enough for its brigades and buckets not to go back to the system at
 * every read (with APR's mmap-based allocator each node freed past it is
 * a munmap, and a busy echo ran at a third of its speed). A parked
 * connection keeps nothing: trim hands the free nodes back. */
#define WSGATE_MAX_FREE (32 * 1024)
#define WSGATE_TRIM_NODES (WSGATE_MAX_FREE / 8192)

/* wsgate_async_mode says whether this child releases workers, and why not
 * when it does not, for the startup log. */
int wsgate_async_mode(const char **why)
{
    wsgate_server_conf *sc = ap_get_module_config(ap_server_conf->module_config, &wsgate_module);
    if (sc && sc->release_workers == 2) {
        *why = "WsgateReleaseWorkers Off";
        return 0;
    }
    if (can_waitio < 0) {
        int v = 0;
#ifdef AP_MPMQ_CAN_WAITIO
        if (ap_mpm_query(AP_MPMQ_CAN_WAITIO, &v) != APR_SUCCESS) {
            v = 0;
        }
        no_waitio = "the MPM cannot wait for a connection's I/O (CONN_STATE_ASYNC_WAITIO needs the event MPM)";
#else
        no_waitio = "httpd is older than 2.4.63 (no CONN_STATE_ASYNC_WAITIO)";
#endif
        can_waitio = v != 0;
    }
    *why = no_waitio;
    return can_waitio;
}

static void timed_resume(void *baton)
{
    wsgate_go.resume((uintptr_t)baton, 1);
}

/* Called by Go from any thread: httpd's timed callbacks are queued under
 * the MPM's lock and run on a worker. The baton is Go's id, not memory of
 * the connection's, which may be freed before the callback runs. */
static void schedule(uintptr_t id)
{
    ap_mpm_register_timed_callback(0, timed_resume, (void *)id);
}

static void gone(wsgate_async *a)
{
    if (a->id) {
        uintptr_t id = a->id;
        a->id = 0;
        wsgate_go.gone(id);
    }
}

static apr_status_t pool_gone(void *data)
{
    gone(data);
    return APR_SUCCESS;
}

/* The connection's allocator keeps what its pools free, up to MaxMemFree,
 * for the next request: the upgrade request's pool would then stay with
 * the WebSocket for its whole life. From the upgrade on it keeps nothing
 * free, except WSGATE_MAX_FREE while a resumption reads (trim); the MPM
 * recycles the pool and its allocator for later connections, so the
 * setting is restored when the pool is cleared. */
static apr_status_t restore_max_free(void *data)
{
    apr_allocator_max_free_set(data, ap_max_mem_free);
    return APR_SUCCESS;
}

/* The request that upgraded ends after the handler returns, and HTTP's
 * connection processing then checks for a pipelined request with a
 * speculative read: this filter answers that one read with a byte, so
 * that the MPM runs the process_connection hooks again at once (and this
 * module's takes the connection) instead of waiting KeepAliveTimeout. */
static apr_status_t switch_filter(ap_filter_t *f, apr_bucket_brigade *bb, ap_input_mode_t mode,
                                  apr_read_type_e block, apr_off_t readbytes)
{
    wsgate_async *a = f->ctx;
    if (a->switching && mode == AP_MODE_SPECULATIVE) {
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_immortal_create("\x81", 1, f->c->bucket_alloc));
        return APR_SUCCESS;
    }
    return ap_get_brigade(f->next, bb, mode, block, readbytes);
}

static ap_filter_rec_t *switch_filter_rec;

/* trim is the I/O table's trim for a released connection. Parking, it
 * takes back the allocator's free nodes (at most WSGATE_MAX_FREE: a few)
 * and frees them with nothing kept, then keeps nothing until the next
 * resumption that reads. Called under the engine's lock on the
 * connection: the allocator has no lock of its own. */
static void trim(void *ctx, int busy)
{
    wsgate_conn_io *io = ctx;
    apr_allocator_t *al = apr_pool_allocator_get(io->c->pool);
    apr_memnode_t *nodes[WSGATE_TRIM_NODES];

    if (!al) {
        return;
    }
    if (busy) {
        apr_allocator_max_free_set(al, WSGATE_MAX_FREE);
        return;
    }
    apr_allocator_max_free_set(al, 1);
    for (int i = 0; i < WSGATE_TRIM_NODES; i++) {
        nodes[i] = apr_allocator_alloc(al, 1);
    }
    for (int i = 0; i < WSGATE_TRIM_NODES; i++) {
        if (nodes[i]) {
            apr_allocator_free(al, nodes[i]);
        }
    }
}

/* wsgate_async_start takes an upgraded connection out of HTTP, after the
 * 101 is sent, for Go's connection conn. It returns 0 when the connection
 * must be served the pinned way instead. */
int wsgate_async_start(request_rec *r, const wsgate_dir_conf *conf, uintptr_t conn)
{
    conn_rec *c = r->connection;
    const char *why;
    wsgate_async *a;
    apr_allocator_t *al;

    if (!wsgate_async_mode(&why) || !wsgate_go.serve_async) {
        return 0;
    }
    /* The request's record dies with the request: what needs it for the
     * connection's life stays pinned (a C plugin is handed it; event
     * subrequests are made from it). */
    if (conf->plugin || (conf->events && strncmp(conf->events, "http://", 7) && strncmp(conf->events, "https://", 8))) {
        return 0;
    }
    a = apr_pcalloc(c->pool, sizeof(*a));
    wsgate_io_setup_conn(&a->gio, &a->io, c);
    a->gio.trim = trim;
    /* The MPM waits for a parked connection at most the server's Timeout,
     * then closes it: the engine pings within that. */
    a->id = wsgate_go.serve_async(conn, &a->gio, schedule, (long)apr_time_as_msec(r->server->timeout));
    if (!a->id) {
        return 0;
    }
    ap_set_module_config(c->conn_config, &wsgate_module, a);
    apr_pool_cleanup_register(c->pool, a, pool_gone, apr_pool_cleanup_null);
    al = apr_pool_allocator_get(c->pool);
    if (al) {
        apr_allocator_max_free_set(al, 1);
        apr_pool_cleanup_register(c->pool, al, restore_max_free, apr_pool_cleanup_null);
    }
    /* Nothing more is written for the request: no final response. */
    ap_remove_output_filter_byhandle(r->output_filters, "HTTP_HEADER");
    c->keepalive = AP_CONN_KEEPALIVE;
    a->switching = 1;
    ap_add_input_filter_handle(switch_filter_rec, a, NULL, c);
    return 1;
}

static int process_connection(conn_rec *c)
{
    wsgate_async *a = ap_get_module_config(c->conn_config, &wsgate_module);

    if (!a) {
        return DECLINED;
    }
    if (a->switching) {
        /* The upgrade request's pool is gone, and its memory with it. */
        a->switching = 0;
        ap_remove_input_filter_byhandle(c->input_filters, "WSGATE_SWITCH");
    }
    if (a->id && wsgate_go.resume(a->id, 0) == 0) {
        c->cs->state = CONN_STATE_ASYNC_WAITIO;
        c->cs->sense = CONN_SENSE_WANT_READ;
        return OK;
    }
    c->cs->state = CONN_STATE_LINGER;
    return OK;
}

/* httpd is about to close the connection (the WebSocket ended, the client
 * went away, or the MPM timed it out): no timed callback may touch it. */
static int pre_close(conn_rec *c)
{
    wsgate_async *a = ap_get_module_config(c->conn_config, &wsgate_module);
    if (a) {
        gone(a);
    }
    return OK;
}

void wsgate_async_register(apr_pool_t *p)
{
    (void)p;
    switch_filter_rec = ap_register_input_filter("WSGATE_SWITCH", switch_filter, NULL, AP_FTYPE_CONNECTION);
    ap_hook_process_connection(process_connection, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_pre_close_connection(pre_close, NULL, NULL, APR_HOOK_MIDDLE);
}
