// The parsers of the benchmarks' output (apps/experiments/bench-output.ts): the lines of
// apps/noise/README.md, checked against each benchmark's own summary line.
import { describe, expect, it } from 'vitest';
import { BenchOutputError, parseFtq, parseFwq, parseSelfish } from '../../apps/experiments/bench-output.ts';

const selfish = `== catamount ==
selfish-params duration=44000000 mult=8 max=10000 minloop=35 threshold=280
selfish-detour 5549457 8131
selfish-detour 14349468 8131
selfish-summary detours=2 dropped=0 sum=16262 duration=44000025 start=1 end=44000026
`;

describe('bench output', () => {
  it('selfish: detours, run time, threshold and calibration; other lines are skipped', () => {
    const s = parseSelfish(selfish);
    expect(s.detours).toEqual([{ atCycles: 5549457, lengthCycles: 8131 }, { atCycles: 14349468, lengthCycles: 8131 }]);
    expect([s.runCycles, s.thresholdCycles, s.minLoopCycles, s.multiplier]).toEqual([44000025, 280, 35, 8]);
    expect(s.dropped).toEqual({ count: 0, cycles: 0 });
  });
  it('selfish: dropped detours keep their cycles from the summary', () => {
    const s = parseSelfish(selfish.replace('detours=2 dropped=0 sum=16262', 'detours=3 dropped=1 sum=20000'));
    expect(s.dropped).toEqual({ count: 1, cycles: 20000 - 16262 });
  });
  it('a lost line or a summary that disagrees is an error, never a wrong figure', () => {
    expect(() => parseSelfish(selfish.replace('selfish-detour 5549457 8131\n', ''))).toThrow(BenchOutputError);
    expect(() => parseSelfish(selfish.replace(/selfish-summary.*\n/, ''))).toThrow(/expected one 'selfish-summary' line, found 0/);
    expect(() => parseSelfish(selfish.replace('8131\nselfish-summary', '81x1\nselfish-summary'))).toThrow(/not a decimal value/);
  });
  it('fwq: the samples in order, 16 a line', () => {
    const v = Array.from({ length: 20 }, (_, i) => 1000 + i);
    const text = `fwq-params samples=20 work=2000\nfwq-sample ${v.slice(0, 16).join(' ')}\nfwq-sample ${v.slice(16).join(' ')}\nfwq-summary samples=20 min=1000 max=1019 sum=${v.reduce((a, b) => a + b)} start=5 end=99\n`;
    expect(parseFwq(text)).toEqual({ samples: v, work: 2000 });
    expect(() => parseFwq(text.replace('samples=20 min', 'samples=21 min'))).toThrow(/fwq: samples: the listed values give 20, the summary says 21/);
  });
  it('ftq: counts, quantum and unit', () => {
    const text = 'ftq-params quanta=3 quantum=220000 unit=32\nftq-count 746 745 700\nftq-summary quanta=3 quantum=220000 min=700 max=746 sum=2191 start=1 end=2\n';
    expect(parseFtq(text)).toEqual({ counts: [746, 745, 700], quantumCycles: 220000, unit: 32 });
    expect(() => parseFtq(text.replace('sum=2191', 'sum=2190'))).toThrow(/work units/);
  });
});
