// Differential test of the I/O family (isa/io.ts) against the host CPU. A Linux process runs at
// CPL 3 with IOPL 0 and no I/O permission bitmap, so every IN/OUT/INS/OUTS is #GP(0) (SIGSEGV)
// before anything else happens: before the count of a REP form is looked at, and before a bad
// ES:EDI or DS:ESI is touched. The emulator's user-mode environment (test/native/emu.ts) has a
// TSS without a bitmap as well. What is allowed (CPL <= IOPL, the bitmap) is in io.test.ts.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { differential, haveNative, requireNative, val32 } from '../../native/diff.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;

const ioCase: fc.Arbitrary<NativeCase> = fc.record({
  op: fc.constantFrom(0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed, 0xee, 0xef, 0x6c, 0x6d, 0x6e, 0x6f),
  o16: fc.boolean(), rep: fc.constantFrom(0, 0xf3, 0xf2), a16: fc.boolean(), seg: fc.constantFrom(-1, 0x26, 0x2e, 0x36, 0x3e, 0x64),
  port: fc.oneof(fc.nat({ max: 0xffff }), fc.constantFrom(0x60, 0x64, 0x80, 0x3f8, 0xcf8, 0xfffe, 0xffff)),
  ecx: fc.oneof(fc.constant(0), fc.nat({ max: 8 }), val32),
  si: fc.oneof(fc.nat({ max: DATA_SIZE }), val32), di: fc.oneof(fc.nat({ max: DATA_SIZE }), val32),
  before: fc.constantFrom([], [0x40], [0x52], [0x90]), // nothing, inc eax, push edx, nop
  regs: fc.tuple(val32, val32), f: fc.nat({ max: 0xfff }),
}).map(({ op, o16, rep, a16, seg, port, ecx, si, di, before, regs, f }) => {
  const imm = op >= 0xe4 && op <= 0xe7 ? [port & 0xff] : [];
  const code = [...before, ...(rep ? [rep] : []), ...(a16 ? [0x67] : []), ...(o16 ? [0x66] : []), ...(seg >= 0 ? [seg] : []), op, ...imm];
  const off = (v: number) => (v <= DATA_SIZE ? DATA_BASE + v : v >>> 0);
  return {
    code: Uint8Array.from(code),
    regs: [regs[0] >>> 0, ecx >>> 0, port, regs[1] >>> 0, DATA_BASE + 0x1000, 0, off(si), off(di)],
    eflags: f & 0xcd5, data: new Uint8Array(DATA_SIZE),
  };
});

run('I/O family vs the host CPU (CPL 3, IOPL 0, no bitmap)', () => {
  it('IN/OUT/INS/OUTS in every form are #GP(0) before anything else', () => {
    expect(differential(ioCase, 3000)).toEqual([]);
  });
});
