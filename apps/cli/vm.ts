// `v3vee vm KERNEL|CONFIG.json`: boots the LWK on the emulated PC, which creates a VM through the
// VMM library (vmm/index.ts createVm, on the LWK's host interface) and runs it until it stops.
// The guest's COM1 is stdout (host stream 'guest-console' = host console channel 1; stdin on
// channel 0) and nothing else is: the kernel log (COM1 of the machine) goes to stderr with
// --verbose, `--trace exits` lines go to stderr. A KERNEL (a Multiboot ELF) gets the default
// config; a CONFIG.json is validated (paths in it are relative to the config file) and the
// flags override its fields. The machine is sized for the guest plus the LWK. Exit status
// (DESIGN.md): (v << 1) | 1 for isa-debug-exit, 0 for a clean halt or reset, 2 when the job
// could not start (bad option or config, unreadable or malformed kernel: one line naming the
// problem), 124 at --max-cycles, 126 when the VM stopped in error (one line: reason, guest EIP).
import { readFileSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { ByteSink } from '../../hw/devices/types.ts';
import { Machine } from '../../hw/machine.ts';
import * as image from '../../kernel/image.ts';
import type { ProfileName } from '../../kernel/kernel.ts';
import type { VmConfig } from '../../vmm/index.ts';
import { type BootResult, KernelLogSink, runBooted, statsLines } from './boot.ts';
import { one, parseArgs, parseIntOption, parseSize, UsageError } from './options.ts';
import { readStdinIfPiped, StdoutSink } from './streams.ts';

export const VM_HELP = `usage: v3vee vm [--paging nested|hashed|shadow|shadow-cache] [--mem SIZE] [--cores N]
                [--profile lwk|gp] [--stats] [--verbose] [--trace exits] [--max-cycles N]
                [--seed N] [--cmdline STR] KERNEL|CONFIG.json
Boots the LWK, which creates a VM through the VMM library and runs KERNEL (a Multiboot v1 ELF,
as qemu -kernel; its command line is 'KERNEL CMDLINE') or the VM a JSON config describes
(vmm/config.ts; paths in it relative to the config file; the flags override its fields).
--mem (default 128M) and --cores size the guest; the machine gets room for the LWK as well.
The guest's COM1 is stdout. --stats prints the VM's exit statistics and the LWK's noise
accounting on stderr; --trace exits logs every exit; --verbose shows the kernel log. Exit
status: (v << 1) | 1 for isa-debug-exit, 0 for a clean halt, 126 when the VM stopped in error.`;

const PAGING = ['nested', 'hashed', 'shadow', 'shadow-cache'];
/** The emulated PC's RAM limit (below the PCI hole: hw/mem/). */
const MAX_MACHINE_RAM = 0xc000_0000;

/** Reads `path`; the error names the file as the user wrote it (`shown`). */
function readFile(path: string, what: string, shown = path, from = ''): Uint8Array {
  try { return new Uint8Array(readFileSync(path)); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot read ${what} '${shown}'${from} (${code})`);
  }
}

export interface VmOverrides {
  paging?: string;
  memory?: number;
  cores?: number;
  cmdline?: string;
  traceExits?: boolean;
}

/**
 * The VM a KERNEL or CONFIG.json argument describes, with the flags' overrides applied and every
 * file it names read: the config (validated) and the files by the names the config uses.
 * Throws UsageError (one line) when the config or a file is bad.
 */
export function loadVmSpec(arg: string, o: VmOverrides = {}, cwd = '.'): { config: VmConfig; files: Record<string, Uint8Array> } {
  let json: Record<string, unknown>;
  let base: string;
  const isConfig = arg.toLowerCase().endsWith('.json');
  if (isConfig) {
    const text = Buffer.from(readFile(resolve(cwd, arg), 'config', arg)).toString('utf8');
    let parsed: unknown;
    try { parsed = JSON.parse(text); } catch (e) {
      throw new UsageError(`config ${arg}: not valid JSON (${(e as Error).message})`);
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`config ${arg}: (top level): must be a JSON object`);
    json = { ...(parsed as Record<string, unknown>) };
    base = resolve(cwd, dirname(arg));
  } else {
    json = { name: basename(arg).replace(/\.[^.]*$/, '').slice(0, 64) || 'vm', kernel: { path: arg, format: 'multiboot' } };
    base = resolve(cwd);
  }
  if (o.paging !== undefined) json.paging = o.paging;
  if (o.memory !== undefined) json.memory = o.memory;
  if (o.cores !== undefined) json.cores = o.cores;
  if (o.cmdline !== undefined) json.cmdline = o.cmdline;
  if (o.traceExits) json.traceExits = true;
  const v = image.checkConfig(json);
  if (!v.ok) throw new UsageError(isConfig ? `${arg}: ${v.error}` : v.error);
  const config = v.value;
  const files: Record<string, Uint8Array> = {};
  const from = isConfig ? ` named in ${arg}` : '';
  files[config.kernel.path] = readFile(resolve(base, config.kernel.path), 'kernel', config.kernel.path, from);
  for (const f of config.files) files[f.path] = readFile(resolve(base, f.path), 'file', f.path, from);
  return { config, files };
}

export interface VmRunSpec {
  config: VmConfig;
  files: Readonly<Record<string, Uint8Array>>;
  profile?: ProfileName;
  seed?: number;
  maxCycles?: number;
  stdin?: Uint8Array;
  stdout: ByteSink;
  stderr: ByteSink;
  /** COM1, the kernel console (default: discarded). */
  kernelLog?: ByteSink;
}

/** Boots the LWK (from source) with one VM and runs it to its end: `vm`'s job, for the CLI and tests. */
export function runVm(spec: VmRunSpec): BootResult {
  const ram = image.hostMemoryFor(spec.config.memory);
  if (ram > MAX_MACHINE_RAM) {
    throw new UsageError(`memory: ${spec.config.memory / 2 ** 20} MiB of guest memory plus the LWK's ${image.LWK_MEMORY / 2 ** 20} MiB exceed the machine's 3 GiB (use at most ${(MAX_MACHINE_RAM - image.LWK_MEMORY) / 2 ** 20}M)`);
  }
  const machine = new Machine({
    cores: Math.max(1, spec.config.cores), ram,
    com1: spec.kernelLog ?? { write: () => { /* the kernel log, kept quiet */ } },
    consoleChannels: [null, spec.stdout, spec.stderr],
  });
  if (spec.stdin !== undefined && spec.stdin.length > 0) machine.console.input(0, spec.stdin);
  machine.console.closeInput(0);
  const img = image.boot(machine, { profile: spec.profile ?? 'lwk', seed: spec.seed ?? 0, vms: [{ config: spec.config, files: spec.files }] });
  const out = runBooted(machine, img, image, 'vm', spec.maxCycles ?? Infinity);
  return { ...out, machine, image: img };
}

export async function vmCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, {
    paging: 'value', mem: 'value', cores: 'value', profile: 'value', 'max-cycles': 'value', seed: 'value', cmdline: 'value', trace: 'value',
    stats: 'flag', verbose: 'flag', help: 'flag',
  });
  if (a.flags.has('help')) { process.stdout.write(VM_HELP + '\n'); return 0; }
  if (a.positional.length !== 1) throw new UsageError('vm needs exactly one KERNEL or CONFIG.json argument');
  const paging = one(a, 'paging');
  if (paging !== undefined && !PAGING.includes(paging)) throw new UsageError(`--paging ${paging}: must be one of ${PAGING.join(', ')}`);
  const memArg = one(a, 'mem');
  let memory: number | undefined;
  if (memArg !== undefined) {
    memory = parseSize(memArg);
    if (memory < 2 << 20 || memory > 3 * 2 ** 30 || memory % (1 << 20) !== 0) throw new UsageError(`--mem ${memArg}: must be a multiple of 1M between 2M and 3G`);
  }
  const cores = one(a, 'cores') !== undefined ? parseIntOption(one(a, 'cores')!, '--cores', 1, 64) : undefined;
  const profile = one(a, 'profile') ?? 'lwk';
  if (profile !== 'lwk' && profile !== 'gp') throw new UsageError(`--profile ${profile}: must be lwk or gp`);
  const seed = one(a, 'seed') !== undefined ? parseIntOption(one(a, 'seed')!, '--seed', 0, 0xffffffff) : 0;
  const maxCycles = one(a, 'max-cycles') !== undefined ? parseIntOption(one(a, 'max-cycles')!, '--max-cycles', 1) : Infinity;
  const trace = one(a, 'trace');
  if (trace !== undefined && trace !== 'exits') throw new UsageError(`--trace ${trace}: vm supports only 'exits'`);
  const { config, files } = loadVmSpec(a.positional[0], { paging, memory, cores, cmdline: one(a, 'cmdline'), traceExits: trace === 'exits' });

  const stdout = new StdoutSink(1), stderr = new StdoutSink(2);
  const r = runVm({
    config, files, profile, seed, maxCycles, stdin: readStdinIfPiped() ?? undefined, stdout, stderr,
    kernelLog: new KernelLogSink(stderr, a.flags.has('verbose'), trace === 'exits'),
  });
  if (a.flags.has('stats')) process.stderr.write(statsLines(r.machine, r.image, image, r.hostSeconds).map((l) => `v3vee: ${l}\n`).join(''));
  if (r.message !== null) process.stderr.write(`v3vee: ${r.message}\n`);
  return r.status;
}
