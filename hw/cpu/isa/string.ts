/**
 * Instruction family: the string instructions MOVS, CMPS, STOS, LODS, SCAS (INS/OUTS are in
 * io.ts and share the REP machinery exported here).
 *
 * Operands: the source is DS:ESI (a segment-override prefix replaces DS), the destination
 * ES:EDI (never overridable). The address size (0x67) picks SI/DI/CX (16-bit, wrapping at 64 KiB,
 * upper halves kept) or ESI/EDI/ECX. EFLAGS.DF picks the direction. CMPS compares [ESI] - [EDI],
 * SCAS compares eAX - [EDI]; both set the six arithmetic flags as SUB does (all defined).
 * CMPS reads ES:[EDI] before the source, as the host does (it decides which fault is reported
 * when both operands fault).
 *
 * REP (F3) repeats while the count register is not zero; on CMPS/SCAS, F3 is REPE (also stop
 * when ZF = 0) and F2 is REPNE (also stop when ZF = 1). On the other string instructions F2
 * repeats as F3 does (what the hardware does). The count is decremented after each element and
 * registers are written back after every element, so a fault in element k leaves ESI/EDI/ECX
 * as they were after element k-1, and the instruction restarts from there.
 *
 * Interruptible: a REP instruction runs elements until the count is done or the core's cycle
 * count reaches cpu.stopAt (each element charges extraCosts.stringIteration on top of the class
 * cost), at least one element per execution. If elements remain, EIP is set back to the
 * instruction so it resumes after the quantum boundary or the interrupt.
 *
 * Fast path (REP MOVS/STOS/CMPS/SCAS with DF = 0 and 32-bit addressing): a run of elements that
 * lies within one page for each operand, within the segment limits, and whose pages the core's
 * fast mirror of the TLB already grants (read for a source, write for the destination) is
 * copied or filled with one typed-array operation, or compared in a tight loop over the physical
 * bytes (stopping at the element that ends REPE/REPNE). That is exactly what the
 * per-element accesses would do: they would all hit the same mirror entries, so the modelled
 * TLB sees the same lookups; the mirror never grants writes to pages with decoded code or to
 * MMIO, so those keep taking the per-element path, which invalidates code and calls devices.
 * Overlapping copies whose destination lies just above the source (where element order
 * matters) take the per-element path.
 */
import { extraCosts } from '../../costs.ts';
import type { Cpu } from '../cpu.ts';
import { DF, OP_SUB } from '../flags.ts';
import { ES, type Handler, type OpTable } from '../insn.ts';

export const ITER = extraCosts.stringIteration.cycles;

/** Reads an element of `size` bytes (1, 2, 4) at seg:off. */
export function rdElem(cpu: Cpu, s: number, off: number, size: number): number {
  return size === 1 ? cpu.rd8(s, off) : size === 2 ? cpu.rd16(s, off) : cpu.rd32(s, off);
}
export function wrElem(cpu: Cpu, s: number, off: number, size: number, v: number): void {
  if (size === 1) cpu.wr8(s, off, v); else if (size === 2) cpu.wr16(s, off, v); else cpu.wr32(s, off, v);
}

/** The offset in index register `n` (ESI 6, EDI 7) for the address size. */
export function idx(cpu: Cpu, n: number, a16: boolean): number {
  return a16 ? cpu.r[n] & 0xffff : cpu.r[n] >>> 0;
}
/** Adds `delta` to index register `n` at the address size. */
export function step(cpu: Cpu, n: number, delta: number, a16: boolean): void {
  const r = cpu.r;
  if (a16) r[n] = (r[n] & ~0xffff) | ((r[n] + delta) & 0xffff);
  else r[n] = (r[n] + delta) | 0;
}
/** The count register (CX or ECX), unsigned. */
export function count(cpu: Cpu, a16: boolean): number {
  return a16 ? cpu.r[1] & 0xffff : cpu.r[1] >>> 0;
}
export function setCount(cpu: Cpu, n: number, a16: boolean): void {
  if (a16) cpu.r[1] = (cpu.r[1] & ~0xffff) | (n & 0xffff);
  else cpu.r[1] = n | 0;
}

/** Element size of a string opcode: even opcodes move bytes, odd ones the operand size. */
function elemSize(op: number, opsz: number): number { return (op & 1) === 0 ? 1 : opsz; }

/** Elements the cycle budget of this execution allows (at least 1), as the per-element loop would run them. */
function budget(cpu: Cpu): number {
  if (ITER <= 0) return 0x7fffffff;
  const left = cpu.stopAt - cpu.cycles;
  return left <= ITER ? 1 : Math.min(0x7fffffff, Math.ceil(left / ITER));
}

