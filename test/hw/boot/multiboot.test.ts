import { describe, expect, it } from 'vitest';
import { ElfError, parseElf32 } from '../../../hw/boot/elf.ts';
import { BootError, loadMultiboot, MB_BOOT_MAGIC, type LoadTarget } from '../../../hw/boot/multiboot.ts';

/** A minimal ELF32 i386 executable with one PT_LOAD segment holding `body` at `paddr`. */
function elf(body: Uint8Array, paddr: number, memsz = body.length, entry = paddr): Uint8Array {
  const phoff = 52, off = 0x100;
  const b = new Uint8Array(off + body.length);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  dv.setUint16(16, 2, true); dv.setUint16(18, 3, true); dv.setUint32(20, 1, true);
  dv.setUint32(24, entry, true); dv.setUint32(28, phoff, true);
  dv.setUint16(40, 52, true); dv.setUint16(42, 32, true); dv.setUint16(44, 1, true);
  dv.setUint32(phoff, 1, true); dv.setUint32(phoff + 4, off, true); dv.setUint32(phoff + 8, paddr, true);
  dv.setUint32(phoff + 12, paddr, true); dv.setUint32(phoff + 16, body.length, true); dv.setUint32(phoff + 20, memsz, true);
  dv.setUint32(phoff + 24, 5, true);
  b.set(body, off);
  return b;
}

function header(flags = 3): Uint8Array {
  const h = new Uint8Array(12);
  const dv = new DataView(h.buffer);
  dv.setUint32(0, 0x1badb002, true); dv.setUint32(4, flags, true); dv.setUint32(8, (-(0x1badb002 + flags)) >>> 0, true);
  return h;
}

class Ram implements LoadTarget {
  readonly bytes: Uint8Array;
  constructor(readonly size: number) { this.bytes = new Uint8Array(size); }
  write(addr: number, b: Uint8Array): void { this.bytes.set(b, addr); }
  u32(a: number): number { return new DataView(this.bytes.buffer).getUint32(a, true); }
  str(a: number): string { let s = ''; while (this.bytes[a]) s += String.fromCharCode(this.bytes[a++]); return s; }
}

describe('multiboot loader', () => {
  it('loads ELF segments, zeroes bss, and builds the information structure', () => {
    const body = new Uint8Array(64); body.set(header(), 0); body[20] = 0xaa;
    const ram = new Ram(8 << 20);
    ram.bytes.fill(0x55, 0x100000 + 64, 0x100000 + 256);
    const e = loadMultiboot(ram, elf(body, 0x100000, 256, 0x100010), {
      cmdline: 'console=ttyS0', modules: [{ name: 'initrd', data: new Uint8Array([1, 2, 3]) }],
    });
    expect(e.eax).toBe(MB_BOOT_MAGIC);
    expect(e.entry).toBe(0x100010);
    expect(ram.bytes[0x100014]).toBe(0xaa);
    expect(ram.bytes[0x100000 + 100]).toBe(0); // bss zeroed
    const mbi = e.ebx;
    const flags = ram.u32(mbi);
    expect(flags & 0x24d).toBe(0x24d); // mem, cmdline, mods, mmap, loader name
    expect(ram.u32(mbi + 4)).toBe(639);
    expect(ram.u32(mbi + 8)).toBe(7 * 1024);
    expect(ram.str(ram.u32(mbi + 16))).toBe('console=ttyS0');
    expect(ram.u32(mbi + 20)).toBe(1);
    const mod = ram.u32(mbi + 24);
    expect(ram.u32(mod) % 4096).toBe(0);
    expect(ram.u32(mod + 4) - ram.u32(mod)).toBe(3);
    expect(ram.bytes[ram.u32(mod) + 2]).toBe(3);
    expect(ram.str(ram.u32(mod + 8))).toBe('initrd');
    const mmapLen = ram.u32(mbi + 44), mmap = ram.u32(mbi + 48);
    expect(mmapLen % 24).toBe(0);
    const entries = [];
    for (let o = 0; o < mmapLen; o += 24) entries.push([ram.u32(mmap + o + 4), ram.u32(mmap + o + 12), ram.u32(mmap + o + 20)]);
    expect(entries).toContainEqual([0x100000, 7 << 20, 1]);
    expect(ram.str(ram.u32(mbi + 64))).toBe('v3vee-ts');
  });

  it('supports the a.out kludge (flag 16)', () => {
    const img = new Uint8Array(0x40);
    const dv = new DataView(img.buffer);
    const flags = 0x10003;
    dv.setUint32(0, 0x1badb002, true); dv.setUint32(4, flags, true); dv.setUint32(8, (-(0x1badb002 + flags)) >>> 0, true);
    dv.setUint32(12, 0x200000, true); dv.setUint32(16, 0x200000, true); dv.setUint32(20, 0x200040, true);
    dv.setUint32(24, 0x201000, true); dv.setUint32(28, 0x200020, true);
    img[0x30] = 0xcc;
    const ram = new Ram(4 << 20);
    const e = loadMultiboot(ram, img);
    expect(e.entry).toBe(0x200020);
    expect(ram.bytes[0x200030]).toBe(0xcc);
    expect(e.end).toBe(0x201000);
  });

  it('rejects bad kernels with one-line errors', () => {
    const ram = new Ram(4 << 20);
    expect(() => loadMultiboot(ram, new Uint8Array(100))).toThrow(BootError);
    expect(() => loadMultiboot(ram, new Uint8Array(100))).toThrow(/no multiboot header/);
    const body = new Uint8Array(64); body.set(header(), 0);
    expect(() => loadMultiboot(ram, elf(body, 0x3ff000, 0x2000))).toThrow(/does not fit in 4 MiB/);
    expect(() => loadMultiboot(ram, elf(body, 0x9000))).toThrow(/overlaps low memory/);
    expect(() => loadMultiboot(ram, header(0x4 | 0x8))).toThrow(/unsupported features/);
    const trunc = elf(body, 0x100000).subarray(0, 60);
    expect(() => parseElf32(trunc)).toThrow(ElfError);
    const bad = elf(body, 0x100000);
    new DataView(bad.buffer).setUint32(52 + 16, 0x10000, true); // filesz beyond the file
    expect(() => loadMultiboot(ram, bad)).toThrow(/kernel: segment 0 extends past the end of the file/);
  });
});
