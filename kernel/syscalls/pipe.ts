/**
 * pipe, pipe2 (kernel/fs/pipe.ts), and poll, ppoll, select (_newselect), pselect6: readiness
 * of the descriptors the LWK has (the console, files and devices are always ready; pipes as
 * their buffer and ends say), waiting interruptibly on the pipes named until one changes or
 * the timeout ends (simulated time), then looking again. Interrupted by a signal: -EINTR (not
 * restarted). ppoll/pselect6 apply their signal mask for the wait.
 */
import { Pipe } from '../fs/pipe.ts';
import { O_NONBLOCK, O_RDONLY, O_WRONLY, type OpenFile } from '../proc/files.ts';
import { deliverable, savedMask, setSigmask } from '../proc/signals.ts';
import { RESTART_SYSCALL, type Thread } from '../sched/thread.ts';
import { waitAndRetry } from './block.ts';
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

const O_CLOEXEC = 0o2000000, O_DIRECT = 0o40000;

function pipe2(c: SysCtx, addr: number, flags: number): number {
  if ((flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT)) !== 0) return -E.EINVAL;
  const k = c.k;
  const p = new Pipe((t) => { k.sched.wake(k.activeCpu ?? c.cpu, t); });
  const nb = flags & O_NONBLOCK;
  const r: OpenFile = { kind: 'pipe', pipe: p, end: 'read', flags: O_RDONLY | nb, readable: true, writable: false, refs: 0 };
  const w: OpenFile = { kind: 'pipe', pipe: p, end: 'write', flags: O_WRONLY | nb, readable: false, writable: true, refs: 0 };
  const rfd = c.proc.files.install(r);
  if (rfd < 0) { p.closeEnd('read'); p.closeEnd('write'); return -E.EMFILE; }
  const wfd = c.proc.files.install(w);
  if (wfd < 0) { c.proc.files.close(rfd); p.closeEnd('write'); return -E.EMFILE; }
  const dv = new DataView(new ArrayBuffer(8));
  dv.setInt32(0, rfd, true);
  dv.setInt32(4, wfd, true);
  const out = c.proc.aspace.copyout(c.cpu, addr, new Uint8Array(dv.buffer));
  if (!out.ok) { c.proc.files.close(rfd); c.proc.files.close(wfd); return errno(out.error); }
  if ((flags & O_CLOEXEC) !== 0) { c.proc.files.setCloexec(rfd, true); c.proc.files.setCloexec(wfd, true); }
  return 0;
}

const POLLIN = 1, POLLOUT = 4, POLLERR = 8, POLLHUP = 0x10, POLLNVAL = 0x20, POLLRDNORM = 0x40, POLLWRNORM = 0x100;

/** The events a descriptor has now (before masking with what was asked, except ERR/HUP/NVAL). */
function readiness(f: OpenFile | null): number {
  if (f === null) return POLLNVAL;
  switch (f.kind) {
    case 'pipe': {
      const p = f.pipe;
      if (f.end === 'read') return (p.available > 0 ? POLLIN | POLLRDNORM : 0) | (p.writers === 0 ? POLLHUP : 0);
      return p.readers === 0 ? POLLERR : p.room >= 4096 ? POLLOUT | POLLWRNORM : 0;
    }
    default:
      return (f.readable ? POLLIN | POLLRDNORM : 0) | (f.writable ? POLLOUT | POLLWRNORM : 0);
  }
}

/** A poll or select that waits: its deadline, kept while the call sleeps and runs again (keyed by its arguments). */
interface Waiting { key: string; deadline: number }
const waiting = new WeakMap<Thread, Waiting>();

/**
 * The shared part of poll, ppoll, select and pselect6: `check` computes readiness (and writes
 * the results out when `final`); a call with nothing ready waits (interruptibly: -EINTR) on the
 * pipes it names until one changes or the timeout (cycles; -1: none) ends, then runs again.
 */
