// `run --initrd DIR|CPIO`: the initramfs the LWK gets as a boot module. A directory is packed
// here into a cpio newc archive with normalised metadata (sorted paths, mtime 0, uid/gid 0,
// inode numbers in order; hard links kept as hard links), so the same tree gives the same bytes
// and the same run; a file must be a newc archive already (gzip-compressed archives are not
// supported: unpack them first). The kernel sees only the archive's bytes.
import { lstatSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CpioError, packNodes, type PackNode, readCpio, S_IFDIR, S_IFLNK, S_IFREG } from '../../kernel/fs/cpio.ts';
import { UsageError } from './options.ts';

/** Packs a host directory (its contents become /). */
export function packDirectory(dir: string): Uint8Array {
  const nodes: PackNode[] = [];
  const seen = new Map<string, string>(); // dev:ino -> first path
  const walk = (host: string, rel: string): void => {
    const names = readdirSync(host).sort();
    for (const name of names) {
      const hp = join(host, name);
      const path = rel === '' ? name : `${rel}/${name}`;
      const st = lstatSync(hp);
      if (st.isDirectory()) {
        nodes.push({ name: path, mode: S_IFDIR | (st.mode & 0o7777), data: new Uint8Array(0) });
        walk(hp, path);
      } else if (st.isSymbolicLink()) {
        nodes.push({ name: path, mode: S_IFLNK | 0o777, data: new TextEncoder().encode(readlinkSync(hp)) });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(key) : undefined;
        if (first !== undefined) nodes.push({ name: path, mode: S_IFREG | (st.mode & 0o7777), data: new Uint8Array(0), hardlinkOf: first });
        else {
          if (st.nlink > 1) seen.set(key, path);
          nodes.push({ name: path, mode: S_IFREG | (st.mode & 0o7777), data: new Uint8Array(readFileSync(hp)) });
        }
      }
      // sockets, FIFOs and device nodes are left out (the LWK adds /dev itself)
    }
  };
  walk(dir, '');
  return packNodes(nodes);
}

/** The archive for `--initrd ARG`: a directory packed, or a newc archive checked. */
export function loadInitrd(arg: string): Uint8Array {
  let isDir: boolean;
  try { isDir = statSync(arg).isDirectory(); } catch (e) {
    throw new UsageError(`--initrd ${arg}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (isDir) return packDirectory(arg);
  const bytes = new Uint8Array(readFileSync(arg));
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) throw new UsageError(`--initrd ${arg}: a gzip-compressed archive; give the uncompressed cpio (newc) archive or a directory`);
  try { readCpio(bytes); } catch (e) {
    if (e instanceof CpioError) throw new UsageError(`--initrd ${arg}: ${e.message}`);
    throw e;
  }
  return bytes;
}
