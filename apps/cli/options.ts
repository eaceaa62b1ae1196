// Option parsing for the v3vee CLI (DESIGN.md, CLI conventions): the same option means the
// same thing in every subcommand. A bad option is a UsageError: one line, exit status 2.

export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

/** Parses a memory size: 128M, 1G, 512K, or bytes. */
export function parseSize(s: string, what = '--mem'): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(s.trim());
  if (!m) throw new UsageError(`${what}: '${s}' is not a size (try 128M or 1G)`);
  const n = Number(m[1]);
  const mult = { '': 1, K: 1024, M: 1 << 20, G: 1 << 30 }[m[2].toUpperCase() as '' | 'K' | 'M' | 'G'];
  return n * mult;
}

export function parseIntOption(s: string, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^(0x[0-9a-f]+|\d+)$/i.test(s.trim())) throw new UsageError(`${what}: '${s}' is not a number`);
  const n = Number(s.trim());
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`${what}: ${s} is out of range (${min}..${max})`);
  return n;
}

export type OptKind = 'flag' | 'value' | 'multi';

export interface ParsedArgs {
  opts: Map<string, string[]>;
  flags: Set<string>;
  positional: string[];
}

/**
 * Parses argv against a table of options (name -> kind). `--opt=value` and `--opt value` both
 * work. Positional arguments after the first one (`stopAtFirst`) are passed through untouched,
 * so `run ELF ARGS...` keeps the program's own options.
 */
export function parseArgs(argv: string[], spec: Record<string, OptKind>, stopAtFirst = false): ParsedArgs {
  const opts = new Map<string, string[]>();
  const flags = new Set<string>();
  const positional: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k];
    if (stopAtFirst && positional.length > 0) { positional.push(a); continue; }
    if (a === '--') { positional.push(...argv.slice(k + 1)); break; }
    if (!a.startsWith('--') || a === '--') { positional.push(a); continue; }
    const eq = a.indexOf('=');
    const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown option --${name}`);
    if (kind === 'flag') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags.add(name);
      continue;
    }
    let v: string;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      if (k + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
      v = argv[++k];
    }
    const list = opts.get(name) ?? [];
    if (kind === 'value' && list.length > 0) throw new UsageError(`--${name} given twice`);
    list.push(v);
    opts.set(name, list);
  }
  return { opts, flags, positional };
}

export function one(p: ParsedArgs, name: string): string | undefined {
  return p.opts.get(name)?.[0];
}
