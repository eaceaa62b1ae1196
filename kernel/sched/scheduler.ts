/**
 * The scheduler: per-core run queues, round-robin with a quantum, threads pinned to their core,
 * idle through HLT, cross-core wake-ups by IPI, and a tickless timer (Kitten's policy).
 *
 * How a core is driven: every trap ends with schedule(core), which leaves the core ready to
 * continue (DESIGN.md's execution model): a process thread's registers loaded, or idle.
 *   1. Sleepers whose deadline has passed join the run queue.
 *   2. The running thread keeps the core unless others are runnable and its quantum is over.
 *   3. Otherwise the next thread comes off the queue: a process thread is switched in (its
 *      registers loaded); a kernel thread (a generator) is resumed until it yields its next
 *      request, which the scheduler carries out. At most one kernel-thread step runs per trap:
 *      if another would follow, the core sends itself a reschedule IPI and idles, so the
 *      machine's devices get their turn before the next step (nothing blocks the JS thread).
 *   4. Nothing runnable: the core idles (cpu.idle(), the host's HLT).
 *   5. The timer: the APIC timer (TSC-deadline mode) is armed only when a decision is pending:
 *      the end of the running thread's quantum when others wait for the core, or the earliest
 *      sleeper's deadline (or the general-purpose profile's periodic tick). Otherwise it is
 *      disarmed, and a core running one thread is never interrupted by the kernel.
 *
 * No deferred work: the timer interrupt does its work (wake-ups, preemption) to completion in
 * the handler; there are no softirqs, work queues or kernel daemons (under the LWK profile).
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import type { HostRequest } from '../../hostif/requests.ts';
import { charge } from '../costs.ts';
import type { LapicDriver } from '../drivers/lapic.ts';
import type { PerCpu } from '../percpu.ts';
import { loadUserContext, saveUserContext } from './context.ts';
import type { SchedProfile } from './profile.ts';
import { type Thread } from './thread.ts';

/** Interrupt vectors the scheduler uses (Linux's numbers). */
export const VEC_TIMER = 0xec;
export const VEC_RESCHED = 0xfd;

/** The scheduler's state of one core. */
export class CoreRun {
  /** Runnable threads, in round-robin order. */
  readonly runq: Thread[] = [];
  /** Sleeping threads with a deadline, earliest first (ties: in the order they slept). */
  readonly sleepers: Thread[] = [];
  /** Threads waiting without a deadline (until woken). */
  readonly waiters = new Set<Thread>();
  /** The process thread that owns the core (its registers are in the core), or null. */
  current: Thread | null = null;
  /** When the current thread's quantum ends (Infinity: no competitor, no quantum running). */
  sliceEnd = Infinity;
  /** The TSC deadline the APIC timer is armed with (0: disarmed). */
  armed = 0;
  /** The thread whose registers the core holds (skip the reload when it runs again). */
  live: Thread | null = null;
  /** Timer interrupts taken, and how many of them found nothing to do. */
  timerInterrupts = 0;
  spuriousTimers = 0;
  /** Number of preemptions (quantum expiries that switched threads). */
  preemptions = 0;
}

/** What the scheduler needs of the kernel. */
export interface SchedEnv {
  readonly percpu: readonly PerCpu[];
  readonly apic: LapicDriver;
  coreOf(cpu: Cpu): number;
  /** Called when a thread has exited and left the core (the process layer reaps it). */
  threadGone?(t: Thread): void;
}

export interface SchedulerOptions {
  /** The round-robin quantum in cycles. */
  quantum: number;
  profile: SchedProfile;
}

export class Scheduler {
  readonly cores: CoreRun[];
  readonly quantum: number;
  readonly profile: SchedProfile;

  constructor(private readonly env: SchedEnv, o: SchedulerOptions) {
    this.cores = env.percpu.map(() => new CoreRun());
    this.quantum = o.quantum;
    this.profile = o.profile;
  }

  // ============================================================================ thread life

  /** Makes a new thread runnable on its core; `from` is the core the caller runs on. */
  add(from: Cpu, t: Thread): void {
    t.state = 'runnable';
    this.cores[t.core].runq.push(t);
    this.kick(from, t.core);
  }

  /**
   * Wakes a sleeping or waiting thread before its deadline (a kernel thread is resumed with
   * {kind:'woken'}). Returns false if it was not asleep; a kernel thread then keeps the wake-up
   * for its next sleep or wait (hostif's rule).
   */
  wake(from: Cpu, t: Thread): boolean {
    if (t.state !== 'sleeping') {
      if (t.state !== 'dead' && t.body !== null) t.pendingWake = true; // kept for its next sleep or wait
      return false;
    }
    const cr = this.cores[t.core];
    const i = cr.sleepers.indexOf(t);
    if (i >= 0) cr.sleepers.splice(i, 1);
    cr.waiters.delete(t);
    t.state = 'runnable';
    t.resume = { kind: 'woken' };
    t.wakeAt = Infinity;
    cr.runq.push(t);
    this.kick(from, t.core);
    return true;
  }

