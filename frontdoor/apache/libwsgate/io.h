/* Calls from Go through the function pointers mod_wsgate.c provides. */
#ifndef WSGATE_LIBWSGATE_IO_H
#define WSGATE_LIBWSGATE_IO_H
#include "../wsgate_module.h"

long wsgate_io_read(wsgate_io *io, char *buf, long len);
int wsgate_io_write(wsgate_io *io, const char *buf, long len);
int wsgate_io_flush(wsgate_io *io);
void wsgate_io_shutdown_write(wsgate_io *io);
int wsgate_io_stopping(wsgate_io *io);
void wsgate_call_log(wsgate_log_fn fn, int level, const char *msg);
void wsgate_call_subrequest(wsgate_subrequest_fn fn, void *r, const wsgate_subreq *in, wsgate_subresp *out);
void wsgate_call_free_subresp(wsgate_free_subresp_fn fn, wsgate_subresp *out);
void wsgate_call_schedule(wsgate_schedule_fn fn, uintptr_t id);
void wsgate_io_trim(wsgate_io *io, int busy);

#endif
