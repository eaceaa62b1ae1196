/**
 * Instruction family: MUL, IMUL (all forms), DIV, IDIV.
 *
 * - F6/F7 /4 MUL, /5 IMUL (one operand: AX <- AL * Eb, DX:AX <- AX * Ew, EDX:EAX <- EAX * Ed),
 *   /6 DIV, /7 IDIV (AX / Eb -> AL quotient, AH remainder; DX:AX / Ew; EDX:EAX / Ed). alu.ts
 *   assembles the groups from grp3b/grp3v.
 * - 0F AF IMUL Gv,Ev; 69 IMUL Gv,Ev,Iz; 6B IMUL Gv,Ev,Ibs (truncated to the operand size).
 *
 * #DE (vector 0) when the divisor is 0 or the quotient does not fit the destination (IDIV:
 * the signed range, -128 and -32768 and -2^31 included, as on the P6). Nothing is written then.
 *
 * Flags: MUL/IMUL define CF = OF = 1 when the high half is significant (MUL: non-zero; IMUL: not
 * the sign extension of the low half). SF, ZF, AF and PF are undefined: we leave them unchanged.
 * DIV/IDIV leave every flag undefined: we clear SF, ZF and PF, set AF and leave CF and OF alone.
 * Both choices are what the AMD host of the differential tests does (checked there on AMD hosts).
 *
 * The 64-bit products and the 64/32 divisions use only 32-bit and exact double arithmetic (no
 * BigInt, nothing allocated per instruction).
 *
 * Costs: 'mul' and 'div'.
 */
import type { Cpu } from '../cpu.ts';
import { AF, CF, materialize, OF, PF, SF, ZF } from '../flags.ts';
import type { Handler, OpDef, OpTable } from '../insn.ts';

const DE = 0;

/** High and low dwords of the last 32x32 product, or quotient and remainder of the last division. */
let hi = 0, lo = 0;

/** Unsigned 32x32 -> 64: sets hi, lo (as int32). */
function mulu32(a: number, b: number): void {
  a >>>= 0; b >>>= 0;
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  hi = (hh + (lh >>> 16) + (hl >>> 16) + (mid >>> 16)) | 0;
  lo = ((mid << 16) | (ll & 0xffff)) | 0;
}

/** Signed 32x32 -> 64: sets hi, lo. */
function muls32(a: number, b: number): void {
  mulu32(a, b);
  hi = (hi - (a < 0 ? b : 0) - (b < 0 ? a : 0)) | 0;
}

/**
 * Unsigned (h:l) / d for h < d (so the quotient fits 32 bits): sets lo = quotient, hi =
 * remainder (unsigned). Two radix-2^16 steps whose partial dividends stay below 2^48, where
 * double division floors exactly.
 */
function divu64(h: number, l: number, d: number): void {
  const n1 = h * 65536 + (l >>> 16);
  const q1 = Math.floor(n1 / d);
  const r1 = n1 - q1 * d;
  const n2 = r1 * 65536 + (l & 0xffff);
  const q2 = Math.floor(n2 / d);
  lo = q1 * 65536 + q2;
  hi = n2 - q2 * d;
}

/** MUL/IMUL flags: CF = OF = ovf; SF, ZF, AF, PF unchanged. */
function mulFlags(cpu: Cpu, ovf: boolean): void {
  const f = materialize(cpu);
  cpu.flags = (f & ~(CF | OF)) | (ovf ? CF | OF : 0);
}
/** DIV/IDIV flags (all undefined): SF, ZF, PF cleared, AF set, CF and OF unchanged. */
function divFlags(cpu: Cpu): void {
  cpu.flags = (materialize(cpu) & ~(SF | ZF | PF)) | AF;
}

// ---- one-operand forms (F6/F7)

const mulEb: Handler = (cpu, i) => {
  const p = (cpu.r[0] & 0xff) * cpu.readE8(i);
  cpu.setReg16(0, p);
  mulFlags(cpu, p > 0xff);
};
const imulEb: Handler = (cpu, i) => {
  const p = ((cpu.r[0] << 24) >> 24) * ((cpu.readE8(i) << 24) >> 24);
  cpu.setReg16(0, p);
  mulFlags(cpu, p !== (p << 24) >> 24);
};
const mulEv: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    mulu32(cpu.r[0], cpu.readE32(i));
    cpu.r[0] = lo; cpu.r[2] = hi;
    mulFlags(cpu, hi !== 0);
  } else {
    const p = (cpu.r[0] & 0xffff) * cpu.readE16(i);
    cpu.setReg16(0, p); cpu.setReg16(2, p >>> 16);
    mulFlags(cpu, p > 0xffff);
  }
};
const imulEv: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    muls32(cpu.r[0], cpu.readE32(i));
    cpu.r[0] = lo; cpu.r[2] = hi;
    mulFlags(cpu, hi !== lo >> 31);
  } else {
    const p = ((cpu.r[0] << 16) >> 16) * ((cpu.readE16(i) << 16) >> 16);
    cpu.setReg16(0, p); cpu.setReg16(2, p >> 16);
    mulFlags(cpu, p !== (p << 16) >> 16);
  }
};

