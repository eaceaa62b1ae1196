/**
 * Intel 8254 programmable interval timer: three 16-bit down counters clocked at 1.193182 MHz,
 * a clock derived exactly from the cycle clock (tick k at the first cycle c with
 * c * 1193182 >= k * hz).
 *
 * Device offsets (PIT_PORTS: 0x40-0x43): 0, 1, 2 counters 0-2; 3 control word (write only;
 * reads return 0xFF, the 8254 leaves the bus floating).
 *
 * Nothing runs per tick: each counter's count and OUT are closed-form functions of the tick
 * since its last load, and only a counter with an output line attached (counter 0 drives IRQ0)
 * schedules events, one at each OUT transition (mode 2: the falling edge when the count
 * reaches 1 and the rising edge one tick later; mode 3: every half period; modes 0/1: terminal
 * count; modes 4/5: the one-tick strobe).
 *
 * Timing, per the data sheet: a count written at tick t (between CLK pulses t and t+1) is
 * loaded into the counting element on pulse t+1, which does not decrement it; each later pulse
 * decrements it (by 2 in mode 3). So in mode 0, OUT rises N+1 ticks after the count write; in
 * mode 4 the strobe comes N+1 ticks after it; in mode 2 OUT is low for one tick every N ticks;
 * in mode 3 OUT is high for ceil(N/2) and low for floor(N/2) ticks. A count of 0 means 65536
 * (10000 in BCD).
 *   mode 0: OUT low after the control word and after each count write; the first byte of a
 *           two-byte count stops counting; GATE low suspends counting.
 *   mode 1: a rising GATE (trigger) loads the count on the next pulse and drives OUT low until
 *           terminal count; retriggerable; a new count is used at the next trigger.
 *   mode 2, 3: a new count written while counting is used from the end of the current period
 *           (mode 2) or half period (mode 3); GATE low forces OUT high and suspends counting;
 *           a rising GATE reloads the count on the next pulse. Counts of 1 are illegal in
 *           these modes (data sheet); here mode 2 then holds OUT low, mode 3 holds it high.
 *   mode 4: like mode 0 with OUT high and a one-tick low strobe at terminal count.
 *   mode 5: like mode 1 with a strobe instead of a pulse.
 *   Modes 6 and 7 are modes 2 and 3 (the status byte reports the bits as written).
 * Counter latch and read-back (status byte: OUTPUT, NULL COUNT, RW, mode, BCD) commands,
 * LSB / MSB / LSB-then-MSB access with separate read and write byte flip-flops, and BCD
 * counting are modelled. Gate inputs: setGate(); on a PC gates 0 and 1 are tied high and
 * gate 2 is port 0x61 bit 0 (port61.ts).
 * Simplifications: a count written in mode 0/4 while GATE is low is visible in the counter
 * from the write rather than from the next pulse; a GATE fall during a mode 4 strobe cuts the
 * strobe short. After reset every counter is unprogrammed (mode 3, no count, OUT high, no
 * events): programming the timer as a BIOS leaves it is the wiring's firmware's job.
 */
import { readBytes, writeBytes } from './byte-io.ts';
import { TickClock } from './tick-clock.ts';
import type { EventHandle, EventScheduler, IrqLine, PortDevice, PortWindow, Snapshottable, TimeSource } from './types.ts';

export const PIT_PORTS: readonly PortWindow[] = [{ base: 0x40, length: 4, offset: 0 }];
export const PIT_HZ = 1193182;

/** waiting: no count since the control word; armed: mode 1/5 count written, no trigger yet;
 *  suspended: GATE low (modes 0, 2, 3, 4) with a count; running: counting from baseTick. */
export type PitPhase = 'waiting' | 'armed' | 'suspended' | 'running';

