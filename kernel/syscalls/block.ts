/**
 * Interruptible waits for system calls (Linux's wait-queue loop with -ERESTARTSYS): the
 * calling thread sleeps on a queue until woken (by the object it waits on, or by a signal);
 * when it runs again, either a signal is deliverable and the call ends with -EINTR (or is
 * restarted, when the handler has SA_RESTART: the frame then returns to the call), or the call
 * runs again from the start (RESTART_SYSCALL), re-checking its condition and blocking again if
 * it still cannot go on. A signal already deliverable when the call would block interrupts it
 * the same way, before it sleeps.
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
  const now = deliverable(c.proc);
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
      const sig = deliverable(c.proc);
      if (sig === 0) return RESTART_SYSCALL;
      return partial() > 0 ? partial() : interruptedResult(c, sig);
    },
  };
}
