/**
 * Nested paging (AMD SVM, APM vol. 2, 15.25): the guest-physical to host-physical walk, in the
 * four formats a VMCB control field selects, and the #VMEXIT(NPF) it reports.
 *
 * In guest mode with NP_ENABLE, every guest-physical address the core uses (each guest
 * page-table entry, the guest's PAE PDPTEs, and the final address of an access) is translated
 * through the tables at N_CR3; paging.ts drives that two-dimensional walk and cpu.ts caches the
 * combined guest-virtual -> host-physical result in the modelled TLB (see hw/README.md, "Nested
 * paging", for the whole picture, the costs, and the formats' bit layouts).
 *
 * Format selection. On hardware the nested tables have the host's paging format (legacy 2-level,
 * PAE or long mode). Our host is TypeScript and has no paging mode, so a VMCB control field
 * chooses: bits 57:56 of the quadword at control-area offset 0x090 (the NP_ENABLE quadword),
 * i.e. bits 1:0 of the byte at VMCB offset 0x097 (VMCB_NPT_FORMAT). The APM defines bits 7:0
 * of that quadword (NP_ENABLE, SEV, SEV-ES, GMET, SSSCheckEn, VTE, ROGPT, INVLPGB/TLBSYNC) and
 * marks bits 63:8 reserved, SBZ: bits 57:56 are reserved on real hardware, and zero selects the
 * legacy format. Value 3 selects our hashed format (not an x86 format at all).
 *
 * Rules the walk follows (APM 15.25.5-15.25.6):
 * - Every nested access is a user access: each nested entry on the path needs U=1.
 * - Accesses to guest page tables (and the guest's PAE PDPTEs) are treated as user writes at
 *   the nested level: they need W=1 at every nested level and set D in the final nested entry.
 *   The final access to the guest page is a user access of its own kind (read, write, fetch).
 *   Host CR0.WP does not apply (the accesses are user accesses).
 * - Accessed bits are set in every nested entry that has one, the dirty bit in the final entry
 *   on a write; like the guest walk (paging.ts), only when the walk succeeds, and an A/D update
 *   is a locked update of an entry already read, not a further reference.
 * - A failing nested translation ends the instruction with #VMEXIT(NPF): EXITINFO1 low dword =
 *   the #PF-style error code (P = the entry was present (protection or reserved-bit fault),
 *   RW = write (always 1 on a guest table access), US = 1 always, RSV = reserved bit set,
 *   ID = final instruction fetch in a format with NX); EXITINFO1 bit 32 = fault on the final
 *   guest-physical access, bit 33 = fault on a guest page-table access; EXITINFO2 = the faulting
 *   guest-physical address (of the guest table entry, or of the accessed byte).
 *
 * Every nested entry read (and every hash-table probe) is one memory reference in the walk's
 * `refs`, charged by the caller through the cost table (extraCosts.walkRef).
 *
 * Addresses. Guest-physical and host-physical addresses are JavaScript numbers (up to 36 bits,
 * the core's physical width): a PAE guest can produce guest-physical addresses above 4 GiB and
 * PAE/long-mode nested entries can point above 4 GiB. No RAM lives above 4 GiB: a nested table
 * there reads as all ones (a reserved-bit fault), a final page there is unbacked (TE_HIGH).
 */
import type { PhysMem } from '../mem/physmem.ts';
import { ACC_EXEC, ACC_WRITE } from './access.ts';
import type { Cpu } from './cpu.ts';
import { svmExit } from './svm.ts';
import { TE_D, TE_NX, TE_W } from './tlb.ts';
import { NP_ENABLE, VMCB_N_CR3, VMCB_NP_CONTROL } from './vmcb.ts';

// =============================================================================== formats and VMCB

