// `npm run bench` (busybox): the wall time of a real program on the LWK against qemu-i386 and
// against this host: Debian's busybox-static (i386) computing `sha256sum` of 4 MiB of
// deterministic data on its stdin.
//
//   tsx bench/busybox.ts [--mb N] [--runs N] [--ref-runs N] [--busybox PATH] [--qemu PATH]
//
// The same binary runs three ways, as `busybox sha256sum`: on the LWK (booted as `v3vee run`
// boots it, apps/cli/run.ts runLwk, from an initramfs holding /bin/busybox), under `qemu-i386`,
// and natively (this x86-64 host runs i386 code). All three must print the digest node:crypto
// computes. Prints host seconds (wall and CPU) of each, the ratios, and the LWK run's MIPS and
// simulated time. The LWK runs --runs times (default 1: it takes seconds), qemu-i386 and the
// native run --ref-runs times (default 5); the best is reported. Without busybox (.ci/run
// fetches it into .cache/busybox/) or qemu-i386 (Debian qemu-user) a line says so and that
// figure is skipped. A benchmark, not a test: it fails only on a wrong digest.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { delimiter, join, relative } from 'node:path';
import { runLwk } from '../apps/cli/run.ts';
import { buildCpio } from '../kernel/fs/cpio.ts';
import { intArg, strArg } from './args.ts';
import { ROOT } from './native.ts';

const DEFAULT_BUSYBOX = join(ROOT, '.cache', 'busybox', 'root', 'bin', 'busybox');
/** The environment the LWK gives its processes (kernel.ts), for the other runs to match. */
const ENV = { PATH: '/bin:/usr/bin', HOME: '/' };

/** A command's path: `name` itself when it holds a slash, else the first executable of that name in PATH. */
function which(name: string): string | null {
  const ok = (p: string): boolean => { try { accessSync(p, constants.X_OK); return true; } catch { return false; } };
  if (name.includes('/')) return ok(name) ? name : null;
  for (const d of (process.env.PATH ?? '').split(delimiter)) if (d !== '' && ok(join(d, name))) return join(d, name);
  return null;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const ratio = (x: number) => `${x >= 10 ? x.toFixed(0) : x.toFixed(1)}x`;

/** Deterministic bytes: the top byte of a 32-bit LCG (as test/kernel/busybox.test.ts). */
function data(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; b[i] = x >>> 24; }
  return b;
}

/** A run: its stdout, wall and CPU seconds (CPU null when it could not be measured). */
interface Timed { out: string; seconds: number; cpuSeconds: number | null }

const TIMEFORMAT = '%3R %3U %3S';

/**
 * Runs a host command with `input` on stdin, timed by bash's `time` (getrusage of the child:
 * wall, user and system seconds); without bash, by the wall clock around it.
 */
function runHost(cmd: string, args: string[], input: Uint8Array): Timed | string {
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', 'time "$@"', 'bash', cmd, ...args], { input, env: { ...ENV, TIMEFORMAT }, maxBuffer: 1 << 20 });
  const wall = (performance.now() - t0) / 1000;
  if (r.error !== undefined) {
    const d = spawnSync(cmd, args, { input, env: ENV });
    if (d.error !== undefined) return d.error.message;
    if (d.status !== 0) return `status ${d.status ?? d.signal}: ${d.stderr.toString().trim()}`;
    return { out: d.stdout.toString('latin1'), seconds: (performance.now() - t0) / 1000, cpuSeconds: null };
  }
  const err = r.stderr.toString('latin1').trimEnd().split('\n');
  const t = /^([0-9.]+) ([0-9.]+) ([0-9.]+)$/.exec(err[err.length - 1] ?? '');
  if (r.status !== 0) return `status ${r.status ?? r.signal}: ${err.slice(0, -1).join(' ').trim() || '(no message)'}`;
  if (t === null) return { out: r.stdout.toString('latin1'), seconds: wall, cpuSeconds: null };
  return { out: r.stdout.toString('latin1'), seconds: Number(t[1]), cpuSeconds: Number(t[2]) + Number(t[3]) };
}

/** The best (least wall and least CPU, apart) of `runs` runs, or why it failed. */
function bestOf(runs: number, run: () => Timed | string): Timed | string {
  let best: Timed | null = null;
  for (let k = 0; k < runs; k++) {
    const r = run();
    if (typeof r === 'string') return r;
    if (best === null) best = r;
    else {
      if (best.out !== r.out) return `runs disagree: '${best.out.trim()}' then '${r.out.trim()}'`;
      best = { out: r.out, seconds: Math.min(best.seconds, r.seconds), cpuSeconds: best.cpuSeconds === null || r.cpuSeconds === null ? null : Math.min(best.cpuSeconds, r.cpuSeconds) };
    }
  }
  return best!;
}

const cpuText = (t: Timed) => (t.cpuSeconds === null ? 'CPU not measured' : `CPU ${t.cpuSeconds.toFixed(3)}`);