/**
 * The physical address of the `bytes` bytes at seg:`off` (linear address `lin`, all in one page)
 * that a chunk would touch, or -1 when the chunk must take the per-element path instead: the
 * bytes would wrap past 4 GiB or leave the segment's limits, or the fast mirror does not grant
 * the read (`write` false) or write.
 */
function chunkPhys(cpu: Cpu, seg: number, off: number, lin: number, bytes: number, write: boolean): number {
  if (off + bytes > 0x100000000) return -1;
  if (write ? off < cpu.wrMin[seg] || off + bytes - 1 > cpu.wrMax[seg] : off < cpu.rdMin[seg] || off + bytes - 1 > cpu.rdMax[seg]) return -1;
  const e = cpu.fast[lin >>> 12];
  if ((e & (write ? cpu.wrNeed : cpu.rdNeed)) === 0) return -1;
  return ((e & -4096) | (lin & 0xfff)) >>> 0;
}

// ============================================================================ MOVS

function movsOne(cpu: Cpu, seg: number, size: number, delta: number, a16: boolean): void {
  const v = rdElem(cpu, seg, idx(cpu, 6, a16), size);
  wrElem(cpu, ES, idx(cpu, 7, a16), size, v);
  step(cpu, 6, delta, a16);
  step(cpu, 7, delta, a16);
}

/**
 * Forward, 32-bit addressing: copies up to `n` elements that stay in one source page and one
 * destination page, if the fast mirror grants both and the segment limits allow them.
 * Returns the number of elements done (0: take the per-element path for the next one).
 */
function movsChunk(cpu: Cpu, seg: number, size: number, n: number): number {
  const r = cpu.r;
  const si = r[6] >>> 0, di = r[7] >>> 0;
  const src = (cpu.segBase[seg] + si) >>> 0, dst = (cpu.segBase[ES] + di) >>> 0;
  let k = Math.min(n, budget(cpu), ((0x1000 - (src & 0xfff)) / size) | 0, ((0x1000 - (dst & 0xfff)) / size) | 0);
  if (k <= 1) return 0;
  const bytes = k * size;
  const ps = chunkPhys(cpu, seg, si, src, bytes, false);
  if (ps < 0) return 0;
  const pd = chunkPhys(cpu, ES, di, dst, bytes, true);
  if (pd < 0) return 0;
  const u8 = cpu.mem.u8;
  if (pd > ps && pd < ps + bytes) {
    // the destination overlaps the source from above: element order matters
    if (size !== 1) return 0;
    for (let j = 0; j < bytes; j++) u8[pd + j] = u8[ps + j];
  } else u8.copyWithin(pd, ps, ps + bytes);
  r[6] = (si + bytes) | 0;
  r[7] = (di + bytes) | 0;
  k = bytes / size;
  cpu.cycles += k * ITER;
  return k;
}

const movs: Handler = (cpu, i) => {
  const size = elemSize(i.opcode, i.opsz);
  const delta = (cpu.flags & DF) !== 0 ? -size : size;
  const a16 = i.adsz === 2, seg = i.seg;
  if (i.rep === 0) { movsOne(cpu, seg, size, delta, a16); return; }
  let n = count(cpu, a16);
  if (n === 0) return;
  const fast = !a16 && delta > 0;
  for (;;) {
    let k = 0;
    if (fast && n > 1) k = movsChunk(cpu, seg, size, n);
    if (k > 0) {
      n -= k;
    } else {
      movsOne(cpu, seg, size, delta, a16);
      n--;
      cpu.cycles += ITER;
    }
    setCount(cpu, n, a16);
    if (n === 0) return;
    if (cpu.cycles >= cpu.stopAt) break;
  }
  cpu.eip = cpu.insnEip;
};

// ============================================================================ STOS

function stosChunk(cpu: Cpu, size: number, n: number, v: number): number {
  const r = cpu.r;
  const di = r[7] >>> 0;
  const dst = (cpu.segBase[ES] + di) >>> 0;
  const k = Math.min(n, budget(cpu), ((0x1000 - (dst & 0xfff)) / size) | 0);
  if (k <= 1) return 0;
  const bytes = k * size;
  const pd = chunkPhys(cpu, ES, di, dst, bytes, true);
  if (pd < 0) return 0;
  const mem = cpu.mem;
  if (size === 1) mem.u8.fill(v, pd, pd + bytes);
  else if (size === 4 && (pd & 3) === 0) mem.i32.fill(v, pd >>> 2, (pd + bytes) >>> 2);
  else {
    const u8 = mem.u8;
    for (let j = 0; j < bytes; j += size) {
      u8[pd + j] = v; u8[pd + j + 1] = v >> 8;
      if (size === 4) { u8[pd + j + 2] = v >> 16; u8[pd + j + 3] = v >> 24; }
    }
  }
  r[7] = (di + bytes) | 0;
  cpu.cycles += k * ITER;
  return k;
}

