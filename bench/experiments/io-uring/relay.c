// Experiment (not part of Gatehouse): a byte-for-byte TCP relay between each
// client and a new connection to 127.0.0.1:5432, on one thread, with
// epoll + recv/send or with io_uring (liburing), to measure what each I/O
// model costs per pgbench transaction; see run.sh.
//
//   relay epoll|uring|uring-defer|uring-coop PORT
//
// uring-defer sets the ring up with SINGLE_ISSUER | DEFER_TASKRUN (task work
// runs only when this thread waits for completions), uring-coop with
// SINGLE_ISSUER | COOP_TASKRUN. Sends are assumed to complete whole (pgbench's
// messages are small); a short send ends the program.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>

#define MAXFD 4096
#define BUF 65536
static int peer[MAXFD];
static char *bufs[MAXFD];
static unsigned conn[MAXFD], peerid[MAXFD], nextid = 1;

static int upstream(void) {
  int u = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5432)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (connect(u, (void *)&a, sizeof a) < 0) { perror("connect"); exit(1); }
  int one = 1; setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return u;
}

static int listener(int port) {
  int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(l, (void *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
  listen(l, 512);
  return l;
}

static void pair(int c) {
  int one = 1; setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int u = upstream();
  peer[c] = u; peer[u] = c;
  conn[c] = nextid++; conn[u] = nextid++; peerid[c] = conn[u]; peerid[u] = conn[c];
  if (!bufs[c]) bufs[c] = malloc(BUF);
  if (!bufs[u]) bufs[u] = malloc(BUF);
}

static void run_epoll(int l) {
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  struct epoll_event evs[128];
  for (;;) {
    int n = epoll_wait(ep, evs, 128, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        int c = accept4(l, NULL, NULL, 0);
        pair(c);
        fcntl(c, F_SETFL, O_NONBLOCK); fcntl(peer[c], F_SETFL, O_NONBLOCK);
        struct epoll_event e1 = {.events = EPOLLIN, .data.fd = c};
        struct epoll_event e2 = {.events = EPOLLIN, .data.fd = peer[c]};
        epoll_ctl(ep, EPOLL_CTL_ADD, c, &e1); epoll_ctl(ep, EPOLL_CTL_ADD, peer[c], &e2);
        continue;
      }
      ssize_t r = recv(fd, bufs[fd], BUF, 0);
      if (r == 0 || (r < 0 && errno != EAGAIN)) { int p = peer[fd]; close(fd); close(p); continue; }
      if (r < 0) continue;
      ssize_t off = 0;
      while (off < r) { ssize_t w = send(peer[fd], bufs[fd] + off, r - off, MSG_NOSIGNAL); if (w > 0) off += w; else if (errno != EAGAIN) break; }
    }
  }
}

enum { ACCEPT = 1, RECV = 2, SEND = 3 };
#define UD(kind, fd, extra) (((unsigned long long)(kind) << 56) | ((unsigned long long)(extra) << 24) | (unsigned)(fd))

static void run_uring(int l, unsigned flags) {
  struct io_uring ring;
  struct io_uring_params p = {.flags = flags};
  int e = io_uring_queue_init_params(1024, &ring, &p);
  if (e < 0) { fprintf(stderr, "queue_init: %s\n", strerror(-e)); exit(1); }
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  io_uring_prep_accept(s, l, NULL, NULL, 0); io_uring_sqe_set_data64(s, UD(ACCEPT, l, 0));
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *cqe; unsigned head, seen = 0;
    io_uring_for_each_cqe(&ring, head, cqe) {
      seen++;
      unsigned long long ud = cqe->user_data; int kind = ud >> 56, fd = ud & 0xffffff; int res = cqe->res;
      if (kind == ACCEPT) {
        int c = res; pair(c);
        s = io_uring_get_sqe(&ring); io_uring_prep_recv(s, c, bufs[c], BUF, 0); io_uring_sqe_set_data64(s, UD(RECV, c, 0));
        s = io_uring_get_sqe(&ring); io_uring_prep_recv(s, peer[c], bufs[peer[c]], BUF, 0); io_uring_sqe_set_data64(s, UD(RECV, peer[c], 0));
        s = io_uring_get_sqe(&ring); io_uring_prep_accept(s, l, NULL, NULL, 0); io_uring_sqe_set_data64(s, UD(ACCEPT, l, 0));
      } else if (kind == RECV) {
        if (res <= 0) { if (conn[peer[fd]] == peerid[fd]) shutdown(peer[fd], SHUT_RDWR); conn[fd] = 0; close(fd); continue; }
        s = io_uring_get_sqe(&ring); io_uring_prep_send(s, peer[fd], bufs[fd], res, MSG_NOSIGNAL);
        io_uring_sqe_set_data64(s, UD(SEND, fd, res));
      } else {
        unsigned want = (ud >> 24) & 0xffffffff;
        if (res < 0) continue;
        if ((unsigned)res < want) { fprintf(stderr, "short send\n"); exit(1); }
        s = io_uring_get_sqe(&ring); io_uring_prep_recv(s, fd, bufs[fd], BUF, 0); io_uring_sqe_set_data64(s, UD(RECV, fd, 0));
      }
    }
    io_uring_cq_advance(&ring, seen);
  }
}

int main(int argc, char **argv) {
  int l = listener(atoi(argv[2]));
  if (!strcmp(argv[1], "epoll")) run_epoll(l);
  else if (!strcmp(argv[1], "uring")) run_uring(l, 0);
  else if (!strcmp(argv[1], "uring-defer")) run_uring(l, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN);
  else if (!strcmp(argv[1], "uring-coop")) run_uring(l, IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SINGLE_ISSUER);
  return 0;
}
