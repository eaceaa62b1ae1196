// Address-space operations against a page-level reference model (fast-check commands, the
// model kept with immer). After every command the page tables in emulated memory (walked as the
// CPU walks them) map exactly the model's accessible pages, writable exactly where the model says;
// each page still holds the tag written into it when it was created (contents survive mprotect,
// partial munmap, mremap moves and heap relocation; new pages read as zero); 4 MiB pages appear
// only over whole accessible frames; pmem's user and kernel bytes equal what the regions and page
// tables own. A failed operation changes nothing, and ENOMEM comes only when memory is short.
// fork copies everything into new memory; destroy returns everything.
import fc from 'fast-check';
import { enableMapSet, produce } from 'immer';
import { describe, expect, it } from 'vitest';
import { type AddressSpace, LARGE_PAGE, PROT_NONE, PROT_READ, PROT_WRITE, USER_TOP } from '../../../kernel/mm/aspace.ts';
import { SEED } from '../../native/diff.ts';
import { type Env, makeEnv, meter, MiB, newSpace, walk } from './env.ts';

enableMapSet();

const P = 4096;
/** Fixed mappings and mremap targets land in this window, so they collide often; the heap is inside it. */
const WIN = 0x0800_0000, WIN_PAGES = (24 * MiB) / P;
const HEAP = 0x0900_0000;
const RW = PROT_READ | PROT_WRITE;

/** A page of the model: protection, the tag written in it, which mapping it came from, heap or not. */
interface Page { prot: number; tag: number; rid: number; heap: boolean }
interface State { pages: ReadonlyMap<number, Page>; brk: number; nextTag: number; nextRid: number }
interface Model { s: State }
interface Real { e: Env; as: AddressSpace; kernelBase: number }

/** Outcomes seen, so that the test fails if the generators stop reaching a path. */
const seen = new Map<string, number>();
const saw = (k: string): void => { seen.set(k, (seen.get(k) ?? 0) + 1); };

/** Applies a change to the model's pages (done on a plain copy: immer proxies per page are too slow here). */
function update(m: Model, f: (pages: Map<number, Page>, s: State) => void, g: (d: State) => void = () => {}): void {
  const pages = new Map(m.s.pages);
  f(pages, m.s);
  m.s = produce(m.s, (d) => { d.pages = pages; g(d); });
}

const readTag = (r: Real, vpn: number): number => {
  const p = r.as.translate(vpn * P);
  return p < 0 ? -1 : r.e.mem.read(p, 4);
};

/** New pages [vpn, vpn+n): checks they read as zero, then writes a fresh tag into each. */
function tagNew(m: Model, r: Real, vpn: number, n: number, prot: number, rid: number, heap = false): void {
  const dirty: number[] = [];
  let tag = m.s.nextTag;
  update(m, (pages) => {
    for (let k = 0; k < n; k++, tag++) {
      if (readTag(r, vpn + k) !== 0) dirty.push((vpn + k) * P);
      r.e.mem.write(r.as.translate((vpn + k) * P), 4, tag);
      pages.set(vpn + k, { prot, tag, rid, heap });
    }
  }, (d) => { d.nextTag = tag; });
  expect(dirty, 'new pages read as zero').toEqual([]);
}

function snapshot(r: Real): string {
  return JSON.stringify([r.as.regions(), r.e.pmem.regions(), r.as.brkValue]);
}

