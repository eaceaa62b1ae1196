// `v3vee vm`: the LWK boots, creates the VM through the VMM library on its host interface and
// runs it. Each test kernel gives exactly QEMU's serial output (apps/kernels/expected/) on stdout
// and bare's exit status under each paging mode the build offers; a bad config, an unreadable
// kernel, a triple-faulting guest and the cycle watchdog give DESIGN.md's statuses with one line.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadVmSpec, runVm } from '../../apps/cli/vm.ts';
import { UsageError } from '../../apps/cli/options.ts';
import { pagingModeNames } from '../../vmm/index.ts';
import { expectedOutput, fromMarker, KERNEL_RUNS, PREBUILT_DIR } from '../kernels/kernels.ts';
import { PENDING } from '../vmm/kernel-runs.ts';
import { Capture, cli } from './cli-run.ts';

/** Runs a prebuilt kernel as `vm` does from apps/kernels/prebuilt (so its command line is QEMU's). */
function vmRun(kernel: string, paging: string, cmdline?: string, maxCycles = 20e9) {
  const { config, files } = loadVmSpec(`${kernel}.elf`, { paging, cmdline }, PREBUILT_DIR);
  const out = new Capture(), err = new Capture();
  const r = runVm({ config, files, stdout: out, stderr: err, maxCycles });
  return { ...r, out: out.text(), err: err.text() };
}

/** A flat guest: bytes at 0x100000, entered there in flat 32-bit protected mode, paging off. */
function flatConfig(name: string, bytes: number[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'v3vee-vm-'));
  writeFileSync(join(dir, `${name}.bin`), Uint8Array.from(bytes));
  writeFileSync(join(dir, `${name}.json`), JSON.stringify({ name, memory: '4M', kernel: { path: `${name}.bin`, format: 'flat' } }));
  return join(dir, `${name}.json`);
}

// lidt [0x100010] (a zero-limit IDT); int3 -> #GP -> #DF -> triple fault
const TRIPLE_FAULT = [0x0f, 0x01, 0x1d, 0x10, 0x00, 0x10, 0x00, 0xcc, 0xb0, 0x03, 0xe6, 0xf4, 0xf4, 0xf4, 0xf4, 0xf4, 0, 0, 0, 0, 0, 0];

const MODES = ['nested', 'hashed', ...pagingModeNames().filter((m) => m === 'shadow' || m === 'shadow-cache')];

