// The string family (isa/string.ts) where the host cannot serve as the reference: 16-bit
// addressing (the host's low 64 KiB is unmapped) against a model of the SDM's definition, REP
// instructions stopped at quantum boundaries, by an interrupt and by a page fault and resumed, and
// the fast path's exactness (TLB statistics, stores into pages holding decoded code).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DS, ES, SS } from '../../../hw/cpu/insn.ts';
import { insnCosts, extraCosts } from '../../../hw/costs.ts';
import { CODE, endedAtMarker, makeRig, OneShotIrq, type Rig, runRig } from './rig.ts';

const SEED = Number(process.env.FC_SEED ?? 20261125);
const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

// =================================================================== 16-bit addressing vs a model

const DS_BASE = 0x10000, ES_BASE = 0x20000, SS_BASE = 0x30000;
const OPS = { movs: 0xa4, cmps: 0xa6, stos: 0xaa, lods: 0xac, scas: 0xae } as const;
type Op = keyof typeof OPS;

interface Case16 {
  op: Op; size: 1 | 2 | 4; rep: 0 | 0xf3 | 0xf2; seg: 'ds' | 'es' | 'ss'; sameSeg: boolean; df: boolean;
  eax: number; ecx: number; esi: number; edi: number; mem: Uint8Array; // 3 segments of 64 KiB
}

const SUB_FLAGS = 0x8d5;
const PARITY = (v: number) => { let p = 1; for (let b = v & 0xff; b; b >>>= 1) p ^= b & 1; return p; };
function subFlags(a: number, b: number, size: number): number {
  const mask = size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff, sign = size === 4 ? 0x80000000 : size === 2 ? 0x8000 : 0x80;
  a = (a & mask) >>> 0; b = (b & mask) >>> 0;
  const r = ((a - b) & mask) >>> 0;
  let f = 0;
  if (a < b) f |= 0x1;
  if (PARITY(r)) f |= 0x4;
  if ((a ^ b ^ r) & 0x10) f |= 0x10;
  if (r === 0) f |= 0x40;
  if (r & sign) f |= 0x80;
  if ((a ^ b) & (a ^ r) & sign) f |= 0x800;
  return f;
}

/** The SDM's definition of the string instructions with 16-bit addressing (SI, DI, CX). */
function model(c: Case16): { regs: number[]; flags: number | null; mem: Uint8Array } {
  const mem = c.mem.slice();
  const base = (s: string) => (s === 'es' ? ES_BASE : s === 'ss' ? SS_BASE : DS_BASE) - DS_BASE;
  const srcBase = base(c.seg), dstBase = c.sameSeg ? base(c.seg) : ES_BASE - DS_BASE;
  const rd = (b: number, off: number) => { let v = 0; for (let k = 0; k < c.size; k++) v |= mem[b + ((off + k) & 0xffff)] << (8 * k); return v >>> 0; };
  const wr = (b: number, off: number, v: number) => { for (let k = 0; k < c.size; k++) mem[b + ((off + k) & 0xffff)] = (v >>> (8 * k)) & 0xff; };
  let eax = c.eax >>> 0, si = c.esi & 0xffff, di = c.edi & 0xffff, cx = c.ecx & 0xffff;
  let flags: number | null = null;
  const d = c.df ? -c.size : c.size;
  const accMask = c.size === 4 ? 0xffffffff : c.size === 2 ? 0xffff : 0xff;
  for (;;) {
    if (c.rep && cx === 0) break;
    let eq = true;
    switch (c.op) {
      case 'movs': wr(dstBase, di, rd(srcBase, si)); si += d; di += d; break;
      case 'stos': wr(dstBase, di, eax & accMask); di += d; break;
      case 'lods': { const v = rd(srcBase, si); eax = ((eax & ~accMask) | v) >>> 0; si += d; break; }
      case 'cmps': { const a = rd(srcBase, si), b = rd(dstBase, di); flags = subFlags(a, b, c.size); eq = a === b; si += d; di += d; break; }
      case 'scas': { const b = rd(dstBase, di); flags = subFlags(eax & accMask, b, c.size); eq = (eax & accMask) >>> 0 === b; di += d; break; }
    }
    si &= 0xffff; di &= 0xffff;
    if (!c.rep) break;
    cx = (cx - 1) & 0xffff;
    if (cx === 0) break;
    if ((c.op === 'cmps' || c.op === 'scas') && eq !== (c.rep === 0xf3)) break;
  }
  const hi = (v: number) => v & 0xffff0000;
  return { regs: [eax, (hi(c.ecx) | cx) >>> 0, (hi(c.esi) | si) >>> 0, (hi(c.edi) | di) >>> 0], flags, mem };
}

