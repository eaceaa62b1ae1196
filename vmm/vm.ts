/**
 * A VM: its configuration, its guest RAM (one contiguous block from the host), its devices and
 * their event queue on guest time, its port, MMIO and MSR tables, CPUID and hypercalls, its
 * virtual cores, telemetry, and its state (Palacios' states: stopped, running, paused, error).
 *
 * Guest time is the host core's clock (TSC_OFFSET 0: the time the VMM spends is visible to
 * the guest, as under Palacios). Device models run on it through `time` (while an event fires,
 * the event's cycle) and `events` (a hw/devices/event-queue.ts queue the run loop drains).
 */
import type { MultibootEntry } from '../hw/boot/multiboot.ts';
import { EventQueue } from '../hw/devices/event-queue.ts';
import type { EventHandle, EventScheduler, TimeSource } from '../hw/devices/types.ts';
import { PortBus } from '../hw/ports.ts';
import type { Host, HostThreadHandle } from '../hostif/hostif.ts';
import type { VmConfig } from './config.ts';
import { VmCpuid } from './exits/cpuid.ts';
import type { MmioRegion } from './exits/mmio.ts';
import { builtinMsrs, type MsrHook } from './exits/msr.ts';
import { HypercallRegistry } from './exits/vmmcall.ts';
import type { MmioDevice, VmDevice, VmDeviceContext } from './devices/registry.ts';
import { IntrRouter } from './intr/router.ts';
import { type ExitRecord, Telemetry, type VmStats } from './telemetry.ts';
import type { VCore } from './vcore.ts';

export type VmState = 'stopped' | 'running' | 'paused' | 'error';

/** How a VM's run ended (or why it is in the error state). */
export interface VmReport {
  state: VmState;
  /** The isa-debug-exit status ((v << 1) | 1), or null. */
  exitStatus: number | null;
  /** Why the VM stopped, one line ('' while it runs). */
  reason: string;
  /** Guest EIP when it stopped. */
  eip: number;
  lastExits: ExitRecord[];
}

export class Vm {
  readonly telemetry: Telemetry;
  readonly events: EventQueue;
  readonly time: TimeSource;
  readonly scheduler: EventScheduler;
  readonly ports = new PortBus();
  readonly mmio: MmioRegion[] = [];
  readonly msrs: Map<number, MsrHook> = builtinMsrs();
  cpuid: VmCpuid = new VmCpuid(false);
  readonly hypercalls = new HypercallRegistry();
  readonly intr = new IntrRouter();
  readonly devices: VmDevice[] = [];
  vcores: VCore[] = [];
  threads: HostThreadHandle[] = [];

  state: VmState = 'stopped';
  stopRequested = false;
  pauseRequested = false;
  started = false;
  freed = false;
  exitStatus: number | null = null;
  reason = '';
  stopEip = 0;
  internalError: unknown = null;
  /** The virtual core whose exit is being handled (per-core devices: the LAPIC page, its MSRs). */
  currentCore = 0;
  /** Loader result (entry state), for reports. */
  entry: MultibootEntry | null = null;
  private firing = false;
  private startWall = 0;
  private startCycles = 0;
  private endCycles = 0;
  private endedCores = 0;
  private readonly listeners: ((s: VmState, vm: Vm) => void)[] = [];

  constructor(readonly host: Host, readonly config: VmConfig, readonly ramBase: number, readonly ramSize: number) {
    this.telemetry = new Telemetry(config.exitHistory);
    this.events = new EventQueue(host.cyclesPerSecond());
    const events = this.events;
    this.time = { now: () => (this.firing ? events.now() : host.cycles()), hz: host.cyclesPerSecond() };
    this.scheduler = {
      schedule: (at: number, cb: () => void): EventHandle => events.schedule(at, cb),
      cancel: (h: EventHandle) => events.cancel(h),
    };
    this.intr.onChange = (k) => this.kickCore(k);
  }

  /** Guest-physical -> host-physical for RAM, -1 elsewhere. */
  gpaToHpa(gpa: number): number {
    return gpa >= 0 && gpa < this.ramSize ? this.ramBase + gpa : -1;
  }

