// `v3vee run ELF [ARGS...]`: boots the LWK on the emulated PC and runs a static i386 Linux
// program as its first process (issue 5). The program's stdin, stdout and stderr are channels
// 0-2 of the machine's host console, connected here to the CLI's own; COM1 is the kernel
// console (shown on stderr with --verbose). Exit status (DESIGN.md, CLI conventions): the
// program's own (128 + the signal number when a signal killed it); 2 when the job could not
// start (bad option, missing or malformed ELF: one line); 124 at --max-cycles; 126 when the
// machine stopped in error; 70 for an internal error.
import { readFileSync } from 'node:fs';
import type { ByteSink } from '../../hw/devices/types.ts';
import { Machine, type StopReason } from '../../hw/machine.ts';
import { bootKernel, makeBootInfo } from '../../kernel/boot.ts';
import type { Kernel, ProfileName } from '../../kernel/kernel.ts';
import { CpioError } from '../../kernel/fs/cpio.ts';
import { loadInitramfs } from '../../kernel/fs/initramfs.ts';
import { checkImage, ExecError } from '../../kernel/proc/elf-loader.ts';
import { loadInitrd } from './initrd.ts';
import { signalName } from '../../kernel/proc/signals.ts';
import { syscallName } from '../../kernel/syscalls/table.ts';
import { one, parseArgs, parseIntOption, parseSize, UsageError } from './options.ts';
import { readStdinIfPiped, StdoutSink } from './streams.ts';

export const RUN_HELP = `usage: v3vee run [--cores N] [--mem SIZE] [--initrd DIR|CPIO] [--profile lwk|gp] [--hz N]
                 [--seed N] [--strace] [--stats] [--verbose] [--max-cycles N] ELF [ARGS...]
Boots the LWK on the emulated PC and runs a static i386 Linux executable as its first
process, with ARGS, the environment PATH=/bin:/usr/bin HOME=/, and the CLI's stdin (read in
full when it is not a terminal), stdout and stderr. The exit status is the program's (128 +
the signal number when a signal killed it). --profile gp adds a general-purpose kernel's
periodic tick (--hz, default 250) and deferred work, for noise comparisons; --strace prints
each system call on stderr; --stats prints the kernel's per-core noise accounting; --verbose
shows the kernel log (boot messages) on stderr. --initrd gives the LWK a read-only
initramfs: a cpio newc archive, or a directory packed into one (sorted, mtime 0, uid/gid 0);
with it, an absolute ELF path that exists in the initramfs names the program there
(run --initrd root/ /bin/sh -c 'echo hi'); otherwise ELF is a file of the host.`;

const encoder = new TextEncoder();
const NO_PROC = { pid: 0, exeOf: (): string | null => null };

