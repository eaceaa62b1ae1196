/**
 * Intel 82093AA I/O APIC: 24 interrupt input pins, each with a 64-bit redirection table entry,
 * sending interrupt messages to the local APICs.
 *
 * MMIO (IOAPIC_BASE = 0xFEC00000; mmioRead/mmioWrite take the offset within the page):
 *   0x00  IOREGSEL  bits 7:0 select the register that IOWIN reaches (bits 31:8 read 0)
 *   0x10  IOWIN     the selected 32-bit register
 * Reads of any size return the addressed bytes of IOREGSEL (0x00-0x03) or of the selected
 * register (0x10-0x13); a write of any size at offset 0 sets IOREGSEL to its low byte; only
 * 32-bit writes at 0x10 reach a register (narrower IOWIN writes are ignored, as QEMU does);
 * every other offset reads 0 and drops writes.
 *
 * Registers (through IOREGSEL/IOWIN):
 *   0x00  IOAPICID   bits 27:24 ID (read/write; writing it also loads the arbitration ID)
 *   0x01  IOAPICVER  0x00170011 (version 0x11, maximum redirection entry 0x17 = 24 entries)
 *   0x02  IOAPICARB  bits 27:24 arbitration ID (read-only)
 *   0x10 + 2n, 0x11 + 2n  redirection entry n, low and high dwords:
 *     7:0 vector, 10:8 delivery mode (fixed, lowest priority, SMI, NMI, INIT, ExtINT),
 *     11 destination mode (0 physical, 1 logical), 12 delivery status (read-only),
 *     13 polarity (1 = active low), 14 remote IRR (read-only), 15 trigger mode (1 = level),
 *     16 mask, 63:56 destination (all 8 bits kept, as xAPIC systems use them).
 *   Other indices read 0 and drop writes.
 * Reset: every entry masked (0x00010000 / 0), IOREGSEL 0, ID and arbitration ID back to the
 * constructor's id. Input pin levels are outside the chip and are kept.
 *
 * Inputs: setIrq(pin, level) is the pin's electrical level; polarity decides whether high or
 * low asserts it. Edge-triggered entries send a message on each asserting edge while unmasked;
 * edges on a masked pin are lost. Level-triggered entries (fixed or lowest priority with
 * bit 15 set) send a message whenever the pin is asserted, unmasked and remote IRR is clear,
 * and set remote IRR; eoi(vector) (the EOI broadcast of a local APIC) clears the remote IRR of
 * every entry with that vector and, if the pin is still asserted, sends again. Unmasking an
 * asserted level-triggered entry sends at once. NMI, INIT, SMI and ExtINT entries are edge
 * triggered whatever bit 15 says (the data sheet requires edge for them). Reprogramming an
 * entry to edge clears its remote IRR (as KVM does). Delivery status reads 0: every message is
 * accepted within the call that sends it.
 *
 * Messages go to bus.deliver(dest, destMode, deliveryMode, vector, level, trigger); ApicBus in
 * lapic.ts implements it for a set of local APICs.
 *
 * Left out: the APIC serial bus and its arbitration, the 82093AA's 4-bit physical destination
 * limit, the IRQ pin assertion register and EOI register of later I/O APICs (version 0x20).
 */
import { DeliveryMode, type DestMode, type TriggerMode } from './lapic.ts';
import type { IrqLine, Snapshottable } from './types.ts';

export const IOAPIC_BASE = 0xfec00000;
export const IOAPIC_SIZE = 0x1000;
export const IOAPIC_PINS = 24;
export const IOAPIC_VERSION = 0x00170011;

/** MMIO offsets and indirect register indices. */
export const IoApicReg = {
  IOREGSEL: 0x00,
  IOWIN: 0x10,
  ID: 0x00,
  VERSION: 0x01,
  ARB: 0x02,
  REDIR: 0x10,
} as const;

/** Where an IOAPIC sends its interrupt messages. */
export interface IoApicBus {
  deliver(dest: number, destMode: DestMode, deliveryMode: number, vector: number, level: boolean, trigger: TriggerMode): void;
}

export interface IoApicOptions {
  bus?: IoApicBus;
  /** IOAPIC ID (0-15) at reset; default 0. */
  id?: number;
}

export interface IoApicState {
  id: number;
  arbId: number;
  ioregsel: number;
  /** Redirection entries, low and high dwords. */
  low: number[];
  high: number[];
  /** Pin levels, bit n = pin n. */
  pins: number;
}

const MASKED = 1 << 16;
const LEVEL = 1 << 15;
const REMOTE_IRR = 1 << 14;
const ACTIVE_LOW = 1 << 13;
const LOW_WRITABLE = 0x0001afff;

function powerOnState(id: number, pins: number): IoApicState {
  return {
    id,
    arbId: id,
    ioregsel: 0,
    low: new Array<number>(IOAPIC_PINS).fill(MASKED),
    high: new Array<number>(IOAPIC_PINS).fill(0),
    pins,
  };
}

function levelTriggered(low: number): boolean {
  const mode = (low >>> 8) & 7;
  return (low & LEVEL) !== 0 && (mode === DeliveryMode.Fixed || mode === DeliveryMode.LowestPriority);
}

export class IoApic implements Snapshottable<IoApicState> {
  bus: IoApicBus | null;
  private readonly resetId: number;
  private s: IoApicState;

