/**
 * The LWK: its state and the operations the trap path, the scheduler and the system calls
 * share. The boot sequence is in boot.ts (Kernel.boot is the image's entry), the trap path in
 * trap.ts, scheduling in sched/, processes in proc/, system calls in syscalls/.
 *
 * The kernel is host software (DESIGN.md): it runs "on" a core only inside that core's host
 * trap (or the boot entry), touches the machine only through its buses (KernelIo: ports,
 * physical memory and MMIO) and the core's registers, and charges every piece of work to the
 * core it runs on.
 */
import type { Cpu, HostHandler, TrapRecord } from '../hw/cpu/cpu.ts';
import { cpuidLookup } from '../hw/cpu/cpuid.ts';
import { writeCr3 } from '../hw/cpu/isa/system.ts';
import { TRAP_EXCEPTION } from '../hw/cpu/traps.ts';
import type { PhysMem } from '../hw/mem/physmem.ts';
import type { BootInfo } from './boot.ts';
import { charge } from './costs.ts';
import type { HostConsoleDriver } from './drivers/hostconsole.ts';
import type { KernelIo } from './drivers/io.ts';
import type { LapicDriver } from './drivers/lapic.ts';
import type { KernelLog } from './log.ts';
import { AddressSpace, coreInvalidator, type KernelSpace, PROT_READ, PROT_WRITE, USER_TOP } from './mm/aspace.ts';
import type { Pmem } from './mm/pmem.ts';
import type { PerCpu } from './percpu.ts';
import { loadElf } from './proc/elf-loader.ts';
import { Process } from './proc/process.ts';
import { actionOf, CLD_EXITED, CLD_KILLED, deliverSignals, faultToHandler, retargetShared, SA_NOCLDWAIT, sendSignal, SIG_IGN, SIGCHLD, signalName } from './proc/signals.ts';
import { FutexTable, futexWakeAt } from './syscalls/futex.ts';
import { emptyFs } from './fs/initramfs.ts';
import type { Vfs } from './fs/vfs.ts';
import { buildStack } from './proc/stack.ts';
import { KernelRandom } from './random.ts';
import type { LwkHost, LwkHostOptions } from './hostif/host.ts';
import type { Scheduler } from './sched/scheduler.ts';
import { startContext } from './sched/context.ts';
import { Thread } from './sched/thread.ts';
import { trapEntry } from './trap.ts';

export type ProfileName = 'lwk' | 'gp';

export interface KernelOptions {
  /** Scheduling profile (sched/profile.ts): 'lwk' (default) or 'gp'. */
  profile?: ProfileName;
  /** The general-purpose profile's tick rate (default 250). */
  hz?: number;
  /** The round-robin quantum in milliseconds (default 10). */
  quantumMs?: number;
  /** Seed of the kernel's random numbers (AT_RANDOM, getrandom). */
  seed?: number;
  /** Bytes of each process's stack region (default 8 MiB, Linux's RLIMIT_STACK). */
  stackSize?: number;
  /** Receives one line per system call (--strace), or null. */
  strace?: ((line: string) => void) | null;
  /** The first process: its image (a boot module's name, default the first module), argv and core. */
  init?: { module?: string; argv?: readonly string[]; core?: number; /** A program of the initramfs, by path (instead of a module). */ path?: string };
  /** The boot module holding the initramfs (a cpio newc archive, kernel/fs/), if any. */
  initrd?: string;
  /** The host interface's streams (kernel/hostif/host.ts; default: console and stderr). */
  host?: LwkHostOptions;
}

/** The environment every process of the LWK starts with (issue 5: a small fixed environment). */
export const FIXED_ENV: readonly string[] = ['PATH=/bin:/usr/bin', 'HOME=/'];

/** Where each core's GDT is mapped, above user space (kernel-only pages, in every address space). */
export const GDT_VA = 0xffc00000;
/** The SYSENTER entry point the MSRs name (the host trap takes SYSENTER in this machine; kept for fidelity). */
export const SYSENTER_ENTRY_VA = 0xffe00000;

export interface SpawnSpec {
  image: Uint8Array;
  /** The path name (AT_EXECFN, /proc/self/exe). */
  path: string;
  argv: readonly string[];
  envp?: readonly string[];
  core: number;
  ppid?: number;
}

export class Kernel implements HostHandler {
  readonly percpu: PerCpu[] = [];
  readonly processes = new Map<number, Process>();
  /** System calls the LWK does not implement, by number (each answered -ENOSYS). */
  readonly unknownSyscalls = new Map<number, number>();
  /** Interrupts on vectors nobody claimed (acknowledged and counted). */
  strayInterrupts = 0;
  /** The first process's pid and, once it has ended, the status `run` exits with. */
  initPid = 0;
  initStatus: number | null = null;
  /** A one-line reason when the kernel could not start the first process. */
  initError: string | null = null;
  strace: ((line: string) => void) | null;
  readonly random: KernelRandom;
  readonly stackSize: number;
  /** The wall-clock time (seconds since 1970) read from the RTC at boot, and the BSP's cycle then. */
  wallAtBoot = 0;
  wallReadCycles = 0;
  private nextPid = 1;
  private readonly coreIndex = new Map<Cpu, number>();

