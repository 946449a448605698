/*
 * wsgate_io.c: a connection's I/O for Go. Go calls these on the worker
 * thread that serves the request, and only there: httpd's filters, pools,
 * bucket allocators and mod_ssl's state belong to that thread.
 */
#include "mod_wsgate.h"

static long io_read(void *ctx, char *buf, long len)
{
    wsgate_conn_io *io = ctx;
    apr_size_t n = (apr_size_t)len;
    apr_status_t rv = ap_get_brigade(io->r ? io->r->input_filters : io->c->input_filters, io->ibb, AP_MODE_READBYTES,
                                     APR_NONBLOCK_READ, n);

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
    wsgate_conn_io *io = ctx;
    return ap_fwrite(io->c->output_filters, io->obb, buf, (apr_size_t)len) == APR_SUCCESS ? 0 : -1;
}

static int io_flush(void *ctx)
{
    wsgate_conn_io *io = ctx;
    return ap_fflush(io->c->output_filters, io->obb) == APR_SUCCESS ? 0 : -1;
}

static void io_shutdown_write(void *ctx)
{
    wsgate_conn_io *io = ctx;
    apr_socket_shutdown(ap_get_conn_socket(io->c), APR_SHUTDOWN_WRITE);
}

static int io_stopping(void)
{
    int state = AP_MPMQ_RUNNING;
    ap_mpm_query(AP_MPMQ_MPM_STATE, &state);
    return state == AP_MPMQ_STOPPING;
}

static void setup(wsgate_io *gio, wsgate_conn_io *io, request_rec *r, conn_rec *c, apr_pool_t *p)
{
    apr_os_sock_t fd = -1;

    io->r = r;
    io->c = c;
    io->ibb = apr_brigade_create(p, c->bucket_alloc);
    io->obb = apr_brigade_create(p, c->bucket_alloc);
    apr_os_sock_get(&fd, ap_get_conn_socket(c));
    gio->ctx = io;
    gio->read = io_read;
    gio->write = io_write;
    gio->flush = io_flush;
    gio->shutdown_write = io_shutdown_write;
    gio->stopping = io_stopping;
    gio->fd = (int)fd;
    gio->trim = NULL;
}

/* wsgate_io_setup fills the I/O table for a connection served by r's
 * worker; io must live as long as the connection. */
void wsgate_io_setup(wsgate_io *gio, wsgate_conn_io *io, request_rec *r)
{
    setup(gio, io, r, r->connection, r->pool);
}

void wsgate_io_setup_conn(wsgate_io *gio, wsgate_conn_io *io, conn_rec *c)
{
    setup(gio, io, NULL, c, c->pool);
}
