/**
 * National Semiconductor PC16550D UART (the "16550A" of PCs): COM1 at 0x3F8 / IRQ 4, COM2 at
 * 0x2F8 / IRQ 3.
 *
 * Device offsets 0-7 (UART_COM1_PORTS / UART_COM2_PORTS):
 *   0  RBR (read) / THR (write); DLL when LCR.DLAB = 1
 *   1  IER (bits 0-3); DLM when LCR.DLAB = 1
 *   2  IIR (read) / FCR (write)
 *   3  LCR   4 MCR (bits 0-4)   5 LSR   6 MSR   7 SCR
 *
 * Modelled: the divisor latch; 16-byte receive FIFO with trigger levels 1/4/8/14 and the
 * character timeout indication (4 character times, computed from the divisor and LCR, without
 * a received character or a read); the non-FIFO (16450) mode with a single holding register;
 * interrupt identification in the data sheet's priority order (line status, received data /
 * timeout, THR empty, modem status) with each source's clearing rule: LSR read, RBR read
 * (below the trigger level), IIR read when it reports THRE or a THR write, MSR read. THRE is
 * re-signalled when IER.ETBEI goes from 0 to 1 while THR is empty (what Linux's THRE test
 * and Windows rely on). Overrun (LSR.OE) in loopback mode, where the receiver can overflow.
 * Loopback (MCR bit 4): THR goes to the receiver, MSR's CTS/DSR/RI/DCD follow RTS/DTR/OUT1/OUT2,
 * external input is held off. The interrupt output reaches the IrqLine only when MCR.OUT2 is
 * set and loopback is off (OUT2 gates the IRQ buffer on PC serial cards, and loopback forces
 * OUT2 inactive); out2GatesIrq: false drives the chip's INTR directly.
 *
 * Host side: transmitted bytes go to the ByteSink at once; there is no baud-rate timing of
 * transmission, so THR and the transmitter are empty again right after each write (LSR.THRE
 * and TEMT always read 1, and the THRE interrupt is pending after each write). Input comes
 * from receive(bytes) and from the ByteSource into a host-side queue (the line), and moves into
 * the receive FIFO as soon as there is room (no baud timing either, and back-pressure rather
 * than overrun, as QEMU's character back ends do). The ByteSource is asked for bytes when the
 * FIFO has room and the guest reads RBR or LSR, on FCR resets, and when the host calls
 * pollInput() (call it when the source may have new data for a guest that waits for an
 * interrupt). Modem input lines are set by setModemInputs() (default CTS, DSR, DCD on).
 * Left out: parity, framing and break errors and LSR bit 7 (no line to corrupt), DMA modes,
 * the transmit FIFO as a queue, scratch-free variants (8250), and the 16750's 64-byte FIFO.
 */
import { readBytes, writeBytes } from './byte-io.ts';
import { ByteQueue } from './byte-queue.ts';
import type { ByteSink, ByteSource, EventHandle, EventScheduler, IrqLine, PortDevice, PortWindow, Snapshottable, TimeSource } from './types.ts';

export const UART_COM1_PORTS: readonly PortWindow[] = [{ base: 0x3f8, length: 8, offset: 0 }];
export const UART_COM2_PORTS: readonly PortWindow[] = [{ base: 0x2f8, length: 8, offset: 0 }];

/** 1.8432 MHz crystal / 16. */
const BAUD_BASE = 115200;
const FIFO_SIZE = 16;
const TRIGGER_LEVELS = [1, 4, 8, 14] as const;

const IER_RDI = 0x01;
const IER_THRI = 0x02;
const IER_RLSI = 0x04;
const IER_MSI = 0x08;
const LSR_DR = 0x01;
const LSR_OE = 0x02;
const LSR_ERRORS = 0x1e;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const MCR_OUT2 = 0x08;
const MCR_LOOP = 0x10;
const IIR_NONE = 0x01;
const IIR_RLS = 0x06;
const IIR_RDA = 0x04;
const IIR_CTI = 0x0c;
const IIR_THRE = 0x02;
const IIR_MS = 0x00;

