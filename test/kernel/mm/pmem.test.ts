// The physical memory manager against a reference model (fast-check commands, the model kept
// with immer): blocks never overlap, are aligned, lie inside usable RAM and have the type asked
// for; an allocation fails only when no free range can hold it, and then changes nothing; frees
// coalesce, so that after everything is freed the largest free block is back.
import fc from 'fast-check';
import { produce } from 'immer';
import { describe, expect, it } from 'vitest';
import type { MemRange } from '../../../hw/boot/multiboot.ts';
import { pcMemoryMap } from '../../../hw/boot/multiboot.ts';
import { type OwnerType, PAGE_SIZE, Pmem, type PmemType } from '../../../kernel/mm/pmem.ts';
import { SEED } from '../../native/diff.ts';

const MiB = 1 << 20, GiB = 1 << 30;
const meter = () => ({ cycles: 0 });

/**
 * A machine with holes: low RAM, the firmware hole, RAM from 1 MiB to 15 MiB, a reserved
 * 64 KiB range, RAM again to 24 MiB. The kernel reserves the low 1 MiB and its image at 1-2 MiB.
 */
const MAP: MemRange[] = [
  { base: 0, length: 0x9fc00, type: 1 },
  { base: 0x9fc00, length: 0x400, type: 2 },
  { base: 0xf0000, length: 0x10000, type: 2 },
  { base: MiB, length: 14 * MiB, type: 1 },
  { base: 15 * MiB, length: 0x10000, type: 2 },
  { base: 15 * MiB + 0x10000, length: 9 * MiB - 0x10000, type: 1 },
];
const USABLE: [number, number][] = [[0, 0x9f000], [MiB, 15 * MiB], [15 * MiB + 0x10000, 24 * MiB]];
const KERNEL: [number, number][] = [[0, 0x9f000], [MiB, 2 * MiB]];
const fresh = () => new Pmem(MAP, { reserve: [{ base: MiB, size: MiB }] });

interface Block { base: number; size: number; type: OwnerType }
interface State { blocks: Block[] }
interface Model { s: State }

/** Free ranges of the model: usable RAM minus the kernel's reservations and the blocks. */
function gaps(s: State): [number, number][] {
  const used = [...KERNEL, ...s.blocks.map((b): [number, number] => [b.base, b.base + b.size])].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [ua, ub] of USABLE) {
    let at = ua;
    for (const [a, b] of used) {
      if (b <= at || a >= ub) continue;
      if (a > at) out.push([at, a]);
      at = Math.max(at, b);
    }
    if (at < ub) out.push([at, ub]);
  }
  return out;
}

function fits(g: [number, number], size: number, align: number, phase: number): number {
  const s = g[0] + ((((phase - g[0]) % align) + align) % align);
  return s + size <= g[1] ? s : -1;
}

function modelType(s: State, addr: number): PmemType {
  for (const b of s.blocks) if (addr >= b.base && addr < b.base + b.size) return b.type;
  if (KERNEL.some(([a, b]) => addr >= a && addr < b)) return 'kernel';
  if (USABLE.some(([a, b]) => addr >= a && addr < b)) return 'free';
  return 'reserved';
}

/** Outcomes seen, so that the test fails if the generators stop reaching a path. */
const seen = new Set<string>();

const freeBytes = (s: State) => gaps(s).reduce((n, [a, b]) => n + b - a, 0);

