/**
 * ELF32 (i386, little-endian) parsing for loaders: the Multiboot loader here, and later the
 * LWK's program loader. Validates everything it relies on and reports a bad file with one
 * line naming the problem (ElfError).
 */

export class ElfError extends Error {
  constructor(message: string) { super(message); this.name = 'ElfError'; }
}

export const PT_LOAD = 1, PT_DYNAMIC = 2, PT_INTERP = 3, PT_PHDR = 6, PT_TLS = 7;
export const ET_EXEC = 2, ET_DYN = 3;
export const EM_386 = 3;

export interface ProgramHeader {
  type: number; offset: number; vaddr: number; paddr: number;
  filesz: number; memsz: number; flags: number; align: number;
}

export interface Elf32 {
  type: number;
  entry: number;
  phoff: number;
  phentsize: number;
  phnum: number;
  phdrs: ProgramHeader[];
  /** The PT_LOAD segments, in file order. */
  loads: ProgramHeader[];
}

/** True if the bytes start with the ELF magic. */
export function isElf(b: Uint8Array): boolean {
  return b.length >= 4 && b[0] === 0x7f && b[1] === 0x45 && b[2] === 0x4c && b[3] === 0x46;
}

export function parseElf32(b: Uint8Array, what = 'file'): Elf32 {
  if (!isElf(b)) throw new ElfError(`${what} is not an ELF file (bad magic)`);
  if (b.length < 52) throw new ElfError(`${what}: ELF header truncated (${b.length} bytes)`);
  if (b[4] !== 1) throw new ElfError(`${what}: not a 32-bit ELF (class ${b[4]})`);
  if (b[5] !== 1) throw new ElfError(`${what}: not little-endian (data ${b[5]})`);
  if (b[6] !== 1) throw new ElfError(`${what}: unknown ELF version ${b[6]}`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const type = dv.getUint16(16, true), machine = dv.getUint16(18, true);
  if (machine !== EM_386) throw new ElfError(`${what}: not an i386 ELF (e_machine ${machine})`);
  if (type !== ET_EXEC && type !== ET_DYN) throw new ElfError(`${what}: not an executable (e_type ${type})`);
  const entry = dv.getUint32(24, true), phoff = dv.getUint32(28, true);
  const phentsize = dv.getUint16(42, true), phnum = dv.getUint16(44, true);
  if (phnum === 0) throw new ElfError(`${what}: no program headers`);
  if (phentsize < 32) throw new ElfError(`${what}: program header size ${phentsize} too small`);
  if (phoff + phnum * phentsize > b.length) throw new ElfError(`${what}: program headers extend past the end of the file`);
  const phdrs: ProgramHeader[] = [];
  for (let k = 0; k < phnum; k++) {
    const o = phoff + k * phentsize;
    const ph: ProgramHeader = {
      type: dv.getUint32(o, true), offset: dv.getUint32(o + 4, true), vaddr: dv.getUint32(o + 8, true),
      paddr: dv.getUint32(o + 12, true), filesz: dv.getUint32(o + 16, true), memsz: dv.getUint32(o + 20, true),
      flags: dv.getUint32(o + 24, true), align: dv.getUint32(o + 28, true),
    };
    if (ph.type === PT_LOAD) {
      if (ph.offset + ph.filesz > b.length) throw new ElfError(`${what}: segment ${k} extends past the end of the file`);
      if (ph.filesz > ph.memsz) throw new ElfError(`${what}: segment ${k} file size exceeds its memory size`);
      if (ph.vaddr + ph.memsz > 0x100000000) throw new ElfError(`${what}: segment ${k} wraps past 4 GiB`);
    }
    phdrs.push(ph);
  }
  const loads = phdrs.filter((p) => p.type === PT_LOAD);
  if (loads.length === 0) throw new ElfError(`${what}: no loadable segments`);
  return { type, entry, phoff, phentsize, phnum, phdrs, loads };
}