function main(): number {
  const mb = intArg('--mb', 4);
  const runs = intArg('--runs', 1);
  const refRuns = intArg('--ref-runs', 5);
  const busybox = strArg('--busybox') ?? DEFAULT_BUSYBOX;
  const shown = relative(ROOT, busybox).startsWith('..') ? busybox : relative(ROOT, busybox);
  const input = data(mb << 20, 1);
  const expected = `${createHash('sha256').update(input).digest('hex')}  -\n`;

  console.log(`busybox: sha256sum of ${mb} MiB of deterministic data on stdin (${shown})`);
  if (!existsSync(busybox)) {
    console.log(`busybox:           not found at ${shown} (.ci/run fetches Debian's busybox-static:i386 there, or --busybox PATH): skipped`);
    return 0;
  }
  const image = new Uint8Array(readFileSync(busybox));
  console.log(`digest:            ${expected.trim()} (node:crypto)`);
  let bad = false;
  const check = (who: string, out: string): void => {
    if (out !== expected) { console.error(`bench: ${who} printed '${out.trim()}', expected '${expected.trim()}'`); bad = true; }
  };

  // the LWK: /bin/busybox from an initramfs, `busybox sha256sum`, stdin the data
  const initrd = buildCpio({ 'bin/busybox': image });
  let lwk: (Timed & { icount: number; cycles: number; sysCycles: number; hz: number; runSeconds: number }) | null = null;
  for (let k = 0; k < runs; k++) {
    const chunks: Uint8Array[] = [];
    const errs: Uint8Array[] = [];
    const c0 = process.cpuUsage(), t0 = performance.now();
    const r = runLwk({ path: '/bin/busybox', initrd, args: ['sha256sum'], stdin: input, stdout: { write: (b) => chunks.push(b.slice()) }, stderr: { write: (b) => errs.push(b.slice()) } });
    const seconds = (performance.now() - t0) / 1000, c = process.cpuUsage(c0);
    const out = Buffer.concat(chunks).toString('latin1');
    if (r.status !== 0) {
      console.error(`bench: busybox on the LWK ended with status ${r.status}${r.message ? `: ${r.message}` : ''}; stderr: ${Buffer.concat(errs).toString('latin1').trim()}`);
      return 1;
    }
    check('the LWK', out);
    const st = r.machine.stats();
    const sysCycles = r.kernel.percpu.reduce((s, pc) => s + pc.noise.totals().syscalls.cycles, 0);
    const run = { out, seconds, cpuSeconds: (c.user + c.system) / 1e6, icount: st.instructions, cycles: st.cycles, sysCycles, hz: r.machine.hz, runSeconds: r.hostSeconds };
    if (runs > 1) console.log(`  LWK run ${k + 1}:       ${seconds.toFixed(3)} s (CPU ${run.cpuSeconds.toFixed(3)} s)`);
    if (lwk === null) lwk = run;
    else lwk = { ...run, seconds: Math.min(lwk.seconds, seconds), cpuSeconds: Math.min(lwk.cpuSeconds!, run.cpuSeconds), runSeconds: Math.min(lwk.runSeconds, run.runSeconds) };
  }
  const l = lwk!;
  console.log(`LWK seconds:       ${l.seconds.toFixed(3)}${runs > 1 ? ` (best of ${runs})` : ''}; CPU ${l.cpuSeconds!.toFixed(3)} (boot and run; the run alone ${l.runSeconds.toFixed(3)} s)`);
  console.log(`LWK MIPS:          ${(l.icount / l.runSeconds / 1e6).toFixed(1)} (${fmt(l.icount)} instructions; by CPU time ${(l.icount / l.cpuSeconds! / 1e6).toFixed(1)})`);
  console.log(`LWK simulated:     ${fmt(l.cycles)} cycles, ${(l.cycles / l.hz).toFixed(3)} s at ${(l.hz / 1e9).toFixed(1)} GHz; system calls ${(100 * l.sysCycles / l.cycles).toFixed(0)}% of it`);

  const qemuName = strArg('--qemu') ?? 'qemu-i386';
  const qemuPath = which(qemuName);
  const qemu = qemuPath === null ? `${qemuName} not found` : bestOf(refRuns, () => runHost(qemuPath, [busybox, 'sha256sum'], input));
  if (typeof qemu === 'string') {
    console.log(`qemu-i386:         ${qemuPath === null ? `${qemuName} not found${qemuName.includes('/') ? '' : ' in PATH'} (Debian qemu-user, or --qemu PATH): skipped` : `failed (${qemu}): skipped`}`);
  } else {
    check('qemu-i386', qemu.out);
    console.log(`qemu-i386 seconds: ${qemu.seconds.toFixed(3)} (best of ${refRuns}); ${cpuText(qemu)}`);
  }
  const native = bestOf(refRuns, () => runHost(busybox, ['sha256sum'], input));
  if (typeof native === 'string') console.log(`native:            failed (${native}): skipped (this host cannot run i386 programs?)`);
  else {
    check('the native run', native.out);
    console.log(`native seconds:    ${native.seconds.toFixed(3)} (best of ${refRuns}); ${cpuText(native)}`);
  }
  if (bad) return 1;
  console.log(`digests:           the LWK${typeof qemu === 'string' ? '' : ', qemu-i386'}${typeof native === 'string' ? '' : ' and the native run'} print node:crypto's`);
  const vs = (name: string, t: Timed): void => {
    const byCpu = t.cpuSeconds !== null && t.cpuSeconds > 0 ? ` (by CPU time ${ratio(l.cpuSeconds! / t.cpuSeconds)})` : '';
    console.log(`${`LWK/${name}:`.padEnd(19)}${ratio(l.seconds / t.seconds)}${byCpu}`);
  };
  if (typeof qemu !== 'string') vs('qemu-i386', qemu);
  if (typeof native !== 'string') vs('native', native);
  if (typeof qemu !== 'string' && typeof native !== 'string') {
    const byCpu = qemu.cpuSeconds !== null && native.cpuSeconds !== null && native.cpuSeconds > 0 ? ` (by CPU time ${ratio(qemu.cpuSeconds / native.cpuSeconds)})` : '';
    console.log(`qemu-i386/native:  ${ratio(qemu.seconds / native.seconds)}${byCpu}`);
  }
  return 0;
}

process.exitCode = main();
