/*
 * echo_server.c -- an epoll echo server on loopback that closes idle
 * clients, with one callout per connection as its idle timer.
 *
 * The callouts live on an external-clock domain (CALLOUT_CLOCK_EXTERNAL):
 * the domain has no thread of its own; its timer file descriptor sits in the
 * epoll set next to the sockets, and the loop calls callout_domain_run()
 * when it is readable, so the idle handlers run in the loop thread.  That
 * makes closing a connection from its handler trivially safe: no other
 * thread can be using the socket.  (On a threaded domain the handler runs on
 * a softclock thread; it would have to hand the close to the loop thread,
 * or the loop would have to callout_halt() before every close.)
 *
 * Every time a client sends something, its idle callout is reset.  The
 * timeout in ticks is rounded up and one tick is added, so a client is never
 * closed before it has been idle for the full timeout; it is closed within
 * the timeout plus one tick (plus the loop's wake-up latency).
 *
 *   echo_server [--port N] [--idle-ms N] [--hz N] [--max-seconds N] [--quiet]
 *
 * Listens on 127.0.0.1 only; --port 0 (the default) picks a free port.  The
 * first line on stdout is "listening on 127.0.0.1:PORT ...".  Exits 0 on
 * SIGINT/SIGTERM or after --max-seconds, closing every connection.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <callout/callout.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
  struct conn *prev, *next; /* every open connection, for shutdown */
  int fd;
  callout_t idle;         /* the idle timer */
  struct timespec active; /* when the client last sent something */
  unsigned long long id;
};

static callout_domain_t *dom;
static int epfd;
static int idle_ticks;
static bool quiet;
static unsigned long nopen, nclosed_idle, nclosed_eof;
static struct conn conns = {.prev = &conns, .next = &conns}; /* list head */

static double ms_since(const struct timespec *t) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)(now.tv_sec - t->tv_sec) * 1e3 + (double)(now.tv_nsec - t->tv_nsec) / 1e6;
}

/* Closes c and frees it.  Called from the loop, or from c's own idle
 * handler (which runs in the loop thread too).  halt never waits here: the
 * only thread that runs handlers of this domain is the caller. */
static void close_conn(struct conn *c) {
  callout_halt(&c->idle, NULL);
  callout_destroy(&c->idle);
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->prev->next = c->next;
  c->next->prev = c->prev;
  free(c);
  nopen--;
}

/* The idle timer fired: the client said nothing for the whole timeout. */
static void idle_timeout(void *arg) {
  struct conn *c = arg;
  if (!quiet) printf("client %llu: idle for %.1f ms, closing\n", c->id, ms_since(&c->active));
  nclosed_idle++;
  close_conn(c); /* destroys the callout from its own handler: allowed */
}

static void touch(struct conn *c) {
  clock_gettime(CLOCK_MONOTONIC, &c->active);
  callout_reset(&c->idle, idle_ticks, idle_timeout, c);
}

static void accept_clients(int lfd) {
  static unsigned long long next_id = 1;
  for (;;) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) perror("echo_server: accept4");
      return;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->id = next_id++;
    callout_init_domain(&c->idle, CALLOUT_MPSAFE, dom);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
      perror("echo_server: epoll_ctl");
      callout_destroy(&c->idle);
      close(fd);
      free(c);
      continue;
    }
    c->next = &conns;
    c->prev = conns.prev;
    conns.prev->next = c;
    conns.prev = c;
    nopen++;
    touch(c); /* a silent client is idle from the moment it connects */
    if (!quiet) printf("client %llu: connected\n", c->id);
  }
}

