/**
 * Virtual interrupt routing: which virtual interrupt controller the guest's core listens to and
 * how ISA IRQ lines reach them, wired as on a PC (hw/machine.ts does the same for the physical
 * machine): ISA IRQ n drives 8259 input n and IOAPIC pin n (IRQ 0 on pin 2, the interrupt
 * source override QEMU and a PC have); the 8259 pair's INTR goes to the local APIC's LINT0
 * (ExtINT, virtual-wire mode) of the boot processor or, with no local APIC, straight to core
 * 0; the IOAPIC sends its messages, and the local APICs their IPIs, over one APIC bus. Any
 * controller may be absent (a config without it).
 *
 * The run loop asks `pending()` before each entry and takes the vector with `acknowledge()`
 * (the INTA cycle) when it injects; `onChange` fires whenever the core's INTR may have risen,
 * so a halted virtual core wakes.
 */
import { ApicBus, type LocalApic } from '../../hw/devices/lapic.ts';
import type { IoApic } from '../../hw/devices/ioapic.ts';
import type { Pic8259 } from '../../hw/devices/pic8259.ts';
import type { IrqLine } from '../../hw/devices/types.ts';

export class IntrRouter {
  pic: Pic8259 | null = null;
  /** The local APIC of each virtual core (empty without the lapic device). */
  readonly lapics: LocalApic[] = [];
  ioapic: IoApic | null = null;
  readonly apicBus = new ApicBus();
  /** Called when virtual core k's interrupt input may have changed (set by the VM). */
  onChange: (core: number) => void = () => {};

  /** The boot processor's local APIC, or null. */
  get lapic(): LocalApic | null {
    return this.lapics.length > 0 ? this.lapics[0] : null;
  }
  /** The 8259's INTR output level. */
  private picIntr = false;

  /** The 8259 pair's INTR output: to LINT0 when there is a local APIC, else the core's INTR. */
  readonly picOutput: IrqLine = {
    set: (level: boolean) => {
      this.picIntr = level;
      if (this.lapic !== null) this.lapic.setLint(0, level);
      else this.onChange(0);
    },
  };

  setPic(p: Pic8259): void {
    this.pic = p;
    if (this.lapic !== null) this.lapic.setExtIntSource(p);
  }

  /** Adds virtual core k's local APIC (k = 0 first: the 8259s reach the boot processor's LINT0). */
  addLapic(a: LocalApic): void {
    const bsp = this.lapics.length === 0;
    this.lapics.push(a);
    this.apicBus.attach(a);
    a.setupVirtualWire();
    if (!bsp) return;
    if (this.pic !== null) a.setExtIntSource(this.pic);
    if (this.picIntr) a.setLint(0, true);
  }

  setIoapic(io: IoApic): void {
    this.ioapic = io;
    io.bus = this.apicBus;
  }

  /** ISA IRQ n (0-15) as a wire into both controllers. */
  isaLine(n: number): IrqLine {
    return {
      set: (level: boolean) => {
        if (this.pic !== null) this.pic.setIrq(n, level);
        if (this.ioapic !== null) this.ioapic.setIrq(n === 0 ? 2 : n, level);
      },
    };
  }

  /** Whether virtual core k's INTR is asserted now (without local APICs the 8259s reach core 0 only). */
  pending(k = 0): boolean {
    if (this.lapics.length > 0) return k < this.lapics.length && this.lapics[k].hasInterrupt();
    return k === 0 && this.pic !== null && this.pic.hasInterrupt();
  }

  /** The INTA cycle on virtual core k: the vector to deliver. */
  acknowledge(k = 0): number {
    if (this.lapics.length > 0) return this.lapics[k].acknowledge();
    return this.pic !== null ? this.pic.acknowledge() : 0;
  }
}
