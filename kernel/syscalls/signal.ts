/**
 * rt_sigaction, rt_sigprocmask, kill, tkill, tgkill: signal dispositions are recorded; a signal
 * the caller sends itself takes its default action (so abort() ends the program with SIGABRT).
 * Delivery to user handlers (signal frames, sigreturn) comes with the process work of a later
 * session: a signal whose handler the program installed is, for now, logged and ignored.
 */
import { NSIG, signalName, SIGCHLD, SIGCONT, SIGKILL, SIGSTOP } from '../proc/signals.ts';
import { E } from './errno.ts';
import { errno, NORETURN, s32, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

const SIG_DFL = 0, SIG_IGN = 1;
const SIGURG = 23, SIGWINCH = 28;
const ACTION_BYTES = 20; // i386 struct sigaction: handler, flags, restorer, mask (8 bytes)

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
  }
  if (oact !== 0) {
    const prev = c.proc.sigactions.get(sig) ?? new Uint8Array(ACTION_BYTES);
    const w = c.proc.aspace.copyout(c.cpu, oact, prev);
    if (!w.ok) return errno(w.error);
  }
  if (next !== null) c.proc.sigactions.set(sig, next);
  return 0;
}

function rtSigprocmask(c: SysCtx): number {
  const [how, set, oset, size] = c.a;
  if (size !== 8) return -E.EINVAL;
  let nextMask: bigint | null = null;
  if (set !== 0) {
    const r = c.proc.aspace.copyin(c.cpu, set, 8);
    if (!r.ok) return errno(r.error);
    const m = new DataView(r.value.buffer).getBigUint64(0, true) & ~((1n << BigInt(SIGKILL - 1)) | (1n << BigInt(SIGSTOP - 1)));
    if (how === 0) nextMask = c.proc.sigmask | m;
    else if (how === 1) nextMask = c.proc.sigmask & ~m;
    else if (how === 2) nextMask = m;
    else return -E.EINVAL;
  }
  if (oset !== 0) {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setBigUint64(0, c.proc.sigmask, true);
    const w = c.proc.aspace.copyout(c.cpu, oset, new Uint8Array(dv.buffer));
    if (!w.ok) return errno(w.error);
  }
  if (nextMask !== null) c.proc.sigmask = nextMask;
  return 0;
}

/** Sends `sig` to the calling process (the only one a process can reach for now). */
function sendToSelf(c: SysCtx, sig: number): SysRet {
  if (sig < 0 || sig > NSIG) return -E.EINVAL;
  if (sig === 0) return 0;
  const act = c.proc.sigactions.get(sig);
  const handler = act !== undefined ? new DataView(act.buffer, act.byteOffset).getUint32(0, true) : SIG_DFL;
  const ignoredByDefault = sig === SIGCHLD || sig === SIGURG || sig === SIGWINCH || sig === SIGCONT;
  if (handler === SIG_IGN || (handler === SIG_DFL && ignoredByDefault)) return 0;
  if (handler !== SIG_DFL && sig !== SIGKILL) {
    c.k.log.print(c.cpu, `${c.proc.comm}[${c.proc.pid}]: ${signalName(sig)} has a handler; signal delivery is not implemented yet, ignored`);
    return 0;
  }
  c.k.exitProcess(c.cpu, c.proc, 0, sig);
  return NORETURN;
}

function kill(c: SysCtx): SysRet {
  const pid = s32(c.a[0]);
  if (pid !== c.proc.pid && pid !== 0 && pid !== -1) return -E.ESRCH;
  return sendToSelf(c, s32(c.a[1]));
}

function tgkill(c: SysCtx): SysRet {
  const [tgid, tid] = [s32(c.a[0]), s32(c.a[1])];
  if (tgid <= 0 || tid <= 0) return -E.EINVAL;
  if (tgid !== c.proc.pid || !c.proc.threads.some((t) => t.tid === tid)) return -E.ESRCH;
  return sendToSelf(c, s32(c.a[2]));
}

function tkill(c: SysCtx): SysRet {
  const tid = s32(c.a[0]);
  if (tid <= 0) return -E.EINVAL;
  if (!c.proc.threads.some((t) => t.tid === tid)) return -E.ESRCH;
  return sendToSelf(c, s32(c.a[1]));
}

export const signalCalls: Record<string, SyscallDef> = {
  rt_sigaction: { name: 'rt_sigaction', args: 'dppu', fn: rtSigaction },
  rt_sigprocmask: { name: 'rt_sigprocmask', args: 'dppu', fn: rtSigprocmask },
  kill: { name: 'kill', args: 'dd', fn: kill },
  tgkill: { name: 'tgkill', args: 'ddd', fn: tgkill },
  tkill: { name: 'tkill', args: 'dd', fn: tkill },
};
