/**
 * The kernel's global descriptor tables, one per core, in emulated memory (the core's GDTR
 * points at it, and the CPU reads it whenever a program loads a segment register). The layout
 * is Linux i386's (arch/x86/include/asm/segment.h), so programs see the selectors they see on
 * Linux: entries 6-8 are the thread's TLS slots (set_thread_area), 12/13 the kernel's flat
 * code/data, 14/15 the user's flat code/data (selectors 0x73 and 0x7b).
 *
 * The TLS slots belong to the running thread: the scheduler writes the thread's three
 * descriptors into the core's GDT when it switches to it (Linux's load_TLS).
 */
import type { Cpu } from '../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../hw/cpu/insn.ts';
import { descAr, descBase, descLimit, type Desc } from '../hw/cpu/segmentation.ts';
import type { PhysMem } from '../hw/mem/physmem.ts';
import { chargeMem } from './costs.ts';

export const GDT_ENTRIES = 32;
export const GDT_BYTES = GDT_ENTRIES * 8;
export const GDT_ENTRY_TLS_MIN = 6;
export const GDT_ENTRY_TLS_ENTRIES = 3;
export const GDT_ENTRY_TLS_MAX = GDT_ENTRY_TLS_MIN + GDT_ENTRY_TLS_ENTRIES - 1;
export const GDT_ENTRY_KERNEL_CS = 12, GDT_ENTRY_KERNEL_DS = 13, GDT_ENTRY_USER_CS = 14, GDT_ENTRY_USER_DS = 15;
export const KERNEL_CS = GDT_ENTRY_KERNEL_CS * 8, KERNEL_DS = GDT_ENTRY_KERNEL_DS * 8;
export const USER_CS = GDT_ENTRY_USER_CS * 8 + 3, USER_DS = GDT_ENTRY_USER_DS * 8 + 3;

/** A descriptor as two dwords (lo = bytes 0-3, hi = bytes 4-7). */
export interface Descriptor { lo: number; hi: number }

export const EMPTY: Descriptor = { lo: 0, hi: 0 };

/** A code/data descriptor: base, 20-bit limit, access byte, flags nibble (G, D/B, L, AVL). */
export function makeDescriptor(base: number, limit: number, access: number, flags: number): Descriptor {
  return {
    lo: (((base & 0xffff) << 16) | (limit & 0xffff)) >>> 0,
    hi: ((base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8) | ((base >>> 16) & 0xff)) >>> 0,
  };
}

/** Linux's struct user_desc (set_thread_area, get_thread_area, modify_ldt). */
export interface UserDesc {
  entryNumber: number;
  baseAddr: number;
  limit: number;
  seg32bit: number;
  contents: number;
  readExecOnly: number;
  limitInPages: number;
  segNotPresent: number;
  useable: number;
}

export function userDescFlags(u: UserDesc): number {
  return (u.seg32bit & 1) | ((u.contents & 3) << 1) | ((u.readExecOnly & 1) << 3) | ((u.limitInPages & 1) << 4) |
    ((u.segNotPresent & 1) << 5) | ((u.useable & 1) << 6);
}

export function parseUserDescFlags(entryNumber: number, baseAddr: number, limit: number, flags: number): UserDesc {
  return {
    entryNumber, baseAddr: baseAddr >>> 0, limit: limit >>> 0,
    seg32bit: flags & 1, contents: (flags >>> 1) & 3, readExecOnly: (flags >>> 3) & 1, limitInPages: (flags >>> 4) & 1,
    segNotPresent: (flags >>> 5) & 1, useable: (flags >>> 6) & 1,
  };
}

/** Linux's LDT_empty / LDT_zero: a user_desc that clears the slot. */
export function userDescIsEmpty(u: UserDesc): boolean {
  const zero = u.baseAddr === 0 && u.limit === 0 && u.contents === 0 && u.readExecOnly === 0 && u.seg32bit === 0 &&
    u.limitInPages === 0 && u.segNotPresent === 0 && u.useable === 0;
  const empty = u.baseAddr === 0 && u.limit === 0 && u.contents === 0 && u.readExecOnly === 1 && u.seg32bit === 0 &&
    u.limitInPages === 0 && u.segNotPresent === 1 && u.useable === 0;
  return zero || empty;
}

