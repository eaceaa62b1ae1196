/**
 * The cpio "newc" format (SVR4 without CRC, magic 070701; the kernel's initramfs format,
 * Documentation/driver-api/early-userspace/buffer-format.rst): a reader that turns an archive
 * into entries, with a one-line CpioError naming what is wrong in a malformed archive, and a
 * writer (the CLI packs a host directory with it; tests build archives with it).
 *
 * Each entry: a 110-byte ASCII header (magic and 13 eight-digit hex fields), the NUL-terminated
 * name padded to 4 bytes (counting the header), the data padded to 4 bytes. The archive ends at
 * the entry named TRAILER!!!. Hard links share (dev, ino); their data is on one of them (the
 * last, by convention) and the others have size 0.
 */

export class CpioError extends Error {
  constructor(message: string) { super(message); this.name = 'CpioError'; }
}

export interface CpioEntry {
  /** The path inside the archive, without a leading "/" or "./" (the root is "" or "."). */
  name: string;
  ino: number;
  /** st_mode: type (S_IFREG, S_IFDIR, S_IFLNK, S_IFCHR...) and permission bits. */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  mtime: number;
  /** The file's bytes, or a symbolic link's target. */
  data: Uint8Array;
  devMajor: number;
  devMinor: number;
  rdevMajor: number;
  rdevMinor: number;
}

const MAGIC = '070701';
const HEADER = 110;
const TRAILER = 'TRAILER!!!';
const pad4 = (n: number): number => (n + 3) & ~3;

const latin1 = new TextDecoder('latin1');

/** Parses a newc archive. Throws CpioError (one line) when it is malformed. */
export function readCpio(bytes: Uint8Array): CpioEntry[] {
  const out: CpioEntry[] = [];
  let at = 0;
  for (;;) {
    if (at + HEADER > bytes.length) {
      throw new CpioError(`cpio archive: truncated header at offset ${at} (no ${TRAILER} entry)`);
    }
    const h = latin1.decode(bytes.subarray(at, at + HEADER));
    if (h.slice(0, 6) !== MAGIC) {
      throw new CpioError(`cpio archive: bad magic '${h.slice(0, 6).replace(/[^\x20-\x7e]/g, '?')}' at offset ${at} (only newc, 070701, is supported)`);
    }
    const field = (k: number): number => {
      const s = h.slice(6 + k * 8, 14 + k * 8);
      if (!/^[0-9a-fA-F]{8}$/.test(s)) throw new CpioError(`cpio archive: bad header field ${k} '${s}' at offset ${at}`);
      return parseInt(s, 16);
    };
    const [ino, mode, uid, gid, nlink, mtime, size, devMajor, devMinor, rdevMajor, rdevMinor, nameSize] =
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11].map(field);
    if (nameSize === 0) throw new CpioError(`cpio archive: empty name at offset ${at}`);
    const nameEnd = at + HEADER + nameSize;
    if (nameEnd > bytes.length) throw new CpioError(`cpio archive: truncated name at offset ${at}`);
    if (bytes[nameEnd - 1] !== 0) throw new CpioError(`cpio archive: name not NUL-terminated at offset ${at}`);
    const name = latin1.decode(bytes.subarray(at + HEADER, nameEnd - 1));
    const dataAt = pad4(nameEnd);
    if (name === TRAILER) return out;
    if (dataAt + size > bytes.length) throw new CpioError(`cpio archive: '${name}' claims ${size} bytes but the archive ends first`);
    out.push({
      name: normaliseName(name), ino, mode, uid, gid, nlink, mtime, data: bytes.slice(dataAt, dataAt + size),
      devMajor, devMinor, rdevMajor, rdevMinor,
    });
    at = pad4(dataAt + size);
  }
}

function normaliseName(n: string): string {
  let s = n;
  while (s.startsWith('./')) s = s.slice(2);
  while (s.startsWith('/')) s = s.slice(1);
  while (s.endsWith('/')) s = s.slice(0, -1);
  return s === '.' ? '' : s;
}

