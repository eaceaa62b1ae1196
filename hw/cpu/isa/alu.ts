/**
 * Instruction family: the eight classic ALU operations (ADD OR ADC SBB AND SUB XOR CMP) in all
 * their encodings, TEST, INC/DEC, NOT/NEG, and the group tables 80-83, F6/F7 and FE/FF, which
 * gather members from muldiv.ts, control.ts, far.ts and stack.ts.
 */
import type { Cpu } from '../cpu.ts';
import { OP_ADC, OP_ADD, OP_LOGIC, OP_SBB, OP_SUB, CF } from '../flags.ts';
import { group, type Handler, type Insn, type OpDef, type OpTable } from '../insn.ts';
import { grp5Near } from './control.ts';
import { aluFast32 } from './fast.ts';
import { grp5Far } from './far.ts';
import { grp3b, grp3v } from './muldiv.ts';
import { grp5Stack } from './stack.ts';

export const ALU_NAMES = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'] as const;
const CMP = 7;

/** Computes a op b at size sz (0/1/2), records the lazy flags, returns the result. */
export function alu(cpu: Cpu, op: number, sz: number, a: number, b: number): number {
  let r: number;
  switch (op) {
    case 0: r = a + b; cpu.setLazy(OP_ADD, sz, a, b, r); break;
    case 1: r = a | b; cpu.setLazy(OP_LOGIC, sz, a, b, r); break;
    case 2: { const c = cpu.getCF(); r = a + b + c; cpu.setLazy(c ? OP_ADC : OP_ADD, sz, a, b, r); break; }
    case 3: { const c = cpu.getCF(); r = a - b - c; cpu.setLazy(c ? OP_SBB : OP_SUB, sz, a, b, r); break; }
    case 4: r = a & b; cpu.setLazy(OP_LOGIC, sz, a, b, r); break;
    case 6: r = a ^ b; cpu.setLazy(OP_LOGIC, sz, a, b, r); break;
    default: r = a - b; cpu.setLazy(OP_SUB, sz, a, b, r); break; // SUB, CMP
  }
  return r | 0;
}

/** Op Eb, (Gb | imm): `src` picks the second operand. */
function aluEb(op: number, src: (cpu: Cpu, i: Insn) => number): Handler {
  return (cpu, i) => {
    const b = src(cpu, i);
    if (i.mod === 3) {
      const r = alu(cpu, op, 0, cpu.getReg8(i.rm), b);
      if (op !== CMP) cpu.setReg8(i.rm, r);
    } else {
      const off = cpu.ea(i);
      if (op !== CMP) cpu.checkRmw(i.seg, off, 1);
      const r = alu(cpu, op, 0, cpu.rd8(i.seg, off), b);
      if (op !== CMP) cpu.wr8(i.seg, off, r);
    }
  };
}

/** Op Ev, (Gv | imm) at the operand size. */
function aluEv(op: number, src: (cpu: Cpu, i: Insn) => number): Handler {
  return (cpu, i) => {
    const b = src(cpu, i);
    if (i.opsz === 4) {
      if (i.mod === 3) {
        const r = alu(cpu, op, 2, cpu.r[i.rm], b);
        if (op !== CMP) cpu.r[i.rm] = r;
      } else {
        const off = cpu.ea(i);
        if (op !== CMP) cpu.checkRmw(i.seg, off, 4);
        const r = alu(cpu, op, 2, cpu.rd32(i.seg, off), b);
        if (op !== CMP) cpu.wr32(i.seg, off, r);
      }
    } else if (i.mod === 3) {
      const r = alu(cpu, op, 1, cpu.r[i.rm] & 0xffff, b & 0xffff);
      if (op !== CMP) cpu.setReg16(i.rm, r);
    } else {
      const off = cpu.ea(i);
      if (op !== CMP) cpu.checkRmw(i.seg, off, 2);
      const r = alu(cpu, op, 1, cpu.rd16(i.seg, off), b & 0xffff);
      if (op !== CMP) cpu.wr16(i.seg, off, r);
    }
  };
}

const srcG8 = (cpu: Cpu, i: Insn) => cpu.getReg8(i.reg);
const srcGv = (cpu: Cpu, i: Insn) => cpu.r[i.reg];
const srcImm = (_cpu: Cpu, i: Insn) => i.imm;