export interface Uart16550State {
  rx: number[];
  /** The last byte moved out of the receiver (what RBR reads when it is empty). */
  rbr: number;
  ier: number;
  lcr: number;
  mcr: number;
  /** LSR error bits (OE, PE, FE, BI) not yet read. */
  lsrErrors: number;
  /** MSR delta bits 0-3. */
  msrDelta: number;
  /** Modem input lines driven by the host, as MSR bits 4-7 (CTS, DSR, RI, DCD). */
  hostLines: number;
  scr: number;
  dll: number;
  dlm: number;
  fifoEnabled: boolean;
  rxTrigger: number;
  thrIpending: boolean;
  timeoutIpending: boolean;
  /** Cycle at which the character timeout check is due, or null. */
  timeoutAt: number | null;
  /** Host input not yet taken into the receiver. */
  wire: number[];
  /** Level last driven on the IRQ line. */
  irq: boolean;
}

export interface Uart16550Options {
  time: TimeSource;
  scheduler: EventScheduler;
  irq?: IrqLine;
  sink?: ByteSink;
  source?: ByteSource;
  /** PC wiring: MCR.OUT2 enables the IRQ output (default true). */
  out2GatesIrq?: boolean;
}

export interface ModemInputs {
  cts?: boolean;
  dsr?: boolean;
  ri?: boolean;
  dcd?: boolean;
}

export class Uart16550 implements PortDevice, Snapshottable<Uart16550State> {
  private readonly time: TimeSource;
  private readonly scheduler: EventScheduler;
  private readonly irqLine: IrqLine | undefined;
  private readonly sink: ByteSink | undefined;
  private readonly source: ByteSource | undefined;
  private readonly out2Gates: boolean;

  private rx: number[] = [];
  private rbr = 0;
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private lsrErrors = 0;
  private msrDelta = 0;
  private hostLines = 0xb0;
  private scr = 0;
  private dll = 12;
  private dlm = 0;
  private fifoEnabled = false;
  private rxTrigger = 1;
  private thrIpending = false;
  private timeoutIpending = false;
  private timeoutAt: number | null = null;
  private timeoutHandle: EventHandle | null = null;
  private wire = new ByteQueue();
  private irq = false;

  constructor(opts: Uart16550Options) {
    this.time = opts.time;
    this.scheduler = opts.scheduler;
    this.irqLine = opts.irq;
    this.sink = opts.sink;
    this.source = opts.source;
    this.out2Gates = opts.out2GatesIrq ?? true;
  }

  // ---- host side ----

  /** Bytes arriving on the line from the host. */
  receive(bytes: ArrayLike<number>): void {
    this.wire.push(bytes);
    this.fillFromWire();
    this.update();
  }

  /** Asks the ByteSource for input if the receiver has room. */
  pollInput(): void {
    this.fillFromWire();
    this.update();
  }

  /** Host input still waiting on the line (not yet in the receive FIFO). */
  get pendingInput(): number {
    return this.wire.length;
  }

  setModemInputs(lines: ModemInputs): void {
    const before = this.msrInputs();
    const set = (bit: number, v: boolean | undefined): void => {
      if (v === undefined) return;
      this.hostLines = v ? this.hostLines | bit : this.hostLines & ~bit;
    };
    set(0x10, lines.cts);
    set(0x20, lines.dsr);
    set(0x40, lines.ri);
    set(0x80, lines.dcd);
    this.noteInputs(before);
    this.update();
  }

  // ---- guest side ----

  ioRead(port: number, size: 1 | 2 | 4): number {
    return readBytes((o) => this.read8(o), port, size);
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    writeBytes((o, v) => this.write8(o, v), port, size, value);
  }

  private get dlab(): boolean {
    return (this.lcr & 0x80) !== 0;
  }

  private get loopback(): boolean {
    return (this.mcr & MCR_LOOP) !== 0;
  }

  private read8(offset: number): number {
    switch (offset) {
      case 0:
        return this.dlab ? this.dll : this.readRbr();
      case 1:
        return this.dlab ? this.dlm : this.ier;
      case 2:
        return this.readIir();
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        return this.readLsr();
      case 6:
        return this.readMsr();
      case 7:
        return this.scr;
      default:
        return 0xff;
    }
  }

  private write8(offset: number, v: number): void {
    switch (offset) {
      case 0:
        if (this.dlab) this.dll = v;
        else this.transmit(v);
        break;
      case 1:
        if (this.dlab) this.dlm = v;
        else this.writeIer(v);
        break;
      case 2:
        this.writeFcr(v);
        break;
      case 3:
        this.lcr = v;
        break;
      case 4:
        this.writeMcr(v);
        break;
      case 7:
        this.scr = v;
        break;
      default: // LSR and MSR are read-only
        break;
    }
  }

