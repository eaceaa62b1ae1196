// The noise benchmarks as static i386 Linux programs (apps/native/{fwq,ftq,selfish,spmv}, built
// from apps/noise/): run natively on this host and on the LWK with small parameters, each must
// print the line format apps/noise/README.md documents (the experiments parse it), with as many
// values as the parameters ask for and a summary consistent with them. Timing values are not
// compared, except where the LWK must be exact: a fixed work loop takes the same cycles every
// time on an idle LWK core. spmv's checksum depends only on its parameters, so both agree.
import { describe, expect, it } from 'vitest';
import { canRunNatively, CI, runNatively, runOnLwk, type Outcome } from './lwk.ts';

const native = canRunNatively();

interface Parsed { tags: Map<string, string[][]>; kv: Map<string, Record<string, string>> }

/** Splits the output into lines by their first word; `*-params`/`*-summary` lines into key=value. */
function parse(out: string): Parsed {
  const tags = new Map<string, string[][]>();
  const kv = new Map<string, Record<string, string>>();
  expect(out.endsWith('\n')).toBe(true);
  for (const line of out.slice(0, -1).split('\n')) {
    const [tag, ...rest] = line.split(' ');
    expect(tag, line).toMatch(/^(fwq|ftq|selfish|spmv)-(params|summary|sample|count|detour|iter)$/);
    if (tag.endsWith('-params') || tag.endsWith('-summary')) {
      const o: Record<string, string> = {};
      for (const t of rest) { const m = /^([a-z]+)=(\d+|0x[0-9a-f]{8})$/.exec(t); expect(m, `${tag}: ${t}`).not.toBeNull(); o[m![1]] = m![2]; }
      expect(kv.has(tag), `one ${tag} line`).toBe(false);
      kv.set(tag, o);
    } else {
      for (const v of rest) expect(v, line).toMatch(/^\d+$/);
      tags.set(tag, [...(tags.get(tag) ?? []), rest]);
    }
  }
  return { tags, kv };
}

const values = (p: Parsed, tag: string): number[] => (p.tags.get(tag) ?? []).flat().map(Number);

function checkFwq(o: Outcome, samples: number): number[] {
  expect(o.status).toBe(0);
  const p = parse(o.stdout);
  expect(p.kv.get('fwq-params')).toEqual({ samples: String(samples), work: '500' });
  const s = values(p, 'fwq-sample');
  expect(s.length).toBe(samples);
  for (const line of p.tags.get('fwq-sample')!) expect(line.length).toBeLessThanOrEqual(16);
  const sum = p.kv.get('fwq-summary')!;
  expect(Number(sum.samples)).toBe(samples);
  expect(Number(sum.min)).toBe(Math.min(...s));
  expect(Number(sum.max)).toBe(Math.max(...s));
  expect(Number(sum.sum)).toBe(s.reduce((a, b) => a + b, 0));
  expect(BigInt(sum.end) - BigInt(sum.start) >= BigInt(sum.sum)).toBe(true);
  return s;
}

function checkFtq(o: Outcome, quanta: number): number[] {
  expect(o.status).toBe(0);
  const p = parse(o.stdout);
  expect(p.kv.get('ftq-params')).toEqual({ quanta: String(quanta), quantum: '22000', unit: '32' });
  const c = values(p, 'ftq-count');
  expect(c.length).toBe(quanta);
  const sum = p.kv.get('ftq-summary')!;
  expect(Number(sum.sum)).toBe(c.reduce((a, b) => a + b, 0));
  expect(Number(sum.max)).toBe(Math.max(...c));
  // the quanta are aligned to the start: the run lasts at least quanta x quantum cycles
  expect(BigInt(sum.end) - BigInt(sum.start) >= BigInt(quanta * 22000)).toBe(true);
  return c;
}