export interface PitChannelState {
  /** Mode bits M2..M0 as written (0-7). */
  mode: number;
  /** RW bits: 1 LSB, 2 MSB, 3 LSB then MSB. */
  access: number;
  bcd: boolean;
  /** Count register, raw 16 bits as written (BCD-encoded in BCD mode). */
  cr: number;
  writeMsbNext: boolean;
  writeLsb: number;
  readMsbNext: boolean;
  /** Latched count bytes still to be read. */
  latch: number[];
  /** Latched status byte, or null. */
  status: number | null;
  gate: boolean;
  phase: PitPhase;
  /** Counting element value (logical, may be the modulus) when not running or before baseTick. */
  held: number;
  heldOut: boolean;
  baseTick: number;
  /** Counting element at baseTick (logical: 1..modulus for a fresh load). */
  baseCount: number;
  /** Modes 0/1: terminal count already reached at baseTick; mode 3: OUT of the first phase. */
  baseOut: boolean;
  /** Modes 4/5: the strobe is still to come. */
  strobe: boolean;
  /** Mode 3: ticks left in the first (possibly partial) half period at baseTick. */
  firstLen: number;
  /** Modes 2/3: reload value (logical 1..modulus). */
  period: number;
  /** NULL COUNT: -1 clear, -2 set until the next load, t >= 0 set for ticks before t. */
  nullUntil: number;
  /** Level last driven on this counter's output line. */
  line: boolean;
}

export interface Pit8254State {
  channels: PitChannelState[];
}

export interface Pit8254Options {
  time: TimeSource;
  scheduler: EventScheduler;
  /** Output lines of counters 0-2; on a PC only counter 0 has one (IRQ0). */
  outputs?: readonly (IrqLine | undefined)[];
  /** Initial GATE levels; default [true, true, false]. */
  gates?: readonly boolean[];
}

const NULL_PENDING = -2;

interface Mode3Point {
  ce: number;
  out: boolean;
  rem: number;
}

function effMode(s: PitChannelState): number {
  return s.mode >= 6 ? s.mode - 4 : s.mode;
}

function modulus(s: PitChannelState): number {
  return s.bcd ? 10000 : 0x10000;
}

function fromBcd(v: number): number {
  return ((v >> 12) & 15) * 1000 + ((v >> 8) & 15) * 100 + ((v >> 4) & 15) * 10 + (v & 15);
}

function toBcd(v: number): number {
  return (Math.floor(v / 1000) % 10 << 12) | (Math.floor(v / 100) % 10 << 8) | (Math.floor(v / 10) % 10 << 4) | v % 10;
}

/** The logical initial count of a raw count register value: 0 means the modulus. */
function initialCount(s: PitChannelState, raw: number): number {
  const M = modulus(s);
  const v = (s.bcd ? fromBcd(raw) : raw) % M;
  return v === 0 ? M : v;
}

function mod(a: number, m: number): number {
  const r = a % m;
  return r < 0 ? r + m : r;
}

function mode3At(s: PitChannelState, d: number): Mode3Point {
  if (d < s.firstLen) return { ce: s.baseCount - 2 * d, out: s.baseOut, rem: s.firstLen - d };
  const P = s.period;
  if (P === 1) return { ce: 0, out: true, rem: Infinity };
  const e = d - s.firstLen;
  const o1 = !s.baseOut;
  const S = P & 1 ? P - 1 : P;
  const L1 = o1 ? (P + 1) >> 1 : P >> 1;
  const m = e % P;
  if (m < L1) return { ce: S - 2 * m, out: o1, rem: L1 - m };
  const k = m - L1;
  return { ce: S - 2 * k, out: !o1, rem: P - L1 - k };
}

/** Counting element and OUT of a channel at `tick`. */
function evalAt(s: PitChannelState, tick: number): { ce: number; out: boolean } {
  if (s.phase !== 'running' || tick < s.baseTick) return { ce: s.held, out: s.heldOut };
  const d = tick - s.baseTick;
  const M = modulus(s);
  switch (effMode(s)) {
    case 0:
    case 1: {
      const ce = d < s.baseCount ? s.baseCount - d : mod(s.baseCount - d, M);
      return { ce, out: s.baseOut || d >= s.baseCount };
    }
    case 4:
    case 5: {
      const ce = d < s.baseCount ? s.baseCount - d : mod(s.baseCount - d, M);
      return { ce, out: !(s.strobe && d === s.baseCount) };
    }
    case 2: {
      const ce = d < s.baseCount ? s.baseCount - d : s.period - ((d - s.baseCount) % s.period);
      return { ce, out: ce !== 1 };
    }
    default: {
      const p = mode3At(s, d);
      return { ce: p.ce, out: p.out };
    }
  }
}

