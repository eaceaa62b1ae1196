/**
 * Signals (Linux i386): numbers, default actions, sending, and delivery to user handlers with
 * the signal frames Linux builds on the user stack (arch/x86/kernel/signal.c, ia32 layout).
 *
 * Masks and pending sets are Linux's: each thread has its own mask (Thread.sigmask: a new
 * thread or process starts with its creator's) and its own pending set, and the process has a
 * shared one. kill and SIGCHLD are process-directed: the signal is queued in the shared set and
 * given to a thread that does not block it (the main thread if it does not, else the first
 * that does not): that thread takes it, not another one passing by on its way out (Linux's
 * TIF_SIGPENDING; a thread that changes its mask looks again, recalc_sigpending). tgkill,
 * tkill, faults and SIGPIPE are thread-directed: queued for that thread only. A thread takes
 * its own signals first, then the shared ones.
 *
 * Sending (sendSignal): SIGKILL ends the process at once; a signal whose action is to ignore it
 * (SIG_IGN, or SIG_DFL of SIGCHLD, SIGCONT, SIGURG, SIGWINCH, and the stop signals, which the
 * LWK does not implement: they are ignored) is dropped unless the named thread blocks it;
 * otherwise it becomes pending (standard signals do not queue: the first siginfo is kept). A
 * default action that ends the process is taken at once (the whole group ends) unless the
 * thread to take it is the sender itself, which takes it on its way out; otherwise the thread
 * chosen is woken from an interruptible wait (syscalls/block.ts: the call returns -EINTR or
 * restarts per SA_RESTART), or interrupted by a reschedule IPI when it runs on another core.
 *
 * Delivery (deliverSignals), on every return to user mode (after the trap's scheduling
 * decision): the next pending signal the thread now on the core does not block (faults first,
 * then the lowest number; its own set before the process's), counted in the core's noise
 * accounting: default action
 * (term, core: the process ends with it and the status shows it; `run` exits 128 + signo), or
 * a frame on the user stack and EIP at the handler:
 *   sigframe (no SA_SIGINFO):  pretcode, sig, sigcontext (88), fpstate (624, unused), extramask, retcode
 *   rt_sigframe (SA_SIGINFO):  pretcode, sig, pinfo, puc, siginfo (128), ucontext (116), retcode
 * aligned as Linux does ((sp + 4) & -16) - 4 for the handler's entry); pretcode is the
 * restorer (SA_RESTORER, glibc's __restore/__restore_rt) or the retcode on the stack. EAX =
 * signo, EDX = &info, ECX = &uc (the regparm convention of i386 handlers). The FPU state is not
 * saved (the emulated core has no x87 yet; sigcontext.fpstate = 0). sigaltstack (SA_ONSTACK)
 * is not supported: frames always go on the current stack.
 *
 * sigreturn/rt_sigreturn restore the registers and the thread's mask from the frame
 * (restoreFrame). A thread that blocks a signal pending for the process passes it on to a thread
 * that does not (setSigmask).
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../hw/cpu/insn.ts';
import { charge } from '../costs.ts';
import { USER_CS, USER_DS } from '../gdt.ts';
import type { Kernel } from '../kernel.ts';
import { VEC_RESCHED } from '../sched/scheduler.ts';
import type { Thread } from '../sched/thread.ts';
import type { Process } from './process.ts';

export const SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7, SIGFPE = 8;
export const SIGKILL = 9, SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12, SIGPIPE = 13, SIGALRM = 14, SIGTERM = 15;
export const SIGCHLD = 17, SIGCONT = 18, SIGSTOP = 19, SIGTSTP = 20, SIGTTIN = 21, SIGTTOU = 22, SIGURG = 23, SIGWINCH = 28, SIGSYS = 31;
export const NSIG = 64;

export const SIG_DFL = 0, SIG_IGN = 1;
export const SA_NOCLDSTOP = 1, SA_NOCLDWAIT = 2, SA_SIGINFO = 4, SA_RESTORER = 0x04000000, SA_ONSTACK = 0x08000000;
export const SA_RESTART = 0x10000000, SA_NODEFER = 0x40000000, SA_RESETHAND = 0x80000000;
/** si_code values. */
export const SI_USER = 0, SI_KERNEL = 0x80, SI_TKILL = -6, CLD_EXITED = 1, CLD_KILLED = 2, CLD_DUMPED = 3;