const case16: fc.Arbitrary<Case16> = fc.record({
  op: fc.constantFrom<Op>('movs', 'cmps', 'stos', 'lods', 'scas'), size: fc.constantFrom<1 | 2 | 4>(1, 2, 4),
  rep: fc.constantFrom<0 | 0xf3 | 0xf2>(0, 0xf3, 0xf2), seg: fc.constantFrom<'ds' | 'es' | 'ss'>('ds', 'es', 'ss'), sameSeg: fc.boolean(), df: fc.boolean(),
  eax: fc.nat({ max: 0xffffffff }), cx: fc.oneof(fc.nat({ max: 40 }), fc.constant(0)), hi: fc.tuple(fc.nat({ max: 0xffff }), fc.nat({ max: 0xffff }), fc.nat({ max: 0xffff })),
  si: fc.oneof(fc.nat({ max: 0xffff }), fc.nat({ max: 0x40 }), fc.integer({ min: 0xffc0, max: 0xffff })),
  di: fc.oneof(fc.nat({ max: 0xffff }), fc.nat({ max: 0x40 }), fc.integer({ min: 0xffc0, max: 0xffff })),
  seed: fc.nat({ max: 0xffffffff }), sparse: fc.boolean(),
}).map(({ op, size, rep, seg, sameSeg, df, eax, cx, hi, si, di, seed, sparse }) => {
  const mem = new Uint8Array(3 * 0x10000);
  let x = seed || 1;
  for (let k = 0; k < mem.length; k++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; mem[k] = sparse ? ((x & 7) === 0 ? 0x41 : 0) : x & 0xff; }
  // elements never straddle the 64 KiB wrap (that is #GP in real mode): align to the size
  si &= ~(size - 1); di &= ~(size - 1);
  return { op, size, rep, seg, sameSeg, df, eax, ecx: ((hi[0] << 16) | cx) >>> 0, esi: ((hi[1] << 16) | si) >>> 0, edi: ((hi[2] << 16) | di) >>> 0, mem };
});

function runCase16(c: Case16): { regs: number[]; flags: number; mem: Uint8Array; rig: Rig } {
  const segPrefix = { es: 0x26, ss: 0x36, ds: 0x3e }[c.seg];
  const code = [...(c.rep ? [c.rep] : []), ...(c.size === 4 ? [0x66] : []), segPrefix, OPS[c.op] + (c.size === 1 ? 0 : 1)];
  const rig = makeRig(code, { mode: 'real' });
  const { cpu, mem } = rig;
  mem.writeBytes(DS_BASE, c.mem);
  cpu.loadSegCache(DS, DS_BASE >>> 4, DS_BASE, 0xffff, 0x93);
  cpu.loadSegCache(SS, SS_BASE >>> 4, SS_BASE, 0xffff, 0x93);
  const es = c.sameSeg ? (c.seg === 'es' ? ES_BASE : c.seg === 'ss' ? SS_BASE : DS_BASE) : ES_BASE;
  cpu.loadSegCache(ES, es >>> 4, es, 0xffff, 0x93);
  cpu.r[0] = c.eax; cpu.r[1] = c.ecx; cpu.r[6] = c.esi; cpu.r[7] = c.edi;
  cpu.setEflags(c.df ? 0x400 : 0, 0x400);
  runRig(rig);
  return { regs: [cpu.r[0] >>> 0, cpu.r[1] >>> 0, cpu.r[6] >>> 0, cpu.r[7] >>> 0], flags: cpu.getEflags() & SUB_FLAGS, mem: mem.readBytes(DS_BASE, 3 * 0x10000), rig };
}

