/*
 * A chat producer in apache-ws's style: every message is broadcast to
 * every client; "lang" answers the client's Accept-Language.
 *
 *     chat /run/wsgate/chat.ws
 */
#include <apache-ws-common.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    apachews_context *ctx;
    apachews_event *event;
    apachews_stream *line;

    if (argc != 2) {
        fprintf(stderr, "usage: chat PATH\n");
        return 2;
    }
    ctx = apachews_create(argv[1]);
    if (ctx == NULL) {
        return 1;
    }
    line = apachews_stream_new();
    while ((event = apachews_server_next_event(ctx)) != NULL) {
        apachews_client *client = apachews_event_get_client(event);
        uint8_t *data;
        size_t length;

        if (apachews_event_get_type(event) == ApacheWSIOEvent) {
            apachews_status status = apachews_event_read(event, &data, &length);
            if (status == ApacheWSSuccess) {
                if (length == 4 && memcmp(data, "lang", 4) == 0) {
                    const char *lang = apachews_client_get_language(client);
                    apachews_client_send(client, lang ? lang : "none", strlen(lang ? lang : "none"));
                } else {
                    /* "said: " + the message, built in a stream. */
                    apachews_stream *out = apachews_stream_new();
                    apachews_stream_append(out, "said: ", 6);
                    apachews_stream_append(out, (const char *)data, length);
                    apachews_server_broadcast(ctx, apachews_stream_data(out), apachews_stream_length(out));
                    apachews_stream_free(out);
                }
                free(data);
            } else if (status == ApacheWSConnectionClosed) {
                apachews_client_close(client);
                apachews_client_free(client);
            }
        }
        apachews_event_free(event);
    }
    apachews_stream_free(line);
    apachews_context_free(ctx);
    return 0;
}
