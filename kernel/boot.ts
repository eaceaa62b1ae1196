/**
 * Booting the LWK (issue 5, "Boot").
 *
 * The machine hands the kernel control by calling its entry, bootKernel(), on the boot
 * processor with a boot-information object: the memory map, the cores (APIC IDs), the devices
 * and their addresses, and the boot modules (the program to run, placed in RAM by the boot
 * loader: makeBootInfo() does that job here). The kernel then, on the BSP:
 *   1. takes the console (COM1, a polled 16550) and starts its log;
 *   2. sets up physical memory management (pmem over the E820 map; the low 1 MiB and the
 *      modules are the kernel's) and the kernel's shared mappings (each core's GDT page);
 *   3. registers its trap entry as every core's host handler (the kernel's "IDT");
 *   4. sets up the BSP: GDT, paging (CR4.PSE|PGE, CR3, CR0.PG|WP), SYSENTER MSRs, its local
 *      APIC (spurious vector, error LVT, timer in TSC-deadline mode, disarmed), and masks the
 *      8259s (interrupts come through the APICs);
 *   5. brings up every other core with INIT / STARTUP IPIs through the local APIC's ICR; an AP
 *      starts in real mode at the trampoline page, whose one instruction (INT 0xF0) traps into
 *      the kernel's handler, which sets the core up the same way and lets it idle;
 *   6. starts the init task: the first process, from the first boot module, on core 0.
 * Between 4 and 5 it brings up the host interface (kernel/hostif/), which the VMM runs on:
 * `kernel.host`.
 * The boot log (memory, cores, timer) goes to the kernel console.
 */
import type { MemRange } from '../hw/boot/multiboot.ts';
import type { Cpu } from '../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../hw/cpu/insn.ts';
import { writeCr0, writeCr3, writeCr4 } from '../hw/cpu/isa/system.ts';
import { LAPIC_BASE } from '../hw/devices/lapic.ts';
import { IOAPIC_BASE } from '../hw/devices/ioapic.ts';
import type { Machine } from '../hw/machine.ts';
import { charge } from './costs.ts';
import { HOST_CONSOLE_BASE, HostConsoleDriver } from './drivers/hostconsole.ts';
import { KernelIo } from './drivers/io.ts';
import { LapicDriver } from './drivers/lapic.ts';
import { readCmosTime } from './drivers/rtc.ts';
import { COM1_BASE, SerialConsole } from './drivers/serial.ts';
import { Gdt, KERNEL_CS, KERNEL_DS } from './gdt.ts';
import { GDT_VA, Kernel, type KernelOptions, SYSENTER_ENTRY_VA } from './kernel.ts';
import { LwkHost } from './hostif/host.ts';
import { KernelLog } from './log.ts';
import { AddressSpace, KernelSpace } from './mm/aspace.ts';
import { PAGE_SIZE, Pmem } from './mm/pmem.ts';
import { PerCpu } from './percpu.ts';
import { ExecError } from './proc/elf-loader.ts';
import { mountRoot, programFromFs } from './fs/mount.ts';
import { gpProfile, lwkProfile } from './sched/profile.ts';
import { Scheduler, VEC_TIMER } from './sched/scheduler.ts';
import { VEC_AP_START, VEC_APIC_ERROR, VEC_SPURIOUS } from './trap.ts';

export interface BootModule {
  name: string;
  /** Where the boot loader put it, and its length in bytes. */
  base: number;
  size: number;
}

export interface BootInfo {
  memoryMap: readonly MemRange[];
  ramSize: number;
  /** The cores' clock (cycles per second). */
  hz: number;
  /** One entry per core; the boot processor is the first. */
  cores: readonly { apicId: number }[];
  devices: {
    lapic: number;
    ioapic: number;
    com1: number;
    hostConsole: { base: number; channels: number };
    debugExit: number;
  };
  modules: readonly BootModule[];
  /** The kernel command line, as a boot loader passes it. */
  cmdline: string;
}

