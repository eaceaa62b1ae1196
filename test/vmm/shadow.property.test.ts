// Differential property test: random guest page tables (4 KiB and 4 MiB pages, random P/W/U/G/A/D
// bits, CR0.WP and CR4.PGE on or off) and random supervisor and user accesses give the same
// results under the virtual TLB (with 4 MiB shadow pages, and split), the cached strategy and the
// reference (NP off, the guest's paging directly on the core): the values read, every #PF with
// its CR2 and error code (the guest's handler logs them), and guest memory at the end byte for
// byte (the accessed and dirty bits in the guest's tables, the data written, the stacks).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { haveAssembler } from '../hw/cpu/bare.ts';
import { SEED } from '../native/diff.ts';
import { shadowCacheFactory } from '../../vmm/paging/shadow-cache.ts';
import { shadowFactory } from '../../vmm/paging/shadow.ts';
import { type GuestMem, guestCode, identity, PF_SKIP, PT_A, PT_D, PT_G, PT_P, PT_PS, PT_U, PT_W, runGuest } from './shadow-env.ts';

const suite = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

const PD = 0x100000, PT0 = 0x101000, PTS = 0x102000, OPS = 0x20000, CONF = 0x1f000;
const DATA = 0x200000, DATA_PAGES = 64, VA = 0x40000000;

// The interpreter: CONF holds CR4 and the CR0 bits to clear; OPS a list of (address, kind, value)
// with kind 0 read (logs the value), 1 write, 2 continue at CPL 3, 3 end.
const PROGRAM = `
  mov ${CONF}, %eax
  mov %eax, %cr4
  mov $${PD}, %eax
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

interface Pde { kind: 'none' | 'pt' | 'large'; bits: number; ptes: { present: boolean; bits: number; frame: number }[] }
interface Op { pdi: number; page: number; off: number; write: boolean; value: number }
interface Case { pdes: Pde[]; wp: boolean; pge: boolean; sup: Op[]; usr: Op[] }

const bits = fc.record({ w: fc.boolean(), u: fc.boolean(), g: fc.boolean(), a: fc.boolean(), d: fc.boolean() })
  .map((b) => (b.w ? PT_W : 0) | (b.u ? PT_U : 0) | (b.g ? PT_G : 0) | (b.a ? PT_A : 0) | (b.d ? PT_D : 0));
const pte = fc.record({ present: fc.boolean(), bits, frame: fc.integer({ min: 0, max: DATA_PAGES - 1 }) });
const pde: fc.Arbitrary<Pde> = fc.record({
  kind: fc.constantFrom<Pde['kind']>('none', 'pt', 'pt', 'large'),
  bits,
  ptes: fc.array(pte, { minLength: 16, maxLength: 16 }),
});
const op = fc.record({
  pdi: fc.integer({ min: 0, max: 3 }), page: fc.integer({ min: 0, max: 15 }), off: fc.integer({ min: 0, max: 1023 }),
  write: fc.boolean(), value: fc.integer({ min: 0, max: 0x7fffffff }),
});
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
    g.w32(CONF, 0x10 | (c.pge ? 0x80 : 0));
    g.w32(CONF + 4, c.wp ? 0 : 0x10000);
    c.pdes.forEach((d, i) => {
      const slot = PD + (256 + i) * 4;
      if (d.kind === 'large') g.w32(slot, 0 | PT_P | PT_PS | d.bits);
      else if (d.kind === 'pt') {
        const pt = PTS + i * 0x1000;
        g.w32(slot, pt | PT_P | (d.bits & ~(PT_G | PT_D)));
        d.ptes.forEach((e, j) => { if (e.present) g.w32(pt + j * 4, (DATA + e.frame * 0x1000) | PT_P | e.bits); });
      }
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

suite('shadow paging: differential against the guest paging on the core', () => {
  it('random page tables and accesses: same values, faults (CR2, error code) and final guest memory', () => {
    const img = guestCode(PROGRAM);
    const runs = [
      { name: 'shadow (4 MiB shadow pages)', f: shadowFactory, ramBase: 0x400000 },
      { name: 'shadow (split)', f: shadowFactory, ramBase: 0x500000 },
      { name: 'shadow-cache', f: shadowCacheFactory, ramBase: 0x400000 },
    ];
    let logged = 0, ops = 0, pfs = 0;
    fc.assert(fc.property(testCase, (c) => {
      const ref = runGuest('native', img, { setup: setup(c) });
      expect(ref.failure).toBeNull();
      logged += ref.log.length; pfs += ref.log.filter((x) => (x >>> 0) >= VA && (x >>> 0) < VA + 0x1000000).length;
      for (const m of runs) {
        const r = runGuest(m.f, img, { setup: setup(c), ramBase: m.ramBase });
        expect(r.failure, m.name).toBeNull();
        expect(r.log.map((x) => x.toString(16)), m.name).toEqual(ref.log.map((x) => x.toString(16)));
        // byte-for-byte guest memory (A/D bits, data, stacks); compare page by page for a short message
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
      ops += c.sup.length + c.usr.length;
    }), { seed: SEED, numRuns: 30, endOnFailure: true });
    // the cases exercised faults as well as successful accesses
    expect(ops).toBeGreaterThan(200);
    expect(logged).toBeGreaterThan(200);
    expect(pfs).toBeGreaterThan(50);
  });
});
