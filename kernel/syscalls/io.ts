/**
 * read, write, readv, writev, pread64, sendfile(64), close, dup, dup2, dup3, fcntl64, ioctl, lseek, _llseek:
 * file descriptors of every kind (proc/files.ts):
 *   console   reads take the host console channel's buffered input (the CLI's stdin, given in
 *             full at the start, so a read never waits; nothing left reads as end of file),
 *             writes go out on the channel
 *   file      the initramfs file's bytes from the description's offset (read-only)
 *   dir       -EISDIR
 *   null/zero end of file / zeros; writes are swallowed
 *   pipe      kernel/fs/pipe.ts: a read with nothing buffered waits (interruptibly,
 *             syscalls/block.ts) while a writer is open, else end of file; a write
 *             (pipeWrite) puts in at most PIPE_BUF bytes atomically and waits until all of a
 *             blocking write is in; with no reader left it is -EPIPE and the writer gets
 *             SIGPIPE; O_NONBLOCK: -EAGAIN, or the count that fitted, instead of waiting
 */
import { PIPE_BUF } from '../fs/pipe.ts';
import { O_NONBLOCK, type OpenFile, type PipeEnd, SETFL_MASK } from '../proc/files.ts';
import { sendSignal, SI_USER, SIGPIPE } from '../proc/signals.ts';
import type { Thread } from '../sched/thread.ts';
import { waitAndRetry } from './block.ts';
import { E } from './errno.ts';
import { errno, s32, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

const MAX_RW = 0x7ffff000; // Linux's MAX_RW_COUNT
const IOV_MAX = 1024;

/** What a read of the file gives now: bytes (empty: end of file), or a negative errno, or a block. */
type ReadResult = Uint8Array | number | SysRet;

function readFrom(c: SysCtx, f: OpenFile, max: number): ReadResult {
  switch (f.kind) {
    case 'console': return c.k.console.read(c.cpu, f.channel, Math.min(max, MAX_RW));
    case 'null': return new Uint8Array(0);
    case 'zero': return new Uint8Array(Math.min(max, 1 << 20));
    case 'dir': return -E.EISDIR;
    case 'file': {
      const d = f.inode.data;
      const out = d.subarray(Math.min(f.offset, d.length), Math.min(f.offset + max, d.length));
      f.offset += out.length;
      return out;
    }
    case 'pipe': return readPipe(c, f, max);
  }
}

function readPipe(c: SysCtx, f: PipeEnd, max: number): ReadResult {
  const p = f.pipe;
  if (p.available > 0) return p.read(max);
  if (p.writers === 0) return new Uint8Array(0);
  if ((f.flags & O_NONBLOCK) !== 0) return -E.EAGAIN;
  return waitAndRetry(c, (t) => p.readWaiters.add(t), (t) => p.readWaiters.delete(t));
}

/** Writes bytes; returns the count written, a negative errno, or a block. */
function writeTo(c: SysCtx, f: OpenFile, bytes: Uint8Array): number | SysRet {
  switch (f.kind) {
    case 'console': c.k.console.write(c.cpu, f.channel, bytes); return bytes.length;
    case 'null': case 'zero': return bytes.length;
    case 'dir': return -E.EISDIR;
    case 'file': return -E.EBADF;
    case 'pipe': return pipeWrite(c, f, { fd: -1, buf: 0, count: bytes.length }, (off, len) => bytes.subarray(off, off + len));
  }
}

/** A blocking pipe write in progress: what the thread has written of the call it will run again. */
interface WriteProgress { fd: number; buf: number; count: number; done: number }
const progress = new WeakMap<Thread, WriteProgress>();

/**
 * A write to a pipe, as Linux's pipe_write: at most PIPE_BUF bytes go in at once or not at all;
 * a longer write puts in what fits, and a blocking one waits for room until all of it is in
 * (the call runs again after each wait and continues where it was: `progress`); a signal ends
 * it with the count written so far (or -EINTR when none). No reader: SIGPIPE, and -EPIPE (or
 * the count so far). `fetch(off, len)` gives the bytes of the request from `off`.
 */
function pipeWrite(c: SysCtx, f: PipeEnd, key: { fd: number; buf: number; count: number }, fetch: (off: number, len: number) => Uint8Array | number): SysRet {
  const p = f.pipe;
  const t = c.thread;
  let pr = progress.get(t);
  progress.delete(t);
  if (pr !== undefined && (pr.fd !== key.fd || pr.buf !== key.buf || pr.count !== key.count)) pr = undefined;
  const done = pr?.done ?? 0;
  const remaining = key.count - done;
  if (p.readers === 0) {
    sendSignal(c.k, c.cpu, c.proc, SIGPIPE, { signo: SIGPIPE, code: SI_USER, pid: c.proc.pid, uid: 0 }, c.thread); // to the writer (Linux's send_sig)
    return done > 0 ? done : -E.EPIPE;
  }
  let total = done;
  if (p.room >= (key.count <= PIPE_BUF ? remaining : 1)) {
    const n = Math.min(p.room, remaining);
    const data = fetch(done, n);
    if (typeof data === 'number') return done > 0 ? done : data;
    p.write(data);
    total += n;
  }
  if (total === key.count) return total;
  if ((f.flags & O_NONBLOCK) !== 0) return total > 0 ? total : -E.EAGAIN;
  progress.set(t, { ...key, done: total });
  return waitAndRetry(c, (w) => p.writeWaiters.add(w), (w) => p.writeWaiters.delete(w), () => {
    progress.delete(t); // ended by a signal: the count so far
    return total;
  });
}

function writable(c: SysCtx, fd: number): OpenFile | number {
  const f = c.proc.files.get(fd);
  if (f === null || !f.writable) return -E.EBADF;
  return f;
}

function readable(c: SysCtx, fd: number): OpenFile | number {
  const f = c.proc.files.get(fd);
  if (f === null || !f.readable) return -E.EBADF;
  return f;
}

function write(c: SysCtx): SysRet {
  const f = writable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const n = Math.min(c.a[2], MAX_RW);
  if (n === 0) return 0;
  if (f.kind === 'pipe') {
    // copy only what the pipe takes each time
    return pipeWrite(c, f, { fd: s32(c.a[0]), buf: c.a[1], count: n }, (off, len) => {
      const r = c.proc.aspace.copyin(c.cpu, c.a[1] + off, len);
      return r.ok ? r.value : errno(r.error);
    });
  }
  const r = c.proc.aspace.copyin(c.cpu, c.a[1], n);
  if (!r.ok) return errno(r.error);
  return writeTo(c, f, r.value);
}

function read(c: SysCtx): SysRet {
  const f = readable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const n = Math.min(c.a[2], MAX_RW);
  if (n === 0) return 0;
  const data = readFrom(c, f, n);
  if (!(data instanceof Uint8Array)) return data;
  if (data.length === 0) return 0;
  const w = c.proc.aspace.copyout(c.cpu, c.a[1], data);
  return w.ok ? data.length : errno(w.error);
}

function pread64(c: SysCtx): SysRet {
  const f = readable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  if (f.kind === 'dir') return -E.EISDIR;
  if (f.kind !== 'file') return -E.ESPIPE;
  const off = c.a[3] + c.a[4] * 2 ** 32;
  const d = f.inode.data;
  const out = d.subarray(Math.min(off, d.length), Math.min(off + Math.min(c.a[2], MAX_RW), d.length));
  if (out.length === 0) return 0;
  const w = c.proc.aspace.copyout(c.cpu, c.a[1], out);
  return w.ok ? out.length : errno(w.error);
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

function writev(c: SysCtx): SysRet {
  const f = writable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const iov = iovecs(c, c.a[1], c.a[2]);
  if (typeof iov === 'number') return iov;
  // gather, then one write (a pipe's atomicity and short writes apply to the whole)
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (const [base, len] of iov) {
    if (len === 0) continue;
    const r = c.proc.aspace.copyin(c.cpu, base, len);
    if (!r.ok) { if (total === 0) return errno(r.error); break; }
    chunks.push(r.value);
    total += len;
  }
  if (total === 0) return 0;
  const all = new Uint8Array(total);
  let at = 0;
  for (const ch of chunks) { all.set(ch, at); at += ch.length; }
  if (f.kind === 'pipe') return pipeWrite(c, f, { fd: s32(c.a[0]), buf: c.a[1], count: total }, (off, len) => all.subarray(off, off + len));
  return writeTo(c, f, all);
}

function readv(c: SysCtx): SysRet {
  const f = readable(c, s32(c.a[0]));
  if (typeof f === 'number') return f;
  const iov = iovecs(c, c.a[1], c.a[2]);
  if (typeof iov === 'number') return iov;
  const total = iov.reduce((s, [, l]) => s + l, 0);
  if (total === 0) return 0;
  const data = readFrom(c, f, total);
  if (!(data instanceof Uint8Array)) return data;
  let done = 0;
  for (const [base, len] of iov) {
    if (done >= data.length) break;
    const part = data.subarray(done, done + len);
    if (part.length === 0) continue;
    const w = c.proc.aspace.copyout(c.cpu, base, part);
    if (!w.ok) return done > 0 ? done : errno(w.error);
    done += part.length;
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
const F_GETPIPE_SZ = 1032, F_SETPIPE_SZ = 1031;

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
    case F_SETFL: f.flags = (f.flags & ~SETFL_MASK) | (c.a[2] & SETFL_MASK); return 0;
    case F_GETPIPE_SZ: return f.kind === 'pipe' ? 65536 : -E.EBADF;
    case F_SETPIPE_SZ: return f.kind === 'pipe' ? 65536 : -E.EBADF;
    default: return -E.EINVAL;
  }
}

const FIONREAD = 0x541b, FIONBIO = 0x5421, FIOCLEX = 0x5451, FIONCLEX = 0x5450;

/** ioctl: nothing is a terminal (every terminal request is -ENOTTY); FIONREAD, FIONBIO, FIOCLEX work. */
function ioctl(c: SysCtx): number {
  const fd = s32(c.a[0]);
  const f = c.proc.files.get(fd);
  if (f === null) return -E.EBADF;
  switch (c.a[1]) {
    case FIOCLEX: c.proc.files.setCloexec(fd, true); return 0;
    case FIONCLEX: c.proc.files.setCloexec(fd, false); return 0;
    case FIONBIO: {
      const r = c.proc.aspace.copyin(c.cpu, c.a[2], 4);
      if (!r.ok) return errno(r.error);
      const on = new DataView(r.value.buffer).getUint32(0, true) !== 0;
      f.flags = on ? f.flags | O_NONBLOCK : f.flags & ~O_NONBLOCK;
      return 0;
    }
    case FIONREAD: {
      if (f.kind !== 'pipe' && f.kind !== 'file') return -E.ENOTTY;
      const n = f.kind === 'pipe' ? f.pipe.available : Math.max(0, f.inode.data.length - f.offset);
      const dv = new DataView(new ArrayBuffer(4));
      dv.setUint32(0, n, true);
      const w = c.proc.aspace.copyout(c.cpu, c.a[2], new Uint8Array(dv.buffer));
      return w.ok ? 0 : errno(w.error);
    }
    default: return -E.ENOTTY;
  }
}

const SEEK_SET = 0, SEEK_CUR = 1, SEEK_END = 2;

/** The new offset of a seek, or a negative errno. */
function seek(f: OpenFile, off: number, whence: number): number {
  if (f.kind === 'console' || f.kind === 'pipe') return -E.ESPIPE;
  if (f.kind !== 'file' && f.kind !== 'dir') return 0;
  let base: number;
  if (whence === SEEK_SET) base = 0;
  else if (whence === SEEK_CUR) base = f.offset;
  else if (whence === SEEK_END) base = f.kind === 'dir' ? 0 : f.inode.data.length;
  else return -E.EINVAL;
  const n = base + off;
  if (n < 0) return -E.EINVAL;
  if (f.kind === 'dir' && whence !== SEEK_SET) return -E.EINVAL;
  f.offset = n;
  return n;
}

function lseek(c: SysCtx): number {
  const f = c.proc.files.get(s32(c.a[0]));
  if (f === null) return -E.EBADF;
  const n = seek(f, s32(c.a[1]), c.a[2]);
  if (n < 0) return n;
  return n > 0x7fffffff ? -75 /* EOVERFLOW */ : n;
}

function llseek(c: SysCtx): number {
  const f = c.proc.files.get(s32(c.a[0]));
  if (f === null) return -E.EBADF;
  const off = Number(BigInt.asIntN(64, (BigInt(c.a[1]) << 32n) | BigInt(c.a[2])));
  const n = seek(f, off, c.a[4]);
  if (n < 0) return n;
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigInt64(0, BigInt(n), true);
  const w = c.proc.aspace.copyout(c.cpu, c.a[3], new Uint8Array(dv.buffer));
  return w.ok ? 0 : errno(w.error);
}

/**
 * sendfile, sendfile64: from a file of the initramfs (the only kind whose data can be
 * "mapped", as Linux requires of in_fd: a pipe or the console is -EINVAL, and callers such as
 * busybox then fall back to read and write) to any writable descriptor; into a pipe, no more
 * than it takes now (waiting while it is full).
 */
function sendfile(c: SysCtx, wide: boolean): SysRet {
  const out = writable(c, s32(c.a[0]));
  if (typeof out === 'number') return out;
  const inp = readable(c, s32(c.a[1]));
  if (typeof inp === 'number') return inp;
  if (inp.kind !== 'file') return -E.EINVAL;
  const offAddr = c.a[2];
  let off = inp.offset;
  if (offAddr !== 0) {
    const r = c.proc.aspace.copyin(c.cpu, offAddr, wide ? 8 : 4);
    if (!r.ok) return errno(r.error);
    const dv = new DataView(r.value.buffer);
    off = wide ? Number(dv.getBigInt64(0, true)) : dv.getInt32(0, true);
    if (off < 0) return -E.EINVAL;
  }
  let n = Math.min(c.a[3], MAX_RW, Math.max(0, inp.inode.data.length - off));
  if (n === 0) return 0;
  if (out.kind === 'pipe' && out.pipe.readers > 0) n = Math.min(n, Math.max(out.pipe.room, 1)); // what fits now (a full pipe: wait)
  const done = writeTo(c, out, inp.inode.data.subarray(off, off + n));
  if (typeof done !== 'number' || done < 0) return done;
  if (offAddr !== 0) {
    const dv = new DataView(new ArrayBuffer(wide ? 8 : 4));
    if (wide) dv.setBigInt64(0, BigInt(off + done), true); else dv.setInt32(0, off + done, true);
    const w = c.proc.aspace.copyout(c.cpu, offAddr, new Uint8Array(dv.buffer));
    if (!w.ok) return errno(w.error);
  } else inp.offset = off + done;
  return done;
}

export const ioCalls: Record<string, SyscallDef> = {
  sendfile: { name: 'sendfile', args: 'ddpu', fn: (c) => sendfile(c, false) },
  sendfile64: { name: 'sendfile64', args: 'ddpu', fn: (c) => sendfile(c, true) },
  read: { name: 'read', args: 'dBu', fn: read },
  write: { name: 'write', args: 'dbu', fn: write },
  readv: { name: 'readv', args: 'dpd', fn: readv },
  writev: { name: 'writev', args: 'dpd', fn: writev },
  pread64: { name: 'pread64', args: 'dpuuu', fn: pread64 },
  close: { name: 'close', args: 'd', fn: close },
  dup: { name: 'dup', args: 'd', fn: dup },
  dup2: { name: 'dup2', args: 'dd', fn: (c) => dup3Common(c, s32(c.a[0]), s32(c.a[1]), 0, true) },
  dup3: { name: 'dup3', args: 'ddx', fn: (c) => dup3Common(c, s32(c.a[0]), s32(c.a[1]), c.a[2], false) },
  fcntl64: { name: 'fcntl64', args: 'ddx', fn: fcntl64 },
  ioctl: { name: 'ioctl', args: 'dxp', fn: ioctl },
  lseek: { name: 'lseek', args: 'ddd', fn: lseek },
  _llseek: { name: '_llseek', args: 'duupd', fn: llseek },
};