describe('string instructions with 16-bit addressing (real mode) vs the SDM definition', () => {
  it('SI/DI/CX wrap at 64 KiB, the upper halves are kept, REP/REPE/REPNE and DF as defined', () => {
    fc.assert(fc.property(case16, (c) => {
      const want = model(c);
      const got = runCase16(c);
      expect(got.rig.rec.last?.vector).toBe(6); // ran to the UD2 marker
      expect(got.regs.map((v) => v.toString(16))).toEqual(want.regs.map((v) => v.toString(16)));
      if (want.flags !== null) expect(got.flags.toString(16)).toBe(want.flags.toString(16));
      expect(Buffer.compare(Buffer.from(got.mem), Buffer.from(want.mem))).toBe(0);
    }), { numRuns: 1000, seed: SEED });
  });
});

// =================================================================== interruption and resumption

/** Flat 32-bit CPL 0; `rep movsd` of n dwords from 0x40000 to 0x80000 (pages crossed on the way). */
function repMovsRig(n: number, code = [0xf3, 0xa5]): Rig {
  const r = makeRig(code, { mode: 'flat32' });
  const src = Uint8Array.from({ length: n * 4 }, (_, k) => (k * 7 + (k >>> 8)) & 0xff);
  r.mem.writeBytes(0x40000, src);
  r.cpu.r[1] = n; r.cpu.r[6] = 0x40000; r.cpu.r[7] = 0x80000;
  return r;
}

