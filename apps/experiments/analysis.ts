/**
 * Noise analysis: pure functions from what a noise benchmark measured to its summary (issue 7's
 * definitions, word for word). No I/O, no clock: the same data gives the same summary.
 *
 * - selfish: the benchmark lists its detours (gaps of its RDTSC loop above the threshold).
 *   noisePercent = sum of detour lengths / run time; detours = their count; the rate is per
 *   simulated second; maxDetourCycles = the largest detour.
 * - FWQ: the benchmark times many identical work quanta. noisePercent = sum over samples of
 *   (sample - minimum) / sum of samples; a detour is a sample above the minimum by more than the
 *   selfish threshold (its length: sample - minimum); maxDetourCycles = largest sample - minimum.
 * - FTQ: the benchmark counts work units done in each fixed quantum. noisePercent = sum over
 *   quanta of (maximum count - count) / (maximum count x quanta); the lost work of a quantum
 *   converted to cycles is (maximum - count) x quantum / maximum; a detour is a quantum whose
 *   lost work exceeds the selfish threshold and more than one work unit (one unit is FTQ's
 *   resolution: a quantum's count varies by one with the phase of the last unit, noise or not);
 *   maxDetourCycles = the largest lost work in cycles.
 *
 * Every summary also carries the detour-length histogram in log2 buckets (bucket k counts
 * lengths in [2^k, 2^(k+1)) cycles) and the detours themselves (time, length), for the plots.
 * Malformed data (negative lengths, detours longer than the run, no samples) is a RangeError
 * naming the problem: the caller turns it into a one-line error.
 */

/** One detour: when it began (cycles from the start of the measurement) and how long it took. */
export interface Detour {
  atCycles: number;
  lengthCycles: number;
}

/** A log2 bucket of the histogram: lengths in [lowCycles, highCycles). */
export interface HistogramBucket {
  log2: number;
  lowCycles: number;
  highCycles: number;
  count: number;
}

/** What every benchmark's analysis gives. */
export interface NoiseSummary {
  /** Noise in percent of the run, in [0, 100]. */
  noisePercent: number;
  /** Number of detours. */
  detours: number;
  /** Detours per simulated second. */
  detourRatePerSecond: number;
  /** The largest detour, in cycles (0 when there is none). */
  maxDetourCycles: number;
  /** Sum of all detour lengths, in cycles. */
  totalDetourCycles: number;
  /** The measured run, in cycles. */
  runCycles: number;
  /** The detour threshold used, in cycles. */
  thresholdCycles: number;
  /** Lengths of the detours in `series` in log2 buckets, from the smallest non-empty bucket to the largest (empty ones between kept). */
  histogram: HistogramBucket[];
  /** The detours in time order (for the plots; not part of the JSON summary). A selfish run that dropped detours (full buffer) counts them in `detours` only. */
  series: Detour[];
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new RangeError(what);
}

function checkCount(x: number, what: string): void {
  check(Number.isFinite(x) && x >= 0, `${what} must be a finite number >= 0 (got ${x})`);
}

/** The log2 bucket index of a length >= 1 (lengths below 1 cycle go to bucket 0). */
export function log2Bucket(lengthCycles: number): number {
  if (lengthCycles < 2) return 0;
  let k = Math.floor(Math.log2(lengthCycles));
  // Guard against floating-point edge cases at exact powers of two.
  while (2 ** (k + 1) <= lengthCycles) k++;
  while (k > 0 && 2 ** k > lengthCycles) k--;
  return k;
}

/** Detour lengths in log2 buckets: from the smallest non-empty bucket to the largest, empty ones between kept. */
export function histogram(lengths: readonly number[]): HistogramBucket[] {
  if (lengths.length === 0) return [];
  const counts = new Map<number, number>();
  let lo = Infinity, hi = -Infinity;
  for (const l of lengths) {
    checkCount(l, 'a detour length');
    const k = log2Bucket(l);
    counts.set(k, (counts.get(k) ?? 0) + 1);
    if (k < lo) lo = k;
    if (k > hi) hi = k;
  }
  const out: HistogramBucket[] = [];
  for (let k = lo; k <= hi; k++) out.push({ log2: k, lowCycles: k === 0 ? 0 : 2 ** k, highCycles: 2 ** (k + 1), count: counts.get(k) ?? 0 });
  return out;
}

function summarize(series: Detour[], sumCycles: number, maxCycles: number, noisePercent: number,
  runCycles: number, thresholdCycles: number, cpuHz: number): NoiseSummary {
  const seconds = runCycles / cpuHz;
  return {
    noisePercent: Math.min(100, Math.max(0, noisePercent)),
    detours: series.length,
    detourRatePerSecond: seconds > 0 ? series.length / seconds : 0,
    maxDetourCycles: maxCycles,
    totalDetourCycles: sumCycles,
    runCycles,
    thresholdCycles,
    histogram: histogram(series.map((d) => d.lengthCycles)),
    series,
  };
}

export interface SelfishData {
  /** The detours the loop saw, each above the threshold. */
  detours: readonly Detour[];
  /** The measured run, in cycles. */
  runCycles: number;
  /** The threshold the loop used, in cycles. */
  thresholdCycles: number;
  /** Detours the loop counted but could not keep (its buffer was full): they count in the noise and the count. */
  dropped?: { count: number; cycles: number };
}

