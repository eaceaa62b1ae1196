/**
 * The LWK's file system: one read-only tree of inodes (the initramfs, initramfs.ts), with /dev
 * (null, zero, console, tty) and /proc/<pid>/exe, /proc/self added by the kernel, and path
 * lookup as Linux's namei does it: absolute or relative to a working directory, "." and "..",
 * symbolic links followed (relative targets from the link's directory; at most 40, else
 * ELOOP), ENOTDIR for a file used as a directory, ENAMETOOLONG for a component over 255 bytes.
 * Lookups return an inode or a negative errno; nothing here throws on a program's input.
 */
import { E } from '../syscalls/errno.ts';

export const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000, S_IFLNK = 0o120000, S_IFCHR = 0o020000;

/** What a character device is in the LWK. */
export type DeviceKind = 'null' | 'zero' | 'console';

export interface Inode {
  readonly ino: number;
  /** st_mode: type and permission bits. */
  readonly mode: number;
  nlink: number;
  /** A file's bytes (shared by its hard links), or a symbolic link's target. */
  data: Uint8Array;
  /** A directory's entries, by name, in sorted order. */
  readonly children: Map<string, Inode> | null;
  /** A directory's parent (the root's is itself) and its name there. */
  parent: Inode | null;
  name: string;
  /** A character device's numbers and what it is. */
  readonly rdev: readonly [number, number];
  readonly device: DeviceKind | null;
  /** A symbolic link whose target depends on the process looking (/proc/self, /proc/N/exe). */
  readonly dynamic?: (view: ProcView) => string;
}

export const isDir = (i: Inode): boolean => (i.mode & S_IFMT) === S_IFDIR;
export const isLink = (i: Inode): boolean => (i.mode & S_IFMT) === S_IFLNK;
export const isReg = (i: Inode): boolean => (i.mode & S_IFMT) === S_IFREG;

/** What /proc shows of the process doing the lookup. */
export interface ProcView {
  readonly pid: number;
  /** The program path of a live process (its /proc/N/exe), or null when there is no such pid. */
  exeOf(pid: number): string | null;
  /** The program's bytes, for a /proc/N/exe whose path is not in the tree (a program of the host, `run ELF`). */
  imageOf?(pid: number): Uint8Array | null;
}

/** The st_dev of the initramfs (Linux's rootfs is an anonymous device, 0:N), and of /proc. */
export const ROOT_DEV = 1, PROC_DEV = 4;
const MAX_LINKS = 40;
const enc = new TextEncoder();
const dec = new TextDecoder('latin1');

export interface Lookup {
  inode: Inode;
  /** The canonical absolute path of what was found (symbolic links resolved as far as followed). */
  path: string;
}

export class Vfs {
  readonly root: Inode;
  private nextIno: number;
  /** The /proc directory (its entries are made per lookup). */
  readonly proc: Inode;
  /** /proc/N/exe links made by lookups, and their pid. */
  private readonly exeLinks = new WeakMap<Inode, number>();

  constructor(root: Inode, firstFreeIno: number) {
    this.root = root;
    this.nextIno = Math.max(firstFreeIno, 2);
    this.addDevices();
    this.proc = this.ensureDir(this.root, 'proc', 0o555);
  }

  /** A new inode (not linked anywhere). */
  makeInode(mode: number, data: Uint8Array, o: { rdev?: [number, number]; device?: DeviceKind | null; dynamic?: (v: ProcView) => string; ino?: number } = {}): Inode {
    return {
      ino: o.ino ?? this.nextIno++, mode, nlink: (mode & S_IFMT) === S_IFDIR ? 2 : 1, data,
      children: (mode & S_IFMT) === S_IFDIR ? new Map() : null, parent: null, name: '',
      rdev: o.rdev ?? [0, 0], device: o.device ?? null, dynamic: o.dynamic,
    };
  }

