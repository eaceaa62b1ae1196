// Differential tests of the shift family (isa/shift.ts) against the host CPU: group 2 (C0 C1 D0
// D1 D2 D3, all eight members including the /6 SAL alias) and SHLD/SHRD (0F A4 A5 AC AD), at
// 8/16/32 bits, register and [esi+disp8] operands, counts by 1, imm8 and CL (biased to 0..33 so
// the masking and the RCL/RCR modulo 9/17 edges are hit), random flags in.
//
// Compared: registers, memory and the flags the SDM defines for the case: everything when the
// masked count is 0 (nothing may change); for rotates CF (and SF ZF AF PF, which must stay),
// OF only for a count of 1; for shifts CF (except SHL/SHR with count >= size), SF ZF PF, OF only
// for a count of 1. SHLD/SHRD at 16 bits with a masked count above 16 (undefined result) are left
// out of the comparison and checked against our documented model below. One memory case in
// eight faults in the unmapped page after the data region (a write fault, even for a count of 0).
//
// On an AMD host one more test compares every flag: our choices for the undefined ones follow
// what this AMD host does (documented in the isa file).
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dataSeeded, differential, FLAGS_ALL, flagsIn, haveNative, MEM_ESI, modrmReg, regsArb, requireNative } from '../../native/diff.ts';
import { makeEmuMachine, runEmu } from '../../native/emu.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;

/** Our undefined flags follow the AMD host's: compared in full only when the host is an AMD part. */
const amd = (() => { try { return readFileSync('/proc/cpuinfo', 'utf8').includes('AuthenticAMD'); } catch { return false; } })();
const CF = 0x1, PF = 0x4, ZF = 0x40, SF = 0x80, DF = 0x400, OF = 0x800;

type Case = NativeCase & { mask: number };
const reg = fc.nat({ max: 7 }).filter((r) => r !== 4); // not ESP
const countArb = fc.oneof(fc.integer({ min: 0, max: 33 }), fc.nat({ max: 255 }));
const ZERO = new Uint8Array(DATA_SIZE);
/** ESI in the unmapped page after the data region: the operand faults, as a write (read with write intent). */
const FAULT_ESI = DATA_BASE + DATA_SIZE + 0x100;

/** The flags the SDM defines after group-2 op `op` on `bits` bits with masked count c. */
function grp2Mask(op: number, bits: number, c: number): number {
  if (c === 0) return FLAGS_ALL;
  if (op < 4) return c === 1 ? FLAGS_ALL : FLAGS_ALL & ~OF; // rotates: SF ZF AF PF unchanged
  let m = CF | PF | ZF | SF | DF | (c === 1 ? OF : 0);
  if (op !== 7 && c >= bits) m &= ~CF; // SHL/SHR past the operand size
  return m;
}
function dshiftMask(c: number): number {
  return c === 0 ? FLAGS_ALL : CF | PF | ZF | SF | DF | (c === 1 ? OF : 0);
}

const grp2Arb = (mem: boolean): fc.Arbitrary<Case> => fc.record({
  op: fc.nat({ max: 7 }), form: fc.constantFrom(0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3), o16: fc.boolean(),
  r: reg, disp: fc.integer({ min: -128, max: 124 }), count: countArb, regs: regsArb, eflags: flagsIn(),
  data: mem ? dataSeeded : fc.constant(ZERO), fault: fc.nat({ max: 7 }).map((n) => mem && n === 0),
}).map(({ op, form, o16, r, disp, count, regs, eflags, data, fault }) => {
  const byte = (form & 1) === 0;
  const rr = regs.slice();
  const code: number[] = [];
  if (o16 && !byte) code.push(0x66);
  code.push(form);
  if (mem) { rr[6] = fault ? FAULT_ESI : MEM_ESI; code.push(0x46 | (op << 3), disp & 0xff); } else code.push(modrmReg(op, r));
  let c = 1;
  if (form === 0xc0 || form === 0xc1) { code.push(count & 0xff); c = count; }
  else if (form === 0xd2 || form === 0xd3) { rr[1] = (rr[1] & ~0xff) | (count & 0xff); c = count; }
  const bits = byte ? 8 : o16 ? 16 : 32;
  return { code: Uint8Array.from(code), regs: rr, eflags, data, mask: fault ? FLAGS_ALL : grp2Mask(op, bits, c & 31) };
});

