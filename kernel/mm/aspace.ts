/**
 * User address spaces: regions (text, data, heap, stack, anonymous mmap) backed up front by
 * physically contiguous memory from pmem, mapped by real 2-level i386 page tables in emulated
 * memory that the CPU walks. As in Kitten there is no demand paging: every page of a region is
 * present from the moment the region exists, so a process takes no page faults in normal
 * operation; a fault means the program touched what it has not mapped.
 *
 * Layout (Linux i386 with a 3 GiB/1 GiB split and address randomisation off):
 *   [MIN_MAP_ADDR, USER_TOP)   user space (page-directory entries 0-767)
 *   [USER_TOP, 4 GiB)          the kernel's half: empty unless a KernelSpace maps pages there
 *                              (the GDT/TSS pages the CPU reads by linear address); supervisor-only
 * mmap without a fixed address searches top-down from `mmapBase` (default MMAP_BASE =
 * USER_TOP - 128 MiB, Linux's mmap_base with the minimum stack gap), then the rest of user space.
 *
 * Regions. A region is a page-aligned virtual range with one protection and one kind, backed by
 * one physically contiguous block: page `start + k` maps to `phys + k`. A region may own more
 * physical memory than it maps (`cap` bytes from `phys`): the heap keeps its spare capacity so that
 * brk can grow without copying. Operations split regions (munmap or mprotect of part of one) and
 * merge neighbours that line up again (same kind and protection, physically contiguous).
 *
 * Page tables. A 4 MiB virtual frame is mapped by one 4 MiB page (a PSE page-directory entry)
 * when a single accessible region covers it and the region's physical address has the same
 * offset in its 4 MiB frame; otherwise by a page table of 4 KiB entries. Allocation chooses that
 * physical offset for any region that spans a whole 4 MiB frame, and mmap places mappings of
 * 4 MiB or more at 4 MiB-aligned addresses, so big regions get big pages. The kernel must set
 * CR4.PSE (0x10). mprotect/munmap of part of a 4 MiB page replace it by a page table.
 *
 * Every operation is all-or-nothing: it first obtains everything it needs (physical memory,
 * page-table pages), and on failure gives it back and returns ENOMEM with the address space
 * unchanged. After an operation changes or removes translations that existed, the address
 * space calls its `invalidate` hook with the affected virtual range: the kernel flushes the TLBs
 * of the cores that run this address space (see coreInvalidator for one core).
 *
 * Costs, charged to the Meter (a Cpu) passed to each call: mmCosts.aspaceCall per call, pmem's
 * own charges, mmCosts.pteWrite per page-table or page-directory entry written, and
 * kernelCosts.memWord per word of emulated memory zeroed (new regions, new page tables) or read
 * and written (two per word copied: fork, relocation, copyin/copyout).
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { insnCosts } from '../../hw/costs.ts';
import type { PhysMem } from '../../hw/mem/physmem.ts';
import { kernelCosts, type Meter, mmCosts } from '../costs.ts';
import { PAGE_SIZE, type Pmem } from './pmem.ts';
import { err, ok, type Result } from './result.ts';

export const USER_TOP = 0xc000_0000;
export const MMAP_BASE = USER_TOP - 0x800_0000;
/** The lowest address a mapping may have (Linux's vm.mmap_min_addr default). */
export const MIN_MAP_ADDR = 0x1_0000;
export const LARGE_PAGE = 0x40_0000;
/** CR4.PSE: the kernel sets it on every core that runs address spaces with 4 MiB pages. */
export const CR4_PSE = 0x10;

export const PROT_NONE = 0, PROT_READ = 1, PROT_WRITE = 2, PROT_EXEC = 4;

export type RegionKind = 'text' | 'data' | 'heap' | 'stack' | 'mmap';

export interface Region {
  /** Page-aligned virtual range [start, end). */
  readonly start: number;
  readonly end: number;
  /** PROT_* bits. i386 2-level paging has no NX bit: any accessible page can be executed. */
  readonly prot: number;
  readonly kind: RegionKind;
  /** Physical address of the page mapped at `start`. */
  readonly phys: number;
  /** Bytes of physical memory the region owns from `phys` (>= end - start). */
  readonly cap: number;
}

export interface MapRequest {
  /** With `fixed`: where the mapping goes (page-aligned). Without: a hint, used if that range is free. */
  addr?: number;
  /** Bytes; rounded up to whole pages. */
  len: number;
  prot: number;
  /** Default 'mmap'. The ELF loader maps 'text' and 'data', the kernel the 'stack'. */
  kind?: RegionKind;
  /** MAP_FIXED: map exactly at `addr`, replacing what is there. */
  fixed?: boolean;
  /** MAP_FIXED_NOREPLACE: with `fixed`, fail with EEXIST instead of replacing. */
  noReplace?: boolean;
}

export interface RemapOptions {
  /** MREMAP_MAYMOVE */
  mayMove?: boolean;
  /** MREMAP_FIXED (needs mayMove): the new address; what is there is unmapped. */
  newAddr?: number;
}

export interface AspaceOptions {
  pmem: Pmem;
  mem: PhysMem;
  /** Map with 4 MiB pages where possible (default true); false maps everything with 4 KiB pages. */
  largePages?: boolean;
  /** Kernel mappings above USER_TOP, shared by every address space. */
  kernel?: KernelSpace | null;
  /** Called with each virtual range whose old translations are stale (default: none). */
  invalidate?: ((va: number, len: number) => void) | null;
  /** Where the top-down mmap search starts (default MMAP_BASE). */
  mmapBase?: number;
}

