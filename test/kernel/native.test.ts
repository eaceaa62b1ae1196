// Differential tests of the LWK against this host's own Linux (issue 5, "Native applications"):
// our static i386 programs (apps/native/) run natively and under `run` must give the same stdout
// byte for byte and the same exit status (128 + the signal number when a signal killed them).
// Natively they get the LWK's fixed environment, so nothing but what identifies the system can
// differ, and the programs print nothing of that by default. Also: the prebuilt programs match
// their sources when this host has the toolchain they were built with.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canRunNatively, CI, NATIVE_DIR, PREBUILT, runNatively, runOnLwk } from './lwk.ts';

const native = canRunNatively();

interface Case { name: string; args?: string[]; input?: string; stderr?: boolean }

const CASES: Case[] = [
  { name: 'hello' },
  { name: 'hello', args: ['3'] },
  { name: 'hello-pie', args: ['4'] },
  { name: 'args', args: ['one', 'two words', '', '--flag=x'] },
  { name: 'heap', args: ['1048576'] },
  { name: 'compute', args: ['300'] },
  { name: 'tls' },
  { name: 'clock' },
  { name: 'upcase', input: 'The quick brown fox\njumps over the lazy dog.\n'.repeat(40), stderr: true },
  { name: 'fault', args: ['segv'] },
  { name: 'fault', args: ['ill'] },
  { name: 'fault', args: ['fpe'] },
  { name: 'fault', args: ['trap'] },
  { name: 'fault', args: ['abort'] },
];

describe.skipIf(!native && !CI)('native programs: the LWK against this host', () => {
  it('this host runs the prebuilt i386 programs (CI requires it)', () => {
    expect(native).toBe(true);
  });
  for (const c of CASES) {
    it(`${c.name} ${(c.args ?? []).map((a) => JSON.stringify(a)).join(' ')}: same stdout and exit status`, () => {
      const n = runNatively(c.name, c.args, c.input);
      const l = runOnLwk(c.name, c.args, { stdin: c.input !== undefined ? Buffer.from(c.input, 'latin1') : undefined });
      expect(l.stdout).toBe(n.stdout);
      expect(l.status).toBe(n.status);
      if (c.stderr) expect(l.stderr).toBe(n.stderr);
      expect(l.run.kernel.unknownSyscalls.size).toBe(0);
    });
  }
});

function toolchain(): string | null {
  const gcc = spawnSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' });
  const ldd = spawnSync('ldd', ['--version'], { encoding: 'utf8' });
  const m32 = spawnSync('gcc', ['-m32', '-print-file-name=libc.a'], { encoding: 'utf8' });
  if (gcc.status !== 0 || ldd.status !== 0 || m32.status !== 0 || !m32.stdout.includes('/')) return null;
  return `gcc ${gcc.stdout.trim()}\nglibc ${ldd.stdout.split('\n')[0].split(' ').pop()}\n`;
}

describe('the prebuilt native programs', () => {
  const have = toolchain();
  const recorded = readFileSync(join(PREBUILT, 'TOOLCHAIN'), 'utf8');
  it.skipIf(have === null && !CI)('gcc -m32 is installed (CI requires it)', () => {
    expect(have).not.toBeNull();
  });
  it.skipIf(have !== recorded)('rebuild byte for byte from their sources with the recorded toolchain', () => {
    const out = mkdtempSync(join(tmpdir(), 'v3vee-native-'));
    try {
      const r = spawnSync('sh', [join(NATIVE_DIR, 'build.sh'), out], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const names = readdirSync(PREBUILT).filter((f) => f !== 'TOOLCHAIN');
      expect(names.length).toBeGreaterThanOrEqual(10);
      for (const f of names) expect(readFileSync(join(out, f)).equals(readFileSync(join(PREBUILT, f))), f).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
