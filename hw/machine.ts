/**
 * The emulated PC: N cores, physical RAM as one ArrayBuffer, the port bus and MMIO, the PC
 * devices wired as on a PC, one deterministic event queue, and the loop that runs the cores
 * (DESIGN.md, "The hardware line and the execution model"):
 *
 *   repeatedly pick the runnable core with the lowest clock; if the next device event is due
 *   at or before that clock, fire it; else let the core run until the next event, or for one
 *   quantum (spec.quantum, default 10,000 cycles), whichever comes first. When every core is
 *   halted, time jumps to the next event. A device that schedules an event sooner than the
 *   running core's quantum end shortens the quantum (Cpu.limitRun), so events are never late.
 *
 * Device time is the running core's clock while it executes (an I/O instruction sees its own
 * core's time), and the event's time while an event fires.
 */
import { Cpu, HALTED, RUNNING, SHUTDOWN, WAIT_SIPI } from './cpu/cpu.ts';
import { FEAT_APIC } from './cpu/cpuid.ts';
import { ApicBus, LAPIC_BASE, LocalApic } from './devices/lapic.ts';
import { IOAPIC_BASE, IoApic } from './devices/ioapic.ts';
import { CodeCache } from './cpu/codecache.ts';
import { IF } from './cpu/flags.ts';
import { CS, DS, ES, FS, GS, SS } from './cpu/insn.ts';
import type { TlbConfig } from './cpu/tlb.ts';
import type { CalendarTime } from './devices/calendar.ts';
import { CMOS_PORTS, CmosRtc } from './devices/cmos-rtc.ts';
import { DEBUG_EXIT_PORTS, DebugExit } from './devices/debug-exit.ts';
import { EventQueue } from './devices/event-queue.ts';
import { HOST_CONSOLE_PORTS, HostConsole } from './devices/host-console.ts';
import { I8042, I8042_PORTS } from './devices/i8042.ts';
import { PIC_PORTS, Pic8259 } from './devices/pic8259.ts';
import { PIT_PORTS, Pit8254 } from './devices/pit8254.ts';
import { Port61, PORT61_PORTS } from './devices/port61.ts';
import { Port92, PORT92_PORTS } from './devices/port92.ts';
import { POST_CODE_PORTS, PostCode } from './devices/post-code.ts';
import type { ByteSink, EventHandle, EventScheduler, IrqLine, TimeSource } from './devices/types.ts';
import { UART_COM1_PORTS, UART_COM2_PORTS, Uart16550 } from './devices/uart16550.ts';
import { PhysMem } from './mem/physmem.ts';
import { PortBus } from './ports.ts';
import type { MemRange } from './boot/multiboot.ts';
import { pcMemoryMap } from './boot/multiboot.ts';

export interface MachineSpec {
  /** Number of cores (default 1). */
  cores?: number;
  /** RAM in bytes (default 128 MiB). */
  ram?: number;
  /** Core clock in Hz (default 2.2 GHz, the Opterons of Red Storm). */
  hz?: number;
  /** Longest run of one core between scheduling decisions, in cycles (default 10,000). */
  quantum?: number;
  /** RTC time at cycle 0 (default 2000-01-01 00:00:00). */
  rtcStart?: CalendarTime;
  /** Output sinks of the host console's channels (default: one discarding channel). */
  consoleChannels?: readonly (ByteSink | null)[];
  /** Host ends of COM1 and COM2 output. */
  com1?: ByteSink;
  com2?: ByteSink;
  tlbs?: TlbConfig;
}

export type StopReason = 'exit' | 'idle' | 'shutdown' | 'reset' | 'limit';

export interface MachineStats {
  instructions: number;
  cycles: number;
  tlbMisses: number;
  walkRefs: number;
  exceptions: number;
  interrupts: number;
  unbackedMemory: number;
  unclaimedPorts: number;
}

export const DEFAULT_HZ = 2_200_000_000;
export const DEFAULT_QUANTUM = 10_000;

