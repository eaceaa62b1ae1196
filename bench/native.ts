// The native half of the benchmark: builds bench/native-runner.c (gcc -m32, static) into
// bench/build/ at bench time, and runs the flat workload image with it on the host CPU.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root: the nearest folder up from this module holding bench/native-runner.c
 * (this module also runs bundled into bench/build/ for profiling).
 */
export const ROOT = ((): string => {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let k = 0; k < 4; k++, d = dirname(d)) if (existsSync(join(d, 'bench', 'native-runner.c'))) return d;
  throw new Error('cannot find the repository root (bench/native-runner.c)');
})();
const SRC = join(ROOT, 'bench', 'native-runner.c');
const BUILD = join(ROOT, 'bench', 'build');

/** Builds the runner once per source version; returns its path, or why it is unavailable. */
export function buildNativeRunner(): { path: string } | { error: string } {
  const hash = createHash('sha256').update(readFileSync(SRC)).digest('hex').slice(0, 12);
  const out = join(BUILD, `native-runner-${hash}`);
  if (existsSync(out)) return { path: out };
  mkdirSync(BUILD, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  const r = spawnSync('gcc', ['-m32', '-O2', '-static', '-o', tmp, SRC], { encoding: 'utf8' });
  if (r.error) return { error: `gcc not found (${r.error.message})` };
  if (r.status !== 0) return { error: `gcc -m32 failed (install gcc-multilib): ${r.stderr.trim().split('\n')[0]}` };
  renameSync(tmp, out);
  return { path: out };
}

export interface NativeRun {
  checksum: number;
  /** Wall-clock seconds of each run. */
  runs: number[];
  /** CPU seconds of each run. */
  cpuRuns: number[];
}

/** Runs the image natively `repeats` times in one process. */
export function runNativeImage(runner: string, image: string, base: number, repeats: number): NativeRun {
  const r = spawnSync(runner, [image, '0x' + base.toString(16), String(repeats)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`native runner failed (${r.status ?? r.signal}): ${r.stderr.trim()}`);
  let checksum = -1;
  const runs: number[] = [], cpuRuns: number[] = [];
  for (const line of r.stdout.split('\n')) {
    const c = /^checksum 0x([0-9a-f]+)$/.exec(line);
    if (c) checksum = parseInt(c[1], 16);
    const t = /^run ([0-9.]+) ([0-9.]+)$/.exec(line);
    if (t) { runs.push(Number(t[1])); cpuRuns.push(Number(t[2])); }
  }
  if (checksum < 0 || runs.length !== repeats) throw new Error(`native runner printed: ${r.stdout}`);
  return { checksum, runs, cpuRuns };
}
