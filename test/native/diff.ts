// Shared machinery of the differential tests: generate cases with fast-check (fixed seed),
// run them natively in one batch and on the emulator, and report every mismatch with enough
// detail to reproduce it (code bytes, registers, flags).
import fc from 'fast-check';
import { makeEmuMachine, runEmu } from './emu.ts';
import { DATA_BASE, DATA_SIZE, nativeAvailable, type NativeCase, type NativeResult, runNative } from './native.ts';

export const SEED = Number(process.env.FC_SEED ?? 20261125);
/** Whether the native reference is missing in a run where it must be present. */
export const requireNative = process.env.CI === 'true';
export const haveNative = nativeAvailable();

/** The arithmetic flags (CF PF AF ZF SF OF) and DF. */
export const FLAGS_ALL = 0xcd5;

export interface DiffSpec {
  /** Flags compared after the case (architecturally defined ones). */
  flagMask?: number | ((c: NativeCase) => number);
  /** Registers compared (default all 8). */
  regMask?: number;
  /** Compare the data region (default true). */
  data?: boolean;
}

const hex = (v: number) => '0x' + (v >>> 0).toString(16);

function describeCase(c: NativeCase): string {
  const code = Array.from(c.code, (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `code [${code}] regs [${c.regs.map(hex).join(' ')}] eflags ${hex(c.eflags)}`;
}

/** Compares two results; returns a description of the first differences, or null. */
export function compareResults(c: NativeCase, n: NativeResult, e: NativeResult, spec: DiffSpec): string | null {
  const out: string[] = [];
  if (n.signal !== e.signal) out.push(`signal native ${n.signal} (trap ${n.trapno} err ${hex(n.err)} at ${hex(n.faultEip)}) emu ${e.signal} (trap ${e.trapno} err ${hex(e.err)} at ${hex(e.faultEip)})`);
  else if (n.signal !== 0 && n.signal !== 14) {
    if (n.faultEip !== e.faultEip) out.push(`faultEip native ${hex(n.faultEip)} emu ${hex(e.faultEip)}`);
    if (n.trapno !== e.trapno) out.push(`trapno native ${n.trapno} emu ${e.trapno}`);
    if (n.err !== e.err) out.push(`err native ${hex(n.err)} emu ${hex(e.err)}`);
  }
  const regMask = spec.regMask ?? 0xff;
  const names = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'];
  for (let k = 0; k < 8; k++) {
    if ((regMask >> k) & 1 && n.regs[k] !== e.regs[k]) out.push(`${names[k]} native ${hex(n.regs[k])} emu ${hex(e.regs[k])}`);
  }
  const fm = typeof spec.flagMask === 'function' ? spec.flagMask(c) : (spec.flagMask ?? FLAGS_ALL);
  if (((n.eflags ^ e.eflags) & fm) !== 0) out.push(`eflags native ${hex(n.eflags & fm)} emu ${hex(e.eflags & fm)} (mask ${hex(fm)})`);
  if (spec.data !== false) {
    for (let k = 0; k < DATA_SIZE; k++) {
      if (n.data[k] !== e.data[k]) { out.push(`data[${hex(k)}] native ${hex(n.data[k])} emu ${hex(e.data[k])}`); break; }
    }
  }
  return out.length ? `${describeCase(c)}: ${out.join('; ')}` : null;
}

/**
 * Samples `count` cases from `arb` (fixed seed), runs them natively and on the emulator and
 * returns the mismatches (at most `maxReport`).
 */
export function differential(arb: fc.Arbitrary<NativeCase>, count: number, spec: DiffSpec = {}, maxReport = 10): string[] {
  const cases = fc.sample(arb, { seed: SEED, numRuns: count });
  const native = runNative(cases);
  const m = makeEmuMachine();
  const bad: string[] = [];
  for (let k = 0; k < cases.length && bad.length < maxReport; k++) {
    const e = runEmu(m, cases[k]);
    const d = compareResults(cases[k], native[k], e, spec);
    if (d) bad.push(d);
  }
  return bad;
}

// ---- arbitraries

export const u32 = fc.nat({ max: 0xffffffff });
/** Interesting 32-bit values: edges, small numbers, random. */
export const val32 = fc.oneof(
  { weight: 3, arbitrary: u32 },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0xfffffffe) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 64 }) },
);
/** EFLAGS input: random arithmetic flags, DF clear unless asked. */
export const flagsIn = (withDf = false) => fc.nat({ max: 0xfff }).map((f) => f & (withDf ? 0xcd5 : 0x8d5));

/** Eight registers with ESP pointing into the middle of the data region (a usable stack). */
export const regsArb = fc.tuple(val32, val32, val32, val32, val32, val32, val32).map(([a, c, d, b, bp, si, di]) => [a, c, d, b, DATA_BASE + 0x1000, bp, si, di]);
export const dataArb = fc.uint8Array({ minLength: DATA_SIZE, maxLength: DATA_SIZE });
/** A data region of zeros (cheap) or random bytes. */
export const dataZeroOrRandom = fc.oneof(fc.constant(new Uint8Array(DATA_SIZE)), dataArb);

/** ModRM byte for a register-register form (mod = 3). */
export const modrmReg = (reg: number, rm: number) => 0xc0 | (reg << 3) | rm;
/** A [esi + disp8] memory operand with ESI set to DATA_BASE + 0x800: returns modrm and disp bytes. */
export const MEM_ESI = DATA_BASE + 0x800;
export const modrmMemEsi = (reg: number, disp: number) => [0x46 | (reg << 3), disp & 0xff];

/** A random data region from a 32-bit seed (xorshift32): as random as dataArb for these tests, far cheaper to generate. */
export const dataSeeded: fc.Arbitrary<Uint8Array> = fc.nat({ max: 0xffffffff }).map((seed) => {
  const d = new Uint8Array(DATA_SIZE);
  let x = seed | 1;
  for (let k = 0; k < DATA_SIZE; k += 4) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    d[k] = x; d[k + 1] = x >>> 8; d[k + 2] = x >>> 16; d[k + 3] = x >>> 24;
  }
  return d;
});