  // set by boot.ts
  pmem!: Pmem;
  kernelSpace!: KernelSpace;
  /** The address space of a core with no process: kernel mappings only. */
  kernelAspace!: AddressSpace;
  private schedRef: Scheduler | null = null;
  /** The scheduler (boot.ts sets it; the kernel then learns of every process thread that ends). */
  get sched(): Scheduler { return this.schedRef!; }
  set sched(s: Scheduler) {
    this.schedRef = s;
    s.onThreadExit = (cpu, t) => this.threadGone(cpu, t);
  }
  /** Futex wait queues (syscalls/futex.ts). */
  readonly futexes = new FutexTable();
  /** The LWK's implementation of the host interface (kernel/hostif/), set up by boot.ts. */
  host: LwkHost | null = null;

  constructor(
    readonly info: BootInfo,
    readonly cores: readonly Cpu[],
    readonly mem: PhysMem,
    readonly io: KernelIo,
    readonly log: KernelLog,
    readonly apic: LapicDriver,
    readonly console: HostConsoleDriver,
    readonly options: KernelOptions,
  ) {
    cores.forEach((c, k) => this.coreIndex.set(c, k));
    this.strace = options.strace ?? null;
    this.random = new KernelRandom(options.seed ?? 0);
    this.stackSize = options.stackSize ?? 8 << 20;
  }

  /** The host handler: every trap of every core (trap.ts). */
  trap(cpu: Cpu, t: TrapRecord): void {
    this.activeCpu = cpu;
    trapEntry(this, cpu, t);
    // the way back to user mode: pending signals of the thread now on the core (proc/signals.ts)
    if (!cpu.guest) deliverSignals(this, cpu, this.coreOf(cpu));
  }

  /** The core whose trap the kernel is handling now (what wake-ups from objects such as pipes come from). */
  activeCpu: Cpu | null = null;
  /** The file system: the initramfs (kernel/fs/), or an empty one with /dev and /proc. */
  fs: Vfs = emptyFs();

  coreOf(cpu: Cpu): number {
    const k = this.coreIndex.get(cpu);
    if (k === undefined) throw new Error('a trap from a core the kernel does not know');
    return k;
  }

  /** Set by boot.ts: an application processor's first trap (its start-up trampoline). */
  apEntry(cpu: Cpu, core: number): void { void cpu; void core; throw new Error('apEntry before boot'); }

  // ============================================================================ processes
  //
  // Life of a process (kernel/proc/README.md): spawn (the first process) or fork/clone
  // (syscalls/clone.ts) creates it 'live'; execve (syscalls/exec.ts) replaces its program;
  // exitThread / exitProcess end its threads (threads running on other cores leave at their
  // core's next trap: Scheduler.kill); when the last thread is gone (threadGone) it releases
  // its memory and files and becomes a 'zombie' that its parent reaps with wait4
  // (syscalls/wait.ts), after SIGCHLD; its children go to init.

  /** A fresh pid or tid: processes and threads share one counter, as in Linux's pid namespace. */
  allocPid(): number { return this.nextPid++; }

  /** The process a process thread belongs to (live or zombie), or undefined. */
  processOf(t: Thread): Process | undefined {
    return t.owner !== null ? this.processes.get(t.owner.pid) : undefined;
  }

  /** How many processes use each address space (vfork and CLONE_VM without CLONE_THREAD share one). */
  private readonly aspaceUsers = new Map<AddressSpace, number>();

  /**
   * Sets `as`'s TLB hook: each core whose CR3 holds the space invalidates the range (a TLB
   * shootdown, charged to each core that does it), since its threads may run on several cores.
   */
  hookInvalidate(as: AddressSpace): void {
    const invs = this.percpu.map((pc) => coreInvalidator(pc.cpu));
    as.invalidate = (va, len) => {
      const cr3 = as.cr3 >>> 0;
      this.percpu.forEach((pc, k) => { if ((pc.cpu.cr3 >>> 0) === cr3) invs[k](va, len); });
    };
  }

  /** One more process uses `as`. */
  retainAspace(as: AddressSpace): void { this.aspaceUsers.set(as, (this.aspaceUsers.get(as) ?? 0) + 1); }

