/*
 * A direct-mode server written the way ouistiti's runtime receives its
 * clients: right after accept(2) on its UNIX socket it reads the client's
 * socket with recvmsg(MSG_DONTWAIT), and a read that finds nothing is no
 * client at all. It counts those as lost hand-offs; every client it does
 * receive gets one text frame, "ok", and is closed.
 *
 *     dontwait PATH COUNTS
 *
 * COUNTS is rewritten after every hand-off: "received N lost M".
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void save(const char *path, unsigned long received, unsigned long lost)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        return;
    }
    fprintf(f, "received %lu lost %lu\n", received, lost);
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv)
{
    static const unsigned char ok[] = {0x81, 0x02, 'o', 'k'};
    struct sockaddr_un address;
    unsigned long received = 0, lost = 0;
    int server;

    if (argc != 3 || strlen(argv[1]) >= sizeof(address.sun_path)) {
        fprintf(stderr, "usage: dontwait PATH COUNTS\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone before its "ok" */
    unlink(argv[1]);
    server = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    strcpy(address.sun_path, argv[1]);
    if (server < 0 || bind(server, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(server, 128) < 0) {
        perror("dontwait");
        return 1;
    }
    chmod(argv[1], 0777);
    save(argv[2], 0, 0);
    for (;;) {
        struct sockaddr_in6 peer;
        char control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&peer, sizeof(peer)};
        struct msghdr mh;
        struct cmsghdr *cm;
        int client = -1;
        int link = accept(server, NULL, NULL);

        if (link < 0) {
            continue;
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control;
        mh.msg_controllen = sizeof(control);
        if (recvmsg(link, &mh, MSG_DONTWAIT) > 0) {
            for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                    memcpy(&client, CMSG_DATA(cm), sizeof(int));
                }
            }
        }
        close(link);
        if (client < 0) {
            lost++;
        } else {
            received++;
            if (write(client, ok, sizeof(ok)) < 0) {
                perror("write");
            }
            close(client);
        }
        save(argv[2], received, lost);
    }
}
