/**
 * clone and clone3 (Linux kernel/fork.c), and the one routine fork and vfork share with them
 * (syscalls/fork.ts).
 *
 *   CLONE_THREAD (with CLONE_VM and CLONE_SIGHAND, as pthread_create asks): a new thread of
 *     the calling process, with its own tid, on the core the scheduler places it (the least
 *     loaded); the registers are the caller's, except EAX = 0 and ESP = the new stack.
 *   otherwise: a new process. Without CLONE_VM it gets an eager copy of the address space in
 *     new contiguous memory (AddressSpace.fork: no copy-on-write, as Kitten); with CLONE_VM it
 *     shares the caller's (vfork, posix_spawn), until it execs or ends. Its descriptor table is
 *     a copy naming the same open files (shared offsets), or the same table with CLONE_FILES;
 *     its signal dispositions are copies (also with CLONE_SIGHAND: not shared); its
 *     working directory, process group and session are inherited; its exit signal is the
 *     flags' low byte (wait4 reports every child, whatever its exit signal).
 *   CLONE_SETTLS: the new thread's TLS descriptor from a struct user_desc (i386: a pointer).
 *   CLONE_PARENT_SETTID / CLONE_CHILD_SETTID: the new tid stored in the parent's / child's
 *     memory; CLONE_CHILD_CLEARTID: the word zeroed and futex-woken when the thread exits.
 *   CLONE_VFORK: the caller sleeps until the child execs or ends.
 *   Either way the new thread starts with its creator's signal mask (masks are per thread).
 *   CLONE_FS, CLONE_SYSVSEM, CLONE_IO: accepted (the LWK has one working directory per
 *     process, copied; no System V semaphores). Namespaces, CLONE_PIDFD, CLONE_PTRACE: -EINVAL.
 */
