/*
 * rexmt.c -- a kernel-style module: retransmit and keepalive timers for a
 * few TCP-like connections, written against a kernel's timer KPI and built
 * three times, against <callout/compat/freebsd.h> (-DKPI_FREEBSD),
 * <callout/compat/netbsd.h> (-DKPI_NETBSD) and <callout/compat/linux.h>
 * (-DKPI_LINUX).
 *
 * The block of #if below is the whole port: it maps the module's five timer
 * operations (init, arm, stop, drain, and the handler's shape) onto each
 * kernel's own calls, the way a driver shared between kernels does.  The
 * module body below it is kernel code as it would be in a kernel: it arms
 * and stops timers from its handlers and from its callers, reads the
 * kernel's tick counter and hz, and frees nothing it must not.
 *
 * Protocol (times in ticks, hz ticks a second):
 *   - a sent segment arms the retransmit timer for RTO = hz/2 << shift; each
 *     expiry retransmits and doubles the RTO; after REXMT_MAX retransmits
 *     the connection is dropped;
 *   - an open connection arms keepalive for KEEP_IDLE = 2 * hz; any traffic
 *     re-arms it; while data is outstanding an expiry only re-arms it; else
 *     it sends a probe every KEEP_INTVL = hz/2, and drops the connection
 *     after KEEP_CNT unanswered probes;
 *   - an ack clears the outstanding data, the backoff and the probes.
 */
#if defined(KPI_FREEBSD)
/* FreeBSD: callout(9).  callout_init(c, 1) is MP-safe; no destroy. */
#include <callout/compat/freebsd.h>
typedef struct callout ktimer_t;
#define KT_HANDLER(fn, field) \
  static void fn##_kt(void *arg) { fn((struct conn *)arg); }
#define kt_init(cp, field, fn) callout_init(&(cp)->field, 1)
#define kt_arm(cp, field, fn, delay) callout_reset(&(cp)->field, (delay), fn##_kt, (cp))
#define kt_stop(cp, field) callout_stop(&(cp)->field)
#define kt_drain(cp, field) callout_drain(&(cp)->field)
#define kt_now() ((long)ticks)
#define kt_hz ((int)hz)
#elif defined(KPI_NETBSD)
/* NetBSD: callout(9).  The handler is set once; destroy after a halt. */
#include <callout/compat/netbsd.h>
typedef callout_t ktimer_t;
#define KT_HANDLER(fn, field) \
  static void fn##_kt(void *arg) { fn((struct conn *)arg); }
