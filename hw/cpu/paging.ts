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
 * Table reads and writes go through `ptRead`/`ptWrite`.
 *
 * Nested paging (guest mode with NP_ENABLE, npt.ts): the same walk is two-dimensional. Each
 * guest table address is a guest-physical address, translated through the nested tables (as a
 * user write, APM 15.25.5) before the entry is read; the guest's PAE PDPTEs are not loaded at
 * MOV CR3 but read (and checked: reserved bits give #PF, not #GP) during each walk like any
 * other entry, one reference (APM: in guest mode with nested paging the PDPTEs are loaded on
 * demand); the final guest-physical address is translated too; with guest paging off the linear
 * address is the guest-physical address. A nested fault returns WALK_NPF with the details in
 * npt.ts's lastNpf. The result is the combined translation: the host-physical page, and
 * permissions that are the intersection of both levels (a page the nested tables leave
 * read-only gets no TE_D, so every write to it re-walks and meets the nested fault). Guest A/D
 * bits are set (at their host-physical addresses) before the final nested translation, so they
 * are set even when that translation faults. An n-level guest walk over m-level nested tables
 * costs (n+1)(m+1)-1 references with 4 KiB pages everywhere.
 */
import type { Cpu } from './cpu.ts';
import { ACC_EXEC, ACC_WRITE } from './access.ts';
import { NPF_HI_FINAL, NPF_HI_TABLE, nestedWalk, type NestedResult, setNpf } from './npt.ts';
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

/** walk() result for a nested page fault (details in npt.ts's lastNpf; the caller exits with NPF). */
export const WALK_NPF = -2;

const TWO32 = 0x100000000;

/** Reads a table entry; host-physical addresses above 4 GiB (nested paging) have no RAM: all ones. */
function ptRead(cpu: Cpu, addr: number): number {
  if (addr > 0xffffffff) { cpu.mem.unbacked++; return 0xffffffff; }
  return cpu.mem.read(addr >>> 0, 4);
}
function ptWrite(cpu: Cpu, addr: number, v: number): void {
  if (addr > 0xffffffff) { cpu.mem.unbacked++; return; }
  cpu.mem.write(addr >>> 0, 4, v);
}

/**
 * Walks the tables for `lin`. Returns -1 and fills `out` on success, the #PF error code, or
 * WALK_NPF (guest mode with nested paging: a nested page fault, see npt.ts lastNpf).
 */
export function walk(cpu: Cpu, lin: number, acc: number, user: boolean, out: WalkResult): number {
  out.refs = 0;
  if (cpu.guest && cpu.npEnabled) {
    if (!cpu.pg) return nestedFinal(cpu, out, lin, acc, TE_W | TE_U | TE_D, true);
    return cpu.pae ? walkPae(cpu, lin, acc, user, out, true) : walk32(cpu, lin, acc, user, out, true);
  }
  return cpu.pae ? walkPae(cpu, lin, acc, user, out, false) : walk32(cpu, lin, acc, user, out, false);
}

const nres: NestedResult = { hpa: 0, shift: 12, flags: 0, refs: 0 };

/**
 * Nested translation of a guest page-table entry's guest-physical address (a user write at the
 * nested level). Returns the entry's host-physical address, or -1 (lastNpf filled).
 */
function nestedTable(cpu: Cpu, gpa: number, out: WalkResult): number {
  const e = nestedWalk(cpu, gpa, ACC_WRITE, nres);
  out.refs += nres.refs;
  if (e >= 0) { setNpf(e, NPF_HI_TABLE, gpa); return -1; }
  return nres.hpa + (gpa & 0xfff);
}

/**
 * Nested translation of the final guest-physical address `gpa` (of the accessed byte) of a
 * guest translation with TE_* bits `gFlags`; fills `out` with the combined translation.
 * `gLarge`: the guest maps a large page (or has paging off), so a nested page at least as large
 * as the TLB's large pages gives a large combined entry.
 */
function nestedFinal(cpu: Cpu, out: WalkResult, gpa: number, acc: number, gFlags: number, gLarge: boolean): number {
  const n = nres;
  const e = nestedWalk(cpu, gpa, acc, n);
  out.refs += n.refs;
  if (e >= 0) { setNpf(e, NPF_HI_FINAL, gpa); return WALK_NPF; }
  let f = gFlags & (TE_U | TE_G | TE_NX);
  const nw = (n.flags & TE_W) !== 0;
  if (nw && (gFlags & TE_W) !== 0) f |= TE_W;
  if (nw && (gFlags & TE_D) !== 0 && (n.flags & TE_D) !== 0) f |= TE_D;
  if ((n.flags & TE_NX) !== 0) f |= TE_NX;
  if (n.hpa > 0xffffffff) f |= TE_HIGH;
  out.phys = (n.hpa % TWO32) >>> 0;
  out.flags = f;
  out.large = gLarge && n.shift >= (cpu.pae ? 21 : 22);
  return -1;
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

function walk32(cpu: Cpu, lin: number, acc: number, user: boolean, out: WalkResult, np: boolean): number {
  let pdeAddr = ((cpu.cr3 & 0xfffff000) | ((lin >>> 22) << 2)) >>> 0;
  if (np && (pdeAddr = nestedTable(cpu, pdeAddr, out)) < 0) return WALK_NPF;
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
    return np ? nestedFinal(cpu, out, out.phys + (lin & 0xfff), acc, out.flags, true) : -1;
  }
  let pteAddr = ((pde & 0xfffff000) | (((lin >>> 12) & 0x3ff) << 2)) >>> 0;
  if (np && (pteAddr = nestedTable(cpu, pteAddr, out)) < 0) return WALK_NPF;
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
  return np ? nestedFinal(cpu, out, out.phys + (lin & 0xfff), acc, out.flags, false) : -1;
}

/** Bits 62:36 of a PAE entry are reserved (36-bit physical addresses); bit 63 unless EFER.NXE. */
function paeReserved(cpu: Cpu, hi: number): boolean {
  const rsvd = (cpu.efer & 0x800) !== 0 ? 0x7ffffff0 : 0xfffffff0;
  return (hi & rsvd) !== 0;
}

function walkPae(cpu: Cpu, lin: number, acc: number, user: boolean, out: WalkResult, np: boolean): number {
  const i = lin >>> 30;
  let pdptLo: number, pdptHi: number;
  if (np) {
    // guest mode with nested paging: the PDPTE is read from memory during the walk
    const a = nestedTable(cpu, ((cpu.cr3 & 0xffffffe0) >>> 0) + i * 8, out);
    if (a < 0) return WALK_NPF;
    pdptLo = ptRead(cpu, a); pdptHi = ptRead(cpu, a + 4);
    out.refs++;
    if ((pdptLo & 1) !== 0 && ((pdptLo & 0x1e6) !== 0 || (pdptHi & 0xfffffff0) !== 0)) return errBase(cpu, acc, user) | PF_P | PF_RSVD;
  } else {
    pdptLo = cpu.pdpte[2 * i]; pdptHi = cpu.pdpte[2 * i + 1];
  }
  if ((pdptLo & 1) === 0) return errBase(cpu, acc, user);
  const nxe = (cpu.efer & 0x800) !== 0;
  const pgeOn = (cpu.cr4 & 0x80) !== 0;
  let pdeAddr: number;
  if (np) {
    pdeAddr = nestedTable(cpu, ((pdptLo & 0xfffff000) >>> 0) + (pdptHi & 0xf) * TWO32 + (((lin >>> 21) & 0x1ff) << 3), out);
    if (pdeAddr < 0) return WALK_NPF;
  } else {
    if ((pdptHi & 0xf) !== 0) return highTable(cpu, acc, user);
    pdeAddr = ((pdptLo & 0xfffff000) + (((lin >>> 21) & 0x1ff) << 3)) >>> 0;
  }
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
    return np ? nestedFinal(cpu, out, out.phys + (pdeHi & 0xf) * TWO32 + (lin & 0xfff), acc, out.flags, true) : -1;
  }
  let pteAddr: number;
  if (np) {
    pteAddr = nestedTable(cpu, ((pde & 0xfffff000) >>> 0) + (pdeHi & 0xf) * TWO32 + (((lin >>> 12) & 0x1ff) << 3), out);
    if (pteAddr < 0) return WALK_NPF;
  } else {
    if ((pdeHi & 0xf) !== 0) return highTable(cpu, acc, user);
    pteAddr = ((pde & 0xfffff000) + (((lin >>> 12) & 0x1ff) << 3)) >>> 0;
  }
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
  return np ? nestedFinal(cpu, out, out.phys + (pteHi & 0xf) * TWO32 + (lin & 0xfff), acc, out.flags, false) : -1;
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
 * In guest mode with nested paging nothing is loaded or checked (APM 15.25: the PDPTEs are
 * read and checked on demand during each walk, faults being #PF): returns true.
 */
export function loadPdptes(cpu: Cpu): boolean {
  if (cpu.guest && cpu.npEnabled) return true;
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
