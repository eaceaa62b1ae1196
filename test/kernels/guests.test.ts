// The guest kernels of the experiments (apps/guests/): catamount (one application, 4 MiB pages,
// no interrupts) and linuxlike (processes, a timer tick, CR3 switches, demand paging and
// copy-on-write). Bare smoke runs with small parameters check the output format the
// experiments parse (apps/guests/README.md, apps/noise/README.md), the exit status, and the
// results that depend only on the parameters (spmv's checksum, the processes' checksums and
// page-fault counts). Under QEMU the same images end through isa-debug-exit with the same
// parameter-determined lines. The prebuilt images must match a rebuild with the recorded gcc.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadMultiboot } from '../../hw/boot/multiboot.ts';
import { Machine } from '../../hw/machine.ts';
import { qemuAvailable, QEMU } from './kernels.ts';

const GUESTS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../apps/guests');
const PREBUILT = join(GUESTS_DIR, 'prebuilt');
const NATIVE_SPMV = resolve(GUESTS_DIR, '../native/prebuilt/spmv');
const CI = process.env.CI === 'true';
type Guest = 'catamount' | 'linuxlike';

function bootGuest(guest: Guest, args: string, mem = 128 << 20) {
  const out: number[] = [];
  const m = new Machine({ ram: mem, com1: { write: (b) => { for (const x of b) out.push(x); } } });
  const img = new Uint8Array(readFileSync(join(PREBUILT, `${guest}.elf`)));
  const e = loadMultiboot({ size: m.mem.ramSize, write: (a, b) => m.mem.writeBytes(a, b) }, img, { cmdline: `${guest}.elf ${args}` });
  m.startFlat32(e.entry, e.eax, e.ebx);
  const reason = m.run(5e9);
  return { m, reason, text: Buffer.from(out).toString('latin1'), status: m.exitStatus };
}

function lines(text: string, tag: string): string[] {
  return text.split('\n').filter((l) => l.startsWith(`${tag} `) || l === tag);
}

function kv(line: string): Record<string, string> {
  const o: Record<string, string> = {};
  for (const t of line.split(' ').slice(1)) { const [k, v] = t.split('='); if (v !== undefined) o[k] = v; }
  return o;
}

/** catamount's frame: header, the application line, the application's lines, the footer. */
function catamountBody(text: string, app: string, exit = 0): string[] {
  const all = text.split('\n');
  expect(all[0]).toBe('== catamount ==');
  expect(all[1]).toBe(`catamount-app ${app} pages=4M mapped=128`);
  expect(all.at(-1)).toBe('');
  expect(all.at(-2)).toBe(`== catamount: exit ${exit} ==`);
  return all.slice(2, -2);
}

describe('guest kernels: files', () => {
  it('prebuilt images are i386 ELF executables with a Multiboot header', () => {
    for (const g of ['catamount', 'linuxlike']) {
      const b = readFileSync(join(PREBUILT, `${g}.elf`));
      expect([...b.subarray(0, 4)]).toEqual([0x7f, 0x45, 0x4c, 0x46]);
      expect(b.readUInt16LE(18)).toBe(3);
      let found = false;
      for (let o = 0; o + 12 <= 8192; o += 4) if (b.readUInt32LE(o) === 0x1badb002) found = true;
      expect(found, g).toBe(true);
    }
  });
});