/** Everything the model says about the real address space, checked in full. */
function checkAll(m: Model, r: Real): void {
  const { mem } = r.e;
  const { as } = r;
  const frames = new Set<number>();
  for (const vpn of m.s.pages.keys()) frames.add(Math.floor(vpn / 1024));
  // compare without an expect() per page (too slow); collect the first mismatches instead
  const bad: string[] = [];
  const fail = (what: string, vpn: number) => { if (bad.length < 5) bad.push(`${what} at 0x${(vpn * P).toString(16)}`); };
  let large = 0;
  for (let c = 0; c < USER_TOP / LARGE_PAGE; c++) {
    const pde = mem.read(as.cr3 + c * 4, 4);
    if (!frames.has(c)) { if (pde !== 0) fail('a PDE for an empty frame', c * 1024); continue; }
    if (pde & 0x80) large++;
    for (let k = 0; k < 1024; k++) {
      const vpn = c * 1024 + k, pg = m.s.pages.get(vpn), w = walk(mem, as.cr3, vpn * P);
      if ((pde & 0x80) !== 0 && (pg?.prot ?? 0) === 0) fail('a 4 MiB page over an inaccessible page', vpn);
      if (pg === undefined || pg.prot === PROT_NONE) { if (w !== null) fail('mapped', vpn); }
      else if (w === null) fail('not mapped', vpn);
      else if (!w.user || w.writable !== ((pg.prot & PROT_WRITE) !== 0) || w.phys !== as.translate(vpn * P)) fail('a wrong entry', vpn);
      if (pg !== undefined) { if (readTag(r, vpn) !== pg.tag) fail('contents lost', vpn); }
      else if (as.translate(vpn * P) !== -1) fail('a region where the model has none', vpn);
    }
  }
  expect(bad).toEqual([]);
  if (large > 0) saw('4 MiB pages');
  // regions: sorted, disjoint, physically disjoint, in user memory; pmem's accounting
  const regs = as.regions();
  let owned = 0;
  const phys: [number, number][] = [];
  regs.forEach((g, k) => {
    if (k > 0) expect(g.start).toBeGreaterThanOrEqual(regs[k - 1].end);
    expect(g.cap).toBeGreaterThanOrEqual(g.end - g.start);
    owned += g.cap;
    phys.push([g.phys, g.phys + g.cap]);
    expect(r.e.pmem.typeOf(g.phys)).toBe('user');
    expect(r.e.pmem.typeOf(g.phys + g.cap - 1)).toBe('user');
  });
  phys.sort((a, b) => a[0] - b[0]);
  for (let k = 1; k < phys.length; k++) expect(phys[k][0]).toBeGreaterThanOrEqual(phys[k - 1][1]);
  const st = as.stats();
  expect(st.largePages).toBe(large);
  expect(r.e.pmem.bytesOf('user')).toBe(owned);
  expect(r.e.pmem.bytesOf('kernel')).toBe(r.kernelBase + (st.pageTables + 1) * P);
  expect(as.brkValue).toBe(m.s.brk);
}

/** ENOMEM is acceptable only when no free block could hold `len` bytes and a few page tables. */
function expectShort(r: Real, len: number): void {
  expect(r.e.pmem.largestFree(), 'ENOMEM with memory to spare').toBeLessThan(len + 4 * P);
  saw('ENOMEM');
}

/** An existing page (by index), `off` pages below it; a page of the window when there are none. */
function target(m: Model, pick: number, off: number): number {
  const keys = [...m.s.pages.keys()].sort((a, b) => a - b);
  return keys.length > 0 ? Math.max(keys[pick % keys.length] - off, 0x10) : WIN / P + (pick % WIN_PAGES);
}

class Mmap implements fc.Command<Model, Real> {
  constructor(readonly page: number, readonly n: number, readonly prot: number, readonly fixed: boolean) {}
  check(): boolean { return true; }
  run(m: Model, r: Real): void {
    const before = snapshot(r);
    const addr = WIN + this.page * P;
    const res = r.as.mmap(meter(), { addr, len: this.n * P, prot: this.prot, fixed: this.fixed });
    if (!res.ok) { expect(res.error).toBe('ENOMEM'); expectShort(r, this.n * P); expect(snapshot(r)).toBe(before); return; }
    const va = res.value, vpn = va / P;
    if (this.fixed) expect(va).toBe(addr);
    else for (let k = 0; k < this.n; k++) expect(m.s.pages.has(vpn + k), 'a new mapping over an old one').toBe(false);
    if (!this.fixed && va !== addr && this.n * P >= LARGE_PAGE) expect(va % LARGE_PAGE).toBe(0);
    const rid = m.s.nextRid;
    update(m, (pages) => { for (let k = 0; k < this.n; k++) pages.delete(vpn + k); }, (d) => { d.nextRid++; });
    tagNew(m, r, vpn, this.n, this.prot, rid);
    saw(this.fixed ? 'mmap fixed' : 'mmap');
  }
  toString(): string { return `mmap(+${this.page}p, ${this.n}p, ${this.prot}${this.fixed ? ', FIXED' : ''})`; }
}

