/**
 * The initial process stack, laid out as Linux's exec does (fs/exec.c and fs/binfmt_elf.c
 * create_elf_tables) for an i386 program:
 *
 *   top of the stack region
 *     4 bytes of zero (the end marker)
 *     the program's file name (AT_EXECFN points here)
 *     environment strings, then argument strings (argv[0] lowest)
 *     the platform string "i686" (AT_PLATFORM), then 16 random bytes (AT_RANDOM)
 *     (padding to 16 bytes, so that ESP ends 16-byte aligned)
 *     auxv: (type, value) pairs ending in AT_NULL
 *     envp[]: pointers, NULL
 *     argv[]: pointers, NULL
 *   ESP -> argc
 *
 * The auxiliary vector carries what Linux gives a static program, in Linux's order, without
 * the vDSO entries (AT_SYSINFO, AT_SYSINFO_EHDR: the LWK has no vDSO, so the C library makes
 * its system calls with INT 0x80).
 */
import type { Meter } from '../costs.ts';
import type { AddressSpace } from '../mm/aspace.ts';
import type { LoadedImage } from './elf-loader.ts';

export const AT_NULL = 0, AT_IGNORE = 1, AT_EXECFD = 2, AT_PHDR = 3, AT_PHENT = 4, AT_PHNUM = 5, AT_PAGESZ = 6;
export const AT_BASE = 7, AT_FLAGS = 8, AT_ENTRY = 9, AT_NOTELF = 10, AT_UID = 11, AT_EUID = 12, AT_GID = 13;
export const AT_EGID = 14, AT_PLATFORM = 15, AT_HWCAP = 16, AT_CLKTCK = 17, AT_SECURE = 23, AT_BASE_PLATFORM = 24;
export const AT_RANDOM = 25, AT_HWCAP2 = 26, AT_EXECFN = 31;

/** The fixed values the LWK's processes see. */
export const CLOCK_TICKS = 100; // USER_HZ
export const PLATFORM = 'i686';

export interface StackSpec {
  argv: readonly string[];
  envp: readonly string[];
  /** The name exec was given (AT_EXECFN's string). */
  execfn: string;
  image: LoadedImage;
  /** AT_HWCAP: CPUID leaf 1 EDX of the core. */
  hwcap: number;
  uid: number;
  gid: number;
  /** 16 bytes for AT_RANDOM. */
  random: Uint8Array;
  /** The top of the stack region (exclusive). */
  top: number;
}

export interface BuiltStack {
  /** The initial ESP (pointing at argc). */
  sp: number;
  /** Where each piece went, for tests. */
  argvPtrs: number[];
  envpPtrs: number[];
  auxv: [number, number][];
  randomAddr: number;
  execfnAddr: number;
}

const enc = new TextEncoder();

/** Writes the initial stack into `as` below `spec.top`; throws if it does not fit (EFAULT from copyout). */
export function buildStack(meter: Meter, as: AddressSpace, spec: StackSpec): BuiltStack {
  let p = spec.top;
  const put = (bytes: Uint8Array): number => {
    p -= bytes.length;
    write(meter, as, p, bytes);
    return p;
  };
  const cstr = (s: string): Uint8Array => { const b = enc.encode(s); const o = new Uint8Array(b.length + 1); o.set(b); return o; };
  put(new Uint8Array(4));
  const execfnAddr = put(cstr(spec.execfn));
  const envpPtrs: number[] = [];
  for (let k = spec.envp.length - 1; k >= 0; k--) envpPtrs.unshift(put(cstr(spec.envp[k])));
  const argvPtrs: number[] = [];
  for (let k = spec.argv.length - 1; k >= 0; k--) argvPtrs.unshift(put(cstr(spec.argv[k])));
  p = (p & ~3) >>> 0;
  const platformAddr = put(cstr(PLATFORM));
  p = (p & ~15) >>> 0;
  const randomAddr = put(spec.random.subarray(0, 16));
  const i = spec.image;
  const auxv: [number, number][] = [
    [AT_HWCAP, spec.hwcap >>> 0],
    [AT_PAGESZ, 4096],
    [AT_CLKTCK, CLOCK_TICKS],
    [AT_PHDR, i.phdr],
    [AT_PHENT, i.phent],
    [AT_PHNUM, i.phnum],
    [AT_BASE, 0],
    [AT_FLAGS, 0],
    [AT_ENTRY, i.entry],
    [AT_UID, spec.uid],
    [AT_EUID, spec.uid],
    [AT_GID, spec.gid],
    [AT_EGID, spec.gid],
    [AT_SECURE, 0],
    [AT_RANDOM, randomAddr],
    [AT_EXECFN, execfnAddr],
    [AT_PLATFORM, platformAddr],
    [AT_NULL, 0],
  ];
  const words = 1 + argvPtrs.length + 1 + envpPtrs.length + 1 + auxv.length * 2;
  p = ((p - words * 4) & ~15) >>> 0;
  const sp = p;
  const table = new Uint32Array(words);
  let w = 0;
  table[w++] = spec.argv.length;
  for (const a of argvPtrs) table[w++] = a;
  table[w++] = 0;
  for (const e of envpPtrs) table[w++] = e;
  table[w++] = 0;
  for (const [t, v] of auxv) { table[w++] = t; table[w++] = v >>> 0; }
  write(meter, as, sp, new Uint8Array(table.buffer));
  return { sp, argvPtrs, envpPtrs, auxv, randomAddr, execfnAddr };
}

function write(meter: Meter, as: AddressSpace, va: number, bytes: Uint8Array): void {
  const r = as.copyout(meter, va, bytes);
  if (!r.ok) throw new RangeError(`the initial stack does not fit (at 0x${va.toString(16)})`);
}
