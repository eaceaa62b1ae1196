/**
 * The bootable image: the LWK linked with the VMM library (as Kitten links Palacios), its default
 * VM configuration and a bundled guest kernel. rollup.config.mjs builds it into
 * dist/v3vee-image.mjs, resolving the VMM's public API (vmm/index.ts) to the built static
 * library dist/libv3vee.mjs and inlining it; hw/ (the machine the image boots on) stays an
 * import, so the image runs on the same machine model as the CLI that loads it.
 *
 *   const machine = new Machine({ ram: hostMemoryFor(DEFAULT_VM_MEMORY), consoleChannels: [...] });
 *   const img = boot(machine, { profile: 'lwk' });   // the LWK boots and launches the default VM
 *   machine.run(maxCycles);                          // stops when every launched VM has ended
 *   img.vms[0].handle?.report();
 *
 * `boot` is the entry the machine calls: it boots the LWK with no init program (its host
 * interface up), creates each VM through the library on `kernel.host`, starts them, and stops
 * the machine when the last one ends. `vm` (apps/cli/vm.ts) uses the same entry from source with
 * a VM of the user's; `boot` (apps/cli/boot.ts) imports the built image and uses its defaults.
 * The guest's COM1 is the host stream 'guest-console': host console channel 1 out (the CLI's
 * stdout), channel 0 in (its stdin).
 */
import { readFileSync } from 'node:fs';
import type { Machine } from '../hw/machine.ts';
import { bootKernel, makeBootInfo } from './boot.ts';
import type { Kernel, ProfileName } from './kernel.ts';
import type { StreamChannels } from './hostif/host.ts';
import { createVm, deviceRegistry, formatStats, validateConfig, type VmConfig, type VmHandle, type VmReport, type Result } from '../vmm/index.ts';

/** The image's name and version, printed in its boot line. */
export const IMAGE_NAME = 'v3vee-ts image (Kitten-like LWK + Palacios-like VMM)';

/** The bundled guest's name in the default config and in `BUNDLED_FILES`. */
export const BUNDLED_GUEST = 'hello.elf';

/** Guest RAM of the default VM. */
export const DEFAULT_VM_MEMORY = 16 << 20;

/** The default VM configuration (vmm/config.ts): the bundled guest, nested paging, the PC devices. */
export const DEFAULT_CONFIG: Readonly<Record<string, unknown>> = {
  name: 'demo',
  memory: '16M',
  cores: 1,
  paging: 'nested',
  kernel: { path: BUNDLED_GUEST, format: 'multiboot' },
  cmdline: '',
};

/**
 * The bytes of a file of the checkout, embedded in the image: rollup's embed plugin replaces each
 * call of this function on a string literal with the file's bytes (a base64 literal) at build
 * time; from source (tsx, vitest) it reads the file. Paths are relative to this file.
 */
function embedFile(path: string): Uint8Array {
  return new Uint8Array(readFileSync(new URL(path, import.meta.url)));
}

let bundled: Readonly<Record<string, Uint8Array>> | null = null;
/** The files the image carries (the bundled guest). */
export function bundledFiles(): Readonly<Record<string, Uint8Array>> {
  bundled ??= { [BUNDLED_GUEST]: embedFile('../apps/kernels/prebuilt/hello.elf') };
  return bundled;
}

/** The room the LWK needs next to its guests: its own memory, page tables, VMCBs, alignment slack. */
export const LWK_MEMORY = 32 << 20;

/** Host RAM for guests of `guestBytes` in all: theirs plus the LWK's, in 4 MiB units. */
export function hostMemoryFor(guestBytes: number): number {
  const four = 4 << 20;
  return Math.ceil((guestBytes + LWK_MEMORY) / four) * four;
}

export interface VmSpec {
  /** The VM's configuration (validated by the library). */
  config: unknown;
  /** The bytes of every file the config names. */
  files: Readonly<Record<string, Uint8Array>>;
}

export interface ImageOptions {
  /** The LWK's scheduling profile (default 'lwk'). */
  profile?: ProfileName;
  /** The gp profile's tick rate. */
  hz?: number;
  seed?: number;
  /** The VMs to launch (default: the default config with the bundled guest). */
  vms?: readonly VmSpec[];
  /** Host console channels of the guest's COM1 (default: in 0, out 1). */
  console?: StreamChannels;
  /** The kernel command line. */
  cmdline?: string;
}