export interface AspaceStats {
  regions: number;
  /** Bytes mapped by regions. */
  mappedBytes: number;
  /** Bytes of physical memory the regions own (mapped plus spare heap capacity). */
  ownedBytes: number;
  /** Page-table pages (4 KiB each), besides the page directory. */
  pageTables: number;
  /** Page-directory entries that map a 4 MiB page. */
  largePages: number;
}

const PTE_P = 1, PTE_W = 2, PTE_U = 4, PDE_PS = 0x80, PTE_G = 0x100;
const USER_PDES = USER_TOP / LARGE_PAGE;
const EMPTY = 0, TABLE = 1, LARGE = 2;
/** Spare heap capacity on relocation: up to the size again, at most this much. */
const HEAP_SLACK_MAX = 32 << 20;

const pageUp = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

/** Physical ranges obtained during one operation, given back if it fails. */
interface Txn { got: [number, number][] }

export class AddressSpace {
  readonly pmem: Pmem;
  readonly mem: PhysMem;
  readonly largePages: boolean;
  readonly kernel: KernelSpace | null;
  readonly mmapBase: number;
  invalidate: ((va: number, len: number) => void) | null;
  /** Physical address of the page directory. */
  readonly pd: number;
  private regs: readonly Region[] = [];
  /** Per user PDE: EMPTY, TABLE or LARGE, and the page table's address for TABLE. */
  private readonly pdeKind = new Uint8Array(USER_PDES);
  private readonly ptAddr = new Float64Array(USER_PDES);
  private heapStart = 0;
  private brkNow = 0;
  private dead = false;

  private constructor(o: AspaceOptions, pd: number) {
    this.pmem = o.pmem;
    this.mem = o.mem;
    this.largePages = o.largePages ?? true;
    this.kernel = o.kernel ?? null;
    this.invalidate = o.invalidate ?? null;
    this.mmapBase = o.mmapBase ?? MMAP_BASE;
    this.pd = pd;
  }

  /** A new, empty address space: a zeroed page directory (plus the kernel's shared entries). */
  static create(meter: Meter, o: AspaceOptions): Result<AddressSpace> {
    meter.cycles += mmCosts.aspaceCall.cycles;
    const pd = o.pmem.alloc(meter, { size: PAGE_SIZE, type: 'kernel' });
    if (!pd.ok) return pd;
    zeroPhys(meter, o.mem, pd.value, PAGE_SIZE);
    const as = new AddressSpace(o, pd.value);
    as.kernel?.attach(meter, as);
    return ok(as);
  }

  /** The value to load into CR3. */
  get cr3(): number { return this.pd; }

  /** The current program break. */
  get brkValue(): number { return this.brkNow; }

  /** The regions, sorted by address. */
  regions(): Region[] { return this.regs.map((r) => ({ ...r })); }

  /** The region holding `va`, if any. */
  regionAt(va: number): Region | undefined {
    const i = this.indexAt(va);
    return i >= 0 ? { ...this.regs[i] } : undefined;
  }

  /** The physical address `va` maps to (whatever the protection), or -1. */
  translate(va: number): number {
    const i = this.indexAt(va);
    if (i < 0) return -1;
    const r = this.regs[i];
    return r.phys + (va - r.start);
  }

  stats(): AspaceStats {
    let mapped = 0, owned = 0, tables = 0, large = 0;
    for (const r of this.regs) { mapped += r.end - r.start; owned += r.cap; }
    for (let c = 0; c < USER_PDES; c++) {
      if (this.pdeKind[c] === TABLE) tables++;
      else if (this.pdeKind[c] === LARGE) large++;
    }
    return { regions: this.regs.length, mappedBytes: mapped, ownedBytes: owned, pageTables: tables, largePages: large };
  }

  // ============================================================================ the heap

  /** Sets where the heap starts (the end of the loaded image); brk starts there too. */
  initBrk(va: number): void {
    this.heapStart = va;
    this.brkNow = va;
  }

