// The caching strategy (vmm/paging/shadow-cache.ts): shadow tables survive CR3 switches, guest
// page-table pages are write-protected in the shadow, and a guest edit of a page table whose
// shadow is cached is seen after a CR3 reload back to the cached root, or after INVLPG.
import { expect, it } from 'vitest';
import type { ShadowPaging } from '../../vmm/paging/shadow.ts';
import { shadowCacheFactory } from '../../vmm/paging/shadow-cache.ts';
import { enablePaging, type GuestMem, guestCode, hexes, identity, PT_P, PT_W, runGuest, suite } from './shadow-env.ts';
import { CACHE, differential, VTLB } from './shadow-props.ts';

const PD_A = 0x100000, PT0 = 0x101000, PT_A = 0x102000, PD_B = 0x103000, PT_B = 0x104000;
const DATA = 0x200000, VA = 0x40000000;

/** Two spaces, 8 pages each at VA. */
function eightPages(g: GuestMem): void {
  twoSpaces(g);
  for (let k = 0; k < 8; k++) {
    g.w32(PT_A + k * 4, (DATA + k * 0x1000) | PT_P | PT_W);
    g.w32(PT_B + k * 4, (DATA + 0x10000 + k * 0x1000) | PT_P | PT_W);
  }
  g.w32(DATA + 0x17000, 0xb7);
  g.w32(DATA + 0x10000, 0xb0);
}

function twoSpaces(g: GuestMem): void {
  identity(g, PD_A, PT0); identity(g, PD_B, PT0);
  g.w32(PD_A + 256 * 4, PT_A | PT_P | PT_W); g.w32(PT_A, DATA | PT_P | PT_W);
  g.w32(PD_B + 256 * 4, PT_B | PT_P | PT_W); g.w32(PT_B, (DATA + 0x1000) | PT_P | PT_W);
  for (let k = 0; k < 4; k++) g.w32(DATA + k * 0x1000, 0x1111 * (k + 1));
}

