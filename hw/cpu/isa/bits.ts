/**
 * Instruction family: bit operations and condition-code moves.
 *
 * - BT/BTS/BTR/BTC Ev,Gv (0F A3 AB B3 BB) and group 8 (0F BA /4-/7, Ev,Ib). With a register
 *   operand the bit offset is taken modulo the operand size. With a memory operand and a
 *   register offset, the offset is a signed 16- or 32-bit number that may address memory beyond
 *   the operand (SDM vol. 2, BT): the word/dword at ea + (operand size) * (offset >> 4 or >> 5)
 *   (address-size wrap) is accessed, bit offset & 15 or & 31 of it. An immediate offset is taken
 *   modulo the operand size. CF = the selected bit (before the change); ZF is unaffected; OF, SF,
 *   AF and PF are undefined: we leave them unchanged (as the AMD test host does). BTS/BTR/BTC
 *   accept LOCK with memory and read it with write intent (a fault on it is a write fault, as on
 *   hardware); BT only reads.
 * - BSF/BSR (0F BC/BD). An F3 prefix is ignored as on a P6: they stay BSF/BSR, never
 *   TZCNT/LZCNT. A zero source sets ZF and leaves the destination unchanged (the SDM says
 *   "undefined"; AMD documents "unchanged", and this test host leaves it unchanged). A
 *   non-zero source clears ZF and writes the index. CF, OF, SF, AF, PF are undefined: as the AMD
 *   test host, we clear CF, OF, SF and AF and set PF from the index (PF = 1 for a zero source).
 * - BSWAP r32 (0F C8+r). With a 16-bit operand size the result is undefined: we clear the low
 *   16 bits (the low word of BSWAP of the zero-extended value), as this AMD test host does;
 *   the upper 16 bits are unchanged.
 * - SETcc Eb (0F 90-9F): 1 or 0; the ModRM reg field is ignored.
 * - CMOVcc Gv,Ev (0F 40-4F): the source is read (a memory operand can fault) even when the
 *   condition is false; then, in 32-bit code, the destination is left unchanged.
 *
 * Costs: BSF/BSR are 'bitscan'; everything else 'simple'.
 */
import type { Cpu } from '../cpu.ts';
import { ARITH, CC_NAMES, CF, materialize, PARITY, PF, testCC, ZF } from '../flags.ts';
import { group, type Handler, type Insn, type OpTable } from '../insn.ts';

const BT = 0, BTS = 1, BTR = 2, BTC = 3;

/** Applies a BT-family op to v at bit b (in range): returns the new value; the old bit in `lastBit`. */
let lastBit = 0;
function btVal(op: number, v: number, b: number): number {
  lastBit = (v >>> b) & 1;
  switch (op) {
    case BTS: return v | (1 << b);
    case BTR: return v & ~(1 << b);
    case BTC: return v ^ (1 << b);
    default: return v;
  }
}
function setCF(cpu: Cpu, bit: number): void {
  materialize(cpu);
  cpu.flags = (cpu.flags & ~CF) | bit;
}

/** BTx on the E operand with bit offset `off`; `fromReg` selects the memory displacement rule. */
function bitTest(cpu: Cpu, i: Insn, op: number, off: number, fromReg: boolean): void {
  if (i.opsz === 4) {
    const b = off & 31;
    if (i.mod === 3) {
      const r = btVal(op, cpu.r[i.rm], b);
      if (op !== BT) cpu.r[i.rm] = r;
      setCF(cpu, lastBit);
      return;
    }
    const a = ((cpu.ea(i) + (fromReg ? (off >> 5) * 4 : 0)) & i.adMask) >>> 0;
    if (op !== BT) cpu.checkRmw(i.seg, a, 4);
    const v = cpu.rd32(i.seg, a);
    const r = btVal(op, v, b);
    if (op !== BT) cpu.wr32(i.seg, a, r);
    setCF(cpu, lastBit);
  } else {
    const b = off & 15;
    if (i.mod === 3) {
      const r = btVal(op, cpu.r[i.rm] & 0xffff, b);
      if (op !== BT) cpu.setReg16(i.rm, r);
      setCF(cpu, lastBit);
      return;
    }
    const a = ((cpu.ea(i) + (fromReg ? ((off << 16) >> 20) * 2 : 0)) & i.adMask) >>> 0;
    if (op !== BT) cpu.checkRmw(i.seg, a, 2);
    const v = cpu.rd16(i.seg, a);
    const r = btVal(op, v, b);
    if (op !== BT) cpu.wr16(i.seg, a, r);
    setCF(cpu, lastBit);
  }
}

