// Differential tests of XADD, CMPXCHG and CMPXCHG8B (isa/atomic.ts) against the host CPU, at
// 8/16/32 bits, with register and [esi+disp8] operands, with and without LOCK (LOCK on a
// register form is #UD), with the comparisons biased to succeed half the time, and with memory
// operands that fault: in the unmapped page after the data region (a write fault: the operand is
// read with write intent) and, for CMPXCHG8B, a qword straddling the end of the region (nothing
// may be written). CMPXCHG8B with a register operand is #UD.
//
// Compared: registers, memory, the exception and all arithmetic flags (all are defined: XADD and
// CMPXCHG set them as ADD and CMP; CMPXCHG8B changes only ZF).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dataSeeded, differential, FLAGS_ALL, flagsIn, haveNative, MEM_ESI, modrmReg, regsArb, requireNative } from '../../native/diff.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;
const ZERO = new Uint8Array(DATA_SIZE);
const FAULT_ESI = DATA_BASE + DATA_SIZE + 0x100;

function readData(d: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let k = n - 1; k >= 0; k--) v = v * 256 + d[at + k];
  return v;
}
function readReg(regs: number[], r: number, bits: number): number {
  if (bits === 8) return r < 4 ? regs[r] & 0xff : (regs[r - 4] >>> 8) & 0xff;
  return bits === 16 ? regs[r] & 0xffff : regs[r] >>> 0;
}
/** Sets the accumulator (AL/AX/EAX) to v. */
function setAcc(regs: number[], bits: number, v: number): void {
  const m = bits === 32 ? 0xffffffff : (1 << bits) - 1;
  regs[0] = ((regs[0] & ~m) | (v & m)) >>> 0;
}

/** XADD (0F C0/C1) and CMPXCHG (0F B0/B1). */
const rmwArb = (mem: boolean): fc.Arbitrary<NativeCase> => fc.record({
  xadd: fc.boolean(), size: fc.constantFrom(8, 16, 32), lock: fc.nat({ max: 3 }).map((n) => n === 0), eq: fc.boolean(),
  fault: fc.nat({ max: 9 }).map((n) => mem && n === 0), r: fc.nat({ max: 7 }), src: fc.nat({ max: 7 }),
  disp: fc.integer({ min: -128, max: 124 }), regs: regsArb, eflags: flagsIn(), data: mem ? dataSeeded : fc.constant(ZERO),
}).map(({ xadd, size, lock, eq, fault, r, src, disp, regs, eflags, data }) => {
  const rr = regs.slice();
  const code: number[] = [];
  if (lock) code.push(0xf0);
  if (size === 16) code.push(0x66);
  code.push(0x0f, (xadd ? 0xc0 : 0xb0) | (size === 8 ? 0 : 1));
  if (mem) {
    const s = src === 6 ? 0 : src; // ESI is the base
    rr[6] = fault ? FAULT_ESI : MEM_ESI;
    code.push(0x46 | (s << 3), disp & 0xff);
    if (eq && !fault) setAcc(rr, size, readData(data, 0x800 + disp, size / 8));
  } else {
    const rm = size !== 8 && r === 4 ? 3 : r; // keep ESP (not SP/AH) out of the destination
    code.push(modrmReg(src, rm));
    if (eq) setAcc(rr, size, readReg(rr, rm, size));
  }
  return { code: Uint8Array.from(code), regs: rr, eflags, data };
});

/**
 * CMPXCHG8B m64: `eq`: 0 both halves equal, 1 only the low half, 2 random; `place`: 0 in the data
 * region, 1 in the unmapped page after it, 2 straddling its end; `rm3`: the register form (#UD).
 */
const cx8Arb: fc.Arbitrary<NativeCase> = fc.record({
  lock: fc.boolean(), eq: fc.nat({ max: 2 }), place: fc.constantFrom(0, 0, 0, 0, 0, 0, 1, 2), rm3: fc.nat({ max: 15 }).map((n) => n === 0),
  straddle: fc.integer({ min: 1, max: 7 }), disp: fc.integer({ min: -128, max: 120 }), regs: regsArb, eflags: flagsIn(), data: dataSeeded,
}).map(({ lock, eq, place, rm3, straddle, disp, regs, eflags, data }) => {
  const rr = regs.slice();
  const code: number[] = lock ? [0xf0] : [];
  if (rm3) return { code: Uint8Array.from([...code, 0x0f, 0xc7, 0xc8 | (disp & 7)]), regs: rr, eflags, data };
  code.push(0x0f, 0xc7, 0x4e, disp & 0xff); // cmpxchg8b [esi+disp8]
  if (place === 1) rr[6] = FAULT_ESI;
  else if (place === 2) rr[6] = DATA_BASE + DATA_SIZE - straddle - disp;
  else {
    rr[6] = MEM_ESI;
    const at = 0x800 + disp;
    if (eq <= 1) rr[0] = readData(data, at, 4);
    if (eq === 0) rr[2] = readData(data, at + 4, 4);
  }
  return { code: Uint8Array.from(code), regs: rr, eflags, data };
});

run('XADD/CMPXCHG/CMPXCHG8B vs the host CPU', () => {
  it('XADD and CMPXCHG register forms (8/16/32-bit; LOCK is #UD)', () => {
    expect(differential(rmwArb(false), 5000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
  it('XADD and CMPXCHG memory forms (with LOCK, with faults)', () => {
    expect(differential(rmwArb(true), 4000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
  it('CMPXCHG8B (equal, half equal, different; LOCK; faults; straddling a page; register form #UD)', () => {
    expect(differential(cx8Arb, 3000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
});
