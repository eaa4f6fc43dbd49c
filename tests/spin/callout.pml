/*
 * callout.pml -- a Promela model of libcallout's cancel protocol, checked
 * exhaustively by spin (tests/spin/check.sh, run by scripts/reliability.sh).
 *
 * One callout c, two CPUs (each a lock and a softclock thread), two user
 * threads.  Every step below names the C++ code it mirrors (src/callout.cpp,
 * src/cpu.cpp); docs/DESIGN.md section 6 has the proofs this model checks
 * and docs/RELIABILITY.md says what it covers and what it leaves out.
 *
 * Modelled: dispatch (run_expired: pop, running, dispatching, cancelled,
 * the associated mutex), the handler run and its re-arm of c, the halt
 * waiters' skip (halt_waiters), finish_dispatch/notify_done and the futex
 * generation (Event done), lock_callout's re-check loop, stop_locked,
 * schedule_locked with migration to the calling softclock's CPU (try_lock of
 * the new CPU), halt_common with and without the interlock (the re-stop
 * after every wake-up, wait_for_done), and stop under the associated lock.
 * Time is abstract: a pending callout may come due at any moment.
 *
 * Properties (assertions and deadlock freedom):
 *   P1 no concurrent double run: at most one thread runs c's handler, and
 *      c is running on at most one CPU;
 *   P2 halt returns only when no thread uses c: at each return point of
 *      halt (under the CPU lock) c is running on no CPU, nobody is in its
 *      handler, and it is not pending;
 *   P3 no lost wake-up: no halt waits forever -- every process reaches a
 *      valid end state (spin reports "invalid end state" otherwise);
 *   P4 stop under the associated lock => the handler does not run for that
 *      arming, and stop's return value says whether it ran (H7).
 *
 * Options (spin -D...):
 *   ASSOC=1 (default) c is callout_init_mtx'd with mutex M; ASSOC=0: MPSAFE.
 *   Bugs to show that the check can fail (each must give a counterexample):
 *   BUG_HALT_NOWAIT     halt returns after its stop without waiting
 *   BUG_HALT_FIRED      halt waits only if FIRED was set (NetBSD 1.69, H2)
 *   BUG_HALT_NORESTOP   halt does not stop c again after waking (H1)
 *   BUG_LOST_WAKEUP     wait_for_done reads the generation after unlocking
 *   BUG_MIGRATE_RUNNING schedule_locked migrates a running callout (H3)
 *   BUG_STOP_NO_CANCEL  stop does not cancel a dispatch waiting for M
 */

#ifndef ASSOC
#define ASSOC 1
#endif
#define NCPU 2
#define NONE 2          /* "not a softclock thread" (current_cpu() == NULL) */
#define NOPS 2          /* operations per user thread */
#define MAXFOREIGN 1    /* resets of c by other callouts' handlers, per CPU */
#define MAXREARM 1      /* re-arms of c by its own handler */

/* ---- locks (lock.h SpinLock; the pthread mutex M) ---------------------- */
bit cpulock[NCPU + 1];  /* [NONE] unused: lets reset_from(NONE) compile */
inline lock(i)   { atomic { cpulock[i] == 0 -> cpulock[i] = 1 } }
inline unlock(i) { cpulock[i] = 0 }

byte m_owner;    /* 0: free, else _pid + 1 */
inline mlock()   { atomic { m_owner == 0 -> m_owner = _pid + 1 } }
inline munlock() { assert(m_owner == _pid + 1); m_owner = 0 }

/* ---- the callout (callout_impl.h CalloutImpl) -------------------------- */
byte home;       /* c->cpu */
bit pending;     /* kPending: in home's wheel */
bit fired;       /* kFired */
byte spare;      /* c->halt_waiters: threads waiting in halt */

/* ---- the CPUs (cpu.h struct Cpu) ---------------------------------------- */
bit running[NCPU];       /* cpu->running == c */
bit dispatching[NCPU];
bit cancelled[NCPU];
byte nwait[NCPU];
byte done_gen[NCPU];     /* Event done: the futex word */

/* ---- ghost state for the properties ------------------------------------ */
byte in_handler;         /* threads inside c's handler */
bit committed;           /* the arming current when FIRED was last set is still current */
bit ran;                 /* the handler of the current arming has run */
bit stopped;             /* stop_locked ran since the current arming */
bit stopped_under_m;     /* a stop made holding M, and no arming since */
byte rearms;

/* lock_callout (cpu.cpp): read c->cpu, lock it, re-check. */
inline lock_callout() {
  do
  :: cc = home; lock(cc);
     if
     :: home == cc -> break
     :: else -> unlock(cc)
     fi
  od
}

/* stop_locked (callout.cpp): unschedule, cancel a dispatch waiting for the
 * associated lock, clear FIRED; r = the old FIRED. */
inline stop_locked() {
  atomic {                                /* (under cc's lock: one step) */
    r = fired;
    pending = 0;
#ifndef BUG_STOP_NO_CANCEL
    if
    :: running[cc] && dispatching[cc] -> cancelled[cc] = 1
    :: else -> skip
    fi;
#endif
    fired = 0;
    stopped = 1
  }
}

/* callout_reset = lock_callout + schedule_locked (callout.cpp), called from
 * CPU `here`'s softclock (a handler) or from a user thread (here == NONE). */