class Munmap implements fc.Command<Model, Real> {
  constructor(readonly pick: number, readonly off: number, readonly n: number) {}
  check(): boolean { return true; }
  run(m: Model, r: Real): void {
    const vpn = target(m, this.pick, this.off);
    const before = snapshot(r);
    const res = r.as.munmap(meter(), vpn * P, this.n * P);
    if (!res.ok) { expect(res.error).toBe('ENOMEM'); expectShort(r, P); expect(snapshot(r)).toBe(before); return; }
    update(m, (pages) => { for (let k = 0; k < this.n; k++) pages.delete(vpn + k); });
    saw('munmap');
  }
  toString(): string { return `munmap(#${this.pick}-${this.off}, ${this.n}p)`; }
}

class Mprotect implements fc.Command<Model, Real> {
  constructor(readonly pick: number, readonly off: number, readonly n: number, readonly prot: number) {}
  check(): boolean { return true; }
  run(m: Model, r: Real): void {
    const vpn = target(m, this.pick, this.off);
    const before = snapshot(r);
    const res = r.as.mprotect(meter(), vpn * P, this.n * P, this.prot);
    let all = true;
    for (let k = 0; k < this.n; k++) if (!m.s.pages.has(vpn + k)) all = false;
    if (!all) { expect(res).toEqual({ ok: false, error: 'ENOMEM' }); expect(snapshot(r)).toBe(before); saw('mprotect over a hole'); return; }
    if (!res.ok) { expect(res.error).toBe('ENOMEM'); expectShort(r, P); expect(snapshot(r)).toBe(before); return; }
    update(m, (pages) => { for (let k = 0; k < this.n; k++) pages.set(vpn + k, { ...pages.get(vpn + k)!, prot: this.prot }); });
    saw('mprotect');
  }
  toString(): string { return `mprotect(#${this.pick}-${this.off}, ${this.n}p, ${this.prot})`; }
}

/** n = 0: from the picked page to the end of its mapping. */
class Mremap implements fc.Command<Model, Real> {
  constructor(readonly pick: number, readonly n: number, readonly newN: number, readonly mayMove: boolean, readonly fixedPage: number | null) {}
  check(): boolean { return true; }
  run(m: Model, r: Real): void {
    const vpn = target(m, this.pick, 0);
    let n = this.n;
    const first = m.s.pages.get(vpn);
    if (n === 0) {
      for (n = 1; first !== undefined && m.s.pages.get(vpn + n)?.rid === first.rid && m.s.pages.get(vpn + n)?.prot === first.prot; n++);
    }
    const before = snapshot(r);
    const newAddr = this.fixedPage === null ? undefined : WIN + this.fixedPage * P;
    const res = r.as.mremap(meter(), vpn * P, n * P, this.newN * P, { mayMove: this.mayMove || newAddr !== undefined, newAddr });
    const src = Array.from({ length: n }, (_, k) => m.s.pages.get(vpn + k));
    const oneMapping = src.every((p) => p !== undefined && p.rid === first!.rid && p.prot === first!.prot);
    if (!res.ok) {
      expect(snapshot(r)).toBe(before);
      if (res.error === 'EFAULT') { expect(oneMapping, 'EFAULT for a range inside one mapping').toBe(false); saw('mremap EFAULT'); return; }
      if (res.error === 'EINVAL') { expect(newAddr !== undefined && newAddr < (vpn + n) * P && vpn * P < newAddr + this.newN * P).toBe(true); return; }
      expect(res.error).toBe('ENOMEM');
      if (newAddr !== undefined || this.mayMove) expectShort(r, this.newN * P);
      return;
    }
    const to = res.value / P;
    if (newAddr !== undefined) expect(res.value).toBe(newAddr);
    const keep = Math.min(n, this.newN);
    const rid = m.s.nextRid;
    update(m, (pages) => {
      for (let k = 0; k < n; k++) pages.delete(vpn + k);
      if (newAddr !== undefined) for (let k = 0; k < this.newN; k++) pages.delete(to + k);
      src.slice(0, keep).forEach((p, k) => pages.set(to + k, { ...p!, rid }));
    }, (d) => { d.nextRid++; });
    if (this.newN > keep) tagNew(m, r, to + keep, this.newN - keep, first!.prot, rid, first!.heap);
    saw(to === vpn ? (this.newN > n ? 'mremap grown in place' : 'mremap shrunk') : 'mremap moved');
  }
  toString(): string {
    return `mremap(#${this.pick}, ${this.n}p -> ${this.newN}p${this.mayMove ? ', MAYMOVE' : ''}${this.fixedPage !== null ? `, FIXED +${this.fixedPage}p` : ''})`;
  }
}

