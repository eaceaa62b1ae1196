// The address-space API case by case: argument errors, placement, brk's Linux semantics, large
// pages split and rejoined by mprotect, copyin/copyout with fault reporting, the invalidate hook,
// what each call charges, and the kernel's shared mappings.
import { describe, expect, it } from 'vitest';
import { kernelCosts, mmCosts } from '../../../kernel/costs.ts';
import {
  AddressSpace, LARGE_PAGE, MIN_MAP_ADDR, MMAP_BASE, PROT_NONE, PROT_READ, PROT_WRITE, USER_TOP,
} from '../../../kernel/mm/aspace.ts';
import { ERRNO } from '../../../kernel/mm/result.ts';
import { makeEnv, meter, MiB, newSpace, pdeOf, walk } from './env.ts';

const RW = PROT_READ | PROT_WRITE;
const P = 4096;
const bad = (error: string) => ({ ok: false, error });

describe('mmap', () => {
  it('rejects bad arguments with the errno Linux gives', () => {
    const e = makeEnv(16 * MiB);
    const as = newSpace(e);
    const m = meter();
    expect(as.mmap(m, { len: 0, prot: RW })).toEqual(bad('EINVAL'));
    expect(as.mmap(m, { len: P, prot: 8 })).toEqual(bad('EINVAL'));
    expect(as.mmap(m, { addr: 0x1000_0001, len: P, prot: RW, fixed: true })).toEqual(bad('EINVAL'));
    expect(as.mmap(m, { addr: MIN_MAP_ADDR - P, len: P, prot: RW, fixed: true })).toEqual(bad('EPERM'));
    expect(as.mmap(m, { addr: USER_TOP - P, len: 2 * P, prot: RW, fixed: true })).toEqual(bad('ENOMEM'));
    expect(as.mmap(m, { len: 64 * MiB, prot: RW })).toEqual(bad('ENOMEM'));       // more than the machine has
    expect(as.regions()).toEqual([]);
    expect(as.mmap(m, { addr: 0x1000_0000, len: P, prot: RW, fixed: true }).ok).toBe(true);
    expect(as.mmap(m, { addr: 0x1000_0000, len: P, prot: RW, fixed: true, noReplace: true })).toEqual(bad('EEXIST'));
    expect(ERRNO.ENOMEM).toBe(12);
  });

  it('places mappings top-down from MMAP_BASE, 4 MiB-aligned when 4 MiB or larger, honouring a free hint', () => {
    const e = makeEnv(64 * MiB);
    const as = newSpace(e);
    const a = as.mmap(e.cpu, { len: 3 * P, prot: RW });
    const b = as.mmap(e.cpu, { len: P, prot: RW });
    const c = as.mmap(e.cpu, { len: 5 * MiB, prot: RW });
    const d = as.mmap(e.cpu, { addr: 0x2000_0000, len: P, prot: RW });
    expect([a, b, c, d].map((r) => r.ok && r.value)).toEqual([MMAP_BASE - 3 * P, MMAP_BASE - 4 * P, MMAP_BASE - 8 * MiB, 0x2000_0000]);
    // the 5 MiB mapping covers one whole 4 MiB frame: a 4 MiB page, the rest in a page table
    expect(pdeOf(e.mem, as.cr3, MMAP_BASE - 8 * MiB) & 0x80).toBe(0x80);
    expect(walk(e.mem, as.cr3, MMAP_BASE - 4 * MiB + MiB - P)?.large).toBe(false);
    expect(walk(e.mem, as.cr3, MMAP_BASE - 4 * MiB + MiB)).toBeNull();
  });

  it('MAP_FIXED replaces what was there and frees its memory', () => {
    const e = makeEnv(16 * MiB);
    const as = newSpace(e);
    const free0 = e.pmem.freeBytes;
    expect(as.mmap(e.cpu, { addr: 0x1000_0000, len: 8 * P, prot: RW, fixed: true }).ok).toBe(true);
    expect(as.copyout(e.cpu, 0x1000_2000, Uint8Array.of(1, 2, 3)).ok).toBe(true);
    expect(as.mmap(e.cpu, { addr: 0x1000_1000, len: 2 * P, prot: PROT_READ, fixed: true }).ok).toBe(true);
    expect(as.regions().map((r) => [r.start, r.end, r.prot])).toEqual([
      [0x1000_0000, 0x1000_1000, RW], [0x1000_1000, 0x1000_3000, PROT_READ], [0x1000_3000, 0x1000_8000, RW],
    ]);
    const got = as.copyin(e.cpu, 0x1000_2000, 3);
    expect(got.ok && [...got.value]).toEqual([0, 0, 0]);
    expect(e.pmem.freeBytes).toBe(free0 - 8 * P - P);                      // 8 pages and a page table
  });
});

