// Differential property test with page-table edits, for 2-level and PAE guests: two address spaces sharing a pool of guest
// page tables, random accesses, random CR3 switches, and random edits of page-table and directory
// entries made visible the way x86 requires (INVLPG of every address the edited entry maps in the
// current space, or a CR3 write; directory edits always by a CR3 write; CR4.PGE off so that no
// global entry outlives a CR3 write). The virtual TLB and the cached strategy (whose shadow tables
// of the other space, and of page tables shared by both spaces, are cached and must notice the
// edits) must give the same values, faults and final guest memory as the guest's paging on the core.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { SEED } from '../native/diff.ts';
import { type GuestMem, guestCode, identity, PT_P, PT_U, PT_W, suite } from './shadow-env.ts';
import { accessFields, CACHE, differential, entryBitsNoG, INTERPRETER, markPages, OP_CR3, OP_END, OP_INVLPG, OP_READ, OP_WRITE, startOps, VTLB } from './shadow-props.ts';

const PT0 = 0x101000, PTS = 0x102000, NPT = 3, PDS = [0x105000, 0x106000];
const DATA = 0x200000, DATA_PAGES = 32, VA = 0x40000000, SLOTS = 2, ENTRIES = 4;
/** PAE: the two spaces' PDPTs, and the directory both map at PDPTE 0 (identity, 2 MiB pages). */
const PDPTS = [0x107000, 0x108000], PD_LOW = 0x109000;

/** Where the entries live in each format: PDE `slot` of space `pd`, PTE `idx` of table `pt`, the address they map. */
interface Format {
  readonly name: string; readonly pae: boolean;
  readonly cr3: (pd: number) => number;
  readonly pde: (pd: number, slot: number) => number;
  readonly pte: (pt: number, idx: number) => number;
  readonly va: (slot: number, idx: number) => number;
}
const FORMATS: Format[] = [
  { name: '2-level', pae: false, cr3: (pd) => PDS[pd], pde: (pd, slot) => PDS[pd] + (256 + slot) * 4,
    pte: (pt, idx) => PTS + pt * 0x1000 + idx * 4, va: (slot, idx) => VA + slot * 0x400000 + idx * 0x1000 },
  { name: 'PAE', pae: true, cr3: (pd) => PDPTS[pd], pde: (pd, slot) => PDS[pd] + slot * 8,
    pte: (pt, idx) => PTS + pt * 0x1000 + idx * 8, va: (slot, idx) => VA + slot * 0x200000 + idx * 0x1000 },
];

type Step =
  | { t: 'access'; slot: number; page: number; off: number; write: boolean; value: number }
  | { t: 'pte'; pt: number; idx: number; present: boolean; bits: number; frame: number; viaCr3: boolean; pd: number }
  | { t: 'pde'; pd: number; slot: number; pt: number; switchTo: number }
  | { t: 'switch'; pd: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('access' as const), slot: fc.integer({ min: 0, max: SLOTS - 1 }), ...accessFields(ENTRIES) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('pte' as const), pt: fc.integer({ min: 0, max: NPT - 1 }), idx: fc.integer({ min: 0, max: ENTRIES - 1 }), present: fc.boolean(), bits: entryBitsNoG, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }), viaCr3: fc.boolean(), pd: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('pde' as const), pd: fc.integer({ min: 0, max: 1 }), slot: fc.integer({ min: 0, max: SLOTS - 1 }), pt: fc.integer({ min: -1, max: NPT - 1 }), switchTo: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('switch' as const), pd: fc.integer({ min: 0, max: 1 }) }) },
);
const initPte = fc.record({ present: fc.boolean(), bits: entryBitsNoG, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }) });
const testCase = fc.record({
  ptes: fc.array(fc.array(initPte, { minLength: ENTRIES, maxLength: ENTRIES }), { minLength: NPT, maxLength: NPT }),
  links: fc.array(fc.array(fc.integer({ min: -1, max: NPT - 1 }), { minLength: SLOTS, maxLength: SLOTS }), { minLength: 2, maxLength: 2 }),
  steps: fc.array(step, { minLength: 10, maxLength: 50 }),
});
type Case = typeof testCase extends fc.Arbitrary<infer T> ? T : never;

const pdeVal = (pt: number): number => (pt < 0 ? 0 : (PTS + pt * 0x1000) | PT_P | PT_W | PT_U);
const pteVal = (e: { present: boolean; bits: number; frame: number }): number => (e.present ? (DATA + e.frame * 0x1000) | PT_P | e.bits : 0);

function setup(c: Case, f: Format): (g: GuestMem) => void {
  return (g) => {
    if (f.pae) {
      g.w32(PD_LOW, 0 | PT_P | PT_W | PT_U | 0x80); g.w32(PD_LOW + 8, 0x200000 | PT_P | PT_W | PT_U | 0x80);
      PDPTS.forEach((pdpt, d) => { g.w32(pdpt, PD_LOW | 1); g.w32(pdpt + 8, PDS[d] | 1); });
    } else for (const pd of PDS) identity(g, pd, PT0);
    c.ptes.forEach((pt, p) => pt.forEach((e, j) => g.w32(f.pte(p, j), pteVal(e))));
    const links = c.links.map((l) => [...l]);
    links.forEach((l, d) => l.forEach((pt, s) => g.w32(f.pde(d, s), pdeVal(pt))));
    markPages(g, DATA, DATA_PAGES, 0x40);
    const put = startOps(g, { cr3: f.cr3(0), cr4: f.pae ? 0x30 : 0x10 });
    let cur = 0;
    for (const s of c.steps) {
      if (s.t === 'access') put(f.va(s.slot, s.page) + s.off * 4, s.write ? OP_WRITE : OP_READ, s.value);
      else if (s.t === 'switch') { put(0, OP_CR3, f.cr3(s.pd)); cur = s.pd; }
      else if (s.t === 'pte') {
        put(f.pte(s.pt, s.idx), OP_WRITE, pteVal(s));
        if (s.viaCr3) { put(0, OP_CR3, f.cr3(s.pd)); cur = s.pd; }
        else links[cur].forEach((pt, slot) => { if (pt === s.pt) put(f.va(slot, s.idx), OP_INVLPG); });
      } else {
        put(f.pde(s.pd, s.slot), OP_WRITE, pdeVal(s.pt));
        links[s.pd][s.slot] = s.pt;
        put(0, OP_CR3, f.cr3(s.switchTo)); cur = s.switchTo;
      }
    }
    put(0, OP_END);
  };
}

suite('shadow paging: differential with page-table edits, INVLPG and CR3 switches', () => {
  it.each(FORMATS)('$name guests: same values, faults and final guest memory as the guest paging on the core', (fmt) => {
    const img = guestCode(INTERPRETER);
    let hits = 0, unsyncs = 0;
    fc.assert(fc.property(testCase, (c) => {
      const { runs: [, cache] } = differential(img, setup(c, fmt), [VTLB, CACHE]);
      hits += cache.counts.get('shadow.cacheHit') ?? 0; unsyncs += cache.counts.get('shadow.unsync') ?? 0;
    }), { seed: SEED, numRuns: 20, endOnFailure: true });
    // the cached strategy did reuse tables and did see guest edits of protected tables
    expect(hits).toBeGreaterThan(30);
    expect(unsyncs).toBeGreaterThan(15);
  });
});