function checkSelfish(o: Outcome): { detours: number[][]; summary: Record<string, string> } {
  expect(o.status).toBe(0);
  const p = parse(o.stdout);
  const params = p.kv.get('selfish-params')!;
  expect(params.duration).toBe('2200000');
  expect(Number(params.threshold)).toBe(Number(params.minloop) * Number(params.mult));
  const detours = (p.tags.get('selfish-detour') ?? []).map((d) => d.map(Number));
  const summary = p.kv.get('selfish-summary')!;
  expect(Number(summary.detours)).toBe(detours.length + Number(summary.dropped));
  let last = -1, total = 0;
  for (const d of detours) expect(d.length).toBe(2);
  for (const [start, len] of detours) {
    expect(start).toBeGreaterThan(last);
    expect(len).toBeGreaterThan(Number(params.threshold));
    last = start; total += len;
  }
  if (summary.dropped === '0') expect(Number(summary.sum)).toBe(total);
  expect(Number(summary.duration)).toBeGreaterThanOrEqual(2200000);
  return { detours, summary };
}

function checkSpmv(o: Outcome): string {
  expect(o.status).toBe(0);
  const p = parse(o.stdout);
  expect(p.kv.get('spmv-params')).toMatchObject({ rows: '512', nnz: '8', iters: '3' });
  const t = values(p, 'spmv-iter');
  expect(t.length).toBe(3);
  expect(Number(p.kv.get('spmv-summary')!.sum)).toBe(t.reduce((a, b) => a + b, 0));
  return p.kv.get('spmv-summary')!.checksum;
}

const FWQ = ['samples=40', 'work=500'];
const FTQ = ['quanta=30', 'quantum=22000'];
const SELFISH = ['duration=2200000'];
const SPMV = ['rows=512', 'nnz=8', 'iters=3'];

describe('noise benchmarks on the LWK', () => {
  it('fwq: every sample of the fixed work loop takes the same cycles on an idle LWK core', () => {
    const s = checkFwq(runOnLwk('fwq', FWQ), 40);
    expect(new Set(s).size).toBe(1);
  });
  it('ftq: one count per quantum, all within one unit of each other', () => {
    const c = checkFtq(runOnLwk('ftq', FTQ), 30);
    expect(Math.max(...c) - Math.min(...c)).toBeLessThanOrEqual(1);
  });
  it('selfish: no detours on the tickless LWK', () => {
    const r = checkSelfish(runOnLwk('selfish', SELFISH));
    expect(r.detours.length).toBe(0);
  });
  it('selfish: the gp profile\'s periodic tick shows as detours', () => {
    // 1 ms at 2.2 GHz with a 4 kHz tick: at least 3 ticks inside the loop
    const r = checkSelfish(runOnLwk('selfish', SELFISH, { profile: 'gp', hz: 4000 }));
    expect(r.detours.length).toBeGreaterThanOrEqual(3);
  });
  it('spmv: a checksum that depends only on the parameters', () => {
    expect(checkSpmv(runOnLwk('spmv', SPMV))).toMatch(/^0x[0-9a-f]{8}$/);
  });
  it('a bad parameter: exit status 2 and one line on stderr', () => {
    const r = runOnLwk('fwq', ['samples=many']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('fwq: value out of range or not a number: samples=many\n');
    const u = runOnLwk('spmv', ['bogus=1']);
    expect(u.status).toBe(2);
    expect(u.stderr).toBe('spmv: unknown parameter: bogus=1\n');
  });
});

describe.skipIf(!native && !CI)('noise benchmarks natively on this host', () => {
  it('this host runs the prebuilt i386 programs (CI requires it)', () => { expect(native).toBe(true); });
  it('fwq, ftq and selfish print the same format natively', () => {
    checkFwq(runNatively('fwq', FWQ), 40);
    checkFtq(runNatively('ftq', FTQ), 30);
    checkSelfish(runNatively('selfish', SELFISH));
  });
  it('spmv: the same checksum natively and on the LWK', () => {
    expect(checkSpmv(runNatively('spmv', SPMV))).toBe(checkSpmv(runOnLwk('spmv', SPMV)));
  });
  it('a bad parameter natively: the same status and message as on the LWK', () => {
    const n = runNatively('ftq', ['quantum=5']);
    const l = runOnLwk('ftq', ['quantum=5']);
    expect(n.status).toBe(2);
    expect(l.status).toBe(n.status);
    expect(l.stderr).toBe(n.stderr);
  });
});
