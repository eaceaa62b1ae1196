/**
 * The noise experiment's files: summary.json (the `--json` object), summary.csv, sources.csv,
 * costs.csv, per configuration <config>.csv (its detours), <config>-fwq-samples.csv and
 * <config>-ftq-counts.csv (raw), and the plots: <bench>-timeline.svg (detour length against
 * time, log scale, a panel per configuration) and <bench>-histogram.svg (log2 buckets).
 */
import { BENCHES, type ConfigResult, costsCsv, detoursCsv, type NoiseOptions, noiseJson, rawCsv, sourcesCsv, summaryCsv } from './noise.ts';
import { stableJson } from './format.ts';
import type { OutputFile } from './outputs.ts';
import { detourHistogramSpec, detourTimelineSpec, renderSvg } from './plots.ts';

const TITLES = { selfish: 'selfish detours', fwq: 'FWQ detours (samples above the minimum by more than the selfish threshold)', ftq: 'FTQ lost work per 100 us quantum, in cycles' } as const;

export async function noiseFiles(results: readonly ConfigResult[], o: NoiseOptions, quick: boolean): Promise<OutputFile[]> {
  const files: OutputFile[] = [
    { name: 'summary.json', text: stableJson(noiseJson(results, o, quick)) },
    { name: 'summary.csv', text: summaryCsv(results) },
    { name: 'sources.csv', text: sourcesCsv(results) },
    { name: 'costs.csv', text: costsCsv() },
  ];
  for (const c of results) {
    if (c.results === null) continue;
    files.push({ name: `${c.name}.csv`, text: detoursCsv(c) });
    files.push({ name: `${c.name}-fwq-samples.csv`, text: rawCsv(c, 'fwq') });
    files.push({ name: `${c.name}-ftq-counts.csv`, text: rawCsv(c, 'ftq') });
  }
  const ran = results.filter((c) => c.results !== null);
  for (const b of BENCHES) {
    const series = ran.map((c) => ({ config: c.name, detours: c.results![b].summary.series }));
    files.push({ name: `${b}-timeline.svg`, text: await renderSvg(detourTimelineSpec(`${TITLES[b]} against time`, series, o.cpuHz, o.targetCycles)) });
    const hists = ran.map((c) => ({ config: c.name, histogram: c.results![b].summary.histogram }));
    files.push({ name: `${b}-histogram.svg`, text: await renderSvg(detourHistogramSpec(`${b}: detour lengths`, hists)) });
  }
  return files;
}
