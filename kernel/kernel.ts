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
import { signalName } from './proc/signals.ts';
import { buildStack } from './proc/stack.ts';
import { KernelRandom } from './random.ts';
import type { Scheduler } from './sched/scheduler.ts';
import { Thread, UserContext } from './sched/thread.ts';
import { USER_CS, USER_DS } from './gdt.ts';
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
  init?: { module?: string; argv?: readonly string[]; core?: number };
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
  sched!: Scheduler;

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
  trap(cpu: Cpu, t: TrapRecord): void { trapEntry(this, cpu, t); }

  coreOf(cpu: Cpu): number {
    const k = this.coreIndex.get(cpu);
    if (k === undefined) throw new Error('a trap from a core the kernel does not know');
    return k;
  }

  /** Set by boot.ts: an application processor's first trap (its start-up trampoline). */
  apEntry(cpu: Cpu, core: number): void { void cpu; void core; throw new Error('apEntry before boot'); }

  // ============================================================================ processes

  /** Creates a process from a static ELF image and makes its main thread runnable on `spec.core`. */
  spawn(cpu: Cpu, spec: SpawnSpec): Process {
    charge(cpu, 'elfLoadBase');
    const core = spec.core;
    const target = this.percpu[core].cpu;
    const made = AddressSpace.create(cpu, {
      pmem: this.pmem, mem: this.mem, kernel: this.kernelSpace,
      invalidate: null,
    });
    if (!made.ok) throw new RangeError(`no memory for an address space (${made.error})`);
    const as = made.value;
    const inval = coreInvalidator(target);
    as.invalidate = (va, len) => { if ((target.cr3 >>> 0) === as.cr3) inval(va, len); };
    try {
      const image = loadElf(cpu, as, spec.image, spec.path);
      const top = USER_TOP;
      const st = as.mmap(cpu, { addr: top - this.stackSize, len: this.stackSize, prot: PROT_READ | PROT_WRITE, kind: 'stack', fixed: true, noReplace: true });
      if (!st.ok) throw new RangeError(`no memory for the stack (${st.error})`);
      const envp = spec.envp ?? FIXED_ENV;
      const built = buildStack(cpu, as, {
        argv: spec.argv, envp, execfn: spec.path, image, hwcap: cpuidLookup(target.cpuid, 1)[3],
        uid: 0, gid: 0, random: this.random.bytes(16), top,
      });
      const pid = this.nextPid++;
      // /proc/self/exe is absolute; the LWK's working directory is / (there is no file system yet)
      const exe = spec.path.startsWith('/') ? spec.path : `/${spec.path.replace(/^(\.\/)+/, '')}`;
      const proc = new Process(pid, spec.ppid ?? 0, exe, spec.argv, as, cpu.cycles);
      const ctx = new UserContext();
      ctx.eip = image.entry;
      ctx.regs[4] = built.sp;
      ctx.sel[0] = USER_DS; ctx.sel[1] = USER_CS; ctx.sel[2] = USER_DS; ctx.sel[3] = USER_DS;
      const t = Thread.user(pid, proc.comm, core, proc, ctx);
      proc.threads.push(t);
      this.processes.set(pid, proc);
      this.sched.add(cpu, t);
      return proc;
    } catch (e) {
      as.destroy(cpu);
      throw e;
    }
  }

  /**
   * The running program on `core` took a fault (or an INT) it does not handle: its process is
   * killed by `sig`, as Linux's default action does, with a line in the kernel log.
   */
  userFault(cpu: Cpu, core: number, sig: number, t: TrapRecord): void {
    const th = this.sched.current(core);
    if (th === null || th.owner === null) throw new Error(`exception ${t.vector} on core ${core} with no process running`);
    const proc = this.processes.get(th.owner.pid)!;
    const cr2 = t.vector === 14 ? ` address 0x${(t.cr2 >>> 0).toString(16)}` : '';
    const err = t.errorCode >= 0 ? ` error ${t.errorCode.toString(16)}` : '';
    this.log.print(cpu, `${proc.comm}[${proc.pid}]: ${signalName(sig)} (trap ${t.vector}${err}) at eip 0x${(t.eip >>> 0).toString(16)}${cr2}`);
    this.exitProcess(cpu, proc, 0, sig);
  }

  /** Ends a process: its threads stop, its memory goes back to pmem; the first process powers the machine off. */
  exitProcess(cpu: Cpu, proc: Process, code: number, sig: number): void {
    if (proc.exitCode !== null) return;
    charge(cpu, 'processExit');
    proc.exitCode = code & 0xff;
    proc.termSignal = sig;
    for (const t of proc.threads) {
      if (t.state === 'running' || t.state === 'runnable') proc.cpuCycles += Math.max(0, cpu.cycles - t.lastStart);
      this.sched.exit(t);
    }
    if ((cpu.cr3 >>> 0) === proc.cr3) writeCr3(cpu, this.kernelAspace.cr3);
    proc.aspace.destroy(cpu);
    this.processes.delete(proc.pid);
    if (proc.pid === this.initPid) {
      this.initStatus = sig !== 0 ? 128 + sig : proc.exitCode;
      this.log.print(cpu, sig !== 0 ? `init (pid ${proc.pid}) killed by ${signalName(sig)}` : `init (pid ${proc.pid}) exited with status ${proc.exitCode}`);
      this.powerOff(cpu, this.initStatus);
    }
  }

  /** Powers the machine off through isa-debug-exit (the emulated PC's power switch). */
  powerOff(cpu: Cpu, status: number): void {
    this.log.print(cpu, 'power down');
    this.io.out8(cpu, this.info.devices.debugExit, status & 0xff);
  }
}
