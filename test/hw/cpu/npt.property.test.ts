// Property tests of the two-dimensional walk (fast-check, the fixed seed of test/native/diff.ts).
//
// Each case is a random guest (paging off, 2-level with or without PSE, PAE with or without NXE)
// whose walk for a random linear address goes through randomly flagged entries (present or not,
// R/W, U/S, PS, A/D, NX, reserved bits) in a random set of guest-physical pages, and a random
// nested mapping of those pages (present or not, R/W, U/S, NX, some unmapped) plus a 4 MiB region
// mapped by large or 4 KiB nested pages, in one of the four nested formats.
//
// The oracle composes the two walks from their definitions: the guest walk is the core's own
// host-mode walk (paging.ts, tested on its own in paging.test.ts) run over a flat image of
// guest-physical memory, and the nested walk is a plain lookup in the mapping the case was built
// from. Each guest table entry the guest walk reads is checked against the nested mapping first,
// in walk order (a nested fault there is NPF with bit 33 at that entry's address), then the
// guest walk's own faults (#PF), then the final guest-physical address (NPF with bit 32). The
// core, running the case in guest mode on host memory built from the same description, must give
// the same outcome, the same guest A/D bits in memory, and exactly the predicted number of
// references: (n+1)(m+1)-1 with 4 KiB pages everywhere, fewer with large pages.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ACC_EXEC, ACC_READ, ACC_WRITE } from '../../../hw/cpu/access.ts';
import { Cpu } from '../../../hw/cpu/cpu.ts';
import { NPF_HI_FINAL, NPF_HI_TABLE, NPT_HASHED, NPT_LEGACY, NPT_LONG, NPT_PAE, NptBuilder, VMEXIT_NPF } from '../../../hw/cpu/npt.ts';
import { walk, type WalkResult } from '../../../hw/cpu/paging.ts';
import { SvmGuest } from '../../../hw/cpu/svm.ts';
import { VmcbView } from '../../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { SEED } from '../../native/diff.ts';

const MiB = 1 << 20;
const P = 1, W = 2, U = 4, RSVD = 8, ID = 16;
/** Host layout: nested tables from 16 MiB, the hashed table at 24 MiB, the pool's frames from 32 MiB, the region's at 48 MiB, the VMCB at 63 MiB. */
const TABLES = 16 * MiB, HASH = 24 * MiB, POOL_H = 32 * MiB, REGION_H = 48 * MiB, VMCB = 63 * MiB;
/** Guest-physical layout: the pool's pages below 4 MiB, the region [4 MiB, 8 MiB), gfn 5 never mapped. */
const REGION_G = 4 * MiB, REGION_SIZE = 4 * MiB, UNMAPPED_GFN = 5, POOL = 8;
const LEVELS = [2, 3, 4];
const HASH_LOG2 = 12;

interface Perm { mapped: boolean; present: boolean; w: boolean; u: boolean; nx: boolean }
interface Entry { p: boolean; w: boolean; u: boolean; ps: boolean; a: boolean; d: boolean; nx: boolean; rsv: boolean; next: number }
interface Case {
  fmt: number; mode: 'off' | '2level' | 'pae'; pse: boolean; nxe: boolean; wp: boolean; user: boolean;
  acc: number; acc2: number; lin: number; linOff: number; pool: number[]; cr3Sel: number; cr3Low: number;
  entries: Entry[]; nested: Perm[]; rot: number; regionLarge: boolean; region: Perm;
}

const percent = (n: number) => fc.integer({ min: 0, max: 99 }).map((x) => x < n);
const permArb = fc.record({ mapped: percent(95), present: percent(95), w: percent(90), u: percent(95), nx: percent(15) });
const entryArb = fc.record({
  p: percent(93), w: percent(80), u: percent(80), ps: percent(30), a: fc.boolean(), d: fc.boolean(),
  nx: percent(15), rsv: percent(4), next: fc.nat(),
});
const caseArb = (fmts: number[]): fc.Arbitrary<Case> => fc.record({
  fmt: fc.constantFrom(...fmts),
  mode: fc.constantFrom('off' as const, '2level' as const, 'pae' as const),
  pse: fc.boolean(), nxe: fc.boolean(), wp: fc.boolean(), user: fc.boolean(),
  acc: fc.constantFrom(ACC_READ, ACC_WRITE, ACC_EXEC), acc2: fc.constantFrom(ACC_READ, ACC_WRITE, ACC_EXEC),
  lin: fc.integer({ min: 0, max: 0xffffffff }), linOff: fc.integer({ min: 0, max: 8 * MiB - 1 }),
  pool: fc.uniqueArray(fc.integer({ min: 16, max: 1023 }), { minLength: POOL, maxLength: POOL }),
  cr3Sel: fc.nat(), cr3Low: fc.integer({ min: 0, max: 127 }),
  entries: fc.array(entryArb, { minLength: 3, maxLength: 3 }),
  nested: fc.array(permArb, { minLength: POOL, maxLength: POOL }),
  rot: fc.integer({ min: 0, max: 15 }), regionLarge: fc.boolean(), region: permArb,
});