/** Linux's fill_ldt: the descriptor a user_desc asks for (DPL 3, accessed). */
export function descriptorFromUserDesc(u: UserDesc): Descriptor {
  if (userDescIsEmpty(u)) return EMPTY;
  const type = 1 | ((u.readExecOnly ^ 1) << 1) | (u.contents << 2);
  const access = type | 0x10 | 0x60 | ((u.segNotPresent ^ 1) << 7);
  const flags = (u.useable & 1) | ((u.seg32bit & 1) << 2) | ((u.limitInPages & 1) << 3);
  return makeDescriptor(u.baseAddr, u.limit, access, flags);
}

/** Linux's fill_user_desc: a descriptor back as a user_desc (get_thread_area). */
export function userDescFromDescriptor(entryNumber: number, d: Descriptor): UserDesc {
  const access = (d.hi >>> 8) & 0xff, flags = (d.hi >>> 20) & 0xf;
  return {
    entryNumber,
    baseAddr: ((d.lo >>> 16) | ((d.hi & 0xff) << 16) | (d.hi & 0xff000000)) >>> 0,
    limit: ((d.lo & 0xffff) | (d.hi & 0xf0000)) >>> 0,
    seg32bit: (flags >>> 2) & 1, contents: (access >>> 2) & 3, readExecOnly: ((access >>> 1) & 1) ^ 1,
    limitInPages: (flags >>> 3) & 1, segNotPresent: ((access >>> 7) & 1) ^ 1, useable: flags & 1,
  };
}

/** One core's GDT: `phys` in RAM, seen by the core at linear address `linear`. */
export class Gdt {
  constructor(private readonly mem: PhysMem, readonly phys: number, readonly linear: number) {}

  /** Writes the fixed entries and clears the rest. */
  init(cpu: Cpu): void {
    for (let k = 0; k < GDT_ENTRIES; k++) this.set(cpu, k, EMPTY);
    this.set(cpu, GDT_ENTRY_KERNEL_CS, makeDescriptor(0, 0xfffff, 0x9b, 0xc));
    this.set(cpu, GDT_ENTRY_KERNEL_DS, makeDescriptor(0, 0xfffff, 0x93, 0xc));
    this.set(cpu, GDT_ENTRY_USER_CS, makeDescriptor(0, 0xfffff, 0xfb, 0xc));
    this.set(cpu, GDT_ENTRY_USER_DS, makeDescriptor(0, 0xfffff, 0xf3, 0xc));
  }

  set(cpu: Cpu, index: number, d: Descriptor): void {
    chargeMem(cpu, 8);
    this.mem.write(this.phys + index * 8, 4, d.lo);
    this.mem.write(this.phys + index * 8 + 4, 4, d.hi);
  }

  get(cpu: Cpu, index: number): Descriptor {
    chargeMem(cpu, 8);
    return { lo: this.mem.read(this.phys + index * 8, 4), hi: this.mem.read(this.phys + index * 8 + 4, 4) };
  }

  /** LGDT: the core's GDTR. */
  load(cpu: Cpu): void {
    cpu.gdtBase = this.linear;
    cpu.gdtLimit = GDT_BYTES - 1;
  }

  /** Writes a thread's three TLS descriptors into the table (Linux's load_TLS). */
  loadTls(cpu: Cpu, tls: readonly Descriptor[]): void {
    for (let k = 0; k < GDT_ENTRY_TLS_ENTRIES; k++) this.set(cpu, GDT_ENTRY_TLS_MIN + k, tls[k] ?? EMPTY);
  }

  /**
   * Loads segment register `s` with `sel` from this table, as the IRET/MOV on the kernel's exit
   * path would: a null or unusable selector leaves the register null (a later use faults).
   * Returns false if the selector does not name a usable DPL-3 segment.
   */
  loadSegment(cpu: Cpu, s: number, sel: number): boolean {
    const index = sel >>> 3;
    if ((sel & 0xfffc) === 0 || (sel & 4) !== 0 || index >= GDT_ENTRIES) {
      cpu.loadSegCache(s, s === CS || s === SS ? sel : 0, 0, 0, 0);
      return (sel & 0xfffc) === 0 && s !== CS && s !== SS;
    }
    const raw = this.get(cpu, index);
    const d: Desc = { lo: raw.lo, hi: raw.hi, addr: 0 };
    const present = (raw.hi & 0x8000) !== 0, dpl = (raw.hi >>> 13) & 3;
    if (!present || dpl !== 3 || (raw.hi & 0x1000) === 0) {
      cpu.loadSegCache(s, 0, 0, 0, 0);
      return false;
    }
    cpu.loadSegCache(s, sel, descBase(d), descLimit(d), descAr(d));
    return true;
  }
}

/** The segment registers in the order the CPU numbers them. */
export const SEGMENT_REGS = [ES, CS, SS, DS, FS, GS] as const;
