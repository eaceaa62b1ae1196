/**
 * Mounting the root file system at boot: the initramfs from the boot module the kernel options
 * name (`initrd`), or an empty tree (only /dev and /proc) without one; and finding the first
 * program in it when the options name it by path (`init.path`).
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { chargeMem } from '../costs.ts';
import type { Kernel } from '../kernel.ts';
import { CpioError } from './cpio.ts';
import { loadInitramfs } from './initramfs.ts';
import { type Inode, isReg } from './vfs.ts';

/** Unpacks the initramfs module `name` into k.fs. Returns a one-line error, or null. */
export function mountRoot(k: Kernel, cpu: Cpu, name: string | undefined): string | null {
  if (name === undefined) return null;
  const md = k.info.modules.find((x) => x.name === name);
  if (md === undefined) return `no boot module named ${name} (the initramfs)`;
  const bytes = k.mem.u8.slice(md.base, md.base + md.size);
  chargeMem(cpu, md.size); // unpacking reads the archive once (populate_rootfs)
  try {
    k.fs = loadInitramfs(bytes);
  } catch (e) {
    if (e instanceof CpioError) return `initramfs ${name}: ${e.message}`;
    throw e;
  }
  let files = 0, bytesIn = 0;
  const walk = (d: Inode): void => {
    for (const i of d.children?.values() ?? []) {
      if (i.children !== null) walk(i);
      else { files++; bytesIn += isReg(i) ? i.data.length : 0; }
    }
  };
  walk(k.fs.root);
  k.log.print(cpu, `initramfs: ${name} unpacked, ${files} files, ${bytesIn} bytes`);
  return null;
}

/** The image of the program at `path` in the file system and its canonical path (/proc/self/exe), or a one-line error. */
export function programFromFs(k: Kernel, path: string): { image: Uint8Array; exe: string } | string {
  const r = k.fs.lookup(path, '/', { pid: 0, exeOf: () => null }, true);
  if (typeof r === 'number') return `${path}: not found in the initramfs (errno ${-r})`;
  if (!isReg(r.inode)) return `${path}: not a regular file in the initramfs`;
  return { image: r.inode.data.slice(), exe: r.path };
}