  /**
   * brk(2) with Linux's semantics: moves the break to `want` and returns the new break, or
   * returns the unchanged break when `want` is below the heap's start, collides with another
   * mapping or no memory is left (so brk(0) returns the current break). Pages between the break
   * rounded up and the old one are mapped or unmapped; new heap pages read as zero. Shrinking
   * keeps the physical memory as spare capacity of the heap.
   */
  brk(meter: Meter, want: number): number {
    this.live();
    meter.cycles += mmCosts.aspaceCall.cycles;
    const cur = this.brkNow;
    if (!(want >= this.heapStart) || want > USER_TOP) return cur;
    const oldEnd = pageUp(cur), newEnd = pageUp(want);
    if (newEnd === oldEnd) { this.brkNow = want; return want; }
    const txn: Txn = { got: [] };
    const hi = this.indexAt(oldEnd - 1);
    const h = hi >= 0 && this.regs[hi].kind === 'heap' && this.regs[hi].end === oldEnd ? this.regs[hi] : undefined;
    let next: Region[];
    let dirty: [number, number];
    if (newEnd < oldEnd) {
      if (h !== undefined && h.start < newEnd) next = replace(this.regs, h, { ...h, end: newEnd });
      else next = removeRange(this.regs, newEnd, oldEnd);
      dirty = [newEnd, oldEnd];
    } else {
      if (this.overlaps(oldEnd, newEnd)) return cur;
      if (h !== undefined && h.prot === (PROT_READ | PROT_WRITE)) {
        const used = oldEnd - h.start, need = newEnd - h.start;
        const g = this.ensureCap(meter, txn, h.start, h.phys, h.cap, used, need, true);
        if (g === null) return cur;
        zeroPhys(meter, this.mem, g.phys + used, need - used);
        next = replace(this.regs, h, { ...h, end: newEnd, phys: g.phys, cap: g.cap });
        dirty = g.phys !== h.phys ? [h.start, newEnd] : [oldEnd, newEnd];
      } else {
        const len = newEnd - oldEnd;
        const p = this.acquire(meter, txn, oldEnd, len, len, true);
        if (p < 0) return cur;
        next = insert(this.regs, { start: oldEnd, end: newEnd, prot: PROT_READ | PROT_WRITE, kind: 'heap', phys: p, cap: len });
        dirty = [oldEnd, newEnd];
      }
    }
    const r = this.commit(meter, txn, normalize(next), [dirty]);
    if (!r.ok) return cur;
    this.brkNow = want;
    return want;
  }

  // ============================================================================ mappings

  /** mmap(2) of anonymous memory (zero-filled): the mapping's address, or an error. */
  mmap(meter: Meter, req: MapRequest): Result<number> {
    this.live();
    meter.cycles += mmCosts.aspaceCall.cycles;
    if (!(req.len > 0) || !validProt(req.prot)) return err('EINVAL');
    if (req.len > USER_TOP) return err('ENOMEM');
    const len = pageUp(req.len);
    const kind = req.kind ?? 'mmap';
    let va: number;
    if (req.fixed) {
      const a = req.addr ?? -1;
      if (!(a >= 0) || a % PAGE_SIZE !== 0) return err('EINVAL');
      if (a < MIN_MAP_ADDR) return err('EPERM');
      if (a + len > USER_TOP) return err('ENOMEM');
      if (req.noReplace && this.overlaps(a, a + len)) return err('EEXIST');
      va = a;
    } else {
      const hint = req.addr !== undefined ? pageUp(req.addr) : 0;
      if (hint >= MIN_MAP_ADDR && hint + len <= USER_TOP && !this.overlaps(hint, hint + len)) va = hint;
      else {
        va = this.findFree(len, 0);
        if (va < 0) return err('ENOMEM');
      }
    }
    const txn: Txn = { got: [] };
    const p = this.acquire(meter, txn, va, len, len, true);
    if (p < 0) return err('ENOMEM');
    const next = insert(removeRange(this.regs, va, va + len), { start: va, end: va + len, prot: req.prot, kind, phys: p, cap: len });
    const r = this.commit(meter, txn, normalize(next), [[va, va + len]]);
    return r.ok ? ok(va) : r;
  }

  /** munmap(2): unmaps every page of [addr, addr+len) (unmapped pages are fine) and frees their memory. */
  munmap(meter: Meter, addr: number, len: number): Result<undefined> {
    this.live();
    meter.cycles += mmCosts.aspaceCall.cycles;
    if (!(addr >= 0) || addr % PAGE_SIZE !== 0 || !(len > 0)) return err('EINVAL');
    const end = addr + pageUp(len);
    if (end > USER_TOP) return err('EINVAL');
    if (!this.overlaps(addr, end)) return ok(undefined);
    return this.commit(meter, { got: [] }, removeRange(this.regs, addr, end), [[addr, end]]);
  }

  /** mprotect(2): every page of [addr, addr+len) must be mapped (else ENOMEM). */
  mprotect(meter: Meter, addr: number, len: number, prot: number): Result<undefined> {
    this.live();
    meter.cycles += mmCosts.aspaceCall.cycles;
    if (!(addr >= 0) || addr % PAGE_SIZE !== 0 || !(len >= 0) || !validProt(prot)) return err('EINVAL');
    if (len === 0) return ok(undefined);
    const end = addr + pageUp(len);
    if (end > USER_TOP) return err('ENOMEM');
    if (!this.covered(addr, end)) return err('ENOMEM');
    const next = splitAt(splitAt(this.regs, addr), end)
      .map((r) => (r.start >= addr && r.end <= end && r.prot !== prot ? { ...r, prot } : r));
    return this.commit(meter, { got: [] }, normalize(next), [[addr, end]]);
  }

