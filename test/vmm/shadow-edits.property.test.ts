// Differential property test with page-table edits, for 2-level and PAE guests: two address spaces sharing a pool of guest
// page tables, random accesses, random CR3 switches, and random edits of page-table and directory
// entries made visible the way x86 requires (INVLPG of every address the edited entry maps in the
// current space, or a CR3 write; directory edits always by a CR3 write; CR4.PGE off so that no
// global entry outlives a CR3 write). The virtual TLB and the cached strategy (whose shadow tables
// of the other space, and of page tables shared by both spaces, are cached and must notice the
// edits) must give the same values, faults and final guest memory as the guest's paging on the core.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { haveAssembler } from '../hw/cpu/bare.ts';
import { SEED } from '../native/diff.ts';
import { shadowCacheFactory } from '../../vmm/paging/shadow-cache.ts';
import { shadowFactory } from '../../vmm/paging/shadow.ts';
import { type GuestMem, guestCode, identity, PF_SKIP, PT_A, PT_D, PT_P, PT_U, PT_W, runGuest } from './shadow-env.ts';

const suite = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

const PT0 = 0x101000, PTS = 0x102000, NPT = 3, PDS = [0x105000, 0x106000], OPS = 0x20000, CONF = 0x1f000;
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

// kinds: 0 read (logs), 1 write, 3 end, 4 CR3 = value, 5 INVLPG (address)
const PROGRAM = `
  mov ${CONF}, %eax
  mov %eax, %cr4
  mov ${CONF + 4}, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $0x80010000, %eax
  mov %eax, %cr0
  mov $${OPS}, %esi
next:
  mov (%esi), %ebx
  mov 4(%esi), %ecx
  mov 8(%esi), %eax
  add $12, %esi
  cmp $1, %ecx
  je write
  cmp $3, %ecx
  je end
  cmp $4, %ecx
  je cr3
  cmp $5, %ecx
  je inv
  mov (%ebx), %eax
  log
  jmp next
write:
  mov %eax, (%ebx)
  jmp next
cr3:
  mov %eax, %cr3
  jmp next
inv:
  invlpg (%ebx)
  jmp next
end:
  xor %eax, %eax
  done
  ${PF_SKIP}
`;

type Step =
  | { t: 'access'; slot: number; page: number; off: number; write: boolean; value: number }
  | { t: 'pte'; pt: number; idx: number; present: boolean; bits: number; frame: number; viaCr3: boolean; pd: number }
  | { t: 'pde'; pd: number; slot: number; pt: number; switchTo: number }
  | { t: 'switch'; pd: number };

const bits = fc.record({ w: fc.boolean(), u: fc.boolean(), a: fc.boolean(), d: fc.boolean() })
  .map((b) => (b.w ? PT_W : 0) | (b.u ? PT_U : 0) | (b.a ? PT_A : 0) | (b.d ? PT_D : 0));
