// Differential tests of the bit family (isa/bits.ts) against the host CPU: BT/BTS/BTR/BTC with
// register offsets (register operands, and memory operands where the signed offset reaches
// beyond the operand, a few of them into the unmapped guard pages) and with imm8 (group 8),
// with and without LOCK; BSF/BSR without a prefix; BSWAP r32; SETcc; CMOVcc (including a
// memory source that faults while the condition is false).
//
// Compared: registers, memory, the exception, and the defined flags: BTx: CF, and ZF (which
// must not change); BSF/BSR: ZF; SETcc, CMOVcc, BSWAP: all (nothing may change). A faulting
// or #UD case is compared whole.
//
// Not differential (the modern host is not a P6 there): F3 0F BC/BD (TZCNT/LZCNT on the host,
// BSF/BSR on a P6) and BSWAP with a 16-bit operand size (undefined); see the second suite.
//
// On an AMD host one more test compares every flag: our choices for the undefined ones follow
// what this AMD host does (documented in the isa file).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dataSeeded, differential, FLAGS_ALL, flagsIn, haveNative, MEM_ESI, modrmReg, regsArb, requireNative, val32 } from '../../native/diff.ts';
import { makeEmuMachine, runEmu } from '../../native/emu.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;

/** Our undefined flags follow the AMD host's: compared in full only when the host is an AMD part. */
const amd = (() => { try { return readFileSync('/proc/cpuinfo', 'utf8').includes('AuthenticAMD'); } catch { return false; } })();
const CF = 0x1, ZF = 0x40, DF = 0x400;
type Case = NativeCase & { mask: number };
const ZERO = new Uint8Array(DATA_SIZE);
const mask = (c: NativeCase) => (c as Case).mask;
const reg = fc.nat({ max: 7 }).filter((r) => r !== 4);
const BT_OPS = [0xa3, 0xab, 0xb3, 0xbb] as const; // BT BTS BTR BTC

/** BTx Ev,Gv / Ev,Ib on registers. */
const btRegArb: fc.Arbitrary<Case> = fc.record({
  k: fc.nat({ max: 3 }), imm: fc.boolean(), o16: fc.boolean(), r: reg, src: fc.nat({ max: 7 }), ib: fc.nat({ max: 255 }),
  regs: regsArb, eflags: flagsIn(),
}).map(({ k, imm, o16, r, src, ib, regs, eflags }) => {
  const code = o16 ? [0x66, 0x0f] : [0x0f];
  if (imm) code.push(0xba, modrmReg(4 + k, r), ib); else code.push(BT_OPS[k], modrmReg(src, r));
  return { code: Uint8Array.from(code), regs, eflags, data: ZERO, mask: CF | ZF | DF };
});

/**
 * BTx on [esi+disp8] with a register offset (signed, reaching beyond the operand) or an imm8;
 * `where`: 0 in the data region, 1 past its end (fault), 2 before its start (fault).
 */
const btMemArb: fc.Arbitrary<Case> = fc.record({
  k: fc.nat({ max: 3 }), imm: fc.boolean(), o16: fc.boolean(), lock: fc.nat({ max: 3 }), src: reg.filter((r) => r !== 6),
  disp: fc.integer({ min: -128, max: 124 }), ib: fc.nat({ max: 255 }), where: fc.constantFrom(0, 0, 0, 0, 0, 0, 1, 2),
  off: fc.integer({ min: -0x700 * 8, max: 0x1700 * 8 - 1 }), regs: regsArb, eflags: flagsIn(), data: dataSeeded,
}).map(({ k, imm, o16, lock, src, disp, ib, where, off, regs, eflags, data }) => {
  const rr = regs.slice();
  rr[6] = MEM_ESI;
  const locked = lock === 0;
  const code: number[] = [];
  if (locked) code.push(0xf0);
  if (o16) code.push(0x66);
  code.push(0x0f);
  if (imm) code.push(0xba, 0x46 | ((4 + k) << 3), disp & 0xff, ib);
  else {
    code.push(BT_OPS[k], 0x46 | (src << 3), disp & 0xff);
    if (o16) {
      const o = where === 1 ? 0x7ff8 : where === 2 ? -0x7ff8 : Math.min(off, 0x7fff);
      rr[src] = (rr[src] & ~0xffff) | (o & 0xffff);
      if (where === 1) rr[6] = DATA_BASE + 0x1800; // 0x1800 + 0xfff = past the end
    } else rr[src] = where === 1 ? 0x2000 * 8 + off : where === 2 ? -0x1000 * 8 - (off & 0xfff) : off;
  }
  const ud = locked && k === 0;
  const faults = ud || (!imm && where !== 0);
  return { code: Uint8Array.from(code), regs: rr.map((v) => v >>> 0), eflags, data, mask: faults ? FLAGS_ALL : CF | ZF | DF };
});

