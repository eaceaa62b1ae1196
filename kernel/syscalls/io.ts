/**
 * read, write, readv, writev, close, dup, dup2, dup3, fcntl64, ioctl, lseek, _llseek: file
 * descriptors. The only files so far are the console streams (proc/files.ts): reads take the
 * host console channel's buffered input (the CLI's stdin, given in full at the start), writes go
 * out on the channel.
 */
import type { ConsoleFile } from '../proc/files.ts';
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef } from './types.ts';

const MAX_RW = 0x7ffff000; // Linux's MAX_RW_COUNT
const IOV_MAX = 1024;

function writeBytes(c: SysCtx, f: ConsoleFile, bytes: Uint8Array): number {
  c.k.console.write(c.cpu, f.channel, bytes);
  return bytes.length;
}

/**
 * Reads up to `max` bytes: what the channel has buffered; 0 (end of file) when its input is
 * closed and read. The CLI always hands over its whole stdin and closes it at the start, so a
 * read never has to wait; a channel still open with nothing buffered reads as end of file too
 * (waiting for the host console's interrupt comes with interactive input).
 */
function readBytes(c: SysCtx, f: ConsoleFile, max: number): Uint8Array {
  return c.k.console.read(c.cpu, f.channel, Math.min(max, MAX_RW));
}

function writable(c: SysCtx, fd: number): ConsoleFile | number {
  const f = c.proc.files.get(fd);
  if (f === null || !f.writable) return -E.EBADF;
  return f;
}

function readable(c: SysCtx, fd: number): ConsoleFile | number {
  const f = c.proc.files.get(fd);
  if (f === null || !f.readable) return -E.EBADF;
  return f;
}

function write(c: SysCtx): number {
  const f = writable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const n = Math.min(c.a[2], MAX_RW);
  if (n === 0) return 0;
  const r = c.proc.aspace.copyin(c.cpu, c.a[1], n);
  if (!r.ok) return errno(r.error);
  return writeBytes(c, f, r.value);
}

function read(c: SysCtx): number {
  const f = readable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const n = Math.min(c.a[2], MAX_RW);
  if (n === 0) return 0;
  const data = readBytes(c, f, n);
  if (data.length === 0) return 0;
  const w = c.proc.aspace.copyout(c.cpu, c.a[1], data);
  return w.ok ? data.length : errno(w.error);
}

/** The (base, len) pairs of an iovec array, or a negative errno. */
function iovecs(c: SysCtx, addr: number, count: number): [number, number][] | number {
  if (count > IOV_MAX) return -E.EINVAL;
  if (count === 0) return [];
  const r = c.proc.aspace.copyin(c.cpu, addr, count * 8);
  if (!r.ok) return errno(r.error);
  const dv = new DataView(r.value.buffer);
  const out: [number, number][] = [];
  let total = 0;
  for (let k = 0; k < count; k++) {
    const len = dv.getUint32(k * 8 + 4, true);
    if (len > 0x7fffffff || (total += len) > 0x7fffffff) return -E.EINVAL;
    out.push([dv.getUint32(k * 8, true), len]);
  }
  return out;
}

function writev(c: SysCtx): number {
  const f = writable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const iov = iovecs(c, c.a[1], c.a[2]);
  if (typeof iov === 'number') return iov;
  let done = 0;
  for (const [base, len] of iov) {
    if (len === 0) continue;
    const r = c.proc.aspace.copyin(c.cpu, base, len);
    if (!r.ok) return done > 0 ? done : errno(r.error);
    done += writeBytes(c, f, r.value);
  }
  return done;
}

function readv(c: SysCtx): number {
  const f = readable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const iov = iovecs(c, c.a[1], c.a[2]);
  if (typeof iov === 'number') return iov;
  let done = 0;
  for (const [base, len] of iov) {
    if (len === 0) continue;
    const data = readBytes(c, f, len);
    if (data.length === 0) break;
    const w = c.proc.aspace.copyout(c.cpu, base, data);
    if (!w.ok) return done > 0 ? done : errno(w.error);
    done += data.length;
    if (data.length < len) break;
  }
  return done;
}

function close(c: SysCtx): number {
  return c.proc.files.close(s32(c.a[0])) ? 0 : -E.EBADF;
}

function dup(c: SysCtx): number {
  const f = c.proc.files.get(s32(c.a[0]));
  if (f === null) return -E.EBADF;
  const fd = c.proc.files.install(f);
  return fd < 0 ? -E.EMFILE : fd;
}

function dup3Common(c: SysCtx, oldfd: number, newfd: number, flags: number, isDup2: boolean): number {
  const f = c.proc.files.get(oldfd);
  if (f === null) return -E.EBADF;
  if (newfd < 0 || newfd >= 1024) return -E.EBADF;
  if (oldfd === newfd) return isDup2 ? newfd : -E.EINVAL;
  if ((flags & ~0o2000000) !== 0) return -E.EINVAL;
  c.proc.files.installAt(f, newfd);
  if ((flags & 0o2000000) !== 0) c.proc.files.setCloexec(newfd, true);
  return newfd;
}

const F_DUPFD = 0, F_GETFD = 1, F_SETFD = 2, F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;

function fcntl64(c: SysCtx): number {
  const fd = s32(c.a[0]);
  const f = c.proc.files.get(fd);
  if (f === null) return -E.EBADF;
  switch (c.a[1]) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      const min = s32(c.a[2]);
      if (min < 0 || min >= 1024) return -E.EINVAL;
      const nfd = c.proc.files.install(f, min);
      if (nfd < 0) return -E.EMFILE;
      if (c.a[1] === F_DUPFD_CLOEXEC) c.proc.files.setCloexec(nfd, true);
      return nfd;
    }
    case F_GETFD: return c.proc.files.isCloexec(fd) ? 1 : 0;
    case F_SETFD: c.proc.files.setCloexec(fd, (c.a[2] & 1) !== 0); return 0;
    case F_GETFL: return f.flags;
    case F_SETFL: return 0;
    default: return -E.EINVAL;
  }
}

/** ioctl: the console streams are not terminals, so every terminal request is -ENOTTY. */
function ioctl(c: SysCtx): number {
  if (c.proc.files.get(s32(c.a[0])) === null) return -E.EBADF;
  return -E.ENOTTY;
}

function lseek(c: SysCtx): number {
  if (c.proc.files.get(s32(c.a[0])) === null) return -E.EBADF;
  return -E.ESPIPE;
}

export const ioCalls: Record<string, SyscallDef> = {
  read: { name: 'read', args: 'dBu', fn: read },
  write: { name: 'write', args: 'dbu', fn: write },
  readv: { name: 'readv', args: 'dpd', fn: readv },
  writev: { name: 'writev', args: 'dpd', fn: writev },
  close: { name: 'close', args: 'd', fn: close },
  dup: { name: 'dup', args: 'd', fn: dup },
  dup2: { name: 'dup2', args: 'dd', fn: (c) => dup3Common(c, s32(c.a[0]), s32(c.a[1]), 0, true) },
  dup3: { name: 'dup3', args: 'ddx', fn: (c) => dup3Common(c, s32(c.a[0]), s32(c.a[1]), c.a[2], false) },
  fcntl64: { name: 'fcntl64', args: 'ddx', fn: fcntl64 },
  ioctl: { name: 'ioctl', args: 'dxp', fn: ioctl },
  lseek: { name: 'lseek', args: 'ddd', fn: lseek },
  _llseek: { name: '_llseek', args: 'duupd', fn: lseek },
};
