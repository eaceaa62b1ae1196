/**
 * Instruction family: shifts and rotates. Group 2 (C0 C1 D0 D1 D2 D3: ROL ROR RCL RCR SHL SHR
 * SAL SAR, /6 being an alias of SHL) at 8, 16 and 32 bits, and the double shifts SHLD/SHRD
 * (0F A4 A5 AC AD).
 *
 * Counts are masked to 5 bits. A masked count of 0 changes nothing (no flag, no register; a
 * memory operand is still read and written back, as the P6's load/op/store micro-ops do). A
 * memory operand is read with write intent (Cpu.checkRmw): a fault on it is a write fault, as the
 * host reports it, whatever the count. Flags are committed after the store. RCL
 * and RCR of 8- and 16-bit operands rotate through CF modulo 9 and 17; ROL/ROR of 8/16-bit
 * operands rotate modulo the size, but a non-zero masked count still sets CF (and OF) from the
 * unchanged result, as the SDM's pseudo-code says.
 *
 * Flags (SDM vol. 2, SAL/SAR/SHL/SHR, RCL/RCR/ROL/ROR, SHLD, SHRD):
 * - CF is the last bit shifted (or rotated) out. Defined for every non-zero count except SHL/SHR
 *   with a count >= the operand size, where it is undefined: we give the natural extension (the
 *   bit that would have been shifted out of a wide register: 0 once the count exceeds the size).
 * - OF is defined only for a count of 1. We use one formula for every count, as Bochs does,
 *   which gives the SDM's value for a count of 1: SHL/ROL/RCL/SHLD: OF = MSB(result) XOR CF;
 *   SHR/ROR/RCR/SHRD: OF = MSB(result) XOR the bit below it (so SHR gives 0 for counts >= 2);
 *   SAR: OF = 0. RCL/RCR by a non-zero multiple of 9 or 17 leave the value and CF alone but
 *   still set OF by that rule.
 * - SF, ZF, PF follow the result for SHL/SHR/SAR/SHLD/SHRD; rotates leave them (and AF) alone.
 * - AF is undefined after a non-zero shift: we set it.
 *
 * SHLD/SHRD with a 16-bit operand and a masked count above 16: the result and flags are
 * undefined. We use the P6 model of Bochs (shift.cc): the shift runs over the 48-bit value
 * DEST:SRC:DEST, and CF is the last bit shifted out of it. (The AMD test host follows the
 * Pentium's DEST:SRC:SRC instead.) The differential tests leave these counts out.
 *
 * Apart from that, every undefined-flag choice here is what the AMD host of the differential
 * tests does; they compare all flags when the host is an AMD part.
 *
 * Costs: immediate and by-1 forms are 'simple'; by-CL forms are 'shiftCl'.
 */
import type { Cpu } from '../cpu.ts';
import { AF, ARITH, CF, materialize, OF, OP_LOGIC } from '../flags.ts';
import { group, type Handler, type Insn, type OpDef, type OpTable } from '../insn.ts';

export const SHIFT_NAMES = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'sal', 'sar'] as const;

const ROL = 0, ROR = 1, RCL = 2, RCR = 3, SHL = 4, SHR = 5, SAL = 6, SAR = 7;

/** What the last compute() decided about flags: nothing, CF/OF only (rotates), or result flags. */
const K_NONE = 0, K_ROT = 1, K_RES = 2;
let oKind = K_NONE;
/** CF and OF bits (in EFLAGS positions) computed by the last compute(). */
let oFlags = 0;

/**
 * Computes `op` on the `bits`-bit unsigned value v with masked count c (0-31) and carry-in cf.
 * Returns the result (unsigned, bits wide) and leaves the flag decision in oKind/oFlags.
 */
