/**
 * Deterministic writers for the experiments' outputs: the same values give the same bytes.
 *
 * - Numbers: integers as they are; other finite numbers rounded to DECIMALS places with
 *   trailing zeros dropped (so 1/3 prints 0.333333 on every run and platform); -0 prints 0;
 *   NaN and infinities are a RangeError (a summary never holds them).
 * - JSON: keys in the order the object was built (the experiments build every object in a fixed
 *   order, and `sortedRecord` turns a Map into a record with sorted keys); two-space indent
 *   with `pretty`, one line otherwise; a newline at the end.
 * - CSV: RFC 4180 quoting (a field with a comma, quote or newline is quoted, quotes doubled),
 *   "\n" line ends, a header row.
 */

export const DECIMALS = 6;

export type JsonValue = number | string | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A number in the fixed format. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`cannot write ${x} as a number`);
  if (Number.isInteger(x)) return Object.is(x, -0) ? '0' : String(x);
  const r = Number(x.toFixed(DECIMALS));
  if (r === 0) return '0';
  if (Number.isInteger(r)) return String(r);
  // toFixed then trim: never exponent notation for |x| >= 1e-6
  return r.toFixed(DECIMALS).replace(/0+$/, '').replace(/\.$/, '');
}

function jsonString(s: string): string {
  return JSON.stringify(s);
}

/** JSON text of a value, deterministically (see the file comment). */
export function stableJson(v: JsonValue, pretty = true): string {
  return write(v, pretty ? '' : null) + '\n';
}

function write(v: JsonValue, indent: string | null): string {
  if (v === null) return 'null';
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'string') return jsonString(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  const inner = indent === null ? null : indent + '  ';
  const nl = indent === null ? '' : '\n';
  const sep = indent === null ? ',' : ',\n';
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return '[' + nl + v.map((x) => (inner ?? '') + write(x, inner)).join(sep) + nl + (indent ?? '') + ']';
  }
  const keys = Object.keys(v);
  if (keys.length === 0) return '{}';
  const colon = indent === null ? ':' : ': ';
  return '{' + nl + keys.map((k) => {
    const x = v[k];
    if (x === undefined) throw new RangeError(`key '${k}' has no value`);
    return (inner ?? '') + jsonString(k) + colon + write(x, inner);
  }).join(sep) + nl + (indent ?? '') + '}';
}

/** A record with the map's entries under sorted keys (numeric keys in numeric order). */
export function sortedRecord<K extends string | number, V extends JsonValue>(m: Iterable<[K, V]>, key: (k: K) => string = String): { [key: string]: V } {
  const entries = [...m].sort((a, b) => (typeof a[0] === 'number' && typeof b[0] === 'number' ? a[0] - b[0] : String(a[0]) < String(b[0]) ? -1 : String(a[0]) > String(b[0]) ? 1 : 0));
  const out: { [key: string]: V } = {};
  for (const [k, v] of entries) out[key(k)] = v;
  return out;
}

export type CsvCell = number | string;

function csvField(c: CsvCell): string {
  const s = typeof c === 'number' ? formatNumber(c) : c;
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

/** CSV text: a header row, then the rows; every row must have the header's width. */
export function toCsv(header: readonly string[], rows: readonly (readonly CsvCell[])[]): string {
  const lines = [header.map(csvField).join(',')];
  for (const r of rows) {
    if (r.length !== header.length) throw new RangeError(`a CSV row has ${r.length} fields, the header ${header.length}`);
    lines.push(r.map(csvField).join(','));
  }
  return lines.join('\n') + '\n';
}
