/**
 * Segmentation: descriptor fetches from the GDT/LDT, descriptor decoding, and segment-register
 * loads with the protected-mode checks (#GP/#NP/#SS/#TS), for MOV/POP Sreg, LDS and friends,
 * and for the transfers in exceptions.ts and far.ts.
 */
import type { Cpu } from './cpu.ts';
import { CS, SS } from './insn.ts';

/** Scratch for the last descriptor fetched (lo, hi dwords) and its linear address. */
export interface Desc { lo: number; hi: number; addr: number }

export const GP = 13, NP = 11, SSF = 12, TS = 10;

export function descBase(d: Desc): number {
  return ((d.lo >>> 16) | ((d.hi & 0xff) << 16) | (d.hi & 0xff000000)) >>> 0;
}
export function descLimit(d: Desc): number {
  const raw = (d.lo & 0xffff) | (d.hi & 0x000f0000);
  return (d.hi & 0x00800000) !== 0 ? ((raw << 12) | 0xfff) >>> 0 : raw;
}
/** The attribute word kept in the segment cache: type/S/DPL/P in 0-7, AVL/L/DB/G in 12-15. */
export function descAr(d: Desc): number { return (d.hi >>> 8) & 0xf0ff; }
export function descDpl(d: Desc): number { return (d.hi >>> 13) & 3; }
export function descPresent(d: Desc): boolean { return (d.hi & 0x8000) !== 0; }
/** S=1 (code or data). */
export function descIsSeg(d: Desc): boolean { return (d.hi & 0x1000) !== 0; }
export function descIsCode(d: Desc): boolean { return (d.hi & 0x1800) === 0x1800; }
/** System descriptor type (S=0): 4 bits. */
export function descType(d: Desc): number { return (d.hi >>> 8) & 0xf; }

/**
 * Reads the descriptor for `sel` into `d`. Returns false (without faulting) if the selector
 * lies outside its table; the caller decides which fault that is.
 */
export function readDesc(cpu: Cpu, sel: number, d: Desc): boolean {
  const idx = sel & 0xfff8;
  let base: number, limit: number;
  if (sel & 4) {
    if ((cpu.ldtSel & 0xfffc) === 0) return false;
    base = cpu.ldtBase; limit = cpu.ldtLimit;
  } else { base = cpu.gdtBase; limit = cpu.gdtLimit; }
  if (idx + 7 > limit) return false;
  d.addr = (base + idx) >>> 0;
  d.lo = cpu.srd32(d.addr);
  d.hi = cpu.srd32(d.addr + 4);
  return true;
}

/** Sets the accessed bit of a code/data descriptor in memory, as a segment load does. */
export function setAccessed(cpu: Cpu, d: Desc): void {
  if ((d.hi & 0x100) === 0) {
    d.hi |= 0x100;
    cpu.swr8(d.addr + 5, (d.hi >>> 8) & 0xff);
  }
}

const scratch: Desc = { lo: 0, hi: 0, addr: 0 };

/** Loads a segment cache from a descriptor (protected mode), RPL taken from `sel`. */
export function loadFromDesc(cpu: Cpu, s: number, sel: number, d: Desc): void {
  cpu.loadSegCache(s, sel, descBase(d), descLimit(d), descAr(d));
}

/**
 * MOV/POP Sreg, LDS/LES/LFS/LGS/LSS: loads data segment register `s` (not CS) with the checks
 * of the SDM's MOV pseudo-code. In real mode the base is sel << 4 and the rest of the cache
 * stays as it is.
 */