  /**
   * mremap(2): [old, old+oldLen) must lie in one region (else EFAULT). Shrinks in place; grows in
   * place when the pages after it are free; otherwise moves (with mayMove) to a free range or to
   * `newAddr`. The contents are kept; pages added read as zero. Returns the new address.
   */
  mremap(meter: Meter, old: number, oldLen: number, newLen: number, o: RemapOptions = {}): Result<number> {
    this.live();
    meter.cycles += mmCosts.aspaceCall.cycles;
    if (!(old >= 0) || old % PAGE_SIZE !== 0 || !(newLen > 0) || !(oldLen > 0)) return err('EINVAL');
    if (o.newAddr !== undefined && (!o.mayMove || !(o.newAddr >= 0) || o.newAddr % PAGE_SIZE !== 0)) return err('EINVAL');
    oldLen = pageUp(oldLen);
    newLen = pageUp(newLen);
    if (newLen > USER_TOP) return err('ENOMEM');
    const i = this.indexAt(old);
    if (i < 0 || old + oldLen > this.regs[i].end) return err('EFAULT');
    const r = this.regs[i];
    if (o.newAddr !== undefined) return this.move(meter, r, old, oldLen, newLen, o.newAddr);
    if (newLen <= oldLen) {
      if (newLen < oldLen) {
        const res = this.commit(meter, { got: [] }, removeRange(this.regs, old + newLen, old + oldLen), [[old + newLen, old + oldLen]]);
        if (!res.ok) return res;
      }
      return ok(old);
    }
    const end = old + oldLen, newEnd = old + newLen;
    if (end === r.end && newEnd <= USER_TOP && !this.overlaps(end, newEnd)) {
      const txn: Txn = { got: [] };
      const used = end - r.start, need = newEnd - r.start;
      const g = this.ensureCap(meter, txn, r.start, r.phys, r.cap, used, need, false);
      if (g !== null) {
        zeroPhys(meter, this.mem, g.phys + used, need - used);
        const next = replace(this.regs, r, { ...r, end: newEnd, phys: g.phys, cap: g.cap });
        const res = this.commit(meter, txn, normalize(next), [g.phys !== r.phys ? [r.start, newEnd] : [end, newEnd]]);
        if (res.ok || !o.mayMove) return res.ok ? ok(old) : res;
      } else if (!o.mayMove) return err('ENOMEM');
      // growing the whole region in place needs more memory than moving just this range
    }
    if (!o.mayMove) return err('ENOMEM');
    return this.move(meter, r, old, oldLen, newLen, undefined);
  }

  private move(meter: Meter, r: Region, old: number, oldLen: number, newLen: number, target: number | undefined): Result<number> {
    const off = old - r.start;
    const piecePhys = r.phys + off;
    const pieceCap = old + oldLen === r.end ? r.cap - off : oldLen;
    let dest: number;
    if (target !== undefined) {
      if (target < MIN_MAP_ADDR) return err('EPERM');
      if (target + newLen > USER_TOP) return err('ENOMEM');
      if (target < old + oldLen && old < target + newLen) return err('EINVAL');
      dest = target;
    } else {
      dest = this.findFree(newLen, piecePhys % LARGE_PAGE);
      if (dest < 0) return err('ENOMEM');
    }
    const txn: Txn = { got: [] };
    const keep = Math.min(oldLen, newLen);
    const g = this.ensureCap(meter, txn, dest, piecePhys, pieceCap, keep, newLen, false);
    if (g === null) return err('ENOMEM');
    zeroPhys(meter, this.mem, g.phys + keep, newLen - keep);
    const cap = g.phys === piecePhys && newLen < pieceCap ? newLen : g.cap;
    let next = removeRange(this.regs, old, old + oldLen);
    next = insert(removeRange(next, dest, dest + newLen), { start: dest, end: dest + newLen, prot: r.prot, kind: r.kind, phys: g.phys, cap });
    const res = this.commit(meter, txn, normalize(next), [[old, old + oldLen], [dest, dest + newLen]]);
    return res.ok ? ok(dest) : res;
  }

  // ============================================================================ fork and exit

  /**
   * A copy of this address space for fork: the same regions at the same addresses, each in new
   * contiguous physical memory with its contents copied, and its own page tables. ENOMEM (and
   * nothing allocated) if memory runs out.
   */
  fork(meter: Meter): Result<AddressSpace> {
    this.live();
    const c = AddressSpace.create(meter, {
      pmem: this.pmem, mem: this.mem, largePages: this.largePages, kernel: this.kernel,
      invalidate: this.invalidate, mmapBase: this.mmapBase,
    });
    if (!c.ok) return c;
    const child = c.value;
    const txn: Txn = { got: [] };
    const regs: Region[] = [];
    for (const r of this.regs) {
      const len = r.end - r.start;
      const p = child.acquire(meter, txn, r.start, len, len, false);
      if (p < 0) { child.rollback(meter, txn); child.destroy(meter); return err('ENOMEM'); }
      copyPhys(meter, this.mem, p, r.phys, len);
      regs.push({ ...r, phys: p, cap: len });
    }
    const res = child.commit(meter, txn, regs, [[0, USER_TOP]]);
    if (!res.ok) { child.destroy(meter); return res; }
    child.heapStart = this.heapStart;
    child.brkNow = this.brkNow;
    return ok(child);
  }

  /** Returns every page (regions, page tables, the directory) to pmem. The space must not be loaded. */
  destroy(meter: Meter): void {
    this.live();
    meter.cycles += mmCosts.aspaceCall.cycles;
    for (const r of this.regs) mustOk(this.pmem.free(meter, r.phys, r.cap, 'user'));
    for (let c = 0; c < USER_PDES; c++) {
      if (this.pdeKind[c] === TABLE) mustOk(this.pmem.free(meter, this.ptAddr[c], PAGE_SIZE, 'kernel'));
      this.pdeKind[c] = EMPTY;
    }
    this.kernel?.detach(this);
    mustOk(this.pmem.free(meter, this.pd, PAGE_SIZE, 'kernel'));
    this.regs = [];
    this.dead = true;
  }

  // ============================================================================ user memory

