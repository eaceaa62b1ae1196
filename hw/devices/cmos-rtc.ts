/**
 * Motorola MC146818 real-time clock with its CMOS RAM, as on the PC/AT.
 *
 * Device offsets (CMOS_PORTS: 0x70, 0x71):
 *   0  index (write only; bit 7 disables NMI on a PC, bits 0-6 select a register; reads 0xFF)
 *   1  data of the selected register
 * Registers: 0 seconds, 1 seconds alarm, 2 minutes, 3 minutes alarm, 4 hours, 5 hours alarm,
 * 6 day of week (1 = Sunday), 7 day of month, 8 month, 9 year, 0x0A status A, 0x0B status B,
 * 0x0C status C, 0x0D status D, 0x32 century (the PC convention), the rest NVRAM.
 *
 * Time comes only from the simulated clock: the RTC's 32.768 kHz time base is derived exactly
 * from the cycle clock, and the calendar starts at a configurable time (startTime, the RTC time
 * at cycle 0; default 2000-01-01 00:00:00). No host clock is read.
 * Modelled: BCD or binary and 12- or 24-hour formats per status B (DM, 24/12; existing
 * register contents are not converted when the format changes, as on the chip); SET halts
 * updates so the time can be written, and clears UIE; status A's divider bits (DV 000-010 run,
 * other values hold the divider in reset; leaving reset, the first update comes 500 ms later)
 * and rate select (periodic interrupt at 32768 >> (RS - 1) Hz, RS 1 and 2 giving 256 and
 * 128 Hz, RS 0 none); UIP, set for the 244 us before each update (the registers change at
 * the update instant; the update cycle itself takes no time here); status C's PF, AF, UF
 * flags, set whether or not enabled, IRQF = PF.PIE + AF.AIE + UF.UIE driving the IRQ line
 * (IRQ 8) until C is read, which clears all of them; alarm with don't-care bytes (0xC0-0xFF);
 * status D's VRT (always 1); 128 bytes of RAM; the NMI-disable bit (nmiDisabled).
 * Events are scheduled only for an enabled interrupt while IRQF is clear; flags of disabled
 * sources are computed when C is read.
 * Left out: daylight-saving (DSE), the square-wave output (SQWE), the 4.194304 and
 * 1.048576 MHz time bases (DV 000 and 001 count as 32.768 kHz), and the CMOS checksum.
 * The day of week counts on its own as on the chip: writing it shifts it against the date.
 */
import { readBytes, writeBytes } from './byte-io.ts';
import { type CalendarTime, daysFromCivil, fromEpochSeconds, toEpochSeconds, weekday } from './calendar.ts';
import { TickClock } from './tick-clock.ts';
import type { EventHandle, EventScheduler, IrqLine, PortDevice, PortWindow, Snapshottable, TimeSource } from './types.ts';

export const CMOS_PORTS: readonly PortWindow[] = [{ base: 0x70, length: 2, offset: 0 }];
export const RTC_HZ = 32768;

const SEC = 0x00;
const SEC_ALARM = 0x01;
const MIN = 0x02;
const MIN_ALARM = 0x03;
const HOUR = 0x04;
const HOUR_ALARM = 0x05;
const DOW = 0x06;
const DAY = 0x07;
const MONTH = 0x08;
const YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
const CENTURY = 0x32;
const TIME_REGS: ReadonlySet<number> = new Set([SEC, MIN, HOUR, DOW, DAY, MONTH, YEAR, CENTURY]);

const B_SET = 0x80;
const B_PIE = 0x40;
const B_AIE = 0x20;
const B_UIE = 0x10;
const B_SQWE = 0x08;
const B_DM = 0x04;
const B_24H = 0x02;
const C_PF = 0x40;
const C_AF = 0x20;
const C_UF = 0x10;

/** RTC ticks before an update during which UIP reads 1 (244 us). */
const UIP_TICKS = 8;

export interface CmosRtcState {
  index: number;
  nmiDisabled: boolean;
  /** Registers 0-127: RAM, status A (bits 0-6) and B; the time bytes while updates are halted. */
  ram: number[];
  /** While updating: the RTC time (seconds since 1970) during the second that starts at secBase. */
  secAtPhase: number;
  /** An RTC tick at which an update (a second) happens: the phase of the update cycle. */
  secBase: number;
  /** Origin of the periodic-interrupt divider, in RTC ticks. */
  divBase: number;
  /** Day-of-week register minus the weekday of the date, mod 7. */
  dowDelta: number;
  /** Status C flags PF, AF, UF. */
  flags: number;
  /** RTC tick up to which the flags have been computed. */
  settled: number;
  /** Level driven on the IRQ line (= IRQF). */
  irq: boolean;
}

