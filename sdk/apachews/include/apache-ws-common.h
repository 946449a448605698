/*
 * apache-ws-common.h: apache-ws's producer library API, served by wsgate's
 * libapachews (the Go producer SDK behind these names). A producer written
 * for apache-ws compiles against this header and links with -lapachews
 * (pkg-config apachews) unchanged, and speaks wsgate's framed producer
 * protocol: messages keep their boundaries and may be binary.
 *
 * What differs from apache-ws's library, for a program that relied on it:
 *   - apachews_event_read returns one whole message per IO event (a copy
 *     the caller frees with free(), with a NUL after its last byte);
 *   - a client that has gone is an IO event whose read returns
 *     ApacheWSConnectionClosed, as apache-ws's library reported it;
 *   - apachews_event_respond and apachews_client_send send text when the
 *     bytes are UTF-8 and binary otherwise;
 *   - a send or broadcast larger than the route takes (its
 *     max_message_size plus 64 KiB, which the gateway announces) writes
 *     nothing and returns -1 with errno EMSGSIZE;
 *   - apachews_client_get_socket returns INVALID_SOCKET: clients are
 *     multiplexed on the gateway's connections and have no socket of
 *     their own.
 */
#ifndef __apachews_COMMON_H__
#define __apachews_COMMON_H__

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int SOCKET;
typedef int32_t DWORD;
typedef bool BOOL;
#define EXPORT
#define INVALID_SOCKET (-1)
#define SOCKET_ERROR (-1)
#define SOCKET_DISCONNECTED 0

typedef enum apachews_event_type {
    ApacheWSInvalidEvent = 8000,
    ApacheWSAcceptEvent = 8001,
    ApacheWSCloseEvent = 8002,
    ApacheWSIOEvent = 8003
} apachews_event_type;

typedef enum apachews_status {
    ApacheWSSuccess = 0,
    ApacheWSNoData = 1001,
    ApacheWSConnectionClosed = 1002,
    ApacheWSOutOfMemory = 1003,
    ApacheWSError = 1004,
    ApacheWSWouldBlock = 1005,
    ApacheWSOther = 1006
} apachews_status;

typedef struct apachews_stream apachews_stream;
typedef struct apachews_event apachews_event;
typedef struct apachews_context apachews_context;
typedef struct apachews_client apachews_client;

/* Context: listens on path (a UNIX socket wsgate's route connects to). */
apachews_context *apachews_create(const char *const path);
void apachews_context_free(apachews_context *ctx);
void apachews_context_remove_client(apachews_context *ctx, const apachews_client *const client);
/* Blocks until the next event; NULL once the server is closed. */
apachews_event *apachews_server_next_event(apachews_context *ctx);
ssize_t apachews_server_broadcast(const apachews_context *const ctx, const uint8_t *const data, size_t length);
void apachews_server_close(apachews_context *ctx);
const char *apachews_client_get_language(const apachews_client *const client);

/* Event */
const apachews_context *apachews_event_get_context(const apachews_event *const event);
apachews_client *apachews_event_get_client(const apachews_event *const event);
apachews_event_type apachews_event_get_type(const apachews_event *const event);
void apachews_event_free(apachews_event *event);
apachews_status apachews_event_read(const apachews_event *const event, uint8_t **data, size_t *length);
ssize_t apachews_event_respond(const apachews_event *const event, uint8_t *data, size_t length);

/* Client */
ssize_t apachews_client_send(const apachews_client *const client, const void *const data, size_t length);
int apachews_client_close(apachews_client *const client);
SOCKET apachews_client_get_socket(const apachews_client *const client);
void apachews_client_free(apachews_client *const client);

/* Stream: a growing byte buffer. */
apachews_stream *apachews_stream_new(void);
int apachews_stream_resize(apachews_stream *stream, size_t hint);
void apachews_stream_free(apachews_stream *stream);
int apachews_stream_append(apachews_stream *stream, const char *const what, size_t length);
uint8_t *apachews_stream_data(const apachews_stream *const stream);
size_t apachews_stream_length(const apachews_stream *const stream);

/* OS */
void apachews_initialize_os(void);

#ifdef __cplusplus
}
#endif
#endif /* __apachews_COMMON_H__ */
