/**
 * A device clock derived from the cycle clock: tick k of a `freq` Hz clock happens at the
 * first cycle c with c * freq >= k * hz, so tickAt(c) = floor(c * freq / hz). The arithmetic is
 * exact (BigInt), so a 1.193182 MHz PIT or a 32.768 kHz RTC stays in phase over any run.
 * Both rates must be integers.
 */
import type { TimeSource } from './types.ts';

export class TickClock {
  private readonly hzN: bigint;
  private readonly freqN: bigint;

  constructor(
    private readonly time: TimeSource,
    readonly freq: number,
  ) {
    if (!Number.isInteger(time.hz) || time.hz <= 0) throw new RangeError(`cycle clock rate must be a positive integer, got ${time.hz}`);
    if (!Number.isInteger(freq) || freq <= 0) throw new RangeError(`device clock rate must be a positive integer, got ${freq}`);
    this.hzN = BigInt(time.hz);
    this.freqN = BigInt(freq);
  }

  /** Number of device ticks that have happened by `cycle`. */
  tickAt(cycle: number): number {
    return Number((BigInt(Math.floor(cycle)) * this.freqN) / this.hzN);
  }

  /** tickAt(now()). */
  nowTick(): number {
    return this.tickAt(this.time.now());
  }

  /** The first cycle at which tick `tick` has happened. */
  cycleOfTick(tick: number): number {
    return Number((BigInt(tick) * this.hzN + this.freqN - 1n) / this.freqN);
  }
}