/** A guest frame for a table or a 4 KiB page: a pool page, the never-mapped page, or a page of the region. */
function frameOf(c: Case, next: number): number {
  const k = next % 16;
  if (k < POOL) return c.pool[k] * 4096;
  if (k === POOL) return UNMAPPED_GFN * 4096;
  return REGION_G + ((next >>> 4) % 1024) * 4096;
}
function largeFrameOf(c: Case, next: number, shift: number): number {
  const choices = shift === 22 ? [0, REGION_G] : [0, REGION_G, REGION_G + 2 * MiB];
  return choices[next % choices.length];
}

/** The nested mapping of a guest-physical address: host address and permissions, or null. */
function nestedOf(c: Case, gpa: number): { hpa: number; perm: Perm; large: boolean } | null {
  if (gpa >= REGION_G && gpa < REGION_G + REGION_SIZE) return c.region.mapped ? { hpa: REGION_H + gpa - REGION_G, perm: c.region, large: c.regionLarge } : null;
  const i = c.pool.indexOf(Math.floor(gpa / 4096));
  if (i < 0 || !c.nested[i].mapped) return null;
  return { hpa: POOL_H + ((i * 5 + c.rot) % 16) * 4096 + (gpa & 0xfff), perm: c.nested[i], large: false };
}

type Out =
  | { k: 'ok'; pa: number }
  | { k: 'pf'; err: number; addr: number }
  | { k: 'npf'; info1: number; hi: number; gpa: number };

/** The nested translation by definition: a user access (a guest table access is a user write). */
function nestedRef(c: Case, gpa: number, acc: number): { fault: number } | { hpa: number; refs: number } {
  const hasNx = c.fmt !== NPT_LEGACY;
  const base = U | (acc === ACC_WRITE ? W : 0) | (acc === ACC_EXEC && hasNx ? ID : 0);
  const n = nestedOf(c, gpa);
  if (n === null || !n.perm.present) return { fault: base };
  const p = n.perm;
  if (!p.u || (acc === ACC_WRITE && !p.w) || (acc === ACC_EXEC && hasNx && p.nx)) return { fault: base | P };
  const m = c.fmt === NPT_HASHED ? 1 : LEVELS[c.fmt];
  return { hpa: n.hpa, refs: n.large ? (c.fmt === NPT_LONG ? 3 : c.fmt === NPT_PAE ? 2 : 1) : m };
}

class World {
  readonly g = new PhysMem(8 * MiB);
  readonly h = new PhysMem(64 * MiB);
  readonly cpu = new Cpu({ mem: this.h });
  readonly ref = new Cpu({ mem: this.g });
  private next = TABLES;
  private written = new Set<number>();
  /** Host pages holding copies of written guest pages. */
  private copied: number[] = [];
  builder!: NptBuilder;

  constructor() {
    this.cpu.svm = new SvmGuest(new VmcbView(this.h, VMCB));
  }

  /** Clears what the previous case wrote. */
  private clear(): void {
    for (const p of this.written) this.g.u8.fill(0, p * 4096, p * 4096 + 4096);
    this.h.u8.fill(0, TABLES, this.next);
    this.h.u8.fill(0, HASH, HASH + (8 << HASH_LOG2));
    for (const a of this.copied) this.h.u8.fill(0, a, a + 4096);
    this.written.clear();
    this.copied.length = 0;
    this.next = TABLES;
  }

  private gw(gpa: number, v: number): void {
    this.g.write(gpa, 4, v >>> 0);
    this.written.add(Math.floor(gpa / 4096));
  }

