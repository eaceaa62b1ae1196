/**
 * The VMM library's public API (what an embedder such as the LWK or the CLI uses):
 *
 *   const r = createVm(host, configJson, { files: { 'hello.elf': bytes } });
 *   if (!r.ok) { print(r.error); exit(2); }          // one line naming the bad field or resource
 *   const vm = r.value;
 *   vm.onStateChange((s) => { if (s === 'stopped' || s === 'error') ... });
 *   vm.start();                                        // a host thread per virtual core
 *   ... the host runs (machine.run) ...
 *   vm.report()   // {state, exitStatus, reason, eip, lastExits}
 *   vm.stats()    // per-exit-reason counts and handler cycles, counters, host seconds
 *   vm.free();
 *
 * States (Palacios'): 'stopped' (created, or ended), 'running', 'paused', 'error'. start() from
 * a created VM; pause() and resume() while running/paused; stop() ends a running or paused VM at
 * its next exit; free() returns every page to the host once the VM is stopped or in error. A VM
 * runs once: create a new one to run again.
 */
import { checkHostifVersion, type Host } from '../hostif/hostif.ts';
import { pagingModeName, type Result, validateConfig, type VmConfig } from './config.ts';
import { registerGenericDevice } from './devices/generic.ts';
import { registerPcDevices } from './devices/pc.ts';
import { DeviceRegistry } from './devices/registry.ts';
import { VmCpuid } from './exits/cpuid.ts';
import { loadGuest, setEntryState } from './loader.ts';
import { pagingMode, pagingModeNames } from './paging/modes.ts';
import type { PagingMode } from './paging/mode.ts';
import type { VmStats } from './telemetry.ts';
import { VCore } from './vcore.ts';
import { Vm, type VmReport, type VmState } from './vm.ts';

export type { Result, VmConfig } from './config.ts';
export { validateConfig, parseSize, DEFAULT_DEVICES, pagingModeName } from './config.ts';
export type { VmReport, VmState } from './vm.ts';
export type { VmStats, ExitStat, ExitRecord } from './telemetry.ts';
export { formatStats, exitName, traceLine } from './telemetry.ts';
export { registerPagingMode, pagingModeNames } from './paging/modes.ts';
export { DeviceRegistry } from './devices/registry.ts';
export type { VmDevice, VmDeviceContext, DeviceFactory } from './devices/registry.ts';
export type { Hypercall } from './exits/vmmcall.ts';
export type { CpuidHook } from './exits/cpuid.ts';
export type { MsrHook } from './exits/msr.ts';
export { vmmCosts, vmmCostRows } from './costs.ts';

/** The registry of devices a config can name (Palacios' device_register). */
export const deviceRegistry = new DeviceRegistry();
registerPcDevices(deviceRegistry);
registerGenericDevice(deviceRegistry);

export interface CreateVmOptions {
  /** The images a config names (kernel.path, files[].path) -> their bytes. */
  files: Readonly<Record<string, Uint8Array>>;
  /** Another device registry (default: deviceRegistry). */
  devices?: DeviceRegistry;
}

/** The handle an embedder holds. */
export interface VmHandle {
  readonly name: string;
  readonly config: VmConfig;
  state(): VmState;
  start(): Result<void>;
  pause(): Result<void>;
  resume(): Result<void>;
  stop(): Result<void>;
  free(): Result<void>;
  report(): VmReport;
  stats(): VmStats;
  onStateChange(cb: (s: VmState) => void): void;
  /** Registers a hypercall (VMMCALL with EAX = id): the handler's result goes to EAX. */
  registerHypercall(id: number, name: string, fn: (regs: HypercallRegs) => number): void;
  /** Guest RAM (host-physical base and size), for tools and tests. */
  readonly ram: { readonly base: number; readonly size: number };
}

/** The guest registers a hypercall handler sees (EBX ECX EDX ESI EDI) and may change. */
export interface HypercallRegs {
  get(i: 1 | 2 | 3 | 6 | 7): number;
  set(i: 1 | 2 | 3 | 6 | 7, v: number): void;
}

const ok: Result<void> = { ok: true, value: undefined };
/** 1 MiB of zeros (guest memory is a multiple of 1 MiB). */
const ZERO = new Uint8Array(1 << 20);
const err = (error: string): Result<void> => ({ ok: false, error });

/**
 * Creates a VM: validates the config, preallocates its guest memory contiguously, builds its
 * devices, loads its kernel and sets up each virtual core's VMCB and paging. Nothing runs until
 * start(). Fails with one line (and frees everything) when something is wrong.
 */
