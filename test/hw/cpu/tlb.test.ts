// The modelled TLB: the Tlb class on its own (geometry, round-robin replacement, flushes), and
// exact miss and page-walk counts for programs with known access patterns on the P6 geometry
// (hw/cpu/tlb.ts P6_TLBS: DTLB 16 sets x 4 ways, ITLB 8 sets x 4 ways, round-robin per set).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extraCosts } from '../../../hw/costs.ts';
import { P6_TLBS, TE_G, Tlb } from '../../../hw/cpu/tlb.ts';
import { haveAssembler } from './bare.ts';
import { halted, hex, Paging32, runSys } from './sysenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

describe('Tlb (unit)', () => {
  it('has the P6 geometry', () => {
    expect(P6_TLBS.dtlb).toEqual({ sets: 16, ways: 4 });
    expect(P6_TLBS.itlb).toEqual({ sets: 8, ways: 4 });
    expect(new Tlb(P6_TLBS.dtlb).entries).toBe(64);
    expect(() => new Tlb({ sets: 12, ways: 4 })).toThrow(RangeError);
  });

  it('indexes the set by the low key bits and replaces round-robin within a set', () => {
    const t = new Tlb({ sets: 16, ways: 4 });
    for (let k = 0; k < 4; k++) expect(t.insert(0x400 + 16 * k, k << 12)).toBe(-1);
    expect(t.insert(0x401, 0)).toBe(-1);                  // another set: no eviction
    expect(t.insert(0x440, 0)).toBe(0x400);               // the set is full: way 0 goes first
    expect(t.insert(0x400, 0)).toBe(0x410);               // then way 1, ...
    expect(t.insert(0x410, 0)).toBe(0x420);
    expect(t.lookup(0x430)).toBeGreaterThanOrEqual(0);
    expect(t.lookup(0x420)).toBe(-1);
    expect(t.insert(0x430, 0x7000)).toBe(-1);             // present: data replaced, nothing evicted
    expect(t.data[t.lookup(0x430)]).toBe(0x7000);
    t.invalidateIndex(t.lookup(0x440));
    expect(t.insert(0x450, 0)).toBe(-1);                  // a free way is used before evicting
    expect(t.valid()).toBe(5);
  });

  it('flushes all entries, or all but global ones, of one ASID or of all', () => {
    const t = new Tlb({ sets: 4, ways: 2 });
    t.insert(0x001, 0); t.insert(0x002, TE_G); t.insert((1 << 20) | 0x003, 0); t.insert((1 << 20) | 0x004, TE_G);
    const dropped: number[] = [];
    t.flush(true, 0, (k) => dropped.push(k));
    expect(dropped).toEqual([0x001]);
    expect(t.valid()).toBe(3);
    t.flush(false, 1);
    expect(t.valid()).toBe(1);
    expect(t.lookup(0x002)).toBeGreaterThanOrEqual(0);
    t.flush(false, -1);
    expect(t.valid()).toBe(0);
  });

  it('invariants under random use: no duplicate keys, evictions only from a full set of the same index', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('insert' as const), key: fc.integer({ min: 0, max: 255 }), g: fc.boolean() }),
      fc.record({ k: fc.constant('drop' as const), key: fc.integer({ min: 0, max: 255 }), g: fc.boolean() }),
      fc.record({ k: fc.constant('flush' as const), key: fc.constant(0), g: fc.boolean() }),
    );
    fc.assert(fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
      const t = new Tlb({ sets: 8, ways: 4 });
      for (const o of ops) {
        if (o.k === 'insert') {
          const set = o.key & 7;
          const full = [0, 1, 2, 3].every((w) => t.tag[set * 4 + w] !== -1);
          const had = t.lookup(o.key) >= 0;
          const ev = t.insert(o.key, o.g ? TE_G : 0);
          if (ev !== -1) {
            expect(full && !had).toBe(true);
            expect(ev & 7).toBe(set);
            expect(t.lookup(ev)).toBe(-1);
          }
          expect(t.lookup(o.key)).toBeGreaterThanOrEqual(0);
        } else if (o.k === 'drop') {
          const i = t.lookup(o.key);
          if (i >= 0) t.invalidateIndex(i);
          expect(t.lookup(o.key)).toBe(-1);
        } else {
          t.flush(o.g, 0);
          for (let i = 0; i < t.tag.length; i++) if (t.tag[i] !== -1) expect(o.g && (t.data[i] & TE_G) !== 0).toBe(true);
        }
        const live = Array.from(t.tag).filter((x) => x !== -1);
        expect(new Set(live).size).toBe(live.length);
        for (let i = 0; i < t.tag.length; i++) if (t.tag[i] !== -1) expect(t.tag[i] & 7).toBe(Math.floor(i / 4));
      }
    }), { seed: 42, numRuns: 300 });
  });
});

// Programs: paging on (identity map of the low 2 MiB, code in one 4 KiB page), then data reads
// of pages at DATA_LIN + k * stride. Nothing else touches memory (no stack, no exceptions), so
// every TLB miss is one the pattern causes. Each 4 KiB miss walks 2 entries (PDE, PTE).
const PD = 0x100000;
const DATA_LIN = 0x400000;
const ON = `
  mov $${hex(PD)}, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $0x80000000, %eax
  mov %eax, %cr0
`;
/** Reads `n` pages at DATA_LIN + k*stride, `passes` times. */
function touch(n: number, stride: number, passes: number, op = 'mov (%esi), %eax'): string {
  return `
    mov $${passes}, %edi
  9:
    mov $${hex(DATA_LIN)}, %esi
    mov $${n}, %ecx
  8:
    ${op}
    add $${hex(stride)}, %esi
    dec %ecx
    jnz 8b
    dec %edi
    jnz 9b
  `;
}
function runTlb(body: string) {
  const r = runSys(`${ON}${body}\n cli\n hlt`, {
    ram: 32 << 20,
    setup: mapAll,
  });
  expect(halted(r).vector).toBe(-1);
  return r.cpu.stats;
}