  private readRbr(): number {
    const b = this.rx.shift();
    if (b !== undefined) this.rbr = b;
    this.timeoutIpending = false;
    this.restartTimeout();
    this.fillFromWire();
    this.update();
    return this.rbr;
  }

  private interruptId(): number {
    if ((this.ier & IER_RLSI) !== 0 && (this.lsrErrors & LSR_ERRORS) !== 0) return IIR_RLS;
    if ((this.ier & IER_RDI) !== 0 && this.timeoutIpending) return IIR_CTI;
    if ((this.ier & IER_RDI) !== 0 && this.rx.length > 0 && (!this.fifoEnabled || this.rx.length >= this.rxTrigger)) return IIR_RDA;
    if ((this.ier & IER_THRI) !== 0 && this.thrIpending) return IIR_THRE;
    if ((this.ier & IER_MSI) !== 0 && (this.msrDelta & 0x0f) !== 0) return IIR_MS;
    return IIR_NONE;
  }

  private readIir(): number {
    const id = this.interruptId();
    if (id === IIR_THRE) {
      this.thrIpending = false;
      this.update();
    }
    return id | (this.fifoEnabled ? 0xc0 : 0);
  }

  private readLsr(): number {
    this.fillFromWire();
    const v = (this.rx.length > 0 ? LSR_DR : 0) | this.lsrErrors | LSR_THRE | LSR_TEMT;
    this.lsrErrors = 0;
    this.update();
    return v;
  }

  private msrInputs(): number {
    if (!this.loopback) return this.hostLines;
    const m = this.mcr;
    return ((m & 0x02) ? 0x10 : 0) | ((m & 0x01) ? 0x20 : 0) | ((m & 0x04) ? 0x40 : 0) | ((m & 0x08) ? 0x80 : 0);
  }

  /** Sets the MSR delta bits for a change of the inputs from `before`. */
  private noteInputs(before: number): void {
    const now = this.msrInputs();
    const changed = before ^ now;
    if (changed & 0x10) this.msrDelta |= 0x01;
    if (changed & 0x20) this.msrDelta |= 0x02;
    if ((before & 0x40) !== 0 && (now & 0x40) === 0) this.msrDelta |= 0x04; // trailing edge of RI
    if (changed & 0x80) this.msrDelta |= 0x08;
  }

  private readMsr(): number {
    const v = this.msrInputs() | this.msrDelta;
    this.msrDelta = 0;
    this.update();
    return v;
  }

  private transmit(b: number): void {
    this.thrIpending = false;
    if (this.loopback) this.loopReceive(b);
    else this.sink?.write(Uint8Array.of(b));
    // No baud-rate timing: THR and the shift register are empty again at once.
    this.thrIpending = true;
    this.update();
  }

  private writeIer(v: number): void {
    const changed = (this.ier ^ v) & 0x0f;
    this.ier = v & 0x0f;
    if (changed & IER_THRI) this.thrIpending = (this.ier & IER_THRI) !== 0; // THR is always empty here
    this.update();
  }

  private writeFcr(v: number): void {
    const enable = (v & 1) !== 0;
    if (enable !== this.fifoEnabled) this.clearRx();
    this.fifoEnabled = enable;
    if (enable) {
      if (v & 0x02) this.clearRx();
      this.rxTrigger = TRIGGER_LEVELS[(v >> 6) & 3]!;
    } else {
      this.rxTrigger = 1;
    }
    this.fillFromWire();
    this.update();
  }

  private clearRx(): void {
    this.rx = [];
    this.timeoutIpending = false;
    this.restartTimeout();
  }

  private writeMcr(v: number): void {
    const before = this.msrInputs();
    this.mcr = v & 0x1f;
    this.noteInputs(before);
    this.fillFromWire();
    this.update();
  }

  private room(): number {
    return this.fifoEnabled ? FIFO_SIZE - this.rx.length : this.rx.length === 0 ? 1 : 0;
  }

  /** A character arriving at the receiver in loopback mode: it can overrun. */
  private loopReceive(b: number): void {
    if (this.room() > 0) {
      this.rx.push(b);
    } else {
      this.lsrErrors |= LSR_OE;
      if (!this.fifoEnabled) this.rx[0] = b; // the holding register is overwritten
    }
    this.restartTimeout();
  }

