// `v3vee boot` (what `npm start` with no arguments runs): boots the combined image that rollup
// builds (dist/v3vee-image.mjs: the LWK linked with the VMM library, a default VM config and a
// bundled guest; rebuilt first when missing or older than a source it bundles) on a fresh
// machine. The LWK boots and launches the default VM; the guest's console is stdout, the exit
// statistics go to stderr. Exit status (DESIGN.md): 0 when every VM launched finished
// successfully (a clean halt, or isa-debug-exit with value 0), else the first failure's status
// ((v << 1) | 1, 126 for a VM in error, 2 for a VM that could not be created); 124 at
// --max-cycles.
//
// This file also holds what `vm` (vm.ts) shares with it: running a booted image to its end, the
// exit status, the kernel log's filter and the statistics.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, statSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ByteSink } from '../../hw/devices/types.ts';
import { Machine, type StopReason } from '../../hw/machine.ts';
import type * as ImageApi from '../../kernel/image.ts';
import type { ProfileName } from '../../kernel/kernel.ts';
import { one, parseArgs, parseIntOption, UsageError } from './options.ts';
import { readStdinIfPiped, StdoutSink } from './streams.ts';

/** What kernel/image.ts exports: the built image (dist/v3vee-image.mjs) or the source. */
export type ImageModule = typeof ImageApi;

export const BOOT_HELP = `usage: v3vee boot [--profile lwk|gp] [--seed N] [--stats] [--verbose] [--trace exits] [--max-cycles N]
Boots the combined image (dist/v3vee-image.mjs, built by 'npm run build'; built here first when
it is missing or older than a source it bundles) on the emulated PC with its default config: the
LWK boots and launches the default VM with the bundled guest (apps/kernels/prebuilt/hello.elf).
The guest's console is stdout; --stats prints the VM's exit statistics and the LWK's noise
accounting on stderr; --verbose shows the kernel log. Exit status 0 when every VM launched
finished successfully, else the first failure's. 'npm start' with no arguments runs this.`;

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const encoder = new TextEncoder();

// ------------------------------------------------------------------------------ the image file

/** The sources the image bundles: a change to any of them makes dist/ stale (hw/ is not bundled). */
export function imageSources(root = ROOT): string[] {
  const out: string[] = [join(root, 'rollup.config.mjs'), join(root, 'apps/kernels/prebuilt/hello.elf')];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts')) out.push(p);
    }
  };
  for (const d of ['kernel', 'vmm', 'hostif']) walk(join(root, d));
  return out;
}

/** Why dist/ must be (re)built, or null when it is up to date. */
export function imageStaleness(dist = join(ROOT, 'dist'), root = ROOT): string | null {
  const files = [join(dist, 'libv3vee.mjs'), join(dist, 'v3vee-image.mjs')];
  for (const f of files) if (!existsSync(f)) return `${f.slice(root.length + 1)} is missing`;
  const built = Math.min(...files.map((f) => statSync(f).mtimeMs));
  for (const s of imageSources(root)) if (statSync(s).mtimeMs > built) return `${s.slice(root.length + 1)} changed since the build`;
  return null;
}

/**
 * Builds dist/ with rollup when it is missing or stale (the build's messages go to stderr).
 * Returns the image's path; throws UsageError when the build fails.
 */
export function ensureImage(log: (line: string) => void = (l) => process.stderr.write(l + '\n')): string {
  const dist = join(ROOT, 'dist');
  const image = join(dist, 'v3vee-image.mjs');
  if (imageStaleness() === null) return image;
  // one build at a time (two CLIs or test files starting together): a lock file in dist/
  mkdirSync(dist, { recursive: true });
  const lock = join(dist, '.building');
  for (;;) {
    try { closeSync(openSync(lock, 'wx')); break; } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      try { if (Date.now() - statSync(lock).mtimeMs > 300_000) unlinkSync(lock); } catch { /* gone meanwhile */ }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200); // another build runs: wait for it
    }
  }
  try {
    const why = imageStaleness();
    if (why === null) return image;
    log(`v3vee: building the image (${why}): npm run build`);
    const rollup = join(dirname(createRequire(import.meta.url).resolve('rollup/package.json')), 'dist', 'bin', 'rollup');
    const env = { ...process.env };
    delete env.V3_DIST;
    const r = spawnSync(process.execPath, [rollup, '-c', 'rollup.config.mjs', '--silent'], { cwd: ROOT, stdio: ['ignore', 2, 2], env });
    if (r.status !== 0 || !existsSync(image)) throw new UsageError(`the image build failed (rollup exit status ${r.status ?? r.signal}); run 'npm run build' to see why`);
    return image;
  } finally {
    try { unlinkSync(lock); } catch { /* already gone */ }
  }
}