/** Values for the bit scans: powers of two and their neighbours, small numbers, zero, random. */
const scanVal = fc.oneof(val32, fc.nat({ max: 31 }).map((b) => (1 << b) >>> 0), fc.tuple(fc.nat({ max: 31 }), val32).map(([b, v]) => (v & ~((1 << b) - 1)) >>> 0));

/** BSF/BSR Gv,Ev (no prefix), register and memory sources. */
const bsArb: fc.Arbitrary<Case> = fc.record({
  bsr: fc.boolean(), o16: fc.boolean(), mem: fc.boolean(), dst: reg, r: fc.nat({ max: 7 }), v: scanVal,
  disp: fc.integer({ min: -128, max: 124 }), regs: regsArb, eflags: flagsIn(), data: dataSeeded,
}).map(({ bsr, o16, mem, dst, r, v, disp, regs, eflags, data }) => {
  const rr = regs.slice();
  const code = o16 ? [0x66, 0x0f] : [0x0f];
  code.push(bsr ? 0xbd : 0xbc);
  const d = data.slice();
  if (mem) {
    rr[6] = MEM_ESI;
    code.push(0x46 | (dst << 3), disp & 0xff);
    for (let k = 0; k < 4; k++) d[0x800 + disp + k] = (v >>> (8 * k)) & 0xff;
  } else {
    code.push(modrmReg(dst, r));
    if (r !== 4) rr[r] = v;
  }
  return { code: Uint8Array.from(code), regs: rr, eflags, data: d, mask: ZF | DF };
});

const bswapArb: fc.Arbitrary<Case> = fc.record({ r: reg, regs: regsArb, eflags: flagsIn() }).map(({ r, regs, eflags }) => ({
  code: Uint8Array.from([0x0f, 0xc8 + r]), regs, eflags, data: ZERO, mask: FLAGS_ALL,
}));

const setccArb: fc.Arbitrary<Case> = fc.record({
  cc: fc.nat({ max: 15 }), mem: fc.boolean(), r: fc.nat({ max: 7 }), regField: fc.nat({ max: 7 }), disp: fc.integer({ min: -128, max: 127 }),
  regs: regsArb, eflags: fc.nat({ max: 0xfff }).map((f) => f & 0x8d5), data: dataSeeded,
}).map(({ cc, mem, r, regField, disp, regs, eflags, data }) => {
  const rr = regs.slice();
  const code = [0x0f, 0x90 + cc];
  if (mem) { rr[6] = MEM_ESI; code.push(0x46 | (regField << 3), disp & 0xff); } else code.push(modrmReg(regField, r));
  return { code: Uint8Array.from(code), regs: rr, eflags, data, mask: FLAGS_ALL };
});

/** CMOVcc Gv,Ev; `fault` puts the memory source in the unmapped page after the data region. */
const cmovArb: fc.Arbitrary<Case> = fc.record({
  cc: fc.nat({ max: 15 }), o16: fc.boolean(), mem: fc.boolean(), fault: fc.constantFrom(false, false, false, true),
  dst: reg, r: fc.nat({ max: 7 }), disp: fc.integer({ min: -128, max: 124 }), regs: regsArb,
  eflags: fc.nat({ max: 0xfff }).map((f) => f & 0x8d5), data: dataSeeded,
}).map(({ cc, o16, mem, fault, dst, r, disp, regs, eflags, data }) => {
  const rr = regs.slice();
  const code = o16 ? [0x66, 0x0f] : [0x0f];
  code.push(0x40 + cc);
  if (mem) {
    rr[6] = fault ? DATA_BASE + DATA_SIZE + 0x100 : MEM_ESI;
    code.push(0x46 | (dst << 3), disp & 0xff);
  } else code.push(modrmReg(dst, r));
  return { code: Uint8Array.from(code), regs: rr, eflags, data, mask: FLAGS_ALL };
});