  private fillFromWire(): void {
    if (this.loopback) return;
    let got = false;
    for (let room = this.room(); room > 0; room--) {
      if (this.wire.length === 0) {
        const more = this.source?.read(room);
        if (!more || more.length === 0) break;
        this.wire.push(more);
      }
      this.rx.push(this.wire.shift());
      got = true;
    }
    if (got) this.restartTimeout();
  }

  /** Cycles per character: start bit, 5-8 data bits, parity, 1 / 1.5 / 2 stop bits. */
  private charCycles(): number {
    const divisor = ((this.dlm << 8) | this.dll) || 0x10000;
    const data = 5 + (this.lcr & 3);
    const halfBits = 2 * (1 + data + ((this.lcr & 0x08) ? 1 : 0)) + ((this.lcr & 0x04) ? (data === 5 ? 3 : 4) : 2);
    return Number((BigInt(this.time.hz) * BigInt(halfBits * divisor)) / BigInt(2 * BAUD_BASE));
  }

  private restartTimeout(): void {
    if (this.timeoutHandle !== null) this.scheduler.cancel(this.timeoutHandle);
    this.timeoutHandle = null;
    this.timeoutAt = null;
    if (this.fifoEnabled && this.rx.length > 0) {
      this.timeoutAt = this.time.now() + 4 * this.charCycles();
      this.armTimeout();
    }
  }

  private armTimeout(): void {
    if (this.timeoutAt === null) return;
    this.timeoutHandle = this.scheduler.schedule(this.timeoutAt, () => {
      this.timeoutHandle = null;
      this.timeoutAt = null;
      if (this.fifoEnabled && this.rx.length > 0) this.timeoutIpending = true;
      this.update();
    });
  }

  private update(): void {
    const pending = this.interruptId() !== IIR_NONE;
    const level = pending && (!this.out2Gates || ((this.mcr & MCR_OUT2) !== 0 && !this.loopback));
    if (level !== this.irq) {
      this.irq = level;
      this.irqLine?.set(level);
    }
  }

  save(): Uart16550State {
    return {
      rx: [...this.rx], rbr: this.rbr, ier: this.ier, lcr: this.lcr, mcr: this.mcr, lsrErrors: this.lsrErrors,
      msrDelta: this.msrDelta, hostLines: this.hostLines, scr: this.scr, dll: this.dll, dlm: this.dlm,
      fifoEnabled: this.fifoEnabled, rxTrigger: this.rxTrigger, thrIpending: this.thrIpending,
      timeoutIpending: this.timeoutIpending, timeoutAt: this.timeoutAt, wire: this.wire.toArray(), irq: this.irq,
    };
  }

  restore(s: Uart16550State): void {
    if (this.timeoutHandle !== null) this.scheduler.cancel(this.timeoutHandle);
    this.timeoutHandle = null;
    this.rx = [...s.rx];
    this.rbr = s.rbr;
    this.ier = s.ier;
    this.lcr = s.lcr;
    this.mcr = s.mcr;
    this.lsrErrors = s.lsrErrors;
    this.msrDelta = s.msrDelta;
    this.hostLines = s.hostLines;
    this.scr = s.scr;
    this.dll = s.dll;
    this.dlm = s.dlm;
    this.fifoEnabled = s.fifoEnabled;
    this.rxTrigger = s.rxTrigger;
    this.thrIpending = s.thrIpending;
    this.timeoutIpending = s.timeoutIpending;
    this.timeoutAt = s.timeoutAt;
    this.wire = ByteQueue.from(s.wire);
    this.irq = s.irq;
    this.armTimeout();
  }

  /** Master reset: registers to their data-sheet reset values, FIFOs cleared. The host's line
   *  (queued input) and modem inputs are outside the chip and are kept. */
  reset(): void {
    if (this.timeoutHandle !== null) this.scheduler.cancel(this.timeoutHandle);
    this.timeoutHandle = null;
    this.timeoutAt = null;
    this.rx = [];
    this.rbr = 0;
    this.ier = 0;
    this.lcr = 0;
    this.mcr = 0;
    this.lsrErrors = 0;
    this.msrDelta = 0;
    this.scr = 0;
    this.dll = 12;
    this.dlm = 0;
    this.fifoEnabled = false;
    this.rxTrigger = 1;
    this.thrIpending = false;
    this.timeoutIpending = false;
    this.update();
  }
}