/** The first tick after `tick` at which OUT differs from OUT at `tick`, or -1 if never. */
function nextChange(s: PitChannelState, tick: number): number {
  if (s.phase !== 'running') return -1;
  if (tick < s.baseTick) {
    if (evalAt(s, s.baseTick).out !== evalAt(s, tick).out) return s.baseTick;
    tick = s.baseTick;
  }
  const d = tick - s.baseTick;
  switch (effMode(s)) {
    case 0:
    case 1:
      return !s.baseOut && d < s.baseCount ? s.baseTick + s.baseCount : -1;
    case 4:
    case 5:
      if (!s.strobe) return -1;
      if (d < s.baseCount) return s.baseTick + s.baseCount;
      if (d === s.baseCount) return s.baseTick + s.baseCount + 1;
      return -1;
    case 2: {
      const ce = evalAt(s, tick).ce;
      if (ce === 1) return s.period === 1 ? -1 : tick + 1;
      return tick + ce - 1;
    }
    default: {
      const p = mode3At(s, d);
      if (!Number.isFinite(p.rem)) return -1;
      return mode3At(s, d + p.rem).out !== p.out ? tick + p.rem : -1;
    }
  }
}

function channelPowerOn(gate: boolean): PitChannelState {
  return {
    mode: 3, access: 3, bcd: false, cr: 0, writeMsbNext: false, writeLsb: 0, readMsbNext: false,
    latch: [], status: null, gate, phase: 'waiting', held: 0, heldOut: true, baseTick: 0,
    baseCount: 0, baseOut: true, strobe: false, firstLen: 0, period: 0, nullUntil: NULL_PENDING,
    line: true,
  };
}

export class Pit8254 implements PortDevice, Snapshottable<Pit8254State> {
  private readonly clock: TickClock;
  private readonly scheduler: EventScheduler;
  private readonly outputs: readonly (IrqLine | undefined)[];
  private ch: PitChannelState[];
  private handles: (EventHandle | null)[] = [null, null, null];

  constructor(opts: Pit8254Options) {
    this.clock = new TickClock(opts.time, PIT_HZ);
    this.scheduler = opts.scheduler;
    this.outputs = opts.outputs ?? [];
    const g = opts.gates ?? [true, true, false];
    this.ch = [0, 1, 2].map((i) => channelPowerOn(g[i] ?? true));
  }

  /** Sets the GATE input of counter c (0-2). */
  setGate(c: number, level: boolean): void {
    const s = this.chan(c);
    if (s.gate === level) return;
    const t = this.clock.nowTick();
    const cur = evalAt(s, t);
    s.gate = level;
    switch (effMode(s)) {
      case 0:
      case 4:
        if (!level && s.phase === 'running') {
          if (t >= s.baseTick) {
            const d = t - s.baseTick;
            s.held = cur.ce;
            if (effMode(s) === 0) {
              s.heldOut = cur.out;
              s.baseOut = cur.out;
            } else {
              s.heldOut = true;
              s.strobe = s.strobe && d < s.baseCount;
            }
          } else {
            s.held = s.baseCount; // the pending load still happens
          }
          s.phase = 'suspended';
        } else if (level && s.phase === 'suspended') {
          s.phase = 'running';
          s.baseTick = t;
          s.baseCount = s.held;
        }
        break;
      case 1:
      case 5:
        if (level && (s.phase === 'armed' || s.phase === 'running')) {
          s.held = cur.ce;
          s.heldOut = cur.out;
          s.baseTick = t + 1;
          s.baseCount = initialCount(s, s.cr);
          s.baseOut = false;
          s.strobe = true;
          s.phase = 'running';
          if (s.nullUntil === NULL_PENDING) s.nullUntil = t + 1;
        }
        break;
      default:
        if (!level) {
          if (s.phase === 'running') {
            s.held = cur.ce;
            s.phase = 'suspended';
            if (s.nullUntil > t || s.nullUntil === NULL_PENDING) s.nullUntil = NULL_PENDING;
          }
          s.heldOut = true;
        } else if (s.phase === 'suspended') {
          s.heldOut = true;
          this.freshPeriodic(s, t + 1, initialCount(s, s.cr));
          s.phase = 'running';
          if (s.nullUntil === NULL_PENDING) s.nullUntil = t + 1;
        }
        break;
    }
    this.resched(c);
  }

  /** OUT of counter c now. */
  output(c: number): boolean {
    return evalAt(this.chan(c), this.clock.nowTick()).out;
  }

  ioRead(port: number, size: 1 | 2 | 4): number {
    return readBytes((o) => this.read8(o), port, size);
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    writeBytes((o, v) => this.write8(o, v), port, size, value);
  }

  private chan(c: number): PitChannelState {
    const s = this.ch[c];
    if (s === undefined) throw new RangeError(`PIT counter ${c} out of range 0-2`);
    return s;
  }

