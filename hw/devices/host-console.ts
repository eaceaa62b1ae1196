/**
 * The host console: our own multi-channel byte-stream device, in the spirit of virtio-console
 * (DESIGN.md, "The outside world"). Host software uses its channels for a process's stdin,
 * stdout and stderr and for its log; the CLI connects each channel's host end.
 *
 * Each channel has an output (the guest's bytes go to the channel's ByteSink at once) and an
 * input buffer the host fills with input(ch, bytes) and may close with closeInput(ch) (EOF).
 * A host end that cannot take more output says so with setOutputReady(ch, false): bytes
 * written meanwhile are dropped (and counted), and setOutputReady(ch, true) signals the guest.
 *
 * Registers (8-bit unless noted; device offsets from the base, HOST_CONSOLE_PORTS 0x5E0-0x5EF):
 *   0x0  SELECT    RW  channel the per-channel registers refer to (writes >= N are ignored)
 *   0x1  DATA      W   output one byte on the selected channel (clears its TX event)
 *                  R   take the next input byte of the selected channel (0 if there is none)
 *   0x2  STATUS    R   bit 0 RX_AVAIL: input is buffered; bit 1 TX_READY: output is accepted;
 *                      bit 2 RX_EOF: the input is closed and fully read
 *   0x3  IER       RW  selected channel: bit 0 RX interrupt, bit 1 TX interrupt
 *   0x4  PENDING   R   32 bits: bit c set when channel c has an interrupt condition:
 *                      RX: IER bit 0 and (RX_AVAIL or RX_EOF);
 *                      TX: IER bit 1 and the TX event (output became ready again after the host
 *                      blocked it, or IER bit 1 was set while TX_READY, as a UART's THRE)
 *   0x8  RX_COUNT  R   32 bits: input bytes buffered on the selected channel
 *   0xC  CHANNELS  R   number of channels N (1-32)
 *   0xD  ACK       W   bit 1: clear the selected channel's TX event
 *   other offsets read 0xFF, writes are ignored. 32-bit registers can be read a byte at a time.
 * The IrqLine is a level: high while PENDING is not zero. Behind an edge-triggered PIC a driver
 * services every pending channel and re-reads PENDING before it returns.
 * Block transfers through guest memory are not provided.
 */
import { readBytes, writeBytes } from './byte-io.ts';
import { ByteQueue } from './byte-queue.ts';
import type { ByteSink, IrqLine, PortDevice, PortWindow, Snapshottable } from './types.ts';

export const HOST_CONSOLE_PORTS: readonly PortWindow[] = [{ base: 0x5e0, length: 16, offset: 0 }];

const MAX_CHANNELS = 32;
const IER_RX = 0x01;
const IER_TX = 0x02;

export interface HostConsoleChannelState {
  input: number[];
  eof: boolean;
  ier: number;
  txReady: boolean;
  txEvent: boolean;
  dropped: number;
}

export interface HostConsoleState {
  selected: number;
  channels: HostConsoleChannelState[];
  irq: boolean;
}

export interface HostConsoleOptions {
  /** One entry per channel: its output sink (null: output is discarded). */
  channels: readonly (ByteSink | null)[];
  irq?: IrqLine;
}

interface Channel {
  input: ByteQueue;
  eof: boolean;
  ier: number;
  txReady: boolean;
  txEvent: boolean;
  dropped: number;
}

function freshChannel(): Channel {
  return { input: new ByteQueue(), eof: false, ier: 0, txReady: true, txEvent: false, dropped: 0 };
}

export class HostConsole implements PortDevice, Snapshottable<HostConsoleState> {
  private readonly sinks: readonly (ByteSink | null)[];
  private readonly irqLine: IrqLine | undefined;
  private chans: Channel[];
  private selected = 0;
  private irq = false;

  constructor(opts: HostConsoleOptions) {
    const n = opts.channels.length;
    if (n < 1 || n > MAX_CHANNELS) throw new RangeError(`host console needs 1-${MAX_CHANNELS} channels, got ${n}`);
    this.sinks = [...opts.channels];
    this.irqLine = opts.irq;
    this.chans = this.sinks.map(() => freshChannel());
  }

  get channelCount(): number {
    return this.chans.length;
  }

  // ---- host side ----

  /** Appends input for channel ch. */
  input(ch: number, bytes: ArrayLike<number>): void {
    this.chan(ch).input.push(bytes);
    this.update();
  }

