/**
 * Intel xAPIC local APIC (Intel SDM vol. 3A, chapter "Advanced Programmable Interrupt
 * Controller"), one instance per core, as on a Pentium 4 / Xeon: 8-bit APIC IDs, system-bus
 * messages, version 0x00050014 (version 0x14 = integrated xAPIC, max LVT entry 5 = six LVT
 * entries: timer, thermal, performance counters, LINT0, LINT1, error; bit 24 clear = no EOI
 * broadcast suppression).
 *
 * MMIO page (LAPIC_BASE = 0xFEE00000, one per core: the wiring routes a core's accesses to its
 * own APIC): mmioRead/mmioWrite take the offset within the 4 KiB page. Registers are 32 bits
 * at 16-byte strides (LapicReg). Reads of any size and alignment return the addressed bytes of
 * the register image, in which bytes 4-15 of each 16-byte slot read 0 (the SDM guarantees only
 * aligned 32-bit accesses; sub-word reads are harmless since no register has read side
 * effects). Writes take effect only as aligned 32-bit stores at a 16-byte boundary; other
 * writes are ignored (Bochs stops, QEMU ignores them). An access to an offset that holds no
 * register (0x000, 0x010, 0x040-0x070, 0x0C0, 0x290-0x2F0 (no CMCI entry), 0x3A0-0x3D0,
 * 0x3F0 and up) reads 0, is dropped, and sets ESR bit 7 (illegal register address). Writes to
 * read-only registers (version, APR, PPR, ISR, TMR, IRR, current count) are ignored; reading
 * the write-only EOI register returns 0.
 *
 * Interrupt acceptance and priority (SDM "Interrupt Handling", "Task and Processor
 * Priorities"): fixed interrupts set IRR (TMR set for level-triggered, cleared for edge);
 * vectors 0-15 are refused with ESR bit 6 (received illegal vector). PPR = TPR when
 * TPR[7:4] >= ISRV[7:4], else ISRV[7:4]:0; the highest IRR vector is dispensed when its
 * class is above PPR[7:4], so an in-service vector blocks its own class and below, and a
 * higher class nests. acknowledge() (the INTA cycle) moves it from IRR to ISR; when nothing
 * is deliverable any more (TPR raised since INTR rose) it returns the spurious vector (SVR
 * bits 7:0) and leaves ISR alone. An EOI write clears the highest ISR bit; when that vector's
 * TMR bit is set it calls onEoiBroadcast(vector) (wire it to the IOAPICs' eoi) and clears the
 * remote IRR of a level-triggered LINT entry with that vector. APR reads the SDM's P6 formula.
 * Two interrupts per vector can queue (one in ISR, one in IRR); more collapse into the IRR bit.
 *
 * Software disable (SVR bit 8 clear, the reset state): every LVT mask bit is set and cannot
 * be cleared; fixed and lowest-priority messages are discarded (the APIC "responds normally to
 * INIT, NMI, SMI and SIPI messages"); interrupts already in IRR/ISR stay and are still
 * dispensed (as KVM does); IPIs can still be sent. The focus bit (SVR bit 9) is stored only.
 * Global disable (IA32_APIC_BASE bit 11 clear, through writeApicBaseMsr): the APIC is as if
 * absent: its page reads all ones and drops writes, messages are ignored, and LINT0/LINT1 are
 * the core's INTR (the ExtINT source is passed straight through) and NMI pins. Clearing the bit
 * returns the APIC to its power-up state (ID kept); setting it again leaves it there.
 *
 * Timer (SDM "APIC Timer", "TSC-Deadline Mode"): the timer counts bus-clock ticks (busHz,
 * default 100 MHz; bus tick k happens at the first cycle c with c * busHz >= k * hz, exact)
 * divided by the divide configuration register (bits 0, 1, 3: 2, 4, ..., 128, 1). A write of
 * a non-zero initial count at a cycle in bus tick t0 (re)starts it: the count decrements at
 * ticks t0 + d, t0 + 2d, ... and reaches 0 at t0 + N*d, when the interrupt is raised (at the
 * first cycle of that tick). One-shot: the count then stays 0. Periodic: the count reloads
 * and the interrupt repeats every N*d ticks (the count reads N, N-1, ..., 1, N, ...). A write
 * of 0 stops the timer. The current count is computed from the cycle count on each read;
 * nothing ticks. A divide change while counting continues from the current count with the new
 * divisor from the tick of the write (the prescaler phase is not modelled). A write to the LVT
 * timer that changes the mode (bits 18:17) disarms the timer (current count 0, deadline 0), as
 * the SDM says; mode 3 (reserved) behaves as one-shot. The timer counts while its LVT entry is
 * masked; expiries while masked are lost (also in TSC-deadline mode, where the deadline is
 * then cleared). Events go on the scheduler only while the entry is unmasked and an expiry is
 * due. TSC-deadline mode: setTscDeadline(cycles) is the WRMSR of IA32_TSC_DEADLINE, with the
 * TSC = time.now(); the interrupt comes at the first cycle >= the deadline (at once if it has
 * passed), then the MSR reads 0; 0 disarms; in the other modes writes are ignored and
 * getTscDeadline() returns 0; initial-count writes are ignored and the current count reads 0.
 *
 * LVT: the timer and error entries deliver fixed interrupts. LINT0/LINT1 (setLint(pin, level)
 * or lintLine(pin)) honour delivery mode, polarity and trigger: fixed edge (on the asserting
 * edge), fixed level (delivered while asserted and remote IRR (bit 14) clear; remote IRR set on
 * delivery, cleared by the EOI of that vector), NMI and INIT on the asserting edge, ExtINT (the
 * 8259 in virtual-wire mode, level-sensitive by definition): while LINT0 is unmasked in ExtINT
 * mode, the source given to setExtIntSource() (the 8259's hasInterrupt/acknowledge) drives
 * hasInterrupt() and supplies the vector at INTA, ahead of the IRR (ExtINT bypasses IRR/ISR
 * and priority). Wire the 8259's INTR output to lintLine(0) so the core is poked when it
 * changes. An ExtINT message (from an IOAPIC entry in ExtINT mode) makes the next INTA go to
 * that source too. SMI is not modelled (ignored everywhere). Thermal and performance-counter
 * entries are registers only: nothing raises them. Delivery-status bits read 0: every local
 * interrupt and IPI is accepted within the call that raises it.
 *
 * IPIs: a write to ICR low sends the IPI through bus.sendIpi(from, icrLow, icrHigh), where
 * `from` is the APIC's hardware-assigned (initial) ID. ApicBus (below) is a router for a set of
 * local APICs: destination shorthand (none, self, all including self, all excluding self),
 * physical (8-bit ID, 0xFF broadcast) and logical destinations (flat model: MDA AND LDR;
 * cluster model: high nibbles equal and low nibbles intersect, 0xFF broadcast; other DFR
 * models match nothing), delivery modes
 * fixed, lowest priority (delivered as fixed to the matching enabled APIC with the lowest TPR,
 * the first one in attach order on ties: xAPIC arbitration is chipset-specific), NMI
 * (onNmi), INIT (INIT reset of the target's APIC state, ID kept, then onInit), INIT level
 * de-assert (ignored, as on Pentium 4 and later) and start-up (onStartup(vector); whether the
 * core is waiting for a SIPI is the core's business). A fixed or lowest-priority IPI with a
 * vector below 16 is not sent and sets ESR bit 5. As on Pentium 4, IPIs other than INIT are
 * sent as edge-triggered, asserted messages whatever ICR bits 14/15 say. Without a bus, the
 * APIC routes its IPIs to itself only.
 *
 * ESR: errors accumulate internally; a write to ESR copies them to the readable register and
 * clears the accumulator (write, then read). Modelled bits: 5 send illegal vector, 6 receive
 * illegal vector, 7 illegal register address; each error also raises the LVT error interrupt
 * when it is unmasked. The Pentium/P6 bus errors (bits 0-3) and redirectable IPI (bit 4) never
 * occur.
 *
 * Left out: x2APIC mode (MSR interface, self-IPI register), EOI broadcast suppression, SMI,
 * the APIC bus arbitration ID, the remote read register, focus-processor checks, CMCI, and
 * timing of message delivery (everything is accepted within the call).
 */
