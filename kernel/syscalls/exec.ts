/**
 * execve: the calling process runs a new program (Linux fs/exec.c).
 *
 * The program is found, in this order:
 *   - /proc/self/exe, /proc/thread-self/exe, /proc/<own pid>/exe: the process's own program
 *     again (its bytes are kept with the process, so this works without any file system);
 *   - the file system (kernel/fs/: the initramfs), relative to the working directory,
 *     symbolic links followed; a directory is EACCES, a file without execute permission EACCES;
 *   - the process's own program path, and the boot modules by name (the programs `run` was
 *     given), when the file system does not have the path.
 * A file starting with "#!" runs its interpreter (binfmt_script: "#!interp [one arg]", the
 * script's path then the original arguments after argv[0]; at most 4 levels).
 *
 * Until the new image is loaded nothing changes: a bad image (ENOEXEC), a missing file or no
 * memory fails the call and the old program continues. Then, past the point of no return:
 * the other threads of the process end (threads running on other cores leave at their core's
 * next trap), the new address space replaces the old (mapped up front from contiguous memory,
 * with argv, envp and the auxiliary vector as at the first start), descriptors marked
 * close-on-exec are closed, handled signals go back to SIG_DFL (ignored ones stay ignored; the
 * mask and pending signals stay), the TLS slots and CLONE_CHILD_CLEARTID are cleared, and a
 * vfork parent goes on. The calling thread takes the process's pid as its tid. It returns to
 * the new program's entry with every general register 0.
 */
import { isDir, isReg } from '../fs/vfs.ts';
import type { Kernel } from '../kernel.ts';
import { EMPTY } from '../gdt.ts';
import { ExecError } from '../proc/elf-loader.ts';
import { resetHandlersOnExec } from '../proc/signals.ts';
import { loadUserContext, startContext } from '../sched/context.ts';
import { charge } from '../costs.ts';
import { E } from './errno.ts';
import { lookupPath } from './fs.ts';
import { errno, type SysCtx, type SyscallDef } from './types.ts';

const AT_FDCWD = -100;
/** Linux's limits: one argument or environment string (MAX_ARG_STRLEN) and all of them together. */
const MAX_ARG_STRLEN = 131072, MAX_ARG_TOTAL = 2 << 20, MAX_ARGS = 0x7fffffff;
const MAX_INTERP_DEPTH = 4;
const latin1 = new TextDecoder('latin1');

/** A NULL-terminated array of string pointers from user memory, or a negative errno. */
function userStrings(c: SysCtx, addr: number): string[] | number {
  const out: string[] = [];
  if (addr === 0) return out; // Linux takes a NULL argv or envp as empty
  let total = 0;
  for (let i = 0; i < MAX_ARGS; i++) {
    const p = c.proc.aspace.copyin(c.cpu, (addr + i * 4) >>> 0, 4);
    if (!p.ok) return errno(p.error);
    const ptr = new DataView(p.value.buffer).getUint32(0, true);
    if (ptr === 0) break;
    const s = c.proc.aspace.copyinString(c.cpu, ptr, MAX_ARG_STRLEN);
    if (!s.ok) return s.error === 'ENAMETOOLONG' ? -E.E2BIG : errno(s.error);
    total += s.value.length + 1 + 4;
    if (total > MAX_ARG_TOTAL) return -E.E2BIG;
    out.push(latin1.decode(s.value));
  }
  return out;
}

export interface Program {
  image: Uint8Array;
  /** The canonical path (what /proc/self/exe names afterwards). */
  exe: string;
}

/** Finds the program `path` names for the calling process: its bytes and canonical path, or a negative errno. */
export function findProgram(c: SysCtx, path: string): Program | number {
  const proc = c.proc;
  if (path === '/proc/self/exe' || path === '/proc/thread-self/exe' || path === `/proc/${proc.pid}/exe`) {
    return { image: proc.image, exe: proc.exe };
  }
  const found = lookupPath(c, AT_FDCWD, path, true);
  if (typeof found !== 'number') {
    if (isDir(found.inode) || !isReg(found.inode)) return -E.EACCES;
    if ((found.inode.mode & 0o111) === 0) return -E.EACCES;
    return { image: found.inode.data, exe: found.path };
  }
  if (found !== -E.ENOENT) return found;
  return bootProgram(c.k, path, proc.exe, proc.image) ?? -E.ENOENT;
}