class Brk implements fc.Command<Model, Real> {
  constructor(readonly delta: number) {}
  check(): boolean { return true; }
  run(m: Model, r: Real): void {
    const cur = m.s.brk, want = Math.max(HEAP - 0x10, cur + this.delta);
    const before = snapshot(r);
    const got = r.as.brk(meter(), want);
    const oldEnd = Math.ceil(cur / P), newEnd = Math.ceil(want / P);
    let free = true;
    for (let v = oldEnd; v < newEnd; v++) if (m.s.pages.has(v)) free = false;
    if (got !== want) {
      expect(got).toBe(cur);
      expect(snapshot(r)).toBe(before);
      // growing may move the whole heap region to a bigger block
      const h = r.as.regionAt(oldEnd * P - 1);
      const from = h !== undefined && h.kind === 'heap' && h.end === oldEnd * P ? h.start : oldEnd * P;
      if (free) expectShort(r, Math.max(0, newEnd * P - from));
      else saw('brk into a mapping');
      return;
    }
    expect(free, 'brk grew over another mapping').toBe(true);
    // the heap region grows when the page below the old end is a read-write heap page
    const top = m.s.pages.get(oldEnd - 1);
    const extend = top !== undefined && top.heap && top.prot === RW;
    const rid = extend ? top.rid : m.s.nextRid;
    update(m, (pages) => { for (let v = newEnd; v < oldEnd; v++) pages.delete(v); }, (d) => { d.brk = want; if (!extend) d.nextRid++; });
    if (newEnd > oldEnd) tagNew(m, r, oldEnd, newEnd - oldEnd, RW, rid, true);
    saw(newEnd > oldEnd ? 'brk grow' : newEnd < oldEnd ? 'brk shrink' : 'brk same page');
  }
  toString(): string { return `brk(${this.delta >= 0 ? '+' : ''}${this.delta})`; }
}

/** fork: the child has every page as a copy in its own memory; destroying it returns all of it. */
class Fork implements fc.Command<Model, Real> {
  check(): boolean { return true; }
  run(m: Model, r: Real): void {
    const freeBefore = r.e.pmem.freeBytes;
    const before = snapshot(r);
    const res = r.as.fork(meter());
    if (!res.ok) {
      expect(res.error).toBe('ENOMEM');
      expect(r.e.pmem.freeBytes).toBe(freeBefore);
      expect(snapshot(r)).toBe(before);
      saw('fork ENOMEM');
      return;
    }
    const child = res.value;
    const bad: number[] = [];
    for (const [vpn, pg] of m.s.pages) {
      const cp = child.translate(vpn * P);
      const w = walk(r.e.mem, child.cr3, vpn * P);
      if (cp === r.as.translate(vpn * P) || r.e.mem.read(cp, 4) !== pg.tag ||
        (w === null ? null : w.phys) !== (pg.prot === PROT_NONE ? null : cp)) bad.push(vpn * P);
    }
    expect(bad, 'pages the child does not have as a copy').toEqual([]);
    expect(child.brkValue).toBe(r.as.brkValue);
    child.destroy(meter());
    expect(r.e.pmem.freeBytes).toBe(freeBefore);
    saw('fork');
  }
  toString(): string { return 'fork+destroy'; }
}

