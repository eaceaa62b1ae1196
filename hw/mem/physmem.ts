/**
 * Physical memory: RAM as one ArrayBuffer, MMIO regions, and what lies between.
 *
 * - RAM occupies physical addresses [0, ramSize). Reads and writes are plain typed-array accesses.
 * - MMIO regions claim page-aligned ranges (above or inside the RAM range: a region hides the RAM
 *   under it, as the VGA hole or the APIC page do) and get every access of theirs.
 * - Anything else reads as all ones and drops writes; such accesses are counted (`unbacked`).
 *
 * Code pages: the CPU caches decoded instructions per physical page. A page that holds decoded
 * instructions is marked in `codePage`; any write to it (by a CPU, a device's DMA or the host)
 * calls `onCodeWrite(ppn)` so the cache drops the page. CPUs keep such pages off their fast
 * write path, so every write to them comes through here.
 */

export interface MmioHandler {
  read(addr: number, size: 1 | 2 | 4): number;
  write(addr: number, size: 1 | 2 | 4, value: number): void;
}

interface MmioRegion { base: number; end: number; handler: MmioHandler; name: string }

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

export class PhysMem {
  readonly ramSize: number;
  readonly buffer: ArrayBuffer;
  readonly u8: Uint8Array;
  readonly i32: Int32Array;
  readonly ramPages: number;
  /** 1 if the RAM page holds decoded instructions (writes must invalidate them). */
  readonly codePage: Uint8Array;
  /** 1 if the page (below 4 GiB, any address) is plain RAM with no MMIO over it. */
  readonly ramPage: Uint8Array;
  private regions: MmioRegion[] = [];
  private codeWriteHooks: ((ppn: number) => void)[] = [];
  private mmioHooks: (() => void)[] = [];
  /** Accesses to addresses backed by neither RAM nor a device. */
  unbacked = 0;

  constructor(ramSize: number) {
    if (!Number.isInteger(ramSize) || ramSize <= 0 || ramSize % PAGE_SIZE !== 0) {
      throw new RangeError(`RAM size ${ramSize} must be a positive multiple of 4 KiB`);
    }
    if (ramSize > 0xc000_0000) throw new RangeError(`RAM size ${ramSize} exceeds the 3 GiB below the PCI hole`);
    this.ramSize = ramSize;
    this.buffer = new ArrayBuffer(ramSize);
    this.u8 = new Uint8Array(this.buffer);
    this.i32 = new Int32Array(this.buffer);
    this.ramPages = ramSize >>> PAGE_SHIFT;
    this.codePage = new Uint8Array(this.ramPages);
    this.ramPage = new Uint8Array(1 << 20);
    this.ramPage.fill(1, 0, this.ramPages);
  }

  /** Claims [base, base+size) for a device. Page-aligned; regions may not overlap. */
  addMmio(base: number, size: number, handler: MmioHandler, name = 'mmio'): void {
    base >>>= 0;
    if (base % PAGE_SIZE !== 0 || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new RangeError(`MMIO region ${name} at ${base.toString(16)} must be page-aligned`);
    }
    const end = base + size;
    for (const r of this.regions) {
      if (base < r.end && r.base < end) throw new RangeError(`MMIO region ${name} overlaps ${r.name}`);
    }
    this.regions.push({ base, end, handler, name });
    this.ramPage.fill(0, base >>> PAGE_SHIFT, Math.min(end / PAGE_SIZE, 1 << 20));
    for (const h of this.mmioHooks) h();
  }

  /** Called when the MMIO map changes, so CPUs can drop cached translations to RAM. */
  onMmioChange(hook: () => void): void { this.mmioHooks.push(hook); }

  onCodeWrite(hook: (ppn: number) => void): void { this.codeWriteHooks.push(hook); }

  /** Marks a RAM page as holding decoded instructions. */
  markCode(ppn: number): void { this.codePage[ppn] = 1; }

  private codeWritten(ppn: number): void {
    this.codePage[ppn] = 0;
    for (const h of this.codeWriteHooks) h(ppn);
  }

  private region(addr: number): MmioRegion | undefined {
    for (const r of this.regions) if (addr >= r.base && addr < r.end) return r;
    return undefined;
  }

  isRam(addr: number): boolean {
    addr >>>= 0;
    return addr < this.ramSize && this.ramPage[addr >>> PAGE_SHIFT] === 1;
  }

  /** A physical read of 1, 2 or 4 bytes that must not cross a page. Unsigned result. */
  read(addr: number, size: 1 | 2 | 4): number {
    addr >>>= 0;
    if (addr < this.ramSize && this.ramPage[addr >>> PAGE_SHIFT] === 1) {
      const u8 = this.u8;
      if (size === 1) return u8[addr];
      if (size === 2) return u8[addr] | (u8[addr + 1] << 8);
      if ((addr & 3) === 0) return this.i32[addr >>> 2] >>> 0;
      return (u8[addr] | (u8[addr + 1] << 8) | (u8[addr + 2] << 16) | (u8[addr + 3] << 24)) >>> 0;
    }
    const r = this.region(addr);
    if (r) return r.handler.read(addr, size) >>> 0;
    this.unbacked++;
    return size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
  }

  /** A physical write of 1, 2 or 4 bytes that must not cross a page. */
  write(addr: number, size: 1 | 2 | 4, value: number): void {
    addr >>>= 0;
    if (addr < this.ramSize && this.ramPage[addr >>> PAGE_SHIFT] === 1) {
      const ppn = addr >>> PAGE_SHIFT;
      if (this.codePage[ppn]) this.codeWritten(ppn);
      const u8 = this.u8;
      u8[addr] = value;
      if (size >= 2) u8[addr + 1] = value >>> 8;
      if (size === 4) { u8[addr + 2] = value >>> 16; u8[addr + 3] = value >>> 24; }
      return;
    }
    const r = this.region(addr);
    if (r) { r.handler.write(addr, size, size === 4 ? value >>> 0 : value & (size === 1 ? 0xff : 0xffff)); return; }
    this.unbacked++;
  }

  /** Bulk write (loaders, DMA, host): invalidates decoded code in the pages it touches. */
  writeBytes(addr: number, bytes: Uint8Array): void {
    addr >>>= 0;
    if (addr + bytes.length <= this.ramSize && this.allRam(addr, bytes.length)) {
      this.u8.set(bytes, addr);
      const last = (addr + bytes.length - 1) >>> PAGE_SHIFT;
      for (let p = addr >>> PAGE_SHIFT; p <= last && bytes.length > 0; p++) if (this.codePage[p]) this.codeWritten(p);
      return;
    }
    for (let i = 0; i < bytes.length; i++) this.write(addr + i, 1, bytes[i]);
  }

  readBytes(addr: number, len: number): Uint8Array {
    addr >>>= 0;
    if (addr + len <= this.ramSize && this.allRam(addr, len)) return this.u8.slice(addr, addr + len);
    const out = new Uint8Array(len);
    for (let i = 0; i < len; i++) out[i] = this.read(addr + i, 1);
    return out;
  }

  private allRam(addr: number, len: number): boolean {
    if (len === 0) return true;
    const last = (addr + len - 1) >>> PAGE_SHIFT;
    for (let p = addr >>> PAGE_SHIFT; p <= last; p++) if (this.ramPage[p] !== 1) return false;
    return true;
  }
}
