/**
 * Scheduling profiles, selectable at boot (`--profile lwk|gp`): what the kernel does with the
 * timer besides the scheduler's own decisions. Kept in this one file.
 *
 * - lwk (the default, Kitten's way): tickless and no deferred work. The profile never asks for
 *   the timer; the scheduler arms it only when a decision is pending (kernel/sched/scheduler.ts).
 * - gp ("general-purpose", for comparison in noise experiments): a periodic tick at HZ (250 by
 *   default) on every core, whether or not anything is pending, and on each tick what a
 *   general-purpose kernel does from its tick: the tick handler itself (time keeping, process
 *   accounting, scheduler_tick), timer-wheel and RCU soft-interrupt processing, and periodic
 *   housekeeping work items (vmstat, writeback, cache reaping). Each costs cycles from the table
 *   below and displaces TLB entries and cache lines of the interrupted thread, charged through
 *   the same displacement model as every other interruption (kernel/interference.ts).
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { type CostEntry } from '../../hw/costs.ts';
import { chargeDisplacement } from '../interference.ts';

export type ProfileName = 'lwk' | 'gp';

export interface SchedProfile {
  readonly name: ProfileName;
  /** The first cycle after `now` at which the profile needs the timer on this core (Infinity: never). */
  nextTick(core: number, now: number): number;
  /**
   * The timer interrupt on `core` at `now`: runs the profile's periodic work if a tick is due
   * and charges it to the core. `threadRunning`: a thread was interrupted (its TLB and cache
   * suffer the displacement). Returns the cycles of deferred work done.
   */
  tick(cpu: Cpu, core: number, now: number, threadRunning: boolean): number;
}

/** The LWK: no tick, no deferred work. */
export const lwkProfile: SchedProfile = {
  name: 'lwk',
  nextTick: () => Infinity,
  tick: () => 0,
};

function c(cycles: number, source: string): CostEntry {
  return { cycles, kind: 'assumed', source };
}

const TSAFRIR = 'Tsafrir, Etsion, Feitelson, Kirkpatrick, "System noise, OS clock ticks, and fine-grained parallel applications", ICS 2005 (direct tick cost ~1-2 us; indirect cache/TLB cost of the same order or larger)';
const MORARI = 'Morari, Gioiosa, Wisniewski, Cazorla, Valero, "A quantitative analysis of OS noise", IPDPS 2011 (Linux noise: periodic timer interrupt and its softirqs dominate; rare long kernel daemon activities)';

/** The general-purpose profile's cost table: cycles at 2.2 GHz, with sources. */
export const gpCosts = {
  tickHandler: c(2_600, `${TSAFRIR}: the local timer interrupt handler (update_process_times, scheduler_tick, time keeping), ~1.2 us`),
  timerSoftirq: c(1_100, `${MORARI}: run_timer_softirq on a tick with no expired timers, ~0.5 us`),
  rcuSoftirq: c(700, `${MORARI}: rcu_process_callbacks / RCU quiescent-state checks per tick, ~0.3 us`),
  tickPagesTouched: c(12, `${TSAFRIR}: kernel pages (text, stacks, per-cpu data) a tick touches; each displaces a TLB entry of the thread`),
  tickLinesTouched: c(60, `${TSAFRIR}: cache lines a tick touches (of the order of a few KiB of kernel data and code)`),
  vmstatWork: c(22_000, `${MORARI}: vmstat_update work item, once per second per core, ~10 us`),
  vmstatPeriodTicks: c(250, 'Linux mm/vmstat.c: sysctl_stat_interval = HZ (once per second)'),
  writebackWork: c(66_000, `${MORARI}: flusher (wb_workfn) periodic writeback check every 5 s, ~30 us`),
  writebackPeriodTicks: c(1_250, 'Linux dirty_writeback_interval = 5 s'),
  cacheReapWork: c(44_000, `${MORARI}: cache_reap (slab) every 2 s per core, ~20 us`),
  cacheReapPeriodTicks: c(500, 'Linux mm/slab.c REAPTIMEOUT_AC = 2 s'),
  workPagesTouched: c(40, 'pages a housekeeping work item touches (assumed)'),
  workLinesTouched: c(600, 'cache lines a housekeeping work item touches (assumed)'),
} as const satisfies Record<string, CostEntry>;

/** A general-purpose kernel's periodic tick and deferred work, at `hz` ticks per second. */
export function gpProfile(cpuHz: number, hz = 250): SchedProfile {
  if (!Number.isInteger(hz) || hz < 1 || hz > 10_000) throw new RangeError(`HZ must be 1-10000, got ${hz}`);
  const period = Math.round(cpuHz / hz);
  const ticks = new Map<number, number>();
  const g = gpCosts;
  return {
    name: 'gp',
    nextTick: (_core, now) => (Math.floor(now / period) + 1) * period,
    tick(cpu, core, now, threadRunning) {
      const start = cpu.cycles;
      const n = (ticks.get(core) ?? 0) + 1;
      ticks.set(core, n);
      void now;
      cpu.cycles += g.tickHandler.cycles + g.timerSoftirq.cycles + g.rcuSoftirq.cycles;
      let pages = g.tickPagesTouched.cycles, lines = g.tickLinesTouched.cycles;
      const work = (every: number, cost: number) => {
        if (n % every === 0) { cpu.cycles += cost; pages += g.workPagesTouched.cycles; lines += g.workLinesTouched.cycles; }
      };
      // periods in seconds, scaled to this HZ
      work(Math.max(1, Math.round((g.vmstatPeriodTicks.cycles * hz) / 250)), g.vmstatWork.cycles);
      work(Math.max(1, Math.round((g.writebackPeriodTicks.cycles * hz) / 250)), g.writebackWork.cycles);
      work(Math.max(1, Math.round((g.cacheReapPeriodTicks.cycles * hz) / 250)), g.cacheReapWork.cycles);
      if (threadRunning) chargeDisplacement(cpu, pages, lines);
      return cpu.cycles - start;
    },
  };
}
