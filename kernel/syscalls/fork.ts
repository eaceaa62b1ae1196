/**
 * fork, vfork, and process groups and sessions (setpgid, getpgid, getpgrp, setsid, getsid).
 *
 * fork is clone(SIGCHLD): the child gets an eager copy of the address space from contiguous
 * memory, a copy of the descriptor table naming the same open files, copies of the signal
 * dispositions and mask, and returns 0; the parent gets the child's pid. vfork is
 * clone(CLONE_VM | CLONE_VFORK | SIGCHLD), as in Linux: the child runs in the parent's memory
 * (no copy) while the parent sleeps until the child execs or ends (syscalls/clone.ts).
 *
 * Process groups and sessions are recorded (inherited across fork, kept across exec) for the
 * programs that set them (shells); there are no terminals, so no job control signals.
 */
import { SIGCHLD } from '../proc/signals.ts';
import { CLONE_VFORK, CLONE_VM, doClone } from './clone.ts';
import { E } from './errno.ts';
import { s32, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

const fork = (c: SysCtx): SysRet => doClone(c, { flags: 0, exitSignal: SIGCHLD, stack: 0, parentTid: 0, childTid: 0, tls: 0 });
const vfork = (c: SysCtx): SysRet => doClone(c, { flags: CLONE_VM | CLONE_VFORK, exitSignal: SIGCHLD, stack: 0, parentTid: 0, childTid: 0, tls: 0 });

/** The live or zombie process `pid` (0: the caller). */
function target(c: SysCtx, pid: number) {
  return pid === 0 ? c.proc : c.k.processes.get(pid);
}

function setpgid(c: SysCtx): number {
  const pid = s32(c.a[0]), pgid = s32(c.a[1]);
  if (pid < 0 || pgid < 0) return -E.EINVAL;
  const p = target(c, pid);
  if (p === undefined || (p !== c.proc && p.ppid !== c.proc.pid)) return -E.ESRCH;
  if (p.sid === p.pid) return -E.EPERM; // a session leader stays in its group
  const g = pgid === 0 ? p.pid : pgid;
  if (g !== p.pid && ![...c.k.processes.values()].some((q) => q.pgid === g && q.sid === p.sid)) return -E.EPERM;
  p.pgid = g;
  return 0;
}

function getpgid(c: SysCtx): number {
  const p = target(c, s32(c.a[0]));
  return p === undefined ? -E.ESRCH : p.pgid;
}

function getsid(c: SysCtx): number {
  const p = target(c, s32(c.a[0]));
  return p === undefined ? -E.ESRCH : p.sid;
}

function setsid(c: SysCtx): number {
  const p = c.proc;
  if (p.pgid === p.pid) return -E.EPERM; // already a process group leader
  p.sid = p.pid;
  p.pgid = p.pid;
  return p.sid;
}

export const forkCalls: Record<string, SyscallDef> = {
  fork: { name: 'fork', args: '', fn: fork },
  vfork: { name: 'vfork', args: '', fn: vfork },
  setpgid: { name: 'setpgid', args: 'dd', fn: setpgid },
  getpgid: { name: 'getpgid', args: 'd', fn: getpgid },
  getpgrp: { name: 'getpgrp', args: '', fn: (c) => c.proc.pgid },
  setsid: { name: 'setsid', args: '', fn: setsid },
  getsid: { name: 'getsid', args: 'd', fn: getsid },
};
