/**
 * The initramfs: a read-only Vfs built from a cpio newc archive (a boot module), as Linux's
 * populate_rootfs unpacks one. Directories, regular files, symbolic links, hard links (entries
 * sharing an inode number: the data is on one of them) and character devices (1:3 is
 * /dev/null, 1:5 /dev/zero, 5:0, 5:1 and 4:N the console). Parents missing from the archive are
 * made as directories. A malformed archive is a CpioError (one line); so is an entry whose
 * parent is not a directory.
 */
import { CpioError, readCpio } from './cpio.ts';
import { type DeviceKind, type Inode, isDir, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, Vfs } from './vfs.ts';

function deviceOf(ma: number, mi: number): DeviceKind | null {
  if (ma === 1 && mi === 3) return 'null';
  if (ma === 1 && mi === 5) return 'zero';
  if ((ma === 5 && (mi === 0 || mi === 1)) || ma === 4) return 'console';
  return null;
}

/** An empty file system (only /dev and /proc): what the LWK has without an initrd. */
export function emptyFs(): Vfs {
  const root: Inode = {
    ino: 1, mode: S_IFDIR | 0o755, nlink: 2, data: new Uint8Array(0), children: new Map(), parent: null, name: '',
    rdev: [0, 0], device: null,
  };
  root.parent = root;
  return new Vfs(root, 2);
}

/** Builds the file system from a newc archive; throws CpioError (one line) when it is malformed. */
export function loadInitramfs(archive: Uint8Array): Vfs {
  const entries = readCpio(archive);
  let maxIno = 1;
  for (const e of entries) maxIno = Math.max(maxIno, e.ino);
  const root: Inode = {
    ino: maxIno + 1, mode: S_IFDIR | 0o755, nlink: 2, data: new Uint8Array(0), children: new Map(), parent: null, name: '',
    rdev: [0, 0], device: null,
  };
  root.parent = root;
  const byIno = new Map<number, Inode>();
  // a fresh inode numbering past the archive's for directories made here
  let next = maxIno + 2;
  const fsRoot = root;
  const dirAt = (path: string, entryName: string): Inode => {
    let d = fsRoot;
    if (path === '') return d;
    for (const part of path.split('/')) {
      let n = d.children!.get(part);
      if (n === undefined) {
        n = { ino: next++, mode: S_IFDIR | 0o755, nlink: 2, data: new Uint8Array(0), children: new Map(), parent: d, name: part, rdev: [0, 0], device: null };
        d.children!.set(part, n);
      }
      if (!isDir(n)) throw new CpioError(`cpio archive: '${entryName}' is inside '${path}', which is not a directory`);
      d = n;
    }
    return d;
  };
  for (const e of entries) {
    const type = e.mode & S_IFMT;
    if (e.name === '') {
      if (type !== S_IFDIR) throw new CpioError('cpio archive: the root entry is not a directory');
      continue;
    }
    if (e.name.split('/').some((p) => p === '..' || p === '.')) throw new CpioError(`cpio archive: entry name '${e.name}' has a '.' or '..' component`);
    if (type !== S_IFREG && type !== S_IFDIR && type !== S_IFLNK && type !== S_IFCHR) {
      throw new CpioError(`cpio archive: '${e.name}' has an unsupported file type (mode 0${e.mode.toString(8)})`);
    }
    const cut = e.name.lastIndexOf('/');
    const parent = dirAt(cut < 0 ? '' : e.name.slice(0, cut), e.name);
    const name = e.name.slice(cut + 1);
    const existing = parent.children!.get(name);
    if (type === S_IFDIR) {
      if (existing !== undefined && isDir(existing)) continue;
      const d: Inode = { ino: e.ino, mode: e.mode, nlink: 2, data: new Uint8Array(0), children: new Map(), parent, name, rdev: [0, 0], device: null };
      parent.children!.set(name, d);
      continue;
    }
    let node: Inode | undefined = type === S_IFREG && e.nlink > 1 ? byIno.get(e.ino) : undefined;
    if (node !== undefined) {
      if (e.data.length > 0) node.data = e.data; // the hard link group's data
    } else {
      node = {
        ino: e.ino, mode: e.mode, nlink: 1, data: e.data, children: null, parent: null, name: '',
        rdev: [e.rdevMajor, e.rdevMinor], device: type === S_IFCHR ? deviceOf(e.rdevMajor, e.rdevMinor) : null,
      };
      if (type === S_IFREG && e.nlink > 1) byIno.set(e.ino, node);
    }
    parent.children!.set(name, node);
  }
  // link counts, sorted directory entries
  const fix = (d: Inode): void => {
    const sorted = [...d.children!.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    d.children!.clear();
    let subdirs = 0;
    for (const [n, i] of sorted) {
      d.children!.set(n, i);
      if (isDir(i)) { subdirs++; fix(i); }
    }
    d.nlink = 2 + subdirs;
  };
  const counts = new Map<Inode, number>();
  const count = (d: Inode): void => {
    for (const i of d.children!.values()) {
      if (isDir(i)) count(i); else counts.set(i, (counts.get(i) ?? 0) + 1);
    }
  };
  count(root);
  for (const [i, c] of counts) i.nlink = c;
  const vfs = new Vfs(root, next);
  fix(root);
  return vfs;
}
