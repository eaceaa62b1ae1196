// The paging study (apps/experiments/paging.ts, apps/cli/paging.ts): the native baseline runs
// the guest kernel bare on the machine with the counters the issue names; configurations the
// VMM cannot run yet are reported without figures; the outputs are deterministic.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { stableJson } from '../../apps/experiments/format.ts';
import { pagingFiles } from '../../apps/experiments/paging-files.ts';
import { ExperimentError } from '../../apps/experiments/errors.ts';
import { bareRunner, DEFAULT_GUESTS_DIR, PAGING_MODES, pagingConfigs, pagingJson, runPaging, workload, workloadCycles } from '../../apps/experiments/paging.ts';
import { writeOutputs } from '../../apps/experiments/outputs.ts';

const GUESTS_DIR = DEFAULT_GUESTS_DIR;
const dirs: string[] = [];
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

interface Cfg { name: string; status: string; reason?: string; cycles: number | null; overheadPercent: number | null; exits: number | null;
  exitsByReason: Record<string, number> | null; tlbMisses: number | null; walkRefsPerMiss: number | null }

describe('paging', () => {
  it('the native baseline: catamount running spmv bare on the machine, with cycles, TLB misses and walk references', () => {
    const r = bareRunner(GUESTS_DIR)('catamount', workload('catamount', true));
    expect(r.output).toMatch(/spmv-summary iters=4 /);
    expect(r.cycles).toBeGreaterThan(r.instructions); // memory-bound: more cycles than instructions
    expect(r.tlbMisses).toBeGreaterThan(0);
    expect(r.walkRefs).toBeGreaterThanOrEqual(r.tlbMisses); // a walk reads at least one entry
    expect(r.exitsByReason.size).toBe(0); // no VMM, no exits
  });

  it('catamount in every mode: the issue\'s names and fields, exits only under the VMM, which costs more than native; two runs write the same bytes', async () => {
    const configs = pagingConfigs(GUESTS_DIR).filter((c) => c.guest === 'catamount');
    const texts: Map<string, string>[] = [];
    let json: { experiment: string; configs: Cfg[] } | null = null;
    for (let k = 0; k < 2; k++) {
      const results = runPaging(configs, true);
      if (json === null) json = pagingJson(results, true) as unknown as { experiment: string; configs: Cfg[] };
      const d = mkdtempSync(join(tmpdir(), 'v3vee-paging-'));
      dirs.push(d);
      writeOutputs(d, await pagingFiles(results, true));
      texts.push(new Map(readdirSync(d).sort().map((f) => [f, readFileSync(join(d, f), 'latin1')])));
    }
    expect(json!.experiment).toBe('paging');
    expect(json!.configs.map((c) => c.name)).toEqual(PAGING_MODES.map((m) => `catamount-${m}`));
    const byMode = new Map(json!.configs.map((c) => [c.name.slice('catamount-'.length), c]));
    for (const c of json!.configs) {
      expect(Object.keys(c)).toEqual(expect.arrayContaining(['name', 'cycles', 'overheadPercent', 'exits', 'exitsByReason', 'tlbMisses', 'walkRefsPerMiss']));
      expect(c.status, c.reason).toBe('ok');
      expect(c.cycles).toBeGreaterThan(0);
      expect(c.exits).toBe(Object.values(c.exitsByReason!).reduce((a, b) => a + b, 0));
      expect(c.walkRefsPerMiss).toBeGreaterThanOrEqual(c.tlbMisses! > 0 ? 1 : 0);
    }
    expect(byMode.get('native')!.overheadPercent).toBe(0);
    expect(byMode.get('native')!.exits).toBe(0);
    for (const m of ['nested', 'hashed', 'shadow', 'shadow-cache']) {
      expect(byMode.get(m)!.exits).toBeGreaterThan(0); // its serial output at least
      expect(byMode.get(m)!.overheadPercent).toBeGreaterThan(0);
    }
    // a 2-level guest over 4-level radix nested tables walks more than the hashed format's O(n)
    expect(byMode.get('nested')!.walkRefsPerMiss!).toBeGreaterThan(byMode.get('hashed')!.walkRefsPerMiss!);
    // the same bytes twice
    expect([...texts[0].keys()]).toEqual(['costs.csv', 'exits.csv', 'overhead.svg', 'summary.csv', 'summary.json']);
    expect(texts[0].get('costs.csv')).toMatch(/^vmm,vmm\./m);
    for (const [f, t] of texts[0]) expect(texts[1].get(f), f).toBe(t);
    expect(texts[0].get('summary.json')).toBe(stableJson(JSON.parse(texts[0].get('summary.json')!)));
  });

  it('a configuration that cannot run, or whose run fails, is reported without figures', () => {
    const results = runPaging([
      { guest: 'linux', mode: 'native', runner: () => { throw new ExperimentError('linux-native: the guest stopped with \'shutdown\''); } },
      { guest: 'linux', mode: 'nested', runner: null, missing: 'no VMM in this build' },
    ], true);
    const json = pagingJson(results, true) as unknown as { configs: Cfg[] };
    expect(json.configs.map((c) => [c.name, c.status, c.reason])).toEqual([
      ['linux-native', 'failed', 'linux-native: the guest stopped with \'shutdown\''], ['linux-nested', 'not-run', 'no VMM in this build']]);
    for (const c of json.configs) expect([c.cycles, c.overheadPercent, c.exits, c.exitsByReason, c.tlbMisses, c.walkRefsPerMiss]).toEqual([null, null, null, null, null, null]);
  });

  it('reads the guest\'s own timed part from its output', () => {
    expect(workloadCycles('catamount', 'x\nspmv-summary iters=4 min=1 max=2 sum=12345 checksum=0x00000001\n')).toBe(12345);
    expect(workloadCycles('linux', 'linuxlike-timing ticks=9 switches=205 cr3-writes=465 frames-peak=9 cycles=85100000\n')).toBe(85_100_000);
    expect(workloadCycles('linux', 'no such line')).toBeNull();
  });
});
