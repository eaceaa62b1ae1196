/**
 * wait4, waitpid and waitid: a parent reaps its ended children (zombies). pid -1: any child; > 0: that
 * child; 0: any child in the caller's process group; < -1: any child in group -pid. The status
 * word is Linux's: exit code << 8, or the number of the signal that killed it. WNOHANG returns
 * 0 while matching children still run; with no matching child at all the call fails with
 * ECHILD. The rusage, when asked for, is zeroed (the LWK does not account children's times).
 * Children are reaped in the order they were created. The caller blocks interruptibly
 * (syscalls/block.ts) until a child ends (kernel.ts wakes the parent's waiters), then looks
 * again. Any thread of the process may reap any child of the process. Stopped and continued
 * children do not exist in the LWK (WUNTRACED and WCONTINUED never report anything).
 */
import type { Process } from '../proc/process.ts';
import { CLD_EXITED, CLD_KILLED, SIGCHLD } from '../proc/signals.ts';
import { waitAndRetry } from './block.ts';
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

export const WNOHANG = 1, WUNTRACED = 2, WEXITED = 4, WCONTINUED = 8, WNOWAIT = 0x01000000;
const __WNOTHREAD = 0x20000000, __WALL = 0x40000000, __WCLONE = 0x80000000;
const RUSAGE_BYTES = 72; // i386 struct rusage: two timevals and 14 longs
const SIGINFO_BYTES = 128;

function matches(c: SysCtx, child: Process, pid: number): boolean {
  if (pid > 0) return child.pid === pid;
  if (pid === -1) return true;
  if (pid === 0) return child.pgid === c.proc.pgid;
  return child.pgid === -pid;
}

/** What a reaped (or, with WNOWAIT, seen) child reports. */
type Report = (c: SysCtx, child: Process) => number;

/** The reaped child's pid, 0 (WNOHANG, none ended yet), a negative errno, or null: block. */
function tryWait(c: SysCtx, pid: number, options: number, report: Report): number | null {
  let any = false;
  let zombie: Process | null = null;
  for (const p of c.k.processes.values()) {
    if (p.ppid !== c.proc.pid || !matches(c, p, pid)) continue;
    any = true;
    if (p.state === 'zombie' && (zombie === null || p.pid < zombie.pid)) zombie = p;
  }
  if (!any) return -E.ECHILD;
  if (zombie === null) return (options & WNOHANG) !== 0 ? 0 : null;
  const r = report(c, zombie);
  if (r < 0) return r;
  if ((options & WNOWAIT) === 0) c.k.processes.delete(zombie.pid);
  return zombie.pid;
}

function put(c: SysCtx, addr: number, bytes: Uint8Array): number {
  if (addr === 0) return 0;
  const w = c.proc.aspace.copyout(c.cpu, addr, bytes);
  return w.ok ? 0 : errno(w.error);
}

/** Blocks until a child changes state, then looks again. */
function sleepOnChildren(c: SysCtx): SysRet {
  const waiters = c.proc.childWaiters;
  return waitAndRetry(c, (t) => waiters.add(t), (t) => waiters.delete(t));
}

function wait4(c: SysCtx, pid: number, statusPtr: number, options: number, rusage: number): SysRet {
  if ((options & ~(WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WALL | __WCLONE)) !== 0) return -E.EINVAL;
  const r = tryWait(c, pid, options, (cc, child) => {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setInt32(0, child.waitStatus, true);
    return put(cc, statusPtr, new Uint8Array(dv.buffer)) || put(cc, rusage, new Uint8Array(RUSAGE_BYTES));
  });
  return r !== null ? r : sleepOnChildren(c);
}

const P_ALL = 0, P_PID = 1, P_PGID = 2;

/**
 * waitid(idtype, id, infop, options, rusage): the same, reported as a siginfo (si_signo
 * SIGCHLD, si_code CLD_EXITED or CLD_KILLED, si_pid, si_uid, si_status); WEXITED is required
 * (the LWK has no stopped children); WNOWAIT leaves the child a zombie. Returns 0; with WNOHANG
 * and nothing to report, the siginfo is zeroed.
 */
function waitid(c: SysCtx): SysRet {
  const [idtype, id, infop, options, rusage] = c.a;
  if ((options & ~(WNOHANG | WEXITED | WUNTRACED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WALL | __WCLONE)) !== 0) return -E.EINVAL;
  if ((options & (WEXITED | WUNTRACED | WCONTINUED)) === 0) return -E.EINVAL;
  let pid: number;
  if (idtype === P_ALL) pid = -1;
  else if (idtype === P_PID) { if (s32(id) <= 0) return -E.EINVAL; pid = s32(id); }
  else if (idtype === P_PGID) { if (s32(id) < 0) return -E.EINVAL; pid = id === 0 ? 0 : -s32(id); }
  else return -E.EINVAL;
  if ((options & WEXITED) === 0) return (options & WNOHANG) !== 0 ? 0 : sleepOnChildren(c); // only stops asked for: none ever come
  const r = tryWait(c, pid, options, (cc, child) => {
    const dv = new DataView(new ArrayBuffer(SIGINFO_BYTES));
    const killed = child.termSignal !== 0;
    dv.setInt32(0, SIGCHLD, true);
    dv.setInt32(8, killed ? CLD_KILLED : CLD_EXITED, true);
    dv.setInt32(12, child.pid, true);
    dv.setInt32(16, 0, true);
    dv.setInt32(20, killed ? child.termSignal : (child.exitCode ?? 0), true);
    return put(cc, infop, new Uint8Array(dv.buffer)) || put(cc, rusage, new Uint8Array(RUSAGE_BYTES));
  });
  if (r === null) return sleepOnChildren(c);
  if (r === 0) { const z = put(c, infop, new Uint8Array(SIGINFO_BYTES)); if (z < 0) return z; }
  return r < 0 ? r : 0;
}

export const waitCalls: Record<string, SyscallDef> = {
  wait4: { name: 'wait4', args: 'dpxp', fn: (c) => wait4(c, s32(c.a[0]), c.a[1], c.a[2], c.a[3]) },
  waitpid: { name: 'waitpid', args: 'dpx', fn: (c) => wait4(c, s32(c.a[0]), c.a[1], c.a[2], 0) },
  waitid: { name: 'waitid', args: 'ddpxp', fn: waitid },
};
