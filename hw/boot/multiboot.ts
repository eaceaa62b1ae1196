/**
 * A Multiboot v1 loader (the Multiboot Specification 0.6.96), written as firmware-like shared
 * code that loads into a given memory: the machine's RAM for a bare boot, a guest's RAM for the
 * VMM. It loads the kernel (ELF segments at their physical addresses, or the a.out-kludge
 * address fields when header flag 16 is set), places modules page-aligned after it, builds the
 * Multiboot information structure (mem_lower/mem_upper, memory map, command line, boot loader
 * name, modules) in low memory, and returns the entry state the spec defines: EAX = 0x2BADB002,
 * EBX = the information structure; the caller starts the core in flat 32-bit protected mode with
 * paging and interrupts off.
 */
import { ElfError, isElf, parseElf32 } from './elf.ts';

export const MB_HEADER_MAGIC = 0x1badb002;
export const MB_BOOT_MAGIC = 0x2badb002;

export class BootError extends Error {
  constructor(message: string) { super(message); this.name = 'BootError'; }
}

/** Where the loader writes. */
export interface LoadTarget {
  /** Bytes of RAM starting at address 0. */
  readonly size: number;
  write(addr: number, bytes: Uint8Array): void;
}

/** One E820 entry: type 1 = usable RAM, 2 = reserved. */
export interface MemRange { base: number; length: number; type: number }

export interface MultibootModule { name: string; data: Uint8Array; cmdline?: string }

export interface MultibootOptions {
  cmdline?: string;
  modules?: MultibootModule[];
  /** The physical memory map (E820); defaults to the PC map for `target.size` (see pcMemoryMap). */
  memoryMap?: MemRange[];
  bootLoaderName?: string;
}

export interface MultibootEntry {
  entry: number;
  eax: number;
  ebx: number;
  /** Highest address used by the kernel and modules (exclusive). */
  end: number;
}

/** The memory map of a PC with `ram` bytes: low RAM, the VGA/BIOS hole, RAM above 1 MiB, the BIOS ROM. */
export function pcMemoryMap(ram: number): MemRange[] {
  const map: MemRange[] = [
    { base: 0, length: 0x9fc00, type: 1 },
    { base: 0x9fc00, length: 0x400, type: 2 },
    { base: 0xf0000, length: 0x10000, type: 2 },
  ];
  if (ram > 0x100000) map.push({ base: 0x100000, length: ram - 0x100000, type: 1 });
  map.push({ base: 0xfffc0000, length: 0x40000, type: 2 });
  return map;
}

/** The boot information lives in low memory, below the EBDA: [INFO_BASE, INFO_END). */
const INFO_BASE = 0x9000;
const INFO_END = 0x9fc00;

interface Header { flags: number; offset: number; headerAddr: number; loadAddr: number; loadEnd: number; bssEnd: number; entry: number }

function findHeader(k: Uint8Array): Header {
  const dv = new DataView(k.buffer, k.byteOffset, k.byteLength);
  const lim = Math.min(k.length - 12, 8192 - 12);
  for (let o = 0; o <= lim; o += 4) {
    if (dv.getUint32(o, true) !== MB_HEADER_MAGIC) continue;
    const flags = dv.getUint32(o + 4, true), sum = dv.getUint32(o + 8, true);
    if (((MB_HEADER_MAGIC + flags + sum) >>> 0) !== 0) continue;
    const h: Header = { flags, offset: o, headerAddr: 0, loadAddr: 0, loadEnd: 0, bssEnd: 0, entry: 0 };
    if (flags & 0x10000) {
      if (o + 32 > k.length) throw new BootError('multiboot header truncated (address fields missing)');
      h.headerAddr = dv.getUint32(o + 12, true); h.loadAddr = dv.getUint32(o + 16, true);
      h.loadEnd = dv.getUint32(o + 20, true); h.bssEnd = dv.getUint32(o + 24, true); h.entry = dv.getUint32(o + 28, true);
    }
    return h;
  }
  throw new BootError('no multiboot header in the first 8192 bytes (magic 0x1BADB002 with a valid checksum)');
}

function checkFits(target: LoadTarget, addr: number, len: number, what: string): void {
  if (len > 0 && addr < INFO_END && addr + len > INFO_BASE) {
    throw new BootError(`${what} at 0x${addr.toString(16)} overlaps low memory used for boot information (0x${INFO_BASE.toString(16)}-0x${INFO_END.toString(16)})`);
  }
  if (addr + len > target.size) {
    throw new BootError(`${what} at 0x${addr.toString(16)}-0x${(addr + len).toString(16)} does not fit in ${Math.floor(target.size / 1048576)} MiB of RAM`);
  }
}