suite('shadow-cache: cached shadow tables and write-protected guest page tables', () => {
  it('sees an edit of a cached page table after a CR3 reload back to it, and after INVLPG', () => {
    const src = `
      ${enablePaging(PD_A)}
      mov $${VA}, %ebx
      mov (%ebx), %eax
      log                               # A: 0x1111
      loadcr3 ${PD_B}
      mov (%ebx), %eax
      log                               # B: 0x2222
      movl $${(DATA + 0x2000) | PT_P | PT_W}, ${PT_A}   # edit A's page table while in B
      mov $${PD_A}, %eax
      mov %eax, %cr3                    # back to A's cached root
      mov (%ebx), %eax
      log                               # 0x3333
      movl $${(DATA + 0x3000) | PT_P | PT_W}, ${PT_A}   # edit in place ...
      invlpg (%ebx)                     # ... and INVLPG
      mov (%ebx), %eax
      log                               # 0x4444
      movl $${DATA | PT_P | PT_W}, ${PT_A}              # edit in place ...
      mov %cr3, %eax
      mov %eax, %cr3                    # ... and reload CR3 (the same root)
      mov (%ebx), %eax
      log                               # 0x1111
      finish
    `;
    const { ref, runs: [r] } = differential(guestCode(src), twoSpaces, [CACHE, VTLB]);
    expect(hexes(ref.log)).toEqual(hexes([0x1111, 0x2222, 0x3333, 0x4444, 0x1111]));
    // the roots came back from the cache; each edit hit a write-protected page table
    expect(r.counts.get('shadow.cacheHit') ?? 0).toBeGreaterThanOrEqual(2);
    expect(r.counts.get('shadow.unsync') ?? 0).toBeGreaterThanOrEqual(2);
    expect(r.counts.get('shadow.wpFault') ?? 0).toBeGreaterThanOrEqual(1);
  });

  it('keeps shadow tables across CR3 switches: far fewer fills than the virtual TLB for a guest switching between two spaces', () => {
    // 20 round trips between A and B, touching 8 pages in each space every time
    const touch = Array.from({ length: 8 }, (_, k) => `mov ${VA + k * 0x1000}, %eax`).join('\n');
    const src = `
      ${enablePaging(PD_A)}
      mov $20, %ecx
    1:
      loadcr3 ${PD_A}
      ${touch}
      loadcr3 ${PD_B}
      ${touch}
      dec %ecx
      jnz 1b
      mov ${VA + 0x7000}, %eax
      log
      finish
    `;
    const { ref, runs: [vtlb, cache] } = differential(guestCode(src), eightPages, [VTLB, CACHE]);
    expect(hexes(ref.log)).toEqual(['b7']);
    const fv = vtlb.counts.get('shadow.fill') ?? 0, fc = cache.counts.get('shadow.fill') ?? 0;
    expect(fv).toBeGreaterThan(20 * 2 * 8);
    expect(fc * 5).toBeLessThan(fv);
    expect(cache.counts.get('shadow.cacheHit') ?? 0).toBeGreaterThanOrEqual(38);
    expect(cache.cycles).toBeLessThan(vtlb.cycles);
  });

  it('drops the whole cache when it is full and keeps working', () => {
    // one space whose 30 directory entries each have a page table: more than 24 shadow tables
    const N = 30;
    const touch = Array.from({ length: N }, (_, k) => `mov ${VA + k * 0x400000}, %eax\nadd %eax, %edx`).join('\n');
    const src = `
      ${enablePaging(PD_A)}
      xor %edx, %edx
      mov $3, %ecx
    1:
      ${touch}
      mov %cr3, %eax
      mov %eax, %cr3
      dec %ecx
      jnz 1b
      mov %edx, %eax
      log
      finish
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD_A, PT0);
      for (let k = 0; k < N; k++) {
        const pt = 0x110000 + k * 0x1000;
        g.w32(PD_A + (256 + k) * 4, pt | PT_P | PT_W);
        g.w32(pt, (DATA + k * 0x1000) | PT_P | PT_W);
        g.w32(DATA + k * 0x1000, k + 1);
      }
    };
    const r = runGuest(shadowCacheFactory, guestCode(src), { setup, options: { maxTables: 24 } });
    expect(r.failure).toBeNull();
    expect(hexes(r.log)).toEqual([(3 * N * (N + 1) / 2).toString(16)]);
    expect(r.counts.get('shadow.cacheEvict') ?? 0).toBeGreaterThan(0);
    expect((r.mode as ShadowPaging).tableCount).toBeLessThanOrEqual(24);
  });

  it('PAE guests: sees an edit of a cached page table after a CR3 reload back to it, and after INVLPG', () => {
    const PDPT_A = 0x105000, PDPT_B = 0x105020, PD_LOW = 0x106000, PDX_A = 0x107000, PDX_B = 0x108000;
    const setup = (g: GuestMem): void => {
      g.w32(PD_LOW, 0 | 0x87); g.w32(PD_LOW + 8, 0x200000 | 0x87);
      g.w32(PDPT_A, PD_LOW | 1); g.w32(PDPT_A + 8, PDX_A | 1);
      g.w32(PDPT_B, PD_LOW | 1); g.w32(PDPT_B + 8, PDX_B | 1);
      g.w32(PDX_A, PT_A | PT_P | PT_W); g.w32(PT_A, DATA | PT_P | PT_W);
      g.w32(PDX_B, PT_B | PT_P | PT_W); g.w32(PT_B, (DATA + 0x1000) | PT_P | PT_W);
      for (let k = 0; k < 4; k++) g.w32(DATA + k * 0x1000, 0x1111 * (k + 1));
    };
    const src = `
      ${enablePaging(PDPT_A, 0x30)}
      mov $${VA}, %ebx
      readlog
      loadcr3 ${PDPT_B}
      readlog
      movl $${(DATA + 0x2000) | PT_P | PT_W}, ${PT_A}
      loadcr3 ${PDPT_A}
      readlog
      movl $${(DATA + 0x3000) | PT_P | PT_W}, ${PT_A}
      invlpg (%ebx)
      readlog
      movl $${DATA | PT_P | PT_W}, ${PT_A}
      mov %cr3, %eax
      mov %eax, %cr3
      readlog
      loadcr3 ${PDPT_B}
      readlog
      finish
    `;
    const { ref, runs: [r] } = differential(guestCode(src), setup, [CACHE, VTLB]);
    expect(hexes(ref.log)).toEqual(hexes([0x1111, 0x2222, 0x3333, 0x4444, 0x1111, 0x2222]));
    expect(r.counts.get('shadow.unsync') ?? 0).toBeGreaterThanOrEqual(2);
    // B's directory and page table came back from the cache at the last switch
    expect(r.counts.get('shadow.cacheHit') ?? 0).toBeGreaterThanOrEqual(4);
  });
});