  /** Copies `len` bytes from user address `va` (readable pages); EFAULT if any is not. */
  copyin(meter: Meter, va: number, len: number): Result<Uint8Array> {
    const segs = this.userSegments(va, len, false);
    if (segs === null) return err('EFAULT');
    const out = new Uint8Array(len);
    let at = 0;
    for (const [p, n] of segs) { out.set(this.mem.readBytes(p, n), at); at += n; }
    meter.cycles += kernelCosts.memWord.cycles * 2 * Math.ceil(len / 4);
    return ok(out);
  }

  /**
   * The 32-bit little-endian word at user address `va`, or null (EFAULT) if any of its bytes is
   * not readable: copyin(va, 4) without allocating (the SYSENTER path reads its sixth argument
   * with it on every call). Charged as copyin charges one word.
   */
  readU32(meter: Meter, va: number): number | null {
    const i = this.indexAt(va);
    if (i >= 0 && va + 4 <= this.regs[i].end && this.regs[i].prot !== PROT_NONE) {
      const r = this.regs[i];
      meter.cycles += kernelCosts.memWord.cycles * 2;
      const p = r.phys + (va - r.start);
      const u8 = this.mem.u8;
      return (u8[p] | (u8[p + 1] << 8) | (u8[p + 2] << 16) | (u8[p + 3] << 24)) >>> 0;
    }
    const w = this.copyin(meter, va, 4); // crosses a region boundary (or faults)
    return w.ok ? (w.value[0] | (w.value[1] << 8) | (w.value[2] << 16) | (w.value[3] << 24)) >>> 0 : null;
  }

  /**
   * Copies `bytes` to user address `va` (writable pages; with `force`, any mapped page: the
   * loader writing a read-only text segment); EFAULT, with nothing written, if a page is not.
   */
  copyout(meter: Meter, va: number, bytes: Uint8Array, force = false): Result<undefined> {
    const segs = this.userSegments(va, bytes.length, !force);
    if (segs === null) return err('EFAULT');
    let at = 0;
    for (const [p, n] of segs) { this.mem.writeBytes(p, bytes.subarray(at, at + n)); at += n; }
    meter.cycles += kernelCosts.memWord.cycles * 2 * Math.ceil(bytes.length / 4);
    return ok(undefined);
  }

  /**
   * A NUL-terminated string at `va` (without its NUL), at most `max` bytes before the NUL:
   * ENAMETOOLONG past that, EFAULT on an unreadable byte before the NUL.
   */
  copyinString(meter: Meter, va: number, max: number): Result<Uint8Array> {
    const bytes: number[] = [];
    const res = ((): Result<Uint8Array> => {
      let a = va;
      for (;;) {
        const i = this.indexAt(a);
        if (i < 0 || this.regs[i].prot === PROT_NONE) return err('EFAULT');
        const r = this.regs[i];
        for (; a < r.end; a++) {
          const b = this.mem.u8[r.phys + (a - r.start)];
          if (b === 0) return ok(Uint8Array.from(bytes));
          if (bytes.length === max) return err('ENAMETOOLONG');
          bytes.push(b);
        }
      }
    })();
    meter.cycles += kernelCosts.memWord.cycles * 2 * Math.ceil((bytes.length + 1) / 4);
    return res;
  }

  /** The physical pieces of [va, va+len), or null if a page is unmapped, inaccessible or (write) read-only. */
  private userSegments(va: number, len: number, write: boolean): [number, number][] | null {
    if (!(va >= 0) || !(len >= 0) || va + len > USER_TOP) return null;
    const segs: [number, number][] = [];
    const end = va + len;
    let a = va;
    while (a < end) {
      const i = this.indexAt(a);
      if (i < 0) return null;
      const r = this.regs[i];
      if (r.prot === PROT_NONE || (write && (r.prot & PROT_WRITE) === 0)) return null;
      const n = Math.min(r.end, end) - a;
      segs.push([r.phys + (a - r.start), n]);
      a += n;
    }
    return segs;
  }

  // ============================================================================ internals

  private live(): void {
    if (this.dead) throw new Error('address space used after destroy()');
  }