export interface CmosRtcOptions {
  time: TimeSource;
  scheduler: EventScheduler;
  irq?: IrqLine;
  /** The RTC time at cycle 0 (default 2000-01-01 00:00:00). */
  startTime?: CalendarTime;
}

function mod(a: number, m: number): number {
  const r = a % m;
  return r < 0 ? r + m : r;
}

export class CmosRtc implements PortDevice, Snapshottable<CmosRtcState> {
  private readonly clock: TickClock;
  private readonly scheduler: EventScheduler;
  private readonly irqLine: IrqLine | undefined;
  private s: CmosRtcState;
  private handle: EventHandle | null = null;

  constructor(opts: CmosRtcOptions) {
    this.clock = new TickClock(opts.time, RTC_HZ);
    this.scheduler = opts.scheduler;
    this.irqLine = opts.irq;
    const start = toEpochSeconds(opts.startTime ?? { year: 2000, month: 1, day: 1, hour: 0, minute: 0, second: 0 });
    const ram = new Array<number>(128).fill(0);
    ram[REG_A] = 0x26; // 32.768 kHz time base, 1024 Hz periodic rate
    ram[REG_B] = B_24H; // BCD, 24-hour
    this.s = { index: 0, nmiDisabled: false, ram, secAtPhase: start, secBase: 0, divBase: 0, dowDelta: 0, flags: 0, settled: 0, irq: false };
    this.s.settled = this.clock.nowTick();
  }

  /** Whether the guest has set the NMI-disable bit (port 0x70 bit 7). */
  get nmiDisabled(): boolean {
    return this.s.nmiDisabled;
  }

  /** The RTC's current date and time (what the registers would show, in 24-hour form). */
  currentTime(): CalendarTime {
    if (this.updating()) return fromEpochSeconds(this.timeAt(this.clock.nowTick()));
    return fromEpochSeconds(this.bytesToSeconds().seconds);
  }

  /**
   * Fills the standard memory-size bytes as PC firmware (and QEMU) does: 0x15/0x16 base memory
   * in KiB (at most 640), 0x17/0x18 and 0x30/0x31 memory above 1 MiB in KiB (at most 65535),
   * 0x34/0x35 memory between 16 MiB and 4 GiB in 64 KiB units, 0x5B-0x5D memory above 4 GiB in
   * 64 KiB units. `ramBytes` is the RAM below 4 GiB, `highBytes` any RAM above it.
   */
  setMemorySize(ramBytes: number, highBytes = 0): void {
    const KiB = 1024;
    const MiB = 1024 * KiB;
    const r = this.s.ram;
    const base = Math.min(Math.floor(ramBytes / KiB), 640);
    r[0x15] = base & 0xff;
    r[0x16] = base >> 8;
    const ext = Math.min(ramBytes > MiB ? Math.floor((ramBytes - MiB) / KiB) : 0, 0xffff);
    r[0x17] = ext & 0xff;
    r[0x18] = ext >> 8;
    r[0x30] = ext & 0xff;
    r[0x31] = ext >> 8;
    const above16 = Math.min(ramBytes > 16 * MiB ? Math.floor((ramBytes - 16 * MiB) / (64 * KiB)) : 0, 0xffff);
    r[0x34] = above16 & 0xff;
    r[0x35] = above16 >> 8;
    const high = Math.min(Math.floor(highBytes / (64 * KiB)), 0xffffff);
    r[0x5b] = high & 0xff;
    r[0x5c] = (high >> 8) & 0xff;
    r[0x5d] = (high >> 16) & 0xff;
  }

  /** Direct access to the RAM bytes (firmware-like setup), bypassing the clock registers. */
  setRam(index: number, value: number): void {
    this.s.ram[index & 0x7f] = value & 0xff;
  }

  getRam(index: number): number {
    return this.s.ram[index & 0x7f]!;
  }

  ioRead(port: number, size: 1 | 2 | 4): number {
    return readBytes((o) => (o === 1 ? this.readData() : 0xff), port, size);
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    writeBytes((o, v) => {
      if (o === 0) {
        this.s.index = v & 0x7f;
        this.s.nmiDisabled = (v & 0x80) !== 0;
      } else if (o === 1) {
        this.writeData(v);
      }
    }, port, size, value);
  }

  // ---- time keeping ----

  private dividerRunning(): boolean {
    return ((this.s.ram[REG_A]! >> 4) & 7) <= 2;
  }

  private updating(): boolean {
    return this.dividerRunning() && (this.s.ram[REG_B]! & B_SET) === 0;
  }

  private timeAt(tick: number): number {
    return this.s.secAtPhase + Math.floor((tick - this.s.secBase) / RTC_HZ);
  }

