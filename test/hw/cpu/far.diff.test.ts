// Differential tests of what user mode (CPL 3) can observe of segmentation, against the host CPU
// (test/native): LAR/LSL/VERR/VERW, far CALL/JMP/RET and IRET to the process's own code segment,
// MOV to segment registers and LDS/LES/LFS/LGS/LSS, ARPL. Selectors are drawn from the ones
// whose descriptors are the same natively and in the emulator's copy of Linux's GDT
// (test/native/emu.ts): the 16 GDT entries except the TLS entries 12-14 (glibc's base differs)
// and the per-CPU entry 15 (its limit is the CPU number), plus selectors beyond the GDT and LDT
// selectors (no LDT on either side). CS loads leave out 0x30-0x37 (natively 64-bit code) and
// every transfer lands inside the code region: a fetch from an unmapped page would differ in
// the #PF error code's I/D bit, which is the paging code's business, not this file's.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { differential, haveNative, regsArb, requireNative, val32 } from '../../native/diff.ts';
import { CODE_BASE, DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;

const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
const le16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];

/** Selectors with the same meaning natively and in the emulator. */
const sameSel = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 0x5f }) },
  { weight: 3, arbitrary: fc.constantFrom(0x23, 0x2b, 0x20, 0x28, 0x1b, 0x33, 0x13, 0x43, 0x53) },
  { weight: 1, arbitrary: fc.integer({ min: 0x80, max: 0xffff }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xfff }).map((i) => (i << 3) | 4 | (i & 3)) },
);
/** The same for CS loads: no 64-bit code segment (0x30-0x37). */
const csSel = sameSel.filter((s) => s < 0x30 || s > 0x37);

/** A data region of A5h bytes (so a partial store shows) with `bytes` at `off`. */
const dataWith = (off: number, bytes: number[]) => {
  const d = new Uint8Array(DATA_SIZE).fill(0xa5);
  d.set(bytes, off);
  return d;
};

// ---------------------------------------------------------------- LAR, LSL, VERR, VERW

/** One of LAR/LSL (32- or 16-bit, register or memory source), VERR, VERW (register or memory). */
const verifyInsn = fc.record({
  op: fc.constantFrom('lar', 'lsl', 'verr', 'verw'), o16: fc.boolean(), mem: fc.boolean(), dst: fc.constantFrom(0, 2, 3, 7),
}).map(({ op, o16, mem, dst }) => {
  // the selector is in ECX, or in memory at [esi] (ESI = DATA_BASE + 0x100)
  const modrm = (reg: number) => (mem ? (reg << 3) | 6 : 0xc0 | (reg << 3) | 1);
  switch (op) {
    case 'lar': return [...(o16 ? [0x66] : []), 0x0f, 0x02, modrm(dst)];
    case 'lsl': return [...(o16 ? [0x66] : []), 0x0f, 0x03, modrm(dst)];
    case 'verr': return [0x0f, 0x00, modrm(4)];
    default: return [0x0f, 0x00, modrm(5)];
  }
});

const verifyCase: fc.Arbitrary<NativeCase> = fc.record({
  insns: fc.array(verifyInsn, { minLength: 1, maxLength: 4 }), sel: sameSel, hi: fc.nat({ max: 0xffff }),
  regs: regsArb, flags: fc.nat({ max: 0xfff }),
}).map(({ insns, sel, hi, regs, flags }) => {
  const r = regs.slice();
  r[1] = ((hi << 16) | sel) >>> 0;
  r[6] = DATA_BASE + 0x100;
  return { code: Uint8Array.from(insns.flat()), regs: r, eflags: flags & 0xcd5, data: dataWith(0x100, le16(sel)) };
});

// ---------------------------------------------------------------- far transfers

/**
 * A far transfer to `sel` whose target is the code just after it, then code that shows what
 * happened (the pushed words popped into registers, CS read into a register):
 * CALL far direct / through memory, JMP far direct / through memory, RET far (imm16), IRET.
 */
const farCase: fc.Arbitrary<NativeCase> = fc.record({
  kind: fc.constantFrom('callAp', 'jmpAp', 'callMp', 'jmpMp', 'retf', 'retfImm', 'iret'),
  sel: fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0x23, 0x20, 0x21, 0x22) }, { weight: 2, arbitrary: csSel }),
  imm: fc.oneof(fc.constantFrom(0, 4, 8), fc.nat({ max: 0x40 })),
  fl: fc.nat({ max: 0xffffffff }), regs: regsArb, flags: fc.nat({ max: 0xfff }),
}).map(({ kind, sel, imm, fl, regs, flags }) => {
  const r = regs.slice();
  r[6] = DATA_BASE + 0x100;
  let code: number[];
  const show = [0x5b, 0x5a, 0x8c, 0xc8]; // pop ebx; pop edx; mov %cs, %eax
  const ptr = [...le32(0), ...le16(sel)];
  switch (kind) {
    case 'callAp': code = [0x9a, ...le32(CODE_BASE + 7), ...le16(sel), ...show]; break;
    case 'jmpAp': code = [0xea, ...le32(CODE_BASE + 7), ...le16(sel), 0x8c, 0xc8]; break;
    case 'callMp': code = [0xff, 0x1e, ...show]; ptr.splice(0, 4, ...le32(CODE_BASE + 2)); break;
    case 'jmpMp': code = [0xff, 0x2e, 0x8c, 0xc8]; ptr.splice(0, 4, ...le32(CODE_BASE + 2)); break;
    case 'retf': code = [0x68, ...le32(sel), 0x68, ...le32(CODE_BASE + 11), 0xcb, 0x8c, 0xc8]; break;
    case 'retfImm': code = [0x68, ...le32(sel), 0x68, ...le32(CODE_BASE + 13), 0xca, ...le16(imm), 0x8c, 0xc8]; break;
    default: {
      // IRET at CPL 3: IF/IOPL/VM/VIF/VIP in the image must be ignored; TF, NT, AC, RF left out
      const f = (fl & ~(0x100 | 0x4000 | 0x40000 | 0x10000)) >>> 0;
      code = [0x68, ...le32(f), 0x68, ...le32(sel), 0x68, ...le32(CODE_BASE + 16), 0xcf, 0x9c, 0x5b];
    }
  }
  return { code: Uint8Array.from(code), regs: r, eflags: flags & 0xcd5, data: dataWith(0x100, ptr) };
});