function compute(op: number, bits: number, v: number, c: number, cf: number): number {
  if (c === 0) { oKind = K_NONE; return v; }
  const mask = bits === 32 ? -1 : (1 << bits) - 1;
  const top = bits - 1;
  let r: number, cfo: number, of: number;
  switch (op) {
    case ROL: {
      const n = bits === 32 ? c : c & top;
      r = n === 0 ? v : ((v << n) | (v >>> (bits - n))) & mask;
      cfo = r & 1;
      of = ((r >>> top) & 1) ^ cfo;
      oKind = K_ROT;
      break;
    }
    case ROR: {
      const n = bits === 32 ? c : c & top;
      r = n === 0 ? v : ((v >>> n) | (v << (bits - n))) & mask;
      cfo = (r >>> top) & 1;
      of = cfo ^ ((r >>> (top - 1)) & 1);
      oKind = K_ROT;
      break;
    }
    case RCL: {
      const n = bits === 32 ? c : c % (bits + 1);
      if (n === 0) { r = v; cfo = cf; } // value and CF stay; OF is still set below
      else if (bits === 32) {
        r = n === 1 ? (v << 1) | cf : (v << n) | (cf << (n - 1)) | (v >>> (33 - n));
        cfo = (v >>> (32 - n)) & 1;
      } else {
        const w = (1 << (bits + 1)) - 1;
        const x = (cf << bits) | v;
        const y = ((x << n) | (x >>> (bits + 1 - n))) & w;
        r = y & mask;
        cfo = y >>> bits;
      }
      of = ((r >>> top) & 1) ^ cfo;
      oKind = K_ROT;
      break;
    }
    case RCR: {
      const n = bits === 32 ? c : c % (bits + 1);
      if (n === 0) { r = v; cfo = cf; } // value and CF stay; OF is still set below
      else if (bits === 32) {
        r = n === 1 ? (v >>> 1) | (cf << 31) : (v >>> n) | (cf << (32 - n)) | (v << (33 - n));
        cfo = (v >>> (n - 1)) & 1;
      } else {
        const w = (1 << (bits + 1)) - 1;
        const x = (cf << bits) | v;
        const y = ((x >>> n) | (x << (bits + 1 - n))) & w;
        r = y & mask;
        cfo = y >>> bits;
      }
      of = ((r >>> top) & 1) ^ ((r >>> (top - 1)) & 1);
      oKind = K_ROT;
      break;
    }
    case SHL: case SAL:
      r = (v << c) & mask;
      cfo = c <= bits ? (v >>> (bits - c)) & 1 : 0;
      of = ((r >>> top) & 1) ^ cfo;
      oKind = K_RES;
      break;
    case SHR:
      r = v >>> c;
      cfo = (v >>> (c - 1)) & 1;
      of = ((r >>> top) ^ (r >>> (top - 1))) & 1; // MSB(original) for a count of 1, else 0
      oKind = K_RES;
      break;
    default: { // SAR
      const s = (v << (32 - bits)) >> (32 - bits);
      r = (s >> c) & mask;
      cfo = (s >> (c - 1)) & 1;
      of = 0;
      oKind = K_RES;
      break;
    }
  }
  oFlags = (cfo !== 0 ? CF : 0) | (of !== 0 ? OF : 0);
  return r >>> 0;
}

/** Applies the flags the last compute() decided (after any memory write, so a fault leaves them). */
function commit(cpu: Cpu, sz: number, res: number): void {
  if (oKind === K_NONE) return;
  if (oKind === K_ROT) {
    materialize(cpu);
    cpu.flags = (cpu.flags & ~(CF | OF)) | oFlags;
    return;
  }
  // SF/ZF/PF from the result lazily; CF and OF explicit; AF = 1 (undefined, see the header).
  cpu.setLazy(OP_LOGIC, sz, res, res, res);
  cpu.flags = (cpu.flags & ~(CF | OF)) | oFlags | AF;
  cpu.lazy = ARITH & ~(CF | OF | AF);
}

/** Count sources. */
const BY1 = 0, BY_IMM = 1, BY_CL = 2;

function count(cpu: Cpu, i: Insn, src: number): number {
  return (src === BY1 ? 1 : src === BY_IMM ? i.imm : cpu.r[1]) & 31;
}

function grp2b(op: number, src: number): Handler {
  return (cpu, i) => {
    const c = count(cpu, i, src);
    const cf = op === RCL || op === RCR ? cpu.getCF() : 0;
    if (i.mod === 3) {
      const r = compute(op, 8, cpu.getReg8(i.rm), c, cf);
      cpu.setReg8(i.rm, r);
      commit(cpu, 0, r);
    } else {
      const off = cpu.ea(i);
      cpu.checkRmw(i.seg, off, 1);
      const r = compute(op, 8, cpu.rd8(i.seg, off), c, cf);
      cpu.wr8(i.seg, off, r);
      commit(cpu, 0, r);
    }
  };
}

function grp2v(op: number, src: number): Handler {
  return (cpu, i) => {
    const c = count(cpu, i, src);
    const cf = op === RCL || op === RCR ? cpu.getCF() : 0;
    if (i.opsz === 4) {
      if (i.mod === 3) {
        const r = compute(op, 32, cpu.r[i.rm] >>> 0, c, cf);
        cpu.r[i.rm] = r;
        commit(cpu, 2, r);
      } else {
        const off = cpu.ea(i);
        cpu.checkRmw(i.seg, off, 4);
        const r = compute(op, 32, cpu.rd32(i.seg, off) >>> 0, c, cf);
        cpu.wr32(i.seg, off, r);
        commit(cpu, 2, r);
      }
    } else if (i.mod === 3) {
      const r = compute(op, 16, cpu.r[i.rm] & 0xffff, c, cf);
      cpu.setReg16(i.rm, r);
      commit(cpu, 1, r);
    } else {
      const off = cpu.ea(i);
      cpu.checkRmw(i.seg, off, 2);
      const r = compute(op, 16, cpu.rd16(i.seg, off), c, cf);
      cpu.wr16(i.seg, off, r);
      commit(cpu, 1, r);
    }
  };
}