  /** The tick at which the time becomes `seconds`. */
  private boundaryTick(seconds: number): number {
    return this.s.secBase + (seconds - this.s.secAtPhase) * RTC_HZ;
  }

  private periodTicks(): number {
    const rs = this.s.ram[REG_A]! & 15;
    if (rs === 0) return 0;
    return 1 << ((rs <= 2 ? rs + 7 : rs) - 1);
  }

  private get bcd(): boolean {
    return (this.s.ram[REG_B]! & B_DM) === 0;
  }

  private enc(v: number): number {
    return this.bcd ? ((Math.floor(v / 10) % 10) << 4) | v % 10 : v;
  }

  private dec(b: number): number {
    return this.bcd ? (b >> 4) * 10 + (b & 15) : b;
  }

  private encHour(h: number): number {
    if (this.s.ram[REG_B]! & B_24H) return this.enc(h);
    return this.enc(h % 12 || 12) | (h >= 12 ? 0x80 : 0);
  }

  private decHour(b: number): number {
    if (this.s.ram[REG_B]! & B_24H) return this.dec(b);
    return (this.dec(b & 0x7f) % 12) + (b & 0x80 ? 12 : 0);
  }

  /** The clock register bytes for the time `seconds`, in the current format. */
  private timeBytes(seconds: number): Map<number, number> {
    const t = fromEpochSeconds(seconds);
    const dow = mod(weekday(daysFromCivil(t.year, t.month, t.day)) + this.s.dowDelta, 7) + 1;
    return new Map([
      [SEC, this.enc(t.second)], [MIN, this.enc(t.minute)], [HOUR, this.encHour(t.hour)], [DOW, this.enc(dow)],
      [DAY, this.enc(t.day)], [MONTH, this.enc(t.month)], [YEAR, this.enc(mod(t.year, 100))],
      [CENTURY, this.enc(mod(Math.floor(t.year / 100), 100))],
    ]);
  }

  /** Interprets the clock bytes in RAM (current format): the time and the day-of-week offset. */
  private bytesToSeconds(): { seconds: number; dowDelta: number } {
    const r = this.s.ram;
    const year = this.dec(r[CENTURY]!) * 100 + this.dec(r[YEAR]!);
    const month = this.dec(r[MONTH]!);
    const day = this.dec(r[DAY]!);
    const seconds = toEpochSeconds({ year, month, day, hour: this.decHour(r[HOUR]!), minute: this.dec(r[MIN]!), second: this.dec(r[SEC]!) });
    const days = Math.floor(seconds / 86400);
    return { seconds, dowDelta: mod(this.dec(r[DOW]!) - 1 - weekday(days), 7) };
  }

  /** Copies the running time into the RAM bytes (updates are about to halt). */
  private materialize(tick: number): void {
    for (const [reg, v] of this.timeBytes(this.timeAt(tick))) this.s.ram[reg] = v;
  }

  /** Starts counting from the RAM bytes at `tick`, keeping the update phase. */
  private unfreeze(tick: number): void {
    const { seconds, dowDelta } = this.bytesToSeconds();
    this.s.dowDelta = dowDelta;
    this.s.secAtPhase = seconds - Math.floor((tick - this.s.secBase) / RTC_HZ);
  }

  /** Alarm: the first second after `x` whose time of day matches the alarm bytes, or -1. */
  private nextAlarm(x: number): number {
    const r = this.s.ram;
    const matches = (byte: number, n: number, encode: (v: number) => number): number[] => {
      const out: number[] = [];
      for (let v = 0; v < n; v++) if ((byte & 0xc0) === 0xc0 || encode(v) === byte) out.push(v);
      return out;
    };
    const S = matches(r[SEC_ALARM]!, 60, (v) => this.enc(v));
    const M = matches(r[MIN_ALARM]!, 60, (v) => this.enc(v));
    const H = matches(r[HOUR_ALARM]!, 24, (v) => this.encHour(v));
    if (S.length === 0 || M.length === 0 || H.length === 0) return -1;
    const firstAfter = (tod: number): number => {
      for (const h of H) {
        if (h * 3600 + 3599 <= tod) continue;
        for (const m of M) {
          if (h * 3600 + m * 60 + 59 <= tod) continue;
          for (const s of S) {
            const c = h * 3600 + m * 60 + s;
            if (c > tod) return c;
          }
        }
      }
      return -1;
    };
    const day = Math.floor(x / 86400);
    const today = firstAfter(x - day * 86400);
    if (today >= 0) return day * 86400 + today;
    return (day + 1) * 86400 + firstAfter(-1);
  }