  /** Writes the guest's walk for c.lin into guest-physical memory; returns CR3. */
  private buildGuest(c: Case): number {
    const [e1, e2, e3] = c.entries;
    const lo = (e: Entry, frame: number, large: boolean) =>
      frame | (e.p ? 1 : 0) | (e.w ? 2 : 0) | (e.u ? 4 : 0) | (e.a ? 0x20 : 0) | (e.d ? 0x40 : 0) | (large ? 0x80 : 0);
    const hi = (e: Entry) => (e.nx ? 0x80000000 : 0) | (e.rsv ? 0x100 : 0);
    const lin = c.lin >>> 0;
    if (c.mode === '2level') {
      const cr3 = frameOf(c, c.cr3Sel);
      const large = e1.ps;
      const f1 = large ? largeFrameOf(c, e1.next, 22) : frameOf(c, e1.next);
      this.gw(cr3 + (lin >>> 22) * 4, lo(e1, f1, large));
      // without CR4.PSE a PS entry still points to a page table
      if (!large || !c.pse) this.gw(f1 + ((lin >>> 12) & 0x3ff) * 4, lo(e2, frameOf(c, e2.next), e2.ps));
      return cr3;
    }
    const cr3 = frameOf(c, c.cr3Sel) + c.cr3Low * 32;
    const pd = frameOf(c, e1.next);
    this.gw(cr3 + (lin >>> 30) * 8, pd | (e1.p ? 1 : 0) | (e1.rsv ? 2 : 0));
    this.gw(cr3 + (lin >>> 30) * 8 + 4, 0);
    const large = e2.ps;
    const pdeA = pd + ((lin >>> 21) & 0x1ff) * 8;
    const f2 = large ? largeFrameOf(c, e2.next, 21) : frameOf(c, e2.next);
    this.gw(pdeA, lo(e2, f2, large));
    this.gw(pdeA + 4, hi(e2));
    if (!large) {
      const pteA = f2 + ((lin >>> 12) & 0x1ff) * 8;
      this.gw(pteA, lo(e3, frameOf(c, e3.next), e3.ps));
      this.gw(pteA + 4, hi(e3));
    }
    return cr3;
  }

  /** Builds the case: guest tables in G, nested tables and the mapped guest pages in H; sets up both cores. */
  setup(c: Case, fmt = c.fmt): void {
    this.clear();
    const cr3 = c.mode === 'off' ? 0 : this.buildGuest(c);
    const alloc = () => { const a = this.next; this.next += 4096; return a; };
    const b = new NptBuilder(this.h, fmt, alloc, { base: HASH, log2Slots: HASH_LOG2, largePages: c.regionLarge });
    this.builder = b;
    c.pool.forEach((gfn, i) => {
      const p = c.nested[i];
      if (p.mapped) b.map(gfn * 4096, POOL_H + ((i * 5 + c.rot) % 16) * 4096, 4096, { present: p.present, w: p.w, u: p.u, nx: p.nx });
    });
    const r = c.region;
    if (r.mapped) b.map(REGION_G, REGION_H, REGION_SIZE, { present: r.present, w: r.w, u: r.u, nx: r.nx }, !c.regionLarge);
    for (const p of this.written) {
      const n = nestedOf(c, p * 4096);
      if (n !== null) { this.h.writeBytes(n.hpa, this.g.readBytes(p * 4096, 4096)); this.copied.push(n.hpa); }
    }
    const cr0 = c.mode === 'off' ? 0x11 : 0x80000011 | (c.wp ? 0x10000 : 0);
    const cr4 = c.mode === 'pae' ? 0x20 : c.pse ? 0x10 : 0;
    const efer = c.mode === 'pae' && c.nxe ? 0x800 : 0;
    for (const cpu of [this.cpu, this.ref]) {
      cpu.cr0 = cr0; cpu.cr3 = cr3; cpu.cr4 = cr4; cpu.efer = efer;
      cpu.flushTlbAll();
    }
    const cpu = this.cpu;
    cpu.guest = true; cpu.npEnabled = true; cpu.nCr3 = b.nCr3; cpu.nptFormat = fmt;
  }

  /** The guest-physical addresses of the guest table entries the walk for lin reads, in order (from G). */
  private path(c: Case, lin: number): { gpas: number[]; pdpteRsvd: boolean } {
    const g = this.g, gpas: number[] = [];
    if (c.mode === 'off') return { gpas, pdpteRsvd: false };
    const cr3 = this.ref.cr3;
    if (c.mode === '2level') {
      const a = (cr3 & 0xfffff000) + (lin >>> 22) * 4;
      gpas.push(a);
      const pde = g.read(a, 4);
      if ((pde & 1) && !((pde & 0x80) && c.pse)) gpas.push((pde & 0xfffff000) + ((lin >>> 12) & 0x3ff) * 4);
      return { gpas, pdpteRsvd: false };
    }
    const a = (cr3 & 0xffffffe0) + (lin >>> 30) * 8;
    gpas.push(a);
    const lo = g.read(a, 4), hi = g.read(a + 4, 4);
    if ((lo & 1) === 0) return { gpas, pdpteRsvd: false };
    if ((lo & 0x1e6) !== 0 || (hi & 0xfffffff0) !== 0) return { gpas, pdpteRsvd: true };
    const pdeA = (lo & 0xfffff000) + ((lin >>> 21) & 0x1ff) * 8;
    gpas.push(pdeA);
    const pde = g.read(pdeA, 4), pdeHi = g.read(pdeA + 4, 4);
    const rsv = c.nxe ? 0x7ffffff0 : 0xfffffff0;
    if ((pde & 1) && (pdeHi & rsv) === 0 && (pde & 0x80) === 0) gpas.push((pde & 0xfffff000) + ((lin >>> 12) & 0x1ff) * 8);
    return { gpas, pdpteRsvd: false };
  }