function btEvGv(op: number): Handler {
  return (cpu, i) => { bitTest(cpu, i, op, cpu.r[i.reg], true); };
}
function btEvIb(op: number): Handler {
  return (cpu, i) => { bitTest(cpu, i, op, i.imm, false); };
}

// ---- BSF / BSR

/** BSF/BSR flags: ZF = (source = 0); CF, OF, SF, AF cleared; PF from the index (1 for a zero source). */
function scanFlags(cpu: Cpu, n: number): void {
  cpu.flags = (materialize(cpu) & ~ARITH) | (n < 0 ? ZF | PF : PARITY[n] ? PF : 0);
}
const bsf: Handler = (cpu, i) => {
  const v = i.opsz === 4 ? cpu.readE32(i) : cpu.readE16(i);
  if (v === 0) { scanFlags(cpu, -1); return; }
  const n = 31 - Math.clz32(v & -v);
  if (i.opsz === 4) cpu.r[i.reg] = n; else cpu.setReg16(i.reg, n);
  scanFlags(cpu, n);
};
const bsr: Handler = (cpu, i) => {
  const v = i.opsz === 4 ? cpu.readE32(i) : cpu.readE16(i);
  if (v === 0) { scanFlags(cpu, -1); return; }
  const n = 31 - Math.clz32(v);
  if (i.opsz === 4) cpu.r[i.reg] = n; else cpu.setReg16(i.reg, n);
  scanFlags(cpu, n);
};

// ---- BSWAP, SETcc, CMOVcc

const bswap: Handler = (cpu, i) => {
  const n = i.opcode & 7;
  if (i.opsz === 2) { cpu.setReg16(n, 0); return; }
  const v = cpu.r[n];
  cpu.r[n] = (v << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24);
};
const setcc: Handler = (cpu, i) => { cpu.writeE8(i, testCC(cpu, i.opcode & 0xf) ? 1 : 0); };
const cmovcc: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    const v = cpu.readE32(i);
    if (testCC(cpu, i.opcode & 0xf)) cpu.r[i.reg] = v;
  } else {
    const v = cpu.readE16(i);
    if (testCC(cpu, i.opcode & 0xf)) cpu.setReg16(i.reg, v);
  }
};

// ---- the table

const NAMES = ['bt', 'bts', 'btr', 'btc'] as const;

export const table: OpTable = {
  0x0fa3: { name: 'bt', ops: 'Ev,Gv', exec: btEvGv(BT) },
  0x0fab: { name: 'bts', ops: 'Ev,Gv', exec: btEvGv(BTS), lockable: true },
  0x0fb3: { name: 'btr', ops: 'Ev,Gv', exec: btEvGv(BTR), lockable: true },
  0x0fbb: { name: 'btc', ops: 'Ev,Gv', exec: btEvGv(BTC), lockable: true },
  0x0fba: {
    name: 'grp8',
    group: group({
      4: { name: NAMES[BT], ops: 'Ev,Ib', exec: btEvIb(BT) },
      5: { name: NAMES[BTS], ops: 'Ev,Ib', exec: btEvIb(BTS), lockable: true },
      6: { name: NAMES[BTR], ops: 'Ev,Ib', exec: btEvIb(BTR), lockable: true },
      7: { name: NAMES[BTC], ops: 'Ev,Ib', exec: btEvIb(BTC), lockable: true },
    }),
  },
  0x0fbc: { name: 'bsf', ops: 'Gv,Ev', exec: bsf, cls: 'bitscan' },
  0x0fbd: { name: 'bsr', ops: 'Gv,Ev', exec: bsr, cls: 'bitscan' },
};
for (let n = 0; n < 8; n++) table[0x0fc8 + n] = { name: 'bswap', ops: 'Zv', exec: bswap };
for (let cc = 0; cc < 16; cc++) {
  table[0x0f90 + cc] = { name: 'set' + CC_NAMES[cc], ops: 'Eb', exec: setcc };
  table[0x0f40 + cc] = { name: 'cmov' + CC_NAMES[cc], ops: 'Gv,Ev', exec: cmovcc };
}
