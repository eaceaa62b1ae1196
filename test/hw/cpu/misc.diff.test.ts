// Differential tests of the flag moves and odds and ends (isa/misc.ts) against the host CPU:
// sequences of LAHF SAHF CLC STC CMC CLD STD SALC (after an ALU op, so the flags they read may
// still be lazy in our core), XLAT with every usable segment override (FS is null in the
// harness: #GP) and with a 16-bit address size (a #PF in the unmapped low memory), and BOUND at
// 16/32 bits with indices at and around both bounds (#BR = vector 5, SIGSEGV).
//
// Compared: registers, memory, the exception, and every arithmetic flag and DF (all are defined
// here: the instructions either set a flag or leave it alone).
//
// Not differential: BOUND with a register operand (#UD on a P6) is an EVEX prefix on this
// AVX-512 host, so it is checked on our CPU alone.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dataSeeded, differential, FLAGS_ALL, flagsIn, haveNative, MEM_ESI, regsArb, requireNative, val32 } from '../../native/diff.ts';
import { makeEmuMachine, runEmu } from '../../native/emu.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;
const ZERO = new Uint8Array(DATA_SIZE);

// lahf sahf clc stc cmc cld std salc
const SIMPLE = [0x9f, 0x9e, 0xf8, 0xf9, 0xf5, 0xfc, 0xfd, 0xd6];
// add eax,ecx / sub ebx,edx / inc esi / and eax,ebx / dec ah / cmp ecx,edi / (none)
const PRE = [[0x01, 0xc8], [0x29, 0xd3], [0x46], [0x21, 0xd8], [0xfe, 0xcc], [0x39, 0xf9], []];

const flagSeqArb: fc.Arbitrary<NativeCase> = fc.record({
  pre: fc.nat({ max: PRE.length - 1 }), ops: fc.array(fc.constantFrom(...SIMPLE), { minLength: 1, maxLength: 5 }),
  regs: regsArb, eflags: flagsIn(true),
}).map(({ pre, ops, regs, eflags }) => ({ code: Uint8Array.from([...PRE[pre], ...ops]), regs, eflags, data: ZERO }));

const SEG_PREFIXES = [[], [0x26], [0x2e], [0x36], [0x3e], [0x64]];
const xlatArb: fc.Arbitrary<NativeCase> = fc.record({
  seg: fc.nat({ max: SEG_PREFIXES.length - 1 }), a16: fc.nat({ max: 9 }).map((n) => n === 0), base: fc.nat({ max: DATA_SIZE - 256 }),
  regs: regsArb, eflags: flagsIn(), data: dataSeeded,
}).map(({ seg, a16, base, regs, eflags, data }) => {
  const rr = regs.slice();
  rr[3] = DATA_BASE + base;
  return { code: Uint8Array.from([...SEG_PREFIXES[seg], ...(a16 ? [0x67] : []), 0xd7]), regs: rr, eflags, data };
});

/** BOUND Gv, [esi+disp8]: bounds written into the data; the index at, next to, or away from them. */
const boundArb: fc.Arbitrary<NativeCase> = fc.record({
  o16: fc.boolean(), reg: fc.nat({ max: 7 }).filter((r) => r !== 4 && r !== 6), disp: fc.integer({ min: -128, max: 120 }),
  lo: val32, hi: val32, pick: fc.nat({ max: 7 }), idx: val32, regs: regsArb, eflags: flagsIn(), data: dataSeeded,
}).map(({ o16, reg, disp, lo, hi, pick, idx, regs, eflags, data }) => {
  const rr = regs.slice();
  rr[6] = MEM_ESI;
  const n = o16 ? 2 : 4, d = data.slice(), at = 0x800 + disp;
  for (let k = 0; k < n; k++) { d[at + k] = (lo >>> (8 * k)) & 0xff; d[at + n + k] = (hi >>> (8 * k)) & 0xff; }
  const v = [lo, hi, lo - 1, hi + 1, lo + 1, hi - 1, idx, idx][pick] >>> 0;
  rr[reg] = o16 ? ((rr[reg] & ~0xffff) | (v & 0xffff)) >>> 0 : v;
  return { code: Uint8Array.from([...(o16 ? [0x66] : []), 0x62, 0x46 | (reg << 3), disp & 0xff]), regs: rr, eflags, data: d };
});

run('misc family vs the host CPU', () => {
  it('LAHF SAHF CLC STC CMC CLD STD SALC sequences after ALU ops', () => {
    expect(differential(flagSeqArb, 5000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
  it('XLAT with segment overrides and 16-bit addressing', () => {
    expect(differential(xlatArb, 3000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
  it('BOUND (16/32-bit; in range, at the bounds, #BR outside)', () => {
    expect(differential(boundArb, 4000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
});

describe('misc family on our CPU alone', () => {
  const m = makeEmuMachine();
  const SP = DATA_BASE + 0x1000;
  it('BOUND with a register operand is #UD', () => {
    const r = runEmu(m, { code: Uint8Array.from([0x62, 0xc1]), regs: [0, 0, 0, 0, SP, 0, 0, 0], eflags: 0, data: ZERO });
    expect([r.signal, r.trapno]).toEqual([4, 6]);
  });
  it('BOUND out of range raises #BR (vector 5) at the instruction, reported as SIGSEGV', () => {
    const d = new Uint8Array(DATA_SIZE);
    d[0x800] = 10; d[0x804] = 20; // bounds 10..20
    const r = runEmu(m, { code: Uint8Array.from([0x62, 0x06]), regs: [21, 0, 0, 0, SP, 0, MEM_ESI, 0], eflags: 0, data: d });
    expect([r.signal, r.trapno, r.err]).toEqual([11, 5, 0]);
    const ok = runEmu(m, { code: Uint8Array.from([0x62, 0x06]), regs: [20, 0, 0, 0, SP, 0, MEM_ESI, 0], eflags: 0, data: d });
    expect(ok.signal).toBe(0);
  });
});
