/**
 * The paging experiment (issue 7): both guest kernels (apps/guests: catamount running spmv, the
 * Linux-like kernel running its process workload) bare on the machine (the native baseline,
 * `v3vee bare`'s path) and under the VMM with nested radix, nested hashed, shadow (virtual TLB)
 * and shadow-with-caching paging: simulated cycles, overhead against native, exits by reason,
 * TLB misses and page-walk references per miss.
 *
 * A configuration is a guest, a mode and a runner returning the measured counters: native
 * boots the guest bare on a one-core machine; the VMM modes boot the LWK (no program, tickless)
 * and run the guest in a VM through vmm/'s createVm (guest-vm.ts). A configuration whose runner
 * is null or whose run fails is reported without figures ("not-run" / "failed" with the reason).
 */
import { BootError, loadMultiboot } from '../../hw/boot/multiboot.ts';
import { Machine } from '../../hw/machine.ts';
import { UsageError } from '../cli/options.ts';
import { type CsvCell, type JsonValue, sortedRecord, toCsv } from './format.ts';
import { ExperimentError } from './errors.ts';
import { DEFAULT_GUESTS_DIR, readGuestImage, runGuestVm, type VmPaging } from './guest-vm.ts';

export const GUESTS = ['catamount', 'linux'] as const;
export type Guest = (typeof GUESTS)[number];
export const PAGING_MODES = ['native', 'nested', 'hashed', 'shadow', 'shadow-cache'] as const;
export type PagingMode = (typeof PAGING_MODES)[number];

/** What one run of a guest gives. */
export interface PagingRun {
  cycles: number;
  instructions: number;
  exitsByReason: Map<string, number>;
  tlbMisses: number;
  walkRefs: number;
  /** The guest's own output (serial), for the record. */
  output: string;
}

export type PagingRunner = (guest: Guest, workload: readonly string[]) => PagingRun;

export interface PagingConfig {
  guest: Guest;
  mode: PagingMode;
  runner: PagingRunner | null;
  missing?: string;
}

const IMAGE: Record<Guest, string> = { catamount: 'catamount.elf', linux: 'linuxlike.elf' };
export { DEFAULT_GUESTS_DIR };

export function guestImage(guest: Guest, dir = DEFAULT_GUESTS_DIR): { path: string; image: Uint8Array } {
  return readGuestImage(IMAGE[guest], dir);
}

/** The guest's workload (its command line after the kernel path). */
export function workload(guest: Guest, quick: boolean): string[] {
  if (guest === 'catamount') return quick ? ['spmv', 'rows=16384', 'nnz=16', 'iters=4'] : ['spmv', 'rows=65536', 'nnz=16', 'iters=20'];
  // verify=0: no reference recomputation after the timed part
  return quick ? ['verify=0'] : ['jobs=128', 'verify=0'];
}

/**
 * The cycles of the guest's own timed part, from its output: spmv's `sum=` (the products),
 * linuxlike's `cycles=` (from starting the processes to the last one's exit); null when the
 * line is missing.
 */
export function workloadCycles(guest: Guest, output: string): number | null {
  const m = guest === 'catamount' ? /^spmv-summary .*\bsum=(\d+)/m.exec(output) : /^linuxlike-timing .*\bcycles=(\d+)/m.exec(output);
  return m === null ? null : Number(m[1]);
}

const GUEST_MEM = 64 << 20;

/** Native: the guest kernel booted bare on a one-core machine with GUEST_MEM of RAM (no LWK, no VMM). */
export function bareRunner(dir = DEFAULT_GUESTS_DIR): PagingRunner {
  return (guest, args) => {
    const { path, image } = guestImage(guest, dir);
    const out: Uint8Array[] = [];
    const machine = new Machine({ cores: 1, ram: GUEST_MEM, com1: { write: (b) => { out.push(b.slice()); } } });
    let entry;
    try {
      entry = loadMultiboot({ size: GUEST_MEM, write: (a, b) => machine.mem.writeBytes(a, b) }, image, { cmdline: [path, ...args].join(' '), modules: [] });
    } catch (e) {
      if (e instanceof BootError) throw new UsageError(`${path}: ${e.message}`);
      throw e;
    }
    machine.startFlat32(entry.entry, entry.eax, entry.ebx);
    const reason = machine.run(200e9);
    const output = Buffer.concat(out).toString('latin1');
    if (reason !== 'exit' || machine.exitStatus !== 1) {
      const last = output.trim().split('\n').slice(-1)[0] ?? '';
      throw new ExperimentError(`${guest}-native: the guest stopped with '${reason}' (status ${machine.exitStatus ?? 'none'}; ${machine.stopDetail || last})`);
    }
    const st = machine.stats();
    return { cycles: st.cycles, instructions: st.instructions, exitsByReason: new Map(), tlbMisses: st.tlbMisses, walkRefs: st.walkRefs, output };
  };
}

/**
 * Under the VMM: the guest in a VM with `mode` paging on the LWK (tickless profile), one core,
 * the same guest memory as native. Cycles and counters cover the VM's run (from start() to the
 * guest's isa-debug-exit), LWK boot and VM creation excluded.
 */
