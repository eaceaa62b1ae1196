/**
 * The kernel's local APIC driver (Intel SDM vol. 3A, "Advanced Programmable Interrupt
 * Controller"): the xAPIC page at 0xFEE00000 (each core reaches its own APIC there), the timer
 * in TSC-deadline mode through IA32_TSC_DEADLINE, the spurious vector, EOI, and IPIs through the
 * ICR, including the INIT / STARTUP sequence that brings up an application processor.
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { charge } from '../costs.ts';
import type { KernelIo } from './io.ts';

export const APIC_ID = 0x020, APIC_TPR = 0x080, APIC_EOI = 0x0b0, APIC_SVR = 0x0f0, APIC_ESR = 0x280;
export const APIC_ICR_LOW = 0x300, APIC_ICR_HIGH = 0x310, APIC_LVT_TIMER = 0x320, APIC_LVT_LINT0 = 0x350;
export const APIC_LVT_LINT1 = 0x360, APIC_LVT_ERROR = 0x370;

const SVR_ENABLE = 1 << 8;
const LVT_MASKED = 1 << 16;
const LVT_TSC_DEADLINE = 2 << 17;
const ICR_INIT = 5 << 8, ICR_STARTUP = 6 << 8, ICR_FIXED = 0, ICR_ASSERT = 1 << 14, ICR_LEVEL = 1 << 15;

export interface ApicVectors {
  timer: number;
  spurious: number;
  error: number;
}

export class LapicDriver {
  constructor(private readonly io: KernelIo, readonly base = 0xfee00000) {}

  read(cpu: Cpu, reg: number): number { return this.io.mmioRead32(cpu, this.base + reg); }
  write(cpu: Cpu, reg: number, v: number): void { this.io.mmioWrite32(cpu, this.base + reg, v); }

  /** The running core's APIC ID (bits 31:24 of the ID register). */
  id(cpu: Cpu): number { return this.read(cpu, APIC_ID) >>> 24; }

  /**
   * Programs the running core's APIC for the kernel: software-enabled with the spurious vector,
   * TPR 0, the error LVT, the timer in TSC-deadline mode (disarmed), LINT0/LINT1 as the BSP's
   * firmware left them (virtual wire) and masked on the APs.
   */
  setup(cpu: Cpu, v: ApicVectors, bsp: boolean): void {
    this.write(cpu, APIC_SVR, SVR_ENABLE | v.spurious);
    this.write(cpu, APIC_TPR, 0);
    this.write(cpu, APIC_LVT_ERROR, v.error);
    this.write(cpu, APIC_ESR, 0);
    this.write(cpu, APIC_LVT_TIMER, LVT_TSC_DEADLINE | v.timer);
    this.setDeadline(cpu, 0);
    if (!bsp) {
      this.write(cpu, APIC_LVT_LINT0, LVT_MASKED);
      this.write(cpu, APIC_LVT_LINT1, LVT_MASKED | (4 << 8)); // NMI delivery, masked
    }
  }

  /** WRMSR IA32_TSC_DEADLINE: the timer interrupt at the first cycle >= `cycles`; 0 disarms. */
  setDeadline(cpu: Cpu, cycles: number): void {
    charge(cpu, 'msrAccess');
    cpu.apic?.setTscDeadline(cycles);
  }

  eoi(cpu: Cpu): void { this.write(cpu, APIC_EOI, 0); }

  /** Sends a fixed IPI with `vector` to the APIC with ID `dest`. */
  sendIpi(cpu: Cpu, dest: number, vector: number): void {
    charge(cpu, 'ipiSend');
    this.write(cpu, APIC_ICR_HIGH, dest << 24);
    this.write(cpu, APIC_ICR_LOW, ICR_FIXED | ICR_ASSERT | vector);
  }

  /**
   * The MP specification's universal start-up algorithm for one AP: INIT (assert), wait 10 ms,
   * STARTUP twice with 200 us waits. The AP starts in real mode at `page` * 4096. The waits are
   * charged to the running core (they are time the BSP spends, not host time).
   */
  startAp(cpu: Cpu, dest: number, page: number): void {
    this.write(cpu, APIC_ESR, 0);
    this.write(cpu, APIC_ICR_HIGH, dest << 24);
    this.write(cpu, APIC_ICR_LOW, ICR_INIT | ICR_ASSERT | ICR_LEVEL);
    charge(cpu, 'apInitDelay');
    for (let k = 0; k < 2; k++) {
      this.write(cpu, APIC_ICR_HIGH, dest << 24);
      this.write(cpu, APIC_ICR_LOW, ICR_STARTUP | (page & 0xff));
      charge(cpu, 'apSipiDelay');
    }
  }
}
