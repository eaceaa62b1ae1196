// Differential tests of the stack family (isa/stack.ts) against the host CPU: PUSH/POP of
// registers, immediates, memory and segment registers, PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE,
// including the ESP corner cases and faults at the edges of the data region.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { differential, FLAGS_ALL, haveNative, requireNative, val32 } from '../../native/diff.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;

/** A data region filled from a seed (fast: no per-byte generation), or zeros. */
const dataFrom = (seed: number): Uint8Array => {
  const d = new Uint8Array(DATA_SIZE);
  if (seed === 0) return d;
  let x = seed >>> 0 || 1;
  for (let k = 0; k < DATA_SIZE; k++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    d[k] = x & 0xff;
  }
  return d;
};
const dataSeed = fc.oneof(fc.constant(0), fc.nat({ max: 0xffffffff }));
const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
const le16 = (v: number) => [v & 0xff, (v >>> 8) & 0xff];
const o16 = (b: boolean) => (b ? [0x66] : []);

/** Seven random registers and ESP = `esp`. */
const regsWith = (esp: fc.Arbitrary<number>) =>
  fc.tuple(val32, val32, val32, val32, esp, val32, val32, val32).map((r) => r.map((v) => v >>> 0));

// ---------------------------------------------------------------- A: sequences of stack operations

/**
 * One operation of a random sequence. Memory operands are ESP-relative only, and ESP changes only
 * by the pushes and pops themselves, so every access stays in or next to the data region.
 */
const stackOp: fc.Arbitrary<number[]> = fc.oneof(
  fc.record({ w: fc.boolean(), r: fc.nat({ max: 7 }) }).map(({ w, r }) => [...o16(w), 0x50 + r]),
  fc.record({ w: fc.boolean(), r: fc.constantFrom(0, 1, 2, 3, 5, 6, 7) }).map(({ w, r }) => [...o16(w), 0x58 + r]),
  fc.record({ w: fc.boolean(), imm: fc.nat({ max: 0xffffffff }) }).map(({ w, imm }) => [...o16(w), 0x68, ...(w ? le16(imm) : le32(imm))]),
  fc.record({ w: fc.boolean(), imm: fc.nat({ max: 0xff }) }).map(({ w, imm }) => [...o16(w), 0x6a, imm]),
  fc.record({ w: fc.boolean(), d: fc.nat({ max: 0x40 }) }).map(({ w, d }) => [...o16(w), 0xff, 0x74, 0x24, d]), // push [esp+d]
  fc.record({ w: fc.boolean(), d: fc.nat({ max: 0x40 }) }).map(({ w, d }) => [...o16(w), 0x8f, 0x44, 0x24, d]), // pop [esp+d]
  fc.record({ w: fc.boolean(), r: fc.nat({ max: 7 }) }).map(({ w, r }) => [...o16(w), 0xff, 0xf0 + r]), // push r (FF /6)
  fc.record({ w: fc.boolean(), r: fc.constantFrom(0, 1, 2, 3, 5, 6, 7) }).map(({ w, r }) => [...o16(w), 0x8f, 0xc0 + r]), // pop r (8F /0)
  fc.boolean().map((w) => [...o16(w), 0x9c]),
  fc.boolean().map((w) => [...o16(w), 0x60]),
  fc.boolean().map((w) => [...o16(w), 0x61]),
  fc.record({ w: fc.boolean(), s: fc.constantFrom([0x06], [0x0e], [0x16], [0x1e], [0x0f, 0xa0]) }).map(({ w, s }) => [...o16(w), ...s]),
);
const sequenceCase: fc.Arbitrary<NativeCase> = fc.record({
  ops: fc.array(stackOp, { minLength: 1, maxLength: 8 }),
  regs: regsWith(fc.oneof(
    { weight: 6, arbitrary: fc.constant(DATA_BASE + 0x1000) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x60 }).map((o) => DATA_BASE + o) },
    { weight: 1, arbitrary: fc.integer({ min: 0x1fa0, max: 0x2000 }).map((o) => DATA_BASE + o) },
    { weight: 1, arbitrary: fc.integer({ min: 0x100, max: 0x1f00 }).map((o) => DATA_BASE + o) },
  )),
  flags: fc.nat({ max: 0xfff }), seed: dataSeed,
}).map(({ ops, regs, flags, seed }) => ({ code: Uint8Array.from(ops.flat()), regs, eflags: flags & 0xcd5, data: dataFrom(seed) }));