  /** Brings the PF, UF, AF flags up to `tick`. */
  private settle(tick: number): void {
    const a = this.s.settled;
    if (tick <= a) return;
    if (this.dividerRunning()) {
      const p = this.periodTicks();
      if (p > 0 && Math.floor((tick - this.s.divBase) / p) > Math.floor((a - this.s.divBase) / p)) this.s.flags |= C_PF;
    }
    if (this.updating()) {
      const x0 = this.timeAt(a);
      const x1 = this.timeAt(tick);
      if (x1 > x0) {
        this.s.flags |= C_UF;
        const al = this.nextAlarm(x0);
        if (al >= 0 && al <= x1) this.s.flags |= C_AF;
      }
    }
    this.s.settled = tick;
  }

  private irqf(): boolean {
    return (this.s.flags & this.s.ram[REG_B]! & (C_PF | C_AF | C_UF)) !== 0;
  }

  /** After a change: drives IRQ from IRQF and schedules the next event that could set it. */
  private commit(): void {
    const level = this.irqf();
    const changed = level !== this.s.irq;
    this.s.irq = level;
    this.resched();
    if (changed) this.irqLine?.set(level);
  }

  private resched(): void {
    if (this.handle !== null) this.scheduler.cancel(this.handle);
    this.handle = null;
    if (this.s.irq) return; // IRQF stays set until C is read
    const t = this.clock.nowTick();
    const b = this.s.ram[REG_B]!;
    let next = Infinity;
    if ((b & B_PIE) && this.dividerRunning()) {
      const p = this.periodTicks();
      if (p > 0) next = Math.min(next, this.s.divBase + (Math.floor((t - this.s.divBase) / p) + 1) * p);
    }
    if (this.updating()) {
      const x = this.timeAt(t);
      if (b & B_UIE) next = Math.min(next, this.boundaryTick(x + 1));
      if (b & B_AIE) {
        const al = this.nextAlarm(x);
        if (al >= 0) next = Math.min(next, this.boundaryTick(al));
      }
    }
    if (next === Infinity) return;
    this.handle = this.scheduler.schedule(this.clock.cycleOfTick(next), () => {
      this.handle = null;
      this.settle(this.clock.nowTick());
      this.commit();
    });
  }

  // ---- registers ----

  private readData(): number {
    const t = this.clock.nowTick();
    this.settle(t);
    const i = this.s.index;
    if (TIME_REGS.has(i) && this.updating()) return this.timeBytes(this.timeAt(t)).get(i)!;
    switch (i) {
      case REG_A: {
        const uip = this.updating() && mod(t - this.s.secBase, RTC_HZ) >= RTC_HZ - UIP_TICKS;
        return (this.s.ram[REG_A]! & 0x7f) | (uip ? 0x80 : 0);
      }
      case REG_C: {
        const v = this.s.flags | (this.irqf() ? 0x80 : 0);
        this.s.flags = 0;
        this.commit();
        return v;
      }
      case REG_D:
        return 0x80;
      default:
        return this.s.ram[i]!;
    }
  }

  private writeData(v: number): void {
    const t = this.clock.nowTick();
    this.settle(t);
    const i = this.s.index;
    const r = this.s.ram;
    if (TIME_REGS.has(i)) {
      if (this.updating()) {
        this.materialize(t);
        r[i] = v;
        this.unfreeze(t);
      } else {
        r[i] = v;
      }
    } else if (i === REG_A) {
      const wasRunning = this.dividerRunning();
      const wasUpdating = this.updating();
      if (wasUpdating) this.materialize(t);
      r[REG_A] = v & 0x7f;
      if (!wasRunning && this.dividerRunning()) {
        this.s.divBase = t;
        this.s.secBase = t - RTC_HZ / 2; // the first update comes 500 ms after the divider starts
      }
      if (!wasUpdating && this.updating()) this.unfreeze(t);
    } else if (i === REG_B) {
      const wasUpdating = this.updating();
      if (v & B_SET) v &= ~B_UIE;
      if (wasUpdating && (v & B_SET)) this.materialize(t); // in the format the clock counted in
      r[REG_B] = v;
      if (!wasUpdating && this.updating()) this.unfreeze(t);
    } else if (i === REG_C || i === REG_D) {
      // read only
    } else {
      r[i] = v;
    }
    this.commit();
  }

  save(): CmosRtcState {
    return { ...this.s, ram: [...this.s.ram] };
  }

  restore(s: CmosRtcState): void {
    this.s = { ...s, ram: [...s.ram] };
    this.resched();
  }

  /** The RESET pin: clears PIE, AIE, UIE, SQWE and the status C flags; time and RAM are kept. */
  reset(): void {
    this.settle(this.clock.nowTick());
    this.s.ram[REG_B] = this.s.ram[REG_B]! & ~(B_PIE | B_AIE | B_UIE | B_SQWE);
    this.s.flags = 0;
    this.commit();
  }
}