export interface LaunchedVm {
  name: string;
  /** The VM, or null when it could not be created or started. */
  handle: VmHandle | null;
  /** Why it could not be created or started (one line), else null. */
  error: string | null;
}

export interface BootedImage {
  kernel: Kernel;
  vms: LaunchedVm[];
  /** True once every VM that was launched has ended (stopped or in error). */
  allEnded(): boolean;
}

/** Validates a config against the library's device registry (the CLI's check before it sizes the machine). */
export function checkConfig(config: unknown): Result<VmConfig> {
  return validateConfig(config, { deviceNames: deviceRegistry.names() });
}

/**
 * The image's entry: boots the LWK on `machine` (no init program), creates and starts each VM
 * on the LWK's host interface, and stops the machine (reason 'exit') when the last launched VM
 * has ended. A VM that cannot be created is reported in `vms` (the others still run).
 */
export function boot(machine: Machine, options: ImageOptions = {}): BootedImage {
  const specs = options.vms ?? [{ config: DEFAULT_CONFIG, files: bundledFiles() }];
  const kernel = bootKernel(machine, makeBootInfo(machine, [], options.cmdline ?? ''), {
    profile: options.profile ?? 'lwk', hz: options.hz, seed: options.seed ?? 0,
    host: { streams: { 'guest-console': options.console ?? { in: 0, out: 1 } } },
  });
  const vms: LaunchedVm[] = [];
  const host = kernel.host;
  if (host === null) {
    for (const s of specs) vms.push({ name: nameOf(s.config), handle: null, error: 'the LWK has no host interface' });
    return { kernel, vms, allEnded: () => true };
  }
  const ended = (h: VmHandle | null): boolean => h === null || h.state() === 'stopped' || h.state() === 'error';
  const allEnded = (): boolean => vms.every((v) => ended(v.handle));
  host.print(`${IMAGE_NAME}: launching ${specs.length} VM${specs.length === 1 ? '' : 's'}`);
  for (const s of specs) {
    const r = createVm(host, s.config, { files: s.files });
    if (!r.ok) {
      host.print(`vm ${nameOf(s.config)}: cannot create: ${r.error}`);
      vms.push({ name: nameOf(s.config), handle: null, error: r.error });
      continue;
    }
    const vm = r.value;
    const launched: LaunchedVm = { name: vm.name, handle: vm, error: null };
    vms.push(launched);
    vm.onStateChange((st) => {
      if (st !== 'stopped' && st !== 'error') return;
      host.print(`vm ${vm.name}: ${st}: ${describeReport(vm.report())}`);
      if (allEnded()) machine.stop('exit', null, 'every VM has ended');
    });
    const started = vm.start();
    if (!started.ok) {
      host.print(`vm ${vm.name}: cannot start: ${started.error}`);
      launched.handle = null;
      launched.error = started.error;
    }
  }
  if (vms.every((v) => v.handle === null)) machine.stop('exit', null, 'no VM could be launched');
  return { kernel, vms, allEnded };
}

/** The exit status a VM's end means (DESIGN.md): isa-debug-exit's (v << 1) | 1, 0 for a clean halt, 126 for an error. */
export function vmStatus(r: VmReport): number {
  if (r.state === 'error') return 126;
  return r.exitStatus ?? 0;
}

/** One line: how a VM ended. */
export function describeReport(r: VmReport): string {
  const eip = `guest eip 0x${(r.eip >>> 0).toString(16).padStart(8, '0')}`;
  if (r.state === 'error') return `${r.reason} (${eip})`;
  if (r.exitStatus !== null) return `isa-debug-exit, status ${r.exitStatus}`;
  return `${r.reason || 'halted'} (${eip})`;
}

/** The VM's statistics lines (vmm/telemetry.ts formatStats). */
export function vmStatsLines(vm: VmHandle): string[] {
  return formatStats(vm.stats()).map((l) => `${vm.name}: ${l}`);
}

function nameOf(config: unknown): string {
  const n = (config as { name?: unknown } | null)?.name;
  return typeof n === 'string' ? n : 'vm';
}