// ---------------------------------------------------------------- B: ESP as operand

const espCase: fc.Arbitrary<NativeCase> = fc.record({
  form: fc.constantFrom('push esp', 'pop esp', 'pop [esp+d]', 'push [esp+d]', 'pop esp via 8f', 'push esp via ff', 'pop [esp+esp?]', 'pop [esp+d32]'),
  w: fc.boolean(), d: fc.integer({ min: -0x80, max: 0x7f }),
  regs: regsWith(fc.integer({ min: 0, max: DATA_SIZE }).map((o) => DATA_BASE + o)),
  seed: dataSeed,
}).map(({ form, w, d, regs, seed }) => {
  let code: number[];
  switch (form) {
    case 'push esp': code = [0x54]; break;
    case 'pop esp': code = [0x5c]; break;
    case 'pop [esp+d]': code = [0x8f, 0x44, 0x24, d & 0xff]; break;
    case 'push [esp+d]': code = [0xff, 0x74, 0x24, d & 0xff]; break;
    case 'pop esp via 8f': code = [0x8f, 0xc4]; break;
    case 'push esp via ff': code = [0xff, 0xf4]; break;
    case 'pop [esp+esp?]': code = [0x8f, 0x04, 0x24]; break; // pop [esp]
    default: code = [0x8f, 0x84, 0x24, ...le32(d * 64)]; break; // pop [esp+disp32], may leave the region
  }
  return { code: Uint8Array.from([...o16(w), ...code]), regs, eflags: 0, data: dataFrom(seed) };
});

// ---------------------------------------------------------------- C: ENTER / LEAVE

const enterCase: fc.Arbitrary<NativeCase> = fc.record({
  w: fc.boolean(), w2: fc.boolean(),
  alloc: fc.oneof(fc.nat({ max: 0x40 }), fc.constantFrom(0, 4, 0xffff, 0x1000, 0x2000), fc.nat({ max: 0xffff })),
  level: fc.oneof({ weight: 3, arbitrary: fc.nat({ max: 4 }) }, { weight: 1, arbitrary: fc.nat({ max: 0xff }) }),
  leave: fc.constantFrom('none', 'after', 'only'),
  esp: fc.oneof(fc.constant(0x1000), fc.nat({ max: DATA_SIZE })),
  ebp: fc.oneof(fc.nat({ max: DATA_SIZE }), fc.constant(0x1800)),
  regs: regsWith(fc.constant(0)), seed: dataSeed,
}).map(({ w, w2, alloc, level, leave, esp, ebp, regs, seed }) => {
  const r = regs.slice();
  r[4] = DATA_BASE + esp; r[5] = DATA_BASE + ebp;
  const enter = [...o16(w), 0xc8, ...le16(alloc), level];
  const lv = [...o16(w2), 0xc9];
  const code = leave === 'only' ? lv : leave === 'after' ? [...enter, ...lv] : enter;
  return { code: Uint8Array.from(code), regs: r, eflags: 0, data: dataFrom(seed) };
});

// ---------------------------------------------------------------- D: PUSHA / POPA at the edges

const pushaCase: fc.Arbitrary<NativeCase> = fc.record({
  w: fc.boolean(), pop: fc.boolean(),
  esp: fc.oneof(fc.nat({ max: 0x44 }), fc.integer({ min: 0x1fbc, max: 0x2000 }), fc.constant(0x1000)),
  regs: regsWith(fc.constant(0)), seed: dataSeed,
}).map(({ w, pop, esp, regs, seed }) => {
  const r = regs.slice(); r[4] = DATA_BASE + esp;
  return { code: Uint8Array.from([...o16(w), pop ? 0x61 : 0x60]), regs: r, eflags: 0, data: dataFrom(seed) };
});

