#include "io.h"

long wsgate_io_read(wsgate_io *io, char *buf, long len) { return io->read(io->ctx, buf, len); }
int wsgate_io_write(wsgate_io *io, const char *buf, long len) { return io->write(io->ctx, buf, len); }
int wsgate_io_flush(wsgate_io *io) { return io->flush(io->ctx); }
void wsgate_io_shutdown_write(wsgate_io *io) { io->shutdown_write(io->ctx); }
int wsgate_io_stopping(wsgate_io *io) { return io->stopping(); }
void wsgate_call_log(wsgate_log_fn fn, int level, const char *msg) { fn(level, msg); }
void wsgate_call_subrequest(wsgate_subrequest_fn fn, void *r, const wsgate_subreq *in, wsgate_subresp *out) { fn(r, in, out); }
void wsgate_call_free_subresp(wsgate_free_subresp_fn fn, wsgate_subresp *out) { fn(out); }
void wsgate_call_schedule(wsgate_schedule_fn fn, uintptr_t id) { fn(id); }
void wsgate_io_trim(wsgate_io *io, int busy)
{
    if (io->trim) {
        io->trim(io->ctx, busy);
    }
}
