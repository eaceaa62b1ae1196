/**
 * fstat64, stat64, lstat64, fstatat64, statx: what the file system (kernel/fs/) and the open
 * files say about themselves, in Linux i386's struct stat64 and struct statx. Files of the
 * initramfs have mtime 0, uid/gid 0 and the archive's modes; the console streams are character
 * devices 5:1 (/dev/console); pipes are FIFOs on pipefs.
 */
import { isReg, type Inode, PROC_DEV, ROOT_DEV, S_IFCHR } from '../fs/vfs.ts';
import type { OpenFile } from '../proc/files.ts';
import { E } from './errno.ts';
import { lookupPath, userPath } from './fs.ts';
import { errno, s32, type SysCtx, type SyscallDef } from './types.ts';

const S_IFIFO = 0o010000;
const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const PIPEFS_DEV = 12;

export interface StatInfo {
  dev: number; ino: number; mode: number; nlink: number; rdevMajor: number; rdevMinor: number; size: number; blksize: number; blocks: number;
}

export function inodeStat(i: Inode): StatInfo {
  // a file's or a symbolic link's length (a /proc link's: 0, as procfs says); directories and devices 0
  const size = (isReg(i) || (i.mode & 0o170000) === 0o120000) && i.dynamic === undefined ? i.data.length : 0;
  const dev = i.ino >= 0x7f000000 ? PROC_DEV : ROOT_DEV;
  return {
    dev, ino: i.ino, mode: i.mode, nlink: i.nlink, rdevMajor: i.rdev[0], rdevMinor: i.rdev[1], size,
    blksize: 4096, blocks: isReg(i) ? Math.ceil(size / 512) : 0,
  };
}

export function fileStat(f: OpenFile): StatInfo {
  switch (f.kind) {
    case 'console':
      if (f.inode !== null) return inodeStat(f.inode);
      return { dev: 5, ino: 10 + f.channel, mode: S_IFCHR | 0o620, nlink: 1, rdevMajor: 5, rdevMinor: 1, size: 0, blksize: 1024, blocks: 0 };
    case 'pipe':
      return { dev: PIPEFS_DEV, ino: f.pipe.ino, mode: S_IFIFO | 0o600, nlink: 1, rdevMajor: 0, rdevMinor: 0, size: 0, blksize: 4096, blocks: 0 };
    default:
      return inodeStat(f.inode);
  }
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
  dv.setBigUint64(56, BigInt(s.blocks), true);
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
  dv.setBigUint64(48, BigInt(s.blocks), true);
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
  return putStat64(c, c.a[1], fileStat(f));
}

/** The StatInfo of (dirfd, path) as the *at calls name it, or a negative errno. */
function statAt(c: SysCtx, dirfd: number, pathAddr: number, flags: number): StatInfo | number {
  const p = userPath(c, pathAddr);
  if (typeof p === 'number') return p;
  if (p === '') {
    if ((flags & AT_EMPTY_PATH) === 0) return -E.ENOENT;
    if (s32(dirfd) === AT_FDCWD) {
      const r = lookupPath(c, AT_FDCWD, '.', true);
      return typeof r === 'number' ? r : inodeStat(r.inode);
    }
    const f = c.proc.files.get(s32(dirfd));
    if (f === null) return -E.EBADF;
    return fileStat(f);
  }
  const r = lookupPath(c, s32(dirfd), p, (flags & AT_SYMLINK_NOFOLLOW) === 0);
  return typeof r === 'number' ? r : inodeStat(r.inode);
}

function statx(c: SysCtx): number {
  const [dirfd, pathAddr, flags, , buf] = c.a;
  const s = statAt(c, dirfd, pathAddr, flags);
  return typeof s === 'number' ? s : putStatx(c, buf, s);
}

function fstatat64(c: SysCtx): number {
  const [dirfd, pathAddr, buf, flags] = c.a;
  const s = statAt(c, dirfd, pathAddr, flags);
  return typeof s === 'number' ? s : putStat64(c, buf, s);
}

function statPath(c: SysCtx, follow: boolean): number {
  const s = statAt(c, AT_FDCWD >>> 0, c.a[0], follow ? 0 : AT_SYMLINK_NOFOLLOW);
  return typeof s === 'number' ? s : putStat64(c, c.a[1], s);
}

export const statCalls: Record<string, SyscallDef> = {
  fstat64: { name: 'fstat64', args: 'dp', fn: fstat64 },
  statx: { name: 'statx', args: 'dsxxp', fn: statx },
  fstatat64: { name: 'fstatat64', args: 'dspx', fn: fstatat64 },
  stat64: { name: 'stat64', args: 'sp', fn: (c) => statPath(c, true) },
  lstat64: { name: 'lstat64', args: 'sp', fn: (c) => statPath(c, false) },
};