// ---------------------------------------------------------------- E: PUSHF / POPF

// TF would single-step the harness and AC would make later misaligned accesses fault: the popped
// values keep TF clear (TF is another family's business); AC is popped and pushed back, aligned.
const TF = 0x100;
/** CF PF AF ZF SF IF DF OF IOPL NT AC ID: what POPF may or may not change at CPL 3, IOPL 0. */
const POPF_FLAGS = 0x247ed5;
const popfCase: fc.Arbitrary<NativeCase> = fc.record({
  form: fc.constantFrom('d', 'w', 'dw', 'wd'), v: fc.nat({ max: 0xffffffff }), f: fc.nat({ max: 0xfff }),
  regs: regsWith(fc.constant(DATA_BASE + 0x1000)),
}).map(({ form, v, f, regs }) => {
  v = (v & ~TF) >>> 0;
  let code: number[];
  switch (form) {
    case 'd': code = [0x68, ...le32(v), 0x9d, 0x9c]; break;            // push v; popfd; pushfd
    case 'w': code = [0x66, 0x68, ...le16(v), 0x66, 0x9d, 0x66, 0x9c]; break; // 16-bit
    case 'dw': code = [0x68, ...le32(v), 0x9d, 0x66, 0x9c]; break;
    default: code = [0x66, 0x68, ...le16(v), 0x66, 0x9d, 0x9c]; break;
  }
  return { code: Uint8Array.from(code), regs, eflags: f & 0xcd5, data: new Uint8Array(DATA_SIZE) };
});

// ---------------------------------------------------------------- F: segment registers

/**
 * Selectors whose descriptors the emulator's GDT (test/native/emu.ts) reproduces: null ones,
 * the kernel's (DPL 0), the user code and data segments, system and empty entries, and
 * selectors past the GDT limit or in the (absent) LDT. Left out: 0x60-0x63 (glibc's TLS, whose
 * base is the host's) and 0x78-0x7b (Linux's per-CPU segment, whose limit is the host's).
 */
const selector = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(0, 1, 2, 3, 0x20, 0x21, 0x22, 0x23, 0x28, 0x29, 0x2a, 0x2b, 0x2b, 0x2b, 0x30, 0x33) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x5f }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x64, max: 0x77 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0x7c, max: 0xff }) },
  { weight: 1, arbitrary: fc.nat({ max: 0xffff }).filter((s) => (s & 0xfffc) >= 0x80) },
);
/** An access through each segment after the load: a read, or a write. */
const USE: Record<string, [number[], number[]]> = {
  es: [[0x26, 0x8b, 0x06], [0xaa]],       // mov eax, es:[esi] / stosb
  ss: [[0x8b, 0x04, 0x24], [0x50]],       // mov eax, [esp] / push eax
  ds: [[0x8b, 0x06], [0x89, 0x06]],       // mov eax, [esi] / mov [esi], eax
  fs: [[0x64, 0x8b, 0x06], [0x64, 0x89, 0x06]],
  gs: [[0x65, 0x8b, 0x06], [0x65, 0x89, 0x06]],
};
const POP: Record<string, number[]> = { es: [0x07], ss: [0x17], ds: [0x1f], fs: [0x0f, 0xa1], gs: [0x0f, 0xa9] };

const popSegCase: fc.Arbitrary<NativeCase> = fc.record({
  seg: fc.constantFrom('es', 'ss', 'ds', 'fs', 'gs'), sel: selector, hi: fc.nat({ max: 0xffff }),
  w: fc.boolean(), use: fc.constantFrom(-1, 0, 1), regs: regsWith(fc.constant(DATA_BASE + 0x1000)),
  si: fc.nat({ max: DATA_SIZE - 4 }), di: fc.nat({ max: DATA_SIZE - 4 }),
}).map(({ seg, sel, hi, w, use, regs, si, di }) => {
  const r = regs.slice(); r[6] = DATA_BASE + si; r[7] = DATA_BASE + di;
  const push = w ? [0x66, 0x68, ...le16(sel)] : [0x68, ...le32((sel | (hi << 16)) >>> 0)];
  const code = [...push, ...o16(w), ...POP[seg], ...(use === 0 ? USE[seg][0] : use === 1 ? USE[seg][1] : [])];
  return { code: Uint8Array.from(code), regs: r, eflags: 0, data: new Uint8Array(DATA_SIZE).fill(0x5a) };
});