/** Nested table formats (the VMCB_NPT_FORMAT field, cpu.nptFormat). */
export const NPT_LEGACY = 0;  // 2-level, 32-bit entries: 4 KiB and 4 MiB pages, no NX
export const NPT_PAE = 1;     // 3-level PAE: 4-entry PDPT, 2 MiB and 4 KiB pages, NX
export const NPT_LONG = 2;    // 4-level long mode: 1 GiB, 2 MiB and 4 KiB pages, NX
export const NPT_HASHED = 3;  // hashed guest-frame -> host-frame table (hw/README.md)

/** VMCB control area: the NP_ENABLE quadword (bit 0 = NP_ENABLE) and N_CR3 (APM Table B-1), from vmcb.ts. */
export { NP_ENABLE, VMCB_N_CR3, VMCB_NP_CONTROL };
/** Byte holding the nested format: bits 1:0 of VMCB byte 0x097 (= bits 57:56 of the quadword at 0x090, reserved SBZ on hardware). */
export const VMCB_NPT_FORMAT = 0x097;
/** Bit position of the format field within the 64-bit quadword at VMCB_NP_CONTROL. */
export const NPT_FORMAT_SHIFT = 56;
export const NPT_FORMAT_MASK = 3;

/** The nested format selected by the VMCB at `vmcb` (host-physical). */
export function nptFormatFromVmcb(mem: PhysMem, vmcb: number): number {
  return mem.read(vmcb + VMCB_NPT_FORMAT, 1) & NPT_FORMAT_MASK;
}
/** The same through a VMCB view (svm.ts's VmcbView): for VMRUN to set cpu.nptFormat. */
export function nptFormatOfView(v: { u8(off: number): number }): number {
  return v.u8(VMCB_NPT_FORMAT) & NPT_FORMAT_MASK;
}

// =============================================================================== #VMEXIT(NPF)

export const VMEXIT_NPF = 0x400;
/** EXITINFO1 low-dword bits (the #PF error-code layout). */
export const NPF_P = 1, NPF_W = 2, NPF_U = 4, NPF_RSV = 8, NPF_ID = 16;
/** EXITINFO1 high-dword bits: bit 32 (final guest-physical access), bit 33 (guest page-table access). */
export const NPF_HI_FINAL = 1, NPF_HI_TABLE = 2;

/** The nested page fault being reported (filled by the walk, read by raiseNpf). */
export const lastNpf = { info1: 0, info1Hi: 0, gpa: 0 };

export function setNpf(err: number, hi: number, gpa: number): void {
  lastNpf.info1 = err;
  lastNpf.info1Hi = hi;
  lastNpf.gpa = gpa;
}

/**
 * Ends the instruction with #VMEXIT(NPF) carrying lastNpf: EXITINFO1 = info1Hi:info1,
 * EXITINFO2 = the guest-physical address (which may exceed 32 bits).
 */
export function raiseNpf(cpu: Cpu): never {
  const f = lastNpf;
  if (cpu.svm !== null) return svmExit(cpu, VMEXIT_NPF, f.info1, f.gpa % TWO32, f.info1Hi, Math.floor(f.gpa / TWO32));
  throw new Error(`nested page fault (gPA 0x${f.gpa.toString(16)}, EXITINFO1 ${f.info1Hi}:${f.info1.toString(16)}) outside an SVM guest`);
}

// =============================================================================== the walk

/** Result of one nested walk. */
export interface NestedResult {
  /** Host-physical address of the 4 KiB page holding the guest-physical address. */
  hpa: number;
  /** log2 of the nested page size: 12, 21 (2 MiB), 22 (4 MiB) or 30 (1 GiB). */
  shift: number;
  /** TE_W: writable at every level; TE_NX: no-execute at some level; TE_D: the final entry is dirty. */
  flags: number;
  /** Nested entries read (hash probes for the hashed format). */
  refs: number;
}

const TWO32 = 0x100000000;
/** Reserved high-dword bits of a PAE/long-mode entry: address bits 51:36 (36-bit physical addresses). */
const HI_ADDR_RSV = 0x000ffff0;
/** PAE-format entries also reserve bits 62:52 (long mode leaves them to software). */
const PAE_HI_RSV = 0x7ffffff0;

