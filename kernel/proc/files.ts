/**
 * A process's open files: a table of file descriptors, each naming an open file description
 * (Linux's struct file) that dup, fork and the descriptor table share: the offset, the status
 * flags and a reference count. A description is released when its last descriptor closes; a
 * pipe end's release is what gives the reader its end of file (and the writer its EPIPE).
 *
 * Kinds: the console streams (fd 0, 1 and 2 start on host console channels 0-2, the CLI's
 * stdin, stdout and stderr; /dev/console and /dev/tty reach the same channels), files and
 * directories of the file system (kernel/fs/), /dev/null and /dev/zero, and pipe ends
 * (kernel/fs/pipe.ts).
 */
import type { Inode } from '../fs/vfs.ts';
import type { Pipe } from '../fs/pipe.ts';

export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3;
export const O_APPEND = 0o2000, O_NONBLOCK = 0o4000, O_DIRECTORY = 0o200000, O_LARGEFILE = 0o100000;
/** The flags F_SETFL may change (Linux's SETFL_MASK, the ones the LWK knows). */
export const SETFL_MASK = O_APPEND | O_NONBLOCK;
/** RLIMIT_NOFILE's default soft limit. */
export const MAX_FDS = 1024;

interface Common {
  /** The status flags (access mode, O_APPEND, O_NONBLOCK, ...), for F_GETFL. */
  flags: number;
  readonly readable: boolean;
  readonly writable: boolean;
  /** Descriptors (in every process) naming this description. */
  refs: number;
}

export interface ConsoleFile extends Common {
  readonly kind: 'console';
  /** The host console channel. */
  readonly channel: number;
  /** The inode it was opened from (/dev/console, /dev/tty), or null for the standard streams. */
  readonly inode: Inode | null;
}

/** A regular file, a directory or a symbolic link (O_PATH-like) of the file system. */
export interface FsFile extends Common {
  readonly kind: 'file' | 'dir';
  readonly inode: Inode;
  /** Bytes read so far (a file), or the index of the next entry (a directory). */
  offset: number;
  /** The canonical path it was opened by (a directory's, for fchdir). */
  readonly path: string;
}

export interface DeviceFile extends Common {
  readonly kind: 'null' | 'zero';
  readonly inode: Inode;
}

export interface PipeEnd extends Common {
  readonly kind: 'pipe';
  readonly pipe: Pipe;
  readonly end: 'read' | 'write';
}

export type OpenFile = ConsoleFile | FsFile | DeviceFile | PipeEnd;

function release(f: OpenFile): void {
  if (f.kind === 'pipe') f.pipe.closeEnd(f.end);
}

export function consoleFile(channel: number, flags: number, inode: Inode | null = null): ConsoleFile {
  const acc = flags & O_ACCMODE;
  return { kind: 'console', channel, flags, readable: acc !== O_WRONLY, writable: acc !== O_RDONLY, refs: 0, inode };
}

export class FileTable {
  private readonly fds: (OpenFile | null)[] = [];
  /** close-on-exec flags (FD_CLOEXEC), by fd. */
  private readonly cloexec = new Set<number>();

  /** The standard streams on the host console's channels 0-2. */
  static standard(): FileTable {
    const t = new FileTable();
    t.installAt(consoleFile(0, O_RDONLY), 0);
    t.installAt(consoleFile(1, O_WRONLY), 1);
    t.installAt(consoleFile(2, O_WRONLY), 2);
    return t;
  }

  get(fd: number): OpenFile | null {
    if (!Number.isInteger(fd) || fd < 0) return null;
    return this.fds[fd] ?? null;
  }

  close(fd: number): boolean {
    const f = this.get(fd);
    if (f === null) return false;
    this.fds[fd] = null;
    this.cloexec.delete(fd);
    if (--f.refs === 0) release(f);
    return true;
  }

  /** The lowest free fd at or above `min` holding `f`, or -1 when the table is full. */
  install(f: OpenFile, min = 0): number {
    for (let fd = min; fd < MAX_FDS; fd++) {
      if (this.get(fd) === null) { this.fds[fd] = f; f.refs++; return fd; }
    }
    return -1;
  }

  /** Puts `f` at `fd`, closing what was there. */
  installAt(f: OpenFile, fd: number): void {
    while (this.fds.length <= fd) this.fds.push(null);
    f.refs++;
    const old = this.fds[fd];
    this.fds[fd] = f;
    this.cloexec.delete(fd);
    if (old !== null && --old.refs === 0) release(old);
  }

  setCloexec(fd: number, on: boolean): void { if (on) this.cloexec.add(fd); else this.cloexec.delete(fd); }
  isCloexec(fd: number): boolean { return this.cloexec.has(fd); }

  /** A copy for a forked child: the same descriptions (shared offsets), each referenced once more. */
  clone(): FileTable {
    const t = new FileTable();
    this.fds.forEach((f, fd) => {
      if (f !== null) { t.installAt(f, fd); if (this.cloexec.has(fd)) t.cloexec.add(fd); }
    });
    return t;
  }

  /** execve: closes the descriptors marked close-on-exec. */
  closeOnExec(): void {
    for (const fd of [...this.cloexec]) this.close(fd);
  }

  /** The process ends: every descriptor closes. */
  closeAll(): void {
    this.fds.forEach((f, fd) => { if (f !== null) this.close(fd); });
  }

  /** The open descriptors, lowest first. */
  openFds(): number[] {
    const out: number[] = [];
    this.fds.forEach((f, fd) => { if (f !== null) out.push(fd); });
    return out;
  }
}