describe('brk', () => {
  it('follows Linux: brk(0) and a brk below the start return the break; growth into a mapping fails', () => {
    const e = makeEnv(16 * MiB);
    const as = newSpace(e);
    as.initBrk(0x0805_0123);
    expect(as.brk(e.cpu, 0)).toBe(0x0805_0123);
    expect(as.brk(e.cpu, 0x0804_0000)).toBe(0x0805_0123);
    expect(as.brk(e.cpu, 0x0805_0fff)).toBe(0x0805_0fff);                  // same page: nothing mapped
    expect(as.regions()).toEqual([]);
    expect(as.brk(e.cpu, 0x0805_3000)).toBe(0x0805_3000);
    expect(as.regions().map((r) => [r.start, r.end, r.kind])).toEqual([[0x0805_1000, 0x0805_3000, 'heap']]);
    expect(as.mmap(e.cpu, { addr: 0x0806_0000, len: P, prot: RW, fixed: true }).ok).toBe(true);
    expect(as.brk(e.cpu, 0x0806_0001)).toBe(0x0805_3000);
    expect(as.brk(e.cpu, 0x0806_0000)).toBe(0x0806_0000);
  });

  it('grows in place or moves the heap (contents kept, new pages zero), keeping spare capacity when it shrinks', () => {
    const e = makeEnv(32 * MiB);
    const as = newSpace(e);
    as.initBrk(0x0900_0000);
    expect(as.brk(e.cpu, 0x0900_2000)).toBe(0x0900_2000);
    expect(as.copyout(e.cpu, 0x0900_1ffc, Uint8Array.of(9, 8, 7, 6)).ok).toBe(true);
    // something right after the heap's memory forces a move when it grows
    const h0 = as.regionAt(0x0900_0000)!;
    e.pmem.claim(meter(), h0.phys + h0.cap, P, 'kernel');
    expect(e.pmem.typeOf(h0.phys + h0.cap)).toBe('kernel');
    expect(as.brk(e.cpu, 0x0901_0000)).toBe(0x0901_0000);
    const h1 = as.regionAt(0x0900_0000)!;
    expect(h1.phys).not.toBe(h0.phys);
    expect(h1.cap).toBeGreaterThan(h1.end - h1.start);                     // spare room for the next growth
    const got = as.copyin(e.cpu, 0x0900_1ffc, 8);
    expect(got.ok && [...got.value]).toEqual([9, 8, 7, 6, 0, 0, 0, 0]);
    // shrink, dirty the spare memory, grow again: same block, pages zero again
    expect(as.brk(e.cpu, 0x0900_1000)).toBe(0x0900_1000);
    e.mem.write(h1.phys + 0x5000, 4, 0xdead);
    expect(as.regionAt(0x0900_0000)!.cap).toBe(h1.cap);
    expect(as.brk(e.cpu, 0x0900_8000)).toBe(0x0900_8000);
    expect(as.regionAt(0x0900_0000)!.phys).toBe(h1.phys);
    const z = as.copyin(e.cpu, 0x0900_5000, 4);
    expect(z.ok && [...z.value]).toEqual([0, 0, 0, 0]);
  });
});

