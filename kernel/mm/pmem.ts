/**
 * The physical memory manager: every page of usable RAM has a type (free, kernel, user, vmm),
 * and the kernel allocates physically contiguous, aligned blocks of it.
 *
 * Design (as Kitten's mm/pmem.c, rather than a buddy allocator): pmem keeps the usable RAM of the
 * machine's E820 map as a sorted list of extents, each with one type; adjacent extents of the same
 * type are merged, so free memory is always a set of maximal free extents.
 * - alloc(size, align, phase) places a block of exactly `size` bytes (rounded up to 4 KiB) at an
 *   address with `base % align === phase`, in the smallest free extent that can hold it (best fit;
 *   ties go to the lowest address), at the lowest such address in that extent. A buddy allocator
 *   would round a block up to a power of two and could only place it at an address aligned to its
 *   own size: here there is no internal waste, any contiguous free range can serve a request (a
 *   1 GiB guest memory fits in [1 MiB, 1.5 GiB) although no 1 GiB-aligned 1 GiB range is free),
 *   and `phase` lets an address space put a region's physical memory at the same offset within a
 *   4 MiB frame as its virtual address, so the region can be mapped with 4 MiB pages.
 * - free(base, size) returns any allocated page range, whole blocks or parts of them (munmap of
 *   part of a region returns that part); freed memory merges with its free neighbours at once.
 * - claim(base, size) takes a given free range (the kernel's own memory at boot, or growing a
 *   block in place).
 * - Deterministic: the result depends only on the sequence of calls.
 * - Failure is a Result (ENOMEM when no free range fits, EINVAL for bad arguments) and changes
 *   nothing.
 *
 * Costs: each call charges the meter mmCosts.pmemCall plus mmCosts.pmemExtent per extent it
 * walks (the list is kernel data, not emulated memory).
 */
import type { MemRange } from '../../hw/boot/multiboot.ts';
import { type Meter, mmCosts } from '../costs.ts';
import { err, ok, type Result } from './result.ts';

export const PAGE_SIZE = 4096;

/** The type of a page of RAM. 'reserved' is what pmem does not manage (firmware ranges, holes, no RAM). */
export type PmemType = 'free' | 'kernel' | 'user' | 'vmm' | 'reserved';
/** The types an allocation can have. */
export type OwnerType = 'kernel' | 'user' | 'vmm';

export interface PmemRegion {
  readonly base: number;
  readonly size: number;
  readonly type: PmemType;
}

export interface AllocRequest {
  /** Bytes; rounded up to whole 4 KiB pages. */
  size: number;
  type: OwnerType;
  /** A power of two; the block's base is a multiple of it (plus `phase`). Default and minimum 4 KiB. */
  align?: number;
  /** base % align === phase; a multiple of 4 KiB below `align`. Default 0. */
  phase?: number;
}

export interface PmemOptions {
  /**
   * Bytes at the bottom of RAM the kernel keeps for itself (real-mode structures, the boot
   * information, AP start-up trampolines). Default 1 MiB; typed 'kernel'.
   */
  lowReserve?: number;
  /** Further ranges the kernel claims at boot (its own data, modules); typed 'kernel' unless given. */
  reserve?: readonly { base: number; size: number; type?: OwnerType }[];
  /** Manage no RAM at or above this address (the PhysMem's size), if given. */
  ramSize?: number;
}

interface Extent { base: number; end: number; type: Exclude<PmemType, 'reserved'> }

const E820_USABLE = 1;

function isPow2(n: number): boolean { return Number.isInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n; }
function pageUp(n: number): number { return Math.ceil(n / PAGE_SIZE) * PAGE_SIZE; }
function pageDown(n: number): number { return Math.floor(n / PAGE_SIZE) * PAGE_SIZE; }

export class Pmem {
  /** The managed extents, sorted, disjoint, adjacent ones of equal type merged. */
  private xs: Extent[] = [];
  /** Firmware ranges and holes of the E820 map, for the region list. */
  private readonly firmware: PmemRegion[];
  private free_ = 0;
  private readonly total: number;

