/**
 * The path calls over the LWK's read-only file system (kernel/fs/): open, openat, creat,
 * access, faccessat, faccessat2, readlink, readlinkat, getcwd, chdir, fchdir, getdents64,
 * umask, and the calls that would change the tree (mkdir, unlink, rmdir, rename, chmod,
 * truncate...), which fail as on a read-only mount: -EROFS when the path could be changed,
 * -EEXIST/-ENOENT/-ENOTDIR first when Linux checks those first.
 *
 * Opening: /dev/null and /dev/zero are their devices; /dev/console and /dev/tty the console
 * streams (stdin's channel for reading, stdout's for writing); a regular file opens read-only
 * (write access or O_TRUNC: -EROFS; O_CREAT of a missing file: -EROFS); a directory only
 * read-only (-EISDIR otherwise).
 */
import type { Inode, Lookup, ProcView } from '../fs/vfs.ts';
import { isDir, isLink, isReg, S_IFMT } from '../fs/vfs.ts';
import { consoleFile, O_ACCMODE, O_DIRECTORY, O_RDONLY, O_WRONLY, type OpenFile } from '../proc/files.ts';
import type { Process } from '../proc/process.ts';
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef } from './types.ts';

const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EACCESS = 0x200, AT_REMOVEDIR = 0x200, AT_EMPTY_PATH = 0x1000;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOCTTY = 0o400, O_TRUNC = 0o1000, O_NOFOLLOW = 0o400000, O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000, O_TMPFILE = 0o20000000;
const W_OK = 2, X_OK = 1;

const latin1 = new TextDecoder('latin1');
const enc = new TextEncoder();

/** A path argument, or a negative errno (EFAULT, ENAMETOOLONG). */
export function userPath(c: SysCtx, addr: number): string | number {
  const r = c.proc.aspace.copyinString(c.cpu, addr, 4096);
  if (!r.ok) return r.error === 'ENAMETOOLONG' ? -E.ENAMETOOLONG : errno(r.error);
  return latin1.decode(r.value);
}

/** What /proc shows the calling process. */
export function procView(c: SysCtx): ProcView {
  return {
    pid: c.proc.pid,
    exeOf: (pid) => {
      const p = c.k.processes.get(pid);
      return p === undefined || p.exitCode !== null ? null : p.exe;
    },
    imageOf: (pid) => {
      const p = c.k.processes.get(pid);
      return p === undefined || p.exitCode !== null || p.image.length === 0 ? null : p.image;
    },
  };
}

/** The directory a relative path starts from: the working directory, or dirfd's directory. */
function baseDir(c: SysCtx, dirfd: number, path: string): string | number {
  if (path.startsWith('/') || dirfd === AT_FDCWD) return c.proc.cwd;
  const f = c.proc.files.get(dirfd);
  if (f === null) return -E.EBADF;
  if (f.kind !== 'dir') return -E.ENOTDIR;
  return f.path;
}

/** Looks (dirfd, path) up for the calling process. */
export function lookupPath(c: SysCtx, dirfd: number, path: string, follow: boolean): Lookup | number {
  const base = baseDir(c, dirfd, path);
  if (typeof base === 'number') return base;
  return c.k.fs.lookup(path, base, procView(c), follow);
}

/** The open file description for an inode found by open. */
function openInode(found: Lookup, flags: number): OpenFile | number {
  const i = found.inode;
  const acc = flags & O_ACCMODE;
  const keep = flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
  if (i.device !== null) {
    if (i.device === 'console') return consoleFile(acc === O_RDONLY ? 0 : 1, keep, i);
    return { kind: i.device, inode: i, flags: keep, readable: acc !== O_WRONLY, writable: acc !== O_RDONLY, refs: 0 };
  }
  if (isDir(i)) {
    if (acc !== O_RDONLY || (flags & O_TRUNC) !== 0) return -E.EISDIR;
    return { kind: 'dir', inode: i, offset: 0, path: found.path, flags: keep, readable: true, writable: false, refs: 0 };
  }
  if ((flags & O_DIRECTORY) !== 0) return -E.ENOTDIR;
  if (isLink(i)) return -E.ELOOP; // O_NOFOLLOW on a symbolic link
  if (!isReg(i)) return -E.ENXIO;
  if (acc !== O_RDONLY || (flags & O_TRUNC) !== 0) return -E.EROFS;
  return { kind: 'file', inode: i, offset: 0, path: found.path, flags: keep, readable: true, writable: false, refs: 0 };
}

