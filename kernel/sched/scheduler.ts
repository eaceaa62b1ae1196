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
import { HostifError } from '../../hostif/hostif.ts';
import type { HostRequest } from '../../hostif/requests.ts';
import { charge } from '../costs.ts';
import type { LapicDriver } from '../drivers/lapic.ts';
import type { PerCpu } from '../percpu.ts';
import { writeCr3 } from '../../hw/cpu/isa/system.ts';
import { loadUserContext, saveUserContext } from './context.ts';
import type { SchedProfile } from './profile.ts';
import { RESTART_SYSCALL, type Thread } from './thread.ts';

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
  /**
   * The core's CR3 names an address space that has been destroyed (the core idled with it
   * loaded): the next switch reloads CR3 even if the new space got the same page directory, so
   * no stale translation survives.
   */
  staleCr3 = false;
  /** The kernel thread whose guest the core runs (its 'vmrun' carried out), or null. */
  guest: Thread | null = null;
  /** That run's request and cycle deadline. */
  guestReq: VmrunRequest | null = null;
  guestDeadline = Infinity;
  /** The last guest run ended at or after its deadline (its timer interrupt is not spurious). */
  guestDue = false;
  /** The next trap takes a host interrupt left pending by a #VMEXIT: it interrupted the guest. */
  exitIrq = false;
}

type VmrunRequest = Extract<HostRequest, { kind: 'vmrun' }>;

/**
 * What kernel/hostif/ (the LWK's hostif implementation) adds to the kernel-thread path: the
 * 'lock' request, the hardware side of 'vmrun', and cross-core work stamped with the sender's
 * clock. Without it, kernel threads have sleep, wait and yield only.
 */
export interface KernelThreadHooks {
  /** At the start of each decision on `core`: the work other cores sent it that is due now. */
  drain(cpu: Cpu, core: number): void;
  /** The earliest cycle at which that work needs a decision on `core` (Infinity: none). */
  nextDeadline(core: number): number;
  /** A request the scheduler does not carry out itself ('lock'); false when unknown. */
  request(cpu: Cpu, core: number, t: Thread, req: HostRequest): boolean;
  /** Checks a 'vmrun' request when it is made: the error to throw into the thread, or null. */
  checkRun(req: VmrunRequest): Error | null;
  /** Loads the guest's registers and executes VMRUN: 0 when the core now runs the guest, else the exit code. */
  enterGuest(cpu: Cpu, core: number, t: Thread, req: VmrunRequest): number;
  /** After the #VMEXIT: stores the guest's registers back into the request. */
  leaveGuest(cpu: Cpu, core: number, t: Thread, req: VmrunRequest, exitCode: number): void;
  /** A kernel thread threw (it is dead, `failure` holds the error). */
  failed(cpu: Cpu, t: Thread): void;
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
  /** kernel/hostif/ when the LWK's host interface is up (boot.ts), else null. */
  kthreadHooks: KernelThreadHooks | null = null;
  /** The kernel thread being stepped now (its code is running), or null. */
  stepping: Thread | null = null;

  /**
   * Called on the core where a process thread has left for good (exited or killed), after it
   * left the scheduler's structures: the process layer's bookkeeping (kernel.ts sets it).
   */
  onThreadExit: ((cpu: Cpu, t: Thread) => void) | null = null;
  /** Where the last placement went (round-robin among equally loaded cores). */
  private lastPlaced = -1;

  constructor(private readonly env: SchedEnv, o: SchedulerOptions) {
    this.cores = env.percpu.map(() => new CoreRun());
    this.quantum = o.quantum;
    this.profile = o.profile;
  }

  // ============================================================================ process threads

  /**
   * The core a new process thread starts on (fork, clone, a new process): the online core with
   * the fewest process threads (running, runnable or blocked), ties broken round-robin from the
   * core after the last placement. Threads then stay on that core (nothing migrates them).
   */
  place(): number {
    const n = this.cores.length;
    let best = -1, bestLoad = Infinity;
    for (let i = 1; i <= n; i++) {
      const k = (this.lastPlaced + i + n) % n;
      if (!this.env.percpu[k].online) continue;
      const load = this.load(k);
      if (load < bestLoad) { best = k; bestLoad = load; }
    }
    if (best < 0) best = 0;
    this.lastPlaced = best;
    return best;
  }