export class Machine {
  readonly mem: PhysMem;
  readonly cores: Cpu[];
  readonly ports = new PortBus();
  readonly events: EventQueue;
  readonly hz: number;
  readonly quantum: number;
  readonly memoryMap: MemRange[];
  /** Device time: the running core's clock, or the time of the event being fired. */
  readonly time: TimeSource;
  readonly scheduler: EventScheduler;

  readonly pic: Pic8259;
  readonly pit: Pit8254;
  readonly port61: Port61;
  readonly com1: Uart16550;
  readonly com2: Uart16550;
  readonly cmos: CmosRtc;
  readonly kbc: I8042;
  readonly port92: Port92;
  readonly post: PostCode;
  readonly debugExit: DebugExit;
  readonly console: HostConsole;
  readonly lapics: LocalApic[];
  readonly ioapic: IoApic;
  readonly apicBus: ApicBus;

  /** The core executing right now (null between quanta). */
  current: Cpu | null = null;
  exitStatus: number | null = null;
  stopReason: StopReason | null = null;
  stopDetail = '';
  a20 = true;

  constructor(spec: MachineSpec = {}) {
    const n = spec.cores ?? 1;
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new RangeError(`cores must be 1-64, got ${n}`);
    const ram = spec.ram ?? 128 << 20;
    this.hz = spec.hz ?? DEFAULT_HZ;
    this.quantum = spec.quantum ?? DEFAULT_QUANTUM;
    this.mem = new PhysMem(ram);
    this.memoryMap = pcMemoryMap(ram);
    this.events = new EventQueue(this.hz);
    const events = this.events;
    this.time = { now: () => (this.current !== null ? this.current.cycles : events.now()), hz: this.hz };
    this.scheduler = {
      schedule: (at: number, cb: () => void): EventHandle => {
        const h = events.schedule(at, cb);
        if (this.current !== null) this.current.limitRun(at);
        return h;
      },
      cancel: (h: EventHandle) => events.cancel(h),
    };
    const code = new CodeCache(this.mem);
    this.cores = [];
    for (let k = 0; k < n; k++) {
      const cpu = new Cpu({ mem: this.mem, io: this.ports, codeCache: code, tlbs: spec.tlbs, apicId: k });
      cpu.onShutdown = () => { /* noticed by the loop */ };
      this.cores.push(cpu);
    }
    const bsp = this.cores[0];
    const t = this.time, s = this.scheduler;

    // ---- interrupt wiring (as on a PC with an APIC, left by the firmware in virtual-wire mode):
    // the 8259 pair's INTR goes to the boot processor's LINT0 (ExtINT); each core's local APIC
    // is its interrupt controller; ISA IRQs reach both the 8259s and the IOAPIC (IRQ0 on pin 2,
    // as QEMU wires it).
    this.apicBus = new ApicBus();
    this.lapics = this.cores.map((cpu, k) => {
      const a = new LocalApic({
        time: t, scheduler: s, apicId: k, bus: this.apicBus,
        onInterruptChange: () => { this.catchUp(cpu); cpu.interruptChanged(); },
        onNmi: () => { this.catchUp(cpu); cpu.nmiPending = true; cpu.interruptChanged(); },
        onInit: () => { this.catchUp(cpu); cpu.init(k !== 0); },
        onStartup: (v) => { this.catchUp(cpu); cpu.startup(v); },
        onEoiBroadcast: (v) => this.ioapic.eoi(v),
      });
      this.apicBus.attach(a);
      cpu.intc = a;
      cpu.apic = a;
      const leaf1 = cpu.cpuid.get(1);
      if (leaf1) cpu.cpuid.set(1, [leaf1[0] | (k << 24), leaf1[1] | (k << 24), leaf1[2], (leaf1[3] | FEAT_APIC) >>> 0]);
      if (k !== 0) cpu.init(true);
      return a;
    });
    this.ioapic = new IoApic({ bus: this.apicBus, id: n });
    this.pic = new Pic8259(this.lapics[0].lintLine(0));
    this.lapics[0].setExtIntSource(this.pic);
    for (const a of this.lapics) a.setupVirtualWire();
    const isa = (k: number): IrqLine => {
      const pic = this.pic.irqLine(k), io = this.ioapic.irqLine(k === 0 ? 2 : k);
      return { set: (level) => { pic.set(level); io.set(level); } };
    };
    const irq = isa;
    this.mem.addMmio(LAPIC_BASE, 0x1000, {
      read: (addr, size) => this.localApic().mmioRead(addr - LAPIC_BASE, size),
      write: (addr, size, v) => this.localApic().mmioWrite(addr - LAPIC_BASE, size, v),
    }, 'local APIC');
    this.mem.addMmio(IOAPIC_BASE, 0x1000, {
      read: (addr, size) => this.ioapic.mmioRead(addr - IOAPIC_BASE, size),
      write: (addr, size, v) => this.ioapic.mmioWrite(addr - IOAPIC_BASE, size, v),
    }, 'IOAPIC');

    this.pit = new Pit8254({ time: t, scheduler: s, outputs: [irq(0)] });
    this.port61 = new Port61(this.pit, t);
    this.com1 = new Uart16550({ time: t, scheduler: s, irq: irq(4), sink: spec.com1 });
    this.com2 = new Uart16550({ time: t, scheduler: s, irq: irq(3), sink: spec.com2 });
    this.cmos = new CmosRtc({ time: t, scheduler: s, irq: irq(8), startTime: spec.rtcStart });
    this.cmos.setMemorySize(ram);
    this.kbc = new I8042({ kbdIrq: irq(1), auxIrq: irq(12), onReset: () => this.reset('keyboard controller reset (0xFE to port 0x64)'), onA20: (on) => { this.a20 = on; } });
    this.port92 = new Port92({ onReset: () => this.reset('fast reset through port 0x92'), onA20: (on) => { this.a20 = on; } });
    this.post = new PostCode();
    this.debugExit = new DebugExit((status) => this.stop('exit', status));
    this.console = new HostConsole({ channels: spec.consoleChannels ?? [null], irq: irq(5) });

    const p = this.ports;
    p.attach('pic', this.pic, PIC_PORTS);
    p.attach('pit', this.pit, PIT_PORTS);
    p.attach('port61', this.port61, PORT61_PORTS);
    p.attach('com1', this.com1, UART_COM1_PORTS);
    p.attach('com2', this.com2, UART_COM2_PORTS);
    p.attach('cmos', this.cmos, CMOS_PORTS);
    p.attach('i8042', this.kbc, I8042_PORTS);
    p.attach('port92', this.port92, PORT92_PORTS);
    p.attach('post', this.post, POST_CODE_PORTS);
    p.attach('debug-exit', this.debugExit, DEBUG_EXIT_PORTS);
    p.attach('host-console', this.console, HOST_CONSOLE_PORTS);
  }