  /** A process stops using `as`; the last one gives its memory back to pmem. */
  releaseAspace(cpu: Cpu, as: AddressSpace): void {
    const n = (this.aspaceUsers.get(as) ?? 1) - 1;
    if (n > 0) { this.aspaceUsers.set(as, n); return; }
    this.aspaceUsers.delete(as);
    if ((cpu.cr3 >>> 0) === (as.cr3 >>> 0)) writeCr3(cpu, this.kernelAspace.cr3);
    this.sched.forgetAddressSpace(as.cr3);
    as.destroy(cpu);
  }

  /**
   * A new address space with `image` loaded, its stack region, and the initial stack (argv,
   * envp, auxv) as Linux's exec builds it. Throws ExecError (a bad image) or RangeError (no
   * memory); nothing is left allocated then.
   */
  loadProgram(cpu: Cpu, image: Uint8Array, path: string, argv: readonly string[], envp: readonly string[], core: number): { as: AddressSpace; entry: number; sp: number } {
    const made = AddressSpace.create(cpu, { pmem: this.pmem, mem: this.mem, kernel: this.kernelSpace, invalidate: null });
    if (!made.ok) throw new RangeError(`no memory for an address space (${made.error})`);
    const as = made.value;
    this.hookInvalidate(as);
    try {
      const loaded = loadElf(cpu, as, image, path);
      const top = USER_TOP;
      const st = as.mmap(cpu, { addr: top - this.stackSize, len: this.stackSize, prot: PROT_READ | PROT_WRITE, kind: 'stack', fixed: true, noReplace: true });
      if (!st.ok) throw new RangeError(`no memory for the stack (${st.error})`);
      const built = buildStack(cpu, as, {
        argv, envp, execfn: path, image: loaded, hwcap: cpuidLookup(this.percpu[core].cpu.cpuid, 1)[3],
        uid: 0, gid: 0, random: this.random.bytes(16), top,
      });
      return { as, entry: loaded.entry, sp: built.sp };
    } catch (e) {
      as.destroy(cpu);
      throw e;
    }
  }

  /** Creates a process from a static ELF image and makes its main thread runnable on `spec.core`. */
  spawn(cpu: Cpu, spec: SpawnSpec): Process {
    charge(cpu, 'elfLoadBase');
    const prog = this.loadProgram(cpu, spec.image, spec.path, spec.argv, spec.envp ?? FIXED_ENV, spec.core);
    const pid = this.allocPid();
    // /proc/self/exe is absolute; a relative path is taken from / (the LWK's first working directory)
    const exe = spec.path.startsWith('/') ? spec.path : `/${spec.path.replace(/^(\.\/)+/, '')}`;
    const proc = new Process(pid, spec.ppid ?? 0, exe, spec.argv, prog.as, cpu.cycles);
    proc.image = spec.image;
    this.retainAspace(prog.as);
    const t = Thread.user(pid, proc.comm, spec.core, proc, startContext(prog.entry, prog.sp));
    proc.threads.push(t);
    this.processes.set(pid, proc);
    this.sched.add(cpu, t);
    return proc;
  }

  /**
   * The running program on `core` took a fault (or an INT) it does not handle: its process is
   * killed by `sig`, as Linux's default action does, with a line in the kernel log.
   */
  userFault(cpu: Cpu, core: number, sig: number, t: TrapRecord): void {
    const th = this.sched.current(core);
    if (th === null || th.owner === null) throw new Error(`exception ${t.vector} on core ${core} with no process running`);
    if (th.killed) return; // killed from another core: it leaves at this trap (schedule), its fault does not count
    const proc = this.processes.get(th.owner.pid)!;
    const cr2 = t.vector === 14 ? ` address 0x${(t.cr2 >>> 0).toString(16)}` : '';
    const err = t.errorCode >= 0 ? ` error ${t.errorCode.toString(16)}` : '';
    // a handler for the signal takes it on the way back to user mode (proc/signals.ts)
    if (t.kind === TRAP_EXCEPTION && faultToHandler(proc, th, cpu, sig, t.vector, t.errorCode, t.cr2, t.eip)) return;
    this.log.print(cpu, `${proc.comm}[${proc.pid}]: ${signalName(sig)} (trap ${t.vector}${err}) at eip 0x${(t.eip >>> 0).toString(16)}${cr2}`);
    this.exitProcess(cpu, proc, 0, sig);
  }

  /**
   * Ends a process (exit_group, a fatal signal): its status is recorded (the first one counts),
   * and all its threads end; the process is finished when the last one is gone (threadGone).
   */
  exitProcess(cpu: Cpu, proc: Process, code: number, sig: number): void {
    if (proc.state !== 'live') return;
    if (!proc.exiting) {
      proc.exiting = true;
      charge(cpu, 'processExit');
      proc.exitCode = code & 0xff;
      proc.termSignal = sig;
    }
    for (const t of [...proc.threads]) this.sched.kill(cpu, t);
  }