export const NR_SIGRETURN = 119, NR_RT_SIGRETURN = 173;

export const SIGNAL_NAMES: Readonly<Record<number, string>> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
  16: 'SIGSTKFLT', 17: 'SIGCHLD', 18: 'SIGCONT', 19: 'SIGSTOP', 20: 'SIGTSTP', 21: 'SIGTTIN', 22: 'SIGTTOU',
  23: 'SIGURG', 24: 'SIGXCPU', 25: 'SIGXFSZ', 26: 'SIGVTALRM', 27: 'SIGPROF', 28: 'SIGWINCH', 29: 'SIGIO',
  30: 'SIGPWR', 31: 'SIGSYS',
};

export function signalName(sig: number): string { return SIGNAL_NAMES[sig] ?? `SIG${sig}`; }

/** The signal Linux sends for a user-mode exception with this vector. */
export function signalForException(vector: number): number {
  switch (vector) {
    case 0: return SIGFPE;   // #DE divide error
    case 1: return SIGTRAP;  // #DB
    case 3: return SIGTRAP;  // #BP
    case 4: return SIGSEGV;  // #OF
    case 5: return SIGSEGV;  // #BR
    case 6: return SIGILL;   // #UD
    case 7: return SIGILL;   // #NM: no FPU to emulate
    case 11: return SIGBUS;  // #NP
    case 12: return SIGBUS;  // #SS
    case 16: return SIGFPE;  // #MF
    case 17: return SIGBUS;  // #AC
    case 19: return SIGFPE;  // #XM
    default: return SIGSEGV; // #TS, #GP, #PF and the rest
  }
}

/** Default actions that end the process with a core dump (the shell's "(core dumped)"). */
export function dumpsCore(sig: number): boolean {
  return [SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS, 24, 25].includes(sig);
}

export type DefaultAction = 'term' | 'core' | 'ignore' | 'stop';

export function defaultAction(sig: number): DefaultAction {
  if (sig === SIGCHLD || sig === SIGCONT || sig === SIGURG || sig === SIGWINCH) return 'ignore';
  if (sig === SIGSTOP || sig === SIGTSTP || sig === SIGTTIN || sig === SIGTTOU) return 'stop';
  return dumpsCore(sig) ? 'core' : 'term';
}

const bit = (sig: number): bigint => 1n << BigInt(sig - 1);
const UNBLOCKABLE = bit(SIGKILL) | bit(SIGSTOP);

/** An installed action (the i386 struct sigaction of rt_sigaction: handler, flags, restorer, mask). */
export interface SigAction { handler: number; flags: number; restorer: number; mask: bigint }

export function parseAction(raw: Uint8Array | undefined): SigAction {
  if (raw === undefined) return { handler: SIG_DFL, flags: 0, restorer: 0, mask: 0n };
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  return { handler: dv.getUint32(0, true), flags: dv.getUint32(4, true), restorer: dv.getUint32(8, true), mask: dv.getBigUint64(12, true) };
}

export function encodeAction(a: SigAction): Uint8Array {
  const dv = new DataView(new ArrayBuffer(20));
  dv.setUint32(0, a.handler >>> 0, true);
  dv.setUint32(4, a.flags >>> 0, true);
  dv.setUint32(8, a.restorer >>> 0, true);
  dv.setBigUint64(12, a.mask, true);
  return new Uint8Array(dv.buffer);
}

export function actionOf(proc: Process, sig: number): SigAction { return parseAction(proc.sigactions.get(sig)); }

/** The siginfo fields the LWK fills (the rest of the 128 bytes are zero). */
export interface SigInfo { signo: number; code: number; pid?: number; uid?: number; status?: number; addr?: number }

/**
 * Pending signals, as Linux keeps them: a process's shared set (kill, SIGCHLD: any thread that
 * does not block the signal may take it) and each thread's own (tgkill, tkill, a fault, the
 * writer's SIGPIPE: only that thread takes it). Standard signals do not queue: one each, with
 * the first siginfo.
 */
interface Pending { set: bigint; info: Map<number, SigInfo> }
const sharedOf = new WeakMap<Process, Pending>();
const privateOf = new WeakMap<Thread, Pending>();