function rd(cpu: Cpu, addr: number): number {
  if (addr > 0xffffffff) { cpu.mem.unbacked++; return 0xffffffff; } // no RAM above 4 GiB
  return cpu.mem.read(addr, 4);
}
function wr(cpu: Cpu, addr: number, v: number): void {
  if (addr > 0xffffffff) { cpu.mem.unbacked++; return; }
  cpu.mem.write(addr, 4, v);
}

/** The error code of a failed nested access before the P/RSV bits. */
function errBase(acc: number, nx: boolean): number {
  let e = NPF_U;
  if (acc === ACC_WRITE) e |= NPF_W;
  else if (acc === ACC_EXEC && nx) e |= NPF_ID;
  return e;
}

// entries seen on the path, for the accessed-bit updates after a successful walk
const pathAddr = new Float64Array(4);
const pathVal = new Int32Array(4);

/**
 * Translates guest-physical `gpa` through the nested tables of cpu.nptFormat for an access of
 * kind `acc` (ACC_READ, ACC_WRITE, ACC_EXEC; a guest page-table access is ACC_WRITE). A user
 * access. Returns -1 and fills `out` on success, else the NPF error code (low dword of EXITINFO1).
 * Sets accessed/dirty bits on success. `out.refs` counts the entries read either way.
 */
export function nestedWalk(cpu: Cpu, gpa: number, acc: number, out: NestedResult): number {
  out.refs = 0;
  const fmt = cpu.nptFormat & 3;
  if (fmt === NPT_HASHED) return hashedWalk(cpu, gpa, acc, out);
  return radixWalk(cpu, gpa, acc, out, fmt);
}

function radixWalk(cpu: Cpu, gpa: number, acc: number, out: NestedResult, fmt: number): number {
  const legacy = fmt === NPT_LEGACY, pae = fmt === NPT_PAE;
  const hasNx = !legacy;
  const base = errBase(acc, hasNx);
  // the legacy and PAE formats translate 32-bit guest-physical addresses only
  if (gpa > 0xffffffff && fmt !== NPT_LONG) return base;
  const esz = legacy ? 4 : 8;
  const bits = legacy ? 10 : 9;
  let level = legacy ? 2 : pae ? 3 : 4;
  // PAE: N_CR3 points at a 32-byte aligned 4-entry PDPT whose entries are read on every walk
  let table = pae ? (cpu.nCr3 & 0xffffffe0) >>> 0 : (cpu.nCr3 & 0xfffff000) >>> 0;
  let w = true, u = true, nx = false;
  let n = 0;
  let leafShift = 12, frame = 0;
  for (;;) {
    const shift = 12 + bits * (level - 1);
    const isPdpt = pae && level === 3;
    const idx = (gpa <= 0xffffffff && shift < 32 ? gpa >>> shift : Math.floor(gpa / 2 ** shift)) & (isPdpt ? 3 : (1 << bits) - 1);
    const addr = table + idx * esz;
    const lo = rd(cpu, addr);
    const hi = esz === 8 ? rd(cpu, addr + 4) : 0;
    out.refs++;
    if ((lo & 1) === 0) return base;
    if (esz === 8) {
      if (isPdpt) {
        // a legacy PAE PDPTE: bits 2:1 and 8:5 and 63:36 reserved (no R/W, U/S, A or NX)
        if ((lo & 0x1e6) !== 0 || (hi & 0xfffffff0) !== 0) return base | NPF_P | NPF_RSV;
      } else {
        if ((hi & (pae ? PAE_HI_RSV : HI_ADDR_RSV)) !== 0) return base | NPF_P | NPF_RSV;
        if (level === 4 && (lo & 0x180) !== 0) return base | NPF_P | NPF_RSV; // PML4E bits 8:7 MBZ
      }
    }
    if (!isPdpt) {
      if ((lo & 2) === 0) w = false;
      if ((lo & 4) === 0) u = false;
      if ((hi & 0x80000000) !== 0 && hasNx) nx = true;
      pathAddr[n] = addr; pathVal[n] = lo; n++;
    }
    const large = (lo & 0x80) !== 0 && (level === 2 || (level === 3 && fmt === NPT_LONG));
    if (large || level === 1) {
      leafShift = shift;
      const size = 2 ** shift;
      if (large && !legacy) {
        // the frame's low bits (12 up to the page size, bit 12 being PAT) must be zero
        const rsv = (size - 1) & ~0x1fff;
        if ((lo & rsv) !== 0) return base | NPF_P | NPF_RSV;
      }
      const f = ((lo & ~(size - 1) & 0xfffff000) >>> 0) + (hi & 0xf) * TWO32;
      frame = f + ((gpa % size) - (gpa % 4096));
      break;
    }
    table = ((lo & 0xfffff000) >>> 0) + (hi & 0xf) * TWO32;
    level--;
  }
  if (!u || (acc === ACC_WRITE && !w) || (acc === ACC_EXEC && nx)) return base | NPF_P;
  // accessed bits on every level, dirty on the final entry for a write
  for (let k = 0; k < n; k++) {
    const v = pathVal[k];
    let upd = v | 0x20;
    if (k === n - 1 && acc === ACC_WRITE) upd |= 0x40;
    if (upd !== v) wr(cpu, pathAddr[k], upd);
  }
  const dirty = acc === ACC_WRITE || (pathVal[n - 1] & 0x40) !== 0;
  out.hpa = frame;
  out.shift = leafShift;
  out.flags = (w ? TE_W : 0) | (nx ? TE_NX : 0) | (dirty ? TE_D : 0);
  return -1;
}