describe('mprotect and munmap on 4 MiB pages', () => {
  it('mprotect of one page splits the 4 MiB page into a table; restoring it makes one 4 MiB page again', () => {
    const e = makeEnv(32 * MiB);
    const as = newSpace(e);
    const base = 0x4000_0000;
    expect(as.mmap(e.cpu, { addr: base, len: LARGE_PAGE, prot: RW, fixed: true }).ok).toBe(true);
    expect(pdeOf(e.mem, as.cr3, base) & 0x80).toBe(0x80);
    expect(as.stats()).toMatchObject({ largePages: 1, pageTables: 0, regions: 1 });
    const phys = as.translate(base);
    expect(as.mprotect(e.cpu, base + 5 * P, P, PROT_READ).ok).toBe(true);
    expect(pdeOf(e.mem, as.cr3, base) & 0x80).toBe(0);
    expect(as.stats()).toMatchObject({ largePages: 0, pageTables: 1, regions: 3 });
    for (const k of [0, 4, 5, 6, 1023]) {
      expect(walk(e.mem, as.cr3, base + k * P)).toEqual({ phys: phys + k * P, writable: k !== 5, user: true, large: false });
    }
    expect(as.mprotect(e.cpu, base + 5 * P, P, RW).ok).toBe(true);
    expect(as.stats()).toMatchObject({ largePages: 1, pageTables: 0, regions: 1 });
    expect(walk(e.mem, as.cr3, base + 5 * P)).toEqual({ phys: phys + 5 * P, writable: true, user: true, large: true });
    // PROT_NONE keeps the memory (and contents) but maps nothing
    expect(as.copyout(e.cpu, base + 8 * P, Uint8Array.of(42)).ok).toBe(true);
    expect(as.mprotect(e.cpu, base + 8 * P, P, PROT_NONE).ok).toBe(true);
    expect(walk(e.mem, as.cr3, base + 8 * P)).toBeNull();
    expect(as.copyin(e.cpu, base + 8 * P, 1)).toEqual(bad('EFAULT'));
    expect(as.mprotect(e.cpu, base + 8 * P, P, RW).ok).toBe(true);
    const v = as.copyin(e.cpu, base + 8 * P, 1);
    expect(v.ok && v.value[0]).toBe(42);
    // mprotect over a hole fails with ENOMEM and changes nothing
    expect(as.mprotect(e.cpu, base + LARGE_PAGE - P, 2 * P, PROT_READ)).toEqual(bad('ENOMEM'));
    expect(as.stats()).toMatchObject({ largePages: 1, regions: 1 });
  });

  it('munmap of the middle of a 4 MiB page returns just that memory', () => {
    const e = makeEnv(32 * MiB);
    const as = newSpace(e);
    const base = 0x4000_0000;
    expect(as.mmap(e.cpu, { addr: base, len: LARGE_PAGE, prot: RW, fixed: true }).ok).toBe(true);
    const free = e.pmem.freeBytes, phys = as.translate(base);
    expect(as.munmap(e.cpu, base + MiB, MiB).ok).toBe(true);
    expect(e.pmem.freeBytes).toBe(free + MiB - P);                          // minus the new page table
    expect(e.pmem.typeOf(phys + MiB)).toBe('free');
    expect(walk(e.mem, as.cr3, base + MiB)).toBeNull();
    expect(walk(e.mem, as.cr3, base + 2 * MiB)?.phys).toBe(phys + 2 * MiB);
    expect(as.munmap(e.cpu, base + 1, P)).toEqual(bad('EINVAL'));
    expect(as.munmap(e.cpu, 0x7000_0000, P)).toEqual({ ok: true, value: undefined });   // nothing there: fine
  });
});