import { TickClock } from './tick-clock.ts';
import type { EventHandle, EventScheduler, IrqLine, Snapshottable, TimeSource } from './types.ts';

/** Default physical address of the xAPIC page; one page per core at the same address. */
export const LAPIC_BASE = 0xfee00000;
export const LAPIC_SIZE = 0x1000;
/** Version 0x14 (integrated xAPIC), max LVT entry 5 (bits 23:16), no EOI-broadcast suppression. */
export const LAPIC_VERSION = 0x00050014;
/** Default APIC timer base clock (the "bus clock"). */
export const LAPIC_DEFAULT_BUS_HZ = 100_000_000;

/** Register offsets within the page. ISR, TMR and IRR are 8 registers each, 0x10 apart. */
export const LapicReg = {
  ID: 0x020,
  VERSION: 0x030,
  TPR: 0x080,
  APR: 0x090,
  PPR: 0x0a0,
  EOI: 0x0b0,
  LDR: 0x0d0,
  DFR: 0x0e0,
  SVR: 0x0f0,
  ISR: 0x100,
  TMR: 0x180,
  IRR: 0x200,
  ESR: 0x280,
  ICR_LOW: 0x300,
  ICR_HIGH: 0x310,
  LVT_TIMER: 0x320,
  LVT_THERMAL: 0x330,
  LVT_PERF: 0x340,
  LVT_LINT0: 0x350,
  LVT_LINT1: 0x360,
  LVT_ERROR: 0x370,
  TIMER_INITIAL: 0x380,
  TIMER_CURRENT: 0x390,
  TIMER_DIVIDE: 0x3e0,
} as const;

/** Delivery modes (ICR, LVT and IOAPIC redirection entries, bits 10:8). */
export const DeliveryMode = {
  Fixed: 0,
  LowestPriority: 1,
  Smi: 2,
  Nmi: 4,
  Init: 5,
  Startup: 6,
  ExtInt: 7,
} as const;

/** 0: physical destination, 1: logical destination. */
export type DestMode = 0 | 1;
/** 0: edge, 1: level. */
export type TriggerMode = 0 | 1;

/** ESR bits this model reports. */
export const ESR_SEND_ILLEGAL_VECTOR = 1 << 5;
export const ESR_RECEIVE_ILLEGAL_VECTOR = 1 << 6;
export const ESR_ILLEGAL_REGISTER = 1 << 7;

/** IA32_APIC_BASE (MSR 0x1B) bits. */
export const APIC_BASE_BSP = 1 << 8;
export const APIC_BASE_ENABLE = 1 << 11;

/** LVT timer modes (bits 18:17). */
export const TimerMode = { OneShot: 0, Periodic: 1, TscDeadline: 2 } as const;

/** An 8259-style interrupt source: INTR level and the INTA cycle. */
export interface InterruptSource {
  hasInterrupt(): boolean;
  acknowledge(): number;
}