function pendingIn<K extends object>(m: WeakMap<K, Pending>, key: K): Pending {
  let p = m.get(key);
  if (p === undefined) { p = { set: 0n, info: new Map() }; m.set(key, p); }
  return p;
}

/** What `t` of `proc` sees pending (its own set and the process's), for rt_sigpending and tests. */
export function pendingSet(proc: Process, t: Thread): bigint {
  return (sharedOf.get(proc)?.set ?? 0n) | (privateOf.get(t)?.set ?? 0n);
}

/** Signals Linux takes first from a set (SYNCHRONOUS_MASK: the faults). */
const SYNCHRONOUS = bit(SIGSEGV) | bit(SIGBUS) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGFPE) | bit(SIGSYS);

function first(set: bigint): number {
  const sync = set & SYNCHRONOUS;
  const from = sync !== 0n ? sync : set;
  for (let s = 1; s <= NSIG; s++) if ((from & bit(s)) !== 0n) return s;
  return 0;
}

/**
 * Threads told to look at the process's pending signals (Linux's TIF_SIGPENDING): the thread a
 * process-directed signal was given to, and a thread whose mask change left a shared signal
 * deliverable (recalc_sigpending). Another thread does not take a shared signal on its way out,
 * even if it does not block it: as on Linux, the one chosen does.
 */
const told = new WeakSet<Thread>();

/** The signal `t` would take now and the set it is queued in (the thread's own first, as dequeue_signal), or null. */
function nextSignal(proc: Process, t: Thread): { sig: number; q: Pending } | null {
  const own = privateOf.get(t);
  if (own !== undefined) {
    const ready = own.set & ~t.sigmask;
    if (ready !== 0n) return { sig: first(ready), q: own };
  }
  const shared = sharedOf.get(proc);
  if (shared !== undefined && told.has(t)) {
    const ready = shared.set & ~t.sigmask;
    if (ready !== 0n) return { sig: first(ready), q: shared };
  }
  return null;
}

/** The pending signal thread `t` of `proc` would take now (not blocked by `t`), or 0. */
export function deliverable(proc: Process, t: Thread): number {
  return nextSignal(proc, t)?.sig ?? 0;
}

/** Whether the signal's action is to ignore it (dropped when sent, unless blocked). */
function ignored(proc: Process, sig: number): boolean {
  const a = actionOf(proc, sig);
  if (a.handler === SIG_IGN) return true;
  if (a.handler !== SIG_DFL) return false;
  const d = defaultAction(sig);
  return d === 'ignore' || d === 'stop';
}

/** Whether the action is a default one that ends the process. */
function fatal(proc: Process, sig: number): boolean {
  if (actionOf(proc, sig).handler !== SIG_DFL) return false;
  const d = defaultAction(sig);
  return d === 'term' || d === 'core';
}

/**
 * rt_sigaction made the signal ignored: its pending instances are discarded, in the process's
 * set and every thread's (POSIX; Linux's do_sigaction).
 */
export function discardIfIgnored(proc: Process, sig: number): void {
  if (!ignored(proc, sig)) return;
  const drop = (p: Pending | undefined): void => { if (p !== undefined) { p.set &= ~bit(sig); p.info.delete(sig); } };
  drop(sharedOf.get(proc));
  for (const t of proc.threads) drop(privateOf.get(t));
}

/** The mask to save in the next frame instead of the one in use (rt_sigsuspend's caller's mask), by thread. */
export const savedMask = new WeakMap<Thread, bigint>();

/** Threads blocked interruptibly (syscalls/block.ts): a signal wakes them. */
export const interruptible = new WeakSet<Thread>();

/** The process's main thread (tid = pid), while it lives. */
function mainThread(proc: Process): Thread | undefined { return proc.threads.find((t) => t.tid === proc.pid); }

/** Linux's wants_signal: a live thread that does not block `sig`, and is running or has not been told of another signal yet. */
function wants(t: Thread, sig: number): boolean {
  return t.state !== 'dead' && !t.killed && (t.sigmask & bit(sig)) === 0n && (t.state === 'running' || !told.has(t));
}