run('bit family vs the host CPU', () => {
  it('BT/BTS/BTR/BTC register forms (Ev,Gv and group 8 Ev,Ib; 16/32-bit)', () => {
    expect(differential(btRegArb, 4000, { flagMask: mask })).toEqual([]);
  });
  it('BT/BTS/BTR/BTC memory forms: signed register offsets beyond the operand, imm8, LOCK, faults', () => {
    expect(differential(btMemArb, 4000, { flagMask: mask })).toEqual([]);
  });
  it('BSF/BSR (16/32-bit, register and memory, zero sources)', () => {
    expect(differential(bsArb, 4000, { flagMask: mask })).toEqual([]);
  });
  it('BSWAP r32', () => {
    expect(differential(bswapArb, 1000, { flagMask: mask })).toEqual([]);
  });
  it('SETcc (all 16 conditions, register and memory)', () => {
    expect(differential(setccArb, 3000, { flagMask: mask })).toEqual([]);
  });
  it('CMOVcc (16/32-bit, register and memory, a faulting source with a false condition)', () => {
    expect(differential(cmovArb, 4000, { flagMask: mask })).toEqual([]);
  });
  it.runIf(amd)('undefined flags (after BTx and BSF/BSR) as the AMD host sets them', () => {
    expect(differential(btRegArb, 2000, { flagMask: FLAGS_ALL })).toEqual([]);
    expect(differential(btMemArb, 2000, { flagMask: FLAGS_ALL })).toEqual([]);
    expect(differential(bsArb, 3000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
});

/** The P6 definition of BSF/BSR: index of the lowest/highest set bit, or ZF = 1 and no write. */
function p6Scan(bsr: boolean, v: number, old: number, bits: number): { dst: number; zf: number } {
  v = bits === 16 ? v & 0xffff : v >>> 0;
  if (v === 0) return { dst: old, zf: 1 };
  let n = 0;
  if (bsr) { n = bits - 1; while (((v >>> n) & 1) === 0) n--; } else { while (((v >>> n) & 1) === 0) n++; }
  return { dst: bits === 16 ? ((old & ~0xffff) | n) >>> 0 : n, zf: 0 };
}

describe('bit family: P6 definitions the host does not share', () => {
  const m = makeEmuMachine();
  const SP = DATA_BASE + 0x1000;

  it('F3 0F BC/BD are BSF/BSR (not TZCNT/LZCNT), with 16- and 32-bit operands', () => {
    const cases = fc.sample(fc.record({ bsr: fc.boolean(), o16: fc.boolean(), v: scanVal, old: val32, flags: flagsIn() }), { seed: 42, numRuns: 3000 });
    let zeros = 0;
    for (const { bsr, o16, v, old, flags } of cases) {
      // [66] F3 0F BC/BD C1: bsf/bsr eax, ecx
      const code = [...(o16 ? [0x66] : []), 0xf3, 0x0f, bsr ? 0xbd : 0xbc, 0xc1];
      const r = runEmu(m, { code: Uint8Array.from(code), regs: [old, v, 0, 0, SP, 0, 0, 0], eflags: flags, data: new Uint8Array(DATA_SIZE) });
      const want = p6Scan(bsr, v, old, o16 ? 16 : 32);
      if ((o16 ? v & 0xffff : v) === 0) zeros++;
      expect(r.signal).toBe(0);
      expect({ eax: r.regs[0], zf: (r.eflags >> 6) & 1 }).toEqual({ eax: want.dst, zf: want.zf });
    }
    expect(zeros).toBeGreaterThan(20); // the zero-source rule was exercised
  });

  it('BSWAP with a 16-bit operand size clears the low word (our choice for an undefined result)', () => {
    const r = runEmu(m, { code: Uint8Array.from([0x66, 0x0f, 0xcb]), regs: [0, 0, 0, 0x11223344, SP, 0, 0, 0], eflags: 0, data: new Uint8Array(DATA_SIZE) });
    expect(r.regs[3]).toBe(0x11220000);
  });

  it('LOCK on a register-form BTS is #UD', () => {
    const r = runEmu(m, { code: Uint8Array.from([0xf0, 0x0f, 0xab, 0xc8]), regs: [0, 0, 0, 0, SP, 0, 0, 0], eflags: 0, data: new Uint8Array(DATA_SIZE) });
    expect(r.signal).toBe(4);
    expect(r.trapno).toBe(6);
  });
});