function waitReady(c: SysCtx, key: string, timeoutCycles: number, check: (final: boolean) => { ready: number; pipes: Set<Pipe> } | number): SysRet {
  const prev = waiting.get(c.thread);
  waiting.delete(c.thread);
  const deadline = prev !== undefined && prev.key === key ? prev.deadline : timeoutCycles < 0 ? Infinity : c.cpu.cycles + timeoutCycles;
  const r = check(false);
  if (typeof r === 'number') return r;
  if (r.ready > 0 || c.cpu.cycles >= deadline) {
    const f = check(true);
    return typeof f === 'number' ? f : f.ready;
  }
  const t = c.thread;
  waiting.set(t, { key, deadline });
  const block = waitAndRetry(c,
    (w) => { for (const p of r.pipes) { p.readWaiters.add(w); p.writeWaiters.add(w); } },
    (w) => { for (const p of r.pipes) { p.readWaiters.delete(w); p.writeWaiters.delete(w); } });
  const resume = block.onResume;
  return {
    kind: 'block', until: Math.min(block.until, deadline),
    onResume: () => {
      resume(); // off the pipes' queues
      // a signal: -EINTR (poll and select are not restarted after a handler, SA_RESTART or not)
      if (deliverable(c.proc, t) !== 0) { waiting.delete(t); return -E.EINTR; }
      return RESTART_SYSCALL; // woken or timed out: look again
    },
  };
}

function pollCommon(c: SysCtx, addr: number, nfds: number, timeoutCycles: number): SysRet {
  if (nfds > 1024) return -E.EINVAL;
  return waitReady(c, `poll ${addr} ${nfds}`, timeoutCycles, (final) => {
    const r = nfds === 0 ? null : c.proc.aspace.copyin(c.cpu, addr, nfds * 8);
    if (r !== null && !r.ok) return errno(r.error);
    const dv = r === null ? new DataView(new ArrayBuffer(0)) : new DataView(r.value.buffer);
    let ready = 0;
    const pipes = new Set<Pipe>();
    for (let k = 0; k < nfds; k++) {
      const fd = dv.getInt32(k * 8, true);
      const events = dv.getInt16(k * 8 + 4, true);
      let rev = 0;
      if (fd >= 0) {
        const f = c.proc.files.get(fd);
        rev = readiness(f) & (events | POLLERR | POLLHUP | POLLNVAL);
        if (f !== null && f.kind === 'pipe') pipes.add(f.pipe);
      }
      dv.setInt16(k * 8 + 6, rev, true);
      if (rev !== 0) ready++;
    }
    if (final && nfds > 0) {
      const w = c.proc.aspace.copyout(c.cpu, addr, new Uint8Array(dv.buffer));
      if (!w.ok) return errno(w.error);
    }
    return { ready, pipes };
  });
}

const msToCycles = (c: SysCtx, ms: number): number => Math.ceil((ms * c.k.info.hz) / 1000);

/** A struct timespec (32- or 64-bit fields) as { cycles } (-1 for NULL: no timeout), or a negative errno. */
function timespecCycles(c: SysCtx, addr: number, wide: boolean): { cycles: number } | number {
  if (addr === 0) return { cycles: -1 };
  const r = c.proc.aspace.copyin(c.cpu, addr, wide ? 16 : 8);
  if (!r.ok) return errno(r.error);
  const dv = new DataView(r.value.buffer);
  const sec = wide ? Number(dv.getBigInt64(0, true)) : dv.getInt32(0, true);
  const nsec = wide ? Number(dv.getBigInt64(8, true)) : dv.getInt32(4, true);
  if (sec < 0 || nsec < 0 || nsec >= 1e9) return -E.EINVAL;
  return { cycles: Math.ceil(sec * c.k.info.hz + (nsec * c.k.info.hz) / 1e9) };
}

/** ppoll: a poll with a timespec and a signal mask for the wait (the mask is applied for the call's duration). */
function ppoll(c: SysCtx, wide: boolean): SysRet {
  const t = timespecCycles(c, c.a[2], wide);
  if (typeof t === 'number') return t;
  return withMask(c, c.a[3], c.a[4], () => pollCommon(c, c.a[0], c.a[1], t.cycles));
}

/** Runs `call` with the temporary signal mask at `maskAddr` (ppoll, pselect6), put back when it returns. */
function withMask(c: SysCtx, maskAddr: number, size: number, call: () => SysRet): SysRet {
  if (maskAddr === 0) return call();
  if (size !== 8) return -E.EINVAL;
  const r = c.proc.aspace.copyin(c.cpu, maskAddr, 8);
  if (!r.ok) return errno(r.error);
  const t = c.thread; // the mask is the calling thread's
  const old = t.sigmask;
  const put = (m: bigint): void => setSigmask(c.k, c.cpu, c.proc, t, m);
  put(new DataView(r.value.buffer).getBigUint64(0, true));
  const v = call();
  if (typeof v === 'number' || typeof v === 'symbol') { put(old); return v; }
  return { ...v, onResume: () => { const x = v.onResume(); if (x === -E.EINTR) savedMask.set(t, old); else put(old); return x; } };
}