const stos: Handler = (cpu, i) => {
  const size = elemSize(i.opcode, i.opsz);
  const delta = (cpu.flags & DF) !== 0 ? -size : size;
  const a16 = i.adsz === 2;
  const v = cpu.r[0];
  if (i.rep === 0) { wrElem(cpu, ES, idx(cpu, 7, a16), size, v); step(cpu, 7, delta, a16); return; }
  let n = count(cpu, a16);
  if (n === 0) return;
  const fast = !a16 && delta > 0;
  for (;;) {
    let k = 0;
    if (fast && n > 1) k = stosChunk(cpu, size, n, v);
    if (k > 0) {
      n -= k;
    } else {
      wrElem(cpu, ES, idx(cpu, 7, a16), size, v);
      step(cpu, 7, delta, a16);
      n--;
      cpu.cycles += ITER;
    }
    setCount(cpu, n, a16);
    if (n === 0) return;
    if (cpu.cycles >= cpu.stopAt) break;
  }
  cpu.eip = cpu.insnEip;
};

// ============================================================================ LODS

function lodsOne(cpu: Cpu, seg: number, size: number, delta: number, a16: boolean): void {
  const v = rdElem(cpu, seg, idx(cpu, 6, a16), size);
  if (size === 1) cpu.setReg8(0, v); else if (size === 2) cpu.setReg16(0, v); else cpu.r[0] = v;
  step(cpu, 6, delta, a16);
}

const lods: Handler = (cpu, i) => {
  const size = elemSize(i.opcode, i.opsz);
  const delta = (cpu.flags & DF) !== 0 ? -size : size;
  const a16 = i.adsz === 2, seg = i.seg;
  if (i.rep === 0) { lodsOne(cpu, seg, size, delta, a16); return; }
  let n = count(cpu, a16);
  if (n === 0) return;
  for (;;) {
    lodsOne(cpu, seg, size, delta, a16);
    setCount(cpu, --n, a16);
    cpu.cycles += ITER;
    if (n === 0) return;
    if (cpu.cycles >= cpu.stopAt) break;
  }
  cpu.eip = cpu.insnEip;
};

// ============================================================================ CMPS / SCAS

const SZ_INDEX = [0, 0, 1, 1, 2] as const;

/**
 * One CMPS element: compares seg:[ESI] with ES:[EDI]; returns true if they were equal. ES:[EDI]
 * is read first: when both operands fault, the host (AMD) reports the destination's fault.
 */
function cmpsOne(cpu: Cpu, seg: number, size: number, delta: number, a16: boolean): boolean {
  const b = rdElem(cpu, ES, idx(cpu, 7, a16), size);
  const a = rdElem(cpu, seg, idx(cpu, 6, a16), size);
  cpu.setLazy(OP_SUB, SZ_INDEX[size], a, b, a - b);
  step(cpu, 6, delta, a16);
  step(cpu, 7, delta, a16);
  return a === b;
}

function scasOne(cpu: Cpu, size: number, delta: number, a16: boolean): boolean {
  const b = rdElem(cpu, ES, idx(cpu, 7, a16), size);
  const a = size === 1 ? cpu.r[0] & 0xff : size === 2 ? cpu.r[0] & 0xffff : cpu.r[0];
  cpu.setLazy(OP_SUB, SZ_INDEX[size], a, b, a - b);
  step(cpu, 7, delta, a16);
  return a === b;
}

/** Set by the compare chunks: true if their last element ended the REPE/REPNE. */
let chunkEnded = false;

/** An element of `size` bytes at physical address p (the representation rdElem returns). */
function physElem(u8: Uint8Array, p: number, size: number): number {
  if (size === 1) return u8[p];
  if (size === 2) return u8[p] | (u8[p + 1] << 8);
  return u8[p] | (u8[p + 1] << 8) | (u8[p + 2] << 16) | (u8[p + 3] << 24);
}

/**
 * Forward, 32-bit addressing: compares up to `n` elements that stay in one page of each operand,
 * if the fast mirror grants reading them and the segment limits allow them, stopping after the
 * element that ends the repetition. Returns the elements done (0: take the per-element path).
 */
function cmpsChunk(cpu: Cpu, seg: number, size: number, n: number, whileEqual: boolean): number {
  const r = cpu.r;
  const si = r[6] >>> 0, di = r[7] >>> 0;
  const src = (cpu.segBase[seg] + si) >>> 0, dst = (cpu.segBase[ES] + di) >>> 0;
  const k = Math.min(n, budget(cpu), ((0x1000 - (src & 0xfff)) / size) | 0, ((0x1000 - (dst & 0xfff)) / size) | 0);
  if (k <= 1) return 0;
  const bytes = k * size;
  const ps = chunkPhys(cpu, seg, si, src, bytes, false);
  if (ps < 0) return 0;
  const pd = chunkPhys(cpu, ES, di, dst, bytes, false);
  if (pd < 0) return 0;
  const u8 = cpu.mem.u8;
  let j = 0, a = 0, b = 0;
  chunkEnded = false;
  while (j < k) {
    a = physElem(u8, ps + j * size, size);
    b = physElem(u8, pd + j * size, size);
    j++;
    if ((a === b) !== whileEqual) { chunkEnded = true; break; }
  }
  cpu.setLazy(OP_SUB, SZ_INDEX[size], a, b, a - b);
  r[6] = (si + j * size) | 0;
  r[7] = (di + j * size) | 0;
  cpu.cycles += j * ITER;
  return j;
}

