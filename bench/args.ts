// The benchmarks' command-line options (`--name VALUE`, as bench/index.ts passes them on). A bad
// value ends the process with a one-line error naming the option.

/** `name N`: a positive integer; `dflt` when the option is absent. */
export function intArg(name: string, dflt: number): number {
  const k = process.argv.indexOf(name);
  if (k < 0) return dflt;
  const v = Number(process.argv[k + 1]);
  if (!Number.isInteger(v) || v < 1) { console.error(`${name} needs a positive integer, e.g. ${name} 3`); process.exit(2); }
  return v;
}

/** `name PATH`: the word after the option; undefined when the option is absent. */
export function strArg(name: string): string | undefined {
  const k = process.argv.indexOf(name);
  if (k < 0) return undefined;
  const v = process.argv[k + 1];
  if (v === undefined) { console.error(`${name} needs a path`); process.exit(2); }
  return v;
}