/** The selfish detour benchmark: noise = sum of detours / run time. */
export function analyzeSelfish(d: SelfishData, cpuHz: number): NoiseSummary {
  checkCount(d.runCycles, 'selfish: the run time');
  checkCount(d.thresholdCycles, 'selfish: the threshold');
  check(cpuHz > 0, 'the clock rate must be > 0');
  let sum = 0, max = 0;
  const series: Detour[] = [];
  for (const x of d.detours) {
    checkCount(x.atCycles, 'selfish: a detour time');
    checkCount(x.lengthCycles, 'selfish: a detour length');
    check(x.atCycles + x.lengthCycles <= d.runCycles, `selfish: a detour at ${x.atCycles} of ${x.lengthCycles} cycles ends after the run (${d.runCycles} cycles)`);
    sum += x.lengthCycles;
    if (x.lengthCycles > max) max = x.lengthCycles;
    series.push({ atCycles: x.atCycles, lengthCycles: x.lengthCycles });
  }
  const dropped = d.dropped ?? { count: 0, cycles: 0 };
  checkCount(dropped.count, 'selfish: the dropped detours');
  checkCount(dropped.cycles, 'selfish: the dropped detour cycles');
  sum += dropped.cycles;
  check(sum <= d.runCycles, `selfish: the detours (${sum} cycles) add up to more than the run (${d.runCycles} cycles)`);
  series.sort((a, b) => a.atCycles - b.atCycles || a.lengthCycles - b.lengthCycles);
  const noise = d.runCycles > 0 ? (100 * sum) / d.runCycles : 0;
  const s = summarize(series, sum, max, noise, d.runCycles, d.thresholdCycles, cpuHz);
  if (dropped.count === 0) return s;
  const detours = s.detours + dropped.count;
  return { ...s, detours, detourRatePerSecond: s.runCycles > 0 ? detours / (s.runCycles / cpuHz) : 0 };
}

export interface FwqData {
  /** Cycles each work quantum took, in order. */
  samples: readonly number[];
  /** The selfish threshold: a sample above the minimum by more than this is a detour. */
  thresholdCycles: number;
}

/** Fixed work quanta: noise = sum of (sample - minimum) / sum of samples. */
export function analyzeFwq(d: FwqData, cpuHz: number): NoiseSummary {
  check(d.samples.length > 0, 'FWQ: no samples');
  checkCount(d.thresholdCycles, 'FWQ: the threshold');
  check(cpuHz > 0, 'the clock rate must be > 0');
  let min = Infinity, max = -Infinity, total = 0;
  for (const s of d.samples) {
    checkCount(s, 'FWQ: a sample');
    if (s < min) min = s;
    if (s > max) max = s;
    total += s;
  }
  let excess = 0, at = 0, sum = 0;
  const series: Detour[] = [];
  for (const s of d.samples) {
    excess += s - min;
    if (s - min > d.thresholdCycles) { series.push({ atCycles: at, lengthCycles: s - min }); sum += s - min; }
    at += s;
  }
  const noise = total > 0 ? (100 * excess) / total : 0;
  return summarize(series, sum, max - min, noise, total, d.thresholdCycles, cpuHz);
}

export interface FtqData {
  /** Work units counted in each quantum, in order. */
  counts: readonly number[];
  /** The length of a quantum, in cycles. */
  quantumCycles: number;
  /** The selfish threshold: a quantum whose lost work (in cycles) exceeds it, and one work unit, is a detour. */
  thresholdCycles: number;
}

/** Fixed time quanta: noise = sum of (maximum - count) / (maximum x quanta). */
export function analyzeFtq(d: FtqData, cpuHz: number): NoiseSummary {
  check(d.counts.length > 0, 'FTQ: no quanta');
  check(Number.isFinite(d.quantumCycles) && d.quantumCycles > 0, `FTQ: the quantum must be > 0 cycles (got ${d.quantumCycles})`);
  checkCount(d.thresholdCycles, 'FTQ: the threshold');
  check(cpuHz > 0, 'the clock rate must be > 0');
  let maxCount = 0;
  for (const c of d.counts) { checkCount(c, 'FTQ: a count'); if (c > maxCount) maxCount = c; }
  check(maxCount > 0, 'FTQ: every quantum counted 0 work units');
  let lostUnits = 0, sum = 0, maxLost = 0;
  const series: Detour[] = [];
  d.counts.forEach((c, i) => {
    lostUnits += maxCount - c;
    const lost = Math.round(((maxCount - c) * d.quantumCycles) / maxCount);
    if (lost > maxLost) maxLost = lost;
    if (lost > d.thresholdCycles && maxCount - c > 1) { series.push({ atCycles: i * d.quantumCycles, lengthCycles: lost }); sum += lost; }
  });
  const noise = (100 * lostUnits) / (maxCount * d.counts.length);
  return summarize(series, sum, maxLost, noise, d.counts.length * d.quantumCycles, d.thresholdCycles, cpuHz);
}
