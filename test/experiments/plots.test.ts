// The plots (apps/experiments/plots.ts): Vega-Lite rendered to SVG headless, byte-identical on
// re-runs, with the data it was given.
import { describe, expect, it } from 'vitest';
import { analyzeSelfish } from '../../apps/experiments/analysis.ts';
import { detourHistogramSpec, detourTimelineSpec, overheadBarsSpec, renderSvg } from '../../apps/experiments/plots.ts';

const HZ = 2_200_000_000;
const a = analyzeSelfish({ runCycles: 44_000_000, thresholdCycles: 280, detours: [1, 2, 3, 4, 5].map((k) => ({ atCycles: k * 8_000_000, lengthCycles: 8000 + k })) }, HZ);
const b = analyzeSelfish({ runCycles: 44_000_000, thresholdCycles: 280, detours: [{ atCycles: 100, lengthCycles: 300 }, { atCycles: 2_000_000, lengthCycles: 120_000 }] }, HZ);

describe('plots', () => {
  it('the detour timeline: a panel per configuration, log-scale detour axis, the same bytes twice', async () => {
    const spec = detourTimelineSpec('selfish detours', [{ config: 'native-lwk', detours: b.series }, { config: 'native-gp', detours: a.series }], HZ);
    const s1 = await renderSvg(spec), s2 = await renderSvg(spec);
    expect(s1).toBe(s2);
    expect(s1.startsWith('<svg')).toBe(true);
    expect(s1).toContain('native-lwk');
    expect(s1).toContain('native-gp');
    expect(s1).toContain('detour (µs)');
    expect(JSON.stringify(spec)).toContain('"type":"log"');
    // one point mark per detour: 7 symbols
    expect(s1.match(/role-mark/g)?.length).toBeGreaterThanOrEqual(2);
    expect((s1.match(/<path[^>]*transform="translate\(/g) ?? []).length).toBe(7);
  });
  it('the histogram has a bar per non-empty bucket and configuration', async () => {
    const svg = await renderSvg(detourHistogramSpec('selfish', [{ config: 'x', histogram: a.histogram }, { config: 'y', histogram: b.histogram }]));
    expect(svg).toBe(await renderSvg(detourHistogramSpec('selfish', [{ config: 'x', histogram: a.histogram }, { config: 'y', histogram: b.histogram }])));
    expect(svg).toContain('2^12'); // 8001..8005 cycles
    expect(svg).toContain('2^16'); // 120,000 cycles
    expect(svg).toContain('2^8'); // 300 cycles
  });
  it('a chart with clip paths renders to the same bytes every time (vega numbers them process-wide)', async () => {
    const spec = { data: { values: [{ x: 1, y: 2 }] }, mark: { type: 'point', clip: true }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } } } as const;
    const s1 = await renderSvg(spec), s2 = await renderSvg(spec);
    expect(s1).toContain('clip-path="url(#clip1)"');
    expect(s2).toBe(s1);
  });
  it('renders with no data at all (every configuration quiet)', async () => {
    const svg = await renderSvg(detourTimelineSpec('quiet', [{ config: 'native-lwk', detours: [] }], HZ));
    expect(svg.startsWith('<svg')).toBe(true);
  });
  it('the overhead bars name each guest and mode', async () => {
    const svg = await renderSvg(overheadBarsSpec('paging', [{ guest: 'catamount', mode: 'nested', measure: 'whole run', overheadPercent: 3.5 }, { guest: 'linux', mode: 'shadow', measure: 'timed part', overheadPercent: 12 }]));
    for (const w of ['catamount', 'linux', 'nested', 'shadow', 'whole run', 'timed part', '3.5', '12.0']) expect(svg).toContain(w);
  });
});