describe('mremap', () => {
  it('shrinks in place, grows in place when free after, needs MAYMOVE otherwise, and EFAULTs across mappings', () => {
    const e = makeEnv(32 * MiB);
    const as = newSpace(e);
    const a = 0x3000_0000;
    expect(as.mmap(e.cpu, { addr: a, len: 4 * P, prot: RW, fixed: true }).ok).toBe(true);
    expect(as.copyout(e.cpu, a, Uint8Array.of(5)).ok).toBe(true);
    expect(as.mremap(e.cpu, a, 4 * P, 2 * P)).toEqual({ ok: true, value: a });
    expect(as.regionAt(a + 2 * P)).toBeUndefined();
    expect(as.mremap(e.cpu, a, 2 * P, 6 * P)).toEqual({ ok: true, value: a });
    expect(as.mmap(e.cpu, { addr: a + 6 * P, len: P, prot: RW, fixed: true }).ok).toBe(true);
    expect(as.mremap(e.cpu, a, 6 * P, 8 * P)).toEqual(bad('ENOMEM'));
    expect(as.mremap(e.cpu, a, 7 * P, P)).toEqual(bad('EFAULT'));
    const moved = as.mremap(e.cpu, a, 6 * P, 8 * P, { mayMove: true });
    if (!moved.ok) throw new Error(moved.error);
    expect(moved.value).not.toBe(a);
    expect(as.regionAt(a)).toBeUndefined();
    const v = as.copyin(e.cpu, moved.value, 1);
    expect(v.ok && v.value[0]).toBe(5);
    expect(as.mremap(e.cpu, moved.value, P, P, { newAddr: 0x3100_0000 })).toEqual(bad('EINVAL'));   // FIXED needs MAYMOVE
    expect(as.mremap(e.cpu, moved.value, P, P, { mayMove: true, newAddr: 0x3100_0000 })).toEqual({ ok: true, value: 0x3100_0000 });
  });
});

describe('copyin / copyout', () => {
  it('copies across regions, reports EFAULT for unmapped or read-only pages without writing, strings stop at NUL', () => {
    const e = makeEnv(16 * MiB);
    const as = newSpace(e);
    const a = 0x1000_0000;
    expect(as.mmap(e.cpu, { addr: a, len: P, prot: RW, fixed: true }).ok).toBe(true);
    expect(as.mmap(e.cpu, { addr: a + P, len: P, prot: PROT_READ, fixed: true }).ok).toBe(true);
    expect(as.copyout(e.cpu, a + P - 2, Uint8Array.of(1, 2, 3, 4))).toEqual(bad('EFAULT'));
    expect(as.copyin(e.cpu, a + P - 2, 2).ok && as.copyin(e.cpu, a + P - 2, 2)).toEqual({ ok: true, value: Uint8Array.of(0, 0) });
    expect(as.copyout(e.cpu, a + P - 2, Uint8Array.of(1, 2, 3, 4), true).ok).toBe(true);   // the loader may
    expect(as.copyin(e.cpu, a + P - 2, 4)).toEqual({ ok: true, value: Uint8Array.of(1, 2, 3, 4) });
    expect(as.copyin(e.cpu, a + 2 * P - 1, 2)).toEqual(bad('EFAULT'));
    expect(as.copyin(e.cpu, USER_TOP, 1)).toEqual(bad('EFAULT'));
    expect(as.copyin(e.cpu, a, 0)).toEqual({ ok: true, value: new Uint8Array(0) });
    expect(as.copyout(e.cpu, a + 10, new TextEncoder().encode('/bin/sh\0')).ok).toBe(true);
    expect(as.copyinString(e.cpu, a + 10, 255)).toEqual({ ok: true, value: new TextEncoder().encode('/bin/sh') });
    expect(as.copyinString(e.cpu, a + 10, 3)).toEqual(bad('ENAMETOOLONG'));
    expect(as.copyout(e.cpu, a + 2 * P - 3, Uint8Array.of(65, 66, 67), true).ok).toBe(true);
    expect(as.copyinString(e.cpu, a + 2 * P - 3, 255)).toEqual(bad('EFAULT'));           // runs off the mapping
  });
});