/** SCAS counterpart of cmpsChunk: compares eAX (`a`) with ES:[EDI] elements. */
function scasChunk(cpu: Cpu, size: number, n: number, a: number, whileEqual: boolean): number {
  const r = cpu.r;
  const di = r[7] >>> 0;
  const dst = (cpu.segBase[ES] + di) >>> 0;
  const k = Math.min(n, budget(cpu), ((0x1000 - (dst & 0xfff)) / size) | 0);
  if (k <= 1) return 0;
  const bytes = k * size;
  const pd = chunkPhys(cpu, ES, di, dst, bytes, false);
  if (pd < 0) return 0;
  const u8 = cpu.mem.u8;
  let j = 0, b = 0;
  chunkEnded = false;
  while (j < k) {
    b = physElem(u8, pd + j * size, size);
    j++;
    if ((a === b) !== whileEqual) { chunkEnded = true; break; }
  }
  cpu.setLazy(OP_SUB, SZ_INDEX[size], a, b, a - b);
  r[7] = (di + j * size) | 0;
  cpu.cycles += j * ITER;
  return j;
}

const cmps: Handler = (cpu, i) => {
  const size = elemSize(i.opcode, i.opsz);
  const delta = (cpu.flags & DF) !== 0 ? -size : size;
  const a16 = i.adsz === 2, seg = i.seg;
  if (i.rep === 0) { cmpsOne(cpu, seg, size, delta, a16); return; }
  const whileEqual = i.rep === 1;
  let n = count(cpu, a16);
  if (n === 0) return;
  const fast = !a16 && delta > 0;
  for (;;) {
    const k = fast && n > 1 ? cmpsChunk(cpu, seg, size, n, whileEqual) : 0;
    if (k > 0) {
      n -= k;
      setCount(cpu, n, a16);
      if (n === 0 || chunkEnded) return;
    } else {
      const eq = cmpsOne(cpu, seg, size, delta, a16);
      setCount(cpu, --n, a16);
      cpu.cycles += ITER;
      if (n === 0 || eq !== whileEqual) return;
    }
    if (cpu.cycles >= cpu.stopAt) break;
  }
  cpu.eip = cpu.insnEip;
};

const scas: Handler = (cpu, i) => {
  const size = elemSize(i.opcode, i.opsz);
  const delta = (cpu.flags & DF) !== 0 ? -size : size;
  const a16 = i.adsz === 2;
  if (i.rep === 0) { scasOne(cpu, size, delta, a16); return; }
  const whileEqual = i.rep === 1;
  let n = count(cpu, a16);
  if (n === 0) return;
  const fast = !a16 && delta > 0;
  const a = size === 1 ? cpu.r[0] & 0xff : size === 2 ? cpu.r[0] & 0xffff : cpu.r[0];
  for (;;) {
    const k = fast && n > 1 ? scasChunk(cpu, size, n, a, whileEqual) : 0;
    if (k > 0) {
      n -= k;
      setCount(cpu, n, a16);
      if (n === 0 || chunkEnded) return;
    } else {
      const eq = scasOne(cpu, size, delta, a16);
      setCount(cpu, --n, a16);
      cpu.cycles += ITER;
      if (n === 0 || eq !== whileEqual) return;
    }
    if (cpu.cycles >= cpu.stopAt) break;
  }
  cpu.eip = cpu.insnEip;
};

// Names without operands: the disassembler supplies the string operands (disasm.ts).
export const table: OpTable = {
  0xa4: { name: 'movs', exec: movs, cls: 'string' },
  0xa5: { name: 'movs', exec: movs, cls: 'string' },
  0xa6: { name: 'cmps', exec: cmps, cls: 'string' },
  0xa7: { name: 'cmps', exec: cmps, cls: 'string' },
  0xaa: { name: 'stos', exec: stos, cls: 'string' },
  0xab: { name: 'stos', exec: stos, cls: 'string' },
  0xac: { name: 'lods', exec: lods, cls: 'string' },
  0xad: { name: 'lods', exec: lods, cls: 'string' },
  0xae: { name: 'scas', exec: scas, cls: 'string' },
  0xaf: { name: 'scas', exec: scas, cls: 'string' },
};
