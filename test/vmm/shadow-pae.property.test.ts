// Differential property test for PAE guests: random PAE page tables (PDPTEs, 2 MiB and 4 KiB
// pages, random P/W/U/G/A/D bits, bit 63 as NX with EFER.NXE or as a reserved bit without it,
// other reserved bits now and then) and random supervisor and user accesses give the same values,
// faults (CR2, error code) and final guest memory under both shadow strategies (PAE shadow
// tables, with 2 MiB shadow pages and split) as with the guest's paging directly on the core.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { haveAssembler } from '../hw/cpu/bare.ts';
import { SEED } from '../native/diff.ts';
import { shadowCacheFactory } from '../../vmm/paging/shadow-cache.ts';
import { shadowFactory } from '../../vmm/paging/shadow.ts';
import { type GuestMem, guestCode, PF_SKIP, PT_A, PT_D, PT_G, PT_P, PT_PS, PT_U, PT_W, runGuest } from './shadow-env.ts';

const suite = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

const PDPT = 0x105000, PD_LOW = 0x106000, PDS = 0x107000, PTS = 0x10a000, OPS = 0x20000, CONF = 0x1f000;
const DATA = 0x200000, DATA_PAGES = 64;
/** The random part: PDPTEs 1 and 2 (0x40000000, 0x80000000), directory slots 0 and 1 of each. */
const REGIONS = [1, 2], SLOTS = 2;

const PROGRAM = `
  mov ${CONF + 8}, %eax
  test %eax, %eax
  jz 1f
  mov $0xc0000080, %ecx
  rdmsr
  or $0x800, %eax
  wrmsr
1:
  mov ${CONF}, %eax
  mov %eax, %cr4
  mov $${PDPT}, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $0x80010000, %eax
  mov ${CONF + 4}, %ecx
  not %ecx
  and %ecx, %eax
  mov %eax, %cr0
  mov $${OPS}, %esi
next:
  mov (%esi), %ebx
  mov 4(%esi), %ecx
  mov 8(%esi), %eax
  add $12, %esi
  cmp $1, %ecx
  je write
  cmp $2, %ecx
  je user
  cmp $3, %ecx
  je end
  mov (%ebx), %eax
  log
  jmp next
write:
  mov %eax, (%ebx)
  jmp next
user:
  pushl $0x23
  pushl $0x90000
  pushl $0x3002
  pushl $0x1b
  pushl $ring3
  iret
ring3:
  mov $0x23, %ax
  mov %ax, %ds
  mov %ax, %es
  jmp next
end:
  xor %eax, %eax
  done
  ${PF_SKIP}
`;

const lowBits = fc.record({ w: fc.boolean(), u: fc.boolean(), g: fc.boolean(), a: fc.boolean(), d: fc.boolean() })
  .map((b) => (b.w ? PT_W : 0) | (b.u ? PT_U : 0) | (b.g ? PT_G : 0) | (b.a ? PT_A : 0) | (b.d ? PT_D : 0));
/** The high dword: bit 63 often, a reserved bit (40) rarely. */
const highBits = fc.record({ nx: fc.boolean(), rsvd: fc.integer({ min: 0, max: 15 }) })
  .map((h) => (h.nx ? 0x80000000 : 0) | (h.rsvd === 0 ? 0x100 : 0));
const pte = fc.record({ present: fc.boolean(), lo: lowBits, hi: highBits, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }) });
const pde = fc.record({
  kind: fc.constantFrom('none', 'pt', 'pt', 'large'),
  lo: lowBits, hi: highBits,
  ptes: fc.array(pte, { minLength: 16, maxLength: 16 }),
});
const op = fc.record({
  region: fc.integer({ min: 0, max: REGIONS.length - 1 }), slot: fc.integer({ min: 0, max: SLOTS - 1 }),
  page: fc.integer({ min: 0, max: 15 }), off: fc.integer({ min: 0, max: 1023 }), write: fc.boolean(),
  value: fc.integer({ min: 0, max: 0x7fffffff }),
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
    g.w32(CONF, 0x30 | (c.pge ? 0x80 : 0));
    g.w32(CONF + 4, c.wp ? 0 : 0x10000);
    g.w32(CONF + 8, c.nxe ? 1 : 0);
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
    for (let k = 0; k < DATA_PAGES; k++) g.w32(DATA + k * 0x1000 + 0x100, 0xd0000000 + k);
    let p = OPS;
    const put = (a: number, kind: number, v: number): void => { g.w32(p, a); g.w32(p + 4, kind); g.w32(p + 8, v); p += 12; };
    for (const o of c.sup) put(addr(c, o), o.write ? 1 : 0, o.value);
    put(0, 2, 0);
    for (const o of c.usr) put(addr(c, o), o.write ? 1 : 0, o.value);
    put(0, 3, 0);
  };
}

suite('shadow paging: differential for PAE guests', () => {
  it('random PAE tables and accesses: same values, faults (CR2, error code) and final guest memory', () => {
    const img = guestCode(PROGRAM);
    const runs = [
      { name: 'shadow (2 MiB shadow pages)', f: shadowFactory, ramBase: 0x400000 },
      { name: 'shadow (split)', f: shadowFactory, ramBase: 0x500000 },
      { name: 'shadow-cache', f: shadowCacheFactory, ramBase: 0x400000 },
    ];
    let rsvd = 0, ok = 0;
    fc.assert(fc.property(testCase, (c) => {
      const ref = runGuest('native', img, { setup: setup(c) });
      expect(ref.failure).toBeNull();
      rsvd += ref.log.filter((x) => (x & ~0x17) === 8).length;
      ok += ref.log.filter((x) => (x >>> 28) === 0xd || x === 0).length;
      for (const m of runs) {
        const r = runGuest(m.f, img, { setup: setup(c), ramBase: m.ramBase });
        expect(r.failure, m.name).toBeNull();
        expect(r.log.map((x) => x.toString(16)), m.name).toEqual(ref.log.map((x) => x.toString(16)));
        for (let pg = 0; pg < r.ram.length; pg += 0x1000) {
          const a = r.ram.subarray(pg, pg + 0x1000), b = ref.ram.subarray(pg, pg + 0x1000);
          if (!a.every((x, k) => x === b[k])) {
            const k = a.findIndex((x, j) => x !== b[j]) & ~3;
            const dv = new DataView(a.buffer, a.byteOffset), dr = new DataView(b.buffer, b.byteOffset);
            expect(`${m.name}: gpa 0x${(pg + k).toString(16)} = 0x${dv.getUint32(k, true).toString(16)}`)
              .toBe(`${m.name}: gpa 0x${(pg + k).toString(16)} = 0x${dr.getUint32(k, true).toString(16)}`);
          }
        }
      }
    }), { seed: SEED, numRuns: 20, endOnFailure: true });
    // the cases met reserved-bit faults and successful reads
    expect(rsvd).toBeGreaterThan(5);
    expect(ok).toBeGreaterThan(20);
  });
});