  get bsp(): Cpu { return this.cores[0]; }

  /**
   * A signal (interrupt, NMI, INIT, SIPI) reaches `cpu` at the current device time. A core that
   * is halted or waiting for a SIPI did nothing meanwhile, so its clock moves up to that time:
   * it must not wake "before" the timer event or the other core's IPI that woke it.
   */
  private catchUp(cpu: Cpu): void {
    if (cpu.state !== HALTED && cpu.state !== WAIT_SIPI) return;
    const now = this.time.now();
    if (cpu.cycles < now) cpu.cycles = now;
  }

  /**
   * Runs host code on `cpu` outside the run loop, as a boot loader's jump to a kernel's entry
   * does: while `fn` runs, `cpu` is the current core (device time is its clock, the APIC page is
   * its own APIC). Used by the LWK's entry (kernel/boot.ts); the run loop does the same for
   * every host trap.
   */
  enter<T>(cpu: Cpu, fn: () => T): T {
    const prev = this.current;
    this.current = cpu;
    try { return fn(); } finally { this.current = prev; }
  }

  /** The local APIC of the core making the access (the APIC page is per core). */
  private localApic(): LocalApic {
    return this.lapics[this.current !== null ? this.cores.indexOf(this.current) : 0];
  }

  /** Stops the machine at the end of the current instruction. */
  stop(reason: StopReason, status: number | null = null, detail = ''): void {
    if (this.stopReason !== null) return;
    this.stopReason = reason;
    this.exitStatus = status;
    this.stopDetail = detail;
    if (this.current !== null) this.current.requestStop();
  }