/** Imports a built image (its hw/ imports resolve to the checkout's, as the CLI's own Machine does). */
export async function loadImage(path: string): Promise<ImageModule> {
  return await import(pathToFileURL(path).href) as ImageModule;
}

// ----------------------------------------------------------------------- the kernel log's filter

/**
 * The kernel console (COM1 under the LWK): the whole log with --verbose; otherwise only the
 * `--trace exits` lines (the VMM's "exit N core C @cycle: ..." lines), so stderr carries the
 * trace but not the boot log.
 */
export class KernelLogSink implements ByteSink {
  private line: number[] = [];
  constructor(private readonly out: ByteSink, private readonly verbose: boolean, private readonly trace: boolean) {}
  write(bytes: Uint8Array): void {
    if (this.verbose) { this.out.write(bytes); return; }
    if (!this.trace) return;
    for (const b of bytes) {
      if (b !== 0x0a) { this.line.push(b); continue; }
      const text = Buffer.from(this.line).toString('latin1').replace(/^\[\s*\d+\.\d+\] /, '');
      this.line = [];
      if (/^exit \d+ core \d+ @/.test(text)) this.out.write(encoder.encode(text + '\n'));
    }
  }
}

// ----------------------------------------------------------------------- running a booted image

export interface RunOutcome {
  /** The command's exit status. */
  status: number;
  /** The line printed on stderr for a status that is not a clean end (null otherwise). */
  message: string | null;
  reason: StopReason;
  hostSeconds: number;
}

const hex8 = (v: number): string => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/**
 * Runs the machine until every launched VM has ended (or the cycle limit), and works out the
 * exit status: `vm` mode gives the one VM's status ((v << 1) | 1, 0, 126); `boot` mode gives 0
 * when every VM succeeded (status 0 or 1), else the first failure's.
 */
export function runBooted(machine: Machine, img: ImageApi.BootedImage, api: ImageModule, mode: 'vm' | 'boot', maxCycles: number): RunOutcome {
  const t0 = performance.now();
  const reason = img.vms.some((v) => v.handle !== null) ? machine.run(maxCycles) : 'exit';
  const hostSeconds = (performance.now() - t0) / 1000;
  const done = (status: number, message: string | null): RunOutcome => ({ status, message, reason, hostSeconds });
  const running = img.vms.find((v) => v.handle !== null && v.handle.state() !== 'stopped' && v.handle.state() !== 'error');
  // a running guest's EIP: the core's while it is in guest mode, else where its last exit left it
  const eipOf = (): string => {
    const core = machine.cores.find((c) => c.guest);
    return hex8(core !== undefined ? core.eip : running?.handle?.report().lastExits.at(-1)?.rip ?? 0);
  };
  if (reason === 'limit') return done(124, `--max-cycles ${maxCycles} reached (${running ? `vm ${running.name} running, guest eip ${eipOf()}` : 'every VM had ended'})`);
  if (running !== undefined) {
    if (reason === 'shutdown') return done(126, `the host machine stopped: ${machine.stopDetail}`);
    if (reason === 'reset') return done(126, `the host machine reset: ${machine.stopDetail}`);
    if (reason === 'idle') return done(126, `every core is idle and nothing can wake them, with vm ${running.name} still running (guest eip ${eipOf()})`);
    return done(126, `the machine stopped (${reason}) with vm ${running.name} still running`);
  }
  for (const v of img.vms) {
    if (v.handle === null) {
      if (mode === 'vm') return done(2, v.error);
      return done(2, `vm ${v.name}: ${v.error}`);
    }
    const r = v.handle.report();
    const s = api.vmStatus(r);
    if (mode === 'vm') return done(s, r.state === 'error' ? `vm ${v.name}: ${api.describeReport(r)}` : null);
    if (s !== 0 && s !== 1) return done(s, `vm ${v.name}: ${api.describeReport(r)}`);
  }
  return done(0, null);
}

