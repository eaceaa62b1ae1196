// Differential tests of MUL/IMUL/DIV/IDIV (isa/muldiv.ts) against the host CPU: F6/F7 /4-/7 at
// 8/16/32 bits with register and [esi+disp8] operands, and the truncating IMUL forms 0F AF, 69
// and 6B at 16/32 bits. Dividends are biased so that most divisions fit (high part reduced
// modulo the divisor, or the sign extension of the low part) while zero divisors and quotient
// overflows (#DE, SIGFPE) still occur; a fixed list covers the IDIV range edges.
//
// Compared: registers, memory, the exception; flags CF and OF after MUL/IMUL (SF ZF AF PF are
// undefined), no arithmetic flag after DIV/IDIV (all undefined) unless it faulted, when the
// state before the instruction is compared whole.
//
// On an AMD host one more test compares every flag: our choices for the undefined ones follow
// what this AMD host does (documented in the isa file).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareResults, dataSeeded, differential, type DiffSpec, FLAGS_ALL, flagsIn, haveNative, MEM_ESI, modrmReg, regsArb, requireNative, val32 } from '../../native/diff.ts';
import { makeEmuMachine, runEmu } from '../../native/emu.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase, runNative } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;

/** Our undefined flags follow the AMD host's: compared in full only when the host is an AMD part. */
const amd = (() => { try { return readFileSync('/proc/cpuinfo', 'utf8').includes('AuthenticAMD'); } catch { return false; } })();
const CF = 0x1, DF = 0x400, OF = 0x800;
type Case = NativeCase & { mask: number };
const ZERO = new Uint8Array(DATA_SIZE);
const mask = (c: NativeCase) => (c as Case).mask;

function le(v: number, n: number): number[] {
  const a: number[] = [];
  for (let k = 0; k < n; k++) a.push((v >>> (8 * k)) & 0xff);
  return a;
}
function readData(d: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let k = n - 1; k >= 0; k--) v = v * 256 + d[at + k];
  return v;
}
function readReg(regs: number[], r: number, bits: number): number {
  if (bits === 8) return r < 4 ? regs[r] & 0xff : (regs[r - 4] >>> 8) & 0xff;
  return bits === 16 ? regs[r] & 0xffff : regs[r] >>> 0;
}
const toSigned = (v: bigint, bits: number) => BigInt.asIntN(bits, v);

/** Whether DIV (signed = false) or IDIV of the accumulator by d raises #DE. */
function divFaults(signed: boolean, bits: number, regs: number[], d: number): boolean {
  if (d === 0) return true;
  let n: bigint;
  if (bits === 8) n = BigInt(regs[0] & 0xffff);
  else if (bits === 16) n = (BigInt(regs[2] & 0xffff) << 16n) | BigInt(regs[0] & 0xffff);
  else n = (BigInt(regs[2] >>> 0) << 32n) | BigInt(regs[0] >>> 0);
  const dv = signed ? toSigned(BigInt(d), bits) : BigInt(d);
  if (signed) n = toSigned(n, bits * 2);
  const q = n / dv;
  return signed ? q < -(1n << BigInt(bits - 1)) || q >= 1n << BigInt(bits - 1) : q >= 1n << BigInt(bits);
}