  private reset(why: string): void {
    // Like QEMU with -no-reboot: a reset ends the run.
    this.stop('reset', null, why);
  }

  /**
   * Puts the boot processor in the state Multiboot defines: flat 32-bit protected mode at CPL 0,
   * paging and interrupts off, EAX/EBX as given, EIP = entry.
   */
  startFlat32(entry: number, eax: number, ebx: number): void {
    const cpu = this.bsp;
    cpu.cr0 = (cpu.cr0 & ~0x80000000) | 1;
    cpu.updateMode();
    cpu.setCpl(0);
    cpu.loadSegCache(CS, 0x08, 0, 0xffffffff, 0xc09b);
    for (const sg of [SS, DS, ES, FS, GS]) cpu.loadSegCache(sg, 0x10, 0, 0xffffffff, 0xc093);
    cpu.setEflags(0, -1);
    cpu.r.fill(0);
    cpu.r[0] = eax; cpu.r[3] = ebx;
    cpu.eip = entry >>> 0;
    cpu.flushTlbAll();
  }

  /** A halted core that an interrupt could still wake. */
  private wakeable(c: Cpu): boolean {
    return c.state === HALTED && ((c.flags & IF) !== 0 || c.host !== null || c.nmiPending);
  }

  /**
   * Runs until the machine stops or the slowest core's clock reaches `maxCycles`.
   */
  run(maxCycles = Infinity): StopReason {
    const cores = this.cores, events = this.events;
    while (this.stopReason === null) {
      let c: Cpu | null = null;
      let anyWakeable = false;
      for (const k of cores) {
        if (k.state === RUNNING) { if (c === null || k.cycles < c.cycles) c = k; }
        else if (this.wakeable(k)) {
          anyWakeable = true;
          if (k.intc !== null && k.intc.hasInterrupt() || k.nmiPending) { if (c === null || k.cycles < c.cycles) c = k; }
        }
      }
      const ev = events.nextEventAt();
      if (c === null) {
        if (cores.every((k) => k.state === SHUTDOWN)) { this.stop('shutdown', null, cores[0].shutdownReason); break; }
        if (!anyWakeable || ev === Infinity) { this.stop('idle'); break; }
        if (ev > maxCycles) { this.stop('limit'); break; }
        for (const k of cores) if (k.state === HALTED && k.cycles < ev) k.cycles = ev; // idle time passes
        events.runUntil(ev);
        continue;
      }
      if (ev <= c.cycles) { events.runUntil(c.cycles); continue; }
      if (c.cycles >= maxCycles) { this.stop('limit'); break; }
      const until = Math.min(ev, c.cycles + this.quantum, maxCycles);
      this.current = c;
      c.run(until);
      this.current = null;
      if (c.state === SHUTDOWN) { this.stop('shutdown', null, c.shutdownReason); break; }
    }
    return this.stopReason!;
  }

  stats(): MachineStats {
    let instructions = 0, cycles = 0, tlbMisses = 0, walkRefs = 0, exceptions = 0, interrupts = 0;
    for (const c of this.cores) {
      instructions += c.icount; cycles = Math.max(cycles, c.cycles);
      tlbMisses += c.stats.tlbMisses; walkRefs += c.stats.walkRefs;
      exceptions += c.stats.exceptions; interrupts += c.stats.interrupts;
    }
    return { instructions, cycles, tlbMisses, walkRefs, exceptions, interrupts, unbackedMemory: this.mem.unbacked, unclaimedPorts: this.ports.unclaimed };
  }
}