describe('vm KERNEL: the test kernels under the LWK and the VMM', () => {
  for (const mode of MODES) {
    for (const run of KERNEL_RUNS) {
      const pending = PENDING[`${run.kernel}/${mode}`];
      (pending !== undefined ? it.skip : it)(`${run.id} under ${mode} paging: QEMU's output on stdout, bare's exit status${pending ? ` (pending: ${pending})` : ''}`, () => {
        const r = vmRun(run.kernel, mode, run.append);
        expect(fromMarker(r.out, run.kernel) ?? r.out).toBe(expectedOutput(run));
        expect(r.out.startsWith(`== ${run.kernel} ==\n`)).toBe(true); // nothing but the guest on stdout
        expect(r.status).toBe(run.status);
        expect(r.message).toBeNull();
        expect(r.err).toBe('');
      });
    }
  }

  it('the CLI: stdout is exactly the guest COM1, exit status (v << 1) | 1, stderr quiet without --verbose', () => {
    const r = cli(['vm', 'hello.elf'], PREBUILT_DIR);
    expect(r.stdout).toBe(expectedOutput(KERNEL_RUNS.find((k) => k.id === 'hello')!));
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('');
    const v = cli(['vm', '--verbose', '--stats', '--paging', 'hashed', '--cmdline', 'console=ttyS0 greeting=hi', 'hello.elf'], PREBUILT_DIR);
    expect(v.stdout).toBe(expectedOutput(KERNEL_RUNS.find((k) => k.id === 'hello-append')!));
    expect(v.status).toBe(1);
    expect(v.stderr).toMatch(/v3vee LWK: booting on 1 core/); // the boot log, with --verbose only
    expect(v.stderr).toMatch(/hello: vm: \d+ exits/); // formatStats
    expect(v.stderr).toMatch(/IOIO +\d+ exits/);
    expect(v.stderr).toMatch(/lwk: core 0: interruptions \d+/); // the LWK's noise accounting
  });

  it('a triple-faulting guest: status 126 and one line with the reason and the guest EIP', () => {
    const r = cli(['vm', flatConfig('tf', TRIPLE_FAULT)]);
    expect(r.status).toBe(126);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^v3vee: vm tf: .*triple fault.*guest eip 0x0010000[0-9a-f]/);
  });

  it('a bad config: status 2 and one line naming the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'v3vee-vm-'));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ kernel: 'hello.elf', memory: '3000K', paging: 'hashed' }));
    const r = cli(['vm', bad]);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^v3vee: .*bad\.json: config: memory: .*multiple of 1 MiB/);
    // the same through loadVmSpec, for fields of every kind
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ kernel: 'hello.elf', paging: 'sideways' }, /config: paging: unknown mode "sideways"/],
      [{ kernel: 'hello.elf', devices: ['uart16550', 'warp-drive'] }, /config: devices\[1\]\.name: no device "warp-drive"/],
      [{ kernel: 'hello.elf', cores: 0 }, /config: cores: /],
      [{ memory: '16M' }, /config: kernel: missing/],
      [{ kernel: 'hello.elf', colour: 'blue' }, /config: colour: unknown field/],
      [{ kernel: 'nothere.elf' }, /cannot read kernel 'nothere\.elf' named in .*bad\.json \(ENOENT\)/],
    ];
    for (const [json, msg] of cases) {
      writeFileSync(bad, JSON.stringify(json));
      expect(() => loadVmSpec(bad), JSON.stringify(json)).toThrow(UsageError);
      expect(() => loadVmSpec(bad)).toThrow(msg);
    }
    writeFileSync(bad, '{ "kernel": ');
    expect(() => loadVmSpec(bad)).toThrow(/bad\.json: not valid JSON/);
    // flags override the config's fields (and are checked the same way)
    writeFileSync(bad, JSON.stringify({ kernel: 'hello.elf', memory: '3000K' }));
    expect(() => loadVmSpec(bad, { memory: 8 << 20 })).toThrow(/cannot read kernel/); // memory now valid: the next problem is the file
  });

  it('paths in a config are relative to the config file; flags override its fields', () => {
    const dir = mkdtempSync(join(tmpdir(), 'v3vee-vm-'));
    const cfg = join(dir, 'hello.json');
    writeFileSync(cfg, JSON.stringify({ name: 'cfg', memory: '8M', paging: 'hashed', kernel: { path: `${PREBUILT_DIR}/../prebuilt/hello.elf` }, cmdline: 'a=b' }));
    const s = loadVmSpec(cfg, { paging: 'nested', cmdline: 'console=ttyS0 greeting=hi' });
    expect(s.config.paging).toEqual({ mode: 'nested', format: 'long' });
    expect(s.config.memory).toBe(8 << 20);
    expect(s.config.cmdline).toBe('console=ttyS0 greeting=hi');
    // a relative KERNEL: resolved from the working directory, named as written
    const rel = loadVmSpec('../prebuilt/hello.elf', {}, PREBUILT_DIR);
    expect(Object.keys(rel.files)).toEqual(['../prebuilt/hello.elf']);
    expect(rel.files['../prebuilt/hello.elf'].length).toBeGreaterThan(1000);
    // a config elsewhere naming a relative path: resolved from the config's directory
    writeFileSync(join(dir, 'k.bin'), Uint8Array.of(0xb0, 0x02, 0xe6, 0xf4));
    writeFileSync(join(dir, 'flat.json'), JSON.stringify({ memory: '4M', kernel: { path: 'k.bin', format: 'flat' } }));
    const flat = loadVmSpec(join(dir, 'flat.json'));
    expect([...flat.files['k.bin']]).toEqual([0xb0, 0x02, 0xe6, 0xf4]);
    expect(runVm({ config: flat.config, files: flat.files, stdout: new Capture(), stderr: new Capture() }).status).toBe(5); // out 0xf4 of 2
    const out = new Capture();
    const r = runVm({ config: s.config, files: s.files, stdout: out, stderr: new Capture() });
    expect(r.status).toBe(1);
    expect(out.text()).toContain('cmdline: "' + `${PREBUILT_DIR}/../prebuilt/hello.elf` + ' console=ttyS0 greeting=hi"');
  });

  it('--max-cycles ends a run with 124; a VM that cannot be created is status 2', () => {
    const r = vmRun('interrupts', 'nested', undefined, 2_000_000);
    expect(r.status).toBe(124);
    expect(r.message).toMatch(/--max-cycles 2000000 reached \(vm interrupts running, guest eip 0x/);
    const { config } = loadVmSpec('hello.elf', {}, PREBUILT_DIR);
    const c = runVm({ config, files: { 'hello.elf': new Uint8Array(64) }, stdout: new Capture(), stderr: new Capture() });
    expect(c.status).toBe(2);
    expect(c.message).toMatch(/^kernel hello\.elf: /);
    // the machine holds the guest and the LWK: a guest too large for that is refused up front
    const big = loadVmSpec('hello.elf', { memory: 3 * 2 ** 30 }, PREBUILT_DIR);
    expect(() => runVm({ config: big.config, files: big.files, stdout: new Capture(), stderr: new Capture() })).toThrow(/3072 MiB of guest memory plus the LWK's 32 MiB exceed the machine's 3 GiB/);
  });

  it('two runs give the same output and the same cycle counts', () => {
    const a = vmRun('apic', 'nested'), b = vmRun('apic', 'nested');
    expect(a.out).toBe(b.out);
    expect(a.machine.stats()).toEqual(b.machine.stats());
  });
});
