// The native side of the differential CPU tests: runs i386 code snippets on the host CPU
// (a static 32-bit Linux process, test/native/harness.c) and returns the state they leave.
// One spawn of the harness runs a whole batch; see test/native/README.md for the protocol.

import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const CODE_BASE = 0x10000000; // test code is placed here (mmap MAP_FIXED, RWX, 64 KiB)
export const DATA_BASE = 0x20000000; // data region
export const DATA_SIZE = 0x2000; // 8 KiB of data, unmapped guard pages on both sides
export const CODE_SIZE = 0x10000; // the code region; code may modify itself within it
export const MAX_CODE_LEN = CODE_SIZE - 2; // room for the end marker (UD2)

/** Linux signal numbers the harness reports. */
export const SIG = {
  NONE: 0,
  ILL: 4,
  TRAP: 5,
  BUS: 7,
  FPE: 8,
  SEGV: 11,
  ALRM: 14, // timeout (the case ran for 40..50 ms of CPU time)
  SYS: 31, // a system call from test code (INT 0x80, SYSCALL), blocked by seccomp
} as const;

export interface NativeCase {
  code: Uint8Array;
  /** 8 u32: eax, ecx, edx, ebx, esp, ebp, esi, edi */
  regs: number[];
  /** only CF PF AF ZF SF OF DF are taken from it */
  eflags: number;
  /** DATA_SIZE bytes, loaded at DATA_BASE */
  data: Uint8Array;
}

export interface NativeResult {
  /** 0 = ran to the end; else the Linux signal number (SIGALRM 14 for a timeout) */
  signal: number;
  /** EIP in the signal context, absolute; 0 if no signal */
  faultEip: number;
  /** uc_mcontext TRAPNO (the CPU vector); 0xffffffff (-1) if none */
  trapno: number;
  /** uc_mcontext ERR (the CPU error code) */
  err: number;
  /** 8 u32: eax, ecx, edx, ebx, esp, ebp, esi, edi, at the end or at the fault */
  regs: number[];
  /** full EFLAGS at the end or at the fault, RF cleared */
  eflags: number;
  /** the data region afterwards, DATA_SIZE bytes */
  data: Uint8Array;
}

const MAGIC = 0x43543356;
const HEADER_BYTES = 11 * 4;
const RESULT_BYTES = 13 * 4 + DATA_SIZE;
const GCC_ARGS = ['-m32', '-O1', '-static'];

const HERE = dirname(fileURLToPath(import.meta.url));
const SOURCE = join(HERE, 'harness.c');
const BUILD_DIR = join(HERE, 'build');

let builtPath: string | undefined;
let available: boolean | undefined;

/** Compiles the harness once (cached by a hash of the source and flags) and returns its path. */
export function buildNativeHarness(): string {
  if (builtPath !== undefined && existsSync(builtPath)) return builtPath;
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(GCC_ARGS.join(' ')).update('\0').update(source).digest('hex').slice(0, 16);
  const out = join(BUILD_DIR, `harness-${hash}`);
  if (!existsSync(out)) {
    mkdirSync(BUILD_DIR, { recursive: true });
    // Build under a private name and rename: parallel test workers may race here.
    const tmp = join(BUILD_DIR, `.harness-${hash}-${process.pid}.tmp`);
    const r = spawnSync('gcc', [...GCC_ARGS, '-o', tmp, SOURCE], { encoding: 'utf8' });
    if (r.error !== undefined || r.status !== 0) {
      rmSync(tmp, { force: true });
      const why = r.error !== undefined ? r.error.message : `${r.stderr}${r.stdout}`.trim();
      throw new Error(`cannot build the native harness (gcc ${GCC_ARGS.join(' ')}): ${why}`);
    }
    renameSync(tmp, out);
    // Drop binaries of older sources (best effort; a running one is unaffected on Linux).
    for (const f of readdirSync(BUILD_DIR)) {
      if (/^harness-[0-9a-f]{16}$/.test(f) && join(BUILD_DIR, f) !== out) rmSync(join(BUILD_DIR, f), { force: true });
    }
  }
  builtPath = out;
  return out;
}

/** True if this host can build and run the harness (x86 Linux with gcc -m32 and a 32-bit libc). */
export function nativeAvailable(): boolean {
  if (available === undefined) {
    if (process.platform !== 'linux' || (process.arch !== 'x64' && process.arch !== 'ia32')) {
      available = false;
    } else {
      try {
        buildNativeHarness();
        available = true;
      } catch {
        available = false;
      }
    }
  }
  return available;
}

