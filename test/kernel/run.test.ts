// `v3vee run` as a command (issue 5, "CLI"): stdout carries only the program's bytes, the exit
// status is the program's, the kernel log appears on stderr only with --verbose, --strace and
// --stats go to stderr, and a missing or malformed ELF exits 2 with one line naming the problem.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { programPath, tinyElf, X } from './lwk.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const TMP = mkdtempSync(join(tmpdir(), 'v3vee-run-'));
afterAll(() => rmSync(TMP, { recursive: true, force: true }));

function v3vee(args: string[], input = '') {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'apps/cli/main.ts'), ...args], { cwd: ROOT, input, encoding: 'latin1', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('v3vee run', () => {
  it('stdout is the program\'s, the exit status its own, stderr quiet without --verbose', () => {
    const r = v3vee(['run', programPath('hello'), '9']);
    expect(r.stdout).toBe('hello, world\nwritten by write(2)\n');
    expect(r.status).toBe(9);
    expect(r.stderr).toBe('');
  });

  it('--verbose shows the kernel\'s boot log on stderr, never on stdout; stdin reaches the program', () => {
    const r = v3vee(['run', '--verbose', '--cores', '2', programPath('upcase')], 'abc\n');
    expect(r.stdout).toBe('ABC\n');
    expect(r.status).toBe(0);
    expect(r.stderr).toMatch(/v3vee LWK: booting on 2 cores/);
    expect(r.stderr).toMatch(/memory: 128\.0 MiB RAM/);
    expect(r.stderr).toMatch(/timer: local APIC in TSC-deadline mode/);
    expect(r.stderr).toMatch(/core 1: online/);
    expect(r.stderr).toMatch(/upcase: 4 bytes/);
  });

  it('a signal ends it with 128 + the signal number', () => {
    expect(v3vee(['run', programPath('fault'), 'segv']).status).toBe(139);
  });

  it('--strace and --stats write to stderr', () => {
    const r = v3vee(['run', '--strace', '--stats', programPath('hello')]);
    expect(r.stdout).toBe('hello, world\nwritten by write(2)\n');
    expect(r.stderr).toMatch(/^write\(1, "hello, world\\n", 13\) = 13$/m);
    expect(r.stderr).toMatch(/^v3vee: core 0: interruptions 0 /m);
    expect(r.stderr).toMatch(/^v3vee: core 0: {3}write: 2 \(\d+ cycles\)$/m);
  });

  it('--stats counts the signals delivered on each core, with their cycles', () => {
    const r = v3vee(['run', '--stats', programPath('signals'), 'handler']);
    expect(r.status).toBe(0);
    const m = /^v3vee: core 0: syscalls \d+ \(\d+ cycles\), interrupts \d+ \(\d+ cycles\), exceptions \d+, signals (\d+) \((\d+) cycles\)$/m.exec(r.stderr);
    expect(m).not.toBeNull();
    const ran = /^after kill: (\d+)$/m.exec(r.stdout); // every SIGUSR1 the program raised or sent, each run by its handler
    expect(ran).not.toBeNull();
    expect(Number(m![1])).toBe(Number(ran![1]));
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(r.stderr).toMatch(new RegExp(`^v3vee: core 0: {3}SIGUSR1 delivered: ${ran![1]} \\(\\d+ cycles\\)$`, 'm'));
  });

  it('a malformed ELF exits 2 with one line naming the problem', () => {
    const trunc = join(TMP, 'truncated');
    writeFileSync(trunc, tinyElf(Uint8Array.from(X.exit(0))).subarray(0, 60));
    const r = v3vee(['run', trunc]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(`v3vee: ${trunc}: program headers extend past the end of the file\n`);
    const text = join(TMP, 'text');
    writeFileSync(text, 'echo hi\n');
    const t = v3vee(['run', text]);
    expect([t.status, t.stderr]).toEqual([2, `v3vee: ${text} is not an ELF file (bad magic)\n`]);
    const dyn = join(TMP, 'dyn');
    writeFileSync(dyn, tinyElf(Uint8Array.from(X.exit(0)), { interp: true }));
    const d = v3vee(['run', dyn]);
    expect(d.status).toBe(2);
    expect(d.stderr.split('\n')).toHaveLength(2);
    expect(d.stderr).toMatch(/dynamically linked/);
  });

  it('a missing program or a bad option exits 2 with one line', () => {
    const m = v3vee(['run', join(TMP, 'nothing-here')]);
    expect([m.status, m.stderr]).toEqual([2, `v3vee: cannot read program '${join(TMP, 'nothing-here')}' (ENOENT)\n`]);
    expect(v3vee(['run', '--profile', 'rt', programPath('hello')]).status).toBe(2);
    expect(v3vee(['run']).status).toBe(2);
  });

  it('--max-cycles ends a run with 124', () => {
    const r = v3vee(['run', '--max-cycles', '3000000', programPath('compute'), '100000']);
    expect(r.status).toBe(124);
    expect(r.stderr).toMatch(/--max-cycles 3000000 reached/);
  });
});
