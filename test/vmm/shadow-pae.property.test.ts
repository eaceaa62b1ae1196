// Differential property test for PAE guests: random PAE page tables (PDPTEs, 2 MiB and 4 KiB
// pages, random P/W/U/G/A/D bits, bit 63 as NX with EFER.NXE or as a reserved bit without it,
// other reserved bits now and then) and random supervisor and user accesses give the same values,
// faults (CR2, error code) and final guest memory under both shadow strategies (PAE shadow
// tables, with 2 MiB shadow pages and split) as with the guest's paging directly on the core.
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { SEED } from '../native/diff.ts';
import { type GuestMem, guestCode, PT_D, PT_G, PT_P, PT_PS, PT_U, PT_W, suite } from './shadow-env.ts';
import { accessFields, CACHE, differential, entryBits, INTERPRETER, markPages, putSupThenUser, startOps, VTLB, VTLB_SPLIT } from './shadow-props.ts';

const PDPT = 0x105000, PD_LOW = 0x106000, PDS = 0x107000, PTS = 0x10a000;
const DATA = 0x200000, DATA_PAGES = 64;
/** The random part: PDPTEs 1 and 2 (0x40000000, 0x80000000), directory slots 0 and 1 of each. */
const REGIONS = [1, 2], SLOTS = 2;

/** The high dword: bit 63 often, a reserved bit (40) rarely. */
const highBits = fc.record({ nx: fc.boolean(), rsvd: fc.integer({ min: 0, max: 15 }) })
  .map((h) => (h.nx ? 0x80000000 : 0) | (h.rsvd === 0 ? 0x100 : 0));
const pte = fc.record({ present: fc.boolean(), lo: entryBits, hi: highBits, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }) });
const pde = fc.record({
  kind: fc.constantFrom('none', 'pt', 'pt', 'large'),
  lo: entryBits, hi: highBits,
  ptes: fc.array(pte, { minLength: 16, maxLength: 16 }),
});
const op = fc.record({
  region: fc.integer({ min: 0, max: REGIONS.length - 1 }), slot: fc.integer({ min: 0, max: SLOTS - 1 }), ...accessFields(16),
});
const testCase = fc.record({
  pdptes: fc.array(fc.boolean(), { minLength: REGIONS.length, maxLength: REGIONS.length }),
  pdes: fc.array(fc.array(pde, { minLength: SLOTS, maxLength: SLOTS }), { minLength: REGIONS.length, maxLength: REGIONS.length }),
  wp: fc.boolean(), pge: fc.boolean(), nxe: fc.boolean(),
  sup: fc.array(op, { maxLength: 24 }), usr: fc.array(op, { maxLength: 24 }),
});
type Case = typeof testCase extends fc.Arbitrary<infer T> ? T : never;
type Op = Case['sup'][number];

function addr(c: Case, o: Op): number {
  const base = REGIONS[o.region] * 0x40000000 + o.slot * 0x200000;
  // a 2 MiB page maps gpa 2 MiB (the data area): anywhere in it
  return c.pdes[o.region][o.slot].kind === 'large' ? base + o.page * 0x10000 + o.off * 4 : base + o.page * 0x1000 + o.off * 4;
}

function setup(c: Case): (g: GuestMem) => void {
  return (g) => {
    g.w32(PDPT, PD_LOW | 1);
    g.w32(PD_LOW, 0 | PT_P | PT_W | PT_U | PT_PS); g.w32(PD_LOW + 8, 0x200000 | PT_P | PT_W | PT_U | PT_PS);
    REGIONS.forEach((r, i) => {
      const pd = PDS + i * 0x1000;
      if (c.pdptes[i]) g.w32(PDPT + r * 8, pd | 1);
      c.pdes[i].forEach((d, s) => {
        const slot = pd + s * 8;
        if (d.kind === 'large') { g.w32(slot, 0x200000 | PT_P | PT_PS | d.lo); g.w32(slot + 4, d.hi); }
        else if (d.kind === 'pt') {
          const pt = PTS + (i * SLOTS + s) * 0x1000;
          g.w32(slot, pt | PT_P | (d.lo & ~(PT_G | PT_D))); g.w32(slot + 4, d.hi);
          d.ptes.forEach((e, j) => { if (e.present) { g.w32(pt + j * 8, (DATA + e.frame * 0x1000) | PT_P | e.lo); g.w32(pt + j * 8 + 4, e.hi); } });
        }
      });
    });
    markPages(g, DATA, DATA_PAGES, 0x100);
    putSupThenUser(startOps(g, { cr3: PDPT, cr4: 0x30 | (c.pge ? 0x80 : 0), wp: c.wp, nxe: c.nxe }), c, (o) => addr(c, o));
  };
}

suite('shadow paging: differential for PAE guests', () => {
  it('random PAE tables and accesses: same values, faults (CR2, error code) and final guest memory', () => {
    const img = guestCode(INTERPRETER);
    let rsvd = 0, ok = 0;
    fc.assert(fc.property(testCase, (c) => {
      const { ref } = differential(img, setup(c), [VTLB, VTLB_SPLIT, CACHE]);
      rsvd += ref.log.filter((x) => (x & ~0x17) === 8).length;
      ok += ref.log.filter((x) => (x >>> 28) === 0xd || x === 0).length;
    }), { seed: SEED, numRuns: 20, endOnFailure: true });
    // the cases met reserved-bit faults and successful reads
    expect(rsvd).toBeGreaterThan(5);
    expect(ok).toBeGreaterThan(20);
  });
});