// =============================================================================== hashed tables

/**
 * The hashed format (hw/README.md, "Hashed nested page tables"). N_CR3 bits 31:12 = the table's
 * host-physical base (4 KiB aligned, contiguous), bits 4:0 = k, the log2 of the slot count
 * (1..20), bit 5 = LP (the table may hold 4 MiB entries). Each slot is 8 bytes:
 *   tag   (dword 0): bit 0 V (slot in use), bit 1 L (4 MiB entry), bits 11:2 zero,
 *                    bits 31:12 the guest-physical frame (4 MiB aligned when L).
 *   value (dword 1): bit 0 P, 1 W, 2 U, 5 A, 6 D, 11 NX, bits 31:12 the host-physical frame
 *                    (4 MiB aligned when L); bits 3, 4 and 10:7 reserved (zero).
 * A key's home slot is hashSlot(tag, k); collisions use linear probing (slot + 1 modulo the
 * size) until the tag or a free slot (V = 0) is found, at most 2^k probes. A lookup probes the
 * 4 MiB tag first when LP is set, then the 4 KiB tag. Each probe is one memory reference.
 */
export const HASH_MUL = 0x9e3779b1;
export const HNPT_V = 1, HNPT_L = 2;
export const HNPT_P = 1, HNPT_W = 2, HNPT_U = 4, HNPT_A = 0x20, HNPT_D = 0x40, HNPT_NX = 0x800;
const HNPT_RSV = 0x798;
export const HNPT_LP = 0x20;
export const HNPT_MAX_LOG2 = 20;
export const HNPT_LARGE_SHIFT = 22;

/** Home slot of a tag in a table of 2^k slots (Fibonacci hashing: the top k bits of tag * HASH_MUL). */
export function hashSlot(tag: number, k: number): number {
  return Math.imul(tag, HASH_MUL) >>> (32 - k);
}

/** Tag of the 4 KiB (or, large = true, 4 MiB) entry covering a 32-bit guest-physical address. */
export function hnptTag(gpa: number, large: boolean): number {
  return large ? ((gpa & 0xffc00000) | HNPT_L | HNPT_V) >>> 0 : ((gpa & 0xfffff000) | HNPT_V) >>> 0;
}

