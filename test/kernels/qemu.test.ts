// The test kernels (apps/kernels/) against the reference: each prebuilt image runs under
// qemu-system-i386 and must print its expected output (from its first line) and exit through
// isa-debug-exit with status 1 (= (0 << 1) | 1: every test passed). A second test rebuilds the
// kernels with apps/kernels/build.sh and checks that the committed images are what the sources
// give, when the gcc major version matches the one recorded in prebuilt/TOOLCHAIN.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  EXPECTED_DIR,
  KERNELS_DIR,
  KERNEL_NAMES,
  KERNEL_RUNS,
  PREBUILT_DIR,
  expectedOutput,
  fromMarker,
  kernelPath,
  qemuAvailable,
  runQemu,
} from './kernels.ts';

const CI = process.env.CI === 'true';

describe('test kernels: files', () => {
  it('every kernel has a prebuilt image, a source and an expected output', () => {
    for (const k of KERNEL_NAMES) {
      expect(existsSync(kernelPath(k)), `prebuilt/${k}.elf`).toBe(true);
      expect(existsSync(join(KERNELS_DIR, k, `${k}.c`)), `${k}/${k}.c`).toBe(true);
    }
    for (const r of KERNEL_RUNS) expect(existsSync(join(EXPECTED_DIR, `${r.id}.txt`)), `expected/${r.id}.txt`).toBe(true);
  });

  it('expected outputs start with the marker, end with the summary and report no failure', () => {
    for (const r of KERNEL_RUNS) {
      const text = expectedOutput(r);
      expect(text.startsWith(`== ${r.kernel} ==\n`), r.id).toBe(true);
      expect(text).toMatch(/\n== [a-z]+: (all \d+ passed|done) ==\n$/);
      expect(text).not.toMatch(/FAIL/);
    }
  });

  it('images are 32-bit ELF executables for i386 with a Multiboot header in the first 8 KiB', () => {
    for (const k of KERNEL_NAMES) {
      const b = readFileSync(kernelPath(k));
      expect([...b.subarray(0, 4)], k).toEqual([0x7f, 0x45, 0x4c, 0x46]);
      expect(b[4], 'ELFCLASS32').toBe(1);
      expect(b.readUInt16LE(18), 'EM_386').toBe(3);
      let found = false;
      for (let o = 0; o + 12 <= Math.min(b.length, 8192); o += 4) {
        if (b.readUInt32LE(o) === 0x1badb002 && ((b.readUInt32LE(o) + b.readUInt32LE(o + 4) + b.readUInt32LE(o + 8)) >>> 0) === 0) found = true;
      }
      expect(found, `${k}: multiboot header`).toBe(true);
    }
  });
});

const haveQemu = qemuAvailable();

describe.skipIf(!haveQemu && !CI)('test kernels under QEMU', () => {
  it('qemu-system-i386 is installed (CI requires it)', () => {
    expect(haveQemu, 'qemu-system-i386 not found: install Debian\'s qemu-system-x86').toBe(true);
  });

  for (const run of KERNEL_RUNS) {
    it(`${run.id}: serial output and exit status`, () => {
      const r = runQemu(run);
      const out = fromMarker(r.stdout, run.kernel);
      const context = `status ${r.status} signal ${r.signal}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
      expect(out, `no "== ${run.kernel} ==" line in the output\n${context}`).toBeDefined();
      expect(out, context).toBe(expectedOutput(run));
      expect(r.status, context).toBe(run.status);
    });
  }
});

// ---- rebuild and compare ----

function toolVersion(cmd: string, args: string[]): string | undefined {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.error === undefined && r.status === 0 ? r.stdout.trim() : undefined;
}

/** gcc that can compile freestanding -m32 code, and ld for elf_i386. */
function canBuild(): boolean {
  if (toolVersion('ld', ['-V'])?.includes('elf_i386') !== true) return false;
  const dir = mkdtempSync(join(tmpdir(), 'kcheck-'));
  try {
    writeFileSync(join(dir, 't.c'), 'int f(int x) { return x + 1; }\n');
    const r = spawnSync('gcc', ['-m32', '-ffreestanding', '-c', '-o', join(dir, 't.o'), join(dir, 't.c')]);
    return r.error === undefined && r.status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const recorded = readFileSync(join(PREBUILT_DIR, 'TOOLCHAIN'), 'utf8');
const recordedGccMajor = /^gcc (\d+)\./m.exec(recorded)?.[1];
const buildable = canBuild();
const localGcc = buildable ? toolVersion('gcc', ['-dumpfullversion']) : undefined;
const sameMajor = localGcc !== undefined && localGcc.split('.')[0] === recordedGccMajor;

describe('test kernels: rebuild', () => {
  it.skipIf(!CI)('gcc -m32 and ld are installed (CI requires them)', () => {
    expect(buildable, 'gcc -m32 -ffreestanding or ld -m elf_i386 is missing: install gcc-multilib and binutils').toBe(true);
  });

  it.skipIf(!sameMajor)(`build.sh reproduces the prebuilt images (gcc ${recordedGccMajor})`, () => {
    const out = mkdtempSync(join(tmpdir(), 'kernels-'));
    try {
      const r = spawnSync('sh', [join(KERNELS_DIR, 'build.sh'), out], { encoding: 'utf8' });
      expect(r.status, `build.sh failed:\n${r.stdout}\n${r.stderr}`).toBe(0);
      const built = readdirSync(out).filter((f) => f.endsWith('.elf')).sort();
      expect(built).toEqual(KERNEL_NAMES.map((k) => `${k}.elf`).sort());
      const ld = toolVersion('ld', ['--version'])?.split('\n')[0];
      for (const k of KERNEL_NAMES) {
        const fresh = readFileSync(join(out, `${k}.elf`));
        const committed = readFileSync(kernelPath(k));
        expect(fresh.equals(committed),
          `${k}.elf differs from prebuilt/ (local gcc ${localGcc}, ${ld}; prebuilt/TOOLCHAIN: ${recorded.trim()}): ` +
          'rebuild with `sh apps/kernels/build.sh --prebuilt` and re-check the expected outputs').toBe(true);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