function readProgram(path: string): Uint8Array {
  try { return new Uint8Array(readFileSync(path)); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot read program '${path}' (${code})`);
  }
}

export async function runCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, {
    mem: 'value', cores: 'value', initrd: 'value', profile: 'value', hz: 'value', seed: 'value', 'max-cycles': 'value',
    strace: 'flag', stats: 'flag', verbose: 'flag', help: 'flag',
  }, true);
  if (a.flags.has('help')) { process.stdout.write(RUN_HELP + '\n'); return 0; }
  if (a.positional.length < 1) throw new UsageError('run needs a program (run [OPTIONS] ELF [ARGS...])');
  const memArg = one(a, 'mem') ?? '128M';
  const mem = parseSize(memArg);
  if (mem < 16 * 2 ** 20 || mem > 3 * 2 ** 30 || mem % 4096 !== 0) throw new UsageError(`--mem ${memArg}: must be a multiple of 4K between 16M and 3G`);
  const cores = parseIntOption(one(a, 'cores') ?? '1', '--cores', 1, 64);
  const profile = one(a, 'profile') ?? 'lwk';
  if (profile !== 'lwk' && profile !== 'gp') throw new UsageError(`--profile ${profile}: must be lwk or gp`);
  const hzArg = one(a, 'hz');
  if (hzArg !== undefined && profile !== 'gp') throw new UsageError('--hz applies to --profile gp only (the LWK has no tick)');
  const hz = hzArg !== undefined ? parseIntOption(hzArg, '--hz', 1, 10_000) : undefined;
  const seed = one(a, 'seed') !== undefined ? parseIntOption(one(a, 'seed')!, '--seed', 0, 0xffffffff) : 0;
  const maxCycles = one(a, 'max-cycles') !== undefined ? parseIntOption(one(a, 'max-cycles')!, '--max-cycles', 1) : Infinity;
  const [path, ...args] = a.positional;
  const initrdArg = one(a, 'initrd');
  const initrd = initrdArg !== undefined ? loadInitrd(initrdArg) : undefined;
  // with an initramfs, an absolute path it holds names the program there
  let inFs = false;
  if (initrd !== undefined && path.startsWith('/')) {
    try { inFs = typeof loadInitramfs(initrd).lookup(path, '/', NO_PROC, true) !== 'number'; } catch (e) {
      if (e instanceof CpioError) throw new UsageError(`--initrd ${initrdArg}: ${e.message}`);
      throw e;
    }
  }
  const image = inFs ? undefined : readProgram(path);

  const verbose = a.flags.has('verbose');
  const stdout = new StdoutSink(1), stderr = new StdoutSink(2);
  const input = readStdinIfPiped();
  const r = runLwk({
    path, image, initrd, args, cores, mem, profile: profile as ProfileName, hz, seed, maxCycles, stdin: input ?? undefined,
    stdout, stderr, kernelLog: verbose ? stderr : undefined,
    strace: a.flags.has('strace') ? (line: string) => stderr.write(encoder.encode(line + '\n')) : undefined,
  });
  if (a.flags.has('stats')) printStats(r.machine, r.kernel, r.hostSeconds);
  if (r.message !== null) process.stderr.write(`v3vee: ${r.message}\n`);
  return r.status;
}

export interface RunSpec {
  /**
   * The program's path (argv[0], AT_EXECFN, /proc/self/exe) and its bytes; without `image`,
   * `path` names a program of the initramfs.
   */
  path: string;
  image?: Uint8Array;
  /** The initramfs: a cpio newc archive (a boot module named "initramfs"). */
  initrd?: Uint8Array;
  args?: readonly string[];
  cores?: number;
  mem?: number;
  profile?: ProfileName;
  hz?: number;
  seed?: number;
  /** The round-robin quantum in milliseconds (default 10). */
  quantumMs?: number;
  maxCycles?: number;
  /** The program's whole stdin (closed after it). */
  stdin?: Uint8Array;
  stdout?: ByteSink;
  stderr?: ByteSink;
  /** COM1, the kernel console (default: discarded). */
  kernelLog?: ByteSink;
  strace?: (line: string) => void;
  /** Called after boot, before the machine runs (tests add threads or processes here). */
  beforeRun?: (k: Kernel, m: Machine) => void;
}

export interface RunResult {
  /** The exit status `run` returns. */
  status: number;
  /** The line `run` prints on stderr for a status that is not the program's (null when it is). */
  message: string | null;
  reason: StopReason;
  machine: Machine;
  kernel: Kernel;
  hostSeconds: number;
}

/**
 * Boots the LWK on a new machine and runs one program as its first process: `run`'s job, for
 * the CLI and for tests. Throws UsageError when the job cannot start (the image is malformed).
 */
export function runLwk(spec: RunSpec): RunResult {
  if (spec.image === undefined && spec.initrd === undefined) throw new UsageError(`${spec.path}: no program image and no initramfs to find it in`);
  try { if (spec.image !== undefined) checkImage(spec.image, spec.path); } catch (e) {
    if (e instanceof ExecError) throw new UsageError(e.message);
    throw e;
  }
  const machine = new Machine({
    cores: spec.cores ?? 1, ram: spec.mem ?? 128 << 20,
    com1: spec.kernelLog ?? { write: () => { /* the kernel log, kept quiet */ } },
    consoleChannels: [null, spec.stdout ?? null, spec.stderr ?? null],
  });
  if (spec.stdin !== undefined && spec.stdin.length > 0) machine.console.input(0, spec.stdin);
  machine.console.closeInput(0);
  const modules = [
    ...(spec.image !== undefined ? [{ name: spec.path, data: spec.image }] : []),
    ...(spec.initrd !== undefined ? [{ name: 'initramfs', data: spec.initrd }] : []),
  ];
  const info = makeBootInfo(machine, modules, `init=${spec.path}${spec.initrd !== undefined ? ' initrd=initramfs' : ''}`);
  const kernel = bootKernel(machine, info, {
    profile: spec.profile ?? 'lwk', hz: spec.hz, seed: spec.seed ?? 0, quantumMs: spec.quantumMs, strace: spec.strace ?? null,
    init: { argv: [spec.path, ...(spec.args ?? [])], ...(spec.image === undefined ? { path: spec.path } : { module: spec.path }) },
    initrd: spec.initrd !== undefined ? 'initramfs' : undefined,
  });
  if (kernel.initError !== null) throw new UsageError(kernel.initError);
  spec.beforeRun?.(kernel, machine);
  const maxCycles = spec.maxCycles ?? Infinity;
  const t0 = performance.now();
  const reason = machine.run(maxCycles);
  const hostSeconds = (performance.now() - t0) / 1000;
  const done = (status: number, message: string | null): RunResult => ({ status, message, reason, machine, kernel, hostSeconds });
  switch (reason) {
    case 'exit':
      if (kernel.initStatus !== null) return done(kernel.initStatus, null);
      return done(126, `the machine powered off (status ${machine.exitStatus})`);
    case 'limit': return done(124, `--max-cycles ${maxCycles} reached`);
    case 'shutdown': return done(126, machine.stopDetail);
    case 'reset': return done(126, `machine reset: ${machine.stopDetail}`);
    case 'idle': return done(126, 'every core is idle and nothing can wake them: the program is blocked for good');
  }
}

function printStats(machine: Machine, k: Kernel, secs: number): void {
  const st = machine.stats();
  const lines = [
    `instructions ${st.instructions}`, `cycles ${st.cycles}`, `tlb-misses ${st.tlbMisses}`,
    `host-seconds ${secs.toFixed(3)}`, `mips ${(st.instructions / Math.max(secs, 1e-9) / 1e6).toFixed(1)}`,
    `profile ${k.sched.profile.name}`,
  ];
  for (const pc of k.percpu) {
    const n = pc.noise, cr = k.sched.cores[pc.index], tot = n.totals();
    lines.push(`core ${pc.index}: interruptions ${n.interruptions} (${n.interruptionCycles} cycles), idle-wakeups ${n.idleWakeups}, ` +
      `timer-interrupts ${cr.timerInterrupts}, switches ${n.switches}, preemptions ${cr.preemptions}, idle-cycles ${pc.idleCycles}, ` +
      `deferred-work-cycles ${n.deferredWorkCycles}`);
    lines.push(`core ${pc.index}: syscalls ${tot.syscalls.count} (${tot.syscalls.cycles} cycles), interrupts ${tot.interrupts.count} (${tot.interrupts.cycles} cycles), exceptions ${tot.exceptions.count}, signals ${tot.signals.count} (${tot.signals.cycles} cycles)`);
    for (const [v, t] of [...n.interrupts].sort((x, y) => x[0] - y[0])) lines.push(`core ${pc.index}:   vector 0x${v.toString(16)}: ${t.count} (${t.cycles} cycles)`);
    for (const [nr, t] of [...n.syscalls].sort((x, y) => x[0] - y[0])) lines.push(`core ${pc.index}:   ${syscallName(nr)}: ${t.count} (${t.cycles} cycles)`);
    for (const [sig, t] of [...n.signals].sort((x, y) => x[0] - y[0])) lines.push(`core ${pc.index}:   ${signalName(sig)} delivered: ${t.count} (${t.cycles} cycles)`);
  }
  for (const [nr, count] of k.unknownSyscalls) lines.push(`unimplemented ${syscallName(nr)} (${nr}): ${count}`);
  process.stderr.write(lines.map((l) => `v3vee: ${l}\n`).join(''));
}