import { charge } from '../costs.ts';
import { descriptorFromUserDesc, GDT_ENTRY_TLS_MAX, GDT_ENTRY_TLS_MIN, parseUserDescFlags } from '../gdt.ts';
import type { AddressSpace } from '../mm/aspace.ts';
import { Process } from '../proc/process.ts';
import { saveUserContext } from '../sched/context.ts';
import { Thread, UserContext } from '../sched/thread.ts';
import { E } from './errno.ts';
import { errno, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

export const CLONE_VM = 0x100, CLONE_FS = 0x200, CLONE_FILES = 0x400, CLONE_SIGHAND = 0x800;
export const CLONE_PIDFD = 0x1000, CLONE_PTRACE = 0x2000, CLONE_VFORK = 0x4000, CLONE_PARENT = 0x8000;
export const CLONE_THREAD = 0x10000, CLONE_NEWNS = 0x20000, CLONE_SYSVSEM = 0x40000, CLONE_SETTLS = 0x80000;
export const CLONE_PARENT_SETTID = 0x100000, CLONE_CHILD_CLEARTID = 0x200000, CLONE_DETACHED = 0x400000;
export const CLONE_UNTRACED = 0x800000, CLONE_CHILD_SETTID = 0x1000000, CLONE_IO = 0x80000000;
/** Namespaces and the rest the LWK does not have. */
const UNSUPPORTED = 0x7e000000 | CLONE_NEWNS | CLONE_PIDFD | CLONE_PTRACE;
const CSIGNAL = 0xff;

export interface CloneArgs {
  /** The CLONE_* flags (without the exit signal). */
  flags: number;
  /** The signal the parent gets when a new process ends (0: none). */
  exitSignal: number;
  /** The child's stack pointer (0: the caller's). */
  stack: number;
  parentTid: number;
  childTid: number;
  /** CLONE_SETTLS: the address of a struct user_desc. */
  tls: number;
}

function putTid(c: SysCtx, as: AddressSpace, addr: number, tid: number): boolean {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setInt32(0, tid, true);
  return as.copyout(c.cpu, addr, new Uint8Array(dv.buffer)).ok;
}

/** The new thread's registers: the caller's as they are on the core, EAX = 0, ESP = the new stack, its TLS. */
function childContext(c: SysCtx, a: CloneArgs): UserContext | number {
  const ctx = new UserContext();
  saveUserContext(c.cpu, ctx);
  ctx.regs[0] = 0;
  if (a.stack !== 0) ctx.regs[4] = a.stack | 0;
  const mine = c.thread.user!.tls;
  for (let k = 0; k < mine.length; k++) ctx.tls[k] = mine[k];
  if ((a.flags & CLONE_SETTLS) !== 0) {
    const r = c.proc.aspace.copyin(c.cpu, a.tls, 16);
    if (!r.ok) return errno(r.error);
    const dv = new DataView(r.value.buffer);
    const u = parseUserDescFlags(dv.getInt32(0, true), dv.getUint32(4, true), dv.getUint32(8, true), dv.getUint32(12, true));
    const idx = u.entryNumber;
    if (idx < GDT_ENTRY_TLS_MIN || idx > GDT_ENTRY_TLS_MAX) return -E.EINVAL;
    if (u.contents === 3 && u.segNotPresent === 0) return -E.EINVAL;
    ctx.tls[idx - GDT_ENTRY_TLS_MIN] = descriptorFromUserDesc(u);
  }
  return ctx;
}

/** clone's work for clone, clone3, fork and vfork: the new tid/pid, a negative errno, or a block (CLONE_VFORK). */
export function doClone(c: SysCtx, a: CloneArgs): SysRet {
  const f = a.flags;
  if ((f & UNSUPPORTED) !== 0) return -E.EINVAL;
  if ((f & CLONE_THREAD) !== 0 && (f & CLONE_SIGHAND) === 0) return -E.EINVAL;
  if ((f & CLONE_SIGHAND) !== 0 && (f & CLONE_VM) === 0) return -E.EINVAL;
  if (a.exitSignal < 0 || a.exitSignal > 64) return -E.EINVAL;
  const k = c.k, proc = c.proc;
  if (proc.exiting || c.thread.killed) return -E.EAGAIN; // the process is ending: no new threads
  const ctx = childContext(c, a);
  if (typeof ctx === 'number') return ctx;

  if ((f & CLONE_THREAD) !== 0) {
    charge(c.cpu, 'threadCreate');
    const tid = k.allocPid();
    const t = Thread.user(tid, proc.comm, k.sched.place(), proc, ctx);
    t.sigmask = c.thread.sigmask; // the creator's mask
    if ((f & CLONE_CHILD_CLEARTID) !== 0) t.clearChildTid = a.childTid;
    if ((f & CLONE_PARENT_SETTID) !== 0 && !putTid(c, proc.aspace, a.parentTid, tid)) return -E.EFAULT;
    if ((f & CLONE_CHILD_SETTID) !== 0 && !putTid(c, proc.aspace, a.childTid, tid)) return -E.EFAULT;
    proc.threads.push(t);
    k.sched.add(c.cpu, t);
    return tid;
  }

  // a new process
  charge(c.cpu, 'processCreate');
  let as: AddressSpace;
  if ((f & CLONE_VM) !== 0) as = proc.aspace;
  else {
    const copy = proc.aspace.fork(c.cpu);
    if (!copy.ok) return -E.ENOMEM;
    as = copy.value;
    k.hookInvalidate(as);
  }
  const pid = k.allocPid();
  if ((f & CLONE_PARENT_SETTID) !== 0 && !putTid(c, proc.aspace, a.parentTid, pid)) {
    if (as !== proc.aspace) as.destroy(c.cpu);
    return -E.EFAULT;
  }
  if ((f & CLONE_CHILD_SETTID) !== 0 && !putTid(c, as, a.childTid, pid)) {
    if (as !== proc.aspace) as.destroy(c.cpu);
    return -E.EFAULT;
  }
  k.retainAspace(as);
  const child = new Process(pid, (f & CLONE_PARENT) !== 0 ? proc.ppid : proc.pid, proc.exe, proc.argv, as, c.cpu.cycles);
  child.image = proc.image;
  child.comm = proc.comm;
  child.pgid = proc.pgid;
  child.sid = proc.sid;
  child.cwd = proc.cwd;
  child.files = (f & CLONE_FILES) !== 0 ? proc.files : proc.files.clone();
  child.copySignalsFrom(proc);
  child.exitSignal = a.exitSignal;
  const t = Thread.user(pid, child.comm, k.sched.place(), child, ctx);
  t.sigmask = c.thread.sigmask; // the creator's mask
  if ((f & CLONE_CHILD_CLEARTID) !== 0) t.clearChildTid = a.childTid;
  child.threads.push(t);
  k.processes.set(pid, child);
  k.sched.add(c.cpu, t);
  if ((f & CLONE_VFORK) !== 0) {
    child.vforkParent = c.thread;
    return { kind: 'block', until: Infinity, onResume: () => pid };
  }
  return pid;
}

/** clone(flags, newsp, parent_tidptr, tls, child_tidptr): i386 argument order. */
function clone(c: SysCtx): SysRet {
  const [flags, stack, ptid, tls, ctid] = c.a;
  return doClone(c, { flags: flags & ~CSIGNAL, exitSignal: flags & CSIGNAL, stack, parentTid: ptid, childTid: ctid, tls });
}

/** struct clone_args (u64 fields): flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup. */
function clone3(c: SysCtx): SysRet {
  const [uargs, size] = c.a;
  if (size < 64 || size > 4096) return -E.EINVAL;
  const r = c.proc.aspace.copyin(c.cpu, uargs, size);
  if (!r.ok) return errno(r.error);
  const dv = new DataView(r.value.buffer);
  const u64 = (i: number): bigint => dv.getBigUint64(i * 8, true);
  for (let i = 11; i * 8 + 8 <= size; i++) if (u64(i) !== 0n) return -E.E2BIG; // fields we do not know must be 0
  const flags = u64(0), exitSignal = u64(4), stack = u64(5), stackSize = u64(6);
  if (flags > 0xffffffffn || (flags & 0xffn) !== 0n || exitSignal > 64n) return -E.EINVAL;
  if (u64(9) !== 0n || (size >= 88 && u64(10) !== 0n)) return -E.EINVAL; // set_tid, cgroup
  if ((stack === 0n) !== (stackSize === 0n)) return -E.EINVAL;
  const top = stack + stackSize;
  if (top > 0xffffffffn) return -E.EINVAL;
  return doClone(c, {
    flags: Number(flags), exitSignal: Number(exitSignal), stack: Number(top),
    parentTid: Number(u64(3) & 0xffffffffn), childTid: Number(u64(2) & 0xffffffffn), tls: Number(u64(7) & 0xffffffffn),
  });
}

export const cloneCalls: Record<string, SyscallDef> = {
  clone: { name: 'clone', args: 'xpppp', fn: clone },
  clone3: { name: 'clone3', args: 'pu', fn: clone3 },
};
