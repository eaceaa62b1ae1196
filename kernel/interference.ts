/**
 * One model for what an interruption costs the interrupted thread beyond the handler's own
 * cycles (DESIGN.md, "Time and determinism": every interruption is charged the refill of the
 * TLB entries it displaced, by one model for all of them): kernel work that touches P pages and
 * L cache lines displaces as many of the thread's TLB entries and lines, and the thread pays to
 * refill them when it resumes. Refilling a TLB entry costs a miss (a two-level walk of two
 * references); refilling a line costs a memory access. Charged at once to the core.
 */
import type { Cpu } from '../hw/cpu/cpu.ts';
import { type CostEntry, extraCosts } from '../hw/costs.ts';

export const interferenceCosts = {
  tlbRefill: {
    cycles: extraCosts.tlbMissBase.cycles + 2 * extraCosts.walkRef.cycles,
    kind: 'assumed',
    source: 'a TLB miss of the interrupted thread: the miss overhead plus a two-reference walk (hw/costs.ts)',
  },
  lineRefill: {
    cycles: 40,
    kind: 'assumed',
    source: 'refilling a displaced cache line from L2 (~20 cycles) or memory (100-200 cycles), weighted towards L2 for a few KiB of displacement',
  },
} as const satisfies Record<string, CostEntry>;

/** Charges the refill of `pages` TLB entries and `lines` cache lines to the core; returns the cycles. */
export function chargeDisplacement(cpu: Cpu, pages: number, lines: number): number {
  const n = pages * interferenceCosts.tlbRefill.cycles + lines * interferenceCosts.lineRefill.cycles;
  cpu.cycles += n;
  return n;
}
