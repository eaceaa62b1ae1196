// The noise analysis (apps/experiments/analysis.ts) on synthetic data: the definitions
// by hand-computed examples, then its invariants as properties (fast-check, fixed seed).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { analyzeFtq, analyzeFwq, analyzeSelfish, histogram, log2Bucket } from '../../apps/experiments/analysis.ts';
import { SEED } from '../native/diff.ts';

const HZ = 2_200_000_000;
const runs = { seed: SEED, numRuns: 300 };

describe('selfish', () => {
  it('noise is the sum of detours over the run time; count, rate and largest as defined', () => {
    const s = analyzeSelfish({ runCycles: 2_200_000, thresholdCycles: 100, detours: [
      { atCycles: 1000, lengthCycles: 3000 }, { atCycles: 500, lengthCycles: 8000 }, { atCycles: 900_000, lengthCycles: 11_000 },
    ] }, HZ);
    expect(s.noisePercent).toBeCloseTo((100 * 22_000) / 2_200_000, 12);
    expect(s.detours).toBe(3);
    expect(s.detourRatePerSecond).toBeCloseTo(3 / 0.001, 6);
    expect(s.maxDetourCycles).toBe(11_000);
    expect(s.totalDetourCycles).toBe(22_000);
    expect(s.series.map((d) => d.atCycles)).toEqual([500, 1000, 900_000]);
    // 3000 in [2048, 4096), 8000 in [4096, 8192), 11000 in [8192, 16384)
    expect(s.histogram.map((b) => [b.log2, b.count])).toEqual([[11, 1], [12, 1], [13, 1]]);
  });
  it('no detours: 0 noise, no histogram', () => {
    const s = analyzeSelfish({ runCycles: 1000, thresholdCycles: 10, detours: [] }, HZ);
    expect([s.noisePercent, s.detours, s.maxDetourCycles, s.histogram.length]).toEqual([0, 0, 0, 0]);
  });
  it('rejects detours that do not fit in the run', () => {
    expect(() => analyzeSelfish({ runCycles: 1000, thresholdCycles: 10, detours: [{ atCycles: 900, lengthCycles: 200 }] }, HZ)).toThrow(/ends after the run/);
    expect(() => analyzeSelfish({ runCycles: 1000, thresholdCycles: 10, detours: [{ atCycles: 0, lengthCycles: -1 }] }, HZ)).toThrow(/length/);
  });
});

describe('FWQ', () => {
  it('noise = sum(sample - min) / sum(samples); detours above min by more than the threshold', () => {
    const s = analyzeFwq({ samples: [100, 100, 150, 100, 1100, 105], thresholdCycles: 20 }, HZ);
    expect(s.noisePercent).toBeCloseTo((100 * (50 + 1000 + 5)) / 1655, 12);
    expect(s.detours).toBe(2); // 150 and 1100; 105 is within the threshold
    expect(s.maxDetourCycles).toBe(1000);
    expect(s.series).toEqual([{ atCycles: 200, lengthCycles: 50 }, { atCycles: 450, lengthCycles: 1000 }]);
    expect(s.runCycles).toBe(1655);
  });
  it('identical samples: no noise', () => {
    const s = analyzeFwq({ samples: [7, 7, 7], thresholdCycles: 0 }, HZ);
    expect([s.noisePercent, s.detours, s.maxDetourCycles]).toEqual([0, 0, 0]);
  });
  it('rejects an empty run', () => { expect(() => analyzeFwq({ samples: [], thresholdCycles: 1 }, HZ)).toThrow(/no samples/); });
});