/** Probes for `tag`; returns the slot's address or -1. Counts each slot read in out.refs. */
function probe(cpu: Cpu, base: number, k: number, tag: number, out: NestedResult): number {
  const mask = (1 << k) - 1;
  let i = hashSlot(tag, k);
  for (let n = 0; n <= mask; n++) {
    const a = base + i * 8;
    const t = rd(cpu, a);
    out.refs++;
    if (t === tag) return a;
    if ((t & HNPT_V) === 0) return -1;
    i = (i + 1) & mask;
  }
  return -1;
}

function hashedWalk(cpu: Cpu, gpa: number, acc: number, out: NestedResult): number {
  const base = errBase(acc, true);
  if (gpa > 0xffffffff) return base;
  const ncr3 = cpu.nCr3;
  const k = ncr3 & 0x1f;
  if (k === 0 || k > HNPT_MAX_LOG2) return base | NPF_P | NPF_RSV; // no usable table
  const tbase = (ncr3 & 0xfffff000) >>> 0;
  let large = false;
  let slot = -1;
  if ((ncr3 & HNPT_LP) !== 0) {
    slot = probe(cpu, tbase, k, hnptTag(gpa, true), out);
    large = slot >= 0;
  }
  if (slot < 0) slot = probe(cpu, tbase, k, hnptTag(gpa, false), out);
  if (slot < 0) return base;
  const v = rd(cpu, slot + 4); // the same slot: part of the probe's reference
  if ((v & HNPT_P) === 0) return base;
  if ((v & HNPT_RSV) !== 0 || (large && (v & 0x3ff000) !== 0)) return base | NPF_P | NPF_RSV;
  const w = (v & HNPT_W) !== 0, nx = (v & HNPT_NX) !== 0;
  if ((v & HNPT_U) === 0 || (acc === ACC_WRITE && !w) || (acc === ACC_EXEC && nx)) return base | NPF_P;
  let upd = v | HNPT_A;
  if (acc === ACC_WRITE) upd |= HNPT_D;
  if (upd !== v) wr(cpu, slot + 4, upd);
  out.hpa = ((v & 0xfffff000) >>> 0) + (large ? (gpa & 0x3ff000) : 0);
  out.shift = large ? HNPT_LARGE_SHIFT : 12;
  out.flags = (w ? TE_W : 0) | (nx ? TE_NX : 0) | ((upd & HNPT_D) !== 0 ? TE_D : 0);
  return -1;
}

// =============================================================================== building tables

/** Permissions of a nested mapping (defaults: present, writable, user, executable). */
export interface NptPerms {
  present?: boolean;
  w?: boolean;
  u?: boolean;
  /** No-execute (ignored by the legacy format, which has no NX bit). */
  nx?: boolean;
}

export interface HashedGeometry {
  /** Host-physical base of the table (4 KiB aligned); the builder clears 8 << log2Slots bytes there. */
  base: number;
  /** log2 of the slot count (1..20). */
  log2Slots: number;
  /** Whether the table may hold 4 MiB entries (N_CR3.LP). */
  largePages: boolean;
}

/**
 * Builds nested tables in host-physical memory, for host software (the VMM) and tests.
 * Radix formats take an allocator of zeroed, 4 KiB aligned host-physical pages for their tables
 * (intermediate entries are P|W|U: the leaf holds the permissions); the hashed format a
 * geometry. `map` uses the largest pages the format offers where both addresses are aligned.
 */
export class NptBuilder {
  readonly nCr3: number;
  private readonly root: number;

  constructor(readonly mem: PhysMem, readonly format: number, private readonly alloc: () => number, readonly hashed?: HashedGeometry) {
    if (format === NPT_HASHED) {
      if (!hashed || hashed.log2Slots < 1 || hashed.log2Slots > HNPT_MAX_LOG2 || (hashed.base & 0xfff) !== 0) {
        throw new RangeError('the hashed format needs a 4 KiB aligned base and 1..20 slot bits');
      }
      for (let a = 0; a < 8 << hashed.log2Slots; a += 4) mem.write(hashed.base + a, 4, 0);
      this.root = hashed.base;
      this.nCr3 = (hashed.base | hashed.log2Slots | (hashed.largePages ? HNPT_LP : 0)) >>> 0;
    } else {
      this.root = alloc();
      this.nCr3 = this.root;
    }
  }