  private indexAt(va: number): number {
    const regs = this.regs;
    let lo = 0, hi = regs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (regs[mid].end <= va) lo = mid + 1;
      else if (regs[mid].start > va) hi = mid - 1;
      else return mid;
    }
    return -1;
  }

  private overlaps(a: number, b: number): boolean {
    const i = firstEndingAfter(this.regs, a);
    return i < this.regs.length && this.regs[i].start < b;
  }

  /** True if every page of [a, b) belongs to some region. */
  private covered(a: number, b: number): boolean {
    let at = a;
    for (let i = firstEndingAfter(this.regs, a); i < this.regs.length && at < b; i++) {
      if (this.regs[i].start > at) return false;
      at = this.regs[i].end;
    }
    return at >= b;
  }

  /**
   * A free virtual range of `len` bytes, top-down from mmapBase, then from USER_TOP; 4 MiB
   * aligned (at offset `phase` in its 4 MiB frame) when len >= 4 MiB and large pages are on,
   * so that the mapping can use 4 MiB pages. -1 if none.
   */
  private findFree(len: number, phase: number): number {
    const tries: [number, number][] = [];
    if (this.largePages && len >= LARGE_PAGE) tries.push([LARGE_PAGE, phase]);
    tries.push([PAGE_SIZE, 0]);
    for (const limit of [this.mmapBase, USER_TOP]) {
      for (const [align, ph] of tries) {
        const va = this.searchDown(len, align, ph, limit);
        if (va >= 0) return va;
      }
    }
    return -1;
  }

  private searchDown(len: number, align: number, phase: number, limit: number): number {
    const regs = this.regs;
    for (let k = regs.length; k >= 0; k--) {
      const lo = Math.max(k === 0 ? MIN_MAP_ADDR : regs[k - 1].end, MIN_MAP_ADDR);
      const hi = Math.min(k === regs.length ? USER_TOP : regs[k].start, limit);
      if (hi - lo < len) continue;
      let s = hi - len;
      s -= (((s - phase) % align) + align) % align;
      if (s >= lo) return s;
    }
    return -1;
  }

  /**
   * Physical memory for a region at `va` that owns `cap` bytes: 4 MiB-phase-aligned with va when
   * the region spans a whole 4 MiB frame (so it can use large pages), else anywhere. Zeroes the
   * first `len` bytes if asked. Returns the address, or -1 (nothing allocated).
   */
  private acquire(meter: Meter, txn: Txn, va: number, len: number, cap: number, zero: boolean): number {
    let r: Result<number> | null = null;
    if (this.largePages && Math.ceil(va / LARGE_PAGE) * LARGE_PAGE + LARGE_PAGE <= va + cap) {
      r = this.pmem.alloc(meter, { size: cap, type: 'user', align: LARGE_PAGE, phase: va % LARGE_PAGE });
    }
    if (r === null || !r.ok) r = this.pmem.alloc(meter, { size: cap, type: 'user' });
    if (!r.ok) return -1;
    txn.got.push([r.value, cap]);
    if (zero) zeroPhys(meter, this.mem, r.value, len);
    return r.value;
  }

  /**
   * Makes a region at `va` whose memory is [phys, phys+cap), of which the first `used` bytes
   * hold data, own at least `need` bytes: as it is, by claiming the physical pages after it, or by
   * moving the data to a new block (with spare capacity if `slack`). null if memory is short.
   */
  private ensureCap(meter: Meter, txn: Txn, va: number, phys: number, cap: number, used: number, need: number,
    slack: boolean): { phys: number; cap: number } | null {
    if (cap >= need) return { phys, cap };
    const c = this.pmem.claim(meter, phys + cap, need - cap, 'user');
    if (c.ok) { txn.got.push([phys + cap, need - cap]); return { phys, cap: need }; }
    let want = slack ? pageUp(Math.min(need * 2, need + HEAP_SLACK_MAX)) : need;
    let p = this.acquire(meter, txn, va, 0, want, false);
    if (p < 0 && want > need) { want = need; p = this.acquire(meter, txn, va, 0, want, false); }
    if (p < 0) return null;
    copyPhys(meter, this.mem, p, phys, used);
    return { phys: p, cap: want };
  }

  private rollback(meter: Meter, txn: Txn): void {
    for (const [b, n] of txn.got) mustOk(this.pmem.free(meter, b, n, 'user'));
    txn.got = [];
  }

  /**
   * Makes `next` the region list: obtains the page tables it needs for the chunks the `dirty`
   * ranges touch (or gives back `txn` and fails), frees the physical memory no region owns any
   * more, rewrites the affected page-directory and page-table entries, and invalidates stale
   * translations.
   */
  private commit(meter: Meter, txn: Txn, next: Region[], dirty: [number, number][]): Result<undefined> {
    const chunks = new Set<number>();
    for (const [a, b] of dirty) {
      for (let c = Math.floor(a / LARGE_PAGE); c < Math.min(Math.ceil(b / LARGE_PAGE), USER_PDES); c++) chunks.add(c);
    }
    const order = [...chunks].sort((x, y) => x - y);
    const want = order.map((c) => this.desired(next, c));
    let need = 0;
    order.forEach((c, k) => { if (want[k] === TABLE && this.pdeKind[c] !== TABLE) need++; });
    const pool: number[] = [];
    for (let k = 0; k < need; k++) {
      const r = this.pmem.alloc(meter, { size: PAGE_SIZE, type: 'kernel' });
      if (!r.ok) {
        for (const p of pool) mustOk(this.pmem.free(meter, p, PAGE_SIZE, 'kernel'));
        this.rollback(meter, txn);
        return err('ENOMEM');
      }
      pool.push(r.value);
    }
    // physical memory the old regions owned and the new ones do not
    const nextSet = new Set(next), oldSet = new Set(this.regs);
    const removed = this.regs.filter((r) => !nextSet.has(r)), added = next.filter((r) => !oldSet.has(r));
    const freed = subtract(removed.map((r) => [r.phys, r.phys + r.cap]), added.map((r) => [r.phys, r.phys + r.cap]));
    const stale = dirty.filter(([a, b]) => this.regs.some((r) => r.prot !== PROT_NONE && r.start < b && a < r.end));
    this.regs = next;
    for (const [a, b] of freed) mustOk(this.pmem.free(meter, a, b - a, 'user'));
    let writes = 0;
    order.forEach((c, k) => { writes += this.syncChunk(meter, c, want[k], dirty, pool); });
    meter.cycles += mmCosts.pteWrite.cycles * writes;
    for (const p of pool) mustOk(this.pmem.free(meter, p, PAGE_SIZE, 'kernel'));
    txn.got = [];
    if (this.invalidate !== null) for (const [a, b] of stale) this.invalidate(a, b - a);
    return ok(undefined);
  }

  /** What chunk (4 MiB frame) `c` should be under the region list `regs`. */
  private desired(regs: readonly Region[], c: number): number {
    const cs = c * LARGE_PAGE, ce = cs + LARGE_PAGE;
    const first = firstEndingAfter(regs, cs);
    let any = false;
    for (let i = first; i < regs.length && regs[i].start < ce; i++) if (regs[i].prot !== PROT_NONE) { any = true; break; }
    if (!any) return EMPTY;
    const r = regs[first];
    if (this.largePages && r.start <= cs && r.end >= ce && (r.phys + (cs - r.start)) % LARGE_PAGE === 0) return LARGE;
    return TABLE;
  }

  /** Writes chunk `c`'s entries for its new state; returns the number of entries written. */
  private syncChunk(meter: Meter, c: number, want: number, dirty: [number, number][], pool: number[]): number {
    const mem = this.mem, regs = this.regs;
    const pdeAt = this.pd + c * 4;
    const cs = c * LARGE_PAGE, ce = cs + LARGE_PAGE;
    const cur = this.pdeKind[c];
    if (want !== TABLE) {
      if (cur === TABLE) mustOk(this.pmem.free(meter, this.ptAddr[c], PAGE_SIZE, 'kernel'));
      this.pdeKind[c] = want;
      if (want === EMPTY) {
        if (cur === EMPTY) return 0;
        mem.write(pdeAt, 4, 0);
        return 1;
      }
      const r = regs[firstEndingAfter(regs, cs)];
      mem.write(pdeAt, 4, (r.phys + (cs - r.start) + (PDE_PS | pteFlags(r.prot))) >>> 0);
      return 1;
    }
    let writes = 0;
    let pt: number;
    const ranges: [number, number][] = [];
    if (cur === TABLE) {
      pt = this.ptAddr[c];
      for (const [a, b] of dirty) if (a < ce && b > cs) ranges.push([Math.max(a, cs), Math.min(b, ce)]);
    } else {
      pt = pool.pop()!;
      zeroPhys(meter, mem, pt, PAGE_SIZE);
      ranges.push([cs, ce]);
    }
    for (const [a, b] of ranges) {
      let i = firstEndingAfter(regs, a);
      for (let va = a; va < b; va += PAGE_SIZE) {
        while (i < regs.length && regs[i].end <= va) i++;
        const r = i < regs.length && regs[i].start <= va ? regs[i] : undefined;
        const pte = r !== undefined && r.prot !== PROT_NONE ? r.phys + (va - r.start) + pteFlags(r.prot) : 0;
        if (cur !== TABLE && pte === 0) continue; // a fresh table is already zero
        mem.write(pt + ((va / PAGE_SIZE) % 1024) * 4, 4, pte >>> 0);
        writes++;
      }
    }
    if (cur !== TABLE) {
      mem.write(pdeAt, 4, (pt | PTE_P | PTE_W | PTE_U) >>> 0);
      writes++;
      this.pdeKind[c] = TABLE;
      this.ptAddr[c] = pt;
    }
    return writes;
  }
}

