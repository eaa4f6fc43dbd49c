/*
 * callout/compat/netbsd.h -- the NetBSD kernel's callout(9) KPI on libcallout.
 *
 * libcallout's native API is NetBSD's: callout_init(c, flags),
 * callout_setfunc, callout_reset, callout_schedule, callout_stop (returns
 * whether it had fired), callout_halt (returns whether it waited),
 * callout_pending/expired/active/invoking, callout_ack and callout_destroy
 * are the same functions with the same rules.  This header adds what a file
 * written for the NetBSD kernel also needs, so that it compiles unchanged:
 *   - callout_halt(c, void *interlock): NetBSD passes a kmutex_t * as void *;
 *     kmutex_t is a pthread_mutex_t here, with mutex_init/enter/exit/destroy.
 *   - callout_bind(c, struct cpu_info *): cpu_lookup(i) and curcpu() give
 *     the cpu_info of the calling thread's domain (cpu_index() reads it);
 *     curcpu() is CPU 0 in a thread that is not a softclock.
 *   - hz and getticks(): those of the calling thread's domain (the domain of
 *     the handler it runs, else the default domain).
 *   - KERNEL_LOCK(n, l) and KERNEL_UNLOCK_ONE(l): that domain's giant lock,
 *     under which callouts without CALLOUT_MPSAFE run (l is ignored).
 * Where libcallout deliberately differs from the native API, this header
 * follows NetBSD: callout_reset() and callout_schedule() with a negative
 * tick count abort with a message (NetBSD asserts ticks >= 0), where the
 * native functions treat any ticks <= 0 as 1.  0 ticks run at the next
 * tick in both.  Define CALLOUT_NETBSD_NO_HZ to keep the macro hz out.
 */
#ifndef CALLOUT_COMPAT_NETBSD_H
#define CALLOUT_COMPAT_NETBSD_H

#include <callout/callout.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* NetBSD's kmutex_t, as a pthread mutex (the type and ipl are ignored). */
typedef pthread_mutex_t kmutex_t;
#define MUTEX_DEFAULT 0
#define MUTEX_DRIVER 0
#define IPL_NONE 0
#define IPL_SOFTCLOCK 0
#define IPL_SOFTNET 0
#define IPL_VM 0
static inline void mutex_init(kmutex_t *m, int type, int ipl) {
  (void)type;
  (void)ipl;
  pthread_mutex_init(m, NULL);
}
static inline void mutex_destroy(kmutex_t *m) { pthread_mutex_destroy(m); }
static inline void mutex_enter(kmutex_t *m) { pthread_mutex_lock(m); }
static inline void mutex_exit(kmutex_t *m) { pthread_mutex_unlock(m); }

/* A CPU of the calling thread's domain, as NetBSD names one.  Opaque: the
 * pointer encodes the index. */
struct cpu_info;
static inline struct cpu_info *cpu_lookup(unsigned idx) { return (struct cpu_info *)(uintptr_t)(idx + 1); }
static inline unsigned cpu_index(const struct cpu_info *ci) { return (unsigned)((uintptr_t)ci - 1); }
/* The CPU whose handler the caller runs; CPU 0 for a thread that is not a
 * softclock (it has no CPU of the domain). */
static inline struct cpu_info *callout_netbsd_curcpu(void) {
  int i = callout_domain_curcpu(callout_domain_current());
  return cpu_lookup(i < 0 ? 0u : (unsigned)i);
}
#define curcpu() callout_netbsd_curcpu()

static inline void callout_netbsd_ticks_check_(const char *function, callout_t *c, int ticks_) {
  if (ticks_ < 0) {
    fprintf(stderr, "libcallout: %s: callout %p: negative tick count %d (NetBSD requires ticks >= 0)\n",
            function, (void *)c, ticks_);
    abort();
  }
}
static inline void callout_netbsd_reset_(callout_t *c, int ticks_, callout_func_t func, void *arg) {
  callout_netbsd_ticks_check_("callout_reset", c, ticks_);
  callout_reset(c, ticks_, func, arg);
}
static inline void callout_netbsd_schedule_(callout_t *c, int ticks_) {
  callout_netbsd_ticks_check_("callout_schedule", c, ticks_);
  callout_schedule(c, ticks_);
}
#define callout_reset(c, ticks_, func, arg) callout_netbsd_reset_((c), (ticks_), (func), (arg))
#define callout_schedule(c, ticks_) callout_netbsd_schedule_((c), (ticks_))
#define callout_halt(c, interlock) callout_halt((c), (pthread_mutex_t *)(interlock))
#define callout_bind(c, ci) callout_bind((c), cpu_index(ci))

static inline int getticks(void) { return (int)(unsigned)callout_domain_ticks(callout_domain_current()); }
#ifndef CALLOUT_NETBSD_NO_HZ
#define hz ((int)callout_domain_hz(callout_domain_current()))
#endif

static inline void callout_netbsd_kernel_lock_(int n) {
  while (n-- > 0) callout_giant_enter(callout_domain_current());
}
#define KERNEL_LOCK(n, l) callout_netbsd_kernel_lock_(n)
#define KERNEL_UNLOCK_ONE(l) callout_giant_exit(callout_domain_current())

#ifdef __cplusplus
}
#endif

#endif /* CALLOUT_COMPAT_NETBSD_H */
