/**
 * Writing an experiment's files into its output folder: every file is built in memory first
 * (deterministic text), then written; the list of files written is returned in a fixed order.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface OutputFile { name: string; text: string }

/** Writes the files into `dir` (created if needed); returns their paths. */
export function writeOutputs(dir: string, files: readonly OutputFile[]): string[] {
  mkdirSync(dir, { recursive: true });
  return files.map((f) => {
    const p = join(dir, f.name);
    writeFileSync(p, f.text);
    return p;
  });
}
