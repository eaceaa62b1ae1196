/**
 * The decoded-instruction cache, shared by the cores of a machine: per physical page, the Insn
 * decoded at each byte offset. A page with cached instructions is marked in PhysMem.codePage;
 * any write to it (a core, DMA, the host) drops the page's instructions, so self-modifying code
 * and code loaded behind the CPU's back always execute as written.
 */
import type { PhysMem } from '../mem/physmem.ts';
import type { Insn } from './insn.ts';

interface CodeCacheClient { protectCodePage(ppn: number): void; invalidateFetch(): void }

export class CodeCache {
  readonly pages: (Array<Insn | undefined> | undefined)[] = [];
  private readonly clients: CodeCacheClient[] = [];
  /** Pages dropped because they were written (self-modifying code, DMA, loaders). */
  invalidations = 0;

  constructor(private readonly mem: PhysMem) {
    this.pages.length = mem.ramPages;
    mem.onCodeWrite((ppn) => {
      if (this.pages[ppn] !== undefined) {
        this.pages[ppn] = undefined;
        this.invalidations++;
        for (const c of this.clients) c.invalidateFetch(); // successor links may point into the page
      }
    });
  }

  attach(c: CodeCacheClient): void { this.clients.push(c); }

  store(phys: number, insn: Insn): void {
    const ppn = phys >>> 12;
    if (ppn >= this.mem.ramPages || this.mem.ramPage[ppn] !== 1) return; // MMIO/unbacked: never cached
    let page = this.pages[ppn];
    if (page === undefined) {
      page = new Array<Insn | undefined>(4096);
      this.pages[ppn] = page;
      if (this.mem.codePage[ppn] === 0) {
        this.mem.markCode(ppn);
        for (const c of this.clients) c.protectCodePage(ppn);
      }
    }
    page[phys & 0xfff] = insn;
  }
}