/** Where a local APIC sends its IPIs. `from` is the sender's initial (hardware) APIC ID. */
export interface LapicBus {
  sendIpi(from: number, icrLow: number, icrHigh: number): void;
}

export interface LocalApicOptions {
  time: TimeSource;
  scheduler: EventScheduler;
  /** Hardware-assigned APIC ID (0-255): the ID register's reset value and `from` in sendIpi. */
  apicId: number;
  /** Bootstrap processor flag of IA32_APIC_BASE; default apicId === 0. */
  bsp?: boolean;
  /** Timer base clock in Hz, an integer no larger than time.hz; default 100 MHz. */
  busHz?: number;
  bus?: LapicBus;
  onInterruptChange?: () => void;
  onNmi?: () => void;
  onInit?: () => void;
  onStartup?: (vector: number) => void;
  onEoiBroadcast?: (vector: number) => void;
  extInt?: InterruptSource;
}

export interface LocalApicState {
  id: number;
  /** IA32_APIC_BASE, low 32 bits. */
  apicBase: number;
  tpr: number;
  /** Logical APIC ID (LDR bits 31:24). */
  ldr: number;
  /** DFR model (bits 31:28): 0xF flat, 0x0 cluster. */
  dfrModel: number;
  /** SVR bits 9:0. */
  svr: number;
  irr: number[];
  isr: number[];
  tmr: number[];
  /** ESR as last latched by a write. */
  esr: number;
  /** Errors since the last ESR write. */
  esrPending: number;
  icrLow: number;
  icrHigh: number;
  /** timer, thermal, perf, LINT0, LINT1, error; LINT remote IRR lives in bit 14. */
  lvt: number[];
  initialCount: number;
  divideConfig: number;
  /** The counting timer was started and not stopped (a one-shot may have reached 0 since). */
  timerActive: boolean;
  /** Bus tick the count was (re)based at, and the count then. */
  timerBaseTick: number;
  timerBaseCount: number;
  /** Cycle of the pending timer event, -1 when none. */
  timerEventAt: number;
  /** IA32_TSC_DEADLINE, 0 when disarmed. */
  tscDeadline: number;
  /** LINT0/LINT1 input levels (outside the APIC: kept by reset). */
  lint: boolean[];
  /** An ExtINT message awaits its INTA cycle. */
  extIntPending: boolean;
}

const LVT_TIMER = 0;
const LVT_THERMAL = 1;
const LVT_PERF = 2;
const LVT_LINT0 = 3;
const LVT_LINT1 = 4;
const LVT_ERROR = 5;
const LVT_COUNT = 6;
/** Writable bits per LVT entry (SDM figure "Local Vector Table"). */
const LVT_WRITABLE = [0x000700ff, 0x000107ff, 0x000107ff, 0x0001a7ff, 0x0001a7ff, 0x000100ff] as const;

const LVT_MASKED = 1 << 16;
const LVT_LEVEL = 1 << 15;
const LVT_REMOTE_IRR = 1 << 14;
const LVT_ACTIVE_LOW = 1 << 13;
const SVR_ENABLE = 1 << 8;
/** ICR low writable bits: vector, delivery mode, destination mode, level, trigger, shorthand. */
const ICR_LOW_WRITABLE = 0x000ccfff;
const DIVISORS = [2, 4, 8, 16, 32, 64, 128, 1] as const;

function powerOnState(id: number, bsp: boolean, lint: boolean[]): LocalApicState {
  return {
    id,
    apicBase: (LAPIC_BASE | APIC_BASE_ENABLE | (bsp ? APIC_BASE_BSP : 0)) >>> 0,
    tpr: 0,
    ldr: 0,
    dfrModel: 0xf,
    svr: 0xff,
    irr: [0, 0, 0, 0, 0, 0, 0, 0],
    isr: [0, 0, 0, 0, 0, 0, 0, 0],
    tmr: [0, 0, 0, 0, 0, 0, 0, 0],
    esr: 0,
    esrPending: 0,
    icrLow: 0,
    icrHigh: 0,
    lvt: [LVT_MASKED, LVT_MASKED, LVT_MASKED, LVT_MASKED, LVT_MASKED, LVT_MASKED],
    initialCount: 0,
    divideConfig: 0,
    timerActive: false,
    timerBaseTick: 0,
    timerBaseCount: 0,
    timerEventAt: -1,
    tscDeadline: 0,
    lint: [...lint],
    extIntPending: false,
  };
}

