// Shared machinery of the LWK tests: run a program under the LWK (in this process, through the
// same runLwk() that `v3vee run` uses) or natively on this x86-64 host, which runs static i386
// programs; and build tiny ELF executables from machine code, for tests that need no compiler.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runLwk, type RunResult, type RunSpec } from '../../apps/cli/run.ts';

export const NATIVE_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../apps/native');
export const PREBUILT = join(NATIVE_DIR, 'prebuilt');
export const CI = process.env.CI === 'true';
/** The environment the LWK gives every process (kernel.ts FIXED_ENV), for native runs to match. */
export const FIXED_ENV = { PATH: '/bin:/usr/bin', HOME: '/' };

export function programPath(name: string): string { return join(PREBUILT, name); }

export interface Outcome {
  stdout: string;
  stderr: string;
  status: number;
}

export interface LwkOutcome extends Outcome { run: RunResult; strace: string[]; /** The kernel log (COM1). */ log: string }

class Collect {
  readonly chunks: Uint8Array[] = [];
  write(b: Uint8Array): void { this.chunks.push(b.slice()); }
  text(): string { return Buffer.concat(this.chunks).toString('latin1'); }
}

/** Runs a prebuilt program (or an image) under the LWK. */
export function runOnLwk(name: string, args: readonly string[] = [], o: Partial<RunSpec> & { image?: Uint8Array } = {}): LwkOutcome {
  const out = new Collect(), err = new Collect(), log = new Collect();
  const strace: string[] = [];
  const path = o.path ?? programPath(name);
  const image = o.image ?? new Uint8Array(readFileSync(path));
  const run = runLwk({
    ...o, path, image, args, stdout: out, stderr: err, kernelLog: log,
    strace: o.strace ?? ((l) => strace.push(l)),
  });
  return { stdout: out.text(), stderr: err.text(), status: run.status, run, strace, log: log.text() };
}

/** Runs a prebuilt program natively with the LWK's fixed environment; status 128 + signal when killed. */
export function runNatively(name: string, args: readonly string[] = [], input?: string): Outcome {
  const r = spawnSync(programPath(name), [...args], { env: FIXED_ENV, input: input ?? '', encoding: 'latin1', timeout: 60_000 });
  if (r.error !== undefined) throw r.error;
  const sig = r.signal !== null ? (({ SIGSEGV: 11, SIGILL: 4, SIGFPE: 8, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGKILL: 9 }) as Record<string, number>)[r.signal] : 0;
  return { stdout: r.stdout, stderr: r.stderr, status: r.signal !== null ? 128 + (sig ?? 0) : r.status ?? -1 };
}

let nativeOk: boolean | undefined;
/** True if this host runs the prebuilt i386 programs (an x86 Linux with 32-bit support). */
export function canRunNatively(): boolean {
  if (nativeOk === undefined) {
    const p = programPath('hello');
    const r = existsSync(p) ? spawnSync(p, ['0'], { encoding: 'latin1' }) : null;
    nativeOk = r !== null && r.error === undefined && r.status === 0 && r.stdout.startsWith('hello, world');
  }
  return nativeOk;
}

// ---------------------------------------------------------------------------- tiny ELF images

/** Where tinyElf puts the first code byte (the entry point) and the data. */
export const TINY_CODE = 0x08048100;
export const TINY_DATA = 0x08049000;

/**
 * A static ET_EXEC image at 0x08048000: one PT_LOAD (read+execute) holding the headers and
 * `code` (at TINY_CODE, the entry; at most 3,840 bytes), and, if given, a PT_LOAD of `data`
 * (read+write, plus `bss` zero bytes) at TINY_DATA. `interp` adds a PT_INTERP (a dynamically
 * linked program); `type` 3 makes it ET_DYN.
 */
export function tinyElf(code: Uint8Array, o: { data?: Uint8Array; bss?: number; type?: number; interp?: boolean } = {}): Uint8Array {
  const base = 0x08048000;
  if (code.length > 0xf00) throw new RangeError('tinyElf: code too long');
  const data = o.data ?? new Uint8Array(0);
  const hasData = o.data !== undefined || (o.bss ?? 0) > 0;
  const phnum = 1 + (hasData ? 1 : 0) + (o.interp ? 1 : 0);
  const b = new Uint8Array(hasData ? 0x1000 + data.length : 0x100 + code.length);
  const dv = new DataView(b.buffer);
  b.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1, 0]);
  dv.setUint16(16, o.type ?? 2, true);
  dv.setUint16(18, 3, true);
  dv.setUint32(20, 1, true);
  dv.setUint32(24, TINY_CODE, true);
  dv.setUint32(28, 52, true);
  dv.setUint16(40, 52, true);
  dv.setUint16(42, 32, true);
  dv.setUint16(44, phnum, true);
  let ph = 52;
  const phdr = (type: number, off: number, va: number, filesz: number, memsz: number, flags: number) => {
    dv.setUint32(ph, type, true); dv.setUint32(ph + 4, off, true); dv.setUint32(ph + 8, va, true); dv.setUint32(ph + 12, va, true);
    dv.setUint32(ph + 16, filesz, true); dv.setUint32(ph + 20, memsz, true); dv.setUint32(ph + 24, flags, true); dv.setUint32(ph + 28, 4096, true);
    ph += 32;
  };
  phdr(1, 0, base, 0x100 + code.length, 0x100 + code.length, 5);
  if (hasData) phdr(1, 0x1000, TINY_DATA, data.length, data.length + (o.bss ?? 0), 6);
  if (o.interp) phdr(3, 0, base, 0, 0, 4);
  b.set(code, 0x100);
  if (hasData) b.set(data, 0x1000);
  return b;
}

/** A few i386 encodings for hand-written test programs. */
export const X = {
  movEax: (v: number) => [0xb8, ...le32(v)],
  movEcx: (v: number) => [0xb9, ...le32(v)],
  movEdx: (v: number) => [0xba, ...le32(v)],
  movEbx: (v: number) => [0xbb, ...le32(v)],
  movEsi: (v: number) => [0xbe, ...le32(v)],
  movEdi: (v: number) => [0xbf, ...le32(v)],
  int80: [0xcd, 0x80],
  /** exit_group(EBX) */
  exitWithEbx: [0xb8, ...le32(252), 0xcd, 0x80],
  /** exit_group(EAX & 0xff) */
  exitWithEax: [0x89, 0xc3, 0xb8, ...le32(252), 0xcd, 0x80],
  /** exit_group(v) */
  exit: (v: number) => [0xbb, ...le32(v), 0xb8, ...le32(252), 0xcd, 0x80],
  /** EAX = syscall(nr, ebx, ecx, edx) */
  sys: (nr: number, ebx = 0, ecx = 0, edx = 0) => [0xbb, ...le32(ebx), 0xb9, ...le32(ecx), 0xba, ...le32(edx), 0xb8, ...le32(nr), 0xcd, 0x80],
};

export function le32(v: number): number[] { return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff]; }

/** Runs a hand-made image under the LWK. */
export function runImage(image: Uint8Array, args: readonly string[] = [], o: Partial<RunSpec> = {}): LwkOutcome {
  return runOnLwk('', args, { ...o, path: o.path ?? '/tiny', image });
}
