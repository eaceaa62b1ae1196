/**
 * Telemetry as Palacios keeps it: per exit reason, how many exits and the simulated cycles the
 * VMM spent handling them (the core's clock across the handler: the VMM's charged costs plus
 * whatever the host charged meanwhile); named counters (injections, unbacked accesses, ...); a
 * ring of the last exits for error reports; and, separately, host wall time (never part of the
 * simulation). `traceLine` is the `--trace exits` format:
 *
 *   exit 42 core 0 @1234567: IOIO (0x7b) rip=0x00100234 info1=0x03f80010 info2=0x00100236
 */

/** Exit code -> name (APM Table C-1), for reports and traces. */
const NAMES = new Map<number, string>([
  [0x60, 'INTR'], [0x61, 'NMI'], [0x62, 'SMI'], [0x63, 'INIT'], [0x64, 'VINTR'], [0x65, 'CR0_SEL_WRITE'],
  [0x66, 'IDTR_READ'], [0x67, 'GDTR_READ'], [0x68, 'LDTR_READ'], [0x69, 'TR_READ'], [0x6a, 'IDTR_WRITE'],
  [0x6b, 'GDTR_WRITE'], [0x6c, 'LDTR_WRITE'], [0x6d, 'TR_WRITE'], [0x6e, 'RDTSC'], [0x6f, 'RDPMC'],
  [0x70, 'PUSHF'], [0x71, 'POPF'], [0x72, 'CPUID'], [0x73, 'RSM'], [0x74, 'IRET'], [0x75, 'SWINT'],
  [0x76, 'INVD'], [0x77, 'PAUSE'], [0x78, 'HLT'], [0x79, 'INVLPG'], [0x7a, 'INVLPGA'], [0x7b, 'IOIO'],
  [0x7c, 'MSR'], [0x7d, 'TASK_SWITCH'], [0x7e, 'FERR_FREEZE'], [0x7f, 'SHUTDOWN'], [0x80, 'VMRUN'],
  [0x81, 'VMMCALL'], [0x82, 'VMLOAD'], [0x83, 'VMSAVE'], [0x84, 'STGI'], [0x85, 'CLGI'], [0x86, 'SKINIT'],
  [0x87, 'RDTSCP'], [0x88, 'ICEBP'], [0x89, 'WBINVD'], [0x8a, 'MONITOR'], [0x8b, 'MWAIT'], [0x8c, 'MWAIT_CONDITIONAL'],
  [0x400, 'NPF'], [-1, 'INVALID'],
]);

export function exitName(code: number): string {
  const n = NAMES.get(code);
  if (n !== undefined) return n;
  if (code >= 0 && code < 0x10) return `CR${code}_READ`;
  if (code >= 0x10 && code < 0x20) return `CR${code - 0x10}_WRITE`;
  if (code >= 0x20 && code < 0x30) return `DR${code - 0x20}_READ`;
  if (code >= 0x30 && code < 0x40) return `DR${code - 0x30}_WRITE`;
  if (code >= 0x40 && code < 0x60) return `EXCP${code - 0x40}`;
  return `UNKNOWN_0x${code.toString(16)}`;
}

export interface ExitRecord {
  code: number;
  rip: number;
  info1: number;
  info2: number;
  /** Guest time (the core's cycle count) at the exit. */
  cycle: number;
}

export interface ExitStat {
  code: number;
  name: string;
  count: number;
  /** Simulated cycles spent in the handler. */
  cycles: number;
}

export interface VmStats {
  exits: number;
  /** Simulated cycles in exit handlers, in all. */
  handlerCycles: number;
  byReason: ExitStat[];
  counters: Record<string, number>;
  /** Host (wall-clock) seconds from start() to the end of the run (guest and VMM together). Not simulated time. */
  hostSeconds: number;
  /** Guest time elapsed since start, in cycles. */
  guestCycles: number;
}

/** Slot of an exit code in the per-reason arrays (codes 0..0x400, and -1 at the end). */
const SLOTS = 0x402;
function slot(code: number): number {
  return code >= 0 && code <= 0x400 ? code : 0x401;
}

export class Telemetry {
  readonly count = new Float64Array(SLOTS);
  readonly cycles = new Float64Array(SLOTS);
  readonly counters = new Map<string, number>();
  exits = 0;
  hostSeconds = 0;
  private readonly ring: ExitRecord[];
  private ringNext = 0;

  constructor(readonly history: number) {
    this.ring = [];
  }

  /** One exit: its reason, the handler's simulated cycles, and the ring entry. */
  record(code: number, handlerCycles: number, rip: number, info1: number, info2: number, cycle: number): void {
    const s = slot(code);
    this.count[s]++;
    this.cycles[s] += handlerCycles;
    this.exits++;
    if (this.ring.length < this.history) this.ring.push({ code, rip, info1, info2, cycle });
    else {
      const r = this.ring[this.ringNext];
      r.code = code; r.rip = rip; r.info1 = info1; r.info2 = info2; r.cycle = cycle;
      this.ringNext = (this.ringNext + 1) % this.history;
    }
  }

  bump(name: string, n = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + n);
  }

  /** The last exits, oldest first. */
  lastExits(): ExitRecord[] {
    const r = this.ring.length < this.history ? this.ring : [...this.ring.slice(this.ringNext), ...this.ring.slice(0, this.ringNext)];
    return r.map((e) => ({ ...e }));
  }

  snapshot(guestCycles: number): VmStats {
    const byReason: ExitStat[] = [];
    let handlerCycles = 0;
    for (let s = 0; s < SLOTS; s++) {
      if (this.count[s] === 0) continue;
      const code = s === 0x401 ? -1 : s;
      byReason.push({ code, name: exitName(code), count: this.count[s], cycles: this.cycles[s] });
      handlerCycles += this.cycles[s];
    }
    byReason.sort((a, b) => b.count - a.count || a.code - b.code);
    return { exits: this.exits, handlerCycles, byReason, counters: Object.fromEntries([...this.counters].sort()), hostSeconds: this.hostSeconds, guestCycles };
  }
}

const hex8 = (v: number) => `0x${(v >>> 0).toString(16).padStart(8, '0')}`;

/** The `--trace exits` line of one exit. */
export function traceLine(n: number, core: number, cycle: number, code: number, rip: number, info1: number, info2: number): string {
  return `exit ${n} core ${core} @${cycle}: ${exitName(code)} (0x${code >= 0 ? code.toString(16) : '-1'}) rip=${hex8(rip)} info1=${hex8(info1)} info2=${hex8(info2)}`;
}

/** The statistics as lines for stderr (`--stats`). */
export function formatStats(s: VmStats): string[] {
  const lines = [`vm: ${s.exits} exits, ${s.handlerCycles} cycles in handlers (${s.guestCycles > 0 ? (100 * s.handlerCycles / s.guestCycles).toFixed(2) : '0.00'}% of ${s.guestCycles} guest cycles); host ${s.hostSeconds.toFixed(3)} s wall time`];
  for (const r of s.byReason) lines.push(`  ${r.name.padEnd(14)} ${String(r.count).padStart(10)} exits ${String(r.cycles).padStart(12)} cycles (${(r.cycles / r.count).toFixed(0)}/exit)`);
  for (const [k, v] of Object.entries(s.counters)) lines.push(`  ${k}: ${v}`);
  return lines;
}