#define kt_init(cp, field, fn) \
  (callout_init(&(cp)->field, CALLOUT_MPSAFE), callout_setfunc(&(cp)->field, fn##_kt, (cp)))
#define kt_arm(cp, field, fn, delay) callout_schedule(&(cp)->field, (delay))
#define kt_stop(cp, field) callout_stop(&(cp)->field)
#define kt_drain(cp, field) (callout_halt(&(cp)->field, NULL), callout_destroy(&(cp)->field))
#define kt_now() ((long)getticks())
#define kt_hz hz
#elif defined(KPI_LINUX)
/* Linux: struct timer_list.  Absolute expiry in jiffies; no destroy. */
#define CALLOUT_LINUX_HZ 100 /* the driver's domain runs at 100 Hz */
#include <callout/compat/linux.h>
typedef struct timer_list ktimer_t;
#define KT_HANDLER(fn, field)                   \
  static void fn##_kt(struct timer_list *t) {   \
    struct conn *cp = from_timer(cp, t, field); \
    fn(cp);                                     \
  }
#define kt_init(cp, field, fn) timer_setup(&(cp)->field, fn##_kt, 0)
#define kt_arm(cp, field, fn, delay) mod_timer(&(cp)->field, jiffies + (unsigned long)(delay))
#define kt_stop(cp, field) del_timer(&(cp)->field)
#define kt_drain(cp, field) timer_shutdown_sync(&(cp)->field)
#define kt_now() ((long)jiffies)
#define kt_hz HZ
#else
#error "define KPI_FREEBSD, KPI_NETBSD or KPI_LINUX"
#endif

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "rexmt.h"

#define REXMT_MAX 3 /* retransmits before the connection is dropped */
#define KEEP_CNT 3  /* unanswered probes before the connection is dropped */
#define RTO_INIT (kt_hz / 2)
#define KEEP_IDLE (2 * kt_hz)
#define KEEP_INTVL (kt_hz / 2)

struct conn {
  int id;
  int open;
  int outstanding; /* unacknowledged data in flight */
  int rxtshift;    /* retransmits since the last ack */
  int probes;      /* keepalive probes since the last traffic */
  ktimer_t rexmt;
  ktimer_t keep;
};

static struct conn *conns;
static int nconns;

static void conn_log(const struct conn *cp, const char *fmt, ...) {
  va_list ap;
  printf("%5ld conn%d ", kt_now(), cp->id);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

/* Both timers off; the handlers may be running (a drop from a handler). */
static void conn_drop(struct conn *cp, const char *why) {
  kt_stop(cp, rexmt);
  kt_stop(cp, keep);
  cp->open = 0;
  conn_log(cp, "drop: %s", why);
}

static void conn_rexmt_timeout(struct conn *cp);
static void conn_keep_timeout(struct conn *cp);
KT_HANDLER(conn_rexmt_timeout, rexmt)
KT_HANDLER(conn_keep_timeout, keep)

static void conn_rexmt_timeout(struct conn *cp) {
  if (cp->rxtshift == REXMT_MAX) {
    conn_drop(cp, "retransmit");
    return;
  }
  cp->rxtshift++;
  conn_log(cp, "rexmt %d next %d", cp->rxtshift, RTO_INIT << cp->rxtshift);
  kt_arm(cp, rexmt, conn_rexmt_timeout, RTO_INIT << cp->rxtshift);
}

static void conn_keep_timeout(struct conn *cp) {
  if (cp->outstanding) {
    /* The retransmit timer watches the peer meanwhile. */
    conn_log(cp, "keepalive: data outstanding");
    kt_arm(cp, keep, conn_keep_timeout, KEEP_IDLE);
    return;
  }
  if (cp->probes == KEEP_CNT) {
    conn_drop(cp, "keepalive");
    return;
  }
  cp->probes++;
  conn_log(cp, "keepalive probe %d", cp->probes);
  kt_arm(cp, keep, conn_keep_timeout, KEEP_INTVL);
}

void rexmt_load(int n) {
  conns = calloc((size_t)n, sizeof *conns);
  if (conns == NULL) abort();
  nconns = n;
  for (int i = 0; i < n; i++) {
    conns[i].id = i;
    kt_init(&conns[i], rexmt, conn_rexmt_timeout);
    kt_init(&conns[i], keep, conn_keep_timeout);
  }
}

void rexmt_open(int id) {
  struct conn *cp = &conns[id];
  cp->open = 1;
  conn_log(cp, "open");
  kt_arm(cp, keep, conn_keep_timeout, KEEP_IDLE);
}

void rexmt_send(int id) {
  struct conn *cp = &conns[id];
  if (!cp->open) return;
  conn_log(cp, "send");
  if (!cp->outstanding) kt_arm(cp, rexmt, conn_rexmt_timeout, RTO_INIT << cp->rxtshift);
  cp->outstanding = 1;
  kt_arm(cp, keep, conn_keep_timeout, KEEP_IDLE);
}

void rexmt_ack(int id) {
  struct conn *cp = &conns[id];
  if (!cp->open) return;
  conn_log(cp, "ack");
  kt_stop(cp, rexmt);
  cp->outstanding = 0;
  cp->rxtshift = 0;
  cp->probes = 0;
  kt_arm(cp, keep, conn_keep_timeout, KEEP_IDLE);
}

void rexmt_close(int id) {
  struct conn *cp = &conns[id];
  if (!cp->open) return;
  kt_stop(cp, rexmt);
  kt_stop(cp, keep);
  cp->open = 0;
  conn_log(cp, "close");
}

void rexmt_unload(void) {
  /* Every timer is drained before the memory goes: no handler runs or
   * will run on it after this loop. */
  for (int i = 0; i < nconns; i++) {
    kt_drain(&conns[i], rexmt);
    kt_drain(&conns[i], keep);
  }
  printf("%5ld unload\n", kt_now());
  free(conns);
  conns = NULL;
  nconns = 0;
}
