// `v3vee boot` (`npm start` with no arguments): the combined image built by rollup boots on a fresh
// machine, the LWK launches the default VM with the bundled guest, the guest's console is stdout,
// the exit statistics go to stderr, and the status is 0 when every VM launched succeeded (else
// the first failure's). dist/ is built first when missing or stale.
import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bootImage, ensureImage, imageStaleness, type ImageModule, loadImage, runBooted } from '../../apps/cli/boot.ts';
import { Machine } from '../../hw/machine.ts';
import * as source from '../../kernel/image.ts';
import { expectedOutput, KERNEL_RUNS } from '../kernels/kernels.ts';
import { Capture, cli } from './cli-run.ts';

const HELLO = expectedOutput(KERNEL_RUNS.find((r) => r.id === 'hello')!);

let built: ImageModule;
beforeAll(async () => {
  built = await loadImage(ensureImage(() => { /* quiet */ }));
}, 120_000);

/** A flat guest that writes `value` to isa-debug-exit (mov al, v; out 0xf4, al). */
const exitGuest = (name: string, value: number) => ({
  config: { name, memory: '4M', kernel: { path: 'g.bin', format: 'flat' } },
  files: { 'g.bin': Uint8Array.of(0xb0, value, 0xe6, 0xf4, 0xf4) },
});

function bootSource(vms: source.VmSpec[]) {
  const machine = new Machine({ ram: source.hostMemoryFor(8 << 20), consoleChannels: [null, new Capture(), new Capture()] });
  const img = source.boot(machine, { vms });
  return runBooted(machine, img, source, 'boot', 1e9);
}

describe('boot: the combined image', () => {
  it('npm start with no arguments boots the image: the guest on stdout, exit statistics on stderr, status 0', () => {
    const r = cli([]);
    expect(r.stdout).toBe(HELLO);
    expect(r.stderr).toMatch(/^v3vee: demo: vm: \d+ exits, \d+ cycles in handlers/m);
    expect(r.stderr).not.toMatch(/LWK: booting/); // the boot log only with --verbose
    expect(r.status).toBe(0);
    const h = cli(['help']);
    expect(h.status).toBe(0);
    expect(h.stdout).toMatch(/^ {2}boot {2,}/m);
    expect(h.stdout).toMatch(/^ {2}vm KERNEL\|CONFIG\.json/m);
  });

  it('the built image boots in-process with its defaults, deterministically', () => {
    const a = bootImage(built, { stdout: new Capture(), stderr: new Capture() });
    expect(a.status).toBe(0);
    expect(a.image.vms.map((v) => v.name)).toEqual(['demo']);
    expect(a.image.vms[0].handle!.report().exitStatus).toBe(1);
    const out = new Capture(), log = new Capture();
    const b = bootImage(built, { stdout: out, stderr: new Capture(), kernelLog: log, profile: 'gp' });
    expect(out.text()).toBe(HELLO);
    expect(b.status).toBe(0);
    expect(log.text()).toMatch(/general-purpose profile/);
    expect(log.text()).toMatch(/vm demo: stopped: isa-debug-exit, status 1/);
    const c = bootImage(built, { stdout: new Capture(), stderr: new Capture() });
    expect(c.machine.stats()).toEqual(a.machine.stats());
    const d = bootImage(built, { stdout: new Capture(), stderr: new Capture(), maxCycles: 100_000 });
    expect(d.status).toBe(124);
  });

  it('status: 0 when every VM succeeded (isa-debug-exit value 0 counts), else the first failure', () => {
    expect(bootSource([exitGuest('ok', 0)]).status).toBe(0);
    const two = bootSource([exitGuest('ok', 0), exitGuest('bad', 3)]);
    expect(two.status).toBe(7);
    expect(two.message).toMatch(/^vm bad: isa-debug-exit, status 7/);
    const broken = bootSource([exitGuest('ok', 0), { config: { name: 'nofile', memory: '4M', kernel: 'missing.elf' }, files: {} }]);
    expect(broken.status).toBe(2);
    expect(broken.message).toMatch(/^vm nofile: kernel missing\.elf: no image given/);
  });

  it('dist/ is stale when missing or older than a source it bundles', () => {
    const root = mkdtempSync(join(tmpdir(), 'v3vee-stale-'));
    for (const d of ['kernel', 'vmm/paging', 'hostif', 'apps/kernels/prebuilt', 'dist']) mkdirSync(join(root, d), { recursive: true });
    const old = new Date(Date.now() - 60_000);
    for (const f of ['rollup.config.mjs', 'apps/kernels/prebuilt/hello.elf', 'kernel/boot.ts', 'vmm/paging/nested.ts', 'hostif/hostif.ts']) {
      writeFileSync(join(root, f), 'x');
      utimesSync(join(root, f), old, old);
    }
    const dist = join(root, 'dist');
    expect(imageStaleness(dist, root)).toMatch(/libv3vee\.mjs is missing/);
    writeFileSync(join(dist, 'libv3vee.mjs'), '');
    writeFileSync(join(dist, 'v3vee-image.mjs'), '');
    expect(imageStaleness(dist, root)).toBeNull();
    writeFileSync(join(root, 'vmm/paging/nested.ts'), 'y');
    utimesSync(join(root, 'vmm/paging/nested.ts'), new Date(), new Date(Date.now() + 5000));
    expect(imageStaleness(dist, root)).toBe('vmm/paging/nested.ts changed since the build');
  });
});