  private read8(offset: number): number {
    if (offset < 0 || offset > 2) return 0xff;
    const s = this.ch[offset]!;
    if (s.status !== null) {
      const v = s.status;
      s.status = null;
      return v;
    }
    if (s.latch.length > 0) return s.latch.shift()!;
    const v = this.encodedCount(s, this.clock.nowTick());
    switch (s.access) {
      case 1:
        return v & 0xff;
      case 2:
        return v >> 8;
      default: {
        const msb = s.readMsbNext;
        s.readMsbNext = !msb;
        return msb ? v >> 8 : v & 0xff;
      }
    }
  }

  private write8(offset: number, v: number): void {
    if (offset === 3) this.writeControl(v);
    else if (offset >= 0 && offset <= 2) this.writeCounter(offset, v);
  }

  private encodedCount(s: PitChannelState, tick: number): number {
    const v = evalAt(s, tick).ce % modulus(s);
    return s.bcd ? toBcd(v) : v;
  }

  private latchCount(c: number): void {
    const s = this.ch[c]!;
    if (s.latch.length > 0) return; // a second latch before the read is ignored
    const v = this.encodedCount(s, this.clock.nowTick());
    s.latch = s.access === 1 ? [v & 0xff] : s.access === 2 ? [v >> 8] : [v & 0xff, v >> 8];
  }

  private statusByte(c: number): number {
    const s = this.ch[c]!;
    const t = this.clock.nowTick();
    const nullCount = s.nullUntil === NULL_PENDING || t < s.nullUntil;
    return (evalAt(s, t).out ? 0x80 : 0) | (nullCount ? 0x40 : 0) | (s.access << 4) | (s.mode << 1) | (s.bcd ? 1 : 0);
  }

  private writeControl(v: number): void {
    const sc = v >> 6;
    if (sc === 3) {
      // Read-back: bit 5 = 0 latches counts, bit 4 = 0 latches status, bits 1-3 select.
      for (let c = 0; c < 3; c++) {
        if ((v & (2 << c)) === 0) continue;
        if ((v & 0x20) === 0) this.latchCount(c);
        if ((v & 0x10) === 0 && this.ch[c]!.status === null) this.ch[c]!.status = this.statusByte(c);
      }
      return;
    }
    const rw = (v >> 4) & 3;
    if (rw === 0) {
      this.latchCount(sc);
      return;
    }
    const s = this.ch[sc]!;
    const cur = evalAt(s, this.clock.nowTick());
    s.mode = (v >> 1) & 7;
    s.access = rw;
    s.bcd = (v & 1) !== 0;
    s.writeMsbNext = false;
    s.readMsbNext = false;
    s.latch = [];
    s.status = null;
    s.phase = 'waiting';
    s.held = cur.ce;
    s.heldOut = effMode(s) !== 0;
    s.strobe = false;
    s.nullUntil = NULL_PENDING;
    this.resched(sc);
  }

  private writeCounter(c: number, v: number): void {
    const s = this.ch[c]!;
    switch (s.access) {
      case 1:
        this.loadCount(c, v & 0xff);
        break;
      case 2:
        this.loadCount(c, (v & 0xff) << 8);
        break;
      default:
        if (!s.writeMsbNext) {
          s.writeLsb = v & 0xff;
          s.writeMsbNext = true;
          if (effMode(s) === 0) {
            // Mode 0: writing the first byte stops counting and drives OUT low at once.
            const cur = evalAt(s, this.clock.nowTick());
            s.phase = 'waiting';
            s.held = cur.ce;
            s.heldOut = false;
            this.resched(c);
          }
        } else {
          s.writeMsbNext = false;
          this.loadCount(c, s.writeLsb | ((v & 0xff) << 8));
        }
        break;
    }
  }

