/**
 * The PC/AT pair of Intel 8259A programmable interrupt controllers: a master and a slave
 * cascaded on the master's IR2, with the PIIX-style edge/level control registers (ELCR).
 *
 * Device offsets (PIC_PORTS gives the conventional placement):
 *   0, 1  master command / data   (ports 0x20, 0x21)
 *   2, 3  slave command / data    (ports 0xA0, 0xA1)
 *   4, 5  ELCR1 / ELCR2           (ports 0x4D0, 0x4D1)
 *
 * Modelled (Intel 8259A data sheet): ICW1-ICW4 initialisation (single/cascade, ICW4 optional,
 * LTIM level mode), OCW1 mask, OCW2 non-specific / specific EOI, rotate on non-specific EOI,
 * rotate in auto-EOI mode, set priority, rotate on specific EOI; OCW3 IRR/ISR read select,
 * poll command, special mask mode; auto-EOI; special fully nested mode on the master;
 * edge (latched on the rising edge, so a pulse set(true); set(false) is remembered until
 * INTA) and level triggering (per line through the ELCR, or all lines through LTIM).
 * IRQ 0, 1, 2, 8 and 13 are always edge triggered (the ELCR bits are read-only zero).
 * The INTA cycle: acknowledge() returns the vector, sets the ISR bit (unless auto-EOI) and
 * clears the IRR bit of an edge-triggered line. When nothing is pending at INTA (the request
 * went away, or was masked, after INTR was raised), the 8259 answers with IR7 of that chip
 * without setting its ISR bit: the spurious IRQ 7 (master) or IRQ 15 (slave; the master's
 * IR2 is acknowledged normally, so the master needs its EOI).
 * Left out: buffered mode and 8080/8085 call-address mode (ICW4 bits that do not change what
 * a PC sees); the slave-ID check of ICW3 (the pair is wired as on every PC).
 */
import { readBytes, writeBytes } from './byte-io.ts';
import type { IrqLine, PortDevice, PortWindow, Snapshottable } from './types.ts';

export const PIC_PORTS: readonly PortWindow[] = [
  { base: 0x20, length: 2, offset: 0 },
  { base: 0xa0, length: 2, offset: 2 },
  { base: 0x4d0, length: 2, offset: 4 },
];

export interface Pic8259ChipState {
  irr: number;
  isr: number;
  imr: number;
  /** Input line levels, for edge detection and for level-triggered lines. */
  lines: number;
  /** Priority rotation: IR (priorityAdd) has the highest priority. */
  priorityAdd: number;
  vectorBase: number;
  readIsr: boolean;
  poll: boolean;
  specialMask: boolean;
  /** 0: operational; 1, 2, 3: expecting ICW2, ICW3, ICW4. */
  initState: number;
  icw4Needed: boolean;
  single: boolean;
  ltim: boolean;
  autoEoi: boolean;
  rotateOnAutoEoi: boolean;
  specialFullyNested: boolean;
  elcr: number;
}

export interface Pic8259State {
  master: Pic8259ChipState;
  slave: Pic8259ChipState;
  /** Level last driven on INTR. */
  intr: boolean;
}

const MASTER_ELCR_MASK = 0xf8; // IRQ 0, 1, 2 are edge only
const SLAVE_ELCR_MASK = 0xde; // IRQ 8 and 13 are edge only

function chipPowerOn(): Pic8259ChipState {
  return {
    irr: 0, isr: 0, imr: 0, lines: 0, priorityAdd: 0, vectorBase: 0, readIsr: false, poll: false,
    specialMask: false, initState: 0, icw4Needed: false, single: false, ltim: false, autoEoi: false,
    rotateOnAutoEoi: false, specialFullyNested: false, elcr: 0,
  };
}

/** One 8259A. The pair below owns two and wires the slave's INT to the master's IR2. */
class Chip {
  s: Pic8259ChipState = chipPowerOn();

  constructor(
    private readonly isMaster: boolean,
    private readonly elcrMask: number,
    private readonly changed: () => void,
  ) {}

  private levelTriggered(bit: number): boolean {
    return this.s.ltim || (this.s.elcr & bit) !== 0;
  }

  setLine(irq: number, level: boolean): void {
    const s = this.s;
    const bit = 1 << irq;
    const was = (s.lines & bit) !== 0;
    if (level) s.lines |= bit;
    else s.lines &= ~bit;
    if (this.levelTriggered(bit)) {
      if (level) s.irr |= bit;
      else s.irr &= ~bit;
    } else if (level && !was) {
      s.irr |= bit;
    }
    this.changed();
  }

  /** Priority (0 highest) of the highest-priority bit of mask, 8 if none. */
  private priority(mask: number): number {
    if ((mask & 0xff) === 0) return 8;
    let p = 0;
    while ((mask & (1 << ((p + this.s.priorityAdd) & 7))) === 0) p++;
    return p;
  }