  /** Another core must take a decision now: a reschedule IPI (the caller's own core decides at the end of its trap). */
  private kick(from: Cpu, core: number): void {
    const me = this.env.coreOf(from);
    if (core === me) return;
    const pc = this.env.percpu[core];
    if (!pc.online) return; // it schedules when it comes up
    this.env.apic.sendIpi(from, pc.apicId, VEC_RESCHED);
  }

  /**
   * The current process thread of `core` blocks until `until` (cycles; Infinity: until woken).
   * Its registers are saved now; `onResume` computes its EAX when it runs again.
   */
  block(cpu: Cpu, core: number, until: number, onResume: () => number): void {
    const cr = this.cores[core];
    const t = cr.current;
    if (t === null || t.user === null) throw new Error('block: no process thread on the core');
    saveUserContext(cpu, t.user);
    cr.current = null;
    cr.sliceEnd = Infinity;
    t.onResume = onResume;
    this.sleep(cr, t, until);
  }

  private sleep(cr: CoreRun, t: Thread, until: number): void {
    t.state = 'sleeping';
    t.wakeAt = until;
    if (until === Infinity) { cr.waiters.add(t); return; }
    let i = cr.sleepers.length;
    while (i > 0 && cr.sleepers[i - 1].wakeAt > until) i--;
    cr.sleepers.splice(i, 0, t);
  }

  /**
   * The current process thread of `core` gives up the core for the others (sched_yield):
   * it goes to the back of the run queue now. Nothing happens if it is alone.
   */
  yieldCurrent(cpu: Cpu, core: number): void {
    const cr = this.cores[core];
    const t = cr.current;
    if (t === null || cr.runq.length === 0) return;
    cr.sliceEnd = cpu.cycles; // its quantum is over: schedule() switches
  }

  /** A thread exits: it never runs again (its registers, if live, are dropped). */
  exit(t: Thread): void {
    const cr = this.cores[t.core];
    if (cr.current === t) { cr.current = null; cr.sliceEnd = Infinity; }
    if (cr.live === t) cr.live = null;
    const i = cr.runq.indexOf(t);
    if (i >= 0) cr.runq.splice(i, 1);
    const j = cr.sleepers.indexOf(t);
    if (j >= 0) cr.sleepers.splice(j, 1);
    cr.waiters.delete(t);
    t.state = 'dead';
    this.env.threadGone?.(t);
  }

  /** The thread running on `core` (a process thread), or null. */
  current(core: number): Thread | null { return this.cores[core].current; }

  /** Runnable threads on `core`, counting the running one. */
  runnable(core: number): number {
    const cr = this.cores[core];
    return cr.runq.length + (cr.current !== null ? 1 : 0);
  }

  // ============================================================================ the timer

  /** The APIC timer fired on `core`: the profile's tick work, then schedule() decides. */
  timerInterrupt(cpu: Cpu, core: number, threadRunning: boolean): void {
    const cr = this.cores[core];
    cr.armed = 0; // a TSC-deadline timer disarms itself when it fires
    cr.timerInterrupts++;
    const now = cpu.cycles;
    const dueSleeper = cr.sleepers.length > 0 && cr.sleepers[0].wakeAt <= now;
    const dueSlice = cr.current !== null && cr.runq.length > 0 && now >= cr.sliceEnd;
    const work = this.profile.tick(cpu, core, now, threadRunning);
    this.env.percpu[core].noise.deferredWorkCycles += work;
    if (!dueSleeper && !dueSlice && work === 0) cr.spuriousTimers++;
  }

  /** Arms the core's timer for the earliest pending decision, or disarms it (tickless). */
  private programTimer(cpu: Cpu, core: number): void {
    const cr = this.cores[core];
    charge(cpu, 'timerDecision');
    let want = Infinity;
    if (cr.current !== null && cr.runq.length > 0) want = cr.sliceEnd;
    if (cr.sleepers.length > 0) want = Math.min(want, cr.sleepers[0].wakeAt);
    want = Math.min(want, this.profile.nextTick(core, cpu.cycles));
    if (want === Infinity) {
      if (cr.armed !== 0) { this.env.apic.setDeadline(cpu, 0); cr.armed = 0; }
      return;
    }
    want = Math.max(1, Math.ceil(want));
    if (want !== cr.armed) { this.env.apic.setDeadline(cpu, want); cr.armed = want; }
  }