export function vmmRunner(mode: VmPaging, dir = DEFAULT_GUESTS_DIR): PagingRunner {
  return (guest, args) => {
    const { image } = guestImage(guest, dir);
    const r = runGuestVm({ path: IMAGE[guest], image, cmdline: args.join(' '), paging: mode, profile: 'lwk', memory: GUEST_MEM, what: `${guest}-${mode}` });
    const exitsByReason = new Map<string, number>();
    for (const e of r.stats.byReason) if (e.count > 0) exitsByReason.set(e.name, (exitsByReason.get(e.name) ?? 0) + e.count);
    return { cycles: r.delta.cycles, instructions: r.delta.instructions, exitsByReason, tlbMisses: r.delta.tlbMisses, walkRefs: r.delta.walkRefs, output: r.output };
  };
}

export function pagingConfigs(dir = DEFAULT_GUESTS_DIR): PagingConfig[] {
  const out: PagingConfig[] = [];
  for (const guest of GUESTS) for (const mode of PAGING_MODES) {
    out.push({ guest, mode, runner: mode === 'native' ? bareRunner(dir) : vmmRunner(mode, dir) });
  }
  return out;
}

export interface PagingResult {
  name: string;
  guest: Guest;
  mode: PagingMode;
  run: PagingRun | null;
  missing?: string;
  /** The runner exists but the run failed (`missing` says how). */
  failed: boolean;
  /** Overhead against the same guest's native run, in percent (null when either did not run). */
  overheadPercent: number | null;
  /** The guest's own timed part (workloadCycles) and its overhead against native. */
  workloadCycles: number | null;
  workloadOverheadPercent: number | null;
}

export function runPaging(configs: readonly PagingConfig[], quick: boolean, progress?: (line: string) => void): PagingResult[] {
  const total = configs.filter((c) => c.runner !== null).length;
  let done = 0;
  const failed = new Map<string, string>();
  const runs = configs.map((c) => {
    if (c.runner === null) return null;
    progress?.(`paging: ${c.guest}-${c.mode} (${++done}/${total})`);
    try { return c.runner(c.guest, workload(c.guest, quick)); } catch (e) {
      if (e instanceof ExperimentError) { failed.set(`${c.guest}-${c.mode}`, e.message); return null; }
      throw e;
    }
  });
  return configs.map((c, i) => {
    const run = runs[i];
    const native = runs[configs.findIndex((d) => d.guest === c.guest && d.mode === 'native')] ?? null;
    const overheadPercent = run !== null && native !== null ? (100 * (run.cycles - native.cycles)) / native.cycles : null;
    const name = `${c.guest}-${c.mode}`;
    const wl = run === null ? null : workloadCycles(c.guest, run.output), wlNative = native === null ? null : workloadCycles(c.guest, native.output);
    const workloadOverheadPercent = wl !== null && wlNative !== null && wlNative > 0 ? (100 * (wl - wlNative)) / wlNative : null;
    return { name, guest: c.guest, mode: c.mode, run, missing: failed.get(name) ?? c.missing, failed: failed.has(name), overheadPercent, workloadCycles: wl, workloadOverheadPercent };
  });
}

function total(m: Map<string, number>): number { let n = 0; for (const v of m.values()) n += v; return n; }

/** The `--json` summary. */
export function pagingJson(results: readonly PagingResult[], quick: boolean): JsonValue {
  return {
    experiment: 'paging',
    configs: results.map((r): JsonValue => r.run === null
      ? { name: r.name, status: r.failed ? 'failed' : 'not-run', reason: r.missing ?? 'not available', cycles: null, overheadPercent: null, exits: null, exitsByReason: null, tlbMisses: null, walkRefsPerMiss: null }
      : {
        name: r.name, status: 'ok', cycles: r.run.cycles, overheadPercent: r.overheadPercent,
        exits: total(r.run.exitsByReason), exitsByReason: sortedRecord([...r.run.exitsByReason]),
        tlbMisses: r.run.tlbMisses, walkRefsPerMiss: r.run.tlbMisses > 0 ? r.run.walkRefs / r.run.tlbMisses : 0,
        instructions: r.run.instructions, walkRefs: r.run.walkRefs,
        workloadCycles: r.workloadCycles, workloadOverheadPercent: r.workloadOverheadPercent, workload: workload(r.guest, quick).join(' '),
      }),
    quick,
    guestMemBytes: GUEST_MEM,
    costTables: ['hw/costs.ts', 'kernel/costs.ts', 'vmm/costs.ts'],
  };
}

export function pagingCsv(results: readonly PagingResult[]): string {
  const rows: CsvCell[][] = results.map((r) => r.run === null
    ? [r.name, r.guest, r.mode, r.failed ? 'failed' : 'not-run', '', '', '', '', '', '', '', '', '']
    : [r.name, r.guest, r.mode, 'ok', r.run.cycles, r.overheadPercent ?? '', r.run.instructions, total(r.run.exitsByReason), r.run.tlbMisses, r.run.walkRefs,
      r.run.tlbMisses > 0 ? r.run.walkRefs / r.run.tlbMisses : 0, r.workloadCycles ?? '', r.workloadOverheadPercent ?? '']);
  return toCsv(['config', 'guest', 'mode', 'status', 'cycles', 'overhead_percent', 'instructions', 'exits', 'tlb_misses', 'walk_refs', 'walk_refs_per_miss', 'workload_cycles', 'workload_overhead_percent'], rows);
}

/** exits.csv: exits by reason per configuration. */
export function exitsCsv(results: readonly PagingResult[]): string {
  const rows: CsvCell[][] = [];
  for (const r of results) if (r.run !== null) for (const [reason, n] of [...r.run.exitsByReason].sort((a, b) => (a[0] < b[0] ? -1 : 1))) rows.push([r.name, reason, n]);
  return toCsv(['config', 'reason', 'count'], rows);
}