  /** The IR that would be signalled now, or -1. */
  pending(): number {
    const s = this.s;
    const req = this.priority(s.irr & ~s.imr);
    if (req === 8) return -1;
    let inService = s.isr;
    if (s.specialMask) inService &= ~s.imr;
    if (s.specialFullyNested && this.isMaster) inService &= ~(1 << 2);
    const cur = this.priority(inService);
    return req < cur ? (req + s.priorityAdd) & 7 : -1;
  }

  /** The INTA bookkeeping for IR `irq`. */
  ack(irq: number): void {
    const s = this.s;
    const bit = 1 << irq;
    if (s.autoEoi) {
      if (s.rotateOnAutoEoi) s.priorityAdd = (irq + 1) & 7;
    } else {
      s.isr |= bit;
    }
    if (!this.levelTriggered(bit)) s.irr &= ~bit;
  }

  private initReset(icw1: number): void {
    const s = this.s;
    // ICW1: the edge sense circuit is reset (an edge line that is high must go low and rise
    // again to request), IMR cleared, IR7 lowest priority, special mask mode off, status read
    // set to IRR, ICW4 functions off. Level-triggered lines keep requesting while high.
    s.ltim = (icw1 & 0x08) !== 0;
    s.irr = s.lines & (s.ltim ? 0xff : s.elcr);
    s.imr = 0;
    s.isr = 0;
    s.priorityAdd = 0;
    s.readIsr = false;
    s.poll = false;
    s.specialMask = false;
    s.autoEoi = false;
    s.rotateOnAutoEoi = false;
    s.specialFullyNested = false;
    s.icw4Needed = (icw1 & 0x01) !== 0;
    s.single = (icw1 & 0x02) !== 0;
    s.initState = 1;
  }

  write(a0: number, v: number): void {
    const s = this.s;
    if (a0 === 0) {
      if (v & 0x10) {
        this.initReset(v);
      } else if (v & 0x08) {
        // OCW3
        if (v & 0x04) s.poll = true;
        if (v & 0x02) s.readIsr = (v & 0x01) !== 0;
        if (v & 0x40) s.specialMask = (v & 0x20) !== 0;
      } else {
        // OCW2
        const cmd = v >> 5;
        switch (cmd) {
          case 0: // rotate in auto-EOI mode (clear)
          case 4: // rotate in auto-EOI mode (set)
            s.rotateOnAutoEoi = cmd === 4;
            break;
          case 1: // non-specific EOI
          case 5: { // rotate on non-specific EOI
            const p = this.priority(s.isr);
            if (p !== 8) {
              const irq = (p + s.priorityAdd) & 7;
              s.isr &= ~(1 << irq);
              if (cmd === 5) s.priorityAdd = (irq + 1) & 7;
            }
            break;
          }
          case 3: // specific EOI
            s.isr &= ~(1 << (v & 7));
            break;
          case 6: // set priority: IR (v & 7) becomes the lowest
            s.priorityAdd = ((v & 7) + 1) & 7;
            break;
          case 7: // rotate on specific EOI
            s.isr &= ~(1 << (v & 7));
            s.priorityAdd = ((v & 7) + 1) & 7;
            break;
          default: // 2: no operation
            break;
        }
      }
    } else {
      switch (s.initState) {
        case 0: // OCW1
          s.imr = v;
          break;
        case 1: // ICW2
          s.vectorBase = v & 0xf8;
          s.initState = s.single ? (s.icw4Needed ? 3 : 0) : 2;
          break;
        case 2: // ICW3 (cascade wiring is fixed)
          s.initState = s.icw4Needed ? 3 : 0;
          break;
        default: // ICW4
          s.specialFullyNested = (v & 0x10) !== 0;
          s.autoEoi = (v & 0x02) !== 0;
          s.initState = 0;
          break;
      }
    }
    this.changed();
  }

  /** A read of the command port (a0 = 0) or data port; `pollAck` performs a poll INTA. */
  read(a0: number, pollAck: (irq: number) => number): number {
    const s = this.s;
    if (s.poll) {
      s.poll = false;
      const irq = this.pending();
      const r = irq >= 0 ? 0x80 | pollAck(irq) : 0;
      this.changed();
      return r;
    }
    if (a0 === 0) return s.readIsr ? s.isr : s.irr;
    return s.imr;
  }

  writeElcr(v: number): void {
    this.s.elcr = v & this.elcrMask;
    // A line switched to level follows its input from now on.
    this.s.irr = (this.s.irr & ~this.s.elcr) | (this.s.lines & this.s.elcr);
    this.changed();
  }
}