describe('costs and TLB invalidation', () => {
  it('charges per page-table entry written and per word zeroed or copied', () => {
    const cost = (pages: number) => {
      const e = makeEnv(32 * MiB);
      const as = newSpace(e, { invalidate: null });
      const m = meter();
      expect(as.mmap(m, { addr: 0x1000_0000, len: pages * P, prot: RW, fixed: true }).ok).toBe(true);
      return { cycles: m.cycles, as };
    };
    const one = cost(1).cycles, { cycles: two, as } = cost(3);
    // two more pages: two more entries written and two more pages zeroed
    expect(two - one).toBe(2 * (mmCosts.pteWrite.cycles + kernelCosts.memWord.cycles * (P / 4)));
    const m = meter();
    const f = as.fork(m);
    expect(f.ok).toBe(true);
    expect(m.cycles).toBeGreaterThan(2 * kernelCosts.memWord.cycles * (3 * P / 4));          // three pages copied
    const c = meter();
    expect(as.copyin(c, 0x1000_0000, 100).ok).toBe(true);
    expect(c.cycles).toBe(2 * kernelCosts.memWord.cycles * 25);
  });

  it('calls the invalidate hook for translations that changed, not for new ones', () => {
    const e = makeEnv(16 * MiB);
    const calls: [number, number][] = [];
    const as = newSpace(e, { invalidate: (va, len) => calls.push([va, len]) });
    expect(as.mmap(e.cpu, { addr: 0x1000_0000, len: 4 * P, prot: RW, fixed: true }).ok).toBe(true);
    expect(calls).toEqual([]);
    expect(as.mprotect(e.cpu, 0x1000_1000, P, PROT_READ).ok).toBe(true);
    expect(as.munmap(e.cpu, 0x1000_3000, P).ok).toBe(true);
    expect(as.munmap(e.cpu, 0x2000_0000, P).ok).toBe(true);
    expect(calls).toEqual([[0x1000_1000, P], [0x1000_3000, P]]);
  });
});

describe('lifecycle', () => {
  it('destroy returns every page; the space cannot be used afterwards', () => {
    const e = makeEnv(32 * MiB);
    const free = e.pmem.freeBytes;
    const as = newSpace(e);
    as.initBrk(0x0900_0000);
    as.brk(e.cpu, 0x0980_0000);
    as.mmap(e.cpu, { len: 5 * MiB, prot: RW });
    as.mmap(e.cpu, { addr: 0x1000_0000, len: 3 * P, prot: PROT_READ, fixed: true });
    expect(e.pmem.freeBytes).toBeLessThan(free - 13 * MiB);
    as.destroy(e.cpu);
    expect(e.pmem.freeBytes).toBe(free);
    expect(() => as.mmap(e.cpu, { len: P, prot: RW })).toThrow(/after destroy/);
  });

  it('fails cleanly when the page directory cannot be allocated', () => {
    const e = makeEnv(16 * MiB);
    while (e.pmem.alloc(meter(), { size: P, type: 'vmm' }).ok);
    const r = AddressSpace.create(meter(), { pmem: e.pmem, mem: e.mem });
    expect(r).toEqual(bad('ENOMEM'));
  });

  it('gives the memory back when a region fits but its page table does not (no partial state)', () => {
    const e = makeEnv(16 * MiB);
    const as = newSpace(e);
    const pages: number[] = [];
    for (;;) {
      const r = e.pmem.alloc(meter(), { size: P, type: 'vmm' });
      if (!r.ok) break;
      pages.push(r.value);
    }
    const k = pages.findIndex((a, i) => i >= 3 && pages[i - 3] + 3 * P === a);
    for (let i = k - 3; i <= k; i++) expect(e.pmem.free(meter(), pages[i], P).ok).toBe(true);
    const before = JSON.stringify(e.pmem.regions());
    expect(as.mmap(e.cpu, { addr: 0x1000_0000, len: 4 * P, prot: RW, fixed: true })).toEqual(bad('ENOMEM'));
    expect(JSON.stringify(e.pmem.regions())).toBe(before);
    expect(as.regions()).toEqual([]);
    expect(as.mmap(e.cpu, { addr: 0x1000_0000, len: 3 * P, prot: RW, fixed: true }).ok).toBe(true);
  });

  it('KernelSpace maps only the kernel half', () => {
    const e = makeEnv(16 * MiB);
    expect(e.kernel.map(meter(), 0x1000_0000, 0x20_0000, P)).toEqual(bad('EINVAL'));
    expect(e.kernel.map(meter(), USER_TOP + 1, 0x20_0000, P)).toEqual(bad('EINVAL'));
    expect(e.kernel.map(meter(), USER_TOP, 0x20_0000, P).ok).toBe(true);
  });
});
