/**
 * Port 0x61, system control port B of the PC/AT: the speaker gate and the PIT counter 2
 * output, plus the refresh toggle.
 *
 * Device offset 0 (PORT61_PORTS: 0x61).
 *   write: bit 0 PIT counter 2 GATE, bit 1 speaker data enable, bits 2-3 parity / channel
 *          check enables (stored, no effect here); bits 4-7 ignored.
 *   read:  bits 0-3 as written, bit 4 refresh request toggle (flips every 18 PIT ticks,
 *          about 15 us, as PIT counter 1 drives DRAM refresh on an AT; derived from the cycle
 *          clock), bit 5 OUT of PIT counter 2, bits 6-7 (I/O channel check, parity error) 0.
 * No sound is produced.
 */
import { readBytes, writeBytes } from './byte-io.ts';
import { PIT_HZ } from './pit8254.ts';
import { TickClock } from './tick-clock.ts';
import type { PortDevice, PortWindow, Snapshottable, TimeSource } from './types.ts';

export const PORT61_PORTS: readonly PortWindow[] = [{ base: 0x61, length: 1, offset: 0 }];

/** What port 0x61 needs of the timer (Pit8254 provides it). */
export interface SpeakerTimer {
  setGate(channel: number, level: boolean): void;
  output(channel: number): boolean;
}

export interface Port61State {
  value: number;
}

const REFRESH_TICKS = 18;

export class Port61 implements PortDevice, Snapshottable<Port61State> {
  private value = 0;
  private readonly clock: TickClock;

  constructor(
    private readonly timer: SpeakerTimer,
    time: TimeSource,
  ) {
    this.clock = new TickClock(time, PIT_HZ);
  }

  ioRead(port: number, size: 1 | 2 | 4): number {
    return readBytes((o) => (o === 0 ? this.read8() : 0xff), port, size);
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    writeBytes((o, v) => {
      if (o === 0) this.write8(v);
    }, port, size, value);
  }

  private read8(): number {
    const refresh = Math.floor(this.clock.nowTick() / REFRESH_TICKS) & 1;
    return (this.value & 0x0f) | (refresh << 4) | (this.timer.output(2) ? 0x20 : 0);
  }

  private write8(v: number): void {
    this.value = v & 0x0f;
    this.timer.setGate(2, (v & 1) !== 0);
  }

  save(): Port61State {
    return { value: this.value };
  }

  /** The timer's gate is part of the timer's own snapshot, so it is not driven here. */
  restore(s: Port61State): void {
    this.value = s.value;
  }

  reset(): void {
    this.value = 0;
    this.timer.setGate(2, false);
  }
}
