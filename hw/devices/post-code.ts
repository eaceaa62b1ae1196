/**
 * Port 0x80, the POST-code port: firmware writes progress codes to it, and Linux writes to it
 * as an I/O delay. Writes are recorded in order (the most recent `capacity` codes, default
 * 1024, plus a total count, so a long run's delay writes do not grow memory without bound);
 * reads return 0xFF (nothing answers on a PC).
 *
 * Device offset 0 (POST_CODE_PORTS: 0x80). A wider write records its low byte.
 */
import type { PortDevice, PortWindow, Snapshottable } from './types.ts';

export const POST_CODE_PORTS: readonly PortWindow[] = [{ base: 0x80, length: 1, offset: 0 }];

export interface PostCodeState {
  codes: number[];
  total: number;
}

export class PostCode implements PortDevice, Snapshottable<PostCodeState> {
  private recorded: number[] = [];
  private count = 0;

  constructor(
    private readonly capacity = 1024,
    private readonly onCode?: (code: number) => void,
  ) {}

  /** The recorded codes, oldest first (at most `capacity`). */
  get codes(): readonly number[] {
    return this.recorded;
  }

  /** How many codes have been written in all. */
  get total(): number {
    return this.count;
  }

  ioRead(_port: number, size: 1 | 2 | 4): number {
    return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
  }

  ioWrite(port: number, _size: 1 | 2 | 4, value: number): void {
    if (port !== 0) return;
    const code = value & 0xff;
    this.recorded.push(code);
    if (this.recorded.length > this.capacity) this.recorded.splice(0, this.recorded.length - this.capacity);
    this.count++;
    this.onCode?.(code);
  }

  save(): PostCodeState {
    return { codes: [...this.recorded], total: this.count };
  }

  restore(s: PostCodeState): void {
    this.recorded = [...s.codes];
    this.count = s.total;
  }

  /** The record is a debugging aid, not device state a reset would clear; reset keeps it. */
  reset(): void {}
}
