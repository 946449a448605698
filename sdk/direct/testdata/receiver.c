/*
 * A direct-mode server written the way ouistiti's are: it listens on a
 * UNIX socket, and for each connection from the gateway receives the
 * client's socket with recvmsg (SCM_RIGHTS) and the client's address in
 * the message's bytes; then it speaks WebSocket frames on that socket
 * itself. It also reads the rest of the gateway's connection, the bytes
 * the client had sent past its request head (wsgate's documented
 * addition), before the socket's own.
 *
 *     receiver PATH
 *
 * Each text message is answered "from A.B.C.D: <text>"; a close frame is
 * answered with a close frame and ends the client.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* The client's bytes: first what the gateway passed along, then the socket. */
struct input {
    int fd;
    unsigned char pre[65536];
    size_t pre_len, pre_at;
};

static int get(struct input *in, unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t r;
        if (in->pre_at < in->pre_len) {
            size_t k = in->pre_len - in->pre_at < n ? in->pre_len - in->pre_at : n;
            memcpy(p, in->pre + in->pre_at, k);
            in->pre_at += k;
            p += k;
            n -= k;
            continue;
        }
        r = read(in->fd, p, n);
        if (r <= 0) {
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void send_frame(int fd, int opcode, const unsigned char *p, size_t n)
{
    unsigned char h[4];
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        h[1] = (unsigned char)n;
    } else {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    }
    if (write(fd, h, hl) < 0 || write(fd, p, n) < 0) {
        perror("write");
    }
}

static void serve(struct input *in, const char *who)
{
    static unsigned char msg[70000], reply[70100];
    size_t have = 0; /* of a fragmented text message */
    for (;;) {
        unsigned char h[2], ext[8], mask[4];
        uint64_t len;
        int opcode;

        if (get(in, h, 2) < 0) {
            return;
        }
        opcode = h[0] & 0x0f;
        len = h[1] & 0x7f;
        if (len == 126) {
            if (get(in, ext, 2) < 0) {
                return;
            }
            len = ((uint64_t)ext[0] << 8) | ext[1];
        } else if (len == 127) {
            return; /* not needed here */
        }
        if (opcode >= 0x8) {
            have = 0; /* a control frame's payload goes at the start; a fragmented message is not resumed here */
        }
        if (have + len > sizeof(msg) || !(h[1] & 0x80) || get(in, mask, 4) < 0 || get(in, msg + have, (size_t)len) < 0) {
            return;
        }
        for (uint64_t i = 0; i < len; i++) {
            msg[have + i] ^= mask[i % 4];
        }
        if (opcode == 0x8) {
            send_frame(in->fd, 0x8, msg, len < 2 ? (size_t)len : 2);
            return;
        }
        if (opcode == 0x9) {
            send_frame(in->fd, 0xA, msg, (size_t)len);
            continue;
        }
        if (opcode == 0x1 || opcode == 0x0) {
            have += (size_t)len;
            if (h[0] & 0x80) { /* FIN: the message is whole */
                int k = snprintf((char *)reply, sizeof(reply), "from %s: ", who);
                memcpy(reply + k, msg, have);
                send_frame(in->fd, 0x1, reply, (size_t)k + have);
                have = 0;
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_un address;
    int server;

    if (argc != 2 || strlen(argv[1]) >= sizeof(address.sun_path)) {
        fprintf(stderr, "usage: receiver PATH\n");
        return 2;
    }
    signal(SIGCHLD, SIG_IGN);
    unlink(argv[1]);
    server = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    strcpy(address.sun_path, argv[1]);
    if (server < 0 || bind(server, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(server, 128) < 0) {
        perror("receiver");
        return 1;
    }
    chmod(argv[1], 0777);
    for (;;) {
        struct input *in;
        struct sockaddr_in peer;
        char control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {&peer, sizeof(peer)};
        struct msghdr mh;
        struct cmsghdr *cm;
        char who[INET_ADDRSTRLEN];
        ssize_t r;
        int link = accept(server, NULL, NULL);

        if (link < 0) {
            continue;
        }
        in = calloc(1, sizeof(*in));
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control;
        mh.msg_controllen = sizeof(control);
        in->fd = -1;
        if (recvmsg(link, &mh, 0) > 0) {
            for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                    memcpy(&in->fd, CMSG_DATA(cm), sizeof(int));
                }
            }
        }
        while (in->pre_len < sizeof(in->pre) && (r = read(link, in->pre + in->pre_len, sizeof(in->pre) - in->pre_len)) > 0) {
            in->pre_len += (size_t)r;
        }
        close(link);
        if (in->fd < 0) {
            free(in);
            continue;
        }
        inet_ntop(AF_INET, &peer.sin_addr, who, sizeof(who));
        if (fork() == 0) {
            close(server);
            serve(in, who);
            close(in->fd);
            _exit(0);
        }
        close(in->fd);
        free(in);
    }
}
