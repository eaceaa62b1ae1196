// Differential tests of the ALU family (isa/alu.ts) against the host CPU.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dataArb, differential, flagsIn, haveNative, MEM_ESI, modrmReg, regsArb, requireNative } from '../../native/diff.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;
const reg = fc.nat({ max: 7 }).filter((r) => r !== 4); // not ESP (keeps the stack usable)
const anyReg = fc.nat({ max: 7 });

/** ALU op (0-7) register forms 00-03 + 16-bit prefix variants. */
const aluRegCase: fc.Arbitrary<NativeCase> = fc.record({
  op: fc.nat({ max: 7 }), form: fc.nat({ max: 3 }), o16: fc.boolean(), r1: reg, r2: anyReg.filter((r) => r !== 4), regs: regsArb, eflags: flagsIn(),
}).map(({ op, form, o16, r1, r2, regs, eflags }) => ({
  code: Uint8Array.from([...(o16 ? [0x66] : []), (op << 3) | form, modrmReg(r2, r1)]),
  regs, eflags, data: new Uint8Array(0x2000),
}));

const aluImmCase: fc.Arbitrary<NativeCase> = fc.record({
  op: fc.nat({ max: 7 }), opc: fc.constantFrom(0x80, 0x81, 0x83), o16: fc.boolean(), r: reg, imm: fc.nat({ max: 0xffffffff }), regs: regsArb, eflags: flagsIn(),
}).map(({ op, opc, o16, r, imm, regs, eflags }) => {
  const immBytes = opc === 0x81 ? (o16 ? [imm & 0xff, (imm >> 8) & 0xff] : [imm & 0xff, (imm >> 8) & 0xff, (imm >> 16) & 0xff, imm >>> 24]) : [imm & 0xff];
  return { code: Uint8Array.from([...(o16 ? [0x66] : []), opc, modrmReg(op, r), ...immBytes]), regs, eflags, data: new Uint8Array(0x2000) };
});

const aluMemCase: fc.Arbitrary<NativeCase> = fc.record({
  op: fc.nat({ max: 7 }), form: fc.nat({ max: 3 }), r: reg.filter((r) => r !== 6), disp: fc.integer({ min: -128, max: 124 }), regs: regsArb, data: dataArb, eflags: flagsIn(),
}).map(({ op, form, r, disp, regs, data, eflags }) => {
  const rr = regs.slice(); rr[6] = MEM_ESI;
  return { code: Uint8Array.from([(op << 3) | form, 0x46 | (r << 3), disp & 0xff]), regs: rr, eflags, data };
});

const incDecNegNot: fc.Arbitrary<NativeCase> = fc.record({
  kind: fc.constantFrom('inc', 'dec', 'neg', 'not', 'test'), o16: fc.boolean(), byte: fc.boolean(), r: reg, imm: fc.nat({ max: 0xffffffff }), regs: regsArb, eflags: flagsIn(),
}).map(({ kind, o16, byte, r, imm, regs, eflags }) => {
  const p = o16 ? [0x66] : [];
  let code: number[];
  switch (kind) {
    case 'inc': code = byte ? [0xfe, modrmReg(0, r)] : [0x40 + r]; break;
    case 'dec': code = byte ? [0xfe, modrmReg(1, r)] : [0x48 + r]; break;
    case 'neg': code = [byte ? 0xf6 : 0xf7, modrmReg(3, r)]; break;
    case 'not': code = [byte ? 0xf6 : 0xf7, modrmReg(2, r)]; break;
    default: code = byte ? [0xf6, modrmReg(0, r), imm & 0xff] : [0xf7, modrmReg(0, r), ...(o16 ? [imm & 0xff, (imm >> 8) & 0xff] : [imm & 0xff, (imm >> 8) & 0xff, (imm >> 16) & 0xff, imm >>> 24])];
  }
  return { code: Uint8Array.from([...p, ...code]), regs, eflags, data: new Uint8Array(0x2000) };
});

// AF is undefined after AND/OR/XOR/TEST (logic ops): compare it only for arithmetic ones.
const AF = 0x10;
function maskFor(c: NativeCase): number {
  const code = Array.from(c.code).filter((b, k) => !(k === 0 && b === 0x66));
  const op0 = code[0];
  let op = -1;
  if (op0 < 0x40 && (op0 & 7) < 6) op = op0 >> 3;
  else if (op0 >= 0x80 && op0 <= 0x83) op = (code[1] >> 3) & 7;
  const logic = op === 1 || op === 4 || op === 6 || op0 === 0x84 || op0 === 0x85 || op0 === 0xa8 || op0 === 0xa9 || ((op0 === 0xf6 || op0 === 0xf7) && ((code[1] >> 3) & 7) === 0);
  return logic ? 0xcd5 & ~AF : 0xcd5;
}

/** Memory operands straddling the end of the data region: RMW forms fault as writes, CMP as a read. */
const aluEdgeCase: fc.Arbitrary<NativeCase> = fc.record({
  opc: fc.constantFrom(0x01, 0x09, 0x11, 0x19, 0x21, 0x29, 0x31, 0x39, 0x87, 0x03), r: reg.filter((r) => r !== 6),
  back: fc.integer({ min: 1, max: 4 }), regs: regsArb, eflags: flagsIn(),
}).map(({ opc, r, back, regs, eflags }) => {
  const rr = regs.slice(); rr[6] = DATA_BASE + DATA_SIZE - back;
  return { code: Uint8Array.from([opc, 0x06 | (r << 3)]), regs: rr, eflags, data: new Uint8Array(DATA_SIZE) };
});

run('ALU family vs the host CPU', () => {
  it('page faults of read-modify-write operands report a write', () => { expect(differential(aluEdgeCase, 500, { flagMask: maskFor })).toEqual([]); });
  it('register forms (8/16/32-bit)', () => { expect(differential(aluRegCase, 3000, { flagMask: maskFor })).toEqual([]); });
  it('immediate group 80/81/83', () => { expect(differential(aluImmCase, 3000, { flagMask: maskFor })).toEqual([]); });
  it('memory operands [esi+disp8]', () => { expect(differential(aluMemCase, 2000, { flagMask: maskFor })).toEqual([]); });
  it('INC/DEC/NEG/NOT/TEST', () => { expect(differential(incDecNegNot, 2000, { flagMask: maskFor })).toEqual([]); });
});
