/**
 * The noise experiment (issue 7): FWQ, FTQ and selfish in each configuration, analysed by
 * analysis.ts, with the host's own account of the cycles it took beside the measured detours.
 *
 * A configuration is a name and a runner: a function that runs one benchmark program with
 * given arguments and returns its stdout and the host's accounting. The native configurations
 * run the static i386 programs (apps/native/prebuilt/{selfish,fwq,ftq}) as the LWK's first
 * process through `run`'s path (runLwk), with `--profile lwk` or `gp`. The guest
 * configurations run the Catamount-like guest (apps/guests/prebuilt/catamount.elf, the
 * benchmark as its application) in a VM under the VMM on the LWK (guest-vm.ts). A
 * configuration whose runner is null is reported as not run (never with numbers).
 *
 * Per configuration: selfish runs first (its calibrated threshold is the detour threshold of
 * FWQ and FTQ in that configuration), then FWQ (its sample count from a 16-sample calibration
 * run, so the measured samples cover the target time), then FTQ (quanta of 100 us). Each
 * measurement covers at least `targetCycles` of simulated time (20 ms with --quick, 1 s
 * otherwise).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kernelCostRows, mmCostRows } from '../../kernel/costs.ts';
import type { Kernel, ProfileName } from '../../kernel/kernel.ts';
import { interferenceCosts } from '../../kernel/interference.ts';
import { gpCosts } from '../../kernel/sched/profile.ts';
import { syscallName } from '../../kernel/syscalls/table.ts';
import { costTableRows } from '../../hw/costs.ts';
import { vmmCostRows } from '../../vmm/index.ts';
import { UsageError } from '../cli/options.ts';
import { runLwk } from '../cli/run.ts';
import { analyzeFtq, analyzeFwq, analyzeSelfish, type NoiseSummary } from './analysis.ts';
import { BenchOutputError, ftqData, fwqData, parseFtq, parseFwq, parseSelfish } from './bench-output.ts';
import { ExperimentError } from './errors.ts';
import { type CsvCell, type JsonValue, sortedRecord, toCsv } from './format.ts';
import { DEFAULT_GUESTS_DIR, readGuestImage, runGuestVm } from './guest-vm.ts';

export const BENCHES = ['selfish', 'fwq', 'ftq'] as const;
export type Bench = (typeof BENCHES)[number];

export const NOISE_CONFIG_NAMES = ['native-lwk', 'native-gp', 'guest-nested-lwk', 'guest-shadow-lwk', 'guest-nested-gp'] as const;
export type NoiseConfigName = (typeof NOISE_CONFIG_NAMES)[number];

/** One count-and-cycles line of the host's accounting. */
export interface SourceTally { name: string; count: number; cycles: number }

/** The host's own account of the cycles it took during one benchmark run (the whole process). */
export interface Accounting {
  /** Who kept it: 'lwk' (the LWK's per-core noise accounting, kernel/noise.ts) or 'lwk+vmm' (with the VMM's exits). */
  keptBy: string;
  /** Interrupts that stopped the running program, and the cycles they took (deferred work included). */
  interruptions: number;
  interruptionCycles: number;
  /** Of those cycles, the general-purpose profile's deferred work (0 under the LWK). */
  deferredWorkCycles: number;
  timerInterrupts: number;
  contextSwitches: number;
  interrupts: SourceTally[];
  syscalls: SourceTally[];
  exceptions: SourceTally[];
  /** VM exits by reason (guest configurations). */
  exits: SourceTally[];
}

/** What a runner returns for one benchmark run. */
export interface BenchRun { stdout: string; accounting: Accounting; cycles: number }

/** Runs one benchmark with `key=value` arguments in a configuration. */
export type NoiseRunner = (bench: Bench, args: readonly string[]) => BenchRun;

export interface NoiseConfig {
  name: NoiseConfigName;
  description: string;
  /** null: this configuration cannot run yet (`missing` says why). */
  runner: NoiseRunner | null;
  missing?: string;
}

export { ExperimentError } from './errors.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Where the native benchmark programs are, relative to the checkout. */
export const DEFAULT_PROGRAMS = 'apps/native/prebuilt';

/** A native benchmark program (its path: relative to the checkout unless absolute; and its bytes). */
export function nativeProgram(bench: Bench, dir = DEFAULT_PROGRAMS): { path: string; image: Uint8Array } {
  const path = `${dir}/${bench}`;
  try { return { path, image: new Uint8Array(readFileSync(isAbsolute(dir) ? path : join(ROOT, path))) }; } catch (e) {
    throw new UsageError(`cannot read the benchmark program ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'}): build it with apps/native/build.sh`);
  }
}

const hex2 = (v: number) => '0x' + v.toString(16).padStart(2, '0');