const dshiftArb = (mem: boolean): fc.Arbitrary<Case> => fc.record({
  opc: fc.constantFrom(0xa4, 0xa5, 0xac, 0xad), o16: fc.boolean(), r: reg, src: fc.nat({ max: 7 }),
  disp: fc.integer({ min: -128, max: 124 }), count: countArb, regs: regsArb, eflags: flagsIn(),
  data: mem ? dataSeeded : fc.constant(ZERO), fault: fc.nat({ max: 7 }).map((n) => mem && n === 0),
}).filter(({ o16, count }) => !o16 || (count & 31) <= 16).map(({ opc, o16, r, src, disp, count, regs, eflags, data, fault }) => {
  const rr = regs.slice();
  const code: number[] = o16 ? [0x66, 0x0f, opc] : [0x0f, opc];
  if (mem) { rr[6] = fault ? FAULT_ESI : MEM_ESI; code.push(0x46 | (src << 3), disp & 0xff); } else code.push(modrmReg(src, r));
  if ((opc & 1) === 0) code.push(count & 0xff); else rr[1] = (rr[1] & ~0xff) | (count & 0xff);
  return { code: Uint8Array.from(code), regs: rr, eflags, data, mask: fault ? FLAGS_ALL : dshiftMask(count & 31) };
});

const mask = (c: NativeCase) => (c as Case).mask;

run('shift family vs the host CPU', () => {
  it('group 2 register forms (ROL ROR RCL RCR SHL SHR SAL SAR, 8/16/32-bit, by 1/imm8/CL)', () => {
    expect(differential(grp2Arb(false), 5000, { flagMask: mask })).toEqual([]);
  });
  it('group 2 memory forms [esi+disp8], with faults', () => {
    expect(differential(grp2Arb(true), 2500, { flagMask: mask })).toEqual([]);
  });
  it('SHLD/SHRD register forms (16/32-bit, imm8 and CL)', () => {
    expect(differential(dshiftArb(false), 3000, { flagMask: mask })).toEqual([]);
  });
  it('SHLD/SHRD memory forms, with faults', () => {
    expect(differential(dshiftArb(true), 1500, { flagMask: mask })).toEqual([]);
  });
  it.runIf(amd)('undefined flags (OF for counts > 1, AF) as the AMD host sets them', () => {
    expect(differential(grp2Arb(false), 3000, { flagMask: FLAGS_ALL })).toEqual([]);
    expect(differential(dshiftArb(false), 2000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
});

describe('shift family: behaviour the host cannot check', () => {
  const m = makeEmuMachine();
  const exec = (code: number[], regs: number[], eflags = 0) =>
    runEmu(m, { code: Uint8Array.from(code), regs, eflags, data: new Uint8Array(DATA_SIZE) });
  const regs = (eax: number, ecx: number, edx: number) => [eax, ecx, edx, 0, DATA_BASE + 0x1000, 0, 0, 0];

  it('SHLD/SHRD r16 with a count above 16 follow the documented DEST:SRC:DEST model', () => {
    // shld ax, dx, cl with cl = 20: 48-bit 1234:abcd:1234 << 20, top 16 bits = bits 27..12 of abcd:1234
    let r = exec([0x66, 0x0f, 0xa5, 0xd0], regs(0x1234, 20, 0xabcd));
    expect(r.regs[0] & 0xffff).toBe(((0xabcd1234 >>> 12) & 0xffff));
    expect(r.eflags & CF).toBe((0xabcd1234 >>> 28) & 1);
    // shrd ax, dx, cl with cl = 20: (1234:abcd:1234) >> 20, low 16 bits = bits 35..20 = bits 19..4 of 1234:abcd
    r = exec([0x66, 0x0f, 0xad, 0xd0], regs(0x1234, 20, 0xabcd));
    expect(r.regs[0] & 0xffff).toBe(((0x1234abcd >>> 4) & 0xffff));
    expect(r.eflags & CF).toBe((0x1234abcd >>> 3) & 1);
  });

  it('a masked count of 0 changes no flag and no register', () => {
    const r = exec([0xd3, 0xe0], regs(0x80000001, 0x20, 0), 0x8d5); // shl eax, cl with cl = 32
    expect(r.regs[0]).toBe(0x80000001);
    expect(r.eflags & 0x8d5).toBe(0x8d5);
  });

  it('RCL r8 by 9 (a multiple of 9) keeps the value and CF; RCR r16 by 17 likewise', () => {
    let r = exec([0xc0, 0xd0, 9], regs(0x5a, 0, 0), 0x1); // rcl al, 9
    expect(r.regs[0] & 0xff).toBe(0x5a);
    expect(r.eflags & CF).toBe(1);
    r = exec([0x66, 0xc1, 0xd8, 17], regs(0x1235, 0, 0), 0); // rcr ax, 17
    expect(r.regs[0] & 0xffff).toBe(0x1235);
    expect(r.eflags & CF).toBe(0);
  });
});
