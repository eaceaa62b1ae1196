/**
 * Parsers for what the noise benchmarks print (apps/noise/: fwq.c, ftq.c, selfish.c; the same
 * lines natively and in a guest): `<tag> key=value ...` or `<tag> v v v ...`, decimal values.
 * Each parser checks the listed values against the benchmark's own summary line, so a lost or
 * garbled line is an error, never a wrong figure. Lines with other tags (a guest kernel's own
 * messages, another benchmark's lines) are skipped.
 *
 *   selfish-params duration=C mult=M max=N minloop=C threshold=C
 *   selfish-detour START LENGTH
 *   selfish-summary detours=N dropped=N sum=C duration=C start=T end=T
 *   fwq-params samples=N work=W
 *   fwq-sample C C C ...
 *   fwq-summary samples=N min=C max=C sum=C start=T end=T
 *   ftq-params quanta=N quantum=C unit=U
 *   ftq-count K K K ...
 *   ftq-summary quanta=N quantum=C min=K max=K sum=K start=T end=T
 */
import type { FtqData, FwqData, SelfishData } from './analysis.ts';

export class BenchOutputError extends Error {
  constructor(message: string) { super(message); this.name = 'BenchOutputError'; }
}

interface Line { tag: string; values: number[]; kv: Map<string, number> }

function parseLines(text: string, prefix: string): Line[] {
  const out: Line[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '').trim();
    if (!line.startsWith(prefix + '-')) continue;
    const [tag, ...rest] = line.split(/\s+/);
    const values: number[] = [], kv = new Map<string, number>();
    for (const t of rest) {
      const eq = t.indexOf('=');
      const v = eq >= 0 ? t.slice(eq + 1) : t;
      if (!/^\d+$/.test(v)) throw new BenchOutputError(`${prefix}: '${t}' in '${line}' is not a decimal value`);
      if (eq >= 0) kv.set(t.slice(0, eq), Number(v)); else values.push(Number(v));
    }
    out.push({ tag, values, kv });
  }
  return out;
}

function one(lines: Line[], tag: string, prefix: string): Line {
  const m = lines.filter((l) => l.tag === tag);
  if (m.length !== 1) throw new BenchOutputError(`${prefix}: expected one '${tag}' line, found ${m.length} (did the benchmark finish?)`);
  return m[0];
}

function key(l: Line, k: string): number {
  const v = l.kv.get(k);
  if (v === undefined) throw new BenchOutputError(`'${l.tag}' has no ${k}=`);
  return v;
}

function agree(what: string, listed: number, summary: number): void {
  if (listed !== summary) throw new BenchOutputError(`${what}: the listed values give ${listed}, the summary says ${summary}`);
}

/** What selfish printed, plus its calibration. */
export interface SelfishOutput extends SelfishData { minLoopCycles: number; multiplier: number }

export function parseSelfish(text: string): SelfishOutput {
  const lines = parseLines(text, 'selfish');
  const params = one(lines, 'selfish-params', 'selfish'), sum = one(lines, 'selfish-summary', 'selfish');
  const detours = lines.filter((l) => l.tag === 'selfish-detour').map((l) => {
    if (l.values.length !== 2) throw new BenchOutputError(`selfish: a detour line has ${l.values.length} values, not START LENGTH`);
    return { atCycles: l.values[0], lengthCycles: l.values[1] };
  });
  const dropped = key(sum, 'dropped');
  agree('selfish: detours', detours.length + dropped, key(sum, 'detours'));
  if (dropped === 0) agree('selfish: detour cycles', detours.reduce((n, d) => n + d.lengthCycles, 0), key(sum, 'sum'));
  const listed = detours.reduce((n, d) => n + d.lengthCycles, 0);
  return {
    detours, runCycles: key(sum, 'duration'), thresholdCycles: key(params, 'threshold'),
    dropped: { count: dropped, cycles: key(sum, 'sum') - listed },
    minLoopCycles: key(params, 'minloop'), multiplier: key(params, 'mult'),
  };
}

export interface FwqOutput { samples: number[]; work: number }

export function parseFwq(text: string): FwqOutput {
  const lines = parseLines(text, 'fwq');
  const params = one(lines, 'fwq-params', 'fwq'), sum = one(lines, 'fwq-summary', 'fwq');
  const samples = lines.filter((l) => l.tag === 'fwq-sample').flatMap((l) => l.values);
  agree('fwq: samples', samples.length, key(sum, 'samples'));
  agree('fwq: sample cycles', samples.reduce((n, s) => n + s, 0), key(sum, 'sum'));
  return { samples, work: key(params, 'work') };
}

export interface FtqOutput { counts: number[]; quantumCycles: number; unit: number }

export function parseFtq(text: string): FtqOutput {
  const lines = parseLines(text, 'ftq');
  const params = one(lines, 'ftq-params', 'ftq'), sum = one(lines, 'ftq-summary', 'ftq');
  const counts = lines.filter((l) => l.tag === 'ftq-count').flatMap((l) => l.values);
  agree('ftq: quanta', counts.length, key(sum, 'quanta'));
  agree('ftq: work units', counts.reduce((n, s) => n + s, 0), key(sum, 'sum'));
  return { counts, quantumCycles: key(params, 'quantum'), unit: key(params, 'unit') };
}

/** FWQ data for the analysis, with the threshold of the selfish run of the same configuration. */
export function fwqData(o: FwqOutput, thresholdCycles: number): FwqData {
  return { samples: o.samples, thresholdCycles };
}

/** FTQ data for the analysis, with the threshold of the selfish run of the same configuration. */
export function ftqData(o: FtqOutput, thresholdCycles: number): FtqData {
  return { counts: o.counts, quantumCycles: o.quantumCycles, thresholdCycles };
}
