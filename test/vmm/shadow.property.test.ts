// Differential property test: random guest page tables (4 KiB and 4 MiB pages, random P/W/U/G/A/D
// bits, CR0.WP and CR4.PGE on or off) and random supervisor and user accesses give the same
// results under the virtual TLB (with 4 MiB shadow pages, and split), the cached strategy and the
// reference (NP off, the guest's paging directly on the core): the values read, every #PF with
// its CR2 and error code (the guest's handler logs them), and guest memory at the end byte for
// byte (the accessed and dirty bits in the guest's tables, the data written, the stacks).
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { SEED } from '../native/diff.ts';
import { type GuestMem, guestCode, identity, PT_D, PT_G, PT_P, PT_PS, suite } from './shadow-env.ts';
import { accessFields, CACHE, differential, entryBits, INTERPRETER, markPages, putSupThenUser, startOps, VTLB, VTLB_SPLIT } from './shadow-props.ts';

const PD = 0x100000, PT0 = 0x101000, PTS = 0x102000;
const DATA = 0x200000, DATA_PAGES = 64, VA = 0x40000000;

interface Pde { kind: 'none' | 'pt' | 'large'; bits: number; ptes: { present: boolean; bits: number; frame: number }[] }
interface Op { pdi: number; page: number; off: number; write: boolean; value: number }
interface Case { pdes: Pde[]; wp: boolean; pge: boolean; sup: Op[]; usr: Op[] }

const pte = fc.record({ present: fc.boolean(), bits: entryBits, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }) });
const pde: fc.Arbitrary<Pde> = fc.record({
  kind: fc.constantFrom<Pde['kind']>('none', 'pt', 'pt', 'large'),
  bits: entryBits,
  ptes: fc.array(pte, { minLength: 16, maxLength: 16 }),
});
const op = fc.record({ pdi: fc.integer({ min: 0, max: 3 }), ...accessFields(16) });
const testCase: fc.Arbitrary<Case> = fc.record({
  pdes: fc.array(pde, { minLength: 4, maxLength: 4 }), wp: fc.boolean(), pge: fc.boolean(),
  sup: fc.array(op, { maxLength: 24 }), usr: fc.array(op, { maxLength: 24 }),
});

/** The address of an op: in a 4 MiB page, it lands in the data area (the second half of gpa 0-4 MiB). */
function addr(c: Case, o: Op): number {
  const base = VA + o.pdi * 0x400000;
  return c.pdes[o.pdi].kind === 'large' ? base + DATA + o.page * 0x1000 + o.off * 4 : base + o.page * 0x1000 + o.off * 4;
}

function setup(c: Case): (g: GuestMem) => void {
  return (g) => {
    identity(g, PD, PT0);
    c.pdes.forEach((d, i) => {
      const slot = PD + (256 + i) * 4;
      if (d.kind === 'large') g.w32(slot, 0 | PT_P | PT_PS | d.bits);
      else if (d.kind === 'pt') {
        const pt = PTS + i * 0x1000;
        g.w32(slot, pt | PT_P | (d.bits & ~(PT_G | PT_D)));
        d.ptes.forEach((e, j) => { if (e.present) g.w32(pt + j * 4, (DATA + e.frame * 0x1000) | PT_P | e.bits); });
      }
    });
    markPages(g, DATA, DATA_PAGES, 0x100);
    putSupThenUser(startOps(g, { cr3: PD, cr4: 0x10 | (c.pge ? 0x80 : 0), wp: c.wp }), c, (o) => addr(c, o));
  };
}

suite('shadow paging: differential against the guest paging on the core', () => {
  it('random page tables and accesses: same values, faults (CR2, error code) and final guest memory', () => {
    const img = guestCode(INTERPRETER);
    let logged = 0, ops = 0, pfs = 0;
    fc.assert(fc.property(testCase, (c) => {
      const { ref } = differential(img, setup(c), [VTLB, VTLB_SPLIT, CACHE]);
      logged += ref.log.length; pfs += ref.log.filter((x) => (x >>> 0) >= VA && (x >>> 0) < VA + 0x1000000).length;
      ops += c.sup.length + c.usr.length;
    }), { seed: SEED, numRuns: 30, endOnFailure: true });
    // the cases exercised faults as well as successful accesses
    expect(ops).toBeGreaterThan(200);
    expect(logged).toBeGreaterThan(200);
    expect(pfs).toBeGreaterThan(50);
  });
});
