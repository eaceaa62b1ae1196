// `v3vee paging [--quick] [--json] [--out DIR] [--guests DIR]`: the paging study (issue 7,
// apps/experiments/README.md): both guest kernels bare on the machine (native) and under the
// VMM with nested (radix), hashed, shadow and shadow-cache paging. CSV, JSON and an SVG plot
// into --out (default out/paging/), a table (or with --json the summary object) on stdout,
// progress on stderr. Exit status: 0 when every configuration that can run did; 2 for a bad
// option or a missing guest image; 126 when a configuration's run failed (its reason is in the
// outputs and on stderr); 70 for an internal error.
import { formatNumber, stableJson } from '../experiments/format.ts';
import { writeOutputs } from '../experiments/outputs.ts';
import { pagingFiles } from '../experiments/paging-files.ts';
import { pagingConfigs, pagingJson, type PagingResult, runPaging } from '../experiments/paging.ts';
import { one, parseArgs, UsageError } from './options.ts';

export const PAGING_HELP = `usage: v3vee paging [--quick] [--json] [--out DIR] [--guests DIR]
Runs the Catamount-like guest (spmv) and the Linux-like guest bare on the machine (native) and
under the VMM on the LWK with nested (radix), hashed, shadow and shadow-cache paging. Reports
simulated cycles of the whole run and of the guest's own timed part, overhead against native,
exits by reason, TLB misses and page-walk references per miss. Writes summary.json, summary.csv, exits.csv and overhead.svg into --out (default
out/paging/). stdout: a table, or with --json the summary object; progress goes to stderr.
--guests takes the guest kernels from DIR (default apps/guests/prebuilt).`;

export async function pagingCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, { quick: 'flag', json: 'flag', out: 'value', guests: 'value', help: 'flag' });
  if (a.flags.has('help')) { process.stdout.write(PAGING_HELP + '\n'); return 0; }
  if (a.positional.length > 0) throw new UsageError(`paging takes no arguments (got '${a.positional[0]}')`);
  const quick = a.flags.has('quick');
  const out = one(a, 'out') ?? 'out/paging';
  const results = runPaging(pagingConfigs(one(a, 'guests')), quick, (line) => process.stderr.write(`v3vee: ${line}\n`));
  const paths = writeOutputs(out, await pagingFiles(results, quick));
  process.stderr.write(`v3vee: paging: wrote ${paths.length} files into ${out}/\n`);
  for (const r of results) if (r.failed) process.stderr.write(`v3vee: paging: ${r.name} failed: ${r.missing}\n`);
  if (a.flags.has('json')) process.stdout.write(stableJson(pagingJson(results, quick), false));
  else process.stdout.write(pagingTable(results));
  return results.some((r) => r.failed) ? 126 : 0;
}

export function pagingTable(results: readonly PagingResult[]): string {
  const head = ['config', 'cycles', 'overhead %', 'timed part %', 'exits', 'tlb misses', 'refs/miss'];
  const rows = results.map((r) => r.run === null
    ? [r.name, r.failed ? 'failed' : 'not run']
    : [r.name, String(r.run.cycles), r.overheadPercent === null ? '' : r.overheadPercent.toFixed(2),
      r.workloadOverheadPercent === null ? '' : r.workloadOverheadPercent.toFixed(2), String([...r.run.exitsByReason.values()].reduce((x, y) => x + y, 0)),
      String(r.run.tlbMisses), formatNumber(r.run.tlbMisses > 0 ? Math.round((100 * r.run.walkRefs) / r.run.tlbMisses) / 100 : 0)]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.filter((r) => r.length > 2).map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((x, i) => (i === r.length - 1 ? x : x.padEnd(w[i]))).join('  ').trimEnd();
  return [fmt(head), ...rows.map(fmt)].join('\n') + '\n';
}