describe('catamount, bare', () => {
  it('fwq: no interrupts, so every sample of the fixed work takes the same cycles', () => {
    const r = bootGuest('catamount', 'fwq samples=64 work=300');
    expect(r.reason).toBe('exit');
    expect(r.status).toBe(1);
    const body = catamountBody(r.text, 'fwq');
    expect(body[0]).toBe('fwq-params samples=64 work=300');
    const s = lines(r.text, 'fwq-sample').flatMap((l) => l.split(' ').slice(1).map(Number));
    expect(s.length).toBe(64);
    expect(new Set(s).size).toBe(1);
    const sum = kv(lines(r.text, 'fwq-summary')[0]);
    expect(Number(sum.sum)).toBe(s[0] * 64);
    expect(r.m.stats().interrupts).toBe(0);
  });

  it('ftq and selfish: the format, and no detour with no interrupts', () => {
    const f = bootGuest('catamount', 'ftq quanta=20 quantum=22000');
    expect(f.status).toBe(1);
    catamountBody(f.text, 'ftq');
    const c = lines(f.text, 'ftq-count').flatMap((l) => l.split(' ').slice(1).map(Number));
    expect(c.length).toBe(20);
    expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
    const s = bootGuest('catamount', 'selfish duration=1100000');
    expect(s.status).toBe(1);
    const body = catamountBody(s.text, 'selfish');
    expect(body[0]).toMatch(/^selfish-params duration=1100000 mult=8 max=10000 minloop=\d+ threshold=\d+$/);
    expect(lines(s.text, 'selfish-detour')).toEqual([]);
    expect(kv(lines(s.text, 'selfish-summary')[0]).detours).toBe('0');
  });

  it('spmv: the same checksum as the native program', () => {
    const r = bootGuest('catamount', 'spmv rows=512 nnz=8 iters=3');
    expect(r.status).toBe(1);
    catamountBody(r.text, 'spmv');
    const ck = kv(lines(r.text, 'spmv-summary')[0]).checksum;
    expect(ck).toMatch(/^0x[0-9a-f]{8}$/);
    const n = spawnSync(NATIVE_SPMV, ['rows=512', 'nnz=8', 'iters=3'], { encoding: 'latin1' });
    if (n.error === undefined && n.status === 0) expect(kv(lines(n.stdout, 'spmv-summary')[0]).checksum).toBe(ck);
  });

  it('a bad parameter: exit value 2 with one error line', () => {
    const r = bootGuest('catamount', 'fwq samples=0');
    expect(r.status).toBe((2 << 1) | 1);
    expect(catamountBody(r.text, 'fwq', 2)).toEqual(['error: fwq: value out of range or not a number: samples=0']);
  });

  it('no application named: fwq, with the key=value tokens as its parameters', () => {
    const r = bootGuest('catamount', 'samples=3 work=10');
    expect(r.status).toBe(1);
    expect(catamountBody(r.text, 'fwq')[0]).toBe('fwq-params samples=3 work=10');
    expect(bootGuest('catamount', 'bogus=1').status).toBe(5);
  });

  it('deterministic: two runs give the same output and cycles', () => {
    const a = bootGuest('catamount', 'ftq quanta=5 quantum=22000');
    const b = bootGuest('catamount', 'ftq quanta=5 quantum=22000');
    expect(a.text).toBe(b.text);
    expect(a.m.stats()).toEqual(b.m.stats());
  });
});

const SMALL = 'procs=3 jobs=4 pages=8 rounds=1 fork=2 hz=1000';

function checkLinuxlike(text: string): void {
  const all = text.split('\n');
  expect(all[0]).toBe('== linuxlike ==');
  expect(all[1]).toBe('linuxlike-params procs=3 jobs=4 pages=8 rounds=1 fork=2 hz=1000 verify=1');
  // per worker: 4 jobs x 8 heap pages + 1 user stack page of demand faults; 2 forks, each
  // followed by copy-on-write faults on every 4th heap page and the stack page in the parent
  // (2 x 3) and on every 2nd heap page and the stack page in the child (6 children x 5)
  for (let i = 1; i <= 3; i++) expect(all[1 + i]).toMatch(new RegExp(`^linuxlike-proc ${i} checksum=0x[0-9a-f]{8} demand=33 cow=6 ok$`));
  expect(all[5]).toMatch(/^linuxlike-summary procs=3 children=6 demand=99 cow=48 checksum=0x[0-9a-f]{8}$/);
  expect(all[6]).toMatch(/^linuxlike-timing ticks=\d+ switches=\d+ cr3-writes=\d+ frames-peak=\d+ cycles=\d+$/);
  expect(all.slice(7)).toEqual(['== linuxlike: exit 0 ==', '']);
}