export function createVm(host: Host, configJson: unknown, opts: CreateVmOptions): Result<VmHandle> {
  try { checkHostifVersion(host); } catch (e) { return { ok: false, error: (e as Error).message }; }
  const registry = opts.devices ?? deviceRegistry;
  const v = validateConfig(configJson, { deviceNames: registry.names() });
  if (!v.ok) return v;
  const config = v.value;
  const modeName = pagingModeName(config.paging);
  const factory = pagingMode(modeName);
  if (factory === undefined) return { ok: false, error: `config: paging: mode ${JSON.stringify(modeName)} is not available in this build (available: ${pagingModeNames().join(', ')})` };
  if (config.cores > host.coreCount()) return { ok: false, error: `config: cores: ${config.cores} virtual cores but the host has ${host.coreCount()} (one host core per virtual core)` };
  if (config.cores > 1 && config.paging.mode === 'shadow') return { ok: false, error: 'config: cores: shadow paging runs one virtual core per VM (use nested paging for more)' };

  // guest memory: one contiguous block, 4 MiB aligned when the host can (large nested pages)
  const pages = config.memory / 4096;
  let ramBase = host.allocPages(pages, { align: 4 << 20 });
  if (ramBase === null) ramBase = host.allocPages(pages);
  if (ramBase === null) {
    const st = host.memStats();
    return { ok: false, error: `cannot preallocate ${config.memory / 1048576} MiB of contiguous guest memory: the host has ${(st.freePages * 4096 / 1048576).toFixed(1)} MiB free but no contiguous block that large (use a smaller memory size)` };
  }
  const base = ramBase;
  const vm = new Vm(host, config, ramBase, config.memory);
  const modes: PagingMode[] = [];
  const cleanup = (): void => {
    for (const vc of vm.vcores) { vc.paging.release(vc.pctx); vc.release(); }
    for (const d of vm.devices) d.free?.();
    host.freePages(base, pages);
  };
  for (let off = 0; off < config.memory; off += ZERO.length) host.mem.writeBytes(ramBase + off, ZERO); // guest RAM starts zeroed

  // devices, in config order
  const ctx = vm.deviceContext();
  for (let i = 0; i < config.devices.length; i++) {
    const dc = config.devices[i];
    const info = registry.get(dc.name)!;
    const d = info.create(ctx, dc.options ?? {}, dc.id ?? dc.name);
    if (typeof d === 'string') { cleanup(); return { ok: false, error: `config: devices[${i}]: ${d}` }; }
    vm.devices.push(d);
  }
  vm.cpuid = new VmCpuid(vm.intr.lapic !== null);

  // the kernel
  const loaded = loadGuest({ size: config.memory, write: (gpa, bytes) => host.mem.writeBytes(base + gpa, bytes) }, config, opts.files);
  if (!loaded.ok) { cleanup(); return loaded; }

  // virtual cores
  for (let k = 0; k < config.cores; k++) {
    let mode: PagingMode;
    try {
      mode = factory.create(config.paging.mode === 'nested' ? { format: config.paging.format ?? 'long' } : { strategy: config.paging.strategy ?? 'vtlb' });
    } catch (e) { cleanup(); return { ok: false, error: `config: paging: ${(e as Error).message}` }; }
    modes.push(mode);
    const vc = VCore.create(vm, k, mode);
    if (vc === null) { cleanup(); return { ok: false, error: 'cannot allocate the VMCB and permission maps: the host is out of memory' }; }
    vm.vcores.push(vc);
    if (k === 0) setEntryState(vc, loaded.value);
    if (!mode.setup(vc.pctx)) { mode.release(vc.pctx); vm.vcores.pop(); vc.release(); cleanup(); return { ok: false, error: `cannot allocate the ${mode.name} paging structures: the host is out of memory` }; }
  }

  const handle: VmHandle = {
    name: config.name,
    config,
    ram: { base, size: config.memory },
    state: () => vm.state,
    start: () => {
      if (vm.freed) return err(`vm ${config.name}: freed`);
      if (vm.started) return err(`vm ${config.name}: already started (a VM runs once; create another)`);
      vm.markStarted();
      vm.threads = vm.vcores.map((vc) => host.startThread(vc.id, vc.run(), `vm ${config.name} core ${vc.id}`)); // virtual core k on host core k
      return ok;
    },
    pause: () => {
      if (vm.state !== 'running') return err(`vm ${config.name}: cannot pause in state ${vm.state}`);
      vm.pauseRequested = true;
      vm.kick();
      vm.setState('paused');
      return ok;
    },
    resume: () => {
      if (vm.state !== 'paused') return err(`vm ${config.name}: cannot resume in state ${vm.state}`);
      vm.pauseRequested = false;
      vm.setState('running');
      vm.kick();
      return ok;
    },
    stop: () => {
      if (vm.state !== 'running' && vm.state !== 'paused') return err(`vm ${config.name}: cannot stop in state ${vm.state}`);
      vm.requestStop('stopped', null, 'stopped by the host');
      return ok;
    },
    free: () => {
      if (vm.freed) return err(`vm ${config.name}: already freed`);
      if (vm.started && vm.state !== 'stopped' && vm.state !== 'error') return err(`vm ${config.name}: stop it before freeing it (state ${vm.state})`);
      if (vm.started && vm.threads.some((t) => t.state !== 'done' && t.state !== 'failed')) return err(`vm ${config.name}: its virtual cores have not ended yet`);
      cleanup();
      vm.freed = true;
      return ok;
    },
    report: () => vm.report(),
    stats: () => vm.stats(),
    onStateChange: (cb) => vm.onStateChange((s) => cb(s)),
    registerHypercall: (id, name, fn) => vm.hypercalls.register(id, name, (vc) => fn({ get: (i) => vc.reg(i), set: (i, x) => vc.setReg(i, x) })),
  };
  return { ok: true, value: handle };
}