  constructor(map: readonly MemRange[], o: PmemOptions = {}) {
    const limit = o.ramSize ?? Infinity;
    const usable = map.filter((r) => r.type === E820_USABLE)
      .map((r) => ({ base: pageUp(r.base), end: pageDown(Math.min(r.base + r.length, limit)) }))
      .filter((r) => r.end > r.base)
      .sort((a, b) => a.base - b.base);
    for (const r of usable) {
      const last = this.xs[this.xs.length - 1];
      if (last !== undefined && r.base <= last.end) last.end = Math.max(last.end, r.end);
      else this.xs.push({ base: r.base, end: r.end, type: 'free' });
    }
    this.total = this.xs.reduce((s, x) => s + x.end - x.base, 0);
    this.free_ = this.total;
    this.firmware = map.filter((r) => r.type !== E820_USABLE && r.length > 0)
      .map((r) => ({ base: r.base, size: r.length, type: 'reserved' as const }));
    const low = o.lowReserve ?? 0x100000;
    if (low > 0) this.retypeManaged(0, pageUp(low), 'kernel');
    for (const r of o.reserve ?? []) this.retypeManaged(pageDown(r.base), pageUp(r.base + r.size), r.type ?? 'kernel');
  }

  // ------------------------------------------------------------------------------ queries

  /** Bytes of RAM pmem manages (usable E820 RAM). */
  get usableBytes(): number { return this.total; }
  /** Free bytes. */
  get freeBytes(): number { return this.free_; }

  /** Bytes of the given type (managed memory only). */
  bytesOf(type: Exclude<PmemType, 'reserved'>): number {
    let n = 0;
    for (const x of this.xs) if (x.type === type) n += x.end - x.base;
    return n;
  }

  /** The largest free contiguous block, in bytes. */
  largestFree(): number {
    let m = 0;
    for (const x of this.xs) if (x.type === 'free' && x.end - x.base > m) m = x.end - x.base;
    return m;
  }

  /** The type of the page holding `addr`. */
  typeOf(addr: number): PmemType {
    const i = this.find(addr);
    return i >= 0 ? this.xs[i].type : 'reserved';
  }

  /** The managed extents and the firmware's reserved ranges, sorted by address. */
  regions(): PmemRegion[] {
    const out: PmemRegion[] = this.xs.map((x) => ({ base: x.base, size: x.end - x.base, type: x.type }));
    for (const f of this.firmware) out.push(f);
    return out.sort((a, b) => a.base - b.base || a.size - b.size);
  }

  // ------------------------------------------------------------------------------ allocation

