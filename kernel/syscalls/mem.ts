/**
 * brk, mmap2, munmap, mprotect, mremap, madvise: the address space (kernel/mm/aspace.ts). Every
 * mapping is backed up front by contiguous physical memory; anonymous memory reads as zero.
 * Mappings of files wait for the files of a later session (-ENODEV for the console streams).
 */
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef } from './types.ts';

const MAP_SHARED = 0x01, MAP_PRIVATE = 0x02, MAP_FIXED = 0x10, MAP_ANONYMOUS = 0x20;
const MAP_FIXED_NOREPLACE = 0x100000;
const MREMAP_MAYMOVE = 1, MREMAP_FIXED = 2;

function brk(c: SysCtx): number {
  return c.proc.aspace.brk(c.cpu, c.a[0]) >>> 0;
}

function mmap2(c: SysCtx): number {
  const [addr, len, prot, flags, fd] = c.a;
  if ((flags & (MAP_SHARED | MAP_PRIVATE)) === 0) return -E.EINVAL;
  if (len === 0) return -E.EINVAL;
  if ((flags & MAP_ANONYMOUS) === 0) {
    return c.proc.files.get(s32(fd)) === null ? -E.EBADF : -E.ENODEV;
  }
  const fixed = (flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)) !== 0;
  const r = c.proc.aspace.mmap(c.cpu, {
    addr: addr === 0 && !fixed ? undefined : addr, len, prot, fixed,
    noReplace: (flags & MAP_FIXED_NOREPLACE) !== 0,
  });
  return r.ok ? r.value >>> 0 : errno(r.error);
}

function munmap(c: SysCtx): number {
  const r = c.proc.aspace.munmap(c.cpu, c.a[0], c.a[1]);
  return r.ok ? 0 : errno(r.error);
}

function mprotect(c: SysCtx): number {
  const r = c.proc.aspace.mprotect(c.cpu, c.a[0], c.a[1], c.a[2] & ~0x03000000); // PROT_GROWSDOWN/UP ignored
  return r.ok ? 0 : errno(r.error);
}

function mremap(c: SysCtx): number {
  const [old, oldLen, newLen, flags, newAddr] = c.a;
  if ((flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED)) !== 0) return -E.EINVAL;
  if ((flags & MREMAP_FIXED) !== 0 && (flags & MREMAP_MAYMOVE) === 0) return -E.EINVAL;
  const r = c.proc.aspace.mremap(c.cpu, old, oldLen, newLen, {
    mayMove: (flags & MREMAP_MAYMOVE) !== 0,
    newAddr: (flags & MREMAP_FIXED) !== 0 ? newAddr : undefined,
  });
  return r.ok ? r.value >>> 0 : errno(r.error);
}

export const memCalls: Record<string, SyscallDef> = {
  brk: { name: 'brk', args: 'p', fn: brk, hexResult: true },
  mmap2: { name: 'mmap2', args: 'puxxdx', fn: mmap2, hexResult: true },
  munmap: { name: 'munmap', args: 'pu', fn: munmap },
  mprotect: { name: 'mprotect', args: 'pux', fn: mprotect },
  mremap: { name: 'mremap', args: 'puuxp', fn: mremap, hexResult: true },
  madvise: { name: 'madvise', args: 'pud', fn: () => 0 },
};