/** select and pselect6 over fd_set bitmaps (n bits, 32-bit words). */
function selectCommon(c: SysCtx, n: number, sets: [number, number, number], timeoutCycles: number): SysRet {
  if (n < 0 || n > 1024) return -E.EINVAL;
  const words = Math.ceil(n / 32);
  return waitReady(c, `select ${n} ${sets.join(' ')}`, timeoutCycles, (final) => {
    const inSets: (Uint32Array | null)[] = [];
    for (const a of sets) {
      if (a === 0 || words === 0) { inSets.push(null); continue; }
      const r = c.proc.aspace.copyin(c.cpu, a, words * 4);
      if (!r.ok) return errno(r.error);
      inSets.push(new Uint32Array(r.value.buffer.slice(0, words * 4)));
    }
    const outSets = inSets.map((s) => (s === null ? null : new Uint32Array(words)));
    let ready = 0;
    const pipes = new Set<Pipe>();
    for (let fd = 0; fd < n; fd++) {
      const bitOn = (s: Uint32Array | null): boolean => s !== null && (s[fd >> 5] & (1 << (fd & 31))) !== 0;
      if (!inSets.some(bitOn)) continue;
      const f = c.proc.files.get(fd);
      if (f === null) return -E.EBADF;
      if (f.kind === 'pipe') pipes.add(f.pipe);
      const rd = readiness(f);
      const hits = [(rd & (POLLIN | POLLHUP | POLLERR)) !== 0, (rd & (POLLOUT | POLLERR)) !== 0, false];
      hits.forEach((h, k) => { if (h && bitOn(inSets[k])) { outSets[k]![fd >> 5] |= 1 << (fd & 31); ready++; } });
    }
    if (final) {
      for (let k = 0; k < 3; k++) {
        const o = outSets[k];
        if (o === null) continue;
        const w = c.proc.aspace.copyout(c.cpu, sets[k], new Uint8Array(o.buffer));
        if (!w.ok) return errno(w.error);
      }
    }
    return { ready, pipes };
  });
}

function newselect(c: SysCtx): SysRet {
  let t = -1;
  if (c.a[4] !== 0) {
    const r = c.proc.aspace.copyin(c.cpu, c.a[4], 8);
    if (!r.ok) return errno(r.error);
    const dv = new DataView(r.value.buffer);
    const sec = dv.getInt32(0, true), usec = dv.getInt32(4, true);
    if (sec < 0 || usec < 0) return -E.EINVAL;
    t = Math.ceil(sec * c.k.info.hz + (usec * c.k.info.hz) / 1e6);
  }
  return selectCommon(c, s32(c.a[0]), [c.a[1], c.a[2], c.a[3]], t);
}

function pselect6(c: SysCtx, wide: boolean): SysRet {
  const t = timespecCycles(c, c.a[4], wide);
  if (typeof t === 'number') return t;
  // the sixth argument points at { const sigset_t *ss; size_t ss_len }
  let maskAddr = 0, size = 8;
  if (c.a[5] !== 0) {
    const r = c.proc.aspace.copyin(c.cpu, c.a[5], 8);
    if (!r.ok) return errno(r.error);
    const dv = new DataView(r.value.buffer);
    maskAddr = dv.getUint32(0, true); size = dv.getUint32(4, true);
  }
  return withMask(c, maskAddr, size, () => selectCommon(c, s32(c.a[0]), [c.a[1], c.a[2], c.a[3]], t.cycles));
}

export const pipeCalls: Record<string, SyscallDef> = {
  pipe: { name: 'pipe', args: 'p', fn: (c) => pipe2(c, c.a[0], 0) },
  pipe2: { name: 'pipe2', args: 'px', fn: (c) => pipe2(c, c.a[0], c.a[1]) },
  poll: { name: 'poll', args: 'pud', fn: (c) => pollCommon(c, c.a[0], c.a[1], s32(c.a[2]) < 0 ? -1 : msToCycles(c, s32(c.a[2]))) },
  ppoll: { name: 'ppoll', args: 'puppu', fn: (c) => ppoll(c, false) },
  ppoll_time64: { name: 'ppoll_time64', args: 'puppu', fn: (c) => ppoll(c, true) },
  _newselect: { name: '_newselect', args: 'dpppp', fn: newselect },
  pselect6: { name: 'pselect6', args: 'dppppp', fn: (c) => pselect6(c, false) },
  pselect6_time64: { name: 'pselect6_time64', args: 'dppppp', fn: (c) => pselect6(c, true) },
};