  /** exit(2): the calling thread ends; the last thread's exit ends the process with `code`. */
  exitThread(cpu: Cpu, t: Thread, code: number): void {
    const proc = this.processOf(t);
    if (proc === undefined) return;
    if (proc.exiting || proc.threads.filter((x) => !x.killed).length <= 1) { this.exitProcess(cpu, proc, code, 0); return; }
    this.sched.kill(cpu, t);
  }

  /**
   * A process thread has left for good (Scheduler.onThreadExit): its CLONE_CHILD_CLEARTID word
   * is zeroed and one futex waiter woken (pthread_join), and the process finishes with its last
   * thread.
   */
  threadGone(cpu: Cpu, t: Thread): void {
    const proc = this.processOf(t);
    if (proc === undefined) return;
    this.futexes.forget(t);
    proc.childWaiters.delete(t);
    if (t.clearChildTid !== 0 && proc.state === 'live') {
      const addr = t.clearChildTid;
      t.clearChildTid = 0;
      if (proc.aspace.copyout(cpu, addr, new Uint8Array(4)).ok) futexWakeAt(this, cpu, proc, addr, 1);
    }
    const i = proc.threads.indexOf(t);
    if (i >= 0) proc.threads.splice(i, 1);
    if (proc.threads.length > 0) retargetShared(this, cpu, proc); // its process-wide signals go to the others
    if (proc.threads.length === 0) {
      if (!proc.exiting) { proc.exiting = true; proc.exitCode ??= 0; }
      this.finishProcess(cpu, proc);
    } else if (proc.staleAspaces.length > 0 && !proc.threads.some((x) => x.killed)) {
      for (const as of proc.staleAspaces.splice(0)) this.releaseAspace(cpu, as);
    }
  }

  /** The last thread is gone: memory and files go back, the parent is told, the process is a zombie. */
  private finishProcess(cpu: Cpu, proc: Process): void {
    proc.files.closeAll();
    for (const as of proc.staleAspaces.splice(0)) this.releaseAspace(cpu, as);
    this.releaseAspace(cpu, proc.aspace);
    this.releaseVforkParent(cpu, proc);
    proc.state = 'zombie';
    // orphans go to init (whose own children, when it ends, are reaped as they end)
    const heir = proc.pid === this.initPid ? 0 : this.initPid;
    const init = this.processes.get(heir);
    let orphanZombies = false;
    for (const c of this.processes.values()) {
      if (c.ppid !== proc.pid) continue;
      c.ppid = heir;
      if (c.state === 'zombie') { if (init === undefined || init.state !== 'live') this.processes.delete(c.pid); else orphanZombies = true; }
    }
    if (orphanZombies && init !== undefined) for (const w of [...init.childWaiters]) this.sched.wake(cpu, w);
    this.notifyParent(cpu, proc);
    if (proc.pid === this.initPid) {
      const sig = proc.termSignal;
      this.initStatus = sig !== 0 ? 128 + sig : (proc.exitCode ?? 0);
      this.log.print(cpu, sig !== 0 ? `init (pid ${proc.pid}) killed by ${signalName(sig)}` : `init (pid ${proc.pid}) exited with status ${proc.exitCode}`);
      this.powerOff(cpu, this.initStatus);
    }
  }

  /** SIGCHLD (the child's exit signal) to the parent and its wait4 sleepers woken; no parent: reaped now. */
  private notifyParent(cpu: Cpu, proc: Process): void {
    const parent = this.processes.get(proc.ppid);
    if (parent === undefined || parent.state !== 'live') { this.processes.delete(proc.pid); return; }
    const act = actionOf(parent, SIGCHLD);
    const autoReap = act.handler === SIG_IGN || (act.flags & SA_NOCLDWAIT) !== 0;
    if (proc.exitSignal !== 0) {
      const killed = proc.termSignal !== 0;
      sendSignal(this, cpu, parent, proc.exitSignal, {
        signo: proc.exitSignal, code: killed ? CLD_KILLED : CLD_EXITED, pid: proc.pid, uid: 0,
        status: killed ? proc.termSignal : (proc.exitCode ?? 0),
      });
    }
    if (autoReap) this.processes.delete(proc.pid); // SIGCHLD ignored or SA_NOCLDWAIT: no zombie
    for (const w of [...parent.childWaiters]) this.sched.wake(cpu, w);
  }

  /** vfork: the parent sleeping until this child execs or ends goes on. */
  releaseVforkParent(cpu: Cpu, proc: Process): void {
    const t = proc.vforkParent;
    if (t === null) return;
    proc.vforkParent = null;
    this.sched.wake(cpu, t);
  }

  /** Powers the machine off through isa-debug-exit (the emulated PC's power switch). */
  powerOff(cpu: Cpu, status: number): void {
    this.log.print(cpu, 'power down');
    this.io.out8(cpu, this.info.devices.debugExit, status & 0xff);
  }
}