inline reset_from(here) {
  lock_callout();
  atomic {
    fired = 0;
    if
    :: running[cc] && dispatching[cc] -> cancelled[cc] = 1
    :: else -> skip
    fi
  };
  if
  :: pending -> skip                  /* Wheel::reschedule: stays on cc */
  :: else ->
     /* locality: move to the calling softclock's CPU if c is idle */
#ifdef BUG_MIGRATE_RUNNING
     if
     :: here != NONE && here != cc ->
#else
     if
     :: here != NONE && here != cc && !running[cc] ->
#endif
        atomic {                          /* here->lock.try_lock() */
          if
          :: cpulock[here] == 0 -> cpulock[here] = 1; got = 1
          :: else -> got = 0
          fi
        };
        if
        :: got -> home = here; unlock(cc); cc = here
        :: else -> skip
        fi
     :: else -> skip
     fi;
     pending = 1                          /* Wheel::insert on cc */
  fi;
  atomic {
    committed = 0;
    ran = 0;
    stopped = 0;
    stopped_under_m = 0;
    unlock(cc)
  }
}

/* wait_for_done (cpu.cpp): called holding cc's lock, returns without it. */
inline wait_for_done() {
#ifndef BUG_LOST_WAKEUP
  seen = done_gen[cc];
  nwait[cc]++;
  unlock(cc);
#else
  nwait[cc]++;
  unlock(cc);
  seen = done_gen[cc];
#endif
  (done_gen[cc] != seen)                  /* futex wait: sleeps while unchanged */
}

/* P2, at each return point of halt, holding cc's lock. */
inline halt_returns() {
  assert(!running[0] && !running[1] && in_handler == 0 && !pending)
}

/* halt_common (callout.cpp) from a user thread (never the softclock, so
 * running_elsewhere == running[cc]); il: M is the interlock (held). */
inline halt(il) {
  lock_callout();
  f0 = fired;
  stop_locked();
#if defined(BUG_HALT_NOWAIT)
  if
  :: true ->
#elif defined(BUG_HALT_FIRED)
  if
  :: !running[cc] || !f0 ->
#else
  if
  :: !running[cc] ->
#endif
     halt_returns();
     unlock(cc)
  :: else ->
     spare++;
     dropped = 0;
     do
     :: if
        :: il && !dropped -> unlock(cc); munlock(); dropped = 1
        :: else -> wait_for_done()
        fi;
        lock_callout();
#ifndef BUG_HALT_NORESTOP
        stop_locked();                    /* H1: undo a re-arm made meanwhile */
#endif
        if
        :: !running[cc] -> break
        :: else -> skip
        fi
     od;
     spare--;
     halt_returns();
     unlock(cc);
     if
     :: dropped -> mlock()
     :: else -> skip
     fi
  fi
}

/* finish_dispatch + notify_done (cpu.cpp), holding i's lock. */
inline finish(i) {
  running[i] = 0;
  if
  :: nwait[i] > 0 -> nwait[i] = 0; unlock(i); done_gen[i]++; lock(i)
  :: else -> skip
  fi
}

/* The handler of c, run by CPU i's softclock (holding M if ASSOC), for the
 * arming that was current when FIRED was set (still current if committed). */
inline handler(i) {
  atomic { assert(in_handler == 0); in_handler++ }          /* P1 */
#if ASSOC
  assert(!stopped_under_m);                                  /* P4 */
#endif
  atomic {
    if
    :: committed -> ran = 1
    :: else -> skip                       /* re-armed since: a later arming */
    fi
  };
  if
  :: rearms < MAXREARM -> rearms++; reset_from(i)           /* re-arms itself */
  :: true -> skip
  fi;
  in_handler--
}

proctype softclock(byte i) {
  byte cc; bit r; bit got; byte foreign = 0;
end_idle:
  do
  :: (home == i && pending) ->            /* the clock reaches c's due tick */
     lock(i);
     if
     :: home == i && pending ->
        /* run_expired: pop_expired clears PENDING */
        pending = 0;
        if
        :: spare != 0 -> unlock(i)        /* a halt waits on c: skip it (H1) */
        :: else ->
#if ASSOC
           atomic {
             assert(!running[1 - i]);     /* P1 */
             running[i] = 1;
             dispatching[i] = 1;
             cancelled[i] = 0;
             unlock(i)
           };
           mlock();                       /* the associated lock */
           lock(i);
           dispatching[i] = 0;
           if
           :: cancelled[i] ->             /* stopped or reset meanwhile */
              unlock(i); munlock(); lock(i); finish(i); unlock(i)
           :: else ->
              atomic { fired = 1; committed = 1; unlock(i) };
              handler(i);
              munlock(); lock(i); finish(i); unlock(i)
           fi
#else
           atomic {
             assert(!running[1 - i]);     /* P1 */
             running[i] = 1;
             fired = 1; committed = 1; unlock(i)
           };
           handler(i);
           lock(i); finish(i); unlock(i)
#endif
        fi
     :: else -> unlock(i)
     fi
  :: foreign < MAXFOREIGN ->              /* another callout's handler on CPU i resets c */
     foreign++;
     reset_from(i)
  od
}

proctype user() {
  byte cc; bit r; bit got; bit f0; bit dropped; bit was_stopped; byte seen; byte ops = 0;
  do
  :: ops < NOPS ->
     ops++;
     if
     :: reset_from(NONE)
     :: mlock();                          /* stop holding the associated lock */
        lock_callout(); was_stopped = stopped; stop_locked();
#if ASSOC
        /* (ghost state, in stop's critical section) P4: holding M, stop
         * returns true iff the handler ran for the current arming (and, M
         * being held, has finished) and no stop came since. */
        assert(r == (ran && !was_stopped));
        stopped_under_m = 1;
#endif
        unlock(cc);
        munlock()
     :: mlock(); halt(1); munlock()       /* halt with the interlock M */
     :: halt(0)                           /* halt holding nothing */
     fi
  :: else -> break
  od
}

init {
  atomic {
    home = 0;
    run softclock(0);
    run softclock(1);
    run user();
    run user()
  }
}
