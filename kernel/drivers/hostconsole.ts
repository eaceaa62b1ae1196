/**
 * The driver of the machine's host console (hw/devices/host-console.ts): byte streams to the
 * outside world, one channel each. The LWK gives a process's stdin, stdout and stderr channels
 * 0, 1 and 2 (the CLI connects their host ends to its own). Polled: output goes a byte at a
 * time through DATA; input is taken while STATUS says bytes are buffered.
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import type { KernelIo } from './io.ts';

export const HOST_CONSOLE_BASE = 0x5e0;
const SELECT = 0x0, DATA = 0x1, STATUS = 0x2, RX_COUNT = 0x8, CHANNELS = 0xc;
const RX_AVAIL = 1, TX_READY = 2, RX_EOF = 4;

export interface ChannelStatus {
  /** Bytes buffered for reading. */
  available: number;
  /** The input is closed and fully read. */
  eof: boolean;
  /** Output is accepted now. */
  txReady: boolean;
}

export class HostConsoleDriver {
  private selected = -1;
  constructor(private readonly io: KernelIo, private readonly base = HOST_CONSOLE_BASE) {}

  channels(cpu: Cpu): number { return this.io.in8(cpu, this.base + CHANNELS); }

  private select(cpu: Cpu, ch: number): void {
    if (this.selected === ch) return;
    this.io.out8(cpu, this.base + SELECT, ch);
    this.selected = ch;
  }

  status(cpu: Cpu, ch: number): ChannelStatus {
    this.select(cpu, ch);
    const st = this.io.in8(cpu, this.base + STATUS);
    const available = (st & RX_AVAIL) !== 0 ? this.io.in32(cpu, this.base + RX_COUNT) : 0;
    return { available, eof: (st & RX_EOF) !== 0, txReady: (st & TX_READY) !== 0 };
  }

  /** Writes the bytes on channel `ch`. */
  write(cpu: Cpu, ch: number, bytes: Uint8Array): void {
    this.select(cpu, ch);
    const port = this.base + DATA;
    for (const b of bytes) this.io.out8(cpu, port, b);
  }

  /** Reads up to `max` buffered bytes of channel `ch` (none when nothing is buffered). */
  read(cpu: Cpu, ch: number, max: number): Uint8Array {
    const st = this.status(cpu, ch);
    const n = Math.min(max, st.available);
    const out = new Uint8Array(n);
    const port = this.base + DATA;
    for (let k = 0; k < n; k++) out[k] = this.io.in8(cpu, port);
    return out;
  }
}