class Alloc implements fc.Command<Model, Pmem> {
  constructor(readonly pages: number, readonly alignLog: number, readonly phasePages: number, readonly type: OwnerType) {}
  check(): boolean { return true; }
  run(m: Model, p: Pmem): void {
    const align = 2 ** this.alignLog;
    const phase = (this.phasePages * PAGE_SIZE) % align;
    const size = this.pages * PAGE_SIZE;
    const before = p.regions();
    const r = p.alloc(meter(), { size, align, phase, type: this.type });
    const gs = gaps(m.s);
    const candidates = gs.filter((g) => fits(g, size, align, phase) >= 0);
    if (!r.ok) {
      expect(r.error).toBe('ENOMEM');
      expect(candidates).toEqual([]);
      expect(p.regions()).toEqual(before);
      seen.add('alloc ENOMEM');
      return;
    }
    seen.add('alloc');
    const base = r.value;
    expect(base % align).toBe(phase);
    const g = gs.find(([a, b]) => base >= a && base + size <= b);
    expect(g, `block ${base.toString(16)}+${size.toString(16)} lies in a free range`).toBeDefined();
    // best fit: the smallest free range that can hold it, the lowest of equal ones, its lowest fitting address
    const best = candidates.reduce((x, y) => (y[1] - y[0] < x[1] - x[0] ? y : x));
    expect(g).toEqual(best);
    expect(base).toBe(fits(best, size, align, phase));
    for (const a of [base, base + size - PAGE_SIZE, base + (this.pages >> 1) * PAGE_SIZE]) expect(p.typeOf(a)).toBe(this.type);
    m.s = produce(m.s, (d) => { d.blocks.push({ base, size, type: this.type }); });
    expect(p.freeBytes).toBe(freeBytes(m.s));
  }
  toString(): string { return `alloc(${this.pages}p, 2^${this.alignLog}, +${this.phasePages}p, ${this.type})`; }
}

/** Frees a whole block, or its head, tail or middle. */
class Free implements fc.Command<Model, Pmem> {
  constructor(readonly pick: number, readonly part: 'all' | 'head' | 'tail' | 'middle') {}
  check(m: Readonly<Model>): boolean { return m.s.blocks.length > 0; }
  run(m: Model, p: Pmem): void {
    const k = this.pick % m.s.blocks.length;
    const b = m.s.blocks[k];
    const pages = b.size / PAGE_SIZE;
    let from = 0, n = pages;
    if (pages >= 2 && this.part === 'head') n = pages >> 1;
    if (pages >= 2 && this.part === 'tail') { from = pages >> 1; n = pages - from; }
    if (pages >= 3 && this.part === 'middle') { from = 1; n = pages - 2; }
    const a = b.base + from * PAGE_SIZE, size = n * PAGE_SIZE;
    const r = p.free(meter(), a, size, b.type);
    expect(r.ok).toBe(true);
    m.s = produce(m.s, (d) => {
      d.blocks.splice(k, 1);
      if (from > 0) d.blocks.push({ base: b.base, size: from * PAGE_SIZE, type: b.type });
      if (from + n < pages) d.blocks.push({ base: a + size, size: b.size - from * PAGE_SIZE - size, type: b.type });
    });
    expect(p.typeOf(a)).toBe('free');
    expect(p.freeBytes).toBe(freeBytes(m.s));
    seen.add(n === pages ? 'free' : 'free part');
  }
  toString(): string { return `free(#${this.pick}, ${this.part})`; }
}

/** A free that covers a page that is not allocated (free or reserved) must fail and change nothing. */
class BadFree implements fc.Command<Model, Pmem> {
  constructor(readonly addrPage: number, readonly pages: number) {}
  check(): boolean { return true; }
  run(m: Model, p: Pmem): void {
    const a = this.addrPage * PAGE_SIZE, size = this.pages * PAGE_SIZE;
    let allAllocated = true;
    for (let x = a; x < a + size; x += PAGE_SIZE) {
      const t = modelType(m.s, x);
      if (t === 'free' || t === 'reserved') allAllocated = false;
    }
    if (allAllocated) return;
    const before = p.regions();
    const r = p.free(meter(), a, size);
    expect(r.ok).toBe(false);
    expect(p.regions()).toEqual(before);
    seen.add('bad free');
  }
  toString(): string { return `badFree(${this.addrPage}p, ${this.pages}p)`; }
}