const enc = new TextEncoder();
const hex8 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/** Writes entries as a newc archive (in the order given), with the trailer. */
export function writeCpio(entries: readonly CpioEntry[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let len = 0;
  const push = (b: Uint8Array): void => { parts.push(b); len += b.length; };
  const pad = (): void => { const p = pad4(len) - len; if (p > 0) push(new Uint8Array(p)); };
  const one = (e: Pick<CpioEntry, 'name'> & Partial<CpioEntry>): void => {
    const name = enc.encode(e.name + '\0');
    const data = e.data ?? new Uint8Array(0);
    const fields = [e.ino ?? 0, e.mode ?? 0, e.uid ?? 0, e.gid ?? 0, e.nlink ?? 1, e.mtime ?? 0, data.length,
      e.devMajor ?? 0, e.devMinor ?? 0, e.rdevMajor ?? 0, e.rdevMinor ?? 0, name.length, 0];
    push(enc.encode(MAGIC + fields.map(hex8).join('')));
    push(name);
    pad();
    push(data);
    pad();
  };
  for (const e of entries) one(e);
  one({ name: TRAILER, nlink: 1 });
  const out = new Uint8Array(len);
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000, S_IFLNK = 0o120000, S_IFCHR = 0o020000;

/** A simple way to describe an archive's contents: path -> file bytes, { link } or { dir }. */
export type TreeSpec = Record<string, Uint8Array | string | { link: string } | { dir: true } | { hardlink: string } | { file: Uint8Array | string; mode: number }>;

/**
 * Builds a normalised archive from a description (sorted by path, mtime 0, uid/gid 0, inode
 * numbers in order, parent directories added): what `run --initrd DIR` produces for a directory.
 */
export function buildCpio(tree: TreeSpec): Uint8Array {
  const dirs = new Set<string>();
  for (const p of Object.keys(tree)) {
    const parts = normaliseName(p).split('/');
    for (let k = 1; k < parts.length; k++) dirs.add(parts.slice(0, k).join('/'));
  }
  type Node = { name: string; mode: number; data: Uint8Array; hard?: string };
  const nodes = new Map<string, Node>();
  for (const d of dirs) nodes.set(d, { name: d, mode: S_IFDIR | 0o755, data: new Uint8Array(0) });
  for (const [p, v] of Object.entries(tree)) {
    const name = normaliseName(p);
    if (typeof v === 'string' || v instanceof Uint8Array) {
      nodes.set(name, { name, mode: S_IFREG | 0o755, data: typeof v === 'string' ? enc.encode(v) : v });
    } else if ('link' in v) nodes.set(name, { name, mode: S_IFLNK | 0o777, data: enc.encode(v.link) });
    else if ('dir' in v) nodes.set(name, { name, mode: S_IFDIR | 0o755, data: new Uint8Array(0) });
    else if ('hardlink' in v) nodes.set(name, { name, mode: 0, data: new Uint8Array(0), hard: normaliseName(v.hardlink) });
    else nodes.set(name, { name, mode: S_IFREG | (v.mode & 0o7777), data: typeof v.file === 'string' ? enc.encode(v.file) : v.file });
  }
  return packNodes([...nodes.values()].map((n) => ({ name: n.name, mode: n.mode, data: n.data, hardlinkOf: n.hard })));
}

/** One node of a tree to pack: a hard link names the path whose inode it shares. */
export interface PackNode { name: string; mode: number; data: Uint8Array; hardlinkOf?: string }

/** Packs nodes with normalised metadata: sorted by name, inodes numbered in order, mtime/uid/gid 0. */
export function packNodes(nodes: readonly PackNode[]): Uint8Array {
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const byName = new Map(sorted.map((n) => [n.name, n]));
  const inoOf = new Map<string, number>();
  let next = 1;
  const root = (n: PackNode): PackNode => {
    let r = n;
    for (let k = 0; k < 40 && r.hardlinkOf !== undefined; k++) {
      const t = byName.get(r.hardlinkOf);
      if (t === undefined) throw new CpioError(`cpio: hard link ${n.name} names ${r.hardlinkOf}, which is not in the tree`);
      r = t;
    }
    return r;
  };
  const links = new Map<string, PackNode[]>();
  for (const n of sorted) {
    const r = root(n);
    if (!inoOf.has(r.name)) inoOf.set(r.name, next++);
    const l = links.get(r.name) ?? [];
    l.push(n);
    links.set(r.name, l);
  }
  const subdirs = new Map<string, number>();
  for (const n of sorted) {
    if ((n.mode & S_IFMT) !== S_IFDIR) continue;
    const parent = n.name.includes('/') ? n.name.slice(0, n.name.lastIndexOf('/')) : '';
    subdirs.set(parent, (subdirs.get(parent) ?? 0) + 1);
  }
  const entries: CpioEntry[] = [];
  for (const n of sorted) {
    const r = root(n);
    const group = links.get(r.name)!;
    const isDir = (r.mode & S_IFMT) === S_IFDIR;
    const last = group[group.length - 1] === n;
    entries.push({
      name: n.name, ino: inoOf.get(r.name)!, mode: r.mode, uid: 0, gid: 0,
      nlink: isDir ? 2 + (subdirs.get(n.name) ?? 0) : group.length, mtime: 0,
      data: group.length > 1 && !last ? new Uint8Array(0) : r.data,
      devMajor: 0, devMinor: 0, rdevMajor: 0, rdevMinor: 0,
    });
  }
  return writeCpio(entries);
}