describe('FTQ', () => {
  it('noise = sum(max - count) / (max x quanta); lost work converted to cycles', () => {
    const s = analyzeFtq({ counts: [100, 100, 90, 100, 50], quantumCycles: 220_000, thresholdCycles: 10_000 }, HZ);
    expect(s.noisePercent).toBeCloseTo((100 * 60) / 500, 12);
    expect(s.maxDetourCycles).toBe(110_000); // 50 of 100 units lost in a 220,000-cycle quantum
    expect(s.detours).toBe(2); // 22,000 and 110,000 cycles
    expect(s.series).toEqual([{ atCycles: 440_000, lengthCycles: 22_000 }, { atCycles: 880_000, lengthCycles: 110_000 }]);
    expect(s.runCycles).toBe(5 * 220_000);
  });
  it('a quantum that lost one work unit (FTQ resolution) is noise but not a detour', () => {
    const s = analyzeFtq({ counts: [100, 99, 100, 100], quantumCycles: 220_000, thresholdCycles: 100 }, HZ);
    expect(s.noisePercent).toBeCloseTo(100 / 400, 12);
    expect([s.detours, s.maxDetourCycles]).toEqual([0, 2200]);
  });
  it('rejects quanta with no work at all', () => {
    expect(() => analyzeFtq({ counts: [0, 0], quantumCycles: 10, thresholdCycles: 1 }, HZ)).toThrow(/0 work units/);
  });
});

describe('histogram', () => {
  it('log2 buckets at exact powers of two', () => {
    expect([1, 2, 3, 4, 1023, 1024, 2 ** 40].map(log2Bucket)).toEqual([0, 1, 1, 2, 9, 10, 40]);
  });
  it('keeps the empty buckets between the smallest and the largest', () => {
    expect(histogram([4, 64]).map((b) => [b.log2, b.lowCycles, b.highCycles, b.count])).toEqual([
      [2, 4, 8, 1], [3, 8, 16, 0], [4, 16, 32, 0], [5, 32, 64, 0], [6, 64, 128, 1]]);
  });
});

// ---- properties ----

const detourList = (run: number) => fc.array(fc.record({ at: fc.nat({ max: run }), len: fc.nat({ max: 50_000 }) }), { maxLength: 40 })
  .map((xs) => {
    // lay them out one after another so they fit in the run without overlapping
    let t = 0;
    const out: { atCycles: number; lengthCycles: number }[] = [];
    for (const x of xs) {
      const at = t + (x.at % 1000);
      if (at + x.len > run) break;
      out.push({ atCycles: at, lengthCycles: x.len });
      t = at + x.len;
    }
    return out;
  });
const selfishArb = fc.integer({ min: 1, max: 5_000_000 }).chain((run) => fc.record({
  runCycles: fc.constant(run), thresholdCycles: fc.nat({ max: 1000 }), detours: detourList(run),
}));
const fwqArb = fc.record({ samples: fc.array(fc.integer({ min: 1, max: 1_000_000 }), { minLength: 1, maxLength: 200 }), thresholdCycles: fc.nat({ max: 5000 }) });
const ftqArb = fc.record({
  counts: fc.array(fc.nat({ max: 10_000 }), { minLength: 1, maxLength: 200 }).filter((c) => c.some((x) => x > 0)),
  quantumCycles: fc.integer({ min: 1, max: 1_000_000 }), thresholdCycles: fc.nat({ max: 5000 }),
});