  /** The expected outcome by composition, and the references a walk costs (null where not predicted). */
  expected(c: Case, lin: number, acc: number): { out: Out; refs: number | null; n: number; allSmall: boolean } {
    const { gpas, pdpteRsvd } = this.path(c, lin);
    let refs = 0, allSmall = true;
    for (const gpa of gpas) {
      const r = nestedRef(c, gpa, ACC_WRITE);
      if ('fault' in r) return { out: { k: 'npf', info1: r.fault, hi: NPF_HI_TABLE, gpa }, refs: null, n: gpas.length, allSmall };
      refs += r.refs + 1;
      if (nestedOf(c, gpa)!.large) allSmall = false;
    }
    const pfBase = (acc === ACC_WRITE ? W : 0) | (c.user ? U : 0) | (acc === ACC_EXEC && c.nxe && c.mode === 'pae' ? ID : 0);
    if (pdpteRsvd) return { out: { k: 'pf', err: pfBase | P | RSVD, addr: lin }, refs, n: gpas.length, allSmall };
    let gpa = lin;
    if (c.mode !== 'off') {
      const ref = this.ref;
      if (c.mode === 'pae') {
        // the PDPTE the walk uses, as MOV CR3 would have loaded it (the other three are never read here)
        const i = lin >>> 30, a = (ref.cr3 & 0xffffffe0) + i * 8;
        ref.pdpte[2 * i] = this.g.read(a, 4); ref.pdpte[2 * i + 1] = this.g.read(a + 4, 4);
      }
      const w: WalkResult = { phys: 0, flags: 0, large: false, refs: 0 };
      const f = walk(ref, lin, acc, c.user, w);
      if (f >= 0) return { out: { k: 'pf', err: f, addr: lin }, refs, n: gpas.length, allSmall };
      if (w.large) allSmall = false;
      gpa = w.phys + (lin & 0xfff);
    }
    const r = nestedRef(c, gpa, acc);
    if ('fault' in r) return { out: { k: 'npf', info1: r.fault, hi: NPF_HI_FINAL, gpa }, refs: null, n: gpas.length, allSmall };
    if (nestedOf(c, gpa)!.large) allSmall = false;
    return { out: { k: 'ok', pa: r.hpa }, refs: refs + r.refs, n: gpas.length, allSmall };
  }

  run(lin: number, acc: number, user: boolean): { out: Out; refs: number } {
    const cpu = this.cpu;
    const r0 = cpu.stats.walkRefs;
    let out: Out;
    try {
      out = { k: 'ok', pa: cpu.translate(lin, acc, user) };
    } catch (e) {
      if (!Cpu.isFault(e)) throw e;
      if (cpu.exitPending) {
        cpu.exitPending = false;
        const g = cpu.svm!;
        expect(g.exitCode).toBe(VMEXIT_NPF);
        out = { k: 'npf', info1: g.info1, hi: g.info1Hi, gpa: g.info2Hi * 0x100000000 + g.info2 };
      } else {
        expect(cpu.excVec).toBe(14);
        out = { k: 'pf', err: cpu.excErr, addr: cpu.pfAddr >>> 0 };
      }
    }
    return { out, refs: cpu.stats.walkRefs - r0 };
  }

  /** The guest pages the case wrote, as they are in host memory. */
  guestPages(c: Case): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const p of this.written) {
      const n = nestedOf(c, p * 4096);
      if (n !== null) out.push(this.h.readBytes(n.hpa, 4096));
    }
    return out;
  }

  /** Guest pages as the guest sees them in host memory, against the flat guest image. */
  guestPagesMatch(c: Case): boolean {
    for (const p of this.written) {
      const n = nestedOf(c, p * 4096);
      if (n === null) continue;
      const a = this.g.readBytes(p * 4096, 4096), b = this.h.readBytes(n.hpa, 4096);
      for (let i = 0; i < 4096; i++) if (a[i] !== b[i]) return false;
    }
    return true;
  }
}