  // ============================================================================ the decision

  /** Leaves `core` ready to continue: a process thread loaded, or idle; then programs the timer. */
  schedule(cpu: Cpu, core: number): void {
    const cr = this.cores[core];
    charge(cpu, 'schedule');
    this.wakeDue(cr, cpu.cycles);
    let cur = cr.current;
    if (cur !== null && cr.runq.length > 0) {
      if (cr.sliceEnd === Infinity) cr.sliceEnd = cpu.cycles + this.quantum; // a decision is pending from now
      if (cpu.cycles >= cr.sliceEnd) {
        saveUserContext(cpu, cur.user!);
        cur.state = 'runnable';
        cr.runq.push(cur);
        cr.current = null;
        cr.preemptions++;
        cur = null;
      }
    }
    if (cur === null) cur = this.pick(cpu, core, cr);
    if (cur === null) {
      cr.sliceEnd = Infinity;
      const pc = this.env.percpu[core];
      if (pc.idleSince < 0) pc.idleSince = cpu.cycles;
      cpu.idle();
    }
    this.programTimer(cpu, core);
  }

  private wakeDue(cr: CoreRun, now: number): void {
    while (cr.sleepers.length > 0 && cr.sleepers[0].wakeAt <= now) {
      const t = cr.sleepers.shift()!;
      t.state = 'runnable';
      t.resume = { kind: 'timeout' };
      t.wakeAt = Infinity;
      cr.runq.push(t);
    }
  }

  /** Takes threads off the run queue until a process thread holds the core (or none is left). */
  private pick(cpu: Cpu, core: number, cr: CoreRun): Thread | null {
    let steps = 0;
    for (;;) {
      const next = cr.runq.shift();
      if (next === undefined) return null;
      if (next.body !== null) {
        if (steps > 0) {
          // a second kernel-thread step: let the machine run first (self-IPI, then idle)
          cr.runq.unshift(next);
          this.env.apic.sendIpi(cpu, this.env.percpu[core].apicId, VEC_RESCHED);
          return null;
        }
        steps++;
        this.stepKernelThread(cpu, cr, next);
        this.wakeDue(cr, cpu.cycles);
        continue;
      }
      this.switchTo(cpu, core, cr, next);
      return next;
    }
  }

  private switchTo(cpu: Cpu, core: number, cr: CoreRun, t: Thread): void {
    const ctx = t.user!;
    if (t.onResume !== null) {
      const f = t.onResume;
      t.onResume = null;
      ctx.regs[0] = f();
    }
    if (cr.live !== t) {
      charge(cpu, 'contextSwitch');
      this.env.percpu[core].noise.switches++;
      loadUserContext(cpu, ctx, this.env.percpu[core].gdt, t.owner!.cr3);
      cr.live = t;
    } else {
      cpu.r[0] = ctx.regs[0];
    }
    t.state = 'running';
    t.lastStart = cpu.cycles;
    cr.current = t;
    cr.sliceEnd = cr.runq.length > 0 ? cpu.cycles + this.quantum : Infinity;
    const pc = this.env.percpu[core];
    if (pc.idleSince >= 0) { pc.idleCycles += cpu.cycles - pc.idleSince; pc.idleSince = -1; }
  }

  /** Resumes a kernel thread until its next request, and carries the request out. */
  private stepKernelThread(cpu: Cpu, cr: CoreRun, t: Thread): void {
    charge(cpu, 'kthreadStep');
    t.state = 'running';
    const resume = t.resume;
    const r = t.body!.next(resume);
    if (r.done === true) { this.exit(t); return; }
    const req: HostRequest = r.value;
    if ((req.kind === 'sleep' || req.kind === 'wait') && t.pendingWake) {
      t.pendingWake = false;
      t.state = 'runnable';
      t.resume = { kind: 'woken' };
      cr.runq.push(t);
      return;
    }
    switch (req.kind) {
      case 'sleep':
        if (req.until <= cpu.cycles) { t.state = 'runnable'; t.resume = { kind: 'timeout' }; cr.runq.push(t); }
        else this.sleep(cr, t, req.until);
        return;
      case 'wait':
        this.sleep(cr, t, Infinity);
        return;
      case 'yield':
        t.state = 'runnable';
        t.resume = { kind: 'yielded' };
        cr.runq.push(t);
        return;
      default:
        throw new Error(`kernel thread ${t.name}: request '${req.kind}' is not supported by the LWK yet`);
    }
  }
}
