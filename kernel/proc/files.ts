/**
 * A process's open files. For now the only files are the console streams: fd 0, 1 and 2 are
 * channels 0, 1 and 2 of the machine's host console (stdin, stdout, stderr of the CLI). Files of
 * an initramfs, pipes, /dev/null and /dev/zero come with the process work of a later session.
 */

export interface ConsoleFile {
  readonly kind: 'console';
  /** The host console channel. */
  readonly channel: number;
  readonly readable: boolean;
  readonly writable: boolean;
  /** The fd's flags (O_APPEND etc., for fcntl F_GETFL): O_RDONLY 0, O_WRONLY 1, O_RDWR 2. */
  readonly flags: number;
}

export type OpenFile = ConsoleFile;

export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2;
/** RLIMIT_NOFILE's default soft limit. */
export const MAX_FDS = 1024;

export class FileTable {
  private readonly fds: (OpenFile | null)[] = [];
  /** close-on-exec flags (FD_CLOEXEC), by fd. */
  private readonly cloexec = new Set<number>();

  /** The standard streams on the host console's channels 0-2. */
  static standard(): FileTable {
    const t = new FileTable();
    t.fds.push(
      { kind: 'console', channel: 0, readable: true, writable: false, flags: O_RDONLY },
      { kind: 'console', channel: 1, readable: false, writable: true, flags: O_WRONLY },
      { kind: 'console', channel: 2, readable: false, writable: true, flags: O_WRONLY },
    );
    return t;
  }

  get(fd: number): OpenFile | null {
    if (!Number.isInteger(fd) || fd < 0) return null;
    return this.fds[fd] ?? null;
  }

  close(fd: number): boolean {
    if (this.get(fd) === null) return false;
    this.fds[fd] = null;
    this.cloexec.delete(fd);
    return true;
  }

  /** The lowest free fd at or above `min` holding `f`, or -1 when the table is full. */
  install(f: OpenFile, min = 0): number {
    for (let fd = min; fd < MAX_FDS; fd++) {
      if (this.get(fd) === null) { this.fds[fd] = f; return fd; }
    }
    return -1;
  }

  /** Puts `f` at `fd`, closing what was there. */
  installAt(f: OpenFile, fd: number): void {
    while (this.fds.length <= fd) this.fds.push(null);
    this.fds[fd] = f;
    this.cloexec.delete(fd);
  }

  setCloexec(fd: number, on: boolean): void { if (on) this.cloexec.add(fd); else this.cloexec.delete(fd); }
  isCloexec(fd: number): boolean { return this.cloexec.has(fd); }
}
