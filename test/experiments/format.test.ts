// The deterministic writers (apps/experiments/format.ts): fixed number format, key order, CSV quoting.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatNumber, type JsonValue, sortedRecord, stableJson, toCsv } from '../../apps/experiments/format.ts';
import { SEED } from '../native/diff.ts';

describe('formatNumber', () => {
  it('integers as they are, fractions to 6 decimals without trailing zeros, no -0, no exponents', () => {
    expect([0, -0, 42, -7, 1 / 3, 0.5, 2.0000004, 1e-7, -1e-7, 12345678.123456789, 1.1e-5].map(formatNumber))
      .toEqual(['0', '0', '42', '-7', '0.333333', '0.5', '2', '0', '0', '12345678.123457', '0.000011']);
  });
  it('refuses NaN and infinities', () => {
    expect(() => formatNumber(NaN)).toThrow(RangeError);
    expect(() => formatNumber(Infinity)).toThrow(RangeError);
  });
  it('round-trips: parsing the text and formatting again gives the same text', () => {
    fc.assert(fc.property(fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }), (x) => {
      const t = formatNumber(x);
      expect(t).not.toMatch(/e/i);
      expect(formatNumber(Number(t))).toBe(t);
      expect(Math.abs(Number(t) - x)).toBeLessThanOrEqual(5e-7 + Math.abs(x) * 1e-15);
    }), { seed: SEED, numRuns: 500 });
  });
});

describe('stableJson', () => {
  it('keeps the order the object was built in, is valid JSON, and ends with a newline', () => {
    const v: JsonValue = { experiment: 'noise', configs: [{ name: 'a', x: 1 / 3, e: [], o: {} }], n: null, t: true };
    const text = stableJson(v);
    expect(text).toBe('{\n  "experiment": "noise",\n  "configs": [\n    {\n      "name": "a",\n      "x": 0.333333,\n      "e": [],\n      "o": {}\n    }\n  ],\n  "n": null,\n  "t": true\n}\n');
    expect(stableJson(v, false)).toBe('{"experiment":"noise","configs":[{"name":"a","x":0.333333,"e":[],"o":{}}],"n":null,"t":true}\n');
    expect(JSON.parse(text)).toEqual({ experiment: 'noise', configs: [{ name: 'a', x: 0.333333, e: [], o: {} }], n: null, t: true });
  });
  it('is a fixed point: writing what it parsed gives the same bytes', () => {
    const arb = fc.jsonValue({ maxDepth: 3 }).filter((v) => !JSON.stringify(v).includes('-0')) as fc.Arbitrary<JsonValue>;
    fc.assert(fc.property(arb, fc.boolean(), (v, pretty) => {
      const t = stableJson(v, pretty);
      expect(stableJson(JSON.parse(t) as JsonValue, pretty)).toBe(t);
    }), { seed: SEED, numRuns: 300 });
  });
  it('sortedRecord orders numeric keys numerically and string keys by code unit', () => {
    expect(Object.keys(sortedRecord([[10, 1], [9, 2], [100, 3]]))).toEqual(['9', '10', '100']);
    expect(Object.keys(sortedRecord(new Map([['write', 1], ['brk', 2], ['Z', 3]])))).toEqual(['Z', 'brk', 'write']);
  });
});

describe('toCsv', () => {
  it('quotes fields with commas, quotes and newlines; numbers in the fixed format', () => {
    expect(toCsv(['a', 'b'], [['x,y', 'say "hi"'], [0.1 + 0.2, 'l1\nl2']])).toBe('a,b\n"x,y","say ""hi"""\n0.3,"l1\nl2"\n');
  });
  it('refuses a row of the wrong width', () => {
    expect(() => toCsv(['a', 'b'], [['x']])).toThrow(/1 fields, the header 2/);
  });
});