const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('access' as const), slot: fc.integer({ min: 0, max: SLOTS - 1 }), page: fc.integer({ min: 0, max: ENTRIES - 1 }), off: fc.integer({ min: 0, max: 1023 }), write: fc.boolean(), value: fc.integer({ min: 0, max: 0x7fffffff }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('pte' as const), pt: fc.integer({ min: 0, max: NPT - 1 }), idx: fc.integer({ min: 0, max: ENTRIES - 1 }), present: fc.boolean(), bits, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }), viaCr3: fc.boolean(), pd: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('pde' as const), pd: fc.integer({ min: 0, max: 1 }), slot: fc.integer({ min: 0, max: SLOTS - 1 }), pt: fc.integer({ min: -1, max: NPT - 1 }), switchTo: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('switch' as const), pd: fc.integer({ min: 0, max: 1 }) }) },
);
const initPte = fc.record({ present: fc.boolean(), bits, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }) });
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
    g.w32(CONF, f.pae ? 0x30 : 0x10);
    g.w32(CONF + 4, f.cr3(0));
    if (f.pae) {
      g.w32(PD_LOW, 0 | PT_P | PT_W | PT_U | 0x80); g.w32(PD_LOW + 8, 0x200000 | PT_P | PT_W | PT_U | 0x80);
      PDPTS.forEach((pdpt, d) => { g.w32(pdpt, PD_LOW | 1); g.w32(pdpt + 8, PDS[d] | 1); });
    } else for (const pd of PDS) identity(g, pd, PT0);
    c.ptes.forEach((pt, p) => pt.forEach((e, j) => g.w32(f.pte(p, j), pteVal(e))));
    const links = c.links.map((l) => [...l]);
    links.forEach((l, d) => l.forEach((pt, s) => g.w32(f.pde(d, s), pdeVal(pt))));
    for (let k = 0; k < DATA_PAGES; k++) g.w32(DATA + k * 0x1000 + 0x40, 0xd0000000 + k);
    let p = OPS;
    const put = (a: number, kind: number, v: number): void => { g.w32(p, a); g.w32(p + 4, kind); g.w32(p + 8, v); p += 12; };
    let cur = 0;
    for (const s of c.steps) {
      if (s.t === 'access') put(f.va(s.slot, s.page) + s.off * 4, s.write ? 1 : 0, s.value);
      else if (s.t === 'switch') { put(0, 4, f.cr3(s.pd)); cur = s.pd; }
      else if (s.t === 'pte') {
        put(f.pte(s.pt, s.idx), 1, pteVal(s));
        if (s.viaCr3) { put(0, 4, f.cr3(s.pd)); cur = s.pd; }
        else links[cur].forEach((pt, slot) => { if (pt === s.pt) put(f.va(slot, s.idx), 5, 0); });
      } else {
        put(f.pde(s.pd, s.slot), 1, pdeVal(s.pt));
        links[s.pd][s.slot] = s.pt;
        put(0, 4, f.cr3(s.switchTo)); cur = s.switchTo;
      }
    }
    put(0, 3, 0);
  };
}

suite('shadow paging: differential with page-table edits, INVLPG and CR3 switches', () => {
  it.each(FORMATS)('$name guests: same values, faults and final guest memory as the guest paging on the core', (fmt) => {
    const img = guestCode(PROGRAM);
    let hits = 0, unsyncs = 0;
    fc.assert(fc.property(testCase, (c) => {
      const ref = runGuest('native', img, { setup: setup(c, fmt) });
      expect(ref.failure).toBeNull();
      for (const f of [shadowFactory, shadowCacheFactory]) {
        const r = runGuest(f, img, { setup: setup(c, fmt) });
        expect(r.failure, f.name).toBeNull();
        expect(r.log.map((x) => x.toString(16)), f.name).toEqual(ref.log.map((x) => x.toString(16)));
        for (let pg = 0; pg < r.ram.length; pg += 0x1000) {
          const a = r.ram.subarray(pg, pg + 0x1000), b = ref.ram.subarray(pg, pg + 0x1000);
          if (!a.every((x, k) => x === b[k])) {
            const k = a.findIndex((x, j) => x !== b[j]) & ~3;
            const dv = new DataView(a.buffer, a.byteOffset), dr = new DataView(b.buffer, b.byteOffset);
            expect(`${f.name}: gpa 0x${(pg + k).toString(16)} = 0x${dv.getUint32(k, true).toString(16)}`)
              .toBe(`${f.name}: gpa 0x${(pg + k).toString(16)} = 0x${dr.getUint32(k, true).toString(16)}`);
          }
        }
        if (f === shadowCacheFactory) { hits += r.counts.get('shadow.cacheHit') ?? 0; unsyncs += r.counts.get('shadow.unsync') ?? 0; }
      }
    }), { seed: SEED, numRuns: 20, endOnFailure: true });
    // the cached strategy did reuse tables and did see guest edits of protected tables
    expect(hits).toBeGreaterThan(30);
    expect(unsyncs).toBeGreaterThan(15);
  });
});