/* Echoes what the client sent; false when the connection must close. */
static bool serve(struct conn *c) {
  char buf[4096];
  for (;;) {
    ssize_t n = read(c->fd, buf, sizeof buf);
    if (n > 0) {
      touch(c);
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(c->fd, buf + off, (size_t)(n - off));
        if (w < 0) {
          if (errno == EINTR) continue;
          return false; /* a slow reader is not worth buffering for here */
        }
        off += w;
      }
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

static void usage(void) {
  fprintf(stderr, "usage: echo_server [--port N] [--idle-ms N] [--hz N] [--max-seconds N] [--quiet]\n");
  exit(2);
}

static long number(const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) usage();
  return v;
}

int main(int argc, char **argv) {
  long port = 0, idle_ms = 1000, hz = 1000, max_seconds = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quiet") == 0) {
      quiet = true;
      continue;
    }
    if (i + 1 >= argc) usage();
    if (strcmp(argv[i], "--port") == 0)
      port = number(argv[++i], 0, 65535);
    else if (strcmp(argv[i], "--idle-ms") == 0)
      idle_ms = number(argv[++i], 1, 86400000);
    else if (strcmp(argv[i], "--hz") == 0)
      hz = number(argv[++i], 1, 1000000);
    else if (strcmp(argv[i], "--max-seconds") == 0)
      max_seconds = number(argv[++i], 0, 86400);
    else
      usage();
  }
  setvbuf(stdout, NULL, _IOLBF, 0);

  /* The domain: external clock, so no thread; the loop runs the handlers. */
  struct callout_domain_config cfg;
  callout_domain_config_init(&cfg);
  cfg.clock = CALLOUT_CLOCK_EXTERNAL;
  cfg.ncpu = 1;
  cfg.hz = (unsigned)hz;
  int err = callout_domain_create(&cfg, &dom);
  if (err != 0) {
    fprintf(stderr, "echo_server: callout_domain_create: %s\n", strerror(err));
    return 1;
  }
  /* ceil(idle_ms * hz / 1000) + 1 ticks: never early, at most a tick late. */
  long long t = ((long long)idle_ms * hz + 999) / 1000 + 1;
  idle_ticks = t > 0x7fffffff ? 0x7fffffff : (int)t;

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 128) != 0) {
    perror("echo_server: bind/listen on 127.0.0.1");
    return 1;
  }
  socklen_t alen = sizeof addr;
  getsockname(lfd, (struct sockaddr *)&addr, &alen);

  /* SIGINT/SIGTERM arrive through a signalfd in the same epoll set. */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  sigprocmask(SIG_BLOCK, &sigs, NULL);
  int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);

  epfd = epoll_create1(EPOLL_CLOEXEC);
  static int lfd_tag, sfd_tag, tfd_tag; /* addresses tell the fds apart */
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lfd_tag};
  epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
  ev.data.ptr = &sfd_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
  ev.data.ptr = &tfd_tag;
  epoll_ctl(epfd, EPOLL_CTL_ADD, callout_domain_fd(dom), &ev);

  printf("listening on 127.0.0.1:%u (idle timeout %ld ms = %d ticks at hz %ld)\n", ntohs(addr.sin_port),
         idle_ms, idle_ticks, hz);

  struct timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  bool running = true;
  while (running) {
    int timeout = -1;
    if (max_seconds > 0) {
      double left = (double)max_seconds * 1e3 - ms_since(&start);
      if (left <= 0) break;
      timeout = (int)left + 1;
    }
    struct epoll_event events[64];
    int n = epoll_wait(epfd, events, 64, timeout);
    if (n < 0 && errno != EINTR) {
      perror("echo_server: epoll_wait");
      break;
    }
    bool timer_due = false;
    for (int i = 0; i < n; i++) {
      void *p = events[i].data.ptr;
      if (p == &lfd_tag) {
        accept_clients(lfd);
      } else if (p == &sfd_tag) {
        running = false;
      } else if (p == &tfd_tag) {
        timer_due = true; /* after the sockets: a handler may free a conn of this batch */
      } else {
        struct conn *c = p;
        if (!serve(c) || (events[i].events & (EPOLLHUP | EPOLLERR))) {
          if (!quiet) printf("client %llu: disconnected\n", c->id);
          nclosed_eof++;
          close_conn(c);
        }
      }
    }
    if (timer_due) callout_domain_run(dom); /* the idle handlers run here */
  }

  printf("shutting down: %lu open, %lu closed idle, %lu disconnected\n", nopen, nclosed_idle, nclosed_eof);
  while (conns.next != &conns) close_conn(conns.next);
  err = callout_domain_destroy(dom); /* EBUSY if a callout were left */
  if (err != 0) {
    fprintf(stderr, "echo_server: callout_domain_destroy: %s\n", strerror(err));
    return 1;
  }
  close(lfd);
  close(sfd);
  close(epfd);
  return 0;
}
