/**
 * EFLAGS with lazy arithmetic flags.
 *
 * ALU instructions do not compute CF/PF/AF/ZF/SF/OF. They record the operation, operand size,
 * operands and result (`lfOp`, `lfSz`, `lfA`, `lfB`, `lfRes`) and mark the six arithmetic flags
 * as lazy in `lazy`. A flag is computed only when something reads it (a Jcc, PUSHF, an
 * exception frame). Instructions whose flag rules are irregular (shifts, multiplies, BCD)
 * compute their flags eagerly and clear `lazy`.
 *
 * INC and DEC are ADD and SUB of 1 that leave CF alone: they materialise CF first and then mark
 * only the other five flags lazy.
 *
 * Undefined flags: LOGIC ops (AND/OR/XOR/TEST) leave AF = 0 (the P6 and modern cores do the same).
 */

export const CF = 1 << 0;
export const PF = 1 << 2;
export const AF = 1 << 4;
export const ZF = 1 << 6;
export const SF = 1 << 7;
export const TF = 1 << 8;
export const IF = 1 << 9;
export const DF = 1 << 10;
export const OF = 1 << 11;
export const IOPL = 3 << 12;
export const NT = 1 << 14;
export const RF = 1 << 16;
export const VM = 1 << 17;
export const AC = 1 << 18;
export const VIF = 1 << 19;
export const VIP = 1 << 20;
export const ID = 1 << 21;

export const ARITH = CF | PF | AF | ZF | SF | OF;
/** Bit 1 always reads as 1. */
export const FIXED1 = 1 << 1;

/** Lazy operations. */
export const OP_ADD = 0;
export const OP_ADC = 1; // add with carry-in 1
export const OP_SUB = 2;
export const OP_SBB = 3; // subtract with borrow-in 1
export const OP_LOGIC = 4;

/** Operand-size index: 0 = 8 bits, 1 = 16 bits, 2 = 32 bits. */
export const MASK = [0xff, 0xffff, 0xffffffff] as const;
export const SIGN = [0x80, 0x8000, 0x80000000] as const;

/** Parity of the low byte: 1 if an even number of bits is set (PF). */
export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let b = i, p = 1;
  while (b) { p ^= b & 1; b >>>= 1; }
  PARITY[i] = p;
}

/** The part of the CPU state the flag code needs. */
export interface FlagState {
  flags: number;
  lazy: number;
  lfOp: number;
  lfSz: number;
  lfA: number;
  lfB: number;
  lfRes: number;
}

export function lazyCF(s: FlagState): number {
  const m = MASK[s.lfSz];
  const a = (s.lfA & m) >>> 0, b = (s.lfB & m) >>> 0, r = (s.lfRes & m) >>> 0;
  switch (s.lfOp) {
    case OP_ADD: return r < a ? 1 : 0;
    case OP_ADC: return r <= a ? 1 : 0;
    case OP_SUB: return a < b ? 1 : 0;
    case OP_SBB: return a <= b ? 1 : 0;
    default: return 0;
  }
}

export function lazyOF(s: FlagState): number {
  const sign = SIGN[s.lfSz];
  const a = s.lfA, b = s.lfB, r = s.lfRes;
  switch (s.lfOp) {
    case OP_ADD: case OP_ADC: return ((a ^ r) & (b ^ r) & sign) !== 0 ? 1 : 0;
    case OP_SUB: case OP_SBB: return ((a ^ b) & (a ^ r) & sign) !== 0 ? 1 : 0;
    default: return 0;
  }
}

export function getCF(s: FlagState): number {
  return (s.lazy & CF) !== 0 ? lazyCF(s) : s.flags & CF;
}
export function getZF(s: FlagState): boolean {
  return (s.lazy & ZF) !== 0 ? (s.lfRes & MASK[s.lfSz]) === 0 : (s.flags & ZF) !== 0;
}
export function getSF(s: FlagState): boolean {
  return (s.lazy & SF) !== 0 ? (s.lfRes & SIGN[s.lfSz]) !== 0 : (s.flags & SF) !== 0;
}
export function getOF(s: FlagState): boolean {
  return (s.lazy & OF) !== 0 ? lazyOF(s) !== 0 : (s.flags & OF) !== 0;
}
export function getPF(s: FlagState): boolean {
  return (s.lazy & PF) !== 0 ? PARITY[s.lfRes & 0xff] !== 0 : (s.flags & PF) !== 0;
}
export function getAF(s: FlagState): boolean {
  if ((s.lazy & AF) === 0) return (s.flags & AF) !== 0;
  return s.lfOp === OP_LOGIC ? false : ((s.lfA ^ s.lfB ^ s.lfRes) & 0x10) !== 0;
}

/** Computes every lazy flag into `flags` and clears `lazy`. Returns the arithmetic bits. */
export function materialize(s: FlagState): number {
  const lz = s.lazy;
  if (lz === 0) return s.flags;
  let f = s.flags & ~lz;
  if (lz & CF) f |= lazyCF(s);
  if ((lz & PF) && PARITY[s.lfRes & 0xff]) f |= PF;
  if ((lz & AF) && s.lfOp !== OP_LOGIC && ((s.lfA ^ s.lfB ^ s.lfRes) & 0x10)) f |= AF;
  if ((lz & ZF) && (s.lfRes & MASK[s.lfSz]) === 0) f |= ZF;
  if ((lz & SF) && (s.lfRes & SIGN[s.lfSz])) f |= SF;
  if ((lz & OF) && lazyOF(s)) f |= OF;
  s.flags = f;
  s.lazy = 0;
  return f;
}

/** Condition codes 0-15 as Jcc/SETcc/CMOVcc encode them. */
export function testCC(s: FlagState, cc: number): boolean {
  let r: boolean;
  switch (cc >> 1) {
    case 0: r = getOF(s); break;
    case 1: r = getCF(s) !== 0; break;
    case 2: r = getZF(s); break;
    case 3: r = getCF(s) !== 0 || getZF(s); break;
    case 4: r = getSF(s); break;
    case 5: r = getPF(s); break;
    case 6: r = getSF(s) !== getOF(s); break;
    default: r = getZF(s) || getSF(s) !== getOF(s); break;
  }
  return (cc & 1) !== 0 ? !r : r;
}

export const CC_NAMES = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'] as const;
