/**
 * The kernel's access to the machine's buses, as host software has it: port I/O (IN/OUT) and
 * physical memory, including MMIO pages. Every access is charged to the core the kernel is
 * running on (kernel/costs.ts: a port access, an MMIO access, or a word of RAM).
 */
import type { Cpu, IoBus } from '../../hw/cpu/cpu.ts';
import type { PhysMem } from '../../hw/mem/physmem.ts';
import { charge } from '../costs.ts';

export class KernelIo {
  constructor(readonly ports: IoBus, readonly mem: PhysMem) {}

  in8(cpu: Cpu, port: number): number { charge(cpu, 'portAccess'); return this.ports.in(port, 1); }
  out8(cpu: Cpu, port: number, v: number): void { charge(cpu, 'portAccess'); this.ports.out(port, 1, v); }
  in32(cpu: Cpu, port: number): number { charge(cpu, 'portAccess'); return this.ports.in(port, 4); }
  out32(cpu: Cpu, port: number, v: number): void { charge(cpu, 'portAccess'); this.ports.out(port, 4, v); }

  /** A 32-bit uncached access to an MMIO register (local APIC, IOAPIC). */
  mmioRead32(cpu: Cpu, addr: number): number { charge(cpu, 'mmioAccess'); return this.mem.read(addr, 4); }
  mmioWrite32(cpu: Cpu, addr: number, v: number): void { charge(cpu, 'mmioAccess'); this.mem.write(addr, 4, v >>> 0); }
}
