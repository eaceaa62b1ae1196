/**
 * rt_sigaction, rt_sigprocmask, rt_sigpending, sigreturn, rt_sigreturn, kill, tkill, tgkill,
 * rt_sigsuspend, pause: the system-call side of kernel/proc/signals.ts (sending, delivery on
 * the way back to user mode, the frames). Masks are the calling thread's; rt_sigpending shows
 * the calling thread's pending signals and the process's.
 */
import {
  deliverable, discardIfIgnored, NSIG, restoreFrame, sendSignal, setSigmask, SI_TKILL, SI_USER, SIGKILL, SIGSEGV, SIGSTOP,
  interruptible, pendingSet, savedMask,
} from '../proc/signals.ts';
import type { Process } from '../proc/process.ts';
import { RESTART_SYSCALL } from '../sched/thread.ts';
import { E } from './errno.ts';
import { errno, NORETURN, s32, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

const ACTION_BYTES = 20; // i386 struct sigaction: handler, flags, restorer, mask (8 bytes)
const UNBLOCKABLE = (1n << BigInt(SIGKILL - 1)) | (1n << BigInt(SIGSTOP - 1));

function rtSigaction(c: SysCtx): number {
  const [sig, act, oact, size] = c.a;
  if (size !== 8) return -E.EINVAL;
  if (sig < 1 || sig > NSIG) return -E.EINVAL;
  if (act !== 0 && (sig === SIGKILL || sig === SIGSTOP)) return -E.EINVAL;
  let next: Uint8Array | null = null;
  if (act !== 0) {
    const r = c.proc.aspace.copyin(c.cpu, act, ACTION_BYTES);
    if (!r.ok) return errno(r.error);
    next = r.value;
    // the mask never holds SIGKILL or SIGSTOP
    const dv = new DataView(next.buffer, next.byteOffset, next.byteLength);
    dv.setBigUint64(12, dv.getBigUint64(12, true) & ~UNBLOCKABLE, true);
  }
  if (oact !== 0) {
    const prev = c.proc.sigactions.get(sig) ?? new Uint8Array(ACTION_BYTES);
    const w = c.proc.aspace.copyout(c.cpu, oact, prev);
    if (!w.ok) return errno(w.error);
  }
  if (next !== null) {
    c.proc.sigactions.set(sig, next);
    discardIfIgnored(c.proc, sig);
  }
  return 0;
}

function putMask(c: SysCtx, addr: number, m: bigint): number {
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigUint64(0, m, true);
  const w = c.proc.aspace.copyout(c.cpu, addr, new Uint8Array(dv.buffer));
  return w.ok ? 0 : errno(w.error);
}

function rtSigprocmask(c: SysCtx): number {
  const [how, set, oset, size] = c.a;
  if (size !== 8) return -E.EINVAL;
  let nextMask: bigint | null = null;
  if (set !== 0) {
    const r = c.proc.aspace.copyin(c.cpu, set, 8);
    if (!r.ok) return errno(r.error);
    const m = new DataView(r.value.buffer).getBigUint64(0, true) & ~UNBLOCKABLE;
    const cur = c.thread.sigmask;
    if (how === 0) nextMask = cur | m;
    else if (how === 1) nextMask = cur & ~m;
    else if (how === 2) nextMask = m;
    else return -E.EINVAL;
  }
  if (oset !== 0) {
    const e = putMask(c, oset, c.thread.sigmask);
    if (e !== 0) return e;
  }
  if (nextMask !== null) setSigmask(c.k, c.cpu, c.proc, c.thread, nextMask); // newly unblocked signals are taken on the way out
  return 0;
}

function sigreturnCommon(c: SysCtx, rt: boolean): SysRet {
  const eax = restoreFrame(c.k, c.cpu, c.core, c.proc, c.thread, rt);
  if (eax === null) {
    c.k.log.print(c.cpu, `${c.proc.comm}[${c.proc.pid}]: bad signal frame in ${rt ? 'rt_sigreturn' : 'sigreturn'}: SIGSEGV`);
    c.k.exitProcess(c.cpu, c.proc, 0, SIGSEGV);
    return NORETURN;
  }
  return eax;
}

/** A process kill can name (a zombie too: the signal is then dropped, as on Linux). */
function live(c: SysCtx, pid: number): Process | null {
  return c.k.processes.get(pid) ?? null;
}

function kill(c: SysCtx): SysRet {
  const pid = s32(c.a[0]);
  const sig = s32(c.a[1]);
  if (sig < 0 || sig > NSIG) return -E.EINVAL;
  const info = { signo: sig, code: SI_USER, pid: c.proc.pid, uid: 0 };
  let targets: Process[];
  if (pid > 0) {
    const p = live(c, pid);
    if (p === null) return -E.ESRCH;
    targets = [p];
  } else {
    // 0: the caller's process group; -1: every process but init; < -1: group -pid
    const all = [...c.k.processes.values()].filter((p) => p.exitCode === null);
    const pg = pid === 0 ? c.proc.pgid : -pid;
    targets = pid === -1 ? all.filter((p) => p.pid !== 1) : all.filter((p) => p.pgid === pg);
    if (targets.length === 0) return -E.ESRCH;
  }
  for (const p of targets) sendSignal(c.k, c.cpu, p, sig, info);
  return c.proc.exitCode !== null ? NORETURN : 0;
}

function threadSignal(c: SysCtx, tgid: number | null, tid: number, sig: number): SysRet {
  if (tid <= 0 || (tgid !== null && tgid <= 0)) return -E.EINVAL;
  if (sig < 0 || sig > NSIG) return -E.EINVAL;
  let target = null;
  for (const p of c.k.processes.values()) {
    const t = p.exitCode === null ? p.threads.find((x) => x.tid === tid) : undefined;
    if (t !== undefined) { target = { p, t }; break; }
  }
  if (target === null || (tgid !== null && target.p.pid !== tgid)) return -E.ESRCH;
  sendSignal(c.k, c.cpu, target.p, sig, { signo: sig, code: SI_TKILL, pid: c.proc.pid, uid: 0 }, target.t);
  return c.proc.exitCode !== null ? NORETURN : 0;
}

function rtSigpending(c: SysCtx): number {
  if (c.a[1] > 8) return -E.EINVAL;
  return putMask(c, c.a[0], pendingSet(c.proc, c.thread) & c.thread.sigmask);
}

/**
 * rt_sigsuspend: waits with the given mask until a signal is delivered; returns -EINTR, with
 * the old mask restored after the handler (the frame saves the old mask).
 */
function rtSigsuspend(c: SysCtx): SysRet {
  if (c.a[1] !== 8) return -E.EINVAL;
  const r = c.proc.aspace.copyin(c.cpu, c.a[0], 8);
  if (!r.ok) return errno(r.error);
  const old = c.thread.sigmask;
  setSigmask(c.k, c.cpu, c.proc, c.thread, new DataView(r.value.buffer).getBigUint64(0, true) & ~UNBLOCKABLE);
  return suspend(c, old);
}

/**
 * Sleeps until a signal is to be delivered (pause; rt_sigsuspend with `restoreTo`, the mask to
 * put back). Woken with nothing to deliver (another thread took a process-wide signal first),
 * it puts the mask back and runs again from the start, as Linux's loop sleeps again.
 */
function suspend(c: SysCtx, restoreTo: bigint | null): SysRet {
  const t = c.thread;
  const until = deliverable(c.proc, t) !== 0 ? 0 : Infinity;
  interruptible.add(t);
  return {
    kind: 'block', until,
    onResume: () => {
      interruptible.delete(t);
      if (deliverable(c.proc, t) === 0) {
        if (restoreTo !== null) t.sigmask = restoreTo;
        return RESTART_SYSCALL;
      }
      // the handler's frame keeps the suspended mask's predecessor: restore it after delivery
      if (restoreTo !== null) savedMask.set(t, restoreTo);
      return -E.EINTR;
    },
  };
}

export const signalCalls: Record<string, SyscallDef> = {
  rt_sigaction: { name: 'rt_sigaction', args: 'dppu', fn: rtSigaction },
  rt_sigprocmask: { name: 'rt_sigprocmask', args: 'dppu', fn: rtSigprocmask },
  rt_sigpending: { name: 'rt_sigpending', args: 'pu', fn: rtSigpending },
  rt_sigsuspend: { name: 'rt_sigsuspend', args: 'pu', fn: rtSigsuspend },
  pause: { name: 'pause', args: '', fn: (c) => suspend(c, null) },
  sigreturn: { name: 'sigreturn', args: '', fn: (c) => sigreturnCommon(c, false) },
  rt_sigreturn: { name: 'rt_sigreturn', args: '', fn: (c) => sigreturnCommon(c, true) },
  kill: { name: 'kill', args: 'dd', fn: kill },
  tgkill: { name: 'tgkill', args: 'ddd', fn: (c) => threadSignal(c, s32(c.a[0]), s32(c.a[1]), s32(c.a[2])) },
  tkill: { name: 'tkill', args: 'dd', fn: (c) => threadSignal(c, null, s32(c.a[0]), s32(c.a[1])) },
};
