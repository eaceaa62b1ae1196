// Differential tests of the string family (isa/string.ts) against the host CPU: MOVS, CMPS,
// STOS, LODS, SCAS with and without REP/REPE/REPNE, both directions, both address sizes,
// segment overrides on the source, overlapping copies, and faults in the middle of a REP.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { differential, haveNative, requireNative, val32 } from '../../native/diff.ts';
import { DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

const run = !haveNative && !requireNative ? describe.skip : describe;

/**
 * Data from a seed: random bytes, or bytes from a two-letter alphabet (mostly 0x00, some 0x41)
 * so that CMPS and SCAS find equal and unequal elements at varied distances.
 */
function dataFrom(seed: number, kind: number): Uint8Array {
  const d = new Uint8Array(DATA_SIZE);
  let x = seed >>> 0 || 1;
  for (let k = 0; k < DATA_SIZE; k++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    d[k] = kind === 0 ? x & 0xff : (x & 0xf) < kind ? 0x41 : 0;
  }
  return d;
}
const dataArb = fc.record({ seed: fc.nat({ max: 0xffffffff }), kind: fc.constantFrom(0, 1, 2, 4, 8) }).map(({ seed, kind }) => dataFrom(seed, kind));

const OPS = { movs: 0xa4, cmps: 0xa6, stos: 0xaa, lods: 0xac, scas: 0xae } as const;
/** Source segment overrides: none, ES, CS, SS, DS (all flat), and rarely FS (null: #GP(0)). */
const override = fc.oneof(
  { weight: 8, arbitrary: fc.constant<number[]>([]) },
  { weight: 4, arbitrary: fc.constantFrom([0x26], [0x2e], [0x36], [0x3e]) },
  { weight: 1, arbitrary: fc.constant([0x64]) },
);
const offset = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: DATA_SIZE - 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x30 }) },
  { weight: 1, arbitrary: fc.integer({ min: DATA_SIZE - 0x30, max: DATA_SIZE + 4 }) },
  { weight: 1, arbitrary: fc.integer({ min: 0xff0, max: 0x1010 }) },
);
const eaxArb = fc.oneof(val32, fc.constantFrom(0, 0x41414141, 0x00410041, 0x41, 0x4100, 0x41000000));

const stringCase: fc.Arbitrary<NativeCase> = fc.record({
  op: fc.constantFrom('movs', 'cmps', 'stos', 'lods', 'scas'),
  size: fc.constantFrom(1, 2, 4), rep: fc.constantFrom(0, 0xf3, 0xf2), a16: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  seg: override, df: fc.boolean(),
  count: fc.oneof({ weight: 8, arbitrary: fc.nat({ max: 40 }) }, { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) }),
  cxHigh: fc.nat({ max: 0xffff }),
  si: offset, di: offset, overlap: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.integer({ min: -9, max: 9 }) }),
  eax: eaxArb, f: fc.nat({ max: 0xfff }), data: dataArb,
}).map(({ op, size, rep, a16, seg, df, count, cxHigh, si, di, overlap, eax, f, data }) => {
  if (overlap !== null) di = Math.max(0, Math.min(DATA_SIZE, si + overlap));
  const code = [...(rep ? [rep] : []), ...(a16 ? [0x67] : []), ...(size === 2 ? [0x66] : []), ...seg, OPS[op] + (size === 1 ? 0 : 1)];
  const ecx = a16 ? ((cxHigh << 16) | (count & 0xffff)) >>> 0 : count;
  // with 16-bit addressing, SI/DI are the low halves: every access hits the unmapped low 64 KiB,
  // so those cases check the count rule (CX only) and the fault at the first element
  const regs = [eax >>> 0, ecx, 0x1234, 0x5678, DATA_BASE + 0x1000, 0x9abc, DATA_BASE + si, DATA_BASE + di];
  return { code: Uint8Array.from(code), regs, eflags: (f & 0x8d5) | (df ? 0x400 : 0), data };
});

/**
 * Long REP MOVS/STOS/CMPS/SCAS (up to the whole region), any overlap, both directions: the fast
 * paths. CMPS and SCAS run over sparse data (mostly zeros) so that REPE runs long and REPNE finds
 * its element at varied distances.
 */
const bulkCase: fc.Arbitrary<NativeCase> = fc.record({
  op: fc.constantFrom('movs', 'stos', 'cmps', 'scas'), rep: fc.constantFrom(0xf3, 0xf2), size: fc.constantFrom(1, 2, 4),
  df: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  count: fc.nat({ max: 0x900 }), si: fc.nat({ max: DATA_SIZE }), delta: fc.oneof(fc.integer({ min: -16, max: 16 }), fc.integer({ min: -DATA_SIZE, max: DATA_SIZE })),
  eax: fc.oneof(val32, fc.constantFrom(0, 0x41, 0x4100, 0x41000000)), seed: fc.nat({ max: 0xffffffff }), sparse: fc.constantFrom(0, 1),
}).map(({ op, rep, size, df, count, si, delta, eax, seed, sparse }) => {
  const di = Math.max(0, Math.min(DATA_SIZE, si + delta));
  const code = [rep, ...(size === 2 ? [0x66] : []), OPS[op] + (size === 1 ? 0 : 1)];
  const regs = [eax >>> 0, count, 0, 0, DATA_BASE + 0x1000, 0, DATA_BASE + si, DATA_BASE + di];
  const compare = op === 'cmps' || op === 'scas';
  return { code: Uint8Array.from(code), regs, eflags: df ? 0x400 : 0, data: dataFrom(seed, compare ? sparse : 0) };
});

/** Two string instructions in a row (a memcpy/memset/strlen tail), with registers carried over. */
const pairCase: fc.Arbitrary<NativeCase> = fc.record({
  a: fc.constantFrom([0xf3, 0xa5], [0xf3, 0xab], [0xf2, 0xae], [0xf3, 0xa6], [0xac], [0xa5], [0xf3, 0x66, 0xa7]),
  b: fc.constantFrom([0xf3, 0xa4], [0xf3, 0xaa], [0xf2, 0xaf], [0xf3, 0xa7], [0xaa], [0xfd, 0xa4], [0x67, 0xf3, 0xa4]),
  count: fc.nat({ max: 40 }), si: fc.nat({ max: 0x1800 }), di: fc.nat({ max: 0x1800 }), eax: eaxArb, data: dataArb,
}).map(({ a, b, count, si, di, eax, data }) => ({
  code: Uint8Array.from([...a, 0xb9, count & 0xff, 0, 0, 0, ...b]), // ... ; mov ecx, count; ...
  regs: [eax >>> 0, count, 0, 0, DATA_BASE + 0x1000, 0, DATA_BASE + si, DATA_BASE + di], eflags: 0, data,
}));

run('string family vs the host CPU', () => {
  it('MOVS/CMPS/STOS/LODS/SCAS: REP/REPE/REPNE, DF, 0x66/0x67, source overrides, faults', () => {
    expect(differential(stringCase, 8000)).toEqual([]);
  });
  it('long REP MOVS/STOS/CMPS/SCAS, overlapping operands, page crossings', () => {
    expect(differential(bulkCase, 3000)).toEqual([]);
  });
  it('pairs of string instructions', () => {
    expect(differential(pairCase, 2000)).toEqual([]);
  });
});