// ---- SHLD / SHRD

/** Double shift of the `bits`-bit dest d by c (1-31) with bits from s; sets oKind/oFlags. */
function dshift(left: boolean, bits: number, d: number, s: number, c: number): number {
  if (c === 0) { oKind = K_NONE; return d; }
  let r: number, cfo: number;
  if (bits === 32) {
    if (left) { r = (d << c) | (s >>> (32 - c)); cfo = (d >>> (32 - c)) & 1; }
    else { r = (d >>> c) | (s << (32 - c)); cfo = (d >>> (c - 1)) & 1; }
  } else if (c <= 16) {
    if (left) { r = (((d << 16) | s) << c) >>> 16; cfo = (d >>> (16 - c)) & 1; }
    else { r = ((s << 16) | d) >>> c; cfo = (d >>> (c - 1)) & 1; }
  } else {
    // undefined by the SDM: the 48-bit DEST:SRC:DEST model (see the header)
    const sd = ((s << 16) | d) >>> 0, ds = ((d << 16) | s) >>> 0;
    if (left) { r = sd >>> (32 - c); cfo = (sd >>> (48 - c)) & 1; }
    else { r = ds >>> (c - 16); cfo = (ds >>> (c - 17)) & 1; }
  }
  const mask = bits === 32 ? -1 : 0xffff;
  r &= mask;
  // for a count of 1 both rules say "the sign changed"; a 16-bit SHLD by exactly 16 gives OF = CF
  // on the AMD host, which we copy
  const of = left ? (bits === 16 && c === 16 ? cfo : ((r >>> (bits - 1)) & 1) ^ cfo) : ((r >>> (bits - 1)) ^ (r >>> (bits - 2))) & 1;
  oFlags = (cfo !== 0 ? CF : 0) | (of !== 0 ? OF : 0);
  oKind = K_RES;
  return r >>> 0;
}

function shxd(left: boolean, byCl: boolean): Handler {
  return (cpu, i) => {
    const c = (byCl ? cpu.r[1] : i.imm) & 31;
    if (i.opsz === 4) {
      const s = cpu.r[i.reg] >>> 0;
      if (i.mod === 3) {
        const r = dshift(left, 32, cpu.r[i.rm] >>> 0, s, c);
        cpu.r[i.rm] = r;
        commit(cpu, 2, r);
      } else {
        const off = cpu.ea(i);
        cpu.checkRmw(i.seg, off, 4);
        const r = dshift(left, 32, cpu.rd32(i.seg, off) >>> 0, s, c);
        cpu.wr32(i.seg, off, r);
        commit(cpu, 2, r);
      }
    } else {
      const s = cpu.r[i.reg] & 0xffff;
      if (i.mod === 3) {
        const r = dshift(left, 16, cpu.r[i.rm] & 0xffff, s, c);
        cpu.setReg16(i.rm, r);
        commit(cpu, 1, r);
      } else {
        const off = cpu.ea(i);
        cpu.checkRmw(i.seg, off, 2);
        const r = dshift(left, 16, cpu.rd16(i.seg, off), s, c);
        cpu.wr16(i.seg, off, r);
        commit(cpu, 1, r);
      }
    }
  };
}

// ---- the table

function grp2(byte: boolean, src: number, ops: string): OpDef {
  const members: Record<number, OpDef> = {};
  for (let op = 0; op < 8; op++) {
    members[op] = {
      name: SHIFT_NAMES[op], ops,
      exec: byte ? grp2b(op, src) : grp2v(op, src),
      cls: src === BY_CL ? 'shiftCl' : 'simple',
    };
  }
  return { name: 'grp2', group: group(members) };
}

export const table: OpTable = {
  0xc0: grp2(true, BY_IMM, 'Eb,Ib'),
  0xc1: grp2(false, BY_IMM, 'Ev,Ib'),
  0xd0: grp2(true, BY1, 'Eb,1'),
  0xd1: grp2(false, BY1, 'Ev,1'),
  0xd2: grp2(true, BY_CL, 'Eb,CL'),
  0xd3: grp2(false, BY_CL, 'Ev,CL'),
  0x0fa4: { name: 'shld', ops: 'Ev,Gv,Ib', exec: shxd(true, false) },
  0x0fa5: { name: 'shld', ops: 'Ev,Gv,CL', exec: shxd(true, true), cls: 'shiftCl' },
  0x0fac: { name: 'shrd', ops: 'Ev,Gv,Ib', exec: shxd(false, false) },
  0x0fad: { name: 'shrd', ops: 'Ev,Gv,CL', exec: shxd(false, true), cls: 'shiftCl' },
};