  /** Process threads that live on `core` (running, runnable or blocked), plus one for a guest it runs. */
  load(core: number): number {
    const cr = this.cores[core];
    let n = (cr.current !== null ? 1 : 0) + (cr.guest !== null ? 1 : 0);
    for (const t of cr.runq) if (t.user !== null) n++;
    for (const t of cr.sleepers) if (t.user !== null) n++;
    for (const t of cr.waiters) if (t.user !== null) n++;
    return n;
  }

  /**
   * Ends process thread `t` for good, from the core `from` runs on. A thread that is running on
   * another core cannot be stopped from here (its registers are in that core): it is marked
   * killed and that core is sent a reschedule IPI; it leaves at that core's next trap (a system
   * call or fault it traps with then is not acted on: syscalls/dispatch.ts, Kernel.userFault). Returns true if it is gone now. onThreadExit runs
   * when it is gone, on the core where it went.
   */
  kill(from: Cpu, t: Thread): boolean {
    if (t.state === 'dead') return true;
    const me = this.env.coreOf(from);
    if (this.cores[t.core].current === t && t.core !== me) {
      if (!t.killed) { t.killed = true; this.kick(from, t.core); }
      return false;
    }
    t.killed = true;
    this.exit(t);
    this.onThreadExit?.(from, t);
    return true;
  }

  /**
   * An address space is being destroyed: cores that still hold its page directory in CR3
   * reload CR3 at their next switch (CoreRun.staleCr3).
   */
  forgetAddressSpace(cr3: number): void {
    this.cores.forEach((cr, k) => {
      if ((this.env.percpu[k].cpu.cr3 >>> 0) === (cr3 >>> 0)) cr.staleCr3 = true;
    });
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
    if (t.killed) { this.exit(t); this.onThreadExit?.(cpu, t); return; } // it dies instead of sleeping
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
    const dueGuest = cr.guestDue;
    cr.guestDue = false;
    const work = this.profile.tick(cpu, core, now, threadRunning);
    this.env.percpu[core].noise.deferredWorkCycles += work;
    if (!dueSleeper && !dueSlice && !dueGuest && work === 0) cr.spuriousTimers++;
  }

  /** Arms the core's timer for the earliest pending decision, or disarms it (tickless). */
  private programTimer(cpu: Cpu, core: number): void {
    const cr = this.cores[core];
    charge(cpu, 'timerDecision');
    let want = Infinity;
    if ((cr.current !== null || cr.guest !== null) && cr.runq.length > 0) want = cr.sliceEnd;
    if (cr.guest !== null) want = Math.min(want, cr.guestDeadline);
    if (cr.sleepers.length > 0) want = Math.min(want, cr.sleepers[0].wakeAt);
    if (this.kthreadHooks !== null) want = Math.min(want, this.kthreadHooks.nextDeadline(core));
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
    this.kthreadHooks?.drain(cpu, core);
    this.wakeDue(cr, cpu.cycles);
    if (cr.current !== null && cr.current.killed) {
      // killed from another core while it ran here: it leaves now, before returning to user mode
      const dead = cr.current;
      this.exit(dead);
      this.onThreadExit?.(cpu, dead);
    }
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
    if (cr.guest !== null && !cpu.guest) this.enterGuest(cpu, core, cr);
  }

  /**
   * Carries out the 'vmrun' pick() chose, the timer already armed for its deadline (and the
   * kernel's next decision): VMRUN. When VMRUN refuses the VMCB the thread is resumed with the
   * exit code (EXIT_INVALID) at the next decision (a self-IPI, then idle).
   */
  private enterGuest(cpu: Cpu, core: number, cr: CoreRun): void {
    const t = cr.guest!, req = t.pendingRun!;
    t.pendingRun = null;
    cr.guestReq = req;
    cr.live = null; // VMRUN replaces the registers a process thread may have left in the core
    let rc: number;
    try {
      rc = this.kthreadHooks!.enterGuest(cpu, core, t, req);
    } catch (e) {
      t.throwNext = { error: e };
      rc = 1;
    }
    if (rc === 0) return;
    cr.guest = null;
    cr.guestReq = null;
    cr.guestDeadline = Infinity;
    t.state = 'runnable';
    if (t.throwNext === null) t.resume = { kind: 'vmexit', exitCode: rc, vmcb: req.vmcb };
    cr.runq.unshift(t);
    this.env.apic.sendIpi(cpu, this.env.percpu[core].apicId, VEC_RESCHED);
    const pc = this.env.percpu[core];
    if (pc.idleSince < 0) pc.idleSince = cpu.cycles;
    cpu.idle();
    this.programTimer(cpu, core);
  }