/**
 * The thread that takes a process-directed signal (Linux's complete_signal): the suggested one
 * (the main thread) if it does not block it, else the first thread that does not; null when
 * every thread blocks it (it stays pending until one unblocks it).
 */
function chooseThread(proc: Process, sig: number, except: Thread | null = null): Thread | null {
  const m = mainThread(proc);
  if (m !== undefined && m !== except && wants(m, sig)) return m;
  return proc.threads.find((t) => t !== except && wants(t, sig)) ?? null;
}

/** Tells thread `t` that it has a signal to take: wakes it from an interruptible sleep, or interrupts its core. */
function notify(k: Kernel, cpu: Cpu, t: Thread): void {
  told.add(t);
  if (t.state === 'sleeping' && interruptible.has(t)) k.sched.wake(cpu, t);
  else if (t.state === 'running' && t.core !== k.coreOf(cpu)) k.apic.sendIpi(cpu, k.percpu[t.core].apicId, VEC_RESCHED); // it takes the signal at its next trap
}

/**
 * Sends `sig` to `proc` (kill, SIGCHLD), or to its thread `thread` (tgkill, tkill, SIGPIPE).
 * `cpu` is the core the kernel runs on. Signal 0 only checks. The caller checked permissions
 * and the range.
 */
export function sendSignal(k: Kernel, cpu: Cpu, proc: Process, sig: number, info: SigInfo, thread: Thread | null = null): void {
  if (sig === 0 || proc.exitCode !== null) return;
  if (sig === SIGKILL) { k.exitProcess(cpu, proc, 0, SIGKILL); return; }
  // Linux's sig_ignored looks at the mask of the thread named (the main thread for kill)
  const named = thread ?? mainThread(proc);
  const blocked = named !== undefined && (named.sigmask & bit(sig)) !== 0n;
  if (!blocked && ignored(proc, sig)) {
    if (defaultAction(sig) === 'stop' && actionOf(proc, sig).handler === SIG_DFL) {
      k.log.print(cpu, `${proc.comm}[${proc.pid}]: ${signalName(sig)}: stopping is not supported by the LWK, ignored`);
    }
    return;
  }
  const q = thread !== null ? pendingIn(privateOf, thread) : pendingIn(sharedOf, proc);
  if ((q.set & bit(sig)) === 0n) { q.set |= bit(sig); q.info.set(sig, info); }
  const target = thread !== null ? (wants(thread, sig) ? thread : null) : chooseThread(proc, sig);
  if (target === null) return; // blocked: it waits for a thread to unblock it
  if (fatal(proc, sig) && k.sched.current(k.coreOf(cpu)) !== target) {
    // a default action that ends the process takes the whole group down now (complete_signal);
    // a thread sending it to itself takes it on its way back to user mode
    q.set &= ~bit(sig);
    q.info.delete(sig);
    k.exitProcess(cpu, proc, 0, sig);
    return;
  }
  notify(k, cpu, target);
}

/**
 * Thread `t` of `proc` now blocks `mask` (rt_sigprocmask, rt_sigsuspend, sigreturn). Signals
 * pending for the whole process that it no longer takes go to another thread that can (Linux's
 * retarget_shared_pending).
 */
export function setSigmask(k: Kernel, cpu: Cpu, proc: Process, t: Thread, mask: bigint): void {
  const newlyBlocked = mask & ~t.sigmask;
  t.sigmask = mask & ~UNBLOCKABLE;
  const shared = sharedOf.get(proc);
  if (shared !== undefined && (shared.set & ~t.sigmask) !== 0n) told.add(t); // recalc_sigpending
  retarget(k, cpu, proc, newlyBlocked, t);
}

/**
 * A thread of `proc` has left (Kernel.threadGone): the signals pending for the whole process go
 * to the threads that remain (retarget_shared_pending at exit).
 */
export function retargetShared(k: Kernel, cpu: Cpu, proc: Process): void {
  if (proc.exitCode === null) retarget(k, cpu, proc, ~0n, null);
}

function retarget(k: Kernel, cpu: Cpu, proc: Process, which: bigint, except: Thread | null): void {
  const shared = sharedOf.get(proc);
  const moved = shared === undefined ? 0n : shared.set & which;
  if (moved === 0n) return;
  for (let s = 1; s <= NSIG; s++) {
    if ((moved & bit(s)) === 0n) continue;
    const other = chooseThread(proc, s, except);
    if (other !== null) notify(k, cpu, other);
  }
}

