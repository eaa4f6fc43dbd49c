/*
 * callout/compat/linux.h -- Linux's struct timer_list KPI on libcallout.
 *
 * Code written for the Linux kernel's <linux/timer.h> and <linux/jiffies.h>
 * compiles against this header: timer_setup() with handlers that take the
 * struct timer_list * and from_timer(); mod_timer(), add_timer(),
 * timer_pending(), timer_delete()/del_timer() (whether it was pending),
 * timer_delete_sync()/del_timer_sync(), timer_shutdown() and
 * timer_shutdown_sync() (6.2: later arms are ignored); jiffies, HZ,
 * msecs_to_jiffies(), time_after() and friends.  It includes
 * <callout/callout.h>, so the native API is there too.
 *
 * Where it differs from Linux (callout_compat(3), docs/PORTING.md):
 *   - struct timer_list is larger than Linux's 40 bytes (it embeds a
 *     callout_t: 12 pointers, plus function, expires and flags).  Its
 *     fields function and expires are Linux's; the rest is opaque.
 *   - Handlers run on the domain's softclock threads, not in softirq
 *     context: they may take sleeping locks (and must not call
 *     timer_delete_sync() on their own timer: misuse, an abort with a
 *     message, where Linux would never return).
 *   - A timer lives in the calling thread's domain at timer_setup() (the
 *     domain of the handler it runs, else the default domain);
 *     timer_setup_on() picks one.  jiffies count that domain's ticks,
 *     scaled to HZ; HZ is a compile-time constant, 1000 unless you define
 *     CALLOUT_LINUX_HZ (set the domain's hz to match to avoid rounding).
 *   - TIMER_DEFERRABLE and TIMER_IRQSAFE are accepted and change nothing;
 *     TIMER_PINNED keeps the timer on the CPU it was set up on.
 *   - No DEFINE_TIMER (a static initialiser cannot set up a callout);
 *     call timer_setup() at start-up instead.
 *   - No destroy: a timer that is neither pending nor running may be freed
 *     (after timer_delete_sync() or timer_shutdown_sync(), for example).
 * timer_delete needs a macro, because glibc's <time.h> declares POSIX
 * timer_delete(timer_t): in C it dispatches on the argument's type
 * (_Generic), in C++ it is an overload; both POSIX calls keep working.
 */
#ifndef CALLOUT_COMPAT_LINUX_H
#define CALLOUT_COMPAT_LINUX_H

#include <callout/callout.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef CALLOUT_LINUX_HZ
#define CALLOUT_LINUX_HZ 1000
#endif
#define HZ CALLOUT_LINUX_HZ

/* Linux's timer flags (its values). */
#define TIMER_DEFERRABLE 0x00080000u /* accepted; the timer still wakes the softclock */
#define TIMER_PINNED 0x00100000u     /* stays on the CPU it was set up on */
#define TIMER_IRQSAFE 0x00200000u    /* accepted; no interrupts here */

struct timer_list {
  callout_t _callout;                    /* opaque */
  void (*function)(struct timer_list *); /* the handler */
  unsigned long expires;                 /* absolute, in jiffies */
  unsigned int flags;                    /* TIMER_* given to timer_setup */
};

/* ---- The library side (CALLOUT_1.1); use the Linux names below ---------- */

CALLOUT_API void callout_linux_setup(callout_t *c, unsigned flags, callout_domain_t *d);
CALLOUT_API int callout_linux_mod(callout_t *c, unsigned long expires, unsigned jhz, callout_func_t run,
                                  void *arg, int mode);
/* mode 0 mod_timer, 1 mod_timer_pending, 2 add_timer: 1 if it was pending. */
CALLOUT_API int callout_linux_delete(callout_t *c, int sync, int shutdown);
/* 1 if it took a pending arming out, else 0. */
CALLOUT_API unsigned long callout_linux_jiffies(unsigned jhz);

/* Every timer's callout runs this, which calls the timer's own function
 * with the timer (it does not touch the timer afterwards: the function may
 * free it). */
static inline void callout_linux_run_(void *t) {
  struct timer_list *timer = (struct timer_list *)t;
  timer->function(timer);
}

/* ---- Linux's names ---------------------------------------------------- */

#define jiffies (callout_linux_jiffies(HZ))

static inline void timer_setup_on(struct timer_list *t, void (*fn)(struct timer_list *), unsigned int flags,
                                  callout_domain_t *d) {
  callout_linux_setup(&t->_callout, flags, d);
  t->function = fn;
  t->expires = 0;
  t->flags = flags;
}
/* Prepares t to run fn(t) (clears a shutdown).  Any thread; never sleeps. */
#define timer_setup(t, fn, flags) timer_setup_on((t), (fn), (flags), NULL)
#define timer_setup_on_stack(t, fn, flags) timer_setup_on((t), (fn), (flags), NULL)
static inline void destroy_timer_on_stack(struct timer_list *t) { (void)t; }

