/*
 * An echo producer written against apache-ws's library, the way its
 * samples are: dequeue events, read IO events, respond, close clients
 * that have gone. Built unchanged against wsgate's libapachews.
 *
 *     echo /run/wsgate/echo.ws
 */
#include <apache-ws-common.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    apachews_context *ctx;
    apachews_event *event;

    if (argc != 2) {
        fprintf(stderr, "usage: echo PATH\n");
        return 2;
    }
    apachews_initialize_os();
    ctx = apachews_create(argv[1]);
    if (ctx == NULL) {
        fprintf(stderr, "echo: cannot listen on %s\n", argv[1]);
        return 1;
    }
    while ((event = apachews_server_next_event(ctx)) != NULL) {
        apachews_client *client = apachews_event_get_client(event);
        uint8_t *data;
        size_t length;

        switch (apachews_event_get_type(event)) {
        case ApacheWSAcceptEvent:
            /* A new client: it could be kept in a list here. */
            break;
        case ApacheWSIOEvent:
            switch (apachews_event_read(event, &data, &length)) {
            case ApacheWSSuccess:
                if (length == 4 && memcmp(data, "quit", 4) == 0) {
                    apachews_client_close(client);
                    apachews_client_free(client);
                } else if (apachews_event_respond(event, data, length) != (ssize_t)length) {
                    fprintf(stderr, "echo: respond failed\n");
                }
                free(data);
                break;
            case ApacheWSConnectionClosed:
            case ApacheWSError:
                /* As apache-ws's samples insist: close the client. */
                apachews_client_close(client);
                apachews_client_free(client);
                break;
            default:
                break;
            }
            break;
        default:
            break;
        }
        apachews_event_free(event);
    }
    apachews_context_free(ctx);
    return 0;
}