describe('REP string instructions are interruptible', () => {
  const N = 5000; // 20,000 bytes: about five pages
  it('stops at quantum boundaries with EIP on the instruction and resumes exactly', () => {
    const straight = repMovsRig(N);
    runRig(straight);
    expect(endedAtMarker(straight, 2)).toBe(true);

    const r = repMovsRig(N);
    const { cpu } = r;
    let stops = 0;
    while (r.rec.events.length === 0) {
      cpu.run(cpu.cycles + 700);
      if (r.rec.events.length > 0) break;
      stops++;
      const done = N - (cpu.r[1] >>> 0);
      expect(cpu.eip).toBe(CODE);
      expect(done).toBeGreaterThan(0);
      expect(done).toBeLessThan(N);
      expect(cpu.r[6] >>> 0).toBe(0x40000 + 4 * done);
      expect(cpu.r[7] >>> 0).toBe(0x80000 + 4 * done);
      // exactly the elements done so far are copied
      expect(Buffer.compare(Buffer.from(r.mem.readBytes(0x80000, 4 * done + 4)), Buffer.from([...r.mem.readBytes(0x40000, 4 * done), 0, 0, 0, 0]))).toBe(0);
    }
    expect(stops).toBeGreaterThan(5);
    expect(endedAtMarker(r, 2)).toBe(true);
    expect(Array.from(cpu.r.subarray(0, 8))).toEqual(Array.from(straight.cpu.r.subarray(0, 8)));
    expect(Buffer.compare(Buffer.from(r.mem.readBytes(0x80000, 4 * N)), Buffer.from(r.mem.readBytes(0x40000, 4 * N)))).toBe(0);
    // each resumption charges the class cost again; the elements cost the same in total
    expect(cpu.cycles - straight.cpu.cycles).toBe(stops * insnCosts.string.cycles);
  });

  it('each quantum runs as many elements as its cycles allow (stringIteration each)', () => {
    const r = repMovsRig(N);
    const { cpu } = r;
    const q = 100;
    cpu.run(q);
    // the TLB-miss cycles of the first pages are part of the quantum too, so at most q elements
    const done = N - (cpu.r[1] >>> 0);
    expect(done).toBeGreaterThan(q / extraCosts.stringIteration.cycles - 40);
    expect(done).toBeLessThanOrEqual(q / extraCosts.stringIteration.cycles);
    expect(cpu.cycles).toBeGreaterThanOrEqual(q);
  });

  it('an interrupt arriving mid-copy is taken at the REP instruction, which then completes', () => {
    const r = repMovsRig(N);
    const { cpu } = r;
    cpu.intc = new OneShotIrq(cpu, 2000);
    r.rec.onEvent = (_c, t) => t.vector === 0x20; // the host handles the interrupt and continues
    // quanta of 500 cycles: the pending interrupt is seen at the next boundary
    for (let k = 0; k < 1000 && !endedAtMarker(r, 2); k++) cpu.run(cpu.cycles + 500);
    const irq = r.rec.events.find((e) => e.vector === 0x20);
    expect(irq).toBeDefined();
    expect(irq!.eip).toBe(CODE);
    expect(irq!.ecx).toBeGreaterThan(0);
    expect(irq!.ecx).toBeLessThan(N);
    expect(endedAtMarker(r, 2)).toBe(true);
    expect(cpu.r[1]).toBe(0);
    expect(Buffer.compare(Buffer.from(r.mem.readBytes(0x80000, 4 * N)), Buffer.from(r.mem.readBytes(0x40000, 4 * N)))).toBe(0);
  });

  it('a page fault mid-copy leaves the registers at the faulting element and the copy resumes', () => {
    const r = repMovsRig(N);
    const { cpu, mem } = r;
    // identity paging for the first MiB, with destination page 0x82000 not present
    const PD = 0xc0000, PT = 0xc1000;
    mem.write(PD, 4, PT | 3);
    for (let p = 0; p < 256; p++) mem.write(PT + p * 4, 4, (p << 12) | 3);
    mem.write(PT + 0x82 * 4, 4, 0x82000); // not present
    cpu.cr3 = PD;
    cpu.cr0 |= 0x80000000;
    cpu.updateMode();
    cpu.flushTlbAll();
    r.rec.onEvent = (c, t) => {
      if (t.vector !== 14) return false;
      c.mem.write(PT + 0x82 * 4, 4, 0x82003); // the host maps the page and lets it resume
      return true;
    };
    runRig(r);
    const pf = r.rec.events[0];
    expect(pf).toMatchObject({ vector: 14, errorCode: 2, eip: CODE });
    expect(pf.ecx).toBe(N - 0x2000 / 4); // the first dword of page 0x82000 faulted
    expect(cpu.cr2 >>> 0).toBe(0x82000);
    expect(endedAtMarker(r, 2)).toBe(true);
    expect(Buffer.compare(Buffer.from(mem.readBytes(0x80000, 4 * N)), Buffer.from(mem.readBytes(0x40000, 4 * N)))).toBe(0);
  });
});

// =================================================================== the fast path is exact

/** The same copy as `rep movsd` (fast path) and as a loop of single `movsd` (per element). */
function tlbCounts(code: number[], n: number, equal = false): { misses: number; refs: number; data: Uint8Array; ecx: number } {
  const r = repMovsRig(n, code);
  const { cpu, mem } = r;
  if (equal) mem.writeBytes(0x80000, mem.readBytes(0x40000, 4 * n));
  const PD = 0xc0000, PT = 0xc1000;
  mem.write(PD, 4, PT | 3);
  for (let p = 0; p < 256; p++) mem.write(PT + p * 4, 4, (p << 12) | 3);
  cpu.cr3 = PD; cpu.cr0 |= 0x80000000; cpu.updateMode(); cpu.flushTlbAll();
  const m0 = cpu.stats.dtlbMisses, w0 = cpu.stats.walkRefs;
  runRig(r);
  expect(endedAtMarker(r, code.length)).toBe(true);
  return { misses: cpu.stats.dtlbMisses - m0, refs: cpu.stats.walkRefs - w0, data: mem.readBytes(0x80000, 4 * n), ecx: cpu.r[1] };
}