/** Op Gb, Eb and Op Gv, Ev (register destination). */
function aluGb(op: number): Handler {
  return (cpu, i) => {
    const r = alu(cpu, op, 0, cpu.getReg8(i.reg), cpu.readE8(i));
    if (op !== CMP) cpu.setReg8(i.reg, r);
  };
}
function aluGv(op: number): Handler {
  return (cpu, i) => {
    if (i.opsz === 4) {
      const r = alu(cpu, op, 2, cpu.r[i.reg], cpu.readE32(i));
      if (op !== CMP) cpu.r[i.reg] = r;
    } else {
      const r = alu(cpu, op, 1, cpu.r[i.reg] & 0xffff, cpu.readE16(i));
      if (op !== CMP) cpu.setReg16(i.reg, r);
    }
  };
}
function aluAL(op: number): Handler {
  return (cpu, i) => {
    const r = alu(cpu, op, 0, cpu.r[0] & 0xff, i.imm & 0xff);
    if (op !== CMP) cpu.setReg8(0, r);
  };
}
function aluAX(op: number): Handler {
  return (cpu, i) => {
    if (i.opsz === 4) {
      const r = alu(cpu, op, 2, cpu.r[0], i.imm);
      if (op !== CMP) cpu.r[0] = r;
    } else {
      const r = alu(cpu, op, 1, cpu.r[0] & 0xffff, i.imm & 0xffff);
      if (op !== CMP) cpu.setReg16(0, r);
    }
  };
}

// ---- TEST
const testEbGb: Handler = (cpu, i) => { alu(cpu, 4, 0, cpu.readE8(i), cpu.getReg8(i.reg)); };
const testEvGv: Handler = (cpu, i) => {
  if (i.opsz === 4) alu(cpu, 4, 2, cpu.readE32(i), cpu.r[i.reg]);
  else alu(cpu, 4, 1, cpu.readE16(i), cpu.r[i.reg] & 0xffff);
};
const testEbIb: Handler = (cpu, i) => { alu(cpu, 4, 0, cpu.readE8(i), i.imm); };
const testEvIz: Handler = (cpu, i) => {
  if (i.opsz === 4) alu(cpu, 4, 2, cpu.readE32(i), i.imm);
  else alu(cpu, 4, 1, cpu.readE16(i), i.imm & 0xffff);
};

// ---- INC/DEC: like ADD/SUB 1 but CF is kept
function incdec(cpu: Cpu, sz: number, a: number, dec: boolean): number {
  const cf = cpu.getCF();
  const r = dec ? a - 1 : a + 1;
  cpu.setLazy(dec ? OP_SUB : OP_ADD, sz, a, 1, r);
  cpu.flags = (cpu.flags & ~CF) | cf;
  cpu.lazy &= ~CF;
  return r | 0;
}
function incdecReg(dec: boolean): Handler {
  return (cpu, i) => {
    const n = i.opcode & 7;
    if (i.opsz === 4) cpu.r[n] = incdec(cpu, 2, cpu.r[n], dec);
    else cpu.setReg16(n, incdec(cpu, 1, cpu.r[n] & 0xffff, dec));
  };
}
function incdecEb(dec: boolean): Handler {
  return (cpu, i) => {
    if (i.mod === 3) cpu.setReg8(i.rm, incdec(cpu, 0, cpu.getReg8(i.rm), dec));
    else { const off = cpu.ea(i); cpu.checkRmw(i.seg, off, 1); cpu.wr8(i.seg, off, incdec(cpu, 0, cpu.rd8(i.seg, off), dec)); }
  };
}
function incdecEv(dec: boolean): Handler {
  return (cpu, i) => {
    if (i.mod === 3) {
      if (i.opsz === 4) cpu.r[i.rm] = incdec(cpu, 2, cpu.r[i.rm], dec);
      else cpu.setReg16(i.rm, incdec(cpu, 1, cpu.r[i.rm] & 0xffff, dec));
    } else {
      const off = cpu.ea(i);
      cpu.checkRmw(i.seg, off, i.opsz);
      if (i.opsz === 4) cpu.wr32(i.seg, off, incdec(cpu, 2, cpu.rd32(i.seg, off), dec));
      else cpu.wr16(i.seg, off, incdec(cpu, 1, cpu.rd16(i.seg, off), dec));
    }
  };
}

// ---- NOT / NEG
const notEb: Handler = (cpu, i) => {
  if (i.mod === 3) cpu.setReg8(i.rm, ~cpu.getReg8(i.rm));
  else { const off = cpu.ea(i); cpu.checkRmw(i.seg, off, 1); cpu.wr8(i.seg, off, ~cpu.rd8(i.seg, off)); }
};
const notEv: Handler = (cpu, i) => {
  if (i.mod === 3) { if (i.opsz === 4) cpu.r[i.rm] = ~cpu.r[i.rm]; else cpu.setReg16(i.rm, ~cpu.r[i.rm]); }
  else {
    const off = cpu.ea(i);
    cpu.checkRmw(i.seg, off, i.opsz);
    if (i.opsz === 4) cpu.wr32(i.seg, off, ~cpu.rd32(i.seg, off)); else cpu.wr16(i.seg, off, ~cpu.rd16(i.seg, off));
  }
};
function neg(cpu: Cpu, sz: number, a: number): number {
  const r = -a | 0;
  cpu.setLazy(OP_SUB, sz, 0, a, r);
  return r;
}
const negEb: Handler = (cpu, i) => {
  if (i.mod === 3) cpu.setReg8(i.rm, neg(cpu, 0, cpu.getReg8(i.rm)));
  else { const off = cpu.ea(i); cpu.checkRmw(i.seg, off, 1); cpu.wr8(i.seg, off, neg(cpu, 0, cpu.rd8(i.seg, off))); }
};
const negEv: Handler = (cpu, i) => {
  if (i.mod === 3) {
    if (i.opsz === 4) cpu.r[i.rm] = neg(cpu, 2, cpu.r[i.rm]);
    else cpu.setReg16(i.rm, neg(cpu, 1, cpu.r[i.rm] & 0xffff));
  } else {
    const off = cpu.ea(i);
    cpu.checkRmw(i.seg, off, i.opsz);
    if (i.opsz === 4) cpu.wr32(i.seg, off, neg(cpu, 2, cpu.rd32(i.seg, off)));
    else cpu.wr16(i.seg, off, neg(cpu, 1, cpu.rd16(i.seg, off)));
  }
};