// ============================================================================ delivery

const SIGCONTEXT = 88, SIGINFO = 128, UCONTEXT = 116, FPSTATE_UNUSED = 624;
const RT_FRAME = 16 + SIGINFO + UCONTEXT + 8; // 268
const OLD_FRAME = 8 + SIGCONTEXT + FPSTATE_UNUSED + 4 + 8; // 732
const TF = 0x100, DF = 0x400, RF = 0x10000;
/** The EFLAGS bits sigreturn restores (Linux's FIX_EFLAGS). */
const FIX_EFLAGS = 0x40000 | 0x800 | 0x400 | 0x100 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x10000;

function putSigcontext(dv: DataView, at: number, cpu: Cpu, oldmask: bigint, trapno: number, err: number, cr2: number): void {
  const r = cpu.r, sel = cpu.segSel;
  dv.setUint32(at + 0, sel[GS] & 0xffff, true);
  dv.setUint32(at + 4, sel[FS] & 0xffff, true);
  dv.setUint32(at + 8, sel[ES] & 0xffff, true);
  dv.setUint32(at + 12, sel[DS] & 0xffff, true);
  dv.setUint32(at + 16, r[7] >>> 0, true); // edi
  dv.setUint32(at + 20, r[6] >>> 0, true); // esi
  dv.setUint32(at + 24, r[5] >>> 0, true); // ebp
  dv.setUint32(at + 28, r[4] >>> 0, true); // esp
  dv.setUint32(at + 32, r[3] >>> 0, true); // ebx
  dv.setUint32(at + 36, r[2] >>> 0, true); // edx
  dv.setUint32(at + 40, r[1] >>> 0, true); // ecx
  dv.setUint32(at + 44, r[0] >>> 0, true); // eax
  dv.setUint32(at + 48, trapno, true);
  dv.setUint32(at + 52, err, true);
  dv.setUint32(at + 56, cpu.eip >>> 0, true);
  dv.setUint32(at + 60, sel[CS] & 0xffff, true);
  dv.setUint32(at + 64, cpu.getEflags() >>> 0, true);
  dv.setUint32(at + 68, r[4] >>> 0, true); // esp at signal
  dv.setUint32(at + 72, sel[SS] & 0xffff, true);
  dv.setUint32(at + 76, 0, true); // fpstate: none (no x87 state saved)
  dv.setUint32(at + 80, Number(oldmask & 0xffffffffn), true);
  dv.setUint32(at + 84, cr2 >>> 0, true);
}

function putSiginfo(dv: DataView, at: number, i: SigInfo): void {
  dv.setInt32(at, i.signo, true);
  dv.setInt32(at + 8, i.code, true);
  if (i.addr !== undefined) { dv.setUint32(at + 12, i.addr >>> 0, true); return; }
  dv.setInt32(at + 12, i.pid ?? 0, true);
  dv.setUint32(at + 16, i.uid ?? 0, true);
  if (i.status !== undefined) dv.setInt32(at + 20, i.status, true);
}

/**
 * Takes the pending signals of the thread now on `core`, on its way back to user mode: default
 * actions, or a handler's frame. Called after every trap's scheduling decision. The cycles of
 * each delivery are recorded in the core's noise accounting (kernel/noise.ts), by signal.
 */