  /** Links `child` into directory `dir` under `name` (kept sorted). */
  link(dir: Inode, name: string, child: Inode): void {
    const ch = dir.children!;
    ch.set(name, child);
    const sorted = [...ch.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    ch.clear();
    for (const [n, i] of sorted) ch.set(n, i);
    if (isDir(child)) { child.parent = dir; child.name = name; }
  }

  private ensureDir(dir: Inode, name: string, perm: number): Inode {
    const have = dir.children!.get(name);
    if (have !== undefined && isDir(have)) return have;
    const d = this.makeInode(S_IFDIR | perm, new Uint8Array(0));
    this.link(dir, name, d);
    return d;
  }

  /** /dev/null, /dev/zero, /dev/console and /dev/tty, unless the archive has them. */
  private addDevices(): void {
    const dev = this.ensureDir(this.root, 'dev', 0o755);
    const add = (name: string, ma: number, mi: number, kind: DeviceKind, perm: number): void => {
      if (dev.children!.has(name)) return;
      this.link(dev, name, this.makeInode(S_IFCHR | perm, new Uint8Array(0), { rdev: [ma, mi], device: kind }));
    };
    add('null', 1, 3, 'null', 0o666);
    add('zero', 1, 5, 'zero', 0o666);
    add('console', 5, 1, 'console', 0o600);
    add('tty', 5, 0, 'console', 0o666);
  }

  /** The entries of /proc as the process `view` sees them. */
  private procChild(name: string, view: ProcView): Inode | null {
    if (name === 'self') {
      return this.makeInode(S_IFLNK | 0o777, new Uint8Array(0), { ino: 0x7f000000, dynamic: (v) => String(v.pid) });
    }
    if (!/^[1-9][0-9]{0,9}$/.test(name)) return null;
    const pid = Number(name);
    if (view.exeOf(pid) === null) return null;
    const d = this.makeInode(S_IFDIR | 0o555, new Uint8Array(0), { ino: 0x7f100000 + pid * 16 });
    d.parent = this.proc; d.name = name;
    const exe = this.makeInode(S_IFLNK | 0o777, new Uint8Array(0), { ino: 0x7f100000 + pid * 16 + 1, dynamic: (v) => v.exeOf(pid) ?? '' });
    this.exeLinks.set(exe, pid);
    d.children!.set('exe', exe);
    return d;
  }

  /** The target of a symbolic link as `view` reads it. */
  linkTarget(i: Inode, view: ProcView): string {
    return i.dynamic !== undefined ? i.dynamic(view) : dec.decode(i.data);
  }

  /** The canonical absolute path of a directory. */
  pathOf(dir: Inode): string {
    const parts: string[] = [];
    let d = dir;
    for (let k = 0; k < 4096 && d !== this.root && d.parent !== null; k++) { parts.unshift(d.name); d = d.parent; }
    return '/' + parts.join('/');
  }

  /**
   * Looks `path` up from `cwd` (an absolute canonical path of a directory). `follow`: whether
   * a symbolic link in the last component is followed (stat vs lstat, open vs O_NOFOLLOW).
   * Returns the inode or a negative errno.
   */
  lookup(path: string, cwd: string, view: ProcView, follow: boolean): Lookup | number {
    if (path === '') return -E.ENOENT;
    if (path.length >= 4096) return -E.ENAMETOOLONG;
    const start = path.startsWith('/') ? this.root : this.lookupDir(cwd);
    if (start === null) return -E.ENOENT;
    return this.walk(start, path, view, follow, { links: 0 });
  }

  private lookupDir(cwd: string): Inode | null {
    let d = this.root;
    for (const part of cwd.split('/')) {
      if (part === '' || part === '.') continue;
      const n = part === '..' ? (d.parent ?? d) : d.children?.get(part);
      if (n === undefined || !isDir(n)) return null;
      d = n;
    }
    return d;
  }

  private walk(start: Inode, path: string, view: ProcView, follow: boolean, st: { links: number }): Lookup | number {
    let dir = start;
    const parts = path.split('/');
    const trailingSlash = path.endsWith('/') && path.replace(/\/+$/, '') !== '';
    const comps = parts.filter((p) => p !== '');
    if (comps.length === 0) return { inode: dir, path: this.pathOf(dir) };
    for (let k = 0; k < comps.length; k++) {
      const name = comps[k];
      const last = k === comps.length - 1;
      if (enc.encode(name).length > 255) return -E.ENAMETOOLONG;
      if (!isDir(dir)) return -E.ENOTDIR;
      let next: Inode | null | undefined;
      if (name === '.') next = dir;
      else if (name === '..') next = dir.parent ?? dir;
      else if (dir === this.proc) next = this.procChild(name, view);
      else next = dir.children!.get(name);
      if (next === undefined || next === null) return -E.ENOENT;
      if (isLink(next) && (!last || follow || trailingSlash)) {
        if (++st.links > MAX_LINKS) return -E.ELOOP;
        const target = this.linkTarget(next, view);
        if (target === '') return -E.ENOENT;
        const from = target.startsWith('/') ? this.root : dir;
        let r = this.walk(from, target, view, true, st);
        const exePid = this.exeLinks.get(next);
        if (r === -E.ENOENT && exePid !== undefined) {
          // the program is not in the tree (a host file run by `run ELF`): its bytes, as the kernel keeps them
          const image = view.imageOf?.(exePid) ?? null;
          if (image !== null) r = { inode: this.makeInode(S_IFREG | 0o755, image, { ino: 0x7f100000 + exePid * 16 + 2 }), path: target };
        }
        if (typeof r === 'number') return r;
        next = r.inode;
        if (last) {
          if (trailingSlash && !isDir(next)) return -E.ENOTDIR;
          return r;
        }
        dir = next;
        continue;
      }
      if (last) {
        if (trailingSlash && !isDir(next)) return -E.ENOTDIR;
        const where = isDir(next) ? this.pathOf(next) : `${this.pathOf(dir) === '/' ? '' : this.pathOf(dir)}/${name}`;
        return { inode: next, path: where };
      }
      dir = next;
    }
    return { inode: dir, path: this.pathOf(dir) };
  }

  /** The parent directory and final name of `path` (for calls that would create or remove it). */
  lookupParent(path: string, cwd: string, view: ProcView): { dir: Inode; name: string } | number {
    const trimmed = path.replace(/\/+$/, '');
    const cut = trimmed.lastIndexOf('/');
    const dirPath = cut < 0 ? '.' : cut === 0 ? '/' : trimmed.slice(0, cut);
    const name = trimmed.slice(cut + 1);
    const d = this.lookup(dirPath, cwd, view, true);
    if (typeof d === 'number') return d;
    if (!isDir(d.inode)) return -E.ENOTDIR;
    return { dir: d.inode, name: name === '' ? '.' : name };
  }
}
