/**
 * The program loader: a static i386 ELF executable (ET_EXEC, or ET_DYN without an interpreter:
 * static-pie) from contiguous memory into a new address space, as Linux's load_elf_binary does
 * with address randomisation off:
 *   - each PT_LOAD's pages are mapped up front (mm/aspace.ts: contiguous physical memory, no
 *     demand paging), with the segment's protection; pages shared by two segments get the union
 *   - file bytes are copied in, the rest (.bss) reads as zero
 *   - a static-pie image is placed at ELF_ET_DYN_BASE (0x56555000, where Linux puts a 32-bit PIE
 *     when randomisation is off); it relocates itself from AT_PHDR and its dynamic section
 *   - the break starts at the end of the highest segment, page-aligned
 * A program that needs a dynamic loader (PT_INTERP) is refused: the LWK runs static programs.
 */
import { ET_DYN, type Elf32, ElfError, parseElf32, PT_INTERP, PT_LOAD, PT_PHDR } from '../../hw/boot/elf.ts';
import type { Meter } from '../costs.ts';
import { type AddressSpace, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP } from '../mm/aspace.ts';
import { PAGE_SIZE } from '../mm/pmem.ts';

/** Linux's ELF_ET_DYN_BASE for a 32-bit program with randomisation off. */
export const PIE_BASE = 0x56555000;

const PF_X = 1, PF_W = 2, PF_R = 4;

export interface LoadedImage {
  elf: Elf32;
  /** The load bias (0 for ET_EXEC). */
  bias: number;
  entry: number;
  /** AT_PHDR: where the program headers are in the process's memory. */
  phdr: number;
  phent: number;
  phnum: number;
  /** Where the heap (brk) starts. */
  brk: number;
  /** The lowest and highest addresses the image occupies. */
  start: number;
  end: number;
}

/** An image the loader cannot run: one line naming the problem (the CLI's exit status 2). */
export class ExecError extends Error {
  constructor(message: string, readonly errno: number) { super(message); this.name = 'ExecError'; }
}

const ENOEXEC = 8, ENOMEM = 12;

const pageDown = (n: number): number => Math.floor(n / PAGE_SIZE) * PAGE_SIZE;
const pageUp = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

function protOf(flags: number): number {
  return ((flags & PF_R) !== 0 ? PROT_READ : 0) | ((flags & PF_W) !== 0 ? PROT_WRITE : 0) | ((flags & PF_X) !== 0 ? PROT_EXEC : 0);
}

/** Checks an image without loading it: the ELF header, program headers and what the LWK supports. */
export function checkImage(bytes: Uint8Array, name: string): Elf32 {
  let elf: Elf32;
  try { elf = parseElf32(bytes, name); } catch (e) {
    if (e instanceof ElfError) throw new ExecError(e.message, ENOEXEC);
    throw e;
  }
  if (elf.phdrs.some((p) => p.type === PT_INTERP)) {
    throw new ExecError(`${name}: a dynamically linked program (it asks for an interpreter); the LWK runs static executables`, ENOEXEC);
  }
  if (elf.phentsize !== 32) throw new ExecError(`${name}: program header size ${elf.phentsize}, expected 32`, ENOEXEC);
  for (const [k, p] of elf.loads.entries()) {
    if (p.memsz === 0) continue;
    if (p.align > PAGE_SIZE && (p.vaddr - p.offset) % PAGE_SIZE !== 0) {
      throw new ExecError(`${name}: segment ${k} is not page-aligned with its file offset`, ENOEXEC);
    }
  }
  return elf;
}

/** Loads `bytes` into the (empty) address space `as`. */
export function loadElf(meter: Meter, as: AddressSpace, bytes: Uint8Array, name: string): LoadedImage {
  const elf = checkImage(bytes, name);
  const loads = elf.loads.filter((p) => p.memsz > 0);
  const lo = Math.min(...loads.map((p) => pageDown(p.vaddr)));
  const bias = elf.type === ET_DYN ? PIE_BASE - lo : 0;
  // the protection of every page (pages shared by two segments take the union), then runs of equal protection
  const pageProt = new Map<number, number>();
  for (const p of loads) {
    const start = pageDown(p.vaddr + bias), end = pageUp(p.vaddr + bias + p.memsz);
    if (start < 0x10000 || end > USER_TOP) throw new ExecError(`${name}: segment at 0x${(p.vaddr >>> 0).toString(16)} lies outside user space`, ENOEXEC);
    for (let va = start; va < end; va += PAGE_SIZE) pageProt.set(va, (pageProt.get(va) ?? 0) | protOf(p.flags));
  }
  const merged: { start: number; end: number; prot: number }[] = [];
  for (const va of [...pageProt.keys()].sort((x, y) => x - y)) {
    const prot = pageProt.get(va)!;
    const l = merged[merged.length - 1];
    if (l !== undefined && l.end === va && l.prot === prot) l.end += PAGE_SIZE;
    else merged.push({ start: va, end: va + PAGE_SIZE, prot });
  }
  for (const r of merged) {
    const kind = (r.prot & PROT_WRITE) !== 0 ? 'data' : 'text';
    const m = as.mmap(meter, { addr: r.start, len: r.end - r.start, prot: r.prot, kind, fixed: true, noReplace: true });
    if (!m.ok) throw new ExecError(`${name}: cannot map segment at 0x${r.start.toString(16)} (${m.error})`, m.error === 'ENOMEM' ? ENOMEM : ENOEXEC);
  }
  for (const p of loads) {
    if (p.filesz === 0) continue;
    const w = as.copyout(meter, p.vaddr + bias, bytes.subarray(p.offset, p.offset + p.filesz), true);
    if (!w.ok) throw new ExecError(`${name}: cannot write segment at 0x${(p.vaddr >>> 0).toString(16)}`, ENOEXEC);
  }
  let phdr: number;
  const pt = elf.phdrs.find((p) => p.type === PT_PHDR);
  if (pt !== undefined) phdr = pt.vaddr + bias;
  else {
    const first = elf.loads.find((p) => p.offset <= elf.phoff && elf.phoff + elf.phnum * 32 <= p.offset + p.filesz);
    phdr = first !== undefined ? first.vaddr - first.offset + elf.phoff + bias : 0;
  }
  const end = Math.max(...merged.map((r) => r.end));
  const hi = Math.max(...loads.map((p) => p.vaddr + bias + p.memsz));
  as.initBrk(pageUp(hi));
  return {
    elf, bias, entry: (elf.entry + bias) >>> 0, phdr: phdr >>> 0, phent: 32, phnum: elf.phnum,
    brk: pageUp(hi), start: merged[0].start, end,
  };
}

export { PT_LOAD };