/** The trampoline page an AP starts at (STARTUP vector 0x08: physical 0x8000, in the kernel's low 1 MiB). */
export const TRAMPOLINE_PAGE = 0x08;

/**
 * The boot loader's part: places each module in RAM from 1 MiB up (page-aligned) and describes
 * the machine. `modules` are the files the kernel gets (the first is the program to run).
 */
export function makeBootInfo(m: Machine, modules: readonly { name: string; data: Uint8Array }[], cmdline = ''): BootInfo {
  let at = 0x100000;
  const placed: BootModule[] = [];
  for (const mod of modules) {
    if (at + mod.data.length > m.mem.ramSize) throw new RangeError(`boot module ${mod.name} (${mod.data.length} bytes) does not fit in RAM`);
    m.mem.writeBytes(at, mod.data);
    placed.push({ name: mod.name, base: at, size: mod.data.length });
    at = Math.ceil((at + Math.max(mod.data.length, 1)) / PAGE_SIZE) * PAGE_SIZE;
  }
  return {
    memoryMap: m.memoryMap.map((r) => ({ ...r })),
    ramSize: m.mem.ramSize,
    hz: m.hz,
    cores: m.cores.map((c) => ({ apicId: c.apicId })),
    devices: {
      lapic: LAPIC_BASE, ioapic: IOAPIC_BASE, com1: COM1_BASE,
      hostConsole: { base: HOST_CONSOLE_BASE, channels: m.console.channelCount }, debugExit: 0xf4,
    },
    modules: placed,
    cmdline,
  };
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;

/** The kernel image's entry: the machine calls it on the boot processor. */
export function bootKernel(m: Machine, info: BootInfo, opts: KernelOptions = {}): Kernel {
  const bsp = m.cores[0];
  return m.enter(bsp, () => startKernel(m, info, opts, bsp));
}

function startKernel(m: Machine, info: BootInfo, opts: KernelOptions, bsp: Cpu): Kernel {
  const io = new KernelIo(m.ports, m.mem);
  const serial = new SerialConsole(io, info.devices.com1);
  serial.init(bsp);
  const log = new KernelLog(serial, info.hz);
  const k = new Kernel(info, m.cores, m.mem, io, log, new LapicDriver(io, info.devices.lapic),
    new HostConsoleDriver(io, info.devices.hostConsole.base), opts);
  k.wallAtBoot = readCmosTime(io, bsp);
  k.wallReadCycles = bsp.cycles;
  log.print(bsp, `v3vee LWK: booting on ${info.cores.length} core${info.cores.length > 1 ? 's' : ''} at ${(info.hz / 1e6).toFixed(0)} MHz`);
  if (info.cmdline !== '') log.print(bsp, `command line: ${info.cmdline}`);

  // ---- physical memory
  k.pmem = new Pmem(info.memoryMap, {
    ramSize: info.ramSize,
    reserve: info.modules.map((md) => ({ base: md.base, size: Math.max(md.size, 1) })),
  });
  for (const r of info.memoryMap) {
    log.print(bsp, `e820: [mem 0x${r.base.toString(16).padStart(8, '0')}-0x${(r.base + r.length - 1).toString(16).padStart(8, '0')}] ${r.type === 1 ? 'usable' : 'reserved'}`);
  }
  log.print(bsp, `memory: ${mib(info.ramSize)} RAM, ${mib(k.pmem.usableBytes)} usable, ${mib(k.pmem.freeBytes)} free, largest free block ${mib(k.pmem.largestFree())}`);
  for (const md of info.modules) log.print(bsp, `module: ${md.name} at 0x${md.base.toString(16)}, ${md.size} bytes`);

  // ---- kernel mappings: one GDT page per core, mapped above user space in every address space
  k.kernelSpace = new KernelSpace(k.pmem, m.mem);
  info.cores.forEach((_c, i) => {
    const page = k.pmem.alloc(bsp, { size: PAGE_SIZE, type: 'kernel' });
    if (!page.ok) throw new RangeError('no memory for the GDTs');
    const mapped = k.kernelSpace.map(bsp, GDT_VA + i * PAGE_SIZE, page.value, PAGE_SIZE);
    if (!mapped.ok) throw new RangeError('cannot map the GDTs');
    k.percpu.push(new PerCpu(i, m.cores[i], info.cores[i].apicId, new Gdt(m.mem, page.value, GDT_VA + i * PAGE_SIZE)));
  });
  const kas = AddressSpace.create(bsp, { pmem: k.pmem, mem: m.mem, kernel: k.kernelSpace });
  if (!kas.ok) throw new RangeError('no memory for the kernel address space');
  k.kernelAspace = kas.value;

  // ---- the scheduler and its profile
  const profileName = opts.profile ?? 'lwk';
  const profile = profileName === 'gp' ? gpProfile(info.hz, opts.hz ?? 250) : lwkProfile;
  const quantum = Math.round((info.hz * (opts.quantumMs ?? 10)) / 1000);
  k.sched = new Scheduler({ percpu: k.percpu, apic: k.apic, coreOf: (c) => k.coreOf(c) }, { quantum, profile });

  // ---- the kernel's handler on every core (its IDT), the BSP's own set-up
  for (const c of m.cores) c.host = k;
  // the 8259s: all lines masked (interrupts come through the APICs)
  io.out8(bsp, 0x21, 0xff);
  io.out8(bsp, 0xa1, 0xff);
  setupCore(k, bsp, 0);
  log.print(bsp, `core 0: online (APIC ID ${k.percpu[0].apicId}, boot processor)`);
  log.print(bsp, `timer: local APIC in TSC-deadline mode, vector 0x${VEC_TIMER.toString(16)}; ${profileName === 'gp'
    ? `general-purpose profile: periodic tick at ${opts.hz ?? 250} Hz with deferred work`
    : 'tickless (armed only when a decision is pending)'}; quantum ${opts.quantumMs ?? 10} ms`);

  // ---- the host interface the VMM runs on (kernel/hostif/): kernel.host
  k.host = new LwkHost(k, m, opts.host);
  log.print(bsp, `hostif: host interface ${k.host.version.major}.${k.host.version.minor} up; streams ${k.host.streamNames().join(', ')}`);

  // ---- the other cores: INIT, STARTUP, STARTUP (MP spec B.4); each calls in from the trampoline
  k.apEntry = (cpu, core) => {
    setupCore(k, cpu, core);
    const online = k.percpu.filter((p) => p.online).length;
    log.print(cpu, `core ${core}: online (APIC ID ${k.percpu[core].apicId})${online === k.percpu.length ? `; ${online} cores up` : ''}`);
    k.sched.schedule(cpu, core);
  };
  if (info.cores.length > 1) {
    m.mem.writeBytes(TRAMPOLINE_PAGE * PAGE_SIZE, Uint8Array.of(0xcd, VEC_AP_START, 0xf4, 0xeb, 0xfd)); // int $0xf0; 1: hlt; jmp 1b
    for (let i = 1; i < info.cores.length; i++) k.apic.startAp(bsp, k.percpu[i].apicId, TRAMPOLINE_PAGE);
  }

  // ---- the init task: the first process
  startInit(k, bsp, opts);
  k.sched.schedule(bsp, 0);
  return k;
}

/** Sets up the running core for the kernel: descriptor tables, paging, MSRs, the local APIC. */
function setupCore(k: Kernel, cpu: Cpu, core: number): void {
  charge(cpu, 'coreSetup');
  const pc = k.percpu[core];
  pc.gdt.init(cpu);
  pc.gdt.load(cpu);
  cpu.idtBase = 0; cpu.idtLimit = 0; // no IDT: every event reaches the host handler
  // protected mode with paging on the kernel's address space (what the trampoline's far jump does)
  writeCr4(cpu, 0x10 | 0x80); // PSE (4 MiB pages), PGE (global kernel pages)
  writeCr3(cpu, k.kernelAspace.cr3);
  writeCr0(cpu, 0x80050033); // PG AM WP NE ET MP PE, caches on
  cpu.setCpl(0);
  cpu.loadSegCache(CS, KERNEL_CS, 0, 0xffffffff, 0xc09b);
  for (const s of [SS, DS, ES]) cpu.loadSegCache(s, KERNEL_DS, 0, 0xffffffff, 0xc093);
  for (const s of [FS, GS]) cpu.loadSegCache(s, 0, 0, 0, 0);
  // SYSENTER_CS/ESP/EIP (WRMSR): the kernel's code segment, the per-core entry stack, the entry
  charge(cpu, 'msrAccess', 3);
  cpu.sysenterCs = KERNEL_CS;
  cpu.sysenterEsp = (GDT_VA + (core + 1) * PAGE_SIZE) >>> 0;
  cpu.sysenterEip = SYSENTER_ENTRY_VA;
  k.apic.setup(cpu, { timer: VEC_TIMER, spurious: VEC_SPURIOUS, error: VEC_APIC_ERROR }, core === 0);
  pc.online = true;
  pc.onlineAt = cpu.cycles;
}

/** Starts the first process from the boot module named in the options (default: the first). */
function startInit(k: Kernel, bsp: Cpu, opts: KernelOptions): void {
  const fsError = mountRoot(k, bsp, opts.initrd);
  if (fsError !== null) { k.initError = fsError; k.log.print(bsp, `init: ${fsError}`); return; }
  if (opts.init?.path !== undefined) { startInitFromFs(k, bsp, opts, opts.init.path); return; }
  const want = opts.init?.module;
  const md = want !== undefined ? k.info.modules.find((x) => x.name === want) : k.info.modules[0];
  if (md === undefined) {
    k.initError = want !== undefined ? `no boot module named ${want}` : 'no program to run (no boot module)';
    k.log.print(bsp, `init: ${k.initError}`);
    return;
  }
  const core = opts.init?.core ?? 0;
  const image = k.mem.u8.slice(md.base, md.base + md.size);
  const argv = opts.init?.argv ?? [md.name];
  try {
    const p = k.spawn(bsp, { image, path: md.name, argv, core });
    k.initPid = p.pid;
    k.log.print(bsp, `init: pid ${p.pid} '${md.name}' on core ${core}, ${mib(p.aspace.stats().mappedBytes)} mapped`);
  } catch (e) {
    if (!(e instanceof ExecError) && !(e instanceof RangeError)) throw e;
    k.initError = e.message;
    k.log.print(bsp, `init: cannot start ${md.name}: ${e.message}`);
  }
}

/** Starts the first process from a program of the initramfs (`run --initrd ... /bin/sh`). */
function startInitFromFs(k: Kernel, bsp: Cpu, opts: KernelOptions, path: string): void {
  const prog = programFromFs(k, path);
  if (typeof prog === 'string') { k.initError = prog; k.log.print(bsp, `init: ${prog}`); return; }
  const core = opts.init?.core ?? 0;
  try {
    const p = k.spawn(bsp, { image: prog.image, path, argv: opts.init?.argv ?? [path], core });
    p.exe = prog.exe; // /proc/self/exe: the program itself, its links resolved
    k.initPid = p.pid;
    k.log.print(bsp, `init: pid ${p.pid} '${path}' (initramfs) on core ${core}, ${mib(p.aspace.stats().mappedBytes)} mapped`);
  } catch (e) {
    if (!(e instanceof ExecError) && !(e instanceof RangeError)) throw e;
    k.initError = e.message;
    k.log.print(bsp, `init: cannot start ${path}: ${e.message}`);
  }
}