/**
 * Supervisor-only mappings above USER_TOP shared by every address space (as Linux shares its
 * kernel page tables): the pages the CPU itself reads by linear address while a program runs
 * (the GDT for segment loads, the TSS for the I/O bitmap). Page tables created here are entered
 * into the page directory of every attached address space, current and future.
 */
export class KernelSpace {
  /** PDE index -> page-table address. */
  private readonly tables = new Map<number, number>();
  private readonly spaces = new Set<AddressSpace>();

  constructor(readonly pmem: Pmem, readonly mem: PhysMem) {}

  /** Maps [va, va+len) (page-aligned, at or above USER_TOP) to [phys, ...), supervisor-only, global. */
  map(meter: Meter, va: number, phys: number, len: number, writable = true): Result<undefined> {
    meter.cycles += mmCosts.aspaceCall.cycles;
    len = pageUp(len);
    if (va % PAGE_SIZE !== 0 || phys % PAGE_SIZE !== 0 || va < USER_TOP || !(len > 0) || va + len > 2 ** 32) return err('EINVAL');
    const fresh: number[] = [];
    for (let c = Math.floor(va / LARGE_PAGE); c < Math.ceil((va + len) / LARGE_PAGE); c++) if (!this.tables.has(c)) fresh.push(c);
    const got: number[] = [];
    for (const _ of fresh) {
      const r = this.pmem.alloc(meter, { size: PAGE_SIZE, type: 'kernel' });
      if (!r.ok) { for (const p of got) mustOk(this.pmem.free(meter, p, PAGE_SIZE, 'kernel')); return err('ENOMEM'); }
      got.push(r.value);
    }
    let writes = 0;
    fresh.forEach((c, k) => {
      zeroPhys(meter, this.mem, got[k], PAGE_SIZE);
      this.tables.set(c, got[k]);
      for (const as of this.spaces) { this.mem.write(as.pd + c * 4, 4, got[k] | PTE_P | PTE_W); writes++; }
    });
    for (let a = 0; a < len; a += PAGE_SIZE) {
      const v = va + a;
      const pt = this.tables.get(Math.floor(v / LARGE_PAGE))!;
      this.mem.write(pt + ((v / PAGE_SIZE) % 1024) * 4, 4, (phys + a + (PTE_P | PTE_G | (writable ? PTE_W : 0))) >>> 0);
      writes++;
    }
    meter.cycles += mmCosts.pteWrite.cycles * writes;
    return ok(undefined);
  }