/** The process's own program by its path, or a boot module by name (with or without a leading '/'). */
function bootProgram(k: Kernel, path: string, ownExe: string, ownImage: Uint8Array): Program | null {
  const abs = path.startsWith('/') ? path : `/${path.replace(/^(\.\/)+/, '')}`;
  if (abs === ownExe && ownImage.length > 0) return { image: ownImage, exe: ownExe };
  for (const m of k.info.modules) {
    const mabs = m.name.startsWith('/') ? m.name : `/${m.name.replace(/^(\.\/)+/, '')}`;
    if (mabs === abs) return { image: k.mem.u8.slice(m.base, m.base + m.size), exe: mabs };
  }
  return null;
}

/** "#!interp arg" of a script, or null when the image is not one. */
function shebang(image: Uint8Array): { interp: string; arg: string | null } | null {
  if (image.length < 2 || image[0] !== 0x23 || image[1] !== 0x21) return null;
  let end = image.indexOf(0x0a);
  if (end < 0) end = Math.min(image.length, 256);
  const line = latin1.decode(image.subarray(2, end)).replace(/\s+$/, '').replace(/^[ \t]+/, '');
  if (line === '') return null;
  const sp = line.search(/[ \t]/);
  if (sp < 0) return { interp: line, arg: null };
  const arg = line.slice(sp).trim();
  return { interp: line.slice(0, sp), arg: arg === '' ? null : arg };
}

function execve(c: SysCtx): number {
  const k = c.k, proc = c.proc;
  const p = proc.aspace.copyinString(c.cpu, c.a[0], 4096);
  if (!p.ok) return errno(p.error);
  let filename = latin1.decode(p.value);
  if (filename === '') return -E.ENOENT;
  const argv = userStrings(c, c.a[1]);
  if (typeof argv === 'number') return argv;
  const envp = userStrings(c, c.a[2]);
  if (typeof envp === 'number') return envp;

  charge(c.cpu, 'elfLoadBase');
  let prog = findProgram(c, filename);
  let args = argv;
  for (let depth = 0; typeof prog !== 'number'; depth++) {
    const s = shebang(prog.image);
    if (s === null) break;
    if (depth >= MAX_INTERP_DEPTH) return -E.ELOOP;
    args = [s.interp, ...(s.arg !== null ? [s.arg] : []), filename, ...args.slice(1)];
    filename = s.interp;
    prog = findProgram(c, filename);
  }
  if (typeof prog === 'number') return prog;

  let loaded: ReturnType<Kernel['loadProgram']>;
  try {
    loaded = k.loadProgram(c.cpu, prog.image, filename, args, envp, c.core);
  } catch (e) {
    if (e instanceof ExecError) return -e.errno;
    if (e instanceof RangeError) return -E.ENOMEM;
    throw e;
  }

  // ---- the point of no return
  const me = c.thread;
  for (const t of [...proc.threads]) {
    if (t === me) continue;
    t.clearChildTid = 0; // its word is in the old program's memory: nobody waits on it after the exec
    k.sched.kill(c.cpu, t);
  }
  me.tid = proc.pid;
  me.clearChildTid = 0;
  const old = proc.aspace;
  proc.aspace = loaded.as;
  k.retainAspace(loaded.as);
  const ctx = me.user!;
  const fresh = startContext(loaded.entry, loaded.sp);
  ctx.regs.set(fresh.regs);
  ctx.eip = fresh.eip;
  ctx.eflags = fresh.eflags;
  ctx.sel.set(fresh.sel);
  for (let i = 0; i < ctx.tls.length; i++) ctx.tls[i] = EMPTY;
  loadUserContext(c.cpu, ctx, k.percpu[c.core].gdt, proc.cr3);
  if (proc.threads.some((t) => t.killed)) proc.staleAspaces.push(old); // still loaded on another core
  else k.releaseAspace(c.cpu, old);
  proc.files.closeOnExec();
  resetHandlersOnExec(proc);
  proc.exe = prog.exe;
  proc.argv = args;
  proc.image = prog.image;
  proc.comm = filename.slice(filename.lastIndexOf('/') + 1).slice(0, 15);
  proc.robustList = 0;
  proc.robustListLen = 0;
  k.releaseVforkParent(c.cpu, proc);
  return 0; // EAX of the new program (every register starts at 0)
}

export const execCalls: Record<string, SyscallDef> = {
  execve: { name: 'execve', args: 'spp', fn: execve },
};
