// The VMM is a library any host embeds (DESIGN.md): vmm/ imports hostif/'s interface and hw/,
// never kernel/, apps/, test/ or a host implementation (hostif/hosted.ts).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const VMM = join(ROOT, 'vmm');

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Every module specifier of a file: static imports and exports, dynamic import(), require(). */
function importsOf(src: string): string[] {
  const out: string[] = [];
  const re = /(?:^|[;\s])(?:import|export)\s[^'"`]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|require\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of src.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
  return out;
}

describe('vmm/ is embeddable', () => {
  const files = tsFiles(VMM);
  it('finds the VMM sources and their imports', () => {
    expect(files.length).toBeGreaterThan(20);
    expect(importsOf("import { a } from '../hw/x.ts';\nexport * from './y.ts';\nconst m = await import('../kernel/z.ts');")).toEqual(['../hw/x.ts', './y.ts', '../kernel/z.ts']);
  });
  it('imports only vmm/, hostif/hostif.ts, hostif/requests.ts and hw/ (no kernel/, apps/, test/, host implementation)', () => {
    const bad: string[] = [];
    for (const f of files) {
      for (const spec of importsOf(readFileSync(f, 'utf8'))) {
        if (!spec.startsWith('.')) { bad.push(`${relative(ROOT, f)}: ${spec} (a package: the VMM uses none)`); continue; }
        const target = relative(ROOT, resolve(dirname(f), spec));
        const okTarget = target.startsWith('vmm/') || target.startsWith('hw/') || target === 'hostif/hostif.ts' || target === 'hostif/requests.ts';
        if (!okTarget) bad.push(`${relative(ROOT, f)}: ${spec}`);
      }
    }
    expect(bad).toEqual([]);
  });
});