class Claim implements fc.Command<Model, Pmem> {
  constructor(readonly addrPage: number, readonly pages: number) {}
  check(): boolean { return true; }
  run(m: Model, p: Pmem): void {
    const a = this.addrPage * PAGE_SIZE, size = this.pages * PAGE_SIZE;
    const free = gaps(m.s).some(([x, y]) => a >= x && a + size <= y);
    const before = p.regions();
    const r = p.claim(meter(), a, size, 'vmm');
    expect(r.ok).toBe(free);
    seen.add(r.ok ? 'claim' : 'claim refused');
    if (!r.ok) { expect(p.regions()).toEqual(before); return; }
    m.s = produce(m.s, (d) => { d.blocks.push({ base: a, size, type: 'vmm' }); });
    expect(p.freeBytes).toBe(freeBytes(m.s));
  }
  toString(): string { return `claim(${this.addrPage}p, ${this.pages}p)`; }
}

class Query implements fc.Command<Model, Pmem> {
  constructor(readonly addr: number) {}
  check(): boolean { return true; }
  run(m: Model, p: Pmem): void {
    expect(p.typeOf(this.addr)).toBe(modelType(m.s, this.addr));
    expect(p.largestFree()).toBe(Math.max(0, ...gaps(m.s).map(([a, b]) => b - a)));
  }
  toString(): string { return `typeOf(0x${this.addr.toString(16)})`; }
}

const TOP_PAGE = (25 * MiB) / PAGE_SIZE;
const commands = [
  fc.tuple(fc.oneof(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 1, max: 1024 }), fc.integer({ min: 1, max: 4096 })),
    fc.integer({ min: 12, max: 23 }), fc.nat(1024), fc.constantFrom<OwnerType>('user', 'vmm', 'kernel'))
    .map(([n, al, ph, t]) => new Alloc(n, al, ph, t)),
  fc.tuple(fc.nat(), fc.constantFrom('all', 'head', 'tail', 'middle') as fc.Arbitrary<'all' | 'head' | 'tail' | 'middle'>)
    .map(([k, part]) => new Free(k, part)),
  fc.tuple(fc.nat(TOP_PAGE), fc.integer({ min: 1, max: 64 })).map(([a, n]) => new BadFree(a, n)),
  fc.tuple(fc.nat(TOP_PAGE), fc.integer({ min: 1, max: 256 })).map(([a, n]) => new Claim(a, n)),
  fc.nat(25 * MiB - 1).map((a) => new Query(a)),
];

