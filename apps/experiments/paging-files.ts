/**
 * The paging experiment's files: summary.json (the `--json` object), summary.csv, exits.csv,
 * costs.csv (the cost tables: hw, kernel, VMM) and
 * overhead.svg (overhead against native per guest and mode, whole run and the guest's timed part,
 * for the configurations that ran).
 */
import { stableJson } from './format.ts';
import { costsCsv } from './noise.ts';
import type { OutputFile } from './outputs.ts';
import { exitsCsv, pagingCsv, pagingJson, type PagingResult } from './paging.ts';
import { type OverheadBar, overheadBarsSpec, renderSvg } from './plots.ts';

export async function pagingFiles(results: readonly PagingResult[], quick: boolean): Promise<OutputFile[]> {
  const bars: OverheadBar[] = [];
  for (const r of results) {
    if (r.overheadPercent !== null) bars.push({ guest: r.guest, mode: r.mode, measure: 'whole run', overheadPercent: r.overheadPercent });
    if (r.workloadOverheadPercent !== null) bars.push({ guest: r.guest, mode: r.mode, measure: 'timed part', overheadPercent: r.workloadOverheadPercent });
  }
  return [
    { name: 'summary.json', text: stableJson(pagingJson(results, quick)) },
    { name: 'summary.csv', text: pagingCsv(results) },
    { name: 'exits.csv', text: exitsCsv(results) },
    { name: 'costs.csv', text: costsCsv() },
    { name: 'overhead.svg', text: await renderSvg(overheadBarsSpec('simulated cycles: overhead against the guest bare on the machine', bars)) },
  ];
}