// ---- the table
export const table: OpTable = {};

for (let op = 0; op < 8; op++) {
  const name = ALU_NAMES[op];
  const lockable = op !== CMP;
  const base = op << 3;
  table[base] = { name, ops: 'Eb,Gb', exec: aluEb(op, srcG8), lockable };
  table[base + 1] = { name, ops: 'Ev,Gv', exec: aluEv(op, srcGv), lockable, fast32: aluFast32(op, 'EG') };
  table[base + 2] = { name, ops: 'Gb,Eb', exec: aluGb(op) };
  table[base + 3] = { name, ops: 'Gv,Ev', exec: aluGv(op), fast32: aluFast32(op, 'GE') };
  table[base + 4] = { name, ops: 'AL,Ib', exec: aluAL(op) };
  table[base + 5] = { name, ops: 'eAX,Iz', exec: aluAX(op), fast32: aluFast32(op, 'AI') };
}

const g80: Record<number, OpDef> = {}, g81: Record<number, OpDef> = {}, g83: Record<number, OpDef> = {};
for (let op = 0; op < 8; op++) {
  const name = ALU_NAMES[op], lockable = op !== CMP;
  g80[op] = { name, ops: 'Eb,Ib', exec: aluEb(op, srcImm), lockable };
  g81[op] = { name, ops: 'Ev,Iz', exec: aluEv(op, srcImm), lockable, fast32: aluFast32(op, 'EI') };
  g83[op] = { name, ops: 'Ev,Ibs', exec: aluEv(op, srcImm), lockable, fast32: aluFast32(op, 'EI') };
}
table[0x80] = { name: 'grp1', group: group(g80) };
table[0x81] = { name: 'grp1', group: group(g81) };
table[0x82] = { name: 'grp1', group: group(g80) }; // an alias of 80 outside 64-bit mode
table[0x83] = { name: 'grp1', group: group(g83) };

table[0x84] = { name: 'test', ops: 'Eb,Gb', exec: testEbGb };
table[0x85] = { name: 'test', ops: 'Ev,Gv', exec: testEvGv };
table[0xa8] = { name: 'test', ops: 'AL,Ib', exec: (cpu, i) => { alu(cpu, 4, 0, cpu.r[0] & 0xff, i.imm); } };
table[0xa9] = {
  name: 'test', ops: 'eAX,Iz',
  exec: (cpu, i) => { if (i.opsz === 4) alu(cpu, 4, 2, cpu.r[0], i.imm); else alu(cpu, 4, 1, cpu.r[0] & 0xffff, i.imm & 0xffff); },
};

for (let n = 0; n < 8; n++) {
  table[0x40 + n] = { name: 'inc', ops: 'Zv', exec: incdecReg(false) };
  table[0x48 + n] = { name: 'dec', ops: 'Zv', exec: incdecReg(true) };
}

table[0xf6] = {
  name: 'grp3',
  group: group({
    0: { name: 'test', ops: 'Eb,Ib', exec: testEbIb },
    1: { name: 'test', ops: 'Eb,Ib', exec: testEbIb }, // undocumented alias of /0
    2: { name: 'not', ops: 'Eb', exec: notEb, lockable: true },
    3: { name: 'neg', ops: 'Eb', exec: negEb, lockable: true },
  }, grp3b),
};
table[0xf7] = {
  name: 'grp3',
  group: group({
    0: { name: 'test', ops: 'Ev,Iz', exec: testEvIz },
    1: { name: 'test', ops: 'Ev,Iz', exec: testEvIz },
    2: { name: 'not', ops: 'Ev', exec: notEv, lockable: true },
    3: { name: 'neg', ops: 'Ev', exec: negEv, lockable: true },
  }, grp3v),
};
table[0xfe] = {
  name: 'grp4',
  group: group({
    0: { name: 'inc', ops: 'Eb', exec: incdecEb(false), lockable: true },
    1: { name: 'dec', ops: 'Eb', exec: incdecEb(true), lockable: true },
  }),
};
table[0xff] = {
  name: 'grp5',
  group: group({
    0: { name: 'inc', ops: 'Ev', exec: incdecEv(false), lockable: true },
    1: { name: 'dec', ops: 'Ev', exec: incdecEv(true), lockable: true },
  }, grp5Near, grp5Far, grp5Stack),
};