describe('pmem', () => {
  it('matches the reference model; freeing everything gives back the largest block', () => {
    const initialLargest = fresh().largestFree();
    fc.assert(fc.property(fc.commands(commands, { maxCommands: 60, size: 'max' }), (cmds) => {
      const state: { m: Model; p: Pmem } = { m: { s: { blocks: [] } }, p: fresh() };
      fc.modelRun(() => ({ model: state.m, real: state.p }), cmds);
      for (const b of state.m.s.blocks) expect(state.p.free(meter(), b.base, b.size, b.type).ok).toBe(true);
      expect(state.p.freeBytes).toBe(freeBytes({ blocks: [] }));
      expect(state.p.largestFree()).toBe(initialLargest);
      expect(state.p.regions()).toEqual(fresh().regions());
    }), { seed: SEED, numRuns: 150 });
    for (const k of ['alloc', 'alloc ENOMEM', 'free', 'free part', 'bad free', 'claim', 'claim refused']) expect(seen.has(k), k).toBe(true);
  });

  it('is deterministic: the same calls give the same addresses', () => {
    fc.assert(fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 2048 }), fc.integer({ min: 12, max: 22 }), fc.boolean()), { maxLength: 40 }), (ops) => {
      const run = () => {
        const p = fresh();
        const got: number[] = [];
        ops.forEach(([n, al, f], k) => {
          const r = p.alloc(meter(), { size: n * PAGE_SIZE, align: 2 ** al, type: 'user' });
          got.push(r.ok ? r.value : -1);
          if (f && k > 0 && got[k - 1] >= 0) p.free(meter(), got[k - 1], ops[k - 1][0] * PAGE_SIZE);
        });
        return got;
      };
      expect(run()).toEqual(run());
    }), { seed: SEED, numRuns: 50 });
  });

  it('types the low memory and the reservations as kernel, firmware ranges and holes as reserved', () => {
    const p = fresh();
    expect(p.typeOf(0)).toBe('kernel');
    expect(p.typeOf(0x9e000)).toBe('kernel');
    expect(p.typeOf(0x9fc00)).toBe('reserved');
    expect(p.typeOf(0xb8000)).toBe('reserved');
    expect(p.typeOf(MiB + 0x5000)).toBe('kernel');
    expect(p.typeOf(2 * MiB)).toBe('free');
    expect(p.typeOf(15 * MiB)).toBe('reserved');
    expect(p.typeOf(24 * MiB)).toBe('reserved');
    expect(p.usableBytes).toBe(USABLE.reduce((n, [a, b]) => n + b - a, 0));
    expect(p.freeBytes).toBe(13 * MiB + 9 * MiB - 0x10000);
    expect(p.regions().filter((r) => r.type !== 'reserved')).toEqual([
      { base: 0, size: 0x9f000, type: 'kernel' },
      { base: MiB, size: MiB, type: 'kernel' },
      { base: 2 * MiB, size: 13 * MiB, type: 'free' },
      { base: 15 * MiB + 0x10000, size: 9 * MiB - 0x10000, type: 'free' },
    ]);
  });

  it('rejects bad requests with EINVAL and runs out with ENOMEM, changing nothing', () => {
    const p = fresh();
    const m = meter();
    expect(p.alloc(m, { size: 0, type: 'user' })).toEqual({ ok: false, error: 'EINVAL' });
    expect(p.alloc(m, { size: 4096, align: 3 * 4096, type: 'user' })).toEqual({ ok: false, error: 'EINVAL' });
    expect(p.alloc(m, { size: 4096, align: 8192, phase: 8192, type: 'user' })).toEqual({ ok: false, error: 'EINVAL' });
    expect(p.free(m, 2 * MiB + 1, 4096)).toEqual({ ok: false, error: 'EINVAL' });
    expect(p.free(m, 2 * MiB, 4096)).toEqual({ ok: false, error: 'EINVAL' });       // not allocated
    expect(p.free(m, 0, 4096, 'user')).toEqual({ ok: false, error: 'EINVAL' });     // kernel memory, not user
    const before = p.regions();
    expect(p.alloc(m, { size: 14 * MiB, type: 'user' })).toEqual({ ok: false, error: 'ENOMEM' });
    expect(p.regions()).toEqual(before);
    // fill memory with 1 MiB blocks until it runs out; the last failure leaves the rest intact
    const got: number[] = [];
    for (;;) {
      const r = p.alloc(m, { size: MiB, type: 'user' });
      if (!r.ok) { expect(r.error).toBe('ENOMEM'); break; }
      got.push(r.value);
    }
    expect(got.length).toBe(13 + 8);
    expect(p.largestFree()).toBe(MiB - 0x10000);
    for (const b of got) expect(p.free(m, b, MiB).ok).toBe(true);
    expect(p.largestFree()).toBe(13 * MiB);
    expect(m.cycles).toBeGreaterThan(0);
  });

  it('places a 1 GiB guest memory in any contiguous free range (no buddy alignment needed)', () => {
    const p = new Pmem(pcMemoryMap(1536 * MiB));
    // [1 MiB, 1.5 GiB) is free; no 1 GiB-aligned 1 GiB range is (the low 1 MiB is the kernel's)
    expect(p.alloc(meter(), { size: GiB, align: GiB, type: 'vmm' }).ok).toBe(false);
    const r = p.alloc(meter(), { size: GiB, align: 4 * MiB, type: 'vmm' });
    expect(r).toEqual({ ok: true, value: 4 * MiB });
    expect(p.typeOf(4 * MiB + GiB - 1)).toBe('vmm');
    const q = new Pmem(pcMemoryMap(3 * GiB));
    expect(q.alloc(meter(), { size: GiB, align: GiB, type: 'vmm' })).toEqual({ ok: true, value: GiB });
  });

  it('aligns with a phase (base % align === phase)', () => {
    const p = fresh();
    const r = p.alloc(meter(), { size: 5 * MiB, align: 4 * MiB, phase: 0x123000, type: 'user' });
    expect(r.ok && r.value % (4 * MiB)).toBe(0x123000);
  });
});
