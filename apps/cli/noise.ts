// `v3vee noise [--quick] [--json] [--out DIR] [--config NAME]...`: the OS-noise experiment
// (issue 7, apps/experiments/README.md): selfish, FWQ and FTQ in each configuration, CSV, JSON
// and SVG plots into --out (default out/noise/), a table (or with --json the summary object) on
// stdout, progress on stderr. Exit status: 0; 2 for a bad option or a missing benchmark
// program; 126 when a benchmark run failed (one line naming it); 70 for an internal error.
import { ExperimentError, NOISE_CONFIG_NAMES, type ConfigResult, noiseConfigs, type NoiseOptions, runNoise } from '../experiments/noise.ts';
import { formatNumber, stableJson } from '../experiments/format.ts';
import { noiseJson } from '../experiments/noise.ts';
import { noiseFiles } from '../experiments/noise-files.ts';
import { writeOutputs } from '../experiments/outputs.ts';
import { one, parseArgs, UsageError } from './options.ts';

export const NOISE_HELP = `usage: v3vee noise [--quick] [--json] [--out DIR] [--config NAME]... [--programs DIR]
Runs the noise benchmarks (selfish, FWQ, FTQ) in each configuration: ${NOISE_CONFIG_NAMES.join(', ')}
(native: the programs as the LWK's first process, on the LWK or the gp profile; guest: the
Catamount-like guest running them under the VMM on the LWK, with nested or shadow paging).
Each measurement covers 1 s of simulated time (20 ms with --quick). Writes summary.json,
summary.csv, sources.csv (the kernel's own accounting beside the measured detours), costs.csv,
per-configuration CSVs and SVG plots into --out (default out/noise/). stdout: a table, or with
--json the summary object; progress goes to stderr. --config limits the run to the named
configurations; --programs takes the native benchmark programs from DIR (default
apps/native/prebuilt), --guests the guest kernels (default apps/guests/prebuilt).`;

const CPU_HZ = 2_200_000_000;

export async function noiseCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { quick: 'flag', json: 'flag', out: 'value', config: 'multi', programs: 'value', guests: 'value', help: 'flag' });
  if (a.flags.has('help')) { process.stdout.write(NOISE_HELP + '\n'); return 0; }
  if (a.positional.length > 0) throw new UsageError(`noise takes no arguments (got '${a.positional[0]}')`);
  const quick = a.flags.has('quick');
  const out = one(a, 'out') ?? 'out/noise';
  const wanted = a.opts.get('config');
  for (const w of wanted ?? []) if (!(NOISE_CONFIG_NAMES as readonly string[]).includes(w)) throw new UsageError(`--config ${w}: must be one of ${NOISE_CONFIG_NAMES.join(', ')}`);
  const configs = noiseConfigs(one(a, 'programs'), one(a, 'guests')).filter((c) => wanted === undefined || wanted.includes(c.name));
  const o: NoiseOptions = {
    targetCycles: quick ? CPU_HZ / 50 : CPU_HZ, cpuHz: CPU_HZ,
    progress: (line) => process.stderr.write(`v3vee: ${line}\n`),
  };
  let results: ConfigResult[];
  try { results = runNoise(configs, o); } catch (e) {
    if (e instanceof ExperimentError) { process.stderr.write(`v3vee: noise: ${e.message}\n`); return 126; }
    throw e;
  }
  const paths = writeOutputs(out, await noiseFiles(results, o, quick));
  process.stderr.write(`v3vee: noise: wrote ${paths.length} files into ${out}/\n`);
  if (a.flags.has('json')) process.stdout.write(stableJson(noiseJson(results, o, quick), false));
  else process.stdout.write(noiseTable(results));
  return 0;
}

/** The human-readable table: noise, detours and largest detour per configuration and benchmark. */
export function noiseTable(results: readonly ConfigResult[]): string {
  const head = ['config', 'bench', 'noise %', 'detours', 'per s', 'max (cycles)', 'host interruptions (cycles)', 'vm exits (cycles)'];
  const rows: string[][] = [];
  for (const c of results) {
    if (c.results === null) { rows.push([c.name, '-', 'not run', '', '', '', c.missing ?? '']); continue; }
    for (const b of ['selfish', 'fwq', 'ftq'] as const) {
      const s = c.results[b].summary, h = c.results[b].accounting;
      rows.push([c.name, b, s.noisePercent.toFixed(4), String(s.detours), formatNumber(Math.round(s.detourRatePerSecond)), String(s.maxDetourCycles),
        `${h.interruptions} (${h.interruptionCycles})`,
        h.keptBy === 'lwk' ? '-' : `${h.exits.reduce((n, e) => n + e.count, 0)} (${h.exits.reduce((n, e) => n + e.cycles, 0)})`]);
    }
  }
  const w = head.map((_, i) => Math.max(head[i].length, ...rows.filter((r) => r[2] !== 'not run').map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(w[i]))).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)].join('\n') + '\n';
}
