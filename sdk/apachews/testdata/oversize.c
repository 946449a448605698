/*
 * A producer against apache-ws's library that sends what a client asks
 * for ("send N" or "broadcast N" bytes) and answers "refused" when the
 * library refuses the send for its size (-1 with errno EMSGSIZE).
 *
 *     oversize /run/wsgate/oversize.ws
 */
#include <apache-ws-common.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    apachews_context *ctx;
    apachews_event *event;

    if (argc != 2) {
        fprintf(stderr, "usage: oversize PATH\n");
        return 2;
    }
    apachews_initialize_os();
    ctx = apachews_create(argv[1]);
    if (ctx == NULL) {
        return 1;
    }
    while ((event = apachews_server_next_event(ctx)) != NULL) {
        apachews_client *client = apachews_event_get_client(event);
        uint8_t *data;
        size_t length;

        if (apachews_event_get_type(event) == ApacheWSIOEvent) {
            switch (apachews_event_read(event, &data, &length)) {
            case ApacheWSSuccess: {
                char what[16];
                size_t n = 0;
                ssize_t sent;
                uint8_t *payload;

                if (sscanf((const char *)data, "%15s %zu", what, &n) != 2) {
                    n = 0;
                }
                payload = malloc(n + 1);
                memset(payload, 'x', n);
                errno = 0;
                if (strcmp(what, "send") == 0) {
                    sent = apachews_event_respond(event, payload, n);
                } else {
                    sent = apachews_server_broadcast(apachews_event_get_context(event), payload, n);
                }
                if (sent < 0 && errno == EMSGSIZE) {
                    apachews_event_respond(event, (uint8_t *)"refused", 7);
                }
                free(payload);
                free(data);
                break;
            }
            case ApacheWSConnectionClosed:
            case ApacheWSError:
                apachews_client_close(client);
                apachews_client_free(client);
                break;
            default:
                break;
            }
        }
        apachews_event_free(event);
    }
    apachews_context_free(ctx);
    return 0;
}