  private loadCount(c: number, raw: number): void {
    const s = this.ch[c]!;
    s.cr = raw;
    const n = initialCount(s, raw);
    const t = this.clock.nowTick();
    const cur = evalAt(s, t);
    const m = effMode(s);
    switch (m) {
      case 0:
      case 4:
        s.held = cur.ce;
        s.heldOut = m === 0 ? false : cur.out;
        s.baseTick = t + 1;
        s.baseCount = n;
        s.baseOut = false;
        s.strobe = true;
        s.nullUntil = t + 1;
        if (s.gate) {
          s.phase = 'running';
        } else {
          s.phase = 'suspended';
          s.held = n;
        }
        break;
      case 1:
      case 5:
        if (s.phase === 'waiting') {
          s.phase = 'armed';
          s.held = cur.ce;
          s.heldOut = true;
        }
        s.nullUntil = NULL_PENDING; // loaded at the next trigger
        break;
      default:
        if (s.phase === 'running') {
          if (t < s.baseTick) {
            this.freshPeriodic(s, s.baseTick, n); // the load has not happened yet: replace it
            s.nullUntil = s.baseTick;
          } else {
            this.rebasePeriodic(s, t, n);
          }
        } else if (s.phase === 'waiting' && s.gate) {
          s.held = cur.ce;
          s.heldOut = true;
          this.freshPeriodic(s, t + 1, n);
          s.phase = 'running';
          s.nullUntil = t + 1;
        } else {
          if (s.phase === 'waiting') {
            s.phase = 'suspended';
            s.held = cur.ce;
            s.heldOut = true;
          }
          s.nullUntil = NULL_PENDING; // loaded when GATE rises
        }
        break;
    }
    this.resched(c);
  }

  /** Modes 2/3: a fresh load of n at tick `base`. */
  private freshPeriodic(s: PitChannelState, base: number, n: number): void {
    s.baseTick = base;
    s.period = n;
    if (effMode(s) === 2) {
      s.baseCount = n;
    } else {
      s.baseCount = n & 1 ? n - 1 : n;
      s.firstLen = (n + 1) >> 1;
      s.baseOut = true;
    }
  }

  /** Modes 2/3: a new count n written at tick t while counting: used from the next reload. */
  private rebasePeriodic(s: PitChannelState, t: number, n: number): void {
    const d = t - s.baseTick;
    if (effMode(s) === 2) {
      const ce = evalAt(s, t).ce;
      s.baseTick = t;
      s.baseCount = ce;
      s.period = n;
      s.nullUntil = t + ce;
    } else {
      const p = mode3At(s, d);
      if (!Number.isFinite(p.rem)) {
        this.freshPeriodic(s, t + 1, n);
        s.nullUntil = t + 1;
        return;
      }
      s.baseTick = t;
      s.baseCount = p.ce;
      s.firstLen = p.rem;
      s.baseOut = p.out;
      s.period = n;
      s.nullUntil = t + p.rem;
    }
  }

  /** Re-arms counter c's output event and drives its line to the current OUT. */
  private resched(c: number): void {
    const line = this.outputs[c];
    if (line === undefined) return;
    const h = this.handles[c];
    if (h !== null && h !== undefined) this.scheduler.cancel(h);
    this.handles[c] = null;
    const t = this.clock.nowTick();
    const out = evalAt(this.ch[c]!, t).out;
    this.arm(c, t);
    this.drive(c, out);
  }

  private arm(c: number, tick: number): void {
    const nt = nextChange(this.ch[c]!, tick);
    if (nt >= 0) this.handles[c] = this.scheduler.schedule(this.clock.cycleOfTick(nt), () => this.fire(c, nt));
  }

  private fire(c: number, tick: number): void {
    this.handles[c] = null;
    const out = evalAt(this.ch[c]!, tick).out;
    this.arm(c, tick);
    this.drive(c, out);
  }

  private drive(c: number, out: boolean): void {
    const s = this.ch[c]!;
    if (s.line === out) return;
    s.line = out;
    this.outputs[c]?.set(out);
  }

  save(): Pit8254State {
    return { channels: this.ch.map((s) => ({ ...s, latch: [...s.latch] })) };
  }

  restore(st: Pit8254State): void {
    for (let c = 0; c < 3; c++) {
      const h = this.handles[c];
      if (h !== null && h !== undefined) this.scheduler.cancel(h);
      this.handles[c] = null;
    }
    this.ch = st.channels.map((s) => ({ ...s, latch: [...s.latch] }));
    for (let c = 0; c < 3; c++) this.resched(c);
  }

  /** All counters unprogrammed (mode 3, no count, OUT high); GATE inputs keep their levels. */
  reset(): void {
    for (let c = 0; c < 3; c++) {
      const h = this.handles[c];
      if (h !== null && h !== undefined) this.scheduler.cancel(h);
      this.handles[c] = null;
      const line = this.ch[c]!.line;
      this.ch[c] = { ...channelPowerOn(this.ch[c]!.gate), line };
    }
    for (let c = 0; c < 3; c++) this.resched(c);
  }
}
