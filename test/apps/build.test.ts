// `npm run build` (rollup.config.mjs): the VMM as one ES module (dist/libv3vee.mjs) and the
// bootable image (dist/v3vee-image.mjs) that links it. The feature switches are applied at build
// time: a build with V3_SHADOW_PAGING=0 contains no shadow-paging code and still boots with
// nested paging. The image contains the library, not imports of vmm/ sources.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { bootImage, ensureImage, type ImageModule, loadImage } from '../../apps/cli/boot.ts';
import { expectedOutput, KERNEL_RUNS } from '../kernels/kernels.ts';
import { Capture, ROOT } from './cli-run.ts';

const ROLLUP = join(dirname(createRequire(import.meta.url).resolve('rollup/package.json')), 'dist', 'bin', 'rollup');
/** Identifiers only vmm/paging/shadow*.ts define. */
const SHADOW_ONLY = ['class ShadowPaging', 'shadowCacheFactory', 'shadowCosts'];

/** Imports of the bundle (static and dynamic). */
function importsOf(code: string): string[] {
  return [...code.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"]([^'"]+)['"]/g)]
    .map((m) => m[1] ?? m[2] ?? m[3]);
}

let noShadow: string;
let noShadowRun: ReturnType<typeof spawnSync>;
beforeAll(() => {
  noShadow = mkdtempSync(join(tmpdir(), 'v3vee-build-'));
  noShadowRun = spawnSync(process.execPath, [ROLLUP, '-c', 'rollup.config.mjs', '--silent'], {
    cwd: ROOT, encoding: 'utf8', env: { ...process.env, V3_DIST: noShadow, V3_SHADOW_PAGING: '0' },
  });
  ensureImage(() => { /* quiet */ }); // the default build in dist/
}, 120_000);

describe('npm run build', () => {
  it('writes the library and the image; the default build has every feature', () => {
    for (const f of ['libv3vee.mjs', 'v3vee-image.mjs']) expect(existsSync(join(ROOT, 'dist', f)), f).toBe(true);
    const lib = readFileSync(join(ROOT, 'dist/libv3vee.mjs'), 'utf8');
    const img = readFileSync(join(ROOT, 'dist/v3vee-image.mjs'), 'utf8');
    for (const id of SHADOW_ONLY) {
      expect(lib, id).toContain(id);
      expect(img, id).toContain(id);
    }
    // the switches are constants in the bundles: nothing reads the environment
    expect(lib).not.toMatch(/process\.env/);
    expect(img).not.toMatch(/process\.env/);
    // the library exports the public API
    expect(lib).toMatch(/export \{[^}]*\bcreateVm\b[^}]*\}/);
  });

  it('the image links the VMM: no import of a vmm/ (or kernel/, hostif/) source; hw/ is the machine it boots on', () => {
    const img = readFileSync(join(ROOT, 'dist/v3vee-image.mjs'), 'utf8');
    const imports = importsOf(img);
    expect(imports.length).toBeGreaterThan(0);
    for (const i of imports) expect(i, i).toMatch(/^(\.\.\/hw\/.*\.ts|node:.*)$/);
    expect(imports.some((i) => /vmm\/|libv3vee/.test(i))).toBe(false);
    // the library's code is in it (its exit dispatch and device registry), and the bundled guest
    expect(img).toContain('class DeviceRegistry');
    expect(img).toContain('function createVm(');
    expect(img).toMatch(/Uint8Array\.from\(atob\("f0VMR/); // an ELF image, embedded
  });

  it('a V3_SHADOW_PAGING=0 build has no shadow-paging code and still boots with nested paging', async () => {
    expect(noShadowRun.status, String(noShadowRun.stderr)).toBe(0);
    const lib = readFileSync(join(noShadow, 'libv3vee.mjs'), 'utf8');
    const img = readFileSync(join(noShadow, 'v3vee-image.mjs'), 'utf8');
    for (const id of SHADOW_ONLY) {
      expect(lib, id).not.toContain(id);
      expect(img, id).not.toContain(id);
    }
    expect(lib.length).toBeLessThan(readFileSync(join(ROOT, 'dist/libv3vee.mjs'), 'utf8').length);
    const api: ImageModule = await loadImage(join(noShadow, 'v3vee-image.mjs'));
    const out = new Capture();
    const r = bootImage(api, { stdout: out, stderr: new Capture() });
    expect(out.text()).toBe(expectedOutput(KERNEL_RUNS.find((k) => k.id === 'hello')!));
    expect(r.status).toBe(0);
    // shadow paging is not in this build: a config asking for it is refused with one line
    const { Machine } = await import('../../hw/machine.ts');
    const m = new Machine({ ram: api.hostMemoryFor(16 << 20), consoleChannels: [null, new Capture()] });
    const booted = api.boot(m, { vms: [{ config: { ...api.DEFAULT_CONFIG, paging: 'shadow' }, files: api.bundledFiles() }] });
    expect(booted.vms[0].error).toMatch(/^config: paging: mode "shadow" is not available in this build \(available: nested, hashed\)/);
  });
});
