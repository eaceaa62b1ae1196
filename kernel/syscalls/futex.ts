/**
 * futex and futex_time64 (Linux kernel/futex/): FUTEX_WAIT, FUTEX_WAKE, FUTEX_REQUEUE,
 * FUTEX_CMP_REQUEUE, FUTEX_WAKE_OP, FUTEX_WAIT_BITSET and FUTEX_WAKE_BITSET, with or without
 * FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME. What glibc's mutexes, condition variables,
 * pthread_join (CLONE_CHILD_CLEARTID) and semaphores use.
 *
 * A futex is named by the physical address of its word: threads of one process (one address
 * space) meet there, and so would processes sharing memory; after fork each process has its
 * own copy, hence its own futexes. Private and shared futexes are therefore the same thing here.
 * Waiters of one word are woken in the order they came (FIFO), across cores (the scheduler's
 * wake-up sends the IPI). A wait blocks the thread (sched/scheduler.ts block): no spinning; a
 * signal with a handler ends it with -EINTR (with SA_RESTART, a wait without a timeout goes on
 * after the handler, as Linux's -ERESTARTSYS), a timeout with -ETIMEDOUT. Robust futexes
 * (set_robust_list) are recorded but not walked when a thread dies; PI futexes are -ENOSYS.
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { charge } from '../costs.ts';
import type { Kernel } from '../kernel.ts';
import type { Process } from '../proc/process.ts';
import type { Thread } from '../sched/thread.ts';
import { keptDeadline, sleepInterruptibly } from './block.ts';
import { E } from './errno.ts';
import { timespecNs } from './timespec.ts';
import { errno, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

export const FUTEX_WAIT = 0, FUTEX_WAKE = 1, FUTEX_FD = 2, FUTEX_REQUEUE = 3, FUTEX_CMP_REQUEUE = 4;
export const FUTEX_WAKE_OP = 5, FUTEX_LOCK_PI = 6, FUTEX_UNLOCK_PI = 7, FUTEX_TRYLOCK_PI = 8;
export const FUTEX_WAIT_BITSET = 9, FUTEX_WAKE_BITSET = 10;
export const FUTEX_PRIVATE_FLAG = 128, FUTEX_CLOCK_REALTIME = 256;
const FUTEX_BITSET_MATCH_ANY = 0xffffffff;
/** Linux's ETIMEDOUT (errno.ts does not list it). */
const ETIMEDOUT = 110;

interface Waiter {
  readonly thread: Thread;
  key: number;
  readonly bitset: number;
  woken: boolean;
}

/** The kernel's futex wait queues, by physical address of the futex word. */
export class FutexTable {
  private readonly queues = new Map<number, Waiter[]>();

  /** Threads waiting now, over every futex (for tests and --stats). */
  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  enqueue(t: Thread, key: number, bitset: number): Waiter {
    const w: Waiter = { thread: t, key, bitset, woken: false };
    const q = this.queues.get(key);
    if (q === undefined) this.queues.set(key, [w]); else q.push(w);
    return w;
  }

  remove(w: Waiter): void {
    const q = this.queues.get(w.key);
    if (q === undefined) return;
    const i = q.indexOf(w);
    if (i >= 0) q.splice(i, 1);
    if (q.length === 0) this.queues.delete(w.key);
  }

  /** Wakes up to `n` waiters of `key` whose bitset meets `bitset`; returns how many. */
  wake(k: Kernel, cpu: Cpu, key: number, n: number, bitset = FUTEX_BITSET_MATCH_ANY): number {
    const q = this.queues.get(key);
    if (q === undefined || n <= 0) return 0;
    let woken = 0;
    for (let i = 0; i < q.length && woken < n;) {
      const w = q[i];
      if ((w.bitset & bitset) === 0) { i++; continue; }
      q.splice(i, 1);
      w.woken = true;
      k.sched.wake(cpu, w.thread);
      woken++;
    }
    if (q.length === 0) this.queues.delete(key);
    return woken;
  }

