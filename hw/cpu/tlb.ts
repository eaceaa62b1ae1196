/**
 * The modelled hardware TLB: set-associative, tagged by address-space ID, sized like a real one.
 *
 * An entry maps one page (the key is the virtual page number shifted right by the page-size
 * shift of its TLB, OR'd with ASID << 20) to a physical frame plus permission bits. Replacement
 * is round-robin within a set (a hit does not update any state, so a hit costs an index and a tag
 * compare per way). A P6 has separate instruction and data TLBs, each with a small large-page
 * TLB beside it; the CPU owns four instances of this class.
 *
 * Misses, page-walk references and evictions are counted by the CPU, which charges them through
 * the cost table. Callers keep the CPU's fast lookup mirror in step: insert() reports the key it
 * evicted and the flush calls report each key they drop.
 */

/** Entry permission bits (low 12 bits of `data`; the frame is data & ~0xfff). */
export const TE_W = 1 << 0;     // writable at every level
export const TE_U = 1 << 1;     // user-accessible at every level
export const TE_D = 1 << 2;     // the dirty bit is already set in the final entry
export const TE_G = 1 << 3;     // global (survives CR3 writes when CR4.PGE)
export const TE_NX = 1 << 4;    // no-execute (PAE with EFER.NXE)
export const TE_HIGH = 1 << 5;  // frame lies at or above 4 GiB (PAE): no RAM there

export interface TlbGeometry { readonly sets: number; readonly ways: number }

export class Tlb {
  readonly sets: number;
  readonly ways: number;
  readonly tag: Int32Array;
  readonly data: Int32Array;
  private readonly next: Uint8Array;

  constructor(g: TlbGeometry) {
    if (!(g.sets > 0 && (g.sets & (g.sets - 1)) === 0)) throw new RangeError(`TLB sets ${g.sets} must be a power of two`);
    if (!(g.ways > 0 && g.ways <= 255)) throw new RangeError(`TLB ways ${g.ways} out of range`);
    this.sets = g.sets;
    this.ways = g.ways;
    this.tag = new Int32Array(g.sets * g.ways).fill(-1);
    this.data = new Int32Array(g.sets * g.ways);
    this.next = new Uint8Array(g.sets);
  }

  get entries(): number { return this.sets * this.ways; }

  /** Index of the entry holding `key`, or -1. */
  lookup(key: number): number {
    const w = this.ways;
    const base = (key & (this.sets - 1)) * w;
    const tag = this.tag;
    for (let i = 0; i < w; i++) if (tag[base + i] === key) return base + i;
    return -1;
  }

  /** Inserts (or replaces) `key`; returns the key evicted to make room, or -1. */
  insert(key: number, data: number): number {
    const w = this.ways;
    const set = key & (this.sets - 1);
    const base = set * w;
    const tag = this.tag;
    for (let i = 0; i < w; i++) {
      if (tag[base + i] === key) { this.data[base + i] = data; return -1; }
    }
    for (let i = 0; i < w; i++) {
      if (tag[base + i] === -1) { tag[base + i] = key; this.data[base + i] = data; return -1; }
    }
    const victim = base + this.next[set];
    this.next[set] = (this.next[set] + 1) % w;
    const old = tag[victim];
    tag[victim] = key;
    this.data[victim] = data;
    return old;
  }

  invalidateIndex(i: number): void { this.tag[i] = -1; }

  /**
   * Drops entries: all of them, or (keepGlobal) all but global ones; restricted to one ASID
   * unless asid < 0. Calls `dropped` with each key removed.
   */
  flush(keepGlobal: boolean, asid: number, dropped?: (key: number) => void): void {
    const tag = this.tag, data = this.data;
    for (let i = 0; i < tag.length; i++) {
      const k = tag[i];
      if (k === -1) continue;
      if (asid >= 0 && (k >>> 20) !== asid) continue;
      if (keepGlobal && (data[i] & TE_G) !== 0) continue;
      tag[i] = -1;
      if (dropped) dropped(k);
    }
  }

  /** Number of valid entries (for tests and statistics). */
  valid(): number {
    let n = 0;
    for (let i = 0; i < this.tag.length; i++) if (this.tag[i] !== -1) n++;
    return n;
  }
}

/** P6 (Pentium Pro/II/III) TLB sizes: ITLB 32 entries 4-way, DTLB 64 entries 4-way, 4 MiB TLBs: I 2 fully associative, D 8 4-way. */
export interface TlbConfig {
  readonly itlb: TlbGeometry;
  readonly dtlb: TlbGeometry;
  readonly itlbLarge: TlbGeometry;
  readonly dtlbLarge: TlbGeometry;
}

export const P6_TLBS: TlbConfig = {
  itlb: { sets: 8, ways: 4 },
  dtlb: { sets: 16, ways: 4 },
  itlbLarge: { sets: 1, ways: 2 },
  dtlbLarge: { sets: 2, ways: 4 },
};