export function deliverSignals(k: Kernel, cpu: Cpu, core: number): void {
  for (let guard = 0; guard < 64; guard++) {
    const t = k.sched.current(core);
    if (t === null || t.owner === null || t.user === null) return;
    const proc = k.processes.get(t.owner.pid);
    if (proc === undefined) return;
    const next = nextSignal(proc, t);
    if (next === null) { told.delete(t); return; }
    const start = cpu.cycles;
    const { sig, q } = next;
    const info = q.info.get(sig) ?? { signo: sig, code: SI_KERNEL };
    q.set &= ~bit(sig);
    q.info.delete(sig);
    const a = actionOf(proc, sig);
    if (k.strace !== null) k.strace(`--- ${signalName(sig)} {si_signo=${signalName(sig)}, si_code=${info.code}${info.addr !== undefined ? `, si_addr=0x${(info.addr >>> 0).toString(16)}` : `, si_pid=${info.pid ?? 0}`}} ---`);
    if (a.handler === SIG_IGN) continue;
    if (a.handler === SIG_DFL) {
      const d = defaultAction(sig);
      if (d === 'ignore' || d === 'stop') continue;
      k.exitProcess(cpu, proc, 0, sig);
    } else if (!setupFrame(k, cpu, core, proc, t, sig, a, info)) {
      // no room for the frame: Linux forces SIGSEGV
      k.log.print(cpu, `${proc.comm}[${proc.pid}]: cannot write the ${signalName(sig)} frame at esp 0x${(cpu.r[4] >>> 0).toString(16)}: SIGSEGV`);
      k.exitProcess(cpu, proc, 0, SIGSEGV);
    } else {
      k.percpu[core].noise.signal(sig, cpu.cycles - start);
      // and on: another pending signal gets its frame on top of this one (its handler runs first), as Linux's exit loop does
      continue;
    }
    k.sched.schedule(cpu, core);
    k.percpu[core].noise.signal(sig, cpu.cycles - start);
  }
}

function setupFrame(k: Kernel, cpu: Cpu, core: number, proc: Process, t: Thread, sig: number, a: SigAction, info: SigInfo): boolean {
  charge(cpu, 'signalDelivery');
  const rt = (a.flags & SA_SIGINFO) !== 0;
  const size = rt ? RT_FRAME : OLD_FRAME;
  let sp = (cpu.r[4] >>> 0) - size;
  sp = (((sp + 4) & ~15) - 4) >>> 0;
  const dv = new DataView(new ArrayBuffer(size));
  const oldmask = savedMask.get(t) ?? t.sigmask;
  savedMask.delete(t);
  const retcodeAt = rt ? RT_FRAME - 8 : OLD_FRAME - 8;
  const pretcode = (a.flags & SA_RESTORER) !== 0 ? a.restorer : sp + retcodeAt;
  dv.setUint32(0, pretcode >>> 0, true);
  dv.setInt32(4, sig, true);
  if (rt) {
    dv.setUint32(8, sp + 16, true);
    dv.setUint32(12, sp + 144, true);
    putSiginfo(dv, 16, info);
    // ucontext: uc_flags 0, uc_link 0, uc_stack {0, SS_DISABLE, 0}, uc_mcontext, uc_sigmask
    dv.setUint32(144 + 12, 2, true);
    putSigcontext(dv, 164, cpu, oldmask, 0, 0, 0);
    dv.setBigUint64(252, oldmask, true);
    // movl $__NR_rt_sigreturn, %eax; int $0x80
    [0xb8, NR_RT_SIGRETURN, 0, 0, 0, 0xcd, 0x80, 0].forEach((b, i) => dv.setUint8(retcodeAt + i, b));
  } else {
    putSigcontext(dv, 8, cpu, oldmask, 0, 0, 0);
    dv.setUint32(8 + SIGCONTEXT + FPSTATE_UNUSED, Number((oldmask >> 32n) & 0xffffffffn), true);
    // popl %eax; movl $__NR_sigreturn, %eax; int $0x80
    [0x58, 0xb8, NR_SIGRETURN, 0, 0, 0, 0xcd, 0x80].forEach((b, i) => dv.setUint8(retcodeAt + i, b));
  }
  const w = proc.aspace.copyout(cpu, sp, new Uint8Array(dv.buffer));
  if (!w.ok) return false;
  const gdt = k.percpu[core].gdt;
  cpu.r[4] = sp | 0;
  cpu.r[0] = sig;
  cpu.r[2] = rt ? (sp + 16) | 0 : 0;
  cpu.r[1] = rt ? (sp + 144) | 0 : 0;
  cpu.eip = a.handler >>> 0;
  gdt.loadSegment(cpu, CS, USER_CS);
  gdt.loadSegment(cpu, SS, USER_DS);
  gdt.loadSegment(cpu, DS, USER_DS);
  gdt.loadSegment(cpu, ES, USER_DS);
  cpu.setEflags(cpu.getEflags() & ~(TF | DF | RF), -1);
  let mask = t.sigmask | a.mask;
  if ((a.flags & SA_NODEFER) === 0) mask |= bit(sig);
  t.sigmask = mask & ~UNBLOCKABLE;
  if ((a.flags & SA_RESETHAND) !== 0) proc.sigactions.set(sig, encodeAction({ ...a, handler: SIG_DFL }));
  return true;
}