// ---------------------------------------------------------------- segment loads

const SREG_MOV = [0xc0, 0xd8, 0xe0, 0xe8, 0xd0]; // ModRM reg field: ES DS FS GS SS (mov %ax, %sreg: 8e /r, rm = eax)
const segLoadCase: fc.Arbitrary<NativeCase> = fc.record({
  kind: fc.constantFrom('mov', 'lds', 'les', 'lfs', 'lgs', 'lss'), sreg: fc.nat({ max: 4 }), sel: sameSel,
  off: val32, o16: fc.boolean(), read: fc.boolean(), regs: regsArb, flags: fc.nat({ max: 0xfff }),
}).map(({ kind, sreg, sel, off, o16, read, regs, flags }) => {
  const r = regs.slice();
  r[6] = DATA_BASE + 0x100;
  r[0] = sel;
  let code: number[];
  let seg: number; // the segment register loaded (ES 0, SS 2, DS 3, FS 4, GS 5)
  switch (kind) {
    case 'mov': code = [0x8e, SREG_MOV[sreg]]; seg = [0, 3, 4, 5, 2][sreg]; break;
    case 'lds': code = [...(o16 ? [0x66] : []), 0xc5, 0x0e]; seg = 3; break;
    case 'les': code = [...(o16 ? [0x66] : []), 0xc4, 0x0e]; seg = 0; break;
    case 'lfs': code = [...(o16 ? [0x66] : []), 0x0f, 0xb4, 0x0e]; seg = 4; break;
    case 'lgs': code = [...(o16 ? [0x66] : []), 0x0f, 0xb5, 0x0e]; seg = 5; break;
    default: code = [...(o16 ? [0x66] : []), 0x0f, 0xb2, 0x0e]; seg = 2; break; // lss (%esi), %ecx
  }
  code.push(0x8c, 0xc2 | (seg << 3)); // mov %sreg, %edx
  // then read [esi] through the loaded segment (mov %seg:(%esi), %edi), unless the selector is
  // null (a null FS/GS does not fault natively in compatibility mode) or it was LSS
  if (read && (sel & 0xfffc) !== 0 && kind !== 'lss') code.push([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65][seg], 0x8b, 0x3e);
  const ptr = o16 ? [...le16(off), ...le16(sel)] : [...le32(off), ...le16(sel)];
  return { code: Uint8Array.from(code), regs: r, eflags: flags & 0xcd5, data: dataWith(0x100, ptr) };
});

// ---------------------------------------------------------------- ARPL

const arplCase: fc.Arbitrary<NativeCase> = fc.record({
  mem: fc.boolean(), d: fc.constantFrom(0, 1, 2, 3, 5, 7), s: fc.nat({ max: 7 }), v: val32, regs: regsArb, flags: fc.nat({ max: 0xfff }),
}).map(({ mem, d, s, v, regs, flags }) => {
  const r = regs.slice();
  r[6] = DATA_BASE + 0x100;
  return {
    code: Uint8Array.from(mem ? [0x63, 0x06 | (s << 3)] : [0x63, 0xc0 | (s << 3) | d]),
    regs: r, eflags: flags & 0xcd5, data: dataWith(0x100, le32(v)),
  };
});

run('segmentation at CPL 3 vs the host CPU', () => {
  it('LAR/LSL/VERR/VERW on the user, kernel, empty, system and out-of-range selectors', () => {
    expect(differential(verifyCase, 3000)).toEqual([]);
  });
  it('far CALL/JMP (direct and through memory), RET far, RET far imm16, IRET to the own code segment and to others', () => {
    expect(differential(farCase, 3000)).toEqual([]);
  });
  it('MOV Sreg, LDS/LES/LFS/LGS/LSS (32- and 16-bit) and an access through the loaded segment', () => {
    expect(differential(segLoadCase, 3000)).toEqual([]);
  });
  it('ARPL (register and memory)', () => {
    expect(differential(arplCase, 2000)).toEqual([]);
  });
});