/* The structure that holds `timer` (a timer_list pointer) in its member
 * `field`: from_timer(conn, timer, retransmit_timer). */
#define from_timer(var, timer, field) ((__typeof__(var))((char *)(timer)-offsetof(__typeof__(*(var)), field)))
#define timer_container_of(var, timer, field) from_timer(var, timer, field)

static inline int mod_timer(struct timer_list *t, unsigned long expires) {
  t->expires = expires;
  return callout_linux_mod(&t->_callout, expires, HZ, callout_linux_run_, t, 0);
}
/* Arms t for jiffy `expires` (past: the next tick): 1 if it was pending, 0
 * if not (also when ignored after timer_shutdown).  Never sleeps. */

static inline int mod_timer_pending(struct timer_list *t, unsigned long expires) {
  return callout_linux_mod(&t->_callout, expires, HZ, callout_linux_run_, t, 1);
}
/* mod_timer only if t is pending: 1 if it was (and is moved), else 0. */

static inline void add_timer(struct timer_list *t) {
  (void)callout_linux_mod(&t->_callout, t->expires, HZ, callout_linux_run_, t, 2);
}
/* Arms t for t->expires; misuse if t is pending. */

static inline int timer_reduce(struct timer_list *t, unsigned long expires) {
  if (callout_pending(&t->_callout) && (long)(t->expires - expires) <= 0) return 1;
  return mod_timer(t, expires);
}
/* mod_timer, but only ever earlier for a pending timer. */

static inline int timer_pending(const struct timer_list *t) {
  return callout_pending((callout_t *)&t->_callout);
}
/* Whether t is armed and not yet dispatched (stale unless serialised). */

static inline int callout_linux_timer_delete(struct timer_list *t) {
  return callout_linux_delete(&t->_callout, 0, 0);
}
/* timer_delete: disarms t without waiting: 1 if it was pending, else 0. */

static inline int timer_delete_sync(struct timer_list *t) { return callout_linux_delete(&t->_callout, 1, 0); }
/* Disarms t and waits until its function is not running anywhere (a re-arm
 * by the function meanwhile is undone): 1 if it took a pending arming out.
 * Sleeps; not from t's own function, nor holding a lock it takes. */

static inline int timer_shutdown(struct timer_list *t) { return callout_linux_delete(&t->_callout, 0, 1); }
static inline int timer_shutdown_sync(struct timer_list *t) {
  return callout_linux_delete(&t->_callout, 1, 1);
}
/* timer_delete / timer_delete_sync, and every later arm of t is ignored
 * until timer_setup(). */

#define del_timer(t) callout_linux_timer_delete(t)
#define del_timer_sync(t) timer_delete_sync(t)

/* Jiffies arithmetic, wrap-safe as in Linux. */
#define time_after(a, b) ((long)((b) - (a)) < 0)
#define time_before(a, b) time_after(b, a)
#define time_after_eq(a, b) ((long)((a) - (b)) >= 0)
#define time_before_eq(a, b) time_after_eq(b, a)
#define time_in_range(a, b, c) (time_after_eq(a, b) && time_before_eq(a, c))
static inline unsigned long msecs_to_jiffies(unsigned int m) {
  return (unsigned long)(((uint64_t)m * HZ + 999) / 1000);
}
static inline unsigned long usecs_to_jiffies(unsigned int u) {
  return (unsigned long)(((uint64_t)u * HZ + 999999) / 1000000);
}
static inline unsigned int jiffies_to_msecs(unsigned long j) {
  return (unsigned int)((uint64_t)j * 1000 / HZ);
}
static inline unsigned int jiffies_to_usecs(unsigned long j) {
  return (unsigned int)((uint64_t)j * 1000000 / HZ);
}

#ifdef __cplusplus
}
/* C++: an overload next to POSIX timer_delete(timer_t). */
inline int timer_delete(struct timer_list *t) { return callout_linux_timer_delete(t); }
#elif defined(__USE_POSIX199309)
/* C with POSIX timers declared: dispatch on the argument's type. */
#define timer_delete(t) \
  _Generic((t), struct timer_list * : callout_linux_timer_delete, default : timer_delete)(t)
#else
#define timer_delete(t) callout_linux_timer_delete(t)
#endif

#endif /* CALLOUT_COMPAT_LINUX_H */