const linOf = (c: Case) => (c.mode === 'off' ? c.linOff : c.lin >>> 0);
const RUNS = 5000;

describe('the two-dimensional walk (property)', () => {
  it(`is the composition of the guest walk and the nested walk, faults and reference counts included (${RUNS} cases)`, () => {
    const w = new World();
    const seen = { ok: 0, pf: 0, npfTable: 0, npfFinal: 0, formula: 0 };
    fc.assert(fc.property(caseArb([NPT_LEGACY, NPT_PAE, NPT_LONG, NPT_HASHED]), (c) => {
      w.setup(c);
      const lin = linOf(c);
      const exp = w.expected(c, lin, c.acc);
      const got = w.run(lin, c.acc, c.user);
      expect(got.out).toEqual(exp.out);
      if (exp.out.k === 'ok') seen.ok++;
      else if (exp.out.k === 'pf') seen.pf++;
      else if (exp.out.hi === NPF_HI_TABLE) seen.npfTable++;
      else seen.npfFinal++;
      if (exp.refs !== null && c.fmt !== NPT_HASHED) {
        expect(got.refs).toBe(exp.refs);
        if (exp.out.k === 'ok' && exp.allSmall) {
          // n guest levels (the path read) over m nested levels, 4 KiB pages everywhere
          const n = exp.n, m = LEVELS[c.fmt];
          expect(got.refs).toBe((n + 1) * (m + 1) - 1);
          seen.formula++;
        }
      }
      expect(w.guestPagesMatch(c)).toBe(true);
      // a second access to the same page, through whatever the first left in the TLB
      const lin2 = (lin ^ 0x10) >>> 0;
      const exp2 = w.expected(c, lin2, c.acc2);
      const got2 = w.run(lin2, c.acc2, c.user);
      expect(got2.out).toEqual(exp2.out);
      expect(w.guestPagesMatch(c)).toBe(true);
    }), { seed: SEED, numRuns: RUNS });
    if (process.env.NPT_REPORT) console.log('outcomes of the first access:', seen);
    // the generator reaches every outcome often
    for (const v of Object.values(seen)) expect(v).toBeGreaterThan(RUNS / 20);
  });

  it('hashed and radix (PAE, long-mode) nested tables describing the same mapping translate identically', () => {
    const w = new World();
    const probes: number[] = [], radixNested: number[] = [];
    fc.assert(fc.property(caseArb([NPT_HASHED]), (c) => {
      const results: { out: Out; refs: number; out2: Out; mem: Uint8Array[] }[] = [];
      for (const fmt of [NPT_HASHED, NPT_PAE, NPT_LONG]) {
        const cc = { ...c, fmt };
        w.setup(cc, fmt);
        const lin = linOf(c);
        const r = w.run(lin, c.acc, c.user);
        const r2 = w.run((lin ^ 0x10) >>> 0, c.acc2, c.user);
        const exp = w.expected(cc, lin, c.acc);
        if (fmt === NPT_HASHED && exp.out.k === 'ok') {
          // references per nested translation of a successful cold walk: the guest's own are exp.n (+0 when paging is off)
          probes.push((r.refs - exp.n) / (exp.n + 1));
        }
        if (fmt === NPT_LONG && exp.out.k === 'ok') radixNested.push((r.refs - exp.n) / (exp.n + 1));
        results.push({ out: r.out, refs: r.refs, out2: r2.out, mem: w.guestPages(cc) });
      }
      for (const r of results.slice(1)) {
        expect(r.out).toEqual(results[0].out);
        expect(r.out2).toEqual(results[0].out2);
        // the guest pages (the guest A/D bits) alike
        expect(r.mem.length).toBe(results[0].mem.length);
        expect(r.mem.every((m, i) => Buffer.compare(m, results[0].mem[i]) === 0)).toBe(true);
      }
    }), { seed: SEED, numRuns: 3000 });
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    // one probe per guest-physical address in the common case (load factor below 1/4), at most two with LP
    expect(mean(probes)).toBeGreaterThanOrEqual(1);
    expect(mean(probes)).toBeLessThan(2.2);
    expect(Math.max(...probes)).toBeLessThanOrEqual(4);
    expect(mean(radixNested)).toBeGreaterThan(3);
    if (process.env.NPT_REPORT) {
      console.log(`hashed: ${probes.length} successful cold walks, ${mean(probes).toFixed(3)} probes per nested translation (max ${Math.max(...probes)}); long-mode radix: ${mean(radixNested).toFixed(3)} references per nested translation`);
    }
  });
});