export function loadMultiboot(target: LoadTarget, kernel: Uint8Array, o: MultibootOptions = {}): MultibootEntry {
  const h = findHeader(kernel);
  const unsupported = h.flags & 0xfff8;
  if (unsupported) throw new BootError(`multiboot header requires unsupported features (flags 0x${h.flags.toString(16)})`);
  let entry: number, end = 0;
  if (h.flags & 0x10000) {
    // a.out kludge: file offset of load_addr = header offset - (header_addr - load_addr)
    if (h.loadAddr > h.headerAddr) throw new BootError('multiboot header: load_addr above header_addr');
    const fileStart = h.offset - (h.headerAddr - h.loadAddr);
    if (fileStart < 0) throw new BootError('multiboot header: load_addr precedes the start of the file');
    const loadEnd = h.loadEnd === 0 ? h.loadAddr + (kernel.length - fileStart) : h.loadEnd;
    if (loadEnd < h.loadAddr || fileStart + (loadEnd - h.loadAddr) > kernel.length) throw new BootError('multiboot header: load_end_addr beyond the file');
    const bssEnd = h.bssEnd === 0 ? loadEnd : h.bssEnd;
    if (bssEnd < loadEnd) throw new BootError('multiboot header: bss_end_addr below load_end_addr');
    checkFits(target, h.loadAddr, bssEnd - h.loadAddr, 'kernel image');
    target.write(h.loadAddr, kernel.subarray(fileStart, fileStart + (loadEnd - h.loadAddr)));
    if (bssEnd > loadEnd) target.write(loadEnd, new Uint8Array(bssEnd - loadEnd));
    entry = h.entry; end = bssEnd;
  } else {
    if (!isElf(kernel)) throw new BootError('kernel is not ELF and its multiboot header has no address fields (flag 16)');
    let elf;
    try { elf = parseElf32(kernel, 'kernel'); } catch (e) {
      if (e instanceof ElfError) throw new BootError(e.message);
      throw e;
    }
    for (const [k, ph] of elf.loads.entries()) {
      if (ph.memsz === 0) continue;
      checkFits(target, ph.paddr, ph.memsz, `kernel segment ${k}`);
      target.write(ph.paddr, kernel.subarray(ph.offset, ph.offset + ph.filesz));
      if (ph.memsz > ph.filesz) target.write(ph.paddr + ph.filesz, new Uint8Array(ph.memsz - ph.filesz));
      end = Math.max(end, ph.paddr + ph.memsz);
    }
    // the entry point is virtual; if the kernel links high, translate it through its segment
    entry = elf.entry;
    const seg = elf.loads.find((p) => entry >= p.vaddr && entry < p.vaddr + p.memsz);
    if (seg && seg.vaddr !== seg.paddr) entry = (entry - seg.vaddr + seg.paddr) >>> 0;
  }

  // modules, page-aligned after the kernel
  const modules = o.modules ?? [];
  let next = (end + 0xfff) & ~0xfff;
  const modAddrs: { start: number; end: number; cmd: string }[] = [];
  for (const m of modules) {
    checkFits(target, next, m.data.length, `module ${m.name}`);
    target.write(next, m.data);
    modAddrs.push({ start: next, end: next + m.data.length, cmd: m.cmdline ?? m.name });
    next = (next + m.data.length + 0xfff) & ~0xfff;
  }

  // the information structure and its strings, in low memory
  const info = new Uint8Array(INFO_END - INFO_BASE);
  const dv = new DataView(info.buffer);
  let p = 0x100; // after the 0x58-byte info structure
  const put = (bytes: Uint8Array, align = 4): number => {
    p = (p + align - 1) & ~(align - 1);
    if (p + bytes.length > info.length) throw new BootError('boot information does not fit below 640 KiB (command line or module list too long)');
    info.set(bytes, p);
    const a = INFO_BASE + p;
    p += bytes.length;
    return a;
  };
  const cstr = (s: string) => { const e = new TextEncoder().encode(s); const b = new Uint8Array(e.length + 1); b.set(e); return b; };
  const map = o.memoryMap ?? pcMemoryMap(target.size);
  let flags = 0;
  // mem_lower/mem_upper: KiB of RAM from 0 and from 1 MiB up to the first hole
  const low = map.find((r) => r.type === 1 && r.base === 0);
  const high = map.find((r) => r.type === 1 && r.base === 0x100000);
  dv.setUint32(4, low ? Math.floor(Math.min(low.length, 0xa0000) / 1024) : 0, true);
  dv.setUint32(8, high ? Math.floor(high.length / 1024) : 0, true);
  flags |= 1;
  const cmdAddr = put(cstr(o.cmdline ?? ''));
  dv.setUint32(16, cmdAddr, true); flags |= 1 << 2;
  if (modAddrs.length) {
    const list = new Uint8Array(16 * modAddrs.length);
    const ldv = new DataView(list.buffer);
    modAddrs.forEach((m, k) => {
      ldv.setUint32(k * 16, m.start, true); ldv.setUint32(k * 16 + 4, m.end, true);
      ldv.setUint32(k * 16 + 8, put(cstr(m.cmd)), true);
    });
    dv.setUint32(24, put(list), true);
  }
  dv.setUint32(20, modAddrs.length, true); flags |= 1 << 3;
  const mm = new Uint8Array(24 * map.length);
  const mdv = new DataView(mm.buffer);
  map.forEach((r, k) => {
    const o2 = k * 24;
    mdv.setUint32(o2, 20, true);
    mdv.setUint32(o2 + 4, r.base >>> 0, true); mdv.setUint32(o2 + 8, Math.floor(r.base / 0x100000000), true);
    mdv.setUint32(o2 + 12, r.length >>> 0, true); mdv.setUint32(o2 + 16, Math.floor(r.length / 0x100000000), true);
    mdv.setUint32(o2 + 20, r.type, true);
  });
  dv.setUint32(44, mm.length, true); dv.setUint32(48, put(mm), true); flags |= 1 << 6;
  dv.setUint32(64, put(cstr(o.bootLoaderName ?? 'v3vee-ts')), true); flags |= 1 << 9;
  dv.setUint32(0, flags, true);
  target.write(INFO_BASE, info.subarray(0, p));
  return { entry: entry >>> 0, eax: MB_BOOT_MAGIC, ebx: INFO_BASE, end: next };
}