  constructor(opts: IoApicOptions = {}) {
    const id = opts.id ?? 0;
    if (!Number.isInteger(id) || id < 0 || id > 15) throw new RangeError(`IOAPIC ID ${id} out of range 0-15`);
    this.resetId = id;
    this.bus = opts.bus ?? null;
    this.s = powerOnState(id, 0);
  }

  // ============================================================================ inputs

  /** Drives input pin `pin` (0-23) to `level` (electrical: true = high). */
  setIrq(pin: number, level: boolean): void {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PINS) throw new RangeError(`IOAPIC pin ${pin} out of range 0-${IOAPIC_PINS - 1}`);
    const bit = 1 << pin;
    const old = (this.s.pins & bit) !== 0;
    if (old === level) return;
    this.s.pins = level ? this.s.pins | bit : this.s.pins & ~bit;
    const low = this.s.low[pin]!;
    if ((low & MASKED) !== 0 || !this.asserted(pin)) return;
    if (levelTriggered(low)) this.serviceLevel(pin);
    else this.send(pin);
  }

  /** An IrqLine bound to pin `pin`. */
  irqLine(pin: number): IrqLine {
    return { set: (level: boolean) => this.setIrq(pin, level) };
  }

  /** EOI broadcast from a local APIC for `vector`. */
  eoi(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const low = this.s.low[pin]!;
      if ((low & REMOTE_IRR) === 0 || (low & 0xff) !== (vector & 0xff)) continue;
      this.s.low[pin] = low & ~REMOTE_IRR;
      this.serviceLevel(pin);
    }
  }

  // ============================================================================ MMIO

  mmioRead(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = 0; i < size; i++) {
      const o = (offset + i) & 0xfff;
      let byte = 0;
      if (o < 4) byte = (this.s.ioregsel >>> (8 * o)) & 0xff;
      else if (o >= 0x10 && o < 0x14) byte = (this.readRegister(this.s.ioregsel) >>> (8 * (o - 0x10))) & 0xff;
      v |= byte << (8 * i);
    }
    return v >>> 0;
  }

  mmioWrite(offset: number, size: 1 | 2 | 4, value: number): void {
    offset &= 0xfff;
    if (offset === IoApicReg.IOREGSEL) this.s.ioregsel = value & 0xff;
    else if (offset === IoApicReg.IOWIN && size === 4) this.writeRegister(this.s.ioregsel, value);
  }

  /** Reads indirect register `index` (what IOWIN returns with IOREGSEL = index). */
  readRegister(index: number): number {
    const s = this.s;
    if (index >= IoApicReg.REDIR && index < IoApicReg.REDIR + 2 * IOAPIC_PINS) {
      const pin = (index - IoApicReg.REDIR) >>> 1;
      return (index & 1) === 0 ? s.low[pin]! : s.high[pin]!;
    }
    switch (index) {
      case IoApicReg.ID:
        return (s.id << 24) >>> 0;
      case IoApicReg.VERSION:
        return IOAPIC_VERSION;
      case IoApicReg.ARB:
        return (s.arbId << 24) >>> 0;
      default:
        return 0;
    }
  }

  /** Writes indirect register `index`. */
  writeRegister(index: number, value: number): void {
    value >>>= 0;
    const s = this.s;
    if (index >= IoApicReg.REDIR && index < IoApicReg.REDIR + 2 * IOAPIC_PINS) {
      const pin = (index - IoApicReg.REDIR) >>> 1;
      if ((index & 1) === 1) {
        s.high[pin] = (value & 0xff000000) >>> 0;
        return;
      }
      let low = (value & LOW_WRITABLE) | (s.low[pin]! & REMOTE_IRR);
      if (!levelTriggered(low)) low &= ~REMOTE_IRR;
      s.low[pin] = low >>> 0;
      this.serviceLevel(pin);
      return;
    }
    if (index === IoApicReg.ID) {
      s.id = (value >>> 24) & 0xf;
      s.arbId = s.id;
    }
  }

  // ============================================================================ snapshot

  save(): IoApicState {
    return { ...this.s, low: [...this.s.low], high: [...this.s.high] };
  }

  restore(st: IoApicState): void {
    this.s = { ...st, low: [...st.low], high: [...st.high] };
  }

  reset(): void {
    this.s = powerOnState(this.resetId, this.s.pins);
  }

  // ============================================================================ internals

  private asserted(pin: number): boolean {
    const high = (this.s.pins & (1 << pin)) !== 0;
    return (this.s.low[pin]! & ACTIVE_LOW) !== 0 ? !high : high;
  }

  /** Level-triggered entry: send when asserted, unmasked and remote IRR clear. */
  private serviceLevel(pin: number): void {
    const low = this.s.low[pin]!;
    if (!levelTriggered(low) || (low & (MASKED | REMOTE_IRR)) !== 0 || !this.asserted(pin)) return;
    this.s.low[pin] = (low | REMOTE_IRR) >>> 0;
    this.send(pin);
  }

  private send(pin: number): void {
    const low = this.s.low[pin]!;
    this.bus?.deliver(
      this.s.high[pin]! >>> 24,
      ((low >>> 11) & 1) as DestMode,
      (low >>> 8) & 7,
      low & 0xff,
      true,
      levelTriggered(low) ? 1 : 0,
    );
  }
}