  /** End of input on channel ch: once the buffer is read, STATUS shows RX_EOF. */
  closeInput(ch: number): void {
    this.chan(ch).eof = true;
    this.update();
  }

  /** Whether the host end of channel ch accepts output now. */
  setOutputReady(ch: number, ready: boolean): void {
    const c = this.chan(ch);
    if (ready && !c.txReady) c.txEvent = true;
    c.txReady = ready;
    this.update();
  }

  /** Bytes the guest wrote on channel ch while its output was blocked. */
  dropped(ch: number): number {
    return this.chan(ch).dropped;
  }

  /** Input still buffered on channel ch. */
  pendingInput(ch: number): number {
    return this.chan(ch).input.length;
  }

  // ---- guest side ----

  ioRead(port: number, size: 1 | 2 | 4): number {
    return readBytes((o) => this.read8(o), port, size);
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    writeBytes((o, v) => this.write8(o, v), port, size, value);
  }

  private chan(ch: number): Channel {
    const c = this.chans[ch];
    if (c === undefined) throw new RangeError(`host console channel ${ch} out of range 0-${this.chans.length - 1}`);
    return c;
  }

  private pendingMask(): number {
    let m = 0;
    for (let i = 0; i < this.chans.length; i++) {
      const c = this.chans[i]!;
      const rx = (c.ier & IER_RX) !== 0 && (c.input.length > 0 || c.eof);
      const tx = (c.ier & IER_TX) !== 0 && c.txEvent;
      if (rx || tx) m |= 1 << i;
    }
    return m >>> 0;
  }

  private read8(offset: number): number {
    const c = this.chans[this.selected]!;
    switch (offset) {
      case 0x0:
        return this.selected;
      case 0x1: {
        const b = c.input.shift();
        this.update();
        return b < 0 ? 0 : b;
      }
      case 0x2:
        return (c.input.length > 0 ? 1 : 0) | (c.txReady ? 2 : 0) | (c.eof && c.input.length === 0 ? 4 : 0);
      case 0x3:
        return c.ier;
      case 0x4:
      case 0x5:
      case 0x6:
      case 0x7:
        return (this.pendingMask() >>> (8 * (offset - 4))) & 0xff;
      case 0x8:
      case 0x9:
      case 0xa:
      case 0xb:
        return (c.input.length >>> (8 * (offset - 8))) & 0xff;
      case 0xc:
        return this.chans.length;
      default:
        return 0xff;
    }
  }

  private write8(offset: number, v: number): void {
    const c = this.chans[this.selected]!;
    switch (offset) {
      case 0x0:
        if (v < this.chans.length) this.selected = v;
        return;
      case 0x1:
        c.txEvent = false;
        if (c.txReady) this.sinks[this.selected]?.write(Uint8Array.of(v));
        else c.dropped++;
        break;
      case 0x3:
        if ((v & IER_TX) !== 0 && (c.ier & IER_TX) === 0 && c.txReady) c.txEvent = true;
        c.ier = v & (IER_RX | IER_TX);
        break;
      case 0xd:
        if (v & 0x02) c.txEvent = false;
        break;
      default:
        return;
    }
    this.update();
  }

  private update(): void {
    const level = this.pendingMask() !== 0;
    if (level !== this.irq) {
      this.irq = level;
      this.irqLine?.set(level);
    }
  }

  save(): HostConsoleState {
    return {
      selected: this.selected,
      irq: this.irq,
      channels: this.chans.map((c) => ({ input: c.input.toArray(), eof: c.eof, ier: c.ier, txReady: c.txReady, txEvent: c.txEvent, dropped: c.dropped })),
    };
  }

  restore(s: HostConsoleState): void {
    if (s.channels.length !== this.chans.length) throw new RangeError(`snapshot has ${s.channels.length} channels, device has ${this.chans.length}`);
    this.selected = s.selected;
    this.irq = s.irq;
    this.chans = s.channels.map((c) => ({ input: ByteQueue.from(c.input), eof: c.eof, ier: c.ier, txReady: c.txReady, txEvent: c.txEvent, dropped: c.dropped }));
  }

  /** Guest-visible registers to their initial values; the host ends' buffered input, EOF and
   *  readiness are kept. */
  reset(): void {
    this.selected = 0;
    for (const c of this.chans) {
      c.ier = 0;
      c.txEvent = false;
    }
    this.update();
  }
}
