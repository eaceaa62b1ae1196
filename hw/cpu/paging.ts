/**
 * The page walk: 2-level (4 KiB pages, 4 MiB pages with CR4.PSE), and PAE 3-level (4 KiB and
 * 2 MiB pages, NX with EFER.NXE), with user/supervisor and read/write checks (CR0.WP), accessed
 * and dirty bits written back to the tables, and the #PF error code.
 *
 * Every page-table entry the walk reads is one memory reference (`refs`), which the caller
 * charges through the cost table. PAE's four PDPTEs are registers loaded at MOV CR3 (as on
 * hardware), so they cost no reference during a walk. Setting an accessed or dirty bit is a
 * locked update of an entry already read and is not counted as a further reference.
 *
 * Table reads and writes go through `ptRead`/`ptWrite`, the one place a later nested-paging
 * walk translates table addresses.
 */
import type { Cpu } from './cpu.ts';
import { ACC_EXEC, ACC_WRITE } from './access.ts';
import { TE_D, TE_G, TE_HIGH, TE_NX, TE_U, TE_W } from './tlb.ts';

export interface WalkResult {
  /** Physical address of the 4 KiB page containing the linear address (low 12 bits zero). */
  phys: number;
  /** TE_* bits of the translation. */
  flags: number;
  /** Mapped by a large page (4 MiB, or 2 MiB under PAE). */
  large: boolean;
  /** Page-table entries read. */
  refs: number;
}

/** #PF error-code bits. */
export const PF_P = 1, PF_W = 2, PF_U = 4, PF_RSVD = 8, PF_ID = 16;

function ptRead(cpu: Cpu, addr: number): number {
  return cpu.mem.read(addr >>> 0, 4);
}
function ptWrite(cpu: Cpu, addr: number, v: number): void {
  cpu.mem.write(addr >>> 0, 4, v);
}

/**
 * Walks the tables for `lin`. Returns -1 and fills `out` on success, or the #PF error code.
 */
export function walk(cpu: Cpu, lin: number, acc: number, user: boolean, out: WalkResult): number {
  out.refs = 0;
  return cpu.pae ? walkPae(cpu, lin, acc, user, out) : walk32(cpu, lin, acc, user, out);
}

function errBase(cpu: Cpu, acc: number, user: boolean): number {
  let e = 0;
  if (acc === ACC_WRITE) e |= PF_W;
  if (user) e |= PF_U;
  if (acc === ACC_EXEC && (cpu.efer & 0x800) !== 0 && cpu.pae) e |= PF_ID;
  return e;
}

/** Permission check on the combined bits; returns true if the access is allowed. */
function allowed(cpu: Cpu, w: boolean, u: boolean, nx: boolean, acc: number, user: boolean): boolean {
  if (user && !u) return false;
  if (acc === ACC_WRITE && !w && (user || (cpu.cr0 & 0x10000) !== 0)) return false;
  if (acc === ACC_EXEC && nx) return false;
  return true;
}