describe('linuxlike, bare', () => {
  it('processes with demand paging and copy-on-write forks compute the reference checksums', () => {
    const r = bootGuest('linuxlike', SMALL);
    expect(r.reason).toBe('exit');
    checkLinuxlike(r.text);
    expect(r.status).toBe(1);
    const t = kv(lines(r.text, 'linuxlike-timing')[0]);
    expect(Number(t.ticks)).toBeGreaterThan(0);
    expect(Number(t.switches)).toBeGreaterThanOrEqual(3 * 4); // a yield after every job
    expect(Number(t['cr3-writes'])).toBeGreaterThan(Number(t.switches));
    expect(r.m.stats().exceptions).toBeGreaterThanOrEqual(99 + 48);
  });

  it('a bad parameter or too little memory: exit value 2', () => {
    expect(bootGuest('linuxlike', 'procs=9').status).toBe(5);
    expect(bootGuest('linuxlike', 'colour=blue').status).toBe(5);
    const small = bootGuest('linuxlike', SMALL, 8 << 20);
    expect(small.status).toBe(5);
    expect(small.text).toContain('error: needs at least 10 MiB of memory');
  });
});

const haveQemu = qemuAvailable();

function runQemu(guest: Guest, append: string) {
  const r = spawnSync(QEMU, ['-kernel', `${guest}.elf`, '-append', append, '-display', 'none', '-serial', 'stdio',
    '-monitor', 'none', '-no-reboot', '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-m', '128'],
  { cwd: PREBUILT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000, killSignal: 'SIGKILL', encoding: 'latin1' });
  const out = r.stdout ?? '';
  const at = out.indexOf(`== ${guest} ==\n`);
  return { status: r.status, text: at < 0 ? out : out.slice(at) };
}

describe.skipIf(!haveQemu && !CI)('guest kernels under QEMU', () => {
  it('qemu-system-i386 is installed (CI requires it)', () => { expect(haveQemu).toBe(true); });
  it('catamount spmv: exit through isa-debug-exit, the same checksum as bare', () => {
    const q = runQemu('catamount', 'spmv rows=512 nnz=8 iters=3');
    expect(q.status, q.text).toBe(1);
    const b = bootGuest('catamount', 'spmv rows=512 nnz=8 iters=3');
    expect(lines(q.text, 'spmv-summary')[0].replace(/ (min|max|sum)=\d+/g, ''))
      .toBe(lines(b.text, 'spmv-summary')[0].replace(/ (min|max|sum)=\d+/g, ''));
    catamountBody(q.text, 'spmv');
  });
  it('linuxlike: the same checksums and fault counts as bare', () => {
    const q = runQemu('linuxlike', SMALL);
    expect(q.status, q.text).toBe(1);
    checkLinuxlike(q.text);
    const b = bootGuest('linuxlike', SMALL);
    expect(q.text.split('\n').slice(0, 6)).toEqual(b.text.split('\n').slice(0, 6));
  });
});

// ---- rebuild and compare ----
const recorded = readFileSync(join(PREBUILT, 'TOOLCHAIN'), 'utf8');
const major = /^gcc (\d+)\./m.exec(recorded)?.[1];
const gcc = spawnSync('gcc', ['-dumpfullversion'], { encoding: 'utf8' });
const m32 = spawnSync('gcc', ['-m32', '-ffreestanding', '-E', '-x', 'c', '/dev/null'], { encoding: 'utf8' });
const buildable = gcc.status === 0 && m32.status === 0;
const sameMajor = buildable && gcc.stdout.trim().split('.')[0] === major;

describe('guest kernels: rebuild', () => {
  it.skipIf(!CI)('gcc -m32 is installed (CI requires it)', () => { expect(buildable).toBe(true); });
  it.skipIf(!sameMajor)(`build.sh reproduces the prebuilt images (gcc ${major})`, () => {
    const out = mkdtempSync(join(tmpdir(), 'guests-'));
    try {
      const r = spawnSync('sh', [join(GUESTS_DIR, 'build.sh'), out], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      for (const g of ['catamount', 'linuxlike']) {
        expect(existsSync(join(out, `${g}.elf`))).toBe(true);
        expect(readFileSync(join(out, `${g}.elf`)).equals(readFileSync(join(PREBUILT, `${g}.elf`))),
          `${g}.elf differs from prebuilt/: rebuild with sh apps/guests/build.sh --prebuilt`).toBe(true);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