/** --stats: each VM's exit statistics, the LWK's noise accounting and the machine's counters. */
export function statsLines(machine: Machine, img: ImageApi.BootedImage, api: ImageModule, hostSeconds: number): string[] {
  const lines: string[] = [];
  for (const v of img.vms) if (v.handle !== null) lines.push(...api.vmStatsLines(v.handle));
  const k = img.kernel;
  lines.push(`lwk: profile ${k.sched.profile.name}`);
  for (const pc of k.percpu) {
    const n = pc.noise, cr = k.sched.cores[pc.index], tot = n.totals();
    lines.push(`lwk: core ${pc.index}: interruptions ${n.interruptions} (${n.interruptionCycles} cycles), idle-wakeups ${n.idleWakeups}, ` +
      `timer-interrupts ${cr.timerInterrupts}, switches ${n.switches}, idle-cycles ${pc.idleCycles}, deferred-work-cycles ${n.deferredWorkCycles}, ` +
      `interrupts ${tot.interrupts.count} (${tot.interrupts.cycles} cycles)`);
    for (const [vec, t] of [...n.interrupts].sort((x, y) => x[0] - y[0])) lines.push(`lwk: core ${pc.index}:   vector 0x${vec.toString(16)}: ${t.count} (${t.cycles} cycles)`);
    const g = k.host?.guests[pc.index];
    if (g !== undefined && g.runs > 0) {
      let exits = 0, cycles = 0;
      for (const t of g.exits.values()) { exits += t.count; cycles += t.cycles; }
      lines.push(`lwk: core ${pc.index}: guest runs ${g.runs}, guest cycles ${g.guestCycles}, #VMEXITs ${exits} (${cycles} cycles in the kernel's exit path), refused VMRUNs ${g.invalid}`);
    }
  }
  const st = machine.stats();
  lines.push(`machine: instructions ${st.instructions}, cycles ${st.cycles}, tlb-misses ${st.tlbMisses}, host-seconds ${hostSeconds.toFixed(3)}, ` +
    `mips ${(st.instructions / Math.max(hostSeconds, 1e-9) / 1e6).toFixed(1)}`);
  return lines;
}

// ---------------------------------------------------------------------------------- `boot`

export interface BootSpec {
  profile?: ProfileName;
  seed?: number;
  maxCycles?: number;
  traceExits?: boolean;
  stdin?: Uint8Array;
  stdout: ByteSink;
  stderr: ByteSink;
  /** COM1, the kernel console (default: discarded). */
  kernelLog?: ByteSink;
}

export interface BootResult extends RunOutcome {
  machine: Machine;
  image: ImageApi.BootedImage;
}

/** Boots an image module with its default config on a fresh machine and runs it to its end. */
export function bootImage(api: ImageModule, spec: BootSpec): BootResult {
  const vms = spec.traceExits ? [{ config: { ...api.DEFAULT_CONFIG, traceExits: true }, files: api.bundledFiles() }] : undefined;
  const machine = new Machine({
    cores: 1, ram: api.hostMemoryFor(api.DEFAULT_VM_MEMORY),
    com1: spec.kernelLog ?? { write: () => { /* the kernel log, kept quiet */ } },
    consoleChannels: [null, spec.stdout, spec.stderr],
  });
  if (spec.stdin !== undefined && spec.stdin.length > 0) machine.console.input(0, spec.stdin);
  machine.console.closeInput(0);
  const image = api.boot(machine, { profile: spec.profile ?? 'lwk', seed: spec.seed ?? 0, vms });
  const out = runBooted(machine, image, api, 'boot', spec.maxCycles ?? Infinity);
  return { ...out, machine, image };
}

export async function bootCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { profile: 'value', seed: 'value', 'max-cycles': 'value', trace: 'value', stats: 'flag', verbose: 'flag', help: 'flag' });
  if (a.flags.has('help')) { process.stdout.write(BOOT_HELP + '\n'); return 0; }
  if (a.positional.length > 0) throw new UsageError(`boot takes no arguments (got '${a.positional[0]}'); to boot a kernel of yours use 'vm KERNEL'`);
  const profile = one(a, 'profile') ?? 'lwk';
  if (profile !== 'lwk' && profile !== 'gp') throw new UsageError(`--profile ${profile}: must be lwk or gp`);
  const seed = one(a, 'seed') !== undefined ? parseIntOption(one(a, 'seed')!, '--seed', 0, 0xffffffff) : 0;
  const maxCycles = one(a, 'max-cycles') !== undefined ? parseIntOption(one(a, 'max-cycles')!, '--max-cycles', 1) : Infinity;
  const trace = one(a, 'trace');
  if (trace !== undefined && trace !== 'exits') throw new UsageError(`--trace ${trace}: boot supports only 'exits'`);
  const api = await loadImage(ensureImage());
  const stdout = new StdoutSink(1), stderr = new StdoutSink(2);
  const r = bootImage(api, {
    profile, seed, maxCycles, traceExits: trace === 'exits', stdin: readStdinIfPiped() ?? undefined, stdout, stderr,
    kernelLog: new KernelLogSink(stderr, a.flags.has('verbose'), trace === 'exits'),
  });
  // the exit statistics always; --stats adds the LWK's noise accounting and the machine's counters
  const lines = a.flags.has('stats') ? statsLines(r.machine, r.image, api, r.hostSeconds) : r.image.vms.flatMap((v) => (v.handle !== null ? api.vmStatsLines(v.handle) : []));
  process.stderr.write(lines.map((l) => `v3vee: ${l}\n`).join(''));
  if (r.message !== null) process.stderr.write(`v3vee: ${r.message}\n`);
  return r.status;
}