function walk32(cpu: Cpu, lin: number, acc: number, user: boolean, out: WalkResult): number {
  const pdeAddr = ((cpu.cr3 & 0xfffff000) | ((lin >>> 22) << 2)) >>> 0;
  const pde = ptRead(cpu, pdeAddr);
  out.refs++;
  if ((pde & 1) === 0) return errBase(cpu, acc, user);
  const pgeOn = (cpu.cr4 & 0x80) !== 0;
  if ((pde & 0x80) !== 0 && (cpu.cr4 & 0x10) !== 0) {
    const w = (pde & 2) !== 0, u = (pde & 4) !== 0;
    if (!allowed(cpu, w, u, false, acc, user)) return errBase(cpu, acc, user) | PF_P;
    let upd = pde | 0x20;
    if (acc === ACC_WRITE) upd |= 0x40;
    if (upd !== pde) ptWrite(cpu, pdeAddr, upd);
    out.phys = ((pde & 0xffc00000) | (lin & 0x003ff000)) >>> 0;
    out.large = true;
    out.flags = (w ? TE_W : 0) | (u ? TE_U : 0) | ((upd & 0x40) ? TE_D : 0) | (pgeOn && (pde & 0x100) ? TE_G : 0);
    return -1;
  }
  const pteAddr = ((pde & 0xfffff000) | (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
  const pte = ptRead(cpu, pteAddr);
  out.refs++;
  if ((pte & 1) === 0) return errBase(cpu, acc, user);
  const w = (pde & pte & 2) !== 0, u = (pde & pte & 4) !== 0;
  if (!allowed(cpu, w, u, false, acc, user)) return errBase(cpu, acc, user) | PF_P;
  if ((pde & 0x20) === 0) ptWrite(cpu, pdeAddr, pde | 0x20);
  let upd = pte | 0x20;
  if (acc === ACC_WRITE) upd |= 0x40;
  if (upd !== pte) ptWrite(cpu, pteAddr, upd);
  out.phys = (pte & 0xfffff000) >>> 0;
  out.large = false;
  out.flags = (w ? TE_W : 0) | (u ? TE_U : 0) | ((upd & 0x40) ? TE_D : 0) | (pgeOn && (pte & 0x100) ? TE_G : 0);
  return -1;
}

/** Bits 62:36 of a PAE entry are reserved (36-bit physical addresses); bit 63 unless EFER.NXE. */
function paeReserved(cpu: Cpu, hi: number): boolean {
  const rsvd = (cpu.efer & 0x800) !== 0 ? 0x7ffffff0 : 0xfffffff0;
  return (hi & rsvd) !== 0;
}

function walkPae(cpu: Cpu, lin: number, acc: number, user: boolean, out: WalkResult): number {
  const i = lin >>> 30;
  const pdptLo = cpu.pdpte[2 * i], pdptHi = cpu.pdpte[2 * i + 1];
  if ((pdptLo & 1) === 0) return errBase(cpu, acc, user);
  const nxe = (cpu.efer & 0x800) !== 0;
  const pgeOn = (cpu.cr4 & 0x80) !== 0;
  if ((pdptHi & 0xf) !== 0) return highTable(cpu, acc, user);
  const pdeAddr = ((pdptLo & 0xfffff000) + (((lin >>> 21) & 0x1ff) << 3)) >>> 0;
  const pde = ptRead(cpu, pdeAddr), pdeHi = ptRead(cpu, pdeAddr + 4);
  out.refs++;
  if ((pde & 1) === 0) return errBase(cpu, acc, user);
  if (paeReserved(cpu, pdeHi)) return errBase(cpu, acc, user) | PF_P | PF_RSVD;
  const nx1 = nxe && (pdeHi & 0x80000000) !== 0;
  if ((pde & 0x80) !== 0) {
    if ((pde & 0x001fe000) !== 0) return errBase(cpu, acc, user) | PF_P | PF_RSVD;
    const w = (pde & 2) !== 0, u = (pde & 4) !== 0;
    if (!allowed(cpu, w, u, nx1, acc, user)) return errBase(cpu, acc, user) | PF_P;
    let upd = pde | 0x20;
    if (acc === ACC_WRITE) upd |= 0x40;
    if (upd !== pde) ptWrite(cpu, pdeAddr, upd);
    out.phys = ((pde & 0xffe00000) | (lin & 0x001ff000)) >>> 0;
    out.large = true;
    out.flags = (w ? TE_W : 0) | (u ? TE_U : 0) | ((upd & 0x40) ? TE_D : 0) | (pgeOn && (pde & 0x100) ? TE_G : 0)
      | (nx1 ? TE_NX : 0) | ((pdeHi & 0xf) !== 0 ? TE_HIGH : 0);
    return -1;
  }
  if ((pdeHi & 0xf) !== 0) return highTable(cpu, acc, user);
  const pteAddr = ((pde & 0xfffff000) + (((lin >>> 12) & 0x1ff) << 3)) >>> 0;
  const pte = ptRead(cpu, pteAddr), pteHi = ptRead(cpu, pteAddr + 4);
  out.refs++;
  if ((pte & 1) === 0) return errBase(cpu, acc, user);
  if (paeReserved(cpu, pteHi)) return errBase(cpu, acc, user) | PF_P | PF_RSVD;
  const nx = nx1 || (nxe && (pteHi & 0x80000000) !== 0);
  const w = (pde & pte & 2) !== 0, u = (pde & pte & 4) !== 0;
  if (!allowed(cpu, w, u, nx, acc, user)) return errBase(cpu, acc, user) | PF_P;
  if ((pde & 0x20) === 0) ptWrite(cpu, pdeAddr, pde | 0x20);
  let upd = pte | 0x20;
  if (acc === ACC_WRITE) upd |= 0x40;
  if (upd !== pte) ptWrite(cpu, pteAddr, upd);
  out.phys = (pte & 0xfffff000) >>> 0;
  out.large = false;
  out.flags = (w ? TE_W : 0) | (u ? TE_U : 0) | ((upd & 0x40) ? TE_D : 0) | (pgeOn && (pte & 0x100) ? TE_G : 0)
    | (nx ? TE_NX : 0) | ((pteHi & 0xf) !== 0 ? TE_HIGH : 0);
  return -1;
}

/**
 * A page table above 4 GiB: no RAM is there, so its entries read as all ones, which sets
 * reserved bits: the walk reports a reserved-bit fault, as hardware reading all-ones would.
 */
function highTable(cpu: Cpu, acc: number, user: boolean): number {
  cpu.mem.unbacked++;
  return errBase(cpu, acc, user) | PF_P | PF_RSVD;
}

const pdptScratch = new Int32Array(8);

/**
 * Loads the four PDPTEs from CR3 (MOV CR3 in PAE mode, or enabling paging with PAE).
 * Returns false if a present entry has reserved bits set (the caller raises #GP(0)).
 */
export function loadPdptes(cpu: Cpu): boolean {
  const base = (cpu.cr3 & 0xffffffe0) >>> 0;
  const tmp = pdptScratch;
  for (let i = 0; i < 4; i++) {
    const lo = cpu.mem.read(base + i * 8, 4), hi = cpu.mem.read(base + i * 8 + 4, 4);
    if ((lo & 1) && ((lo & 0x1e6) !== 0 || (hi & 0xfffffff0) !== 0)) return false;
    tmp[2 * i] = lo; tmp[2 * i + 1] = hi;
  }
  cpu.pdpte.set(tmp);
  return true;
}