  /** Allocates a physically contiguous block; its base address, or ENOMEM/EINVAL. */
  alloc(meter: Meter, req: AllocRequest): Result<number> {
    meter.cycles += mmCosts.pmemCall.cycles;
    const align = Math.max(req.align ?? PAGE_SIZE, PAGE_SIZE);
    const phase = req.phase ?? 0;
    if (!(req.size > 0) || !Number.isFinite(req.size) || !isPow2(align) || !Number.isInteger(phase) ||
      phase < 0 || phase >= align || phase % PAGE_SIZE !== 0 || !isOwner(req.type)) return err('EINVAL');
    const size = pageUp(req.size);
    let best = -1, bestStart = 0, bestLen = Infinity;
    const xs = this.xs;
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i];
      if (x.type !== 'free') continue;
      const len = x.end - x.base;
      if (len < size || len >= bestLen) continue;
      const start = x.base + (((phase - x.base) % align) + align) % align;
      if (start + size <= x.end) { best = i; bestStart = start; bestLen = len; }
    }
    meter.cycles += mmCosts.pmemExtent.cycles * xs.length;
    if (best < 0) return err('ENOMEM');
    this.retype(bestStart, bestStart + size, req.type);
    return ok(bestStart);
  }

  /** Takes the free range [base, base+size) (page-aligned); ENOMEM if any page of it is not free. */
  claim(meter: Meter, base: number, size: number, type: OwnerType): Result<number> {
    meter.cycles += mmCosts.pmemCall.cycles;
    if (!validRange(base, size) || !isOwner(type)) return err('EINVAL');
    const i = this.find(base);
    meter.cycles += mmCosts.pmemExtent.cycles * Math.max(1, Math.ceil(Math.log2(this.xs.length + 1)));
    if (i < 0 || this.xs[i].type !== 'free' || this.xs[i].end < base + size) return err('ENOMEM');
    this.retype(base, base + size, type);
    return ok(base);
  }

  /**
   * Frees [base, base+size) (page-aligned): every page of it must be allocated (of `type`, when
   * given), else EINVAL and nothing changes. Parts of blocks may be freed.
   */
  free(meter: Meter, base: number, size: number, type?: OwnerType): Result<undefined> {
    meter.cycles += mmCosts.pmemCall.cycles;
    if (!validRange(base, size)) return err('EINVAL');
    let i = this.find(base);
    if (i < 0) return err('EINVAL');
    let at = base;
    const end = base + size;
    let steps = 1;
    while (at < end) {
      const x = this.xs[i];
      if (x === undefined || !(x.base <= at && at < x.end)) return err('EINVAL');
      if (x.type === 'free' || (type !== undefined && x.type !== type)) return err('EINVAL');
      at = x.end;
      i++;
      steps++;
    }
    meter.cycles += mmCosts.pmemExtent.cycles * steps;
    this.retype(base, end, 'free');
    return ok(undefined);
  }

  // ------------------------------------------------------------------------------ the extent list

  /** Index of the extent holding `addr`, or -1. */
  private find(addr: number): number {
    const xs = this.xs;
    let lo = 0, hi = xs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (xs[mid].end <= addr) lo = mid + 1;
      else if (xs[mid].base > addr) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  /** Splits the extent holding `addr` so that one starts there. */
  private splitAt(addr: number): void {
    const i = this.find(addr);
    if (i < 0) return;
    const x = this.xs[i];
    if (x.base === addr) return;
    this.xs.splice(i + 1, 0, { base: addr, end: x.end, type: x.type });
    x.end = addr;
  }

  /** Sets the type of [base, end), which must lie inside managed memory (no holes). */
  private retype(base: number, end: number, type: Extent['type']): void {
    this.splitAt(base);
    this.splitAt(end);
    let i = this.find(base);
    const first = i;
    while (i < this.xs.length && this.xs[i].base < end) {
      const x = this.xs[i];
      const n = x.end - x.base;
      if (x.type === 'free') this.free_ -= n;
      if (type === 'free') this.free_ += n;
      x.type = type;
      i++;
    }
    // merge from the extent before the range to the one after it
    let k = Math.max(first - 1, 0);
    const stop = Math.min(i, this.xs.length - 1);
    let last = stop;
    while (k < last) {
      const a = this.xs[k], b = this.xs[k + 1];
      if (a.end === b.base && a.type === b.type) { a.end = b.end; this.xs.splice(k + 1, 1); last--; }
      else k++;
    }
  }

  /** retype() clipped to the managed extents (for boot-time reservations that may cover holes). */
  private retypeManaged(base: number, end: number, type: Extent['type']): void {
    for (const x of this.xs.map((e) => ({ base: e.base, end: e.end }))) {
      const b = Math.max(base, x.base), e = Math.min(end, x.end);
      if (b < e) this.retype(b, e, type);
    }
  }
}

function isOwner(t: string): t is OwnerType { return t === 'kernel' || t === 'user' || t === 'vmm'; }

function validRange(base: number, size: number): boolean {
  return Number.isInteger(base) && Number.isInteger(size) && base >= 0 && size > 0 &&
    base % PAGE_SIZE === 0 && size % PAGE_SIZE === 0 && base + size <= 2 ** 32;
}