/** F6/F7 /4-/7. `shape`: 0 random dividend, 1 high part reduced below the divisor, 2 sign-extended. */
const grp3Arb = (mem: boolean): fc.Arbitrary<Case> => fc.record({
  op: fc.integer({ min: 4, max: 7 }), size: fc.constantFrom(8, 16, 32), r: fc.nat({ max: 7 }),
  disp: fc.integer({ min: -128, max: 124 }), shape: fc.nat({ max: 2 }), regs: regsArb, eflags: flagsIn(),
  data: mem ? dataSeeded : fc.constant(ZERO),
}).map(({ op, size, r, disp, shape, regs, eflags, data }) => {
  const rr = regs.slice();
  const code: number[] = [];
  if (size === 16) code.push(0x66);
  code.push(size === 8 ? 0xf6 : 0xf7);
  if (mem) { rr[6] = MEM_ESI; code.push(0x46 | (op << 3), disp & 0xff); } else code.push(modrmReg(op, r));
  const src = () => (mem ? readData(data, 0x800 + disp, size / 8) : readReg(rr, r, size));
  if (op >= 6) {
    const d = src();
    if (shape === 1 && d !== 0) {
      if (size === 8) rr[0] = (rr[0] & ~0xff00) | ((((rr[0] >>> 8) & 0xff) % d) << 8);
      else if (size === 16) rr[2] = (rr[2] & ~0xffff) | ((rr[2] & 0xffff) % d);
      else rr[2] = (rr[2] >>> 0) % d;
    } else if (shape === 2) {
      if (size === 8) rr[0] = (rr[0] & ~0xff00) | (rr[0] & 0x80 ? 0xff00 : 0);
      else if (size === 16) rr[2] = (rr[2] & ~0xffff) | (rr[0] & 0x8000 ? 0xffff : 0);
      else rr[2] = rr[0] >> 31;
    }
  }
  const m = op < 6 ? CF | OF | DF : divFaults(op === 7, size, rr, src()) ? FLAGS_ALL : DF;
  return { code: Uint8Array.from(code), regs: rr.map((v) => v >>> 0), eflags, data, mask: m };
});

/** IMUL Gv,Ev (0F AF), Gv,Ev,Iz (69), Gv,Ev,Ibs (6B). */
const imulArb = (mem: boolean): fc.Arbitrary<Case> => fc.record({
  form: fc.constantFrom(0xaf, 0x69, 0x6b), o16: fc.boolean(), dst: fc.nat({ max: 7 }).filter((r) => r !== 4),
  r: fc.nat({ max: 7 }), disp: fc.integer({ min: -128, max: 124 }), imm: val32, regs: regsArb, eflags: flagsIn(),
  data: mem ? dataSeeded : fc.constant(ZERO),
}).map(({ form, o16, dst, r, disp, imm, regs, eflags, data }) => {
  const rr = regs.slice();
  const code: number[] = o16 ? [0x66] : [];
  code.push(...(form === 0xaf ? [0x0f, 0xaf] : [form]));
  if (mem) { rr[6] = MEM_ESI; code.push(0x46 | (dst << 3), disp & 0xff); } else code.push(modrmReg(dst, r));
  if (form === 0x69) code.push(...le(imm, o16 ? 2 : 4));
  else if (form === 0x6b) code.push(imm & 0xff);
  return { code: Uint8Array.from(code), regs: rr, eflags, data, mask: CF | OF | DF };
});

/** Runs fixed cases natively and on the emulator; returns the mismatches. */
function diffCases(cases: NativeCase[], spec: DiffSpec): string[] {
  const native = runNative(cases);
  const m = makeEmuMachine();
  const bad: string[] = [];
  cases.forEach((c, k) => { const d = compareResults(c, native[k], runEmu(m, c), spec); if (d) bad.push(d); });
  return bad;
}

