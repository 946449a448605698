/*
 * A producer written for apache-ws's module, the way its library works:
 * it listens on a UNIX socket at the path Apache maps the URL to, takes
 * one connection per WebSocket client, reads whatever bytes arrive and
 * writes text back. No framing, no metadata: apache-ws's wire protocol.
 *
 *     raw_echo /var/www/public_html/websocket.ws
 *
 * It answers "echo: <bytes>" to what it reads, closes a client that sends
 * "bye", and sends "tick" to every client when one sends "all".
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CLIENTS 64

static int clients[MAX_CLIENTS];

static int write_all(int sock, const char *data, size_t length)
{
    while (length > 0) {
        ssize_t n = send(sock, data, length, MSG_NOSIGNAL);
        if (n < 0) {
            return -1;
        }
        data += n;
        length -= (size_t)n;
    }
    return 0;
}

static void drop(int i)
{
    shutdown(clients[i], SHUT_RDWR);
    close(clients[i]);
    clients[i] = -1;
}

int main(int argc, char **argv)
{
    struct sockaddr_un address;
    int server;

    if (argc != 2 || strlen(argv[1]) >= sizeof(address.sun_path)) {
        fprintf(stderr, "usage: raw_echo PATH\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    unlink(argv[1]);
    server = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    strcpy(address.sun_path, argv[1]);
    fcntl(server, F_SETFL, fcntl(server, F_GETFL, 0) | O_NONBLOCK);
    if (server < 0 || bind(server, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(server, 1024) < 0) {
        perror("raw_echo");
        return 1;
    }
    for (int i = 0; i < MAX_CLIENTS; i++) {
        clients[i] = -1;
    }
    for (;;) {
        fd_set fds;
        int top = server;

        FD_ZERO(&fds);
        FD_SET(server, &fds);
        for (int i = 0; i < MAX_CLIENTS; i++) {
            if (clients[i] >= 0) {
                FD_SET(clients[i], &fds);
                if (clients[i] > top) {
                    top = clients[i];
                }
            }
        }
        if (select(top + 1, &fds, NULL, NULL, NULL) < 0) {
            if (errno == EINTR) {
                continue;
            }
            return 1;
        }
        if (FD_ISSET(server, &fds)) {
            int sock = accept(server, NULL, NULL);
            for (int i = 0; sock >= 0 && i < MAX_CLIENTS; i++) {
                if (clients[i] < 0) {
                    clients[i] = sock;
                    sock = -1;
                }
            }
            if (sock >= 0) {
                close(sock);
            }
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            char buffer[4096], reply[4200];
            ssize_t n;

            if (clients[i] < 0 || !FD_ISSET(clients[i], &fds)) {
                continue;
            }
            n = recv(clients[i], buffer, sizeof(buffer) - 1, MSG_DONTWAIT);
            if (n <= 0) {
                if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    continue;
                }
                drop(i); /* the client went */
                continue;
            }
            buffer[n] = '\0';
            if (!strcmp(buffer, "bye")) {
                drop(i);
                continue;
            }
            if (!strcmp(buffer, "all")) {
                for (int k = 0; k < MAX_CLIENTS; k++) {
                    if (clients[k] >= 0) {
                        write_all(clients[k], "tick", 4);
                    }
                }
                continue;
            }
            memcpy(reply, "echo: ", 6);
            memcpy(reply + 6, buffer, (size_t)n);
            if (write_all(clients[i], reply, (size_t)n + 6) < 0) {
                drop(i);
            }
        }
    }
}