  /** Page sizes (log2) the format offers, largest first. */
  private sizes(): number[] {
    switch (this.format) {
      case NPT_LEGACY: return [22, 12];
      case NPT_PAE: return [21, 12];
      case NPT_LONG: return [30, 21, 12];
      default: return this.hashed?.largePages ? [22, 12] : [12];
    }
  }

  /** Maps [gpa, gpa + size) to [hpa, ...); `small` forces 4 KiB pages. */
  map(gpa: number, hpa: number, size: number, perms: NptPerms = {}, small = false): void {
    let off = 0;
    while (off < size) {
      let s = 12;
      if (!small) {
        for (const c of this.sizes()) {
          const p = 2 ** c;
          if (p <= size - off && (gpa + off) % p === 0 && (hpa + off) % p === 0) { s = c; break; }
        }
      }
      this.mapPage(gpa + off, hpa + off, s, perms);
      off += 2 ** s;
    }
  }

  private mapPage(gpa: number, hpa: number, shift: number, perms: NptPerms): void {
    const p = perms.present ?? true, w = perms.w ?? true, u = perms.u ?? true, nx = perms.nx ?? false;
    if (this.format === NPT_HASHED) {
      const g = this.hashed!;
      const tag = hnptTag(gpa, shift !== 12);
      const val = ((hpa & 0xfffff000) | (p ? HNPT_P : 0) | (w ? HNPT_W : 0) | (u ? HNPT_U : 0) | (nx ? HNPT_NX : 0)) >>> 0;
      const mask = (1 << g.log2Slots) - 1;
      let i = hashSlot(tag, g.log2Slots);
      for (let n = 0; n <= mask; n++) {
        const a = g.base + i * 8;
        const t = this.mem.read(a, 4);
        if (t === tag || (t & HNPT_V) === 0) {
          this.mem.write(a, 4, tag);
          this.mem.write(a + 4, 4, val);
          return;
        }
        i = (i + 1) & mask;
      }
      throw new RangeError('hashed nested page table full');
    }
    const legacy = this.format === NPT_LEGACY;
    const esz = legacy ? 4 : 8, bits = legacy ? 10 : 9;
    let level = legacy ? 2 : this.format === NPT_PAE ? 3 : 4;
    let table = this.root;
    for (;;) {
      const sh = 12 + bits * (level - 1);
      const isPdpt = this.format === NPT_PAE && level === 3;
      const idx = Math.floor(gpa / 2 ** sh) & (isPdpt ? 3 : (1 << bits) - 1);
      const addr = table + idx * esz;
      if (sh === shift) {
        let lo = (hpa % TWO32) & 0xfffff000;
        lo |= (p ? 1 : 0) | (w ? 2 : 0) | (u ? 4 : 0) | (shift !== 12 ? 0x80 : 0);
        this.mem.write(addr, 4, lo >>> 0);
        if (!legacy) this.mem.write(addr + 4, 4, ((Math.floor(hpa / TWO32) & 0xf) | (nx ? 0x80000000 : 0)) >>> 0);
        return;
      }
      let lo = this.mem.read(addr, 4);
      if ((lo & 1) === 0) {
        const t = this.alloc();
        lo = (t | (isPdpt ? 1 : 7)) >>> 0;
        this.mem.write(addr, 4, lo);
        if (!legacy) this.mem.write(addr + 4, 4, 0);
      } else if ((lo & 0x80) !== 0 && !isPdpt) {
        throw new RangeError(`nested mapping at 0x${gpa.toString(16)} overlaps a large page`);
      }
      table = (lo & 0xfffff000) >>> 0;
      level--;
    }
  }
}