  /** Wakes `n` waiters of `from`, then moves up to `m` of the rest to `to`; returns woken + moved. */
  requeue(k: Kernel, cpu: Cpu, from: number, to: number, n: number, m: number): number {
    const woken = this.wake(k, cpu, from, n);
    const q = this.queues.get(from);
    if (q === undefined || m <= 0 || from === to) return woken;
    const moved = q.splice(0, m);
    if (q.length === 0) this.queues.delete(from);
    for (const w of moved) { w.key = to; const d = this.queues.get(to); if (d === undefined) this.queues.set(to, [w]); else d.push(w); }
    return woken + moved.length;
  }

  /** Drops a dead thread's waits (it was killed while asleep on a futex). */
  forget(t: Thread): void {
    for (const [key, q] of [...this.queues]) {
      const rest = q.filter((w) => w.thread !== t);
      if (rest.length === 0) this.queues.delete(key); else if (rest.length !== q.length) this.queues.set(key, rest);
    }
  }
}

/** The futex key of user address `uaddr` in `proc`: its physical address, or a negative errno. */
export function futexKey(proc: Process, uaddr: number): number {
  if ((uaddr & 3) !== 0) return -E.EINVAL;
  const p = proc.aspace.translate(uaddr);
  return p < 0 ? -E.EFAULT : p;
}

/** Wakes up to `n` waiters of the futex at `uaddr` of `proc` (thread exit's CLONE_CHILD_CLEARTID wake). */
export function futexWakeAt(k: Kernel, cpu: Cpu, proc: Process, uaddr: number, n: number): number {
  const key = futexKey(proc, uaddr);
  return key < 0 ? key : k.futexes.wake(k, cpu, key, n);
}

function readWord(c: SysCtx, uaddr: number): number {
  const r = c.proc.aspace.copyin(c.cpu, uaddr, 4);
  if (!r.ok) return errno(r.error);
  return new DataView(r.value.buffer).getUint32(0, true);
}

const nsToCycles = (ns: bigint, hz: number): number => Number((ns * BigInt(hz) + 999_999_999n) / 1_000_000_000n);

function futexWait(c: SysCtx, uaddr: number, val: number, timeout: number, bitset: number, op: number, wide: boolean): SysRet {
  const kept = keptDeadline(c); // the same wait, running again after a wake-up with nothing to deliver
  if (bitset === 0) return -E.EINVAL;
  const key = futexKey(c.proc, uaddr);
  if (key < 0) return key;
  const hz = c.k.info.hz;
  let until = Infinity;
  if (timeout !== 0) {
    const ns = timespecNs(c, timeout, wide);
    if (typeof ns === 'number') return ns;
    if (kept !== undefined) until = kept;
    else if (op === FUTEX_WAIT) until = c.cpu.cycles + nsToCycles(ns, hz); // relative, CLOCK_MONOTONIC
    else if ((c.a[1] & FUTEX_CLOCK_REALTIME) !== 0) {
      // absolute CLOCK_REALTIME: the wall clock read at boot plus the cycles since
      const wall0 = BigInt(c.k.wallAtBoot) * 1_000_000_000n;
      until = ns <= wall0 ? c.k.wallReadCycles : c.k.wallReadCycles + nsToCycles(ns - wall0, hz);
    } else until = nsToCycles(ns, hz); // absolute CLOCK_MONOTONIC: cycles since power-on
  }
  const cur = readWord(c, uaddr);
  if (cur < 0) return cur;
  if (cur !== val) return -E.EAGAIN;
  if (until <= c.cpu.cycles) return -ETIMEDOUT;
  const w = c.k.futexes.enqueue(c.thread, key, bitset);
  // a signal to deliver ends the wait: -EINTR, or a restart after a handler with SA_RESTART when
  // there is no timeout (Linux's -ERESTARTSYS; with a timeout, -ERESTART_RESTARTBLOCK: -EINTR)
  return sleepInterruptibly(c, {
    until, restartable: timeout === 0,
    timedOut: () => -ETIMEDOUT,
    woken: () => (w.woken ? 0 : null),
    dequeue: () => c.k.futexes.remove(w),
  });
}