export function loadDataSeg(cpu: Cpu, s: number, sel: number): void {
  sel &= 0xffff;
  if (!cpu.pe) {
    cpu.segSel[s] = sel;
    cpu.segBase[s] = sel << 4;
    cpu.deriveRanges(s);
    return;
  }
  const rpl = sel & 3, cpl = cpu.cpl;
  if ((sel & 0xfffc) === 0) {
    if (s === SS) cpu.raise(GP, 0);
    cpu.loadSegCache(s, sel, 0, 0, 0); // a null selector: any access faults
    return;
  }
  const d = scratch;
  if (!readDesc(cpu, sel, d)) cpu.raise(GP, sel & 0xfffc);
  const dpl = descDpl(d);
  if (s === SS) {
    // writable data segment, RPL = CPL, DPL = CPL
    if (rpl !== cpl || !descIsSeg(d) || descIsCode(d) || (d.hi & 0x200) === 0 || dpl !== cpl) cpu.raise(GP, sel & 0xfffc);
    if (!descPresent(d)) cpu.raise(SSF, sel & 0xfffc);
  } else {
    // data or readable code; for data and non-conforming code, DPL >= max(CPL, RPL)
    if (!descIsSeg(d)) cpu.raise(GP, sel & 0xfffc);
    const code = descIsCode(d);
    if (code && (d.hi & 0x200) === 0) cpu.raise(GP, sel & 0xfffc);
    const conforming = code && (d.hi & 0x400) !== 0;
    if (!conforming && (rpl > dpl || cpl > dpl)) cpu.raise(GP, sel & 0xfffc);
    if (!descPresent(d)) cpu.raise(NP, sel & 0xfffc);
  }
  setAccessed(cpu, d);
  loadFromDesc(cpu, s, sel, d);
}

/**
 * Reloads the data segment registers' validity after a privilege change to an outer ring
 * (RET/IRET to outer level): a data or non-conforming code segment with DPL < new CPL is
 * loaded with the null selector.
 */
export function invalidateOuterSegs(cpu: Cpu): void {
  for (const s of [0, 3, 4, 5]) {
    const ar = cpu.segAr[s];
    const dpl = (ar >>> 5) & 3;
    const conformingCode = (ar & 0x0c) === 0x0c && (ar & 0x10) !== 0;
    if ((cpu.segSel[s] & 0xfffc) !== 0 && !conformingCode && dpl < cpu.cpl) cpu.loadSegCache(s, 0, 0, 0, 0);
  }
}

/** Loads CS for a transfer (descriptor already checked) and sets CPL. */
export function loadCs(cpu: Cpu, sel: number, d: Desc, cpl: number): void {
  setAccessed(cpu, d);
  cpu.setCpl(cpl);
  cpu.loadSegCache(CS, (sel & 0xfffc) | cpl, descBase(d), descLimit(d), descAr(d));
}

/** Reads the ring-`dpl` stack (SS:ESP) from the current TSS into out[0]=ss, out[1]=esp. */
export function tssStack(cpu: Cpu, dpl: number, ext: number, out: number[]): void {
  const tss32 = (cpu.trAr & 0x8) !== 0;
  if (tss32) {
    const off = 4 + dpl * 8;
    if (off + 5 > cpu.trLimit) cpu.raise(TS, (cpu.trSel & 0xfffc) | ext);
    out[1] = cpu.srd32(cpu.trBase + off) >>> 0;
    out[0] = cpu.srd16(cpu.trBase + off + 4);
  } else {
    const off = 2 + dpl * 4;
    if (off + 3 > cpu.trLimit) cpu.raise(TS, (cpu.trSel & 0xfffc) | ext);
    out[1] = cpu.srd16(cpu.trBase + off);
    out[0] = cpu.srd16(cpu.trBase + off + 2);
  }
}

/**
 * Checks a new SS for an inner-ring stack switch (from the TSS): the #TS/#SS rules. Fills `d`.
 */
export function checkStackSeg(cpu: Cpu, ss: number, dpl: number, ext: number, d: Desc): void {
  if ((ss & 0xfffc) === 0) cpu.raise(TS, ext);
  if (!readDesc(cpu, ss, d)) cpu.raise(TS, (ss & 0xfffc) | ext);
  if ((ss & 3) !== dpl || descDpl(d) !== dpl || !descIsSeg(d) || descIsCode(d) || (d.hi & 0x200) === 0) {
    cpu.raise(TS, (ss & 0xfffc) | ext);
  }
  if (!descPresent(d)) cpu.raise(SSF, (ss & 0xfffc) | ext);
}