export class Pic8259 implements PortDevice, Snapshottable<Pic8259State> {
  private readonly master: Chip;
  private readonly slave: Chip;
  private intr = false;
  private updating = false;

  /** `intr` is the INTR output to the CPU. */
  constructor(private readonly intrLine?: IrqLine) {
    this.master = new Chip(true, MASTER_ELCR_MASK, () => this.update());
    this.slave = new Chip(false, SLAVE_ELCR_MASK, () => this.update());
  }

  /** Drives input IRQ n (0-15). IRQ 2 is the master input shared with the cascade. */
  setIrq(n: number, level: boolean): void {
    if (!Number.isInteger(n) || n < 0 || n > 15) throw new RangeError(`IRQ ${n} out of range 0-15`);
    if (n < 8) this.master.setLine(n, level);
    else this.slave.setLine(n - 8, level);
  }

  /** An IrqLine bound to input IRQ n, for wiring a device's output. */
  irqLine(n: number): IrqLine {
    return { set: (level: boolean) => this.setIrq(n, level) };
  }

  /** Whether INTR is asserted (an unmasked request of higher priority than any in service). */
  hasInterrupt(): boolean {
    return this.master.pending() >= 0;
  }

  /**
   * The INTA cycle: returns the vector the CPU receives and updates ISR/IRR. Called with
   * nothing pending, it returns the spurious IRQ 7 vector of the master.
   */
  acknowledge(): number {
    const irq = this.master.pending();
    let vector: number;
    if (irq < 0) {
      vector = this.master.s.vectorBase + 7; // spurious IRQ 7, ISR untouched
    } else {
      if (irq === 2 && !this.master.s.single) {
        const irq2 = this.slave.pending();
        if (irq2 >= 0) {
          this.slave.ack(irq2);
          vector = this.slave.s.vectorBase + irq2;
        } else {
          vector = this.slave.s.vectorBase + 7; // spurious IRQ 15
        }
      } else {
        vector = this.master.s.vectorBase + irq;
      }
      this.master.ack(irq);
    }
    this.update();
    return vector & 0xff;
  }

  /** Current IRR/ISR/IMR of a chip, for tests and debugging. */
  registers(chip: 'master' | 'slave'): { irr: number; isr: number; imr: number } {
    const s = (chip === 'master' ? this.master : this.slave).s;
    return { irr: s.irr, isr: s.isr, imr: s.imr };
  }

  ioRead(port: number, size: 1 | 2 | 4): number {
    return readBytes((o) => this.read8(o), port, size);
  }

  ioWrite(port: number, size: 1 | 2 | 4, value: number): void {
    writeBytes((o, v) => this.write8(o, v), port, size, value);
  }

  private read8(offset: number): number {
    switch (offset) {
      case 0:
      case 1:
        return this.master.read(offset, (irq) => this.pollAck(true, irq));
      case 2:
      case 3:
        return this.slave.read(offset - 2, (irq) => this.pollAck(false, irq));
      case 4:
        return this.master.s.elcr;
      case 5:
        return this.slave.s.elcr;
      default:
        return 0xff;
    }
  }

  private pollAck(master: boolean, irq: number): number {
    (master ? this.master : this.slave).ack(irq);
    return irq;
  }

  private write8(offset: number, v: number): void {
    switch (offset) {
      case 0:
      case 1:
        this.master.write(offset, v);
        break;
      case 2:
      case 3:
        this.slave.write(offset - 2, v);
        break;
      case 4:
        this.master.writeElcr(v);
        break;
      case 5:
        this.slave.writeElcr(v);
        break;
      default:
        break;
    }
  }

  /** Propagates the slave's INT to the master's IR2, then drives INTR. */
  private update(): void {
    if (this.updating) return;
    this.updating = true;
    try {
      const slaveInt = this.slave.pending() >= 0;
      if (slaveInt !== ((this.master.s.lines & 4) !== 0)) this.master.setLine(2, slaveInt);
    } finally {
      this.updating = false;
    }
    const level = this.master.pending() >= 0;
    if (level !== this.intr) {
      this.intr = level;
      this.intrLine?.set(level);
    }
  }

  save(): Pic8259State {
    return { master: { ...this.master.s }, slave: { ...this.slave.s }, intr: this.intr };
  }

  restore(s: Pic8259State): void {
    this.master.s = { ...s.master };
    this.slave.s = { ...s.slave };
    this.intr = s.intr;
  }

  /**
   * Power-on state: registers zero, ELCR all edge, INTR low. The input line levels are
   * outside the chip and are kept (a line that is high must fall and rise to request).
   */
  reset(): void {
    const ml = this.master.s.lines;
    const sl = this.slave.s.lines;
    this.master.s = { ...chipPowerOn(), lines: ml };
    this.slave.s = { ...chipPowerOn(), lines: sl };
    this.update();
  }
}