/**
 * sigreturn (rt: rt_sigreturn): restores the registers and the signal mask saved in the frame
 * whose sigcontext the stack pointer names. Returns the restored EAX, or null when the frame
 * is unreadable or its segments are not a user's (the caller kills with SIGSEGV).
 */
export function restoreFrame(k: Kernel, cpu: Cpu, core: number, proc: Process, t: Thread, rt: boolean): number | null {
  const esp = cpu.r[4] >>> 0;
  const frame = rt ? esp - 4 : esp - 8;
  const scAt = rt ? 164 : 8;
  const len = rt ? RT_FRAME : OLD_FRAME;
  const r = proc.aspace.copyin(cpu, frame >>> 0, len);
  if (!r.ok) return null;
  const dv = new DataView(r.value.buffer, r.value.byteOffset, r.value.byteLength);
  const mask = rt ? dv.getBigUint64(252, true)
    : BigInt(dv.getUint32(scAt + 80, true)) | (BigInt(dv.getUint32(8 + SIGCONTEXT + FPSTATE_UNUSED, true)) << 32n);
  const g = (off: number): number => dv.getUint32(scAt + off, true);
  const cs = g(60) & 0xffff, ss = g(72) & 0xffff;
  if ((cs & 3) !== 3 || (ss & 3) !== 3) return null;
  const gdt = k.percpu[core].gdt;
  if (!gdt.loadSegment(cpu, CS, cs) || !gdt.loadSegment(cpu, SS, ss)) return null;
  const segs: [number, number][] = [[GS, g(0)], [FS, g(4)], [ES, g(8)], [DS, g(12)]];
  for (const [s, v] of segs) if (!gdt.loadSegment(cpu, s, v & 0xffff)) gdt.loadSegment(cpu, s, 0);
  cpu.r[7] = g(16); cpu.r[6] = g(20); cpu.r[5] = g(24); cpu.r[4] = g(28);
  cpu.r[3] = g(32); cpu.r[2] = g(36); cpu.r[1] = g(40); cpu.r[0] = g(44);
  cpu.eip = g(56) >>> 0;
  const fl = g(64);
  cpu.setEflags((cpu.getEflags() & ~FIX_EFLAGS) | (fl & FIX_EFLAGS), -1);
  setSigmask(k, cpu, proc, t, mask);
  return cpu.r[0];
}

/** execve: handled signals go back to SIG_DFL (ignored ones stay ignored); the mask and pending set stay. */
export function resetHandlersOnExec(proc: Process): void {
  for (const [sig, raw] of [...proc.sigactions]) {
    const a = parseAction(raw);
    if (a.handler !== SIG_IGN && a.handler !== SIG_DFL) proc.sigactions.delete(sig);
  }
}

/**
 * A user-mode exception of thread `t` with a handler installed for its signal (and the signal
 * not blocked by `t`): the signal is queued for that thread with the fault's siginfo (si_addr,
 * si_code) and delivered on the way back, with EIP at the faulting instruction (so a handler
 * that returns retries it, as on Linux). Returns false when the default action applies (the
 * caller kills the process).
 */
export function faultToHandler(proc: Process, t: Thread, cpu: Cpu, sig: number, vector: number, errorCode: number, cr2: number, eip: number): boolean {
  const a = actionOf(proc, sig);
  if (a.handler === SIG_DFL || a.handler === SIG_IGN || (t.sigmask & bit(sig)) !== 0n) return false;
  let code = SI_KERNEL, addr = 0;
  if (vector === 14) { code = (errorCode & 1) !== 0 ? 2 : 1; addr = cr2; } // SEGV_ACCERR / SEGV_MAPERR
  else if (vector === 0) { code = 1; addr = eip; } // FPE_INTDIV
  else if (vector === 6) { code = 2; addr = eip; } // ILL_ILLOPN
  cpu.eip = eip >>> 0;
  const p = pendingIn(privateOf, t);
  p.set |= bit(sig);
  p.info.set(sig, { signo: sig, code, addr });
  return true;
}
