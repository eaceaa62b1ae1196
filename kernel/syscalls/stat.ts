/**
 * fstat64, statx, stat64, lstat64, fstatat64, and the path calls that need a file system
 * (open, openat, access, faccessat). The console streams are character devices (/dev/console's
 * numbers, 5:1); there is no file system yet (the initramfs comes later), so every path is
 * -ENOENT.
 */
import type { OpenFile } from '../proc/files.ts';
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef } from './types.ts';

const S_IFCHR = 0o020000;
const AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;

interface StatInfo { dev: number; ino: number; mode: number; nlink: number; rdevMajor: number; rdevMinor: number; size: number; blksize: number }

function statOf(c: SysCtx, f: OpenFile): StatInfo {
  void c;
  return { dev: 5, ino: 10 + f.channel, mode: S_IFCHR | 0o620, nlink: 1, rdevMajor: 5, rdevMinor: 1, size: 0, blksize: 1024 };
}

const makedev = (ma: number, mi: number): bigint => BigInt(((ma & 0xfff) << 8) | (mi & 0xff) | ((mi & ~0xff) << 12));

function putStat64(c: SysCtx, addr: number, s: StatInfo): number {
  const dv = new DataView(new ArrayBuffer(96));
  dv.setBigUint64(0, makedev(0, s.dev), true);
  dv.setUint32(12, s.ino, true);
  dv.setUint32(16, s.mode, true);
  dv.setUint32(20, s.nlink, true);
  dv.setBigUint64(32, makedev(s.rdevMajor, s.rdevMinor), true);
  dv.setBigInt64(44, BigInt(s.size), true);
  dv.setUint32(52, s.blksize, true);
  dv.setBigUint64(88, BigInt(s.ino), true);
  const w = c.proc.aspace.copyout(c.cpu, addr, new Uint8Array(dv.buffer));
  return w.ok ? 0 : errno(w.error);
}

function putStatx(c: SysCtx, addr: number, s: StatInfo): number {
  const dv = new DataView(new ArrayBuffer(256));
  dv.setUint32(0, STATX_BASIC_STATS, true);
  dv.setUint32(4, s.blksize, true);
  dv.setUint32(16, s.nlink, true);
  dv.setUint16(28, s.mode, true);
  dv.setBigUint64(32, BigInt(s.ino), true);
  dv.setBigUint64(40, BigInt(s.size), true);
  dv.setUint32(128, s.rdevMajor, true);
  dv.setUint32(132, s.rdevMinor, true);
  dv.setUint32(136, 0, true);
  dv.setUint32(140, s.dev, true);
  const w = c.proc.aspace.copyout(c.cpu, addr, new Uint8Array(dv.buffer));
  return w.ok ? 0 : errno(w.error);
}

function fstat64(c: SysCtx): number {
  const f = c.proc.files.get(s32(c.a[0]));
  if (f === null) return -E.EBADF;
  return putStat64(c, c.a[1], statOf(c, f));
}

/** A path argument: '' or a string, or a negative errno. */
function path(c: SysCtx, addr: number): string | number {
  const r = c.proc.aspace.copyinString(c.cpu, addr, 4095);
  if (!r.ok) return errno(r.error);
  return new TextDecoder('latin1').decode(r.value);
}

function noPath(c: SysCtx, addr: number): number {
  const p = path(c, addr);
  if (typeof p === 'number') return p;
  return -E.ENOENT;
}

function statx(c: SysCtx): number {
  const [dirfd, pathAddr, flags, , buf] = c.a;
  const p = path(c, pathAddr);
  if (typeof p === 'number') return p;
  if (p === '' && (flags & AT_EMPTY_PATH) !== 0) {
    const f = c.proc.files.get(s32(dirfd));
    if (f === null) return s32(dirfd) === AT_FDCWD ? -E.ENOENT : -E.EBADF;
    return putStatx(c, buf, statOf(c, f));
  }
  return -E.ENOENT;
}

function fstatat64(c: SysCtx): number {
  const [dirfd, pathAddr, buf, flags] = c.a;
  const p = path(c, pathAddr);
  if (typeof p === 'number') return p;
  if (p === '' && (flags & AT_EMPTY_PATH) !== 0) {
    const f = c.proc.files.get(s32(dirfd));
    if (f === null) return -E.EBADF;
    return putStat64(c, buf, statOf(c, f));
  }
  return -E.ENOENT;
}

export const statCalls: Record<string, SyscallDef> = {
  fstat64: { name: 'fstat64', args: 'dp', fn: fstat64 },
  statx: { name: 'statx', args: 'dsxxp', fn: statx },
  fstatat64: { name: 'fstatat64', args: 'dspx', fn: fstatat64 },
  stat64: { name: 'stat64', args: 'sp', fn: (c) => noPath(c, c.a[0]) },
  lstat64: { name: 'lstat64', args: 'sp', fn: (c) => noPath(c, c.a[0]) },
  open: { name: 'open', args: 'sxo', fn: (c) => noPath(c, c.a[0]) },
  openat: { name: 'openat', args: 'dsxo', fn: (c) => noPath(c, c.a[1]) },
  access: { name: 'access', args: 'so', fn: (c) => noPath(c, c.a[0]) },
  faccessat: { name: 'faccessat', args: 'dso', fn: (c) => noPath(c, c.a[1]) },
};