  /**
   * The #VMEXIT of the guest run on `core` (trap.ts): the thread is resumed with
   * {kind:'vmexit'} at its turn, behind the threads that are runnable now.
   */
  guestExit(cpu: Cpu, core: number, exitCode: number): void {
    const cr = this.cores[core];
    const t = cr.guest, req = cr.guestReq;
    if (t === null || req === null) throw new Error(`#VMEXIT ${exitCode} on core ${core}, which runs no guest`);
    cr.guest = null;
    cr.guestReq = null;
    cr.guestDue = cpu.cycles >= cr.guestDeadline;
    cr.guestDeadline = Infinity;
    cr.sliceEnd = Infinity;
    this.kthreadHooks!.leaveGuest(cpu, core, t, req, exitCode);
    t.state = 'runnable';
    t.resume = { kind: 'vmexit', exitCode, vmcb: req.vmcb };
    this.wakeDue(cr, cpu.cycles);
    cr.runq.push(t);
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
      if (next.pendingRun !== null) {
        // a kernel thread's 'vmrun' whose turn has come: the core runs its guest (schedule()
        // arms the timer, then enterGuest executes VMRUN)
        cr.guest = next;
        cr.guestDeadline = next.pendingRun.deadline;
        cr.sliceEnd = cr.runq.length > 0 ? cpu.cycles + this.quantum : Infinity;
        next.state = 'running';
        return next;
      }
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
      const v = f();
      if (v === RESTART_SYSCALL) {
        ctx.eip = (ctx.eip - 2) >>> 0; // back over INT 0x80 / SYSENTER; EAX still holds the number
        if (cr.live === t) cr.live = null; // EIP changed: load the whole context
      } else ctx.regs[0] = v;
    }
    if (cr.staleCr3) {
      writeCr3(cpu, t.owner!.cr3); // a full reload: no translation of a destroyed space survives
      cr.staleCr3 = false;
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
    let r: IteratorResult<HostRequest, void>;
    this.stepping = t;
    try {
      if (t.throwNext !== null) {
        const e = t.throwNext.error;
        t.throwNext = null;
        r = t.body!.throw(e);
      } else r = t.body!.next(resume);
    } catch (e) {
      // the thread threw: it is dead, the kernel carries on (hostif: 'failed')
      t.failure = { error: e };
      this.exit(t);
      this.kthreadHooks?.failed(cpu, t);
      return;
    } finally {
      this.stepping = null;
    }
    if (r.done === true) { this.exit(t); return; }
    const req: HostRequest = r.value;
    const kind = req !== null && typeof req === 'object' ? (req as { kind?: unknown }).kind : undefined;
    const refuse = (e: Error): void => { t.throwNext = { error: e }; t.state = 'runnable'; cr.runq.unshift(t); };
    if ((kind === 'sleep' || kind === 'wait') && t.pendingWake) {
      t.pendingWake = false;
      t.state = 'runnable';
      t.resume = { kind: 'woken' };
      cr.runq.push(t);
      return;
    }
    switch (kind) {
      case 'sleep': {
        const until = (req as { until: unknown }).until;
        if (typeof until !== 'number' || Number.isNaN(until)) { refuse(new HostifError(`sleep: until must be a cycle count, got ${String(until)}`)); return; }
        // a deadline already passed ends at the next wakeDue, in deadline order with the others
        this.sleep(cr, t, until);
        return;
      }
      case 'wait':
        this.sleep(cr, t, Infinity);
        return;
      case 'yield':
        t.state = 'runnable';
        t.resume = { kind: 'yielded' };
        cr.runq.push(t);
        return;
      case 'vmrun': {
        const bad = this.kthreadHooks !== null ? this.kthreadHooks.checkRun(req as VmrunRequest) : new HostifError('vmrun: this kernel has no host interface up');
        if (bad !== null) { refuse(bad); return; }
        t.pendingRun = req as VmrunRequest; // carried out when its turn comes (pick)
        t.state = 'runnable';
        cr.runq.push(t);
        return;
      }
      default:
        if (this.kthreadHooks !== null && this.kthreadHooks.request(cpu, t.core, t, req)) return;
        refuse(new HostifError(`kernel thread ${t.name}: unknown request ${describeRequest(req)}`));
    }
  }
}

function describeRequest(v: unknown): string {
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}
