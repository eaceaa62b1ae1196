/**
 * A software walk of the guest's own page tables, as the guest's MMU would do it (2-level with
 * PSE 4 MiB pages, or PAE with 2 MiB pages), without setting accessed/dirty bits and without
 * permission checks beyond presence: the VMM uses it to fetch the instruction at an MMIO exit
 * and to report addresses. Guest-physical memory is read through `gpaToHpa` (RAM only: a guest
 * table outside RAM ends the walk).
 */
import type { PhysMem } from '../../hw/mem/physmem.ts';

const CR0_PG = 0x80000000, CR4_PSE = 0x10, CR4_PAE = 0x20;

export interface GuestWalkEnv {
  readonly mem: PhysMem;
  /** Host-physical address of a guest-physical one in RAM, or -1. */
  gpaToHpa(gpa: number): number;
  /** Counts a memory reference of the walk (charged by the caller). */
  ref?(): void;
}

/** The guest-physical address of `gva` under (cr0, cr3, cr4), or -1 when it is not mapped. */
export function guestVirtToPhys(env: GuestWalkEnv, cr0: number, cr3: number, cr4: number, gva: number): number {
  gva >>>= 0;
  if ((cr0 & CR0_PG) === 0) return gva;
  const rd = (gpa: number): number => {
    const h = env.gpaToHpa(gpa);
    env.ref?.();
    return h < 0 ? 0 : env.mem.read(h, 4);
  };
  if ((cr4 & CR4_PAE) !== 0) {
    const pdpte = rd(((cr3 & 0xffffffe0) >>> 0) + ((gva >>> 30) & 3) * 8);
    if ((pdpte & 1) === 0) return -1;
    const pde = rd(((pdpte & 0xfffff000) >>> 0) + ((gva >>> 21) & 0x1ff) * 8);
    if ((pde & 1) === 0) return -1;
    if ((pde & 0x80) !== 0) return (((pde & 0xffe00000) >>> 0) + (gva & 0x1fffff)) >>> 0;
    const pte = rd(((pde & 0xfffff000) >>> 0) + ((gva >>> 12) & 0x1ff) * 8);
    if ((pte & 1) === 0) return -1;
    return (((pte & 0xfffff000) >>> 0) + (gva & 0xfff)) >>> 0;
  }
  const pde = rd(((cr3 & 0xfffff000) >>> 0) + (gva >>> 22) * 4);
  if ((pde & 1) === 0) return -1;
  if ((pde & 0x80) !== 0 && (cr4 & CR4_PSE) !== 0) return (((pde & 0xffc00000) >>> 0) + (gva & 0x3fffff)) >>> 0;
  const pte = rd(((pde & 0xfffff000) >>> 0) + ((gva >>> 12) & 0x3ff) * 4);
  if ((pte & 1) === 0) return -1;
  return (((pte & 0xfffff000) >>> 0) + (gva & 0xfff)) >>> 0;
}