/** PUSH Sreg (not GS: the host's is glibc's TLS selector), 16 and 32 bits, over non-zero memory. */
const pushSegCase: fc.Arbitrary<NativeCase> = fc.record({
  s: fc.constantFrom([0x06], [0x0e], [0x16], [0x1e], [0x0f, 0xa0]), w: fc.boolean(),
  esp: fc.oneof(fc.constant(0x1000), fc.nat({ max: 8 }), fc.integer({ min: 0x0ffd, max: 0x1003 })), seed: dataSeed,
}).map(({ s, w, esp, seed }) => ({
  code: Uint8Array.from([...o16(w), ...s]),
  regs: [0, 0, 0, 0, DATA_BASE + esp, 0, 0, 0], eflags: 0, data: seed === 0 ? new Uint8Array(DATA_SIZE).fill(0xa5) : dataFrom(seed),
}));

// ---------------------------------------------------------------- G: PUSH/POP with memory operands

const memCase: fc.Arbitrary<NativeCase> = fc.record({
  pop: fc.boolean(), w: fc.boolean(), d: fc.integer({ min: -0x80, max: 0x7f }),
  si: fc.oneof(fc.nat({ max: DATA_SIZE }), fc.integer({ min: -0x20, max: 0x20 }), fc.integer({ min: DATA_SIZE - 0x80, max: DATA_SIZE + 0x80 })),
  esp: fc.oneof(fc.constant(0x1000), fc.nat({ max: 6 }), fc.integer({ min: DATA_SIZE - 6, max: DATA_SIZE })),
  regs: regsWith(fc.constant(0)), seed: dataSeed,
}).map(({ pop, w, d, si, esp, regs, seed }) => {
  const r = regs.slice(); r[4] = DATA_BASE + esp; r[6] = (DATA_BASE + si) >>> 0;
  const code = pop ? [0x8f, 0x46, d & 0xff] : [0xff, 0x76, d & 0xff];
  return { code: Uint8Array.from([...o16(w), ...code]), regs: r, eflags: 0, data: dataFrom(seed) };
});

run('stack family vs the host CPU', () => {
  it('sequences of PUSH/POP (registers, immediates, [esp+d], Sreg, PUSHA/POPA, PUSHF)', () => {
    expect(differential(sequenceCase, 4000)).toEqual([]);
  });
  it('PUSH ESP, POP ESP, POP [ESP+d], PUSH [ESP+d]', () => {
    expect(differential(espCase, 2000)).toEqual([]);
  });
  it('ENTER (nesting levels, 16/32-bit, stack probe) and LEAVE', () => {
    expect(differential(enterCase, 3000)).toEqual([]);
  });
  it('PUSHA/POPA at the edges of the stack (partial faults)', () => {
    expect(differential(pushaCase, 1500)).toEqual([]);
  });
  it('POPF/PUSHF at CPL 3, IOPL 0 (IF and IOPL kept, 16/32-bit)', () => {
    expect(differential(popfCase, 2000, { flagMask: POPF_FLAGS })).toEqual([]);
  });
  it('POP Sreg with the segment load checks, then an access through it', () => {
    expect(differential(popSegCase, 3000, { flagMask: FLAGS_ALL })).toEqual([]);
  });
  it('PUSH Sreg (a 32-bit push stores the zero-extended selector)', () => {
    expect(differential(pushSegCase, 1000)).toEqual([]);
  });
  it('PUSH/POP with memory operands, faults leave ESP unchanged', () => {
    expect(differential(memCase, 2000)).toEqual([]);
  });
});
