/*
 * tcpecho: the benchmark's physical limit. Bytes in, the same bytes out,
 * over edge-triggered epoll, with no framing, no handshake and no
 * allocation per message. One thread per CPU the process may run on, each
 * with its own SO_REUSEPORT listener and epoll instance, so that no lock
 * is shared. A loop never blocks: what a socket does not take is kept in
 * that connection's buffer and sent when epoll says the socket is
 * writable again (EPOLLOUT), and the connection is not read meanwhile, so
 * its client's next message waits in the kernel, as with any server.
 *
 *     tcpecho 127.0.0.1:9000
 *
 * It echoes the load generator's frames as they are (masked), which the
 * load generator reads like any frame. Written in C because the limit has
 * to be above every Go server in every row, including the cost of a Go
 * runtime's scheduler and poller.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (256 * 1024)

struct conn {
	int fd;
	int out;         /* registered for EPOLLOUT (and not EPOLLIN) */
	size_t off, len; /* unsent bytes: buf[off:len] */
	char buf[BUF];
};

static struct sockaddr_in addr;

static int listener(void)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(fd, 4096) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void drop(int ep, struct conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c);
}

/* flush sends what c holds; it returns 0 when all is sent, 1 when the
 * socket is full (wait for EPOLLOUT), -1 on an error. */
static int flush(struct conn *c)
{
	while (c->off < c->len) {
		ssize_t w = write(c->fd, c->buf + c->off, c->len - c->off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 1 : -1;
		}
		c->off += (size_t)w;
	}
	c->off = c->len = 0;
	return 0;
}

/* serve reads and echoes until the socket has nothing more to read or
 * will take nothing more; it returns -1 when the connection is over. */
static int serve(int ep, struct conn *c)
{
	for (;;) {
		int f = flush(c);
		if (f < 0)
			return -1;
		if (f > 0) {
			/* Full: stop reading until it drains. */
			struct epoll_event ev = {.events = EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = c};
			c->out = 1;
			return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
		ssize_t r = read(c->fd, c->buf, BUF);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return -1;
			if (!c->out)
				return 0; /* edge-triggered: the next bytes are the next event */
			struct epoll_event ev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.ptr = c};
			c->out = 0;
			return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
		}
		if (r == 0)
			return -1;
		c->off = 0;
		c->len = (size_t)r;
	}
}

static void *loop(void *arg)
{
	(void)arg;
	int ln = listener();
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ln < 0 || ep < 0) {
		perror("tcpecho");
		exit(1);
	}
	struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, ln, &lev);
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("epoll_wait");
			exit(1);
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				int fd;
				while ((fd = accept4(ln, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					struct conn *nc = malloc(sizeof *nc);
					if (nc == NULL) {
						close(fd);
						continue;
					}
					nc->fd = fd;
					nc->out = 0;
					nc->off = nc->len = 0;
					struct epoll_event ev = {.events = EPOLLIN | EPOLLET | EPOLLRDHUP, .data.ptr = nc};
					if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
						close(fd);
						free(nc);
						continue;
					}
					if (serve(ep, nc) < 0)
						drop(ep, nc);
				}
				continue;
			}
			if (serve(ep, c) < 0)
				drop(ep, c);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: tcpecho HOST:PORT\n");
		return 2;
	}
	char host[64];
	const char *colon = strrchr(argv[1], ':');
	if (colon == NULL || (size_t)(colon - argv[1]) >= sizeof host) {
		fprintf(stderr, "tcpecho: %s is not HOST:PORT\n", argv[1]);
		return 2;
	}
	memcpy(host, argv[1], (size_t)(colon - argv[1]));
	host[colon - argv[1]] = 0;
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "tcpecho: %s is not an IPv4 address\n", host);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	cpu_set_t set;
	int threads = 1;
	if (sched_getaffinity(0, sizeof set, &set) == 0)
		threads = CPU_COUNT(&set);
	pthread_t t;
	for (int i = 1; i < threads; i++)
		pthread_create(&t, NULL, loop, NULL);
	loop(NULL);
	return 0;
}