const divEb: Handler = (cpu, i) => {
  const d = cpu.readE8(i);
  if (d === 0) cpu.raise(DE);
  const n = cpu.r[0] & 0xffff;
  const q = Math.floor(n / d);
  if (q > 0xff) cpu.raise(DE);
  cpu.setReg16(0, ((n - q * d) << 8) | q);
  divFlags(cpu);
};
const idivEb: Handler = (cpu, i) => {
  const d = (cpu.readE8(i) << 24) >> 24;
  if (d === 0) cpu.raise(DE);
  const n = (cpu.r[0] << 16) >> 16;
  const q = Math.trunc(n / d);
  if (q > 127 || q < -128) cpu.raise(DE);
  cpu.setReg16(0, (((n - q * d) & 0xff) << 8) | (q & 0xff));
  divFlags(cpu);
};
const divEv: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    const d = cpu.readE32(i) >>> 0;
    if (d === 0) cpu.raise(DE);
    const h = cpu.r[2] >>> 0;
    if (h >= d) cpu.raise(DE);
    divu64(h, cpu.r[0] >>> 0, d);
    cpu.r[0] = lo; cpu.r[2] = hi;
  } else {
    const d = cpu.readE16(i);
    if (d === 0) cpu.raise(DE);
    const n = (((cpu.r[2] & 0xffff) << 16) | (cpu.r[0] & 0xffff)) >>> 0;
    const q = Math.floor(n / d);
    if (q > 0xffff) cpu.raise(DE);
    cpu.setReg16(0, q); cpu.setReg16(2, n - q * d);
  }
  divFlags(cpu);
};
const idivEv: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    const d = cpu.readE32(i);
    if (d === 0) cpu.raise(DE);
    let h = cpu.r[2], l = cpu.r[0];
    const negN = h < 0, negD = d < 0;
    if (negN) { l = -l | 0; h = ~h + (l === 0 ? 1 : 0); } // 64-bit negate
    const ad = negD ? -d >>> 0 : d;
    if (h >>> 0 >= ad) cpu.raise(DE);
    divu64(h >>> 0, l >>> 0, ad);
    const q = lo, r = hi; // magnitudes
    if (negN !== negD ? q > 0x80000000 : q > 0x7fffffff) cpu.raise(DE);
    cpu.r[0] = negN !== negD ? -q : q;
    cpu.r[2] = negN ? -r : r;
  } else {
    const d = (cpu.readE16(i) << 16) >> 16;
    if (d === 0) cpu.raise(DE);
    const n = ((cpu.r[2] & 0xffff) << 16) | (cpu.r[0] & 0xffff);
    const q = Math.trunc(n / d);
    if (q > 32767 || q < -32768) cpu.raise(DE);
    cpu.setReg16(0, q); cpu.setReg16(2, n - q * d);
  }
  divFlags(cpu);
};

// ---- two- and three-operand IMUL (truncated)

/** a * b (signed, operand size) into Gv with the IMUL flags. */
function imulTrunc(cpu: Cpu, reg: number, opsz: number, a: number, b: number): void {
  if (opsz === 4) {
    const r = Math.imul(a, b);
    cpu.r[reg] = r;
    // the double product is exact whenever it fits 32 bits, so it differs exactly on overflow
    mulFlags(cpu, a * b !== r);
  } else {
    const p = ((a << 16) >> 16) * ((b << 16) >> 16);
    cpu.setReg16(reg, p);
    mulFlags(cpu, p !== (p << 16) >> 16);
  }
}
const imulGvEv: Handler = (cpu, i) => { imulTrunc(cpu, i.reg, i.opsz, cpu.r[i.reg], cpu.readEv(i)); };
const imulGvEvI: Handler = (cpu, i) => { imulTrunc(cpu, i.reg, i.opsz, cpu.readEv(i), i.imm); };

/** Group 3 members /4-/7 for F6 (byte) and F7 (word/dword); alu.ts assembles the groups. */
export const grp3b: Record<number, OpDef> = {
  4: { name: 'mul', ops: 'Eb', exec: mulEb, cls: 'mul' },
  5: { name: 'imul', ops: 'Eb', exec: imulEb, cls: 'mul' },
  6: { name: 'div', ops: 'Eb', exec: divEb, cls: 'div' },
  7: { name: 'idiv', ops: 'Eb', exec: idivEb, cls: 'div' },
};
export const grp3v: Record<number, OpDef> = {
  4: { name: 'mul', ops: 'Ev', exec: mulEv, cls: 'mul' },
  5: { name: 'imul', ops: 'Ev', exec: imulEv, cls: 'mul' },
  6: { name: 'div', ops: 'Ev', exec: divEv, cls: 'div' },
  7: { name: 'idiv', ops: 'Ev', exec: idivEv, cls: 'div' },
};

export const table: OpTable = {
  0x0faf: { name: 'imul', ops: 'Gv,Ev', exec: imulGvEv, cls: 'mul' },
  0x69: { name: 'imul', ops: 'Gv,Ev,Iz', exec: imulGvEvI, cls: 'mul' },
  0x6b: { name: 'imul', ops: 'Gv,Ev,Ibs', exec: imulGvEvI, cls: 'mul' },
};