describe('the REP MOVS/STOS fast path', () => {
  it('sees the same data-TLB misses and walk references as element-by-element execution', () => {
    const n = 3000; // 12,000 bytes: 3 source and 3 destination pages
    const fast = tlbCounts([0xf3, 0xa5], n);
    const slow = tlbCounts([0xa5, 0xe2, 0xfd], n); // l: movsd; loop l
    expect(fast.misses).toBe(slow.misses);
    expect(fast.refs).toBe(slow.refs);
    expect(fast.misses).toBeGreaterThanOrEqual(6);
    expect(Buffer.compare(Buffer.from(fast.data), Buffer.from(slow.data))).toBe(0);
  });
  it('so does REPE CMPSD compared with a CMPSD/LOOPE loop', () => {
    const fast = tlbCounts([0xf3, 0xa7], 3000, true);
    const slow = tlbCounts([0xa7, 0xe1, 0xfd], 3000, true); // l: cmpsd; loope l
    expect(fast.ecx).toBe(0);
    expect(slow.ecx).toBe(0);
    expect(fast.misses).toBe(slow.misses);
    expect(fast.refs).toBe(slow.refs);
  });

  it('stores into a page holding decoded code invalidate it (self-modifying REP MOVSB)', () => {
    // L: mov eax, 1; cmp ebx, 0; jne done; inc ebx; mov ecx, 5; mov esi, 0x40000; mov edi, L;
    //    mov edx, [esi]; mov edx, [edi] (data reads: the TLB mirror now maps both pages, the code
    //    page read-only, so the REP MOVSB takes the fast path at once, and must not write there);
    //    rep movsb; jmp L; done:
    const L = CODE;
    const code = [
      0xb8, 1, 0, 0, 0, 0x83, 0xfb, 0x00, 0x75, 0x18, 0x43, 0xb9, 5, 0, 0, 0,
      0xbe, ...le32(0x40000), 0xbf, ...le32(L), 0x8b, 0x16, 0x8b, 0x17, 0xf3, 0xa4, 0xeb, 0xde,
    ];
    const r = makeRig(code, { mode: 'flat32' });
    r.mem.writeBytes(0x40000, Uint8Array.from([0xb8, 2, 0, 0, 0])); // mov eax, 2
    runRig(r);
    expect(endedAtMarker(r, code.length)).toBe(true);
    expect(r.cpu.r[0]).toBe(2);
    expect(r.cpu.code.invalidations).toBeGreaterThan(0);
  });

  it('REP STOSD over several pages, then REP STOSB at odd addresses, fill exactly', () => {
    const code = [0xf3, 0xab, 0x89, 0xd1, 0x47, 0xf3, 0xaa]; // rep stosd; mov ecx, edx; inc edi; rep stosb
    const r = makeRig(code, { mode: 'flat32' });
    const { cpu, mem } = r;
    mem.writeBytes(0x40000, new Uint8Array(0x4000).fill(0xee));
    cpu.r[0] = 0x11223344; cpu.r[1] = 0x900; cpu.r[2] = 0x1003; cpu.r[7] = 0x40002;
    runRig(r);
    expect(endedAtMarker(r, code.length)).toBe(true);
    const out = mem.readBytes(0x40000, 0x4000);
    const want = new Uint8Array(0x4000).fill(0xee);
    for (let k = 0; k < 0x900 * 4; k++) want[2 + k] = [0x44, 0x33, 0x22, 0x11][k & 3];
    want.fill(0x44, 2 + 0x2400 + 1, 2 + 0x2400 + 1 + 0x1003);
    expect(Buffer.compare(Buffer.from(out), Buffer.from(want))).toBe(0);
    expect(cpu.r[7] >>> 0).toBe(0x40002 + 0x2400 + 1 + 0x1003);
  });
});