/** FUTEX_WAKE_OP's operation on the second word; returns [new value, whether to wake its waiters]. */
function wakeOp(old: number, encoded: number): [number, boolean] {
  const op = (encoded >>> 28) & 7, cmp = (encoded >>> 24) & 15;
  let oparg = (encoded << 8) >> 20; // signed 12 bits
  const cmparg = (encoded << 20) >> 20;
  if (((encoded >>> 28) & 8) !== 0) oparg = 1 << (oparg & 31); // FUTEX_OP_OPARG_SHIFT
  let nv: number;
  switch (op) {
    case 0: nv = oparg; break;          // SET
    case 1: nv = old + oparg; break;    // ADD
    case 2: nv = old | oparg; break;    // OR
    case 3: nv = old & ~oparg; break;   // ANDN
    case 4: nv = old ^ oparg; break;    // XOR
    default: nv = old;
  }
  const o = old | 0;
  let hit: boolean;
  switch (cmp) {
    case 0: hit = o === cmparg; break;
    case 1: hit = o !== cmparg; break;
    case 2: hit = o < cmparg; break;
    case 3: hit = o <= cmparg; break;
    case 4: hit = o > cmparg; break;
    case 5: hit = o >= cmparg; break;
    default: hit = false;
  }
  return [nv >>> 0, hit];
}

function futex(c: SysCtx, wide: boolean): SysRet {
  const [uaddr, opword, val, utime, uaddr2, val3] = c.a;
  charge(c.cpu, 'futexQueue');
  const op = opword & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
  if ((opword & FUTEX_CLOCK_REALTIME) !== 0 && op !== FUTEX_WAIT_BITSET && op !== FUTEX_WAIT) return -E.ENOSYS;
  switch (op) {
    case FUTEX_WAIT:
      return futexWait(c, uaddr, val, utime, FUTEX_BITSET_MATCH_ANY, op, wide);
    case FUTEX_WAIT_BITSET:
      return futexWait(c, uaddr, val, utime, val3, op, wide);
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET: {
      const bits = op === FUTEX_WAKE ? FUTEX_BITSET_MATCH_ANY : val3;
      if (bits === 0) return -E.EINVAL;
      const key = futexKey(c.proc, uaddr);
      if (key < 0) return key;
      return c.k.futexes.wake(c.k, c.cpu, key, val | 0, bits);
    }
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE: {
      const key = futexKey(c.proc, uaddr), key2 = futexKey(c.proc, uaddr2);
      if (key < 0) return key;
      if (key2 < 0) return key2;
      if (op === FUTEX_CMP_REQUEUE) {
        const cur = readWord(c, uaddr);
        if (cur < 0) return cur;
        if (cur !== val3) return -E.EAGAIN;
      }
      return c.k.futexes.requeue(c.k, c.cpu, key, key2, val | 0, utime | 0); // val2 travels in the timeout slot
    }
    case FUTEX_WAKE_OP: {
      const key = futexKey(c.proc, uaddr), key2 = futexKey(c.proc, uaddr2);
      if (key < 0) return key;
      if (key2 < 0) return key2;
      const old = readWord(c, uaddr2);
      if (old < 0) return old;
      const [nv, hit] = wakeOp(old, val3);
      const dv = new DataView(new ArrayBuffer(4));
      dv.setUint32(0, nv, true);
      const w = c.proc.aspace.copyout(c.cpu, uaddr2, new Uint8Array(dv.buffer));
      if (!w.ok) return errno(w.error);
      let n = c.k.futexes.wake(c.k, c.cpu, key, val | 0);
      if (hit) n += c.k.futexes.wake(c.k, c.cpu, key2, utime | 0);
      return n;
    }
    case FUTEX_FD: case FUTEX_LOCK_PI: case FUTEX_UNLOCK_PI: case FUTEX_TRYLOCK_PI:
      return -E.ENOSYS;
    default:
      return -E.ENOSYS;
  }
}

export const futexCalls: Record<string, SyscallDef> = {
  futex: { name: 'futex', args: 'pxdpp', fn: (c) => futex(c, false) },
  futex_time64: { name: 'futex_time64', args: 'pxdpp', fn: (c) => futex(c, true) },
};