describe('properties', () => {
  it('every summary has noise in [0, 100], a histogram that counts every detour, and a largest detour >= each', () => {
    fc.assert(fc.property(selfishArb, fwqArb, ftqArb, (a, b, c) => {
      for (const s of [analyzeSelfish(a, HZ), analyzeFwq(b, HZ), analyzeFtq(c, HZ)]) {
        expect(s.noisePercent).toBeGreaterThanOrEqual(0);
        expect(s.noisePercent).toBeLessThanOrEqual(100);
        expect(s.histogram.reduce((n, h) => n + h.count, 0)).toBe(s.detours);
        expect(s.series.length).toBe(s.detours);
        for (const d of s.series) {
          expect(d.lengthCycles).toBeLessThanOrEqual(s.maxDetourCycles);
          const bucket = s.histogram.find((h) => h.lowCycles <= d.lengthCycles && d.lengthCycles < h.highCycles);
          expect(bucket).toBeDefined();
        }
      }
    }), runs);
  });

  it('a run with no detours gives 0 noise', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: 1, max: 1e6 }), fc.integer({ min: 1, max: 300 }), (run, v, n) => {
      expect(analyzeSelfish({ runCycles: run, thresholdCycles: 10, detours: [] }, HZ).noisePercent).toBe(0);
      expect(analyzeFwq({ samples: Array(n).fill(v), thresholdCycles: 0 }, HZ).noisePercent).toBe(0);
      expect(analyzeFtq({ counts: Array(n).fill(v), quantumCycles: 1000, thresholdCycles: 0 }, HZ).noisePercent).toBe(0);
    }), runs);
  });

  it('adding a detour never lowers noise (selfish: one more gap; FWQ: a longer non-minimal sample; FTQ: a lower non-maximal count)', () => {
    fc.assert(fc.property(selfishArb, fc.nat({ max: 10_000 }), (a, len) => {
      const end = a.detours.length ? a.detours[a.detours.length - 1].atCycles + a.detours[a.detours.length - 1].lengthCycles : 0;
      fc.pre(end + len <= a.runCycles);
      const more = { ...a, detours: [...a.detours, { atCycles: end, lengthCycles: len }] };
      expect(analyzeSelfish(more, HZ).noisePercent).toBeGreaterThanOrEqual(analyzeSelfish(a, HZ).noisePercent);
      expect(analyzeSelfish(more, HZ).detours).toBe(analyzeSelfish(a, HZ).detours + 1);
    }), runs);
    fc.assert(fc.property(fwqArb, fc.nat(), fc.integer({ min: 1, max: 100_000 }), (b, pick, extra) => {
      const min = Math.min(...b.samples);
      const i = pick % b.samples.length;
      const samples = [...b.samples, min]; // keep a minimal sample, so the minimum cannot move
      samples[i] += extra;
      const before = analyzeFwq({ ...b, samples: [...b.samples, min] }, HZ), after = analyzeFwq({ ...b, samples }, HZ);
      expect(after.noisePercent).toBeGreaterThanOrEqual(before.noisePercent - 1e-9);
      expect(after.maxDetourCycles).toBeGreaterThanOrEqual(before.maxDetourCycles);
      expect(after.detours).toBeGreaterThanOrEqual(before.detours);
    }), runs);
    fc.assert(fc.property(ftqArb, fc.nat(), fc.nat({ max: 10_000 }), (c, pick, drop) => {
      const max = Math.max(...c.counts);
      const counts = [...c.counts, max]; // keep a maximal quantum
      const i = pick % c.counts.length;
      counts[i] = Math.max(0, counts[i] - drop);
      const before = analyzeFtq({ ...c, counts: [...c.counts, max] }, HZ), after = analyzeFtq({ ...c, counts }, HZ);
      expect(after.noisePercent).toBeGreaterThanOrEqual(before.noisePercent - 1e-9);
      expect(after.maxDetourCycles).toBeGreaterThanOrEqual(before.maxDetourCycles);
    }), runs);
  });

  it('FWQ and FTQ noise do not depend on the unit (scaling every sample or count)', () => {
    fc.assert(fc.property(fwqArb, ftqArb, fc.integer({ min: 2, max: 50 }), (b, c, k) => {
      expect(analyzeFwq({ samples: b.samples.map((s) => s * k), thresholdCycles: b.thresholdCycles }, HZ).noisePercent)
        .toBeCloseTo(analyzeFwq(b, HZ).noisePercent, 9);
      expect(analyzeFtq({ ...c, counts: c.counts.map((x) => x * k) }, HZ).noisePercent).toBeCloseTo(analyzeFtq(c, HZ).noisePercent, 9);
    }), runs);
  });

  it('the same data gives the same summary (no hidden state)', () => {
    fc.assert(fc.property(selfishArb, fwqArb, ftqArb, (a, b, c) => {
      expect(analyzeSelfish(a, HZ)).toEqual(analyzeSelfish(a, HZ));
      expect(analyzeFwq(b, HZ)).toEqual(analyzeFwq(b, HZ));
      expect(analyzeFtq(c, HZ)).toEqual(analyzeFtq(c, HZ));
    }), runs);
  });
});