class Check implements fc.Command<Model, Real> {
  check(): boolean { return true; }
  run(m: Model, r: Real): void { checkAll(m, r); }
  toString(): string { return 'check'; }
}

const prot = fc.constantFrom(RW, RW, PROT_READ, PROT_NONE, PROT_READ | 4);
const pages = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 16 }) }, { weight: 1, arbitrary: fc.integer({ min: 1000, max: 2100 }) });
const span = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: 1, max: 16 }) }, { weight: 1, arbitrary: fc.integer({ min: 17, max: 1100 }) });
const off = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) });
const winPage = fc.oneof(fc.nat(WIN_PAGES), fc.nat(WIN_PAGES / 1024 - 1).map((k) => k * 1024));
const commands = [
  fc.tuple(winPage, pages, prot, fc.boolean()).map(([a, n, p, f]) => new Mmap(a, n, p, f)),
  fc.tuple(fc.nat(), off, span).map(([k, o, n]) => new Munmap(k, o, n)),
  fc.tuple(fc.nat(), off, span, prot).map(([k, o, n, p]) => new Mprotect(k, o, n, p)),
  fc.tuple(fc.nat(), fc.oneof(fc.integer({ min: 1, max: 8 }), fc.constant(0)), pages, fc.boolean(), fc.option(winPage, { freq: 4 }))
    .map(([k, n, nn, mv, fx]) => new Mremap(k, n, nn, mv, fx)),
  fc.integer({ min: -0x40_0000, max: 0x60_0000 }).map((d) => new Brk(d)),
  fc.constant(new Fork()),
  fc.constant(new Check()),
];

function setup(ram: number): { model: Model; real: Real } {
  const e = makeEnv(ram);
  const kernelBase = e.pmem.bytesOf('kernel');
  const as = newSpace(e, { invalidate: null });
  as.initBrk(HEAP - 0x10);
  return { model: { s: { pages: new Map(), brk: HEAP - 0x10, nextTag: 1, nextRid: 0 } }, real: { e, as, kernelBase } };
}

describe('address-space operations against a page-level model', () => {
  const cases = [
    { name: 'plenty of memory', ram: 64 * MiB, must: ['mmap', 'mmap fixed', 'munmap', 'mprotect', 'mprotect over a hole', 'mremap moved',
      'mremap grown in place', 'mremap shrunk', 'mremap EFAULT', 'brk grow', 'brk shrink', 'brk into a mapping', 'fork', '4 MiB pages'] },
    { name: 'scarce memory (ENOMEM paths)', ram: 16 * MiB, must: ['ENOMEM', 'fork ENOMEM', 'fork', 'mremap moved', '4 MiB pages'] },
  ];
  for (const { name, ram, must } of cases) {
    it(`keeps page tables, contents and pmem in step with the model: ${name}`, () => {
      seen.clear();
      fc.assert(fc.property(fc.commands(commands, { maxCommands: 30, size: 'max' }), (cmds) => {
        const s = setup(ram);
        fc.modelRun(() => s, cmds);
        checkAll(s.model, s.real);
        const { pmem } = s.real.e;
        const freeAfter = pmem.freeBytes + pmem.bytesOf('user') + (s.real.as.stats().pageTables + 1) * P;
        s.real.as.destroy(meter());
        expect(pmem.freeBytes).toBe(freeAfter);
        expect(pmem.bytesOf('user')).toBe(0);
        expect(pmem.bytesOf('kernel')).toBe(s.real.kernelBase);
      }), { seed: SEED, numRuns: 40 });
      for (const k of must) expect(seen.get(k) ?? 0, `outcome "${k}" was exercised`).toBeGreaterThan(0);
    });
  }
});