  /** Enters the shared tables into a new address space's directory. */
  attach(meter: Meter, as: AddressSpace): void {
    this.spaces.add(as);
    for (const [c, pt] of this.tables) this.mem.write(as.pd + c * 4, 4, pt | PTE_P | PTE_W);
    meter.cycles += mmCosts.pteWrite.cycles * this.tables.size;
  }

  detach(as: AddressSpace): void { this.spaces.delete(as); }
}

/**
 * An invalidate hook for an address space loaded on one core: INVLPG for each page of a small
 * range, a CR3 reload (flush of the non-global entries) for a large one; charged to the core.
 */
export function coreInvalidator(cpu: Cpu, maxInvlpg = 32): (va: number, len: number) => void {
  return (va, len) => {
    const pages = Math.ceil(len / PAGE_SIZE);
    if (pages <= maxInvlpg) {
      for (let k = 0; k < pages; k++) cpu.invlpg(va + k * PAGE_SIZE);
      cpu.cycles += insnCosts.system.cycles * pages;
    } else {
      cpu.flushTlb(true);
      cpu.cycles += insnCosts.system.cycles;
    }
  };
}

// ============================================================================== helpers

function pteFlags(prot: number): number {
  return PTE_P | PTE_U | ((prot & PROT_WRITE) !== 0 ? PTE_W : 0);
}

function validProt(prot: number): boolean { return Number.isInteger(prot) && prot >= 0 && prot <= 7; }

function mustOk(r: Result<unknown>): void {
  if (!r.ok) throw new Error(`kernel/mm: internal inconsistency (${r.error})`);
}

/** Index of the first region ending after `va` (regions sorted). */
function firstEndingAfter(regs: readonly Region[], va: number): number {
  let lo = 0, hi = regs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (regs[mid].end <= va) lo = mid + 1; else hi = mid;
  }
  return lo;
}

/** The list with the region straddling `x` (if any) split there; physical memory split with it. */
function splitAt(regs: readonly Region[], x: number): Region[] {
  const i = firstEndingAfter(regs, x);
  const r = regs[i];
  if (r === undefined || r.start >= x) return regs.slice();
  const off = x - r.start;
  return [...regs.slice(0, i), { ...r, end: x, cap: off }, { ...r, start: x, phys: r.phys + off, cap: r.cap - off }, ...regs.slice(i + 1)];
}

function removeRange(regs: readonly Region[], a: number, b: number): Region[] {
  return splitAt(splitAt(regs, a), b).filter((r) => r.end <= a || r.start >= b);
}

function insert(regs: readonly Region[], n: Region): Region[] {
  const i = firstEndingAfter(regs, n.start);
  return [...regs.slice(0, i), n, ...regs.slice(i)];
}

function replace(regs: readonly Region[], old: Region, n: Region): Region[] {
  return regs.map((r) => (r === old ? n : r));
}

/** Merges neighbours that line up: same kind and protection, physically contiguous, no spare capacity between. */
function normalize(regs: Region[]): Region[] {
  const out: Region[] = [];
  for (const r of regs) {
    const l = out[out.length - 1];
    if (l !== undefined && l.end === r.start && l.kind === r.kind && l.prot === r.prot &&
      l.cap === l.end - l.start && l.phys + l.cap === r.phys) {
      out[out.length - 1] = { ...l, end: r.end, cap: l.cap + r.cap };
    } else out.push(r);
  }
  return out;
}

/** The points covered by intervals `a` and by none of `b`. */
function subtract(a: number[][], b: number[][]): [number, number][] {
  const A = union(a), B = union(b);
  const out: [number, number][] = [];
  let j = 0;
  for (const [s, e] of A) {
    while (j < B.length && B[j][1] <= s) j++;
    let cur = s;
    for (let k = j; cur < e; k++) {
      if (k >= B.length || B[k][0] >= e) { out.push([cur, e]); break; }
      if (B[k][0] > cur) out.push([cur, B[k][0]]);
      cur = Math.max(cur, B[k][1]);
    }
  }
  return out;
}

function union(xs: number[][]): [number, number][] {
  const s = xs.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: [number, number][] = [];
  for (const [a, b] of s) {
    const l = out[out.length - 1];
    if (l !== undefined && a <= l[1]) l[1] = Math.max(l[1], b);
    else out.push([a, b]);
  }
  return out;
}

const ZERO = new Uint8Array(1 << 16);

function zeroPhys(meter: Meter, mem: PhysMem, base: number, len: number): void {
  for (let at = 0; at < len; at += ZERO.length) mem.writeBytes(base + at, ZERO.subarray(0, Math.min(ZERO.length, len - at)));
  meter.cycles += kernelCosts.memWord.cycles * Math.ceil(len / 4);
}

function copyPhys(meter: Meter, mem: PhysMem, dst: number, src: number, len: number): void {
  const CH = 1 << 20;
  for (let at = 0; at < len; at += CH) {
    const n = Math.min(CH, len - at);
    mem.writeBytes(dst + at, mem.u8.subarray(src + at, src + at + n));
  }
  meter.cycles += kernelCosts.memWord.cycles * 2 * Math.ceil(len / 4);
}
