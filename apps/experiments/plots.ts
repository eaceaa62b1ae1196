/**
 * The experiments' plots: Vega-Lite specifications compiled to Vega and rendered to SVG
 * headless (vega's `renderer: 'none'` view and `toSVG()`: no canvas, no browser). The same data
 * gives the same SVG bytes: the specs hold no time stamps, and the data is passed in a fixed
 * order.
 *
 * - detourTimeline: detour length (log scale) against time, one panel per configuration, as
 *   the selfish (Beckman et al.) and FTQ (Sottile and Minnich) papers draw them.
 * - detourHistogram: detours per log2 length bucket, one bar per configuration.
 * - overheadBars: a bar per guest and paging mode (the paging study's overhead against native).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Detour, HistogramBucket } from './analysis.ts';

/** Renders a Vega-Lite spec to SVG text. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logLevel: vega.Error });
  try {
    const svg = normalizeIds(await view.toSVG());
    return svg.endsWith('\n') ? svg : svg + '\n';
  } finally {
    view.finalize();
  }
}

/**
 * vega numbers clip paths and gradients with a process-wide counter (clip1, clip2, ...), so a
 * second rendering in the same process would name them differently: renumber them in order of
 * first appearance, so the SVG depends on the chart only.
 */
export function normalizeIds(svg: string): string {
  const names = new Map<string, string>();
  return svg.replace(/\b(clip|gradient|pattern)(\d+)\b/g, (m: string, kind: string) => {
    let n = names.get(m);
    if (n === undefined) { n = `${kind}${[...names.keys()].filter((k) => k.startsWith(kind)).length + 1}`; names.set(m, n); }
    return n;
  });
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

export interface ConfigSeries {
  config: string;
  detours: readonly Detour[];
}

/**
 * Detour length (microseconds, log scale) against time (milliseconds): one panel per
 * configuration, stacked, with the same axes, so a configuration with no detours still shows
 * its (empty) panel. `runCycles` sets the time axis.
 */
export function detourTimelineSpec(title: string, series: readonly ConfigSeries[], cpuHz: number, runCycles?: number): TopLevelSpec {
  const us = (c: number) => (Math.max(c, 1) / cpuHz) * 1e6;
  let lo = Infinity, hi = -Infinity, end = runCycles ?? 0;
  for (const s of series) for (const d of s.detours) {
    lo = Math.min(lo, us(d.lengthCycles)); hi = Math.max(hi, us(d.lengthCycles));
    end = Math.max(end, d.atCycles);
  }
  // whole decades around the data (0.01 us .. 10 us when there is none)
  const yDomain = lo === Infinity ? [0.01, 10] : [10 ** Math.floor(Math.log10(lo)), 10 ** Math.ceil(Math.log10(hi) + (Math.log10(hi) % 1 === 0 ? 1 : 0))];
  const xDomain = [0, (Math.max(end, 1) / cpuHz) * 1e3];
  return {
    $schema: SCHEMA,
    title,
    vconcat: series.map((s, i) => ({
      title: { text: `${s.config}: ${s.detours.length} detours`, fontSize: 11, anchor: 'start' },
      width: 520, height: 90,
      data: { values: s.detours.map((d) => ({ timeMs: (d.atCycles / cpuHz) * 1e3, lengthUs: us(d.lengthCycles) })) },
      mark: { type: 'point', filled: true, size: 30, color: PALETTE[i % PALETTE.length] },
      encoding: {
        x: { field: 'timeMs', type: 'quantitative', title: 'time (ms)', scale: { domain: xDomain, nice: false } },
        y: { field: 'lengthUs', type: 'quantitative', title: 'detour (µs)', scale: { type: 'log', domain: yDomain } },
      },
    })),
  } as TopLevelSpec;
}

/** Colours of the configurations (vega's category10, fixed here so panels and legends agree). */
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f'];

export interface ConfigHistogram {
  config: string;
  histogram: readonly HistogramBucket[];
}

/** Detours per log2 length bucket, grouped by configuration. */
export function detourHistogramSpec(title: string, hists: readonly ConfigHistogram[]): TopLevelSpec {
  const values: { config: string; bucket: string; log2: number; count: number }[] = [];
  for (const h of hists) for (const b of h.histogram) if (b.count > 0) values.push({ config: h.config, bucket: `2^${b.log2}`, log2: b.log2, count: b.count });
  // every bucket from the shortest detour's to the longest's, empty ones included
  const ks = values.map((v) => v.log2);
  const buckets: string[] = [];
  for (let k = Math.min(...ks); k <= Math.max(...ks); k++) buckets.push(`2^${k}`);
  return {
    $schema: SCHEMA,
    title,
    width: 520, height: 220,
    data: { values },
    mark: 'bar',
    encoding: {
      x: { field: 'bucket', type: 'ordinal', title: 'detour length (cycles, log2 bucket)', sort: buckets, scale: { domain: buckets }, axis: { labelAngle: 0 } },
      xOffset: { field: 'config', type: 'nominal', sort: hists.map((h) => h.config), scale: { domain: hists.map((h) => h.config) } },
      y: { field: 'count', type: 'quantitative', title: 'detours (symlog scale)', scale: { type: 'symlog' }, axis: { tickMinStep: 1 } },
      color: { field: 'config', type: 'nominal', title: 'configuration', scale: { domain: hists.map((h) => h.config), range: hists.map((_, i) => PALETTE[i % PALETTE.length]) } },
    },
  } as TopLevelSpec;
}

export interface OverheadBar {
  guest: string;
  mode: string;
  /** Which figure the bar shows (e.g. "whole run", "timed part"): bars of one mode side by side. */
  measure: string;
  overheadPercent: number;
}

/** Overhead against native in percent, a group of bars per paging mode, a panel per guest. */
export function overheadBarsSpec(title: string, bars: readonly OverheadBar[]): TopLevelSpec {
  const modes = [...new Set(bars.map((b) => b.mode))];
  const measures = [...new Set(bars.map((b) => b.measure))];
  return {
    $schema: SCHEMA,
    title,
    data: { values: bars.map((b) => ({ guest: b.guest, mode: b.mode, measure: b.measure, overheadPercent: b.overheadPercent })) },
    facet: { column: { field: 'guest', type: 'nominal', title: null } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 320, height: 220,
      encoding: {
        x: { field: 'mode', type: 'ordinal', title: 'paging mode', sort: modes, axis: { labelAngle: 0 } },
        xOffset: { field: 'measure', type: 'nominal', sort: measures, scale: { domain: measures } },
        y: { field: 'overheadPercent', type: 'quantitative', title: 'overhead against native (%)' },
      },
      layer: [
        { mark: 'bar', encoding: { color: { field: 'measure', type: 'nominal', title: null, scale: { domain: measures, range: measures.map((_, i) => PALETTE[i % PALETTE.length]) } } } },
        { mark: { type: 'text', dy: -6, fontSize: 9 }, encoding: { text: { field: 'overheadPercent', type: 'quantitative', format: '.1f' } } },
      ],
    },
  } as TopLevelSpec;
}
