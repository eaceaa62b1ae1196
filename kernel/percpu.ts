/**
 * Per-core kernel data (Linux's per-CPU area, Kitten's cpu_info): the core, its APIC ID, its
 * GDT, whether it has come up, and its noise accounting. The scheduler keeps its own per-core
 * state (run queue, sleepers, timer) in kernel/sched/.
 */
import type { Cpu } from '../hw/cpu/cpu.ts';
import type { Gdt } from './gdt.ts';
import { NoiseStats } from './noise.ts';

export class PerCpu {
  /** Set once the core has run its kernel set-up (the BSP at boot, an AP at its start-up trap). */
  online = false;
  /** The cycle at which the core came online. */
  onlineAt = 0;
  readonly noise = new NoiseStats();
  /** Cycles spent idle (HLT), summed at each wake-up. */
  idleCycles = 0;
  /** The cycle at which the core last went idle, or -1 while it is not idle. */
  idleSince = -1;

  constructor(readonly index: number, readonly cpu: Cpu, readonly apicId: number, readonly gdt: Gdt) {}
}