run('TLB miss counts (P6 geometry)', () => {
  it('N distinct pages touched twice miss once each: 12 pages -> 12 DTLB misses', () => {
    const s = runTlb(touch(12, 0x1000, 2));
    expect(s.dtlbMisses).toBe(12);
    expect(s.itlbMisses).toBe(1);                // the code page, once paging is on
    expect(s.tlbMisses).toBe(13);
    expect(s.walkRefs).toBe(2 * 13);
  });

  it('64 pages fill the DTLB exactly; a 65th makes set 0 thrash on the second pass', () => {
    expect(runTlb(touch(64, 0x1000, 2)).dtlbMisses).toBe(64);
    // set 0 holds 0x400 0x410 0x420 0x430; 0x440 evicts 0x400 (way 0); in pass 2 each of
    // the five pages of set 0 misses, in round-robin order
    expect(runTlb(touch(65, 0x1000, 2)).dtlbMisses).toBe(65 + 5);
  });

  it('pages in one set: 4 coexist (4 misses in 3 passes), 5 evict each other round-robin (every access misses)', () => {
    expect(runTlb(touch(4, 0x10000, 3)).dtlbMisses).toBe(4);
    expect(runTlb(touch(5, 0x10000, 3)).dtlbMisses).toBe(15);
  });

  it('misses are charged: the cycle difference between two patterns of equal instruction count is the miss cost', () => {
    const a = runSys(`${ON}${touch(5, 0x10000, 3)}\n cli\n hlt`, { ram: 32 << 20, setup: mapAll });
    const b = runSys(`${ON}${touch(5, 0x1000, 3)}\n cli\n hlt`, { ram: 32 << 20, setup: mapAll });
    expect(a.cpu.icount).toBe(b.cpu.icount);
    const dm = a.cpu.stats.tlbMisses - b.cpu.stats.tlbMisses, dr = a.cpu.stats.walkRefs - b.cpu.stats.walkRefs;
    expect(dm).toBe(10);
    expect(a.cpu.cycles - b.cpu.cycles).toBe(dm * extraCosts.tlbMissBase.cycles + dr * extraCosts.walkRef.cycles);
  });

  it('a CR3 write flushes: 8 pages, MOV CR3, the same 8 pages -> 16 misses (and the code page again)', () => {
    const s = runTlb(`${touch(8, 0x1000, 1)}
      mov %cr3, %eax
      mov %eax, %cr3
      ${touch(8, 0x1000, 1)}`);
    expect(s.dtlbMisses).toBe(16);
    expect(s.itlbMisses).toBe(2);
    expect(s.walkRefs).toBe(2 * 18);
  });

  it('INVLPG flushes one page: 8 pages, INVLPG of the 4th, the same 8 pages -> 9 misses', () => {
    const s = runTlb(`${touch(8, 0x1000, 1)}
      invlpg ${hex(DATA_LIN + 3 * 0x1000)}
      ${touch(8, 0x1000, 1)}`);
    expect(s.dtlbMisses).toBe(9);
    expect(s.itlbMisses).toBe(1);
  });

  it('the first write to a page read before re-walks to set D: a walk, not a miss', () => {
    const s = runTlb(`${touch(4, 0x1000, 1)}${touch(4, 0x1000, 1, 'mov %eax, (%esi)')}`);
    expect(s.dtlbMisses).toBe(4);
    expect(s.walkRefs).toBe(2 * (4 + 1) + 2 * 4);
  });

  it('the ITLB: 5 code pages in one ITLB set, visited in a cycle, miss every time; 4 do not', () => {
    for (const [pages, expected] of [[4, 1 + 4], [5, 1 + 5 * 3]]) {
      // code page k at 0x601000 + k * 0x8000 (ITLB set 1; the main code page is in set 0)
      const r = runSys(`${ON}
        mov $3, %edi
      1:
        mov $0x601000, %eax
        jmp *%eax
        .org 0x80, 0x90
      back:
        dec %edi
        jnz 1b
        cli
        hlt
      `, {
        ram: 32 << 20,
        setup: (_c, mem) => {
          const p = new Paging32(mem, PD);
          p.identity(0, 0x200000);
          for (let k = 0; k < pages; k++) {
            const lin = 0x601000 + k * 0x8000, phys = 0x800000 + k * 0x1000;
            p.map(lin, phys);
            const next = k + 1 < pages ? lin + 0x8000 : BACK;
            mem.writeBytes(phys, Uint8Array.of(0xb8, next & 0xff, (next >>> 8) & 0xff, (next >>> 16) & 0xff, next >>> 24, 0xff, 0xe0));
          }
        },
      });
      expect(halted(r).vector).toBe(-1);
      expect(r.cpu.stats.itlbMisses).toBe(expected);
      expect(r.cpu.stats.dtlbMisses).toBe(0);
    }
  });
});

/** `back:` in the ITLB program. */
const BACK = 0x10000 + 0x80;

function mapAll(_c: unknown, mem: import('../../../hw/mem/physmem.ts').PhysMem): void {
  const p = new Paging32(mem, PD);
  p.identity(0, 0x200000);
  for (let a = DATA_LIN; a < DATA_LIN + 0x800000; a += 0x1000) p.map(a, 0x400000 + (a - DATA_LIN));
}
