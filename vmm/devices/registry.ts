/**
 * Virtual devices register by name, as in Palacios (device_register("8259A", ...)), so a VM's
 * config can name them. A device factory gets the VM's device context (its guest clock and
 * event queue, port and MMIO hooks, IRQ lines, the host) and its options from the config, and
 * returns the instance, or a one-line error naming the bad option.
 */
import type { EventScheduler, IrqLine, PortDevice, PortWindow, TimeSource } from '../../hw/devices/types.ts';
import type { Host } from '../../hostif/hostif.ts';
import type { IntrRouter } from '../intr/router.ts';
import type { MsrHook } from '../exits/msr.ts';

export interface MmioDevice {
  read(offset: number, size: 1 | 2 | 4): number;
  write(offset: number, size: 1 | 2 | 4, value: number): void;
}

/** What a device sees of its VM. */
export interface VmDeviceContext {
  readonly host: Host;
  /** Guest time (cycles of the core the VM runs on; TSC_OFFSET 0) and the VM's event queue. */
  readonly time: TimeSource;
  readonly scheduler: EventScheduler;
  readonly intr: IntrRouter;
  /** Guest RAM in bytes. */
  readonly memory: number;
  /** Virtual cores. */
  readonly cores: number;
  /** The virtual core whose exit is being handled (0 outside exits): per-core devices (the LAPIC page) use it. */
  currentCore(): number;
  /** INIT and start-up IPIs reaching virtual core k's local APIC. */
  initCore(k: number): void;
  startupCore(k: number, vector: number): void;
  /** Claims ports for a device; an error line when a port is taken. */
  hookPorts(name: string, dev: PortDevice, windows: readonly PortWindow[]): string | null;
  /** Claims a guest-physical range for a device (emulated at its NPF / MMIO exits). */
  hookMmio(name: string, base: number, size: number, dev: MmioDevice): string | null;
  hookMsr(msr: number, hook: MsrHook): void;
  /** ISA IRQ n, wired to the 8259s and the IOAPIC. */
  isaIrq(n: number): IrqLine;
  /** Ends the VM (isa-debug-exit: status; a reset: null) with a reason for the report. */
  stopVm(status: number | null, reason: string): void;
  /** A line on the host's log. */
  print(line: string): void;
  /** Wakes the virtual core (input arrived from outside). */
  kick(): void;
}

export interface VmDevice {
  readonly name: string;
  readonly id: string;
  /** Device counters for the VM's statistics. */
  stats?(): Record<string, number>;
  /** Releases host resources (streams). */
  free?(): void;
}

export type DeviceFactory = (ctx: VmDeviceContext, options: Readonly<Record<string, unknown>>, id: string) => VmDevice | string;

export interface DeviceInfo {
  readonly name: string;
  readonly describe: string;
  readonly create: DeviceFactory;
}

export class DeviceRegistry {
  private readonly byName = new Map<string, DeviceInfo>();

  register(name: string, describe: string, create: DeviceFactory): void {
    if (this.byName.has(name)) throw new RangeError(`device ${JSON.stringify(name)} is already registered`);
    this.byName.set(name, { name, describe, create });
  }

  get(name: string): DeviceInfo | undefined {
    return this.byName.get(name);
  }

  names(): ReadonlySet<string> {
    return new Set(this.byName.keys());
  }
}

/** Reads an integer option in [lo, hi]; returns the default when absent, or an error line. */
export function intOption(options: Readonly<Record<string, unknown>>, key: string, dflt: number, lo: number, hi: number, dev: string): number | string {
  const v = options[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) return `device ${dev}: option ${key} must be an integer from ${lo} to ${hi}, got ${JSON.stringify(v)}`;
  return v;
}

/** Fails on options the device does not know. */
export function checkOptions(options: Readonly<Record<string, unknown>>, known: readonly string[], dev: string): string | null {
  for (const k of Object.keys(options)) if (!known.includes(k)) return `device ${dev}: unknown option ${JSON.stringify(k)}${known.length ? ` (known: ${known.join(', ')})` : ' (it takes none)'}`;
  return null;
}