function doOpen(c: SysCtx, dirfd: number, pathAddr: number, flags: number): number {
  const p = userPath(c, pathAddr);
  if (typeof p === 'number') return p;
  if ((flags & O_TMPFILE) === O_TMPFILE) return -E.EROFS;
  const creatExcl = (flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL);
  const follow = (flags & O_NOFOLLOW) === 0 && !creatExcl;
  const found = lookupPath(c, dirfd, p, follow);
  if (typeof found === 'number') {
    if (found !== -E.ENOENT || (flags & O_CREAT) === 0) return found;
    // creating a file: the parent must exist; then the read-only mount refuses
    const base = baseDir(c, dirfd, p);
    if (typeof base === 'number') return base;
    const parent = c.k.fs.lookupParent(p, base, procView(c));
    if (typeof parent === 'number') return parent;
    return -E.EROFS;
  }
  if (creatExcl) return -E.EEXIST;
  if ((flags & O_PATH) !== 0) {
    const i = found.inode;
    if ((flags & O_DIRECTORY) !== 0 && !isDir(i)) return -E.ENOTDIR;
    const f: OpenFile = isDir(i)
      ? { kind: 'dir', inode: i, offset: 0, path: found.path, flags: O_PATH, readable: false, writable: false, refs: 0 }
      : { kind: 'file', inode: i, offset: 0, path: found.path, flags: O_PATH, readable: false, writable: false, refs: 0 };
    return install(c.proc, f, flags);
  }
  const f = openInode(found, flags);
  if (typeof f === 'number') return f;
  return install(c.proc, f, flags);
}

function install(proc: Process, f: OpenFile, flags: number): number {
  const fd = proc.files.install(f);
  if (fd < 0) return -E.EMFILE;
  if ((flags & O_CLOEXEC) !== 0) proc.files.setCloexec(fd, true);
  return fd;
}

function access(c: SysCtx, dirfd: number, pathAddr: number, mode: number, flags: number): number {
  if ((mode & ~7) !== 0) return -E.EINVAL;
  if ((flags & ~(AT_SYMLINK_NOFOLLOW | AT_EACCESS | AT_EMPTY_PATH)) !== 0) return -E.EINVAL;
  const p = userPath(c, pathAddr);
  if (typeof p === 'number') return p;
  const found = lookupPath(c, dirfd, p, (flags & AT_SYMLINK_NOFOLLOW) === 0);
  if (typeof found === 'number') return found;
  const i = found.inode;
  if ((mode & X_OK) !== 0 && !isDir(i) && (i.mode & 0o111) === 0) return -E.EACCES;
  if ((mode & W_OK) !== 0 && i.device === null && (isReg(i) || isDir(i) || isLink(i))) return -E.EROFS;
  return 0;
}

function readlinkCommon(c: SysCtx, dirfd: number, pathAddr: number, buf: number, size: number): number {
  const p = userPath(c, pathAddr);
  if (typeof p === 'number') return p;
  if (s32(size) <= 0) return -E.EINVAL;
  const found = lookupPath(c, dirfd, p, false);
  if (typeof found === 'number') return found;
  if (!isLink(found.inode)) return -E.EINVAL;
  const target = enc.encode(c.k.fs.linkTarget(found.inode, procView(c))).subarray(0, size);
  const w = c.proc.aspace.copyout(c.cpu, buf, target);
  return w.ok ? target.length : errno(w.error);
}

function getcwd(c: SysCtx): number {
  const bytes = enc.encode(c.proc.cwd + '\0');
  if (c.a[1] < bytes.length) return -E.ERANGE;
  const w = c.proc.aspace.copyout(c.cpu, c.a[0], bytes);
  return w.ok ? bytes.length : errno(w.error);
}