function highestBit(regs: number[]): number {
  for (let i = 7; i >= 0; i--) {
    const w = regs[i]!;
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

function testBit(regs: number[], v: number): boolean {
  return ((regs[v >>> 5]! >>> (v & 31)) & 1) !== 0;
}

function setBit(regs: number[], v: number): void {
  regs[v >>> 5] = (regs[v >>> 5]! | (1 << (v & 31))) >>> 0;
}

function clearBit(regs: number[], v: number): void {
  regs[v >>> 5] = (regs[v >>> 5]! & ~(1 << (v & 31))) >>> 0;
}

export class LocalApic implements Snapshottable<LocalApicState> {
  /** The hardware-assigned APIC ID (the ID register's reset value). */
  readonly initialId: number;
  readonly bsp: boolean;
  readonly busHz: number;
  bus: LapicBus;
  onInterruptChange: (() => void) | null;
  onNmi: (() => void) | null;
  onInit: (() => void) | null;
  onStartup: ((vector: number) => void) | null;
  onEoiBroadcast: ((vector: number) => void) | null;

  private s: LocalApicState;
  private ext: InterruptSource | null;
  private readonly time: TimeSource;
  private readonly scheduler: EventScheduler;
  private readonly clock: TickClock;
  private timerEvent: EventHandle | null = null;
  /** Last value of hasInterrupt() reported through onInterruptChange. */
  private out = false;
  private inError = false;
  /**
   * The highest vector set in IRR, -1 if none: highestBit(s.irr), kept exact by recomputing it
   * at every change of IRR (accept, acknowledge, and every replacement of the state), so the
   * interrupt checks the core makes several times per instruction boundary need no scan.
   */
  private irrTop = -1;

  constructor(opts: LocalApicOptions) {
    if (!Number.isInteger(opts.apicId) || opts.apicId < 0 || opts.apicId > 255) {
      throw new RangeError(`APIC ID ${opts.apicId} out of range 0-255`);
    }
    const busHz = opts.busHz ?? LAPIC_DEFAULT_BUS_HZ;
    if (!Number.isInteger(busHz) || busHz <= 0 || busHz > opts.time.hz) {
      throw new RangeError(`APIC timer clock ${busHz} Hz must be a positive integer no larger than the cycle clock (${opts.time.hz} Hz)`);
    }
    this.initialId = opts.apicId;
    this.bsp = opts.bsp ?? opts.apicId === 0;
    this.busHz = busHz;
    this.time = opts.time;
    this.scheduler = opts.scheduler;
    this.clock = new TickClock(opts.time, busHz);
    this.bus = opts.bus ?? new ApicBus([this]);
    this.onInterruptChange = opts.onInterruptChange ?? null;
    this.onNmi = opts.onNmi ?? null;
    this.onInit = opts.onInit ?? null;
    this.onStartup = opts.onStartup ?? null;
    this.onEoiBroadcast = opts.onEoiBroadcast ?? null;
    this.ext = opts.extInt ?? null;
    this.s = powerOnState(this.initialId, this.bsp, [false, false]);
    this.irrTop = highestBit(this.s.irr);
  }

  // ============================================================================ wiring

  /** The 8259 (or any ExtINT source) whose vector INTA returns in virtual-wire mode. */
  setExtIntSource(src: InterruptSource | null): void {
    this.ext = src;
    this.refresh();
  }

  /** Drives the LINT0 (pin 0) or LINT1 (pin 1) input. */
  setLint(pin: 0 | 1, level: boolean): void {
    const old = this.s.lint[pin]!;
    this.s.lint[pin] = level;
    if (old === level) return;
    if (!this.globallyEnabled) {
      // No APIC: LINT0 is the core's INTR, LINT1 its NMI pin.
      if (pin === 1 && level) this.onNmi?.();
      this.refresh();
      return;
    }
    this.lintChanged(pin, old);
  }

  /** An IrqLine bound to LINT0 or LINT1, for wiring the 8259's INTR or an NMI source. */
  lintLine(pin: 0 | 1): IrqLine {
    return { set: (level: boolean) => this.setLint(pin, level) };
  }

  /**
   * What a PC BIOS leaves on the boot processor (SeaBIOS: APIC software-enabled, LINT0 ExtINT,
   * LINT1 NMI), so the 8259 reaches the core through the local APIC.
   */
  setupVirtualWire(): void {
    this.writeRegister(LapicReg.SVR, this.s.svr | SVR_ENABLE);
    this.writeRegister(LapicReg.LVT_LINT0, 0x8700);
    this.writeRegister(LapicReg.LVT_LINT1, 0x8400);
  }

  // ============================================================================ state views

  /** The APIC ID register's 8-bit ID. */
  get id(): number {
    return this.s.id;
  }

  get tpr(): number {
    return this.s.tpr;
  }

  /** IA32_APIC_BASE bit 11. */
  get globallyEnabled(): boolean {
    return (this.s.apicBase & APIC_BASE_ENABLE) !== 0;
  }

  /** Globally enabled and SVR bit 8 set. */
  get softwareEnabled(): boolean {
    return this.globallyEnabled && (this.s.svr & SVR_ENABLE) !== 0;
  }

  /** Physical base address of the page as IA32_APIC_BASE says (the wiring maps it). */
  get baseAddress(): number {
    return (this.s.apicBase & 0xfffff000) >>> 0;
  }

  /** Whether a message to `dest` in the given destination mode addresses this APIC. */
  isDestination(dest: number, destMode: DestMode): boolean {
    dest &= 0xff;
    if (destMode === 0) return dest === 0xff || dest === this.s.id;
    const ldr = this.s.ldr;
    if (this.s.dfrModel === 0xf) return (dest & ldr) !== 0;
    if (this.s.dfrModel === 0) {
      if (dest === 0xff) return true;
      return dest >>> 4 === ldr >>> 4 && (dest & ldr & 0xf) !== 0;
    }
    return false;
  }

  // ============================================================================ MSRs

  /** RDMSR IA32_APIC_BASE (0x1B): the low 32 bits (the high bits are 0). */
  readApicBaseMsr(): number {
    return this.s.apicBase;
  }

  /**
   * WRMSR IA32_APIC_BASE. Returns false (the caller raises #GP, nothing changes) when a
   * reserved bit is set: bits 0-7, 9, 10 (x2APIC, not supported) or above bit 35. The BSP
   * flag is read-only here.
   */
  writeApicBaseMsr(value: number): boolean {
    if (!Number.isInteger(value) || value < 0 || value >= 2 ** 36) return false;
    const low = value % 2 ** 32;
    if ((low & 0x6ff) !== 0) return false;
    const was = this.globallyEnabled;
    const apicBase = ((low & 0xfffff000) | (low & APIC_BASE_ENABLE) | (this.s.apicBase & APIC_BASE_BSP)) >>> 0;
    if (was && (apicBase & APIC_BASE_ENABLE) === 0) {
      this.cancelTimerEvent();
      this.s = { ...powerOnState(this.s.id, this.bsp, this.s.lint), apicBase };
      this.irrTop = highestBit(this.s.irr);
    } else {
      this.s.apicBase = apicBase;
    }
    this.refresh();
    return true;
  }

  /** WRMSR IA32_TSC_DEADLINE (0x6E0), in cycles of the time source. */
  setTscDeadline(cycles: number): void {
    if (!this.globallyEnabled || this.timerMode() !== TimerMode.TscDeadline) return;
    const v = Math.max(0, Math.floor(cycles));
    this.cancelTimerEvent();
    this.s.tscDeadline = v;
    if (v !== 0 && v <= this.time.now()) {
      this.s.tscDeadline = 0;
      this.lvtFixed(LVT_TIMER);
      return;
    }
    this.armTimer();
  }

  /** RDMSR IA32_TSC_DEADLINE: 0 when disarmed, expired or not in TSC-deadline mode. */
  getTscDeadline(): number {
    if (this.timerMode() !== TimerMode.TscDeadline) return 0;
    const d = this.s.tscDeadline;
    return d !== 0 && d <= this.time.now() ? 0 : d;
  }

  // ============================================================================ MMIO

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    if (!this.globallyEnabled) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    let v = 0;
    let reg = -1;
    let regValue = 0;
    for (let i = 0; i < size; i++) {
      const o = (offset + i) & 0xfff;
      if ((o & 0xf) >= 4) continue;
      if ((o & 0xff0) !== reg) {
        reg = o & 0xff0;
        regValue = this.readRegister(reg);
      }
      v |= ((regValue >>> ((o & 3) * 8)) & 0xff) << (8 * i);
    }
    return v >>> 0;
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    if (!this.globallyEnabled) return;
    if (size !== 4 || (offset & 0xf) !== 0) return;
    this.writeRegister(offset & 0xff0, value);
  }

  /** An aligned 32-bit register read (offset a multiple of 16 within the page). */
  readRegister(reg: number): number {
    const s = this.s;
    if (reg >= LapicReg.ISR && reg < LapicReg.ISR + 0x80) return s.isr[(reg - LapicReg.ISR) >>> 4]!;
    if (reg >= LapicReg.TMR && reg < LapicReg.TMR + 0x80) return s.tmr[(reg - LapicReg.TMR) >>> 4]!;
    if (reg >= LapicReg.IRR && reg < LapicReg.IRR + 0x80) return s.irr[(reg - LapicReg.IRR) >>> 4]!;
    if (reg >= LapicReg.LVT_TIMER && reg <= LapicReg.LVT_ERROR) return s.lvt[(reg - LapicReg.LVT_TIMER) >>> 4]!;
    switch (reg) {
      case LapicReg.ID:
        return (s.id << 24) >>> 0;
      case LapicReg.VERSION:
        return LAPIC_VERSION;
      case LapicReg.TPR:
        return s.tpr;
      case LapicReg.APR:
        return this.apr();
      case LapicReg.PPR:
        return this.ppr();
      case LapicReg.EOI:
        return 0;
      case LapicReg.LDR:
        return (s.ldr << 24) >>> 0;
      case LapicReg.DFR:
        return ((s.dfrModel << 28) | 0x0fffffff) >>> 0;
      case LapicReg.SVR:
        return s.svr;
      case LapicReg.ESR:
        return s.esr;
      case LapicReg.ICR_LOW:
        return s.icrLow;
      case LapicReg.ICR_HIGH:
        return s.icrHigh;
      case LapicReg.TIMER_INITIAL:
        return s.initialCount;
      case LapicReg.TIMER_CURRENT:
        return this.currentCount();
      case LapicReg.TIMER_DIVIDE:
        return s.divideConfig;
      default:
        this.error(ESR_ILLEGAL_REGISTER);
        return 0;
    }
  }

  /** An aligned 32-bit register write (offset a multiple of 16 within the page). */
  writeRegister(reg: number, value: number): void {
    value >>>= 0;
    const s = this.s;
    if (reg >= LapicReg.ISR && reg < LapicReg.IRR + 0x80) return; // ISR, TMR, IRR: read-only
    if (reg >= LapicReg.LVT_TIMER && reg <= LapicReg.LVT_ERROR) {
      this.writeLvt((reg - LapicReg.LVT_TIMER) >>> 4, value);
      return;
    }
    switch (reg) {
      case LapicReg.ID:
        s.id = value >>> 24;
        return;
      case LapicReg.TPR:
        s.tpr = value & 0xff;
        this.refresh();
        return;
      case LapicReg.EOI:
        this.eoi();
        return;
      case LapicReg.LDR:
        s.ldr = value >>> 24;
        return;
      case LapicReg.DFR:
        s.dfrModel = value >>> 28;
        return;
      case LapicReg.SVR:
        this.writeSvr(value);
        return;
      case LapicReg.ESR:
        s.esr = s.esrPending;
        s.esrPending = 0;
        return;
      case LapicReg.ICR_LOW:
        this.sendIpi(value);
        return;
      case LapicReg.ICR_HIGH:
        s.icrHigh = (value & 0xff000000) >>> 0;
        return;
      case LapicReg.TIMER_INITIAL:
        this.writeInitialCount(value);
        return;
      case LapicReg.TIMER_DIVIDE:
        this.writeDivide(value);
        return;
      case LapicReg.VERSION:
      case LapicReg.APR:
      case LapicReg.PPR:
      case LapicReg.TIMER_CURRENT:
        return; // read-only
      default:
        this.error(ESR_ILLEGAL_REGISTER);
    }
  }

  // ============================================================================ CPU side

  /** INTR towards the core: an interrupt is deliverable (the core still checks IF). */
  hasInterrupt(): boolean {
    if (!this.globallyEnabled) return this.ext !== null && this.ext.hasInterrupt();
    if (this.extIntReady()) return true;
    const v = this.irrTop;
    return v >= 0 && (v & 0xf0) > (this.ppr() & 0xf0);
  }

  /** The INTA cycle: the vector the core takes. */
  acknowledge(): number {
    let vector: number;
    if (!this.globallyEnabled) {
      vector = this.ext !== null ? this.ext.acknowledge() : this.s.svr & 0xff;
    } else if (this.extIntReady()) {
      this.s.extIntPending = false;
      vector = this.ext !== null ? this.ext.acknowledge() : this.s.svr & 0xff;
    } else {
      const v = this.irrTop;
      if (v < 0 || (v & 0xf0) <= (this.ppr() & 0xf0)) {
        vector = this.s.svr & 0xff; // spurious: ISR untouched
      } else {
        clearBit(this.s.irr, v);
        this.irrTop = highestBit(this.s.irr);
        setBit(this.s.isr, v);
        vector = v;
      }
    }
    this.out = this.hasInterrupt();
    return vector & 0xff;
  }

  /**
   * A fixed (or lowest-priority) interrupt message from an IOAPIC or an IPI. `level` false is
   * a de-assert message, which xAPIC fixed interrupts ignore.
   */
  acceptInterrupt(vector: number, level: boolean, trigger: TriggerMode): void {
    if (!this.softwareEnabled || !level) return;
    this.accept(vector & 0xff, trigger);
  }

  /** Any message from the bus (IOAPIC or IPI), by delivery mode. */
  receive(deliveryMode: number, vector: number, level: boolean, trigger: TriggerMode): void {
    if (!this.globallyEnabled) return;
    switch (deliveryMode) {
      case DeliveryMode.Fixed:
      case DeliveryMode.LowestPriority:
        this.acceptInterrupt(vector, level, trigger);
        return;
      case DeliveryMode.Nmi:
        this.onNmi?.();
        return;
      case DeliveryMode.Init:
        if (trigger === 1 && !level) return; // INIT level de-assert: not on Pentium 4 and later
        this.initReset();
        return;
      case DeliveryMode.Startup:
        this.onStartup?.(vector & 0xff);
        return;
      case DeliveryMode.ExtInt:
        this.s.extIntPending = true;
        this.refresh();
        return;
      default:
        return; // SMI and reserved modes
    }
  }

  // ============================================================================ snapshot

  save(): LocalApicState {
    const s = this.s;
    return { ...s, irr: [...s.irr], isr: [...s.isr], tmr: [...s.tmr], lvt: [...s.lvt], lint: [...s.lint] };
  }

  restore(st: LocalApicState): void {
    this.cancelTimerEvent();
    this.s = { ...st, irr: [...st.irr], isr: [...st.isr], tmr: [...st.tmr], lvt: [...st.lvt], lint: [...st.lint] };
    this.irrTop = highestBit(this.s.irr);
    if (this.s.timerEventAt >= 0) this.timerEvent = this.scheduler.schedule(this.s.timerEventAt, this.timerExpired);
    this.out = this.hasInterrupt();
  }

  /** Power-up / RESET: every register as after power-up, the ID back to the hardware ID. */
  reset(): void {
    this.cancelTimerEvent();
    this.s = powerOnState(this.initialId, this.bsp, this.s.lint);
    this.irrTop = highestBit(this.s.irr);
    this.refresh();
  }

  // ============================================================================ internals

  /** INIT reset: the power-up state except the APIC ID and IA32_APIC_BASE; then onInit. */
  private initReset(): void {
    this.cancelTimerEvent();
    this.s = { ...powerOnState(this.s.id, this.bsp, this.s.lint), apicBase: this.s.apicBase };
    this.irrTop = highestBit(this.s.irr);
    this.refresh();
    this.onInit?.();
  }

  private ppr(): number {
    const isrv = highestBit(this.s.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.s.tpr & 0xf0) >= isrClass ? this.s.tpr : isrClass;
  }

  /** SDM: APR = TPR if TPR[7:4] >= IRRV[7:4] and TPR[7:4] > ISRV[7:4], else max(TPR[7:4] AND ISRV[7:4], IRRV[7:4]):0. */
  private apr(): number {
    const tpr = this.s.tpr >>> 4;
    const isrv = Math.max(0, highestBit(this.s.isr)) >>> 4;
    const irrv = Math.max(0, this.irrTop) >>> 4;
    if (tpr >= irrv && tpr > isrv) return this.s.tpr;
    return Math.max(tpr & isrv, irrv) << 4;
  }

  private extIntReady(): boolean {
    if (this.s.extIntPending) return true;
    const e = this.s.lvt[LVT_LINT0]!;
    return (e & LVT_MASKED) === 0 && ((e >>> 8) & 7) === DeliveryMode.ExtInt && this.ext !== null && this.ext.hasInterrupt();
  }

  /** Recomputes INTR and pokes the core when it changed. */
  private refresh(): void {
    const out = this.hasInterrupt();
    if (out !== this.out) {
      this.out = out;
      this.onInterruptChange?.();
    }
  }

  private accept(vector: number, trigger: TriggerMode): void {
    if (vector < 16) {
      this.error(ESR_RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    setBit(this.s.irr, vector);
    if (vector > this.irrTop) this.irrTop = vector;
    if (trigger === 1) setBit(this.s.tmr, vector);
    else clearBit(this.s.tmr, vector);
    this.refresh();
  }

  /** Raises the fixed interrupt of an LVT entry (timer, error) unless masked. */
  private lvtFixed(index: number): void {
    const e = this.s.lvt[index]!;
    if ((e & LVT_MASKED) === 0) this.accept(e & 0xff, 0);
  }

  private error(bits: number): void {
    this.s.esrPending |= bits;
    if (this.inError) return; // an illegal error vector must not recurse
    this.inError = true;
    try {
      this.lvtFixed(LVT_ERROR);
    } finally {
      this.inError = false;
    }
  }

  private eoi(): void {
    const v = highestBit(this.s.isr);
    if (v < 0) return;
    clearBit(this.s.isr, v);
    const level = testBit(this.s.tmr, v);
    if (level) {
      for (const i of [LVT_LINT0, LVT_LINT1]) {
        const e = this.s.lvt[i]!;
        if ((e & LVT_REMOTE_IRR) !== 0 && (e & 0xff) === v) this.s.lvt[i] = e & ~LVT_REMOTE_IRR;
      }
    }
    this.refresh();
    if (level) {
      this.onEoiBroadcast?.(v);
      this.lintLevelCheck(0);
      this.lintLevelCheck(1);
    }
  }

  private writeSvr(value: number): void {
    const s = this.s;
    s.svr = value & 0x3ff;
    if ((s.svr & SVR_ENABLE) === 0) {
      const timerWasUnmasked = (s.lvt[LVT_TIMER]! & LVT_MASKED) === 0;
      for (let i = 0; i < LVT_COUNT; i++) s.lvt[i] = (s.lvt[i]! | LVT_MASKED) >>> 0;
      if (timerWasUnmasked) this.armTimer();
    }
    this.refresh();
  }

  private writeLvt(index: number, value: number): void {
    const s = this.s;
    const old = s.lvt[index]!;
    let v = value & LVT_WRITABLE[index]!;
    if ((s.svr & SVR_ENABLE) === 0) v |= LVT_MASKED;
    if (index === LVT_LINT0 || index === LVT_LINT1) v |= old & LVT_REMOTE_IRR;
    s.lvt[index] = v >>> 0;
    switch (index) {
      case LVT_TIMER:
        if (((old ^ v) >>> 17) & 3) {
          // A write that changes the timer mode disarms the timer.
          s.timerActive = false;
          s.tscDeadline = 0;
          this.armTimer();
        } else if ((old ^ v) & LVT_MASKED) {
          this.armTimer();
        }
        return;
      case LVT_LINT0:
      case LVT_LINT1:
        this.refresh(); // ExtINT routing may have changed
        this.lintLevelCheck(index === LVT_LINT0 ? 0 : 1);
        return;
      case LVT_THERMAL:
      case LVT_PERF:
      case LVT_ERROR:
        return;
    }
  }

  private lintAsserted(pin: 0 | 1, level: boolean): boolean {
    return (this.s.lvt[LVT_LINT0 + pin]! & LVT_ACTIVE_LOW) !== 0 ? !level : level;
  }

  private lintChanged(pin: 0 | 1, oldLevel: boolean): void {
    const e = this.s.lvt[LVT_LINT0 + pin]!;
    const asserted = this.lintAsserted(pin, this.s.lint[pin]!);
    const rising = asserted && !this.lintAsserted(pin, oldLevel);
    if ((e & LVT_MASKED) !== 0) return;
    switch ((e >>> 8) & 7) {
      case DeliveryMode.Fixed:
        if ((e & LVT_LEVEL) !== 0) this.lintLevelCheck(pin);
        else if (rising) this.accept(e & 0xff, 0);
        return;
      case DeliveryMode.Nmi:
        if (rising) this.onNmi?.();
        return;
      case DeliveryMode.Init:
        if (rising) this.initReset();
        return;
      case DeliveryMode.ExtInt:
        this.refresh();
        return;
      default:
        return;
    }
  }

  /** Level-triggered fixed LINT: deliver while asserted and remote IRR is clear. */
  private lintLevelCheck(pin: 0 | 1): void {
    const i = LVT_LINT0 + pin;
    const e = this.s.lvt[i]!;
    if ((e & (LVT_MASKED | LVT_REMOTE_IRR)) !== 0 || (e & LVT_LEVEL) === 0 || ((e >>> 8) & 7) !== DeliveryMode.Fixed) return;
    if (!this.lintAsserted(pin, this.s.lint[pin]!)) return;
    if ((e & 0xff) >= 16) this.s.lvt[i] = (e | LVT_REMOTE_IRR) >>> 0;
    this.accept(e & 0xff, 1);
  }

  private sendIpi(value: number): void {
    const s = this.s;
    s.icrLow = (value & ICR_LOW_WRITABLE) >>> 0;
    const mode = (value >>> 8) & 7;
    if ((mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority) && (value & 0xff) < 16) {
      this.error(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    this.bus.sendIpi(this.initialId, s.icrLow, s.icrHigh);
  }

  // ---------------------------------------------------------------------------- timer

  private timerMode(): number {
    return (this.s.lvt[LVT_TIMER]! >>> 17) & 3;
  }

  private divisor(): number {
    const v = this.s.divideConfig;
    return DIVISORS[((v >>> 1) & 4) | (v & 3)]!;
  }

  private currentCount(): number {
    const s = this.s;
    const mode = this.timerMode();
    if (!s.timerActive || mode === TimerMode.TscDeadline) return 0;
    const n = Math.floor((this.clock.nowTick() - s.timerBaseTick) / this.divisor());
    if (n < s.timerBaseCount) return s.timerBaseCount - n;
    if (mode !== TimerMode.Periodic) return 0;
    return s.initialCount - ((n - s.timerBaseCount) % s.initialCount);
  }

  private writeInitialCount(value: number): void {
    const s = this.s;
    if (this.timerMode() === TimerMode.TscDeadline) return;
    s.initialCount = value;
    s.timerActive = value !== 0;
    s.timerBaseTick = this.clock.nowTick();
    s.timerBaseCount = value;
    this.armTimer();
  }

  private writeDivide(value: number): void {
    const s = this.s;
    const before = this.divisor();
    const current = this.currentCount();
    s.divideConfig = value & 0xb;
    if (this.divisor() !== before && current !== 0) {
      s.timerBaseTick = this.clock.nowTick();
      s.timerBaseCount = current;
      this.armTimer();
    }
  }

  private cancelTimerEvent(): void {
    if (this.timerEvent !== null) this.scheduler.cancel(this.timerEvent);
    this.timerEvent = null;
    this.s.timerEventAt = -1;
  }

  /** (Re)schedules the next timer event, only when one is due with the entry unmasked. */
  private armTimer(): void {
    this.cancelTimerEvent();
    const s = this.s;
    const lvt = s.lvt[LVT_TIMER]!;
    const mode = this.timerMode();
    const now = this.time.now();
    if (mode === TimerMode.TscDeadline) {
      if (s.tscDeadline === 0) return;
      if (s.tscDeadline <= now) {
        s.tscDeadline = 0; // expired while masked: lost, and the timer disarmed itself
        return;
      }
      if ((lvt & LVT_MASKED) === 0) this.scheduleTimer(s.tscDeadline);
      return;
    }
    if (!s.timerActive || (lvt & LVT_MASKED) !== 0) return;
    const d = this.divisor();
    const first = s.timerBaseTick + s.timerBaseCount * d;
    const nowTick = this.clock.nowTick();
    let fire: number;
    if (first > nowTick) {
      fire = first;
    } else if (mode === TimerMode.Periodic) {
      const period = s.initialCount * d;
      fire = first + (Math.floor((nowTick - first) / period) + 1) * period;
    } else {
      return; // one-shot already expired
    }
    this.scheduleTimer(this.clock.cycleOfTick(fire));
  }

  private scheduleTimer(at: number): void {
    this.s.timerEventAt = at;
    this.timerEvent = this.scheduler.schedule(at, this.timerExpired);
  }

  private readonly timerExpired = (): void => {
    this.timerEvent = null;
    this.s.timerEventAt = -1;
    if (this.timerMode() === TimerMode.TscDeadline) this.s.tscDeadline = 0;
    this.lvtFixed(LVT_TIMER);
    if (this.timerMode() === TimerMode.Periodic) this.armTimer();
  };
}

/**
 * The system bus between local APICs (and from IOAPICs to them): decodes ICR values and
 * IOAPIC messages into deliveries to the attached local APICs. It is also a valid
 * IoApicBus (deliver()).
 */
export class ApicBus implements LapicBus {
  private readonly apics: LocalApic[] = [];

  constructor(apics: readonly LocalApic[] = []) {
    for (const a of apics) this.attach(a);
  }

  attach(apic: LocalApic): void {
    this.apics.push(apic);
  }

  get members(): readonly LocalApic[] {
    return this.apics;
  }

  sendIpi(from: number, icrLow: number, icrHigh: number): void {
    const vector = icrLow & 0xff;
    const mode = (icrLow >>> 8) & 7;
    const destMode = ((icrLow >>> 11) & 1) as DestMode;
    const shorthand = (icrLow >>> 18) & 3;
    const dest = icrHigh >>> 24;
    const sender = this.apics.find((a) => a.initialId === from);
    let targets: LocalApic[];
    switch (shorthand) {
      case 0:
        targets = this.apics.filter((a) => a.isDestination(dest, destMode));
        break;
      case 1:
        targets = sender !== undefined ? [sender] : [];
        break;
      case 2:
        targets = [...this.apics];
        break;
      default:
        targets = this.apics.filter((a) => a !== sender);
        break;
    }
    // Pentium 4: the level and trigger bits matter only for INIT (level de-assert).
    const level = mode === DeliveryMode.Init ? ((icrLow >>> 14) & 1) === 1 : true;
    const trigger = (mode === DeliveryMode.Init ? (icrLow >>> 15) & 1 : 0) as TriggerMode;
    this.dispatch(targets, mode, vector, level, trigger);
  }

  /** An interrupt message from an IOAPIC (the IoApicBus interface). */
  deliver(dest: number, destMode: DestMode, deliveryMode: number, vector: number, level: boolean, trigger: TriggerMode): void {
    this.dispatch(
      this.apics.filter((a) => a.isDestination(dest, destMode)),
      deliveryMode,
      vector,
      level,
      trigger,
    );
  }

  private dispatch(targets: LocalApic[], mode: number, vector: number, level: boolean, trigger: TriggerMode): void {
    if (mode === DeliveryMode.LowestPriority && targets.length > 1) {
      let best: LocalApic | null = null;
      for (const a of targets) {
        if (a.softwareEnabled && (best === null || a.tpr < best.tpr)) best = a;
      }
      targets = [best ?? targets[0]!];
    }
    for (const a of targets) a.receive(mode, vector, level, trigger);
  }
}
