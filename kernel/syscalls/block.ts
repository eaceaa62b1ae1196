/**
 * Interruptible waits for system calls (Linux's wait-queue loop with -ERESTARTSYS): the
 * calling thread sleeps on a queue until woken (by the object it waits on, or by a signal);
 * when it runs again, either a signal is deliverable and the call ends with -EINTR (or is
 * restarted, when the handler has SA_RESTART: the frame then returns to the call), or the call
 * runs again from the start (RESTART_SYSCALL), re-checking its condition and blocking again if
 * it still cannot go on. A signal already deliverable when the call would block interrupts it
 * the same way, before it sleeps.
 *
 * Timed sleeps (nanosleep, clock_nanosleep, futex waits) use `sleepInterruptibly`: the deadline
 * ends them, a wake-up from what they wait on ends them, a signal to deliver ends them with
 * -EINTR (or restarts them, for the calls Linux restarts with -ERESTARTSYS), and a wake-up with
 * nothing to deliver (a process-wide signal another thread took first) sleeps again until the
 * same deadline: the call runs again from the start and finds its deadline kept for it
 * (`keptDeadline`, Linux's restart_block).
 */
import { actionOf, deliverable, interruptible, SA_RESTART, SIG_DFL } from '../proc/signals.ts';
import { RESTART_SYSCALL, type Thread } from '../sched/thread.ts';
import { E } from './errno.ts';
import type { SysBlock, SysCtx } from './types.ts';

/** What an interrupted call returns: -EINTR, or RESTART_SYSCALL when the signal's handler has SA_RESTART. */
export function interruptedResult(c: SysCtx, sig: number): number {
  const a = actionOf(c.proc, sig);
  return a.handler !== SIG_DFL && (a.flags & SA_RESTART) !== 0 ? RESTART_SYSCALL : -E.EINTR;
}

/**
 * Blocks the caller until woken: `enqueue` puts the thread on the wait queue of what it waits
 * for, `dequeue` takes it off. `partial` is what the call has done so far (a pipe write's
 * bytes): a signal then ends it with that count instead of -EINTR. Returns the SysBlock for
 * the handler to return.
 */
export function waitAndRetry(c: SysCtx, enqueue: (t: Thread) => void, dequeue: (t: Thread) => void, partial: () => number = () => 0): SysBlock {
  const now = deliverable(c.proc, c.thread);
  if (now !== 0) {
    // interrupted before sleeping: a zero-length block, so that a restart goes back over the call
    return { kind: 'block', until: 0, onResume: () => (partial() > 0 ? partial() : interruptedResult(c, now)) };
  }
  const t = c.thread;
  enqueue(t);
  interruptible.add(t);
  return {
    kind: 'block', until: Infinity,
    onResume: () => {
      interruptible.delete(t);
      dequeue(t);
      const sig = deliverable(c.proc, t);
      if (sig === 0) return RESTART_SYSCALL;
      return partial() > 0 ? partial() : interruptedResult(c, sig);
    },
  };
}

/** Deadlines kept for calls that run again after a wake-up with nothing to deliver: the call (number and arguments) and its deadline. */
const kept = new WeakMap<Thread, { nr: number; args: string; until: number }>();

/**
 * The deadline (cycles) the calling thread's previous run of this same call kept for it, when
 * the call is running again after a wake-up with nothing to deliver; undefined for a new call.
 */
export function keptDeadline(c: SysCtx): number | undefined {
  const k = kept.get(c.thread);
  if (k === undefined) return undefined;
  kept.delete(c.thread);
  return k.nr === c.nr && k.args === c.a.join(',') ? k.until : undefined;
}

export interface TimedSleep {
  /** Its deadline in cycles on the calling core's clock (Infinity: none). */
  readonly until: number;
  /** Linux restarts it after a handler with SA_RESTART (-ERESTARTSYS: futex waits with no timeout); otherwise a handler ends it with -EINTR. */
  readonly restartable: boolean;
  /** EAX when the deadline passed. */
  readonly timedOut: () => number;
  /** EAX when what it waits on woke it (a futex wake), or null if that did not happen. */
  readonly woken?: () => number | null;
  /** Called before the sleep ends with -EINTR, with the cycles left to the deadline (nanosleep's remaining time); a negative errno replaces -EINTR. */
  readonly interrupted?: (leftCycles: number) => number;
  /** Takes the thread off what it waits on (a futex queue) when it ends by a signal, a deadline or a restart. */
  readonly dequeue?: () => void;
}

/** Blocks the caller, interruptibly, until `s.until` (see TimedSleep). */
export function sleepInterruptibly(c: SysCtx, s: TimedSleep): SysBlock {
  const t = c.thread;
  const onSignal = (sig: number): number => {
    s.dequeue?.();
    if (s.restartable) {
      const r = interruptedResult(c, sig);
      if (r === RESTART_SYSCALL) return r;
    }
    const left = Math.max(0, s.until - c.cpu.cycles);
    const e = s.interrupted?.(left) ?? 0;
    return e < 0 ? e : -E.EINTR;
  };
  const early = deliverable(c.proc, t);
  if (early !== 0) {
    // interrupted before sleeping: a zero-length block, so that a restart goes back over the call
    return { kind: 'block', until: 0, onResume: () => s.woken?.() ?? onSignal(early) };
  }
  interruptible.add(t);
  return {
    kind: 'block', until: s.until,
    onResume: () => {
      interruptible.delete(t);
      const w = s.woken?.() ?? null;
      if (w !== null) return w;
      if (t.resume.kind === 'timeout' || c.cpu.cycles >= s.until) { s.dequeue?.(); return s.timedOut(); }
      const sig = deliverable(c.proc, t);
      if (sig !== 0) return onSignal(sig);
      // woken with nothing to deliver: run again, with the same deadline
      s.dequeue?.();
      kept.set(t, { nr: c.nr, args: c.a.join(','), until: s.until });
      return RESTART_SYSCALL;
    },
  };
}