function chdir(c: SysCtx): number {
  const p = userPath(c, c.a[0]);
  if (typeof p === 'number') return p;
  const found = lookupPath(c, AT_FDCWD, p, true);
  if (typeof found === 'number') return found;
  if (!isDir(found.inode)) return -E.ENOTDIR;
  c.proc.cwd = found.path;
  return 0;
}

function fchdir(c: SysCtx): number {
  const f = c.proc.files.get(s32(c.a[0]));
  if (f === null) return -E.EBADF;
  if (f.kind !== 'dir') return -E.ENOTDIR;
  c.proc.cwd = f.path;
  return 0;
}

const DT_FIFO = 1, DT_CHR = 2, DT_DIR = 4, DT_REG = 8, DT_LNK = 10;

function dtype(i: Inode): number {
  switch (i.mode & S_IFMT) {
    case 0o040000: return DT_DIR;
    case 0o100000: return DT_REG;
    case 0o120000: return DT_LNK;
    case 0o020000: return DT_CHR;
    case 0o010000: return DT_FIFO;
    default: return 0;
  }
}

/** A directory's entries as getdents lists them: ".", "..", then the names in sorted order. */
function dirEntries(c: SysCtx, dir: Inode): [string, number, number][] {
  const out: [string, number, number][] = [['.', dir.ino, DT_DIR], ['..', (dir.parent ?? dir).ino, DT_DIR]];
  if (dir === c.k.fs.proc) {
    out.push(['self', 0x7f000000, DT_LNK]);
    for (const pid of [...c.k.processes.keys()].sort((a, b) => a - b)) out.push([String(pid), 0x7f100000 + pid * 16, DT_DIR]);
  }
  for (const [name, i] of dir.children ?? []) out.push([name, i.ino, dtype(i)]);
  return out;
}

function getdents64(c: SysCtx): number {
  const f = c.proc.files.get(s32(c.a[0]));
  if (f === null || !f.readable) return -E.EBADF;
  if (f.kind !== 'dir') return -E.ENOTDIR;
  const entries = dirEntries(c, f.inode);
  const max = c.a[2];
  const parts: Uint8Array[] = [];
  let len = 0;
  let k = f.offset;
  for (; k < entries.length; k++) {
    const [name, ino, type] = entries[k];
    const nb = enc.encode(name);
    const reclen = (19 + nb.length + 1 + 7) & ~7;
    if (len + reclen > max) break;
    const rec = new Uint8Array(reclen);
    const dv = new DataView(rec.buffer);
    dv.setBigUint64(0, BigInt(ino), true);
    dv.setBigInt64(8, BigInt(k + 1), true);
    dv.setUint16(16, reclen, true);
    rec[18] = type;
    rec.set(nb, 19);
    parts.push(rec);
    len += reclen;
  }
  if (parts.length === 0 && k < entries.length) return -E.EINVAL; // the buffer cannot hold one entry
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  if (len > 0) {
    const w = c.proc.aspace.copyout(c.cpu, c.a[1], out);
    if (!w.ok) return errno(w.error);
  }
  f.offset = k;
  return len;
}

/** A call that would change the tree at an existing path: -EROFS (after Linux's earlier checks). */
function changeExisting(c: SysCtx, dirfd: number, pathAddr: number, follow: boolean): number {
  const p = userPath(c, pathAddr);
  if (typeof p === 'number') return p;
  const found = lookupPath(c, dirfd, p, follow);
  return typeof found === 'number' ? found : -E.EROFS;
}

/** A call that would create `path`: -EEXIST when it exists, -EROFS when its parent does. */
function create(c: SysCtx, dirfd: number, pathAddr: number): number {
  const p = userPath(c, pathAddr);
  if (typeof p === 'number') return p;
  const found = lookupPath(c, dirfd, p, false);
  if (typeof found !== 'number') return -E.EEXIST;
  if (found !== -E.ENOENT) return found;
  const base = baseDir(c, dirfd, p);
  if (typeof base === 'number') return base;
  const parent = c.k.fs.lookupParent(p, base, procView(c));
  return typeof parent === 'number' ? parent : -E.EROFS;
}

const umasks = new WeakMap<Process, number>();

