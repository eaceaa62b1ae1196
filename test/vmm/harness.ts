// A VM on the minimal hosted host (hostif/hosted.ts): a fresh machine, the host on it, the
// guest's COM1 on host console channel 0 (stream "guest-console"), captured here.
import { readFileSync } from 'node:fs';
import type { ByteSink } from '../../hw/devices/types.ts';
import { Machine } from '../../hw/machine.ts';
import { HostedHost } from '../../hostif/hosted.ts';
import { createVm, type Result, type VmHandle } from '../../vmm/index.ts';

export class Capture implements ByteSink {
  readonly bytes: number[] = [];
  write(b: Uint8Array): void { for (const x of b) this.bytes.push(x); }
  text(): string { return Buffer.from(this.bytes).toString('latin1'); }
}

export interface VmRig {
  machine: Machine;
  host: HostedHost;
  out: Capture;
  log: string[];
  vm: VmHandle;
  /** Runs the machine until the VM stops (or the cycle limit); returns the machine's stop reason. */
  run(maxCycles?: number): string;
}

export function makeHost(opts: { ram?: number; cores?: number } = {}): { machine: Machine; host: HostedHost; out: Capture; log: string[] } {
  const out = new Capture();
  const log: string[] = [];
  const machine = new Machine({ ram: opts.ram ?? 256 << 20, cores: opts.cores ?? 1, consoleChannels: [out] });
  const host = new HostedHost(machine, { streams: { 'guest-console': 0 }, log: (l) => log.push(l) });
  return { machine, host, out, log };
}

export function tryVm(config: Record<string, unknown>, files: Record<string, Uint8Array>, hostOpts: { ram?: number; cores?: number } = {}): Result<VmRig> {
  const { machine, host, out, log } = makeHost(hostOpts);
  const r = createVm(host, config, { files });
  if (!r.ok) return r;
  const vm = r.value;
  vm.onStateChange((s) => { if (s === 'stopped' || s === 'error') machine.stop('exit', null, `vm ${s}`); });
  return {
    ok: true,
    value: {
      machine, host, out, log, vm,
      run(maxCycles = 20e9): string {
        machine.stopReason = null;
        return machine.run(maxCycles);
      },
    },
  };
}

export function bootVm(config: Record<string, unknown>, files: Record<string, Uint8Array>, hostOpts: { ram?: number; cores?: number } = {}, before?: (rig: VmRig) => void): VmRig {
  const r = tryVm(config, files, hostOpts);
  if (!r.ok) throw new Error(r.error);
  before?.(r.value);
  const s = r.value.vm.start();
  if (!s.ok) throw new Error(s.error);
  return r.value;
}

export function readImage(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}
