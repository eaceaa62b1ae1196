/**
 * One guest kernel run under the VMM on the LWK host: a one-core machine, the LWK booted with
 * no program (its host interface up: kernel/hostif/), a VM created through vmm/'s public API
 * (`createVm`) with the guest's COM1 on a host console channel captured here, run until the VM
 * stops. Returns the guest's output, the VM's exits by reason, the kernel's accounting and the
 * machine's counters over the VM's run (boot and VM creation excluded).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Machine, type MachineStats } from '../../hw/machine.ts';
import { bootKernel, makeBootInfo } from '../../kernel/boot.ts';
import type { Kernel, ProfileName } from '../../kernel/kernel.ts';
import { createVm, type VmReport, type VmStats } from '../../vmm/index.ts';
import { UsageError } from '../cli/options.ts';
import { ExperimentError } from './errors.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Where the guest kernels are, relative to the checkout. */
export const DEFAULT_GUESTS_DIR = 'apps/guests/prebuilt';

/** A guest kernel image from `dir` (relative to the checkout unless absolute). */
export function readGuestImage(file: string, dir = DEFAULT_GUESTS_DIR): { path: string; image: Uint8Array } {
  const path = `${dir}/${file}`;
  try { return { path, image: new Uint8Array(readFileSync(isAbsolute(dir) ? path : join(ROOT, path))) }; } catch (e) {
    throw new UsageError(`cannot read the guest kernel ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'}): build it with apps/guests/build.sh --prebuilt`);
  }
}

export type VmPaging = 'nested' | 'hashed' | 'shadow' | 'shadow-cache';

export interface GuestVmSpec {
  /** The name the config gives the image, and its bytes. */
  path: string;
  image: Uint8Array;
  /** The guest's command line after its path. */
  cmdline: string;
  paging: VmPaging;
  profile: ProfileName;
  /** Guest RAM in bytes (default 64 MiB). */
  memory?: number;
  /** Host RAM in bytes (default 256 MiB). */
  hostMemory?: number;
  /** A watchdog in simulated cycles (default 100 s at 2.2 GHz). */
  maxCycles?: number;
  /** What to call the run in errors. */
  what: string;
}

export interface GuestVmRun {
  output: string;
  report: VmReport;
  stats: VmStats;
  kernel: Kernel;
  /** The machine's counters over the VM's run only. */
  delta: MachineStats;
}

export function runGuestVm(s: GuestVmSpec): GuestVmRun {
  const out: number[] = [];
  const machine = new Machine({
    cores: 1, ram: s.hostMemory ?? 256 << 20,
    com1: { write: () => { /* the kernel log, kept quiet */ } },
    consoleChannels: [{ write: (b: Uint8Array) => { for (const x of b) out.push(x); } }],
  });
  const kernel = bootKernel(machine, makeBootInfo(machine, [], ''), { profile: s.profile, seed: 0, host: { streams: { 'guest-console': 0 } } });
  if (kernel.host === null) throw new ExperimentError(`${s.what}: the LWK has no host interface`);
  const r = createVm(kernel.host, {
    name: 'experiment', memory: s.memory ?? 64 << 20, cores: 1, paging: s.paging,
    kernel: { path: s.path, format: 'multiboot' }, cmdline: s.cmdline,
  }, { files: { [s.path]: s.image } });
  if (!r.ok) throw new ExperimentError(`${s.what}: cannot create the VM: ${r.error}`);
  const vm = r.value;
  vm.onStateChange((st) => { if (st === 'stopped' || st === 'error') machine.stop('exit', null, `vm ${st}`); });
  const before = machine.stats();
  const started = vm.start();
  if (!started.ok) throw new ExperimentError(`${s.what}: cannot start the VM: ${started.error}`);
  const reason = machine.run(s.maxCycles ?? 220e9);
  const after = machine.stats();
  const report = vm.report();
  const output = Buffer.from(out).toString('latin1');
  if (reason !== 'exit' || report.state !== 'stopped' || report.exitStatus !== 1) {
    const last = output.trim().split('\n').slice(-1)[0] ?? '';
    throw new ExperimentError(`${s.what}: the guest stopped with '${report.reason || reason}' (state ${report.state}, eip 0x${(report.eip >>> 0).toString(16)}; last output: ${last})`);
  }
  const delta: MachineStats = { ...after };
  for (const k of ['instructions', 'cycles', 'tlbMisses', 'walkRefs', 'exceptions', 'interrupts'] as const) delta[k] = after[k] - before[k];
  return { output, report, stats: vm.stats(), kernel, delta };
}