  /** The device context devices are created with. */
  deviceContext(): VmDeviceContext {
    return {
      host: this.host,
      time: this.time,
      scheduler: this.scheduler,
      intr: this.intr,
      memory: this.ramSize,
      cores: this.config.cores,
      currentCore: () => this.currentCore,
      initCore: (k) => { this.vcores[k]?.init(); this.kickCore(k); },
      startupCore: (k, v) => { this.vcores[k]?.startup(v); this.kickCore(k); },
      hookPorts: (name, dev, windows) => {
        try { this.ports.attach(name, dev, windows); return null; } catch (e) { return `device ${name}: ${(e as Error).message}`; }
      },
      hookMmio: (name, base, size, dev: MmioDevice) => {
        if (base < this.ramSize) return `device ${name}: MMIO at 0x${base.toString(16)} overlaps guest RAM (below 0x${this.ramSize.toString(16)})`;
        for (const r of this.mmio) if (base < r.base + r.size && r.base < base + size) return `device ${name}: MMIO at 0x${base.toString(16)} overlaps ${r.name}`;
        this.mmio.push({ name, base, size, dev });
        return null;
      },
      hookMsr: (msr, hook) => { this.msrs.set(msr >>> 0, hook); },
      isaIrq: (n) => this.intr.isaLine(n),
      stopVm: (status, reason) => this.requestStop('stopped', status, reason),
      print: (line) => this.host.print(line),
      kick: () => this.kick(),
    };
  }

  // ---- time

  /** Fires the device events due by now (guest time). */
  runEvents(): void {
    const now = this.host.cycles();
    if (this.events.nextEventAt() > now) return;
    this.firing = true;
    try { this.events.runUntil(now); } finally { this.firing = false; }
  }

  nextEventAt(): number {
    return this.events.nextEventAt();
  }

  // ---- state

  onStateChange(cb: (s: VmState, vm: Vm) => void): void {
    this.listeners.push(cb);
  }

  setState(s: VmState): void {
    if (this.state === s) return;
    this.state = s;
    for (const cb of this.listeners) cb(s, this);
  }

  /** Asks the virtual cores to stop at their next exit; the state changes once they have. */
  requestStop(state: 'stopped' | 'error', status: number | null, reason: string): void {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.exitStatus = status;
    this.reason = reason;
    this.pendingState = state;
    this.stopEip = this.vcores[0]?.rip() ?? 0;
    this.kick();
  }

  pendingState: 'stopped' | 'error' = 'stopped';

  /** Wakes every virtual core (a request waits) and makes those in the guest exit. */
  kick(): void {
    for (let k = 0; k < this.vcores.length; k++) this.kickCore(k);
  }

  /**
   * Wakes virtual core k's thread (an interrupt may be pending for it) and, when another context
   * than that thread calls, sends its host core an IPI so a running guest exits now.
   */
  kickCore(k: number): void {
    const t = this.threads[k];
    if (t === undefined || t.state === 'done' || t.state === 'failed') return;
    this.host.wake(t);
    if (this.state === 'running' && this.host.currentThread() !== t) this.host.interruptCore(t.core);
  }

  notePaused(paused: boolean): void {
    this.telemetry.bump(paused ? 'paused' : 'resumed');
  }

  markStarted(): void {
    this.started = true;
    this.startWall = performance.now();
    this.startCycles = this.host.cycles();
    this.setState('running');
  }

  vcoreEnded(vc: VCore): void {
    this.endedCores++;
    if (vc.id === 0) this.stopEip = vc.rip();
    if (this.endedCores < this.vcores.length) return;
    this.endCycles = this.host.cycles();
    this.telemetry.hostSeconds = (performance.now() - this.startWall) / 1000;
    if (!this.stopRequested) { this.stopRequested = true; this.reason = 'the virtual cores ended'; }
    for (const d of this.devices) d.free?.();
    this.setState(this.pendingState);
  }

  report(): VmReport {
    return { state: this.state, exitStatus: this.exitStatus, reason: this.reason, eip: this.stopEip, lastExits: this.telemetry.lastExits() };
  }

  stats(): VmStats {
    const end = this.endedCores === this.vcores.length && this.started ? this.endCycles : this.host.cycles();
    const s = this.telemetry.snapshot(this.started ? end - this.startCycles : 0);
    if (this.endedCores < this.vcores.length && this.started) s.hostSeconds = (performance.now() - this.startWall) / 1000;
    for (const d of this.devices) {
      const ds = d.stats?.();
      if (ds) for (const [k, v] of Object.entries(ds)) s.counters[`${d.id}.${k}`] = v;
    }
    s.counters['ports.unclaimed'] = this.ports.unclaimed;
    return s;
  }
}
