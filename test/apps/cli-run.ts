// Helpers for the CLI tests: run `v3vee` as a child process (through tsx, as `npm start` does),
// and byte sinks that capture what the machine writes.
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ByteSink } from '../../hw/devices/types.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = join(ROOT, 'apps/cli/main.ts');

export interface CliResult { status: number | null; stdout: string; stderr: string }

/** Runs the CLI with `args` in `cwd` (stdin empty). */
export function cli(args: readonly string[], cwd = ROOT, env: Record<string, string> = {}): CliResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', MAIN, ...args], {
    cwd, encoding: 'latin1', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env }, timeout: 120_000,
  });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export class Capture implements ByteSink {
  readonly bytes: number[] = [];
  write(b: Uint8Array): void { for (const x of b) this.bytes.push(x); }
  text(): string { return Buffer.from(this.bytes).toString('latin1'); }
}
