// Differential tests of near control transfers (isa/control.ts, the generated Jcc handlers of
// isa/fast.ts) against the host CPU: every condition after flag-setting operations of each
// size, LOOP/LOOPE/LOOPNE/JCXZ, CALL/RET.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { differential, flagsIn, haveNative, regsArb, requireNative } from '../../native/diff.ts';
import type { NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;
const data = () => new Uint8Array(0x2000);

/** op ebx, eax-like (register form, 8/16/32-bit), then Jcc over "mov ecx, 1": ECX tells whether it was taken. */
const jccCase: fc.Arbitrary<NativeCase> = fc.record({
  cc: fc.nat({ max: 15 }), near: fc.boolean(), regs: regsArb, eflags: flagsIn(),
  op: fc.constantFrom(0x38, 0x39, 0x28, 0x29, 0x00, 0x01, 0x20, 0x21, 0x84, 0x85, 0x30, 0x31, 0x10, 0x11, 0x18, 0x19),
  o16: fc.boolean(),
}).map(({ cc, near, regs, eflags, op, o16 }) => {
  const p = o16 ? [0x66] : [];
  const j = near ? [0x0f, 0x80 + cc, 5, 0, 0, 0] : [0x70 + cc, 5];
  return { code: Uint8Array.from([...p, op, 0xd8, ...j, 0xb9, 1, 0, 0, 0, 0x90]), regs, eflags, data: data() };
});

/** Flags straight from EFLAGS (POPF): every condition over every flag combination. */
const jccFlagsCase: fc.Arbitrary<NativeCase> = fc.record({ cc: fc.nat({ max: 15 }), f: fc.nat({ max: 0xfff }), regs: regsArb }).map(({ cc, f, regs }) => ({
  code: Uint8Array.from([0x68, f & 0xd5, (f >> 8) & 0x08, 0, 0, 0x9d, 0x70 + cc, 5, 0xb9, 1, 0, 0, 0, 0x90]), regs, eflags: 0, data: data(),
}));

const loopCase: fc.Arbitrary<NativeCase> = fc.record({
  kind: fc.constantFrom(0xe0, 0xe1, 0xe2, 0xe3), a16: fc.boolean(), ecx: fc.constantFrom(0, 1, 2, 0x10000, 0x10001, 0xffffffff, 5),
  regs: regsArb, eflags: flagsIn(),
}).map(({ kind, a16, ecx, regs, eflags }) => {
  const r = regs.slice(); r[1] = ecx;
  return { code: Uint8Array.from([...(a16 ? [0x67] : []), kind, 5, 0xbb, 7, 0, 0, 0, 0x90]), regs: r, eflags, data: data() };
});

const callRetCase: fc.Arbitrary<NativeCase> = fc.record({ regs: regsArb, imm: fc.nat({ max: 64 }).map((n) => n * 4) }).map(({ regs, imm }) => ({
  // call +6; jmp +7 (over the subroutine); sub: mov eax, 5; ret imm16 ; end: nop
  code: Uint8Array.from([0xe8, 2, 0, 0, 0, 0xeb, 8, 0xb8, 5, 0, 0, 0, 0xc2, imm & 0xff, imm >> 8, 0x90]), regs, eflags: 0, data: data(),
}));

run('control transfers vs the host CPU', () => {
  it('Jcc (short and near) after ALU ops of each size', () => { expect(differential(jccCase, 3000, { flagMask: 0x8c5 })).toEqual([]); });
  it('Jcc over every flag combination', () => { expect(differential(jccFlagsCase, 2000)).toEqual([]); });
  it('LOOP, LOOPE, LOOPNE, JCXZ with both address sizes', () => { expect(differential(loopCase, 1500)).toEqual([]); });
  it('CALL and RET imm16', () => { expect(differential(callRetCase, 300)).toEqual([]); });
});