function checkCase(c: NativeCase, i: number): void {
  if (c.code.length > MAX_CODE_LEN) throw new Error(`native case ${i}: code is ${c.code.length} bytes, max ${MAX_CODE_LEN}`);
  if (c.regs.length !== 8) throw new Error(`native case ${i}: regs has ${c.regs.length} entries, need 8`);
  if (c.data.length !== DATA_SIZE) throw new Error(`native case ${i}: data is ${c.data.length} bytes, need ${DATA_SIZE}`);
}

function encode(cases: NativeCase[]): Buffer {
  let size = 0;
  for (const c of cases) size += HEADER_BYTES + c.code.length + DATA_SIZE;
  const buf = Buffer.allocUnsafe(size); // every byte is written below
  let at = 0;
  for (const c of cases) {
    buf.writeUInt32LE(MAGIC, at);
    buf.writeUInt32LE(c.code.length, at + 4);
    for (let r = 0; r < 8; r++) buf.writeUInt32LE(c.regs[r]! >>> 0, at + 8 + r * 4);
    buf.writeUInt32LE(c.eflags >>> 0, at + 40);
    at += HEADER_BYTES;
    buf.set(c.code, at);
    at += c.code.length;
    buf.set(c.data, at);
    at += DATA_SIZE;
  }
  return buf;
}

function decode(out: Buffer, count: number): NativeResult[] {
  const results: NativeResult[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * RESULT_BYTES;
    const word = (k: number): number => out.readUInt32LE(at + k * 4);
    results.push({
      signal: word(0),
      faultEip: word(1),
      trapno: word(2),
      err: word(3),
      regs: [word(4), word(5), word(6), word(7), word(8), word(9), word(10), word(11)],
      eflags: word(12),
      data: new Uint8Array(out.subarray(at + 52, at + RESULT_BYTES)),
    });
  }
  return results;
}

// A batch is one spawn up to this many cases; bigger ones are split, to bound the memory
// spawnSync needs (each case moves ~16 KiB: 8,192 cases are ~135 MB in and out).
const CASES_PER_SPAWN = 8192;

/**
 * Runs a batch of cases and returns the results in case order: one spawn of the harness
 * for up to 8,192 cases (bigger batches are split). Throws if the harness cannot be built,
 * or if it dies (no case should be able to make it), naming the case it was running.
 */
export function runNative(cases: NativeCase[]): NativeResult[] {
  cases.forEach(checkCase);
  const results: NativeResult[] = [];
  for (let first = 0; first < cases.length; first += CASES_PER_SPAWN) {
    for (const r of runBatch(cases.slice(first, first + CASES_PER_SPAWN), first)) results.push(r);
  }
  return results;
}

function spawnHarness(cases: NativeCase[]): SpawnSyncReturns<Buffer> {
  return spawnSync(buildNativeHarness(), [], {
    input: encode(cases),
    maxBuffer: cases.length * RESULT_BYTES + (1 << 20),
    timeout: 30_000 + cases.length * 100,
  });
}

function failed(r: SpawnSyncReturns<Buffer>, count: number): boolean {
  return r.error !== undefined || r.status !== 0 || r.stdout.length !== count * RESULT_BYTES;
}

function runBatch(cases: NativeCase[], first: number): NativeResult[] {
  const r = spawnHarness(cases);
  if (!failed(r, cases.length)) return decode(r.stdout, cases.length);
  // The harness buffers its output, so find the case that killed it: the shortest failing
  // prefix (a few more spawns, only on this path).
  let lo = 0; // cases[0, lo) run fine
  let hi = cases.length; // cases[0, hi) fail
  let last = r;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    const m = spawnHarness(cases.slice(0, mid));
    if (failed(m, mid)) {
      hi = mid;
      last = m;
    } else {
      lo = mid;
    }
  }
  const how =
    last.error !== undefined
      ? last.error.message
      : last.signal !== null
        ? `killed by ${last.signal}`
        : `exit status ${last.status}`;
  const stderr = last.stderr.toString().trim();
  const code = Buffer.from(cases[hi - 1]!.code).toString('hex');
  throw new Error(
    `native harness failed at case ${first + hi - 1} (code ${code}): ${how}${stderr === '' ? '' : `: ${stderr}`}`,
  );
}
