/**
 * Instruction family: decimal arithmetic adjustments (DAA 27, DAS 2F, AAA 37, AAS 3F, AAM D4 ib,
 * AAD D5 ib), following the SDM's pseudo-code for current processors (P6 and later):
 *
 * - DAA/DAS: AL adjusted by 06 and/or 60. Defined: CF, AF, SF, ZF, PF. OF is undefined: we set
 *   it as the signed overflow of AL +/- the whole adjustment.
 * - AAA: AX <- AX + 106h (the carry of AL + 6 reaches AH, as on the P6, unlike the 8086's
 *   AL + 6, AH + 1), AAS: AX <- AX - 6, AH <- AH - 1 (that is, AX - 106h); then AL &= 0Fh.
 *   Defined: AF, CF. OF, SF, ZF and PF are undefined: we give those of the 16-bit addition
 *   (subtraction) of 106h, or of 0 when no adjustment is made, before AL is masked.
 * - AAM imm8: AH <- AL / imm8, AL <- AL mod imm8; #DE (vector 0) when imm8 = 0. AAD imm8:
 *   AL <- AL + AH * imm8, AH <- 0. Defined: SF, ZF, PF (from AL). OF, AF and CF are undefined:
 *   after AAM we clear them; after AAD we give those of the byte addition AL + (AH * imm8).
 *
 * Every undefined-flag choice above is what the AMD host of the differential tests does (the
 * tests compare them there when the host is an AMD part).
 *
 * Costs: 'simple', except AAM/AAD ('mul': they multiply or divide; no finer class exists yet).
 */
import type { Cpu } from '../cpu.ts';
import { AF, ARITH, CF, materialize, OF, OP_ADD, OP_LOGIC, OP_SUB, PARITY, PF, SF, ZF } from '../flags.ts';
import type { Handler, OpTable } from '../insn.ts';

/** SF, ZF, PF of a byte. */
function szp(v: number): number {
  return (v & 0x80 ? SF : 0) | (v === 0 ? ZF : 0) | (PARITY[v] ? PF : 0);
}

const daa: Handler = (cpu) => {
  const f = materialize(cpu);
  const old = cpu.r[0] & 0xff, oldCf = f & CF;
  let al = old, cf = 0, af = 0;
  if ((al & 0xf) > 9 || (f & AF) !== 0) {
    al = al + 6;
    cf = oldCf | (al > 0xff ? 1 : 0);
    al &= 0xff;
    af = AF;
  }
  if (old > 0x99 || oldCf !== 0) { al = (al + 0x60) & 0xff; cf = 1; } else cf = 0;
  cpu.setReg8(0, al);
  cpu.flags = (f & ~ARITH) | cf | af | szp(al) | ((~old & al & 0x80) !== 0 ? OF : 0);
};

const das: Handler = (cpu) => {
  const f = materialize(cpu);
  const old = cpu.r[0] & 0xff, oldCf = f & CF;
  let al = old, cf = 0, af = 0;
  if ((al & 0xf) > 9 || (f & AF) !== 0) {
    cf = oldCf | (al < 6 ? 1 : 0);
    al = (al - 6) & 0xff;
    af = AF;
  }
  if (old > 0x99 || oldCf !== 0) { al = (al - 0x60) & 0xff; cf = 1; }
  cpu.setReg8(0, al);
  cpu.flags = (f & ~ARITH) | cf | af | szp(al) | ((old & ~al & 0x80) !== 0 ? OF : 0);
};

const aaa: Handler = (cpu) => {
  const f = materialize(cpu);
  const ax = cpu.r[0] & 0xffff;
  const adj = (ax & 0xf) > 9 || (f & AF) !== 0 ? 0x106 : 0;
  const r = ax + adj;
  cpu.setReg16(0, r & 0xff0f);
  // SF ZF PF OF (undefined) as the 16-bit addition AX + adj, before AL is masked (the AMD host's)
  cpu.setLazy(OP_ADD, 1, ax, adj, r);
  cpu.flags = (cpu.flags & ~(AF | CF)) | (adj !== 0 ? AF | CF : 0);
  cpu.lazy = ARITH & ~(AF | CF);
};

const aas: Handler = (cpu) => {
  const f = materialize(cpu);
  const ax = cpu.r[0] & 0xffff;
  const adj = (ax & 0xf) > 9 || (f & AF) !== 0 ? 0x106 : 0;
  const r = ax - adj;
  cpu.setReg16(0, r & 0xff0f);
  // SF ZF PF OF (undefined) as the 16-bit subtraction AX - adj, before AL is masked (the AMD host's)
  cpu.setLazy(OP_SUB, 1, ax, adj, r);
  cpu.flags = (cpu.flags & ~(AF | CF)) | (adj !== 0 ? AF | CF : 0);
  cpu.lazy = ARITH & ~(AF | CF);
};

const aam: Handler = (cpu, i) => {
  const d = i.imm & 0xff;
  if (d === 0) cpu.raise(0);
  const al = cpu.r[0] & 0xff;
  const r = al % d;
  cpu.setReg16(0, (((al - r) / d) << 8) | r);
  cpu.setLazy(OP_LOGIC, 0, r, r, r);
};

const aad: Handler = (cpu, i) => {
  const al = cpu.r[0] & 0xff, p = (((cpu.r[0] >>> 8) & 0xff) * (i.imm & 0xff)) & 0xff;
  const r = (al + p) & 0xff;
  cpu.setReg16(0, r);
  cpu.setLazy(OP_ADD, 0, al, p, al + p);
};

export const table: OpTable = {
  0x27: { name: 'daa', exec: daa },
  0x2f: { name: 'das', exec: das },
  0x37: { name: 'aaa', exec: aaa },
  0x3f: { name: 'aas', exec: aas },
  0xd4: { name: 'aam', ops: 'Ib', exec: aam, cls: 'mul' },
  0xd5: { name: 'aad', ops: 'Ib', exec: aad, cls: 'mul' },
};