/** The LWK's accounting of core 0 (the benchmark's core). */
export function kernelAccounting(k: Kernel): Accounting {
  const pc = k.percpu[0], n = pc.noise, cr = k.sched.cores[0];
  const tallies = <K>(m: Map<K, { count: number; cycles: number }>, name: (k: K) => string): SourceTally[] =>
    [...m].map(([key, t]) => ({ name: name(key), count: t.count, cycles: t.cycles })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return {
    keptBy: 'lwk',
    interruptions: n.interruptions, interruptionCycles: n.interruptionCycles, deferredWorkCycles: n.deferredWorkCycles,
    timerInterrupts: cr.timerInterrupts, contextSwitches: n.switches,
    interrupts: tallies(n.interrupts, (v: number) => `vector ${hex2(v)}`),
    syscalls: tallies(n.syscalls, (nr: number) => syscallName(nr)),
    exceptions: tallies(n.exceptions, (v: number) => `vector ${hex2(v)}`),
    exits: [],
  };
}

/** A native configuration: the benchmark as the LWK's first process under `profile`. */
export function nativeRunner(profile: ProfileName, programs = DEFAULT_PROGRAMS): NoiseRunner {
  return (bench, args) => {
    const { path, image } = nativeProgram(bench, programs);
    const out: Uint8Array[] = [], err: Uint8Array[] = [];
    const r = runLwk({
      path, image, args, profile, seed: 0,
      stdout: { write: (b) => { out.push(b.slice()); } },
      stderr: { write: (b) => { err.push(b.slice()); } },
    });
    const text = (parts: Uint8Array[]) => Buffer.concat(parts).toString('latin1');
    if (r.status !== 0) {
      const why = r.message ?? (text(err).trim().split('\n')[0] || `exit status ${r.status}`);
      throw new ExperimentError(`native-${profile}: ${bench} ${args.join(' ')} failed: ${why}`);
    }
    return { stdout: text(out), accounting: kernelAccounting(r.kernel), cycles: r.machine.stats().cycles };
  };
}

/** VM exits by reason (name, count, the VMM's handler cycles), sorted by name. */
export function exitTallies(byReason: readonly { name: string; count: number; cycles: number }[]): SourceTally[] {
  return byReason.filter((e) => e.count > 0).map((e) => ({ name: e.name, count: e.count, cycles: e.cycles }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * A guest configuration: the Catamount-like guest (apps/guests/prebuilt/catamount.elf) running
 * the benchmark as its one application, in a VM with `paging` under the VMM on the LWK booted
 * with `profile`. The accounting is the kernel's (interrupts that took the core from the guest)
 * with the VMM's exits by reason.
 */
export function guestRunner(paging: 'nested' | 'shadow', profile: ProfileName, guests = DEFAULT_GUESTS_DIR): NoiseRunner {
  return (bench, args) => {
    const { image } = readGuestImage('catamount.elf', guests);
    const r = runGuestVm({ path: 'catamount.elf', image, cmdline: [bench, ...args].join(' '), paging, profile, what: `guest-${paging}-${profile}: ${bench} ${args.join(' ')}` });
    const accounting = { ...kernelAccounting(r.kernel), keptBy: 'lwk+vmm', exits: exitTallies(r.stats.byReason) };
    return { stdout: r.output, accounting, cycles: r.delta.cycles };
  };
}

/** The five configurations of the issue, in its order. */
export function noiseConfigs(programs = DEFAULT_PROGRAMS, guests = DEFAULT_GUESTS_DIR): NoiseConfig[] {
  return [
    { name: 'native-lwk', description: 'native programs on the LWK (tickless, no deferred work)', runner: nativeRunner('lwk', programs) },
    { name: 'native-gp', description: 'native programs on the general-purpose profile (250 Hz tick, deferred work)', runner: nativeRunner('gp', programs) },
    { name: 'guest-nested-lwk', description: 'the Catamount-like guest under the VMM on the LWK, nested paging (4-level radix)', runner: guestRunner('nested', 'lwk', guests) },
    { name: 'guest-shadow-lwk', description: 'the Catamount-like guest under the VMM on the LWK, shadow paging (virtual TLB)', runner: guestRunner('shadow', 'lwk', guests) },
    { name: 'guest-nested-gp', description: 'the Catamount-like guest under the VMM on the general-purpose profile, nested paging (4-level radix)', runner: guestRunner('nested', 'gp', guests) },
  ];
}

export interface NoiseOptions {
  /** Simulated cycles each measurement covers at least. */
  targetCycles: number;
  cpuHz: number;
  /** FTQ's quantum in cycles (100 us at 2.2 GHz by default). */
  ftqQuantumCycles?: number;
  /** FWQ's work per sample (loop iterations). */
  fwqWork?: number;
  /** Called before each run (progress on stderr). */
  progress?: (line: string) => void;
}

export interface BenchResult {
  summary: NoiseSummary;
  accounting: Accounting;
  /** The arguments the benchmark ran with. */
  args: string[];
  /** The raw measurement: FWQ samples or FTQ counts (empty for selfish, whose detours are the summary's series). */
  raw: number[];
}

export interface ConfigResult {
  name: NoiseConfigName;
  description: string;
  /** null when the configuration did not run (`missing` says why). */
  results: Record<Bench, BenchResult> | null;
  missing?: string;
}

function parsed<T>(config: string, bench: Bench, f: () => T): T {
  try { return f(); } catch (e) {
    if (e instanceof BenchOutputError || e instanceof RangeError) throw new ExperimentError(`${config}: ${bench}: ${e.message}`);
    throw e;
  }
}

/** Runs the three benchmarks in one configuration. */
export function runNoiseConfig(c: NoiseConfig, o: NoiseOptions, step: () => string = () => ''): ConfigResult {
  if (c.runner === null) return { name: c.name, description: c.description, results: null, missing: c.missing };
  const run = c.runner;
  const say = (what: string) => o.progress?.(`noise: ${c.name}: ${what}${step()}`);
  const quantum = o.ftqQuantumCycles ?? Math.round(o.cpuHz / 10_000);
  const work = o.fwqWork ?? 2000;

  say('selfish');
  const sArgs = [`duration=${o.targetCycles}`];
  const s = run('selfish', sArgs);
  const so = parsed(c.name, 'selfish', () => parseSelfish(s.stdout));
  const selfish = parsed(c.name, 'selfish', () => analyzeSelfish(so, o.cpuHz));
  const threshold = so.thresholdCycles;

  say('fwq');
  const cal = parsed(c.name, 'fwq', () => parseFwq(run('fwq', ['samples=16', `work=${work}`]).stdout));
  const perSample = Math.max(1, Math.min(...cal.samples));
  const fArgs = [`samples=${Math.ceil(o.targetCycles / perSample)}`, `work=${work}`];
  const f = run('fwq', fArgs);
  const fo = parsed(c.name, 'fwq', () => parseFwq(f.stdout));
  const fwq = parsed(c.name, 'fwq', () => analyzeFwq(fwqData(fo, threshold), o.cpuHz));

  say('ftq');
  const qArgs = [`quanta=${Math.ceil(o.targetCycles / quantum)}`, `quantum=${quantum}`];
  const q = run('ftq', qArgs);
  const qo = parsed(c.name, 'ftq', () => parseFtq(q.stdout));
  const ftq = parsed(c.name, 'ftq', () => analyzeFtq(ftqData(qo, threshold), o.cpuHz));

  return {
    name: c.name, description: c.description,
    results: {
      selfish: { summary: selfish, accounting: s.accounting, args: sArgs, raw: [] },
      fwq: { summary: fwq, accounting: f.accounting, args: fArgs, raw: fo.samples },
      ftq: { summary: ftq, accounting: q.accounting, args: qArgs, raw: qo.counts },
    },
  };
}

/** Runs every configuration (in the order). */
export function runNoise(configs: readonly NoiseConfig[], o: NoiseOptions): ConfigResult[] {
  const total = configs.filter((c) => c.runner !== null).length * BENCHES.length;
  let done = 0;
  return configs.map((c) => runNoiseConfig(c, o, () => ` (${++done}/${total})`));
}

// ---- outputs ----

function tallyRecord(ts: readonly SourceTally[]): JsonValue {
  return sortedRecord(ts.map((t) => [t.name, { count: t.count, cycles: t.cycles }] as [string, JsonValue]));
}

function accountingJson(a: Accounting): JsonValue {
  return {
    keptBy: a.keptBy, interruptions: a.interruptions, interruptionCycles: a.interruptionCycles,
    deferredWorkCycles: a.deferredWorkCycles, timerInterrupts: a.timerInterrupts, contextSwitches: a.contextSwitches,
    interrupts: tallyRecord(a.interrupts), syscalls: tallyRecord(a.syscalls), exceptions: tallyRecord(a.exceptions), exits: tallyRecord(a.exits),
  };
}

/** A benchmark's summary as in the issue (noisePercent, detours, maxDetourCycles first), with more fields after. */
export function benchJson(r: BenchResult): JsonValue {
  const s = r.summary;
  return {
    noisePercent: s.noisePercent, detours: s.detours, maxDetourCycles: s.maxDetourCycles,
    detourRatePerSecond: s.detourRatePerSecond, totalDetourCycles: s.totalDetourCycles, runCycles: s.runCycles,
    thresholdCycles: s.thresholdCycles, args: r.args.join(' '),
    histogram: s.histogram.map((h) => ({ log2: h.log2, lowCycles: h.lowCycles, highCycles: h.highCycles, count: h.count })),
    sources: accountingJson(r.accounting),
  };
}

/** The `--json` summary: {"experiment": "noise", "configs": [...]} with more fields after. */
export function noiseJson(results: readonly ConfigResult[], o: NoiseOptions, quick: boolean): JsonValue {
  return {
    experiment: 'noise',
    configs: results.map((c): JsonValue => c.results === null
      ? { name: c.name, status: 'not-run', reason: c.missing ?? 'not available', description: c.description, fwq: null, ftq: null, selfish: null }
      : { name: c.name, status: 'ok', description: c.description, fwq: benchJson(c.results.fwq), ftq: benchJson(c.results.ftq), selfish: benchJson(c.results.selfish) }),
    quick,
    cpuHz: o.cpuHz,
    targetCycles: o.targetCycles,
    costTables: ['hw/costs.ts', 'kernel/costs.ts', 'kernel/interference.ts', 'kernel/sched/profile.ts (gp profile)', 'vmm/costs.ts'],
  };
}

/** summary.csv: one row per configuration and benchmark. */
export function summaryCsv(results: readonly ConfigResult[]): string {
  const rows: CsvCell[][] = [];
  for (const c of results) for (const b of BENCHES) {
    const r = c.results?.[b];
    if (r === undefined) { rows.push([c.name, b, 'not-run', '', '', '', '', '', '', '', '', '', '']); continue; }
    const s = r.summary, a = r.accounting;
    rows.push([c.name, b, 'ok', s.noisePercent, s.detours, s.detourRatePerSecond, s.maxDetourCycles, s.totalDetourCycles, s.runCycles, s.thresholdCycles, a.interruptions, a.interruptionCycles, a.deferredWorkCycles]);
  }
  return toCsv(['config', 'benchmark', 'status', 'noise_percent', 'detours', 'detours_per_second', 'max_detour_cycles', 'total_detour_cycles', 'run_cycles', 'threshold_cycles', 'host_interruptions', 'host_interruption_cycles', 'host_deferred_work_cycles'], rows);
}

/** <config>.csv: every detour of the three benchmarks (time and length in cycles). */
export function detoursCsv(c: ConfigResult): string {
  const rows: CsvCell[][] = [];
  if (c.results !== null) for (const b of BENCHES) for (const d of c.results[b].summary.series) rows.push([b, d.atCycles, d.lengthCycles]);
  return toCsv(['benchmark', 'at_cycles', 'length_cycles'], rows);
}

/** <config>-fwq-samples.csv / <config>-ftq-counts.csv: the raw measurement. */
export function rawCsv(c: ConfigResult, b: 'fwq' | 'ftq'): string {
  const raw = c.results?.[b].raw ?? [];
  return toCsv(['index', b === 'fwq' ? 'cycles' : 'count'], raw.map((v, i) => [i, v]));
}

/** sources.csv: the host's account beside the measured detours, per configuration and benchmark. */
export function sourcesCsv(results: readonly ConfigResult[]): string {
  const rows: CsvCell[][] = [];
  for (const c of results) {
    if (c.results === null) continue;
    for (const b of BENCHES) {
      const a = c.results[b].accounting, s = c.results[b].summary;
      rows.push([c.name, b, 'measured', 'detours', s.detours, s.totalDetourCycles]);
      rows.push([c.name, b, 'host', 'interruptions', a.interruptions, a.interruptionCycles]);
      rows.push([c.name, b, 'host', 'deferred-work', '', a.deferredWorkCycles]);
      for (const [kind, ts] of [['interrupt', a.interrupts], ['syscall', a.syscalls], ['exception', a.exceptions], ['exit', a.exits]] as const) {
        for (const t of ts) rows.push([c.name, b, kind, t.name, t.count, t.cycles]);
      }
    }
  }
  return toCsv(['config', 'benchmark', 'kind', 'name', 'count', 'cycles'], rows);
}

/** costs.csv: the cost tables the run used (DESIGN.md: experiments say which table they used). */
export function costsCsv(): string {
  const rows: CsvCell[][] = [];
  for (const r of vmmCostRows()) rows.push(['vmm', r.name, r.cycles, r.kind, r.source]);
  for (const r of costTableRows()) rows.push(['hw', r.name, r.cycles, r.kind, r.source]);
  for (const r of kernelCostRows()) rows.push(['kernel', r.name, r.cycles, r.kind, r.source]);
  for (const r of mmCostRows()) rows.push(['kernel-mm', r.name, r.cycles, r.kind, r.source]);
  for (const [name, e] of Object.entries(interferenceCosts)) rows.push(['interference', name, e.cycles, e.kind, e.source]);
  for (const [name, e] of Object.entries(gpCosts)) rows.push(['gp-profile', name, e.cycles, e.kind, e.source]);
  return toCsv(['table', 'name', 'cycles', 'kind', 'source'], rows);
}