function umask(c: SysCtx): number {
  const old = umasks.get(c.proc) ?? 0o022;
  umasks.set(c.proc, c.a[0] & 0o777);
  return old;
}

function ftruncate(c: SysCtx): number {
  const f = c.proc.files.get(s32(c.a[0]));
  if (f === null) return -E.EBADF;
  if (!f.writable) return -E.EINVAL;
  return f.kind === 'file' ? -E.EROFS : -E.EINVAL;
}


export const fsCalls: Record<string, SyscallDef> = {
  open: { name: 'open', args: 'sxo', fn: (c) => doOpen(c, AT_FDCWD, c.a[0], c.a[1]) },
  openat: { name: 'openat', args: 'dsxo', fn: (c) => doOpen(c, s32(c.a[0]), c.a[1], c.a[2]) },
  creat: { name: 'creat', args: 'so', fn: (c) => doOpen(c, AT_FDCWD, c.a[0], O_CREAT | O_WRONLY | O_TRUNC) },
  access: { name: 'access', args: 'so', fn: (c) => access(c, AT_FDCWD, c.a[0], c.a[1], 0) },
  faccessat: { name: 'faccessat', args: 'dso', fn: (c) => access(c, s32(c.a[0]), c.a[1], c.a[2], 0) },
  faccessat2: { name: 'faccessat2', args: 'dsox', fn: (c) => access(c, s32(c.a[0]), c.a[1], c.a[2], c.a[3]) },
  readlink: { name: 'readlink', args: 'spu', fn: (c) => readlinkCommon(c, AT_FDCWD, c.a[0], c.a[1], c.a[2]) },
  readlinkat: { name: 'readlinkat', args: 'dspu', fn: (c) => readlinkCommon(c, s32(c.a[0]), c.a[1], c.a[2], c.a[3]) },
  getcwd: { name: 'getcwd', args: 'pu', fn: getcwd },
  chdir: { name: 'chdir', args: 's', fn: chdir },
  fchdir: { name: 'fchdir', args: 'd', fn: fchdir },
  getdents64: { name: 'getdents64', args: 'dpu', fn: getdents64 },
  umask: { name: 'umask', args: 'o', fn: umask },
  mkdir: { name: 'mkdir', args: 'so', fn: (c) => create(c, AT_FDCWD, c.a[0]) },
  mkdirat: { name: 'mkdirat', args: 'dso', fn: (c) => create(c, s32(c.a[0]), c.a[1]) },
  symlink: { name: 'symlink', args: 'ss', fn: (c) => create(c, AT_FDCWD, c.a[1]) },
  link: { name: 'link', args: 'ss', fn: (c) => create(c, AT_FDCWD, c.a[1]) },
  unlink: { name: 'unlink', args: 's', fn: (c) => changeExisting(c, AT_FDCWD, c.a[0], false) },
  unlinkat: { name: 'unlinkat', args: 'dsx', fn: (c) => (c.a[2] & ~AT_REMOVEDIR) !== 0 ? -E.EINVAL : changeExisting(c, s32(c.a[0]), c.a[1], false) },
  rmdir: { name: 'rmdir', args: 's', fn: (c) => changeExisting(c, AT_FDCWD, c.a[0], false) },
  rename: { name: 'rename', args: 'ss', fn: (c) => changeExisting(c, AT_FDCWD, c.a[0], false) },
  renameat: { name: 'renameat', args: 'dsds', fn: (c) => changeExisting(c, s32(c.a[0]), c.a[1], false) },
  renameat2: { name: 'renameat2', args: 'dsdsx', fn: (c) => changeExisting(c, s32(c.a[0]), c.a[1], false) },
  chmod: { name: 'chmod', args: 'so', fn: (c) => changeExisting(c, AT_FDCWD, c.a[0], true) },
  fchmodat: { name: 'fchmodat', args: 'dso', fn: (c) => changeExisting(c, s32(c.a[0]), c.a[1], true) },
  truncate64: { name: 'truncate64', args: 'sdd', fn: (c) => changeExisting(c, AT_FDCWD, c.a[0], true) },
  ftruncate64: { name: 'ftruncate64', args: 'ddd', fn: ftruncate },
};
