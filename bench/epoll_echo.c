/* epoll_echo: the one-core reference for bench/run.sh.
 *
 * A minimal single-thread TCP echo server: one level-triggered epoll loop,
 * non-blocking sockets, one 64 KiB read buffer on the stack, every read
 * written straight back; only the part the kernel would not take is copied
 * into a per-connection buffer, and reading from that connection pauses
 * until the buffer drains. It does the least work an echo can do, so a
 * server's figures divided by this one's show what its abstractions cost.
 *
 * Usage: epoll_echo [--port N] [--host A]   (defaults: 0 = kernel picks,
 * 127.0.0.1). Prints "listening on HOST:PORT" on stdout. SIGINT or SIGTERM
 * stops it with exit code 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { read_size = 64 * 1024, max_events = 256 };

/* Bytes the kernel did not take yet; NULL while everything went out. */
struct pending {
  char* data;
  size_t len;
  size_t off;
};

static struct pending* conns; /* indexed by fd */
static size_t conns_cap;
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int grow(int fd) {
  size_t need = (size_t)fd + 1;
  if (need <= conns_cap)
    return 0;
  size_t cap = conns_cap ? conns_cap : 1024;
  while (cap < need)
    cap *= 2;
  struct pending* p = realloc(conns, cap * sizeof(*p));
  if (!p)
    return -1;
  memset(p + conns_cap, 0, (cap - conns_cap) * sizeof(*p));
  conns = p;
  conns_cap = cap;
  return 0;
}

static void drop(int fd) {
  free(conns[fd].data);
  memset(&conns[fd], 0, sizeof(conns[fd]));
  close(fd); /* also leaves the epoll set */
}

static void watch(int ep, int fd, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Writes what is left over; returns -1 if the connection broke. */
static int flush(int ep, int fd) {
  struct pending* p = &conns[fd];
  while (p->off < p->len) {
    ssize_t n = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
      return -1;
    }
    p->off += (size_t)n;
  }
  free(p->data);
  memset(p, 0, sizeof(*p));
  watch(ep, fd, EPOLLIN); /* drained: read again */
  return 0;
}

/* One read, echoed back; returns -1 if the connection is done. */
static int echo(int ep, int fd) {
  char buf[read_size];
  ssize_t n = recv(fd, buf, sizeof(buf), 0);
  if (n == 0)
    return -1;
  if (n < 0)
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
  size_t off = 0;
  while (off < (size_t)n) {
    ssize_t w = send(fd, buf + off, (size_t)n - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        return -1;
      break;
    }
    off += (size_t)w;
  }
  if (off < (size_t)n) {
    struct pending* p = &conns[fd];
    p->len = (size_t)n - off;
    p->off = 0;
    p->data = malloc(p->len);
    if (!p->data)
      return -1;
    memcpy(p->data, buf + off, p->len);
    /* Stop reading until the peer takes what it already sent us. */
    watch(ep, fd, EPOLLOUT);
  }
  return 0;
}

static void accept_all(int ep, int lfd) {
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        perror("epoll_echo: accept4");
      return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (grow(fd) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
      close(fd);
      continue;
    }
  }
}

int main(int argc, char** argv) {
  const char* host = "127.0.0.1";
  long port = 0;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      char* end = NULL;
      port = strtol(argv[++i], &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "epoll_echo: --port: '%s' is not 0-65535\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
      host = argv[++i];
    } else {
      fprintf(stderr, "usage: epoll_echo [--port N] [--host IPv4]\n");
      return 2;
    }
  }
  struct rlimit lim;
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  struct sockaddr_in addr = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "epoll_echo: --host: '%s' is not an IPv4 address\n", host);
    return 2;
  }
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(addr);
  if (lfd < 0 || bind(lfd, (struct sockaddr*)&addr, sizeof(addr)) != 0 ||
      listen(lfd, 1024) != 0 ||
      getsockname(lfd, (struct sockaddr*)&addr, &len) != 0) {
    perror("epoll_echo: cannot listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  printf("listening on %s:%u\n", host, (unsigned)ntohs(addr.sin_port));
  fflush(stdout);
  struct epoll_event events[max_events];
  while (!stop) {
    int n = epoll_wait(ep, events, max_events, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == lfd) {
        accept_all(ep, lfd);
        continue;
      }
      int rc = 0;
      if (conns[fd].data)
        rc = flush(ep, fd); /* EPOLLOUT, or EPOLLERR/HUP while paused */
      else
        rc = echo(ep, fd);
      if (rc != 0 || (conns[fd].data && (events[i].events & EPOLLERR)))
        drop(fd);
    }
  }
  for (size_t fd = 0; fd < conns_cap; ++fd)
    free(conns[fd].data);
  free(conns);
  return 0;
}