const SP = DATA_BASE + 0x1000;
/** idiv/div by ecx with the given eax, edx, ecx (code picks the size). */
function divCase(code: number[], eax: number, edx: number, ecx: number): Case {
  const signed = ((code[code.length - 1] >> 3) & 7) === 7;
  const size = code[0] === 0xf6 ? 8 : code[0] === 0x66 ? 16 : 32;
  const regs = [eax >>> 0, ecx >>> 0, edx >>> 0, 0, SP, 0, 0, 0];
  const d = readReg(regs, 1, size);
  return { code: Uint8Array.from(code), regs, eflags: 0, data: new Uint8Array(DATA_SIZE), mask: divFaults(signed, size, regs, d) ? FLAGS_ALL : DF };
}
const IDIV8 = [0xf6, 0xf9], IDIV16 = [0x66, 0xf7, 0xf9], IDIV32 = [0xf7, 0xf9], DIV32 = [0xf7, 0xf1], DIV16 = [0x66, 0xf7, 0xf1];
const EDGES: Case[] = [
  divCase(IDIV8, 0xff80, 0, 1), divCase(IDIV8, 0x0080, 0, 0xff), divCase(IDIV8, 0xff80, 0, 0xff), divCase(IDIV8, 0x007f, 0, 1),
  divCase(IDIV8, 0x8000, 0, 0xff), divCase(IDIV8, 0xff7f, 0, 1),
  divCase(IDIV16, 0x8000, 0xffff, 1), divCase(IDIV16, 0x8000, 0, 0xffff), divCase(IDIV16, 0x8000, 0xffff, 0xffff), divCase(IDIV16, 0, 0x8000, 0xffff),
  divCase(IDIV32, 0x80000000, 0xffffffff, 1), divCase(IDIV32, 0x80000000, 0, 0xffffffff), divCase(IDIV32, 0x80000000, 0xffffffff, 0xffffffff),
  divCase(IDIV32, 0, 0x80000000, 0xffffffff), divCase(IDIV32, 0, 0x80000000, 0x80000000), divCase(IDIV32, 0xffffffff, 0x3fffffff, 0x80000000),
  divCase(IDIV32, 0, 0xc0000000, 0x80000000), divCase(IDIV32, 0x7fffffff, 0, 0xffffffff), divCase(IDIV32, 1, 0, 0x80000000),
  divCase(DIV32, 0xffffffff, 0xfffffffe, 0xffffffff), divCase(DIV32, 0xffffffff, 0xffffffff, 0xffffffff), divCase(DIV32, 0x12345678, 0, 0),
  divCase(DIV32, 0xffffffff, 0x7fffffff, 0x80000000), divCase(DIV32, 0, 1, 1), divCase(DIV32, 0xfffffffe, 0, 1),
  divCase(DIV16, 0xffff, 0xfffe, 0xffff), divCase(DIV16, 0, 0xffff, 0xffff),
];

run('MUL/IMUL/DIV/IDIV vs the host CPU', () => {
  it('F6/F7 /4-/7 register forms (8/16/32-bit)', () => {
    expect(differential(grp3Arb(false), 5000, { flagMask: mask })).toEqual([]);
  });
  it('F6/F7 /4-/7 memory forms [esi+disp8]', () => {
    expect(differential(grp3Arb(true), 2500, { flagMask: mask })).toEqual([]);
  });
  it('IMUL 0F AF / 69 / 6B register forms (16/32-bit)', () => {
    expect(differential(imulArb(false), 3000, { flagMask: mask })).toEqual([]);
  });
  it('IMUL 0F AF / 69 / 6B memory forms', () => {
    expect(differential(imulArb(true), 1500, { flagMask: mask })).toEqual([]);
  });
  it('DIV/IDIV range edges (-128, -32768, -2^31 quotients, overflow by one, #DE on zero)', () => {
    expect(diffCases(EDGES, { flagMask: mask })).toEqual([]);
  });
  it.runIf(amd)('undefined flags (SF ZF AF PF after MUL/IMUL, all after DIV/IDIV) as the AMD host sets them', () => {
    expect(differential(grp3Arb(false), 3000, { flagMask: FLAGS_ALL })).toEqual([]);
    expect(differential(imulArb(false), 2000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
});

describe('MUL/IMUL/DIV/IDIV: the edges on our CPU alone', () => {
  const m = makeEmuMachine();
  it('IDIV32 of -2^31 by 1 fits, by -1 raises #DE at the instruction', () => {
    const ok = runEmu(m, EDGES[10]);
    expect(ok.signal).toBe(0);
    expect(ok.regs[0]).toBe(0x80000000);
    const de = runEmu(m, EDGES[12]);
    expect(de.signal).toBe(8);
    expect(de.trapno).toBe(0);
    expect(de.regs[0]).toBe(0x80000000); // nothing written
  });
});
