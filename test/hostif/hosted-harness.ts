// The contract harness for the minimal hosted host (hostif/hosted.ts): a fresh Machine with the
// host on it; each stream is a host console channel whose outside end the harness holds.
import type { ByteSink } from '../../hw/devices/types.ts';
import { Machine } from '../../hw/machine.ts';
import { HostedHost, type HostedOptions } from '../../hostif/hosted.ts';
import type { ContractSpec, HostHarness, StreamEnd } from './contract.ts';

class Capture implements ByteSink {
  readonly bytes: number[] = [];
  write(b: Uint8Array): void { this.bytes.push(...b); }
}

/** How late the hosted host may meet a deadline: a #VMEXIT, a few handler entries and thread steps. */
export const HOSTED_LATENCY = 20_000;

export function makeHostedHarness(spec: ContractSpec, opts: HostedOptions = {}): HostHarness & { host: HostedHost } {
  const sinks = spec.streams.map(() => new Capture());
  const machine = new Machine({ cores: spec.cores, ram: spec.ram, consoleChannels: sinks.length > 0 ? sinks : [null] });
  const host = new HostedHost(machine, { streams: Object.fromEntries(spec.streams.map((n, i) => [n, i])), ...opts });
  return {
    host,
    machine,
    reserved: [{ base: 0, length: host.reserveBelow }],
    latency: HOSTED_LATENCY,
    run(untilCycle: number): string {
      machine.stopReason = null;
      return machine.run(untilCycle);
    },
    streamEnd(name: string): StreamEnd | null {
      const ch = spec.streams.indexOf(name);
      if (ch < 0) return null;
      return {
        output: () => Uint8Array.from(sinks[ch].bytes),
        input: (b) => machine.console.input(ch, b),
        closeInput: () => machine.console.closeInput(ch),
      };
    },
  };
}
