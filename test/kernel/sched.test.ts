// Scheduling (issue 5, "Scheduling"): the tickless LWK never interrupts a core that runs one
// thread; the APIC timer is armed only for a pending decision (a quantum when threads compete,
// a sleeper's deadline); round-robin preemption; kernel threads (generators of hostif requests)
// sleeping, waiting and being woken across cores by IPI; the general-purpose profile's periodic
// tick and deferred work for comparison.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { HostResume, HostThread } from '../../hostif/requests.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { gpCosts } from '../../kernel/sched/profile.ts';
import { VEC_RESCHED, VEC_TIMER } from '../../kernel/sched/scheduler.ts';
import { Thread } from '../../kernel/sched/thread.ts';
import type { Machine } from '../../hw/machine.ts';
import { programPath, runOnLwk } from './lwk.ts';

const HZ = 2_200_000_000;
const ms = (n: number): number => Math.round((HZ * n) / 1000);
/** Rounds of apps/native compute for a computation of several milliseconds (~10k instructions per round). */
const ROUNDS = '1500';

/** Starts a kernel thread on `core` (in the boot context, as the kernel would). */
function kthread(k: Kernel, m: Machine, core: number, name: string, body: HostThread): Thread {
  const t = Thread.kernel(name, core, body);
  m.enter(m.cores[0], () => k.sched.add(m.cores[0], t));
  return t;
}

describe('tickless: a core with one thread is never interrupted', () => {
  it('a long computation alone on core 0 takes no interrupt at all (kernel count and the CPU\'s own)', () => {
    const r = runOnLwk('compute', [ROUNDS], { cores: 2 });
    expect(r.status).toBe(0);
    const k = r.run.kernel, m = r.run.machine;
    const elapsed = m.cores[0].cycles;
    expect(elapsed).toBeGreaterThan(ms(8)); // long enough for two gp ticks and a quantum
    expect(k.percpu[0].noise.interruptions).toBe(0);
    expect(k.percpu[0].noise.interrupts.size).toBe(0);
    expect(k.sched.cores[0].timerInterrupts).toBe(0);
    expect(m.cores[0].stats.interrupts).toBe(0); // the core acknowledged no interrupt
  });

  it('timer activity on another core does not reach it', () => {
    const wakes: number[] = [];
    const r = runOnLwk('compute', [ROUNDS], {
      cores: 2,
      beforeRun: (k, m) => {
        kthread(k, m, 1, 'ticker', (function* (): HostThread {
          for (let i = 0; i < 5; i++) {
            yield { kind: 'sleep', until: m.cores[1].cycles + ms(1) };
            wakes.push(m.cores[1].cycles);
          }
        })());
      },
    });
    const k = r.run.kernel;
    expect(wakes).toHaveLength(5);
    expect(k.sched.cores[1].timerInterrupts).toBe(5);
    expect(k.percpu[1].noise.idleWakeups).toBe(5);
    expect(k.percpu[0].noise.interruptions).toBe(0);
    expect(r.run.machine.cores[0].stats.interrupts).toBe(0);
  });

  it('the general-purpose profile interrupts the same computation at HZ, with deferred work', () => {
    const lwk = runOnLwk('compute', [ROUNDS], { cores: 1 });
    const gp = runOnLwk('compute', [ROUNDS], { cores: 1, profile: 'gp', hz: 1000 });
    expect(gp.stdout).toBe(lwk.stdout);
    const k = gp.run.kernel;
    const n = k.percpu[0].noise;
    const elapsedMs = (gp.run.machine.cores[0].cycles * 1000) / HZ;
    // one tick per millisecond of the run (the first tick after boot to the last before exit)
    expect(n.interruptions).toBeGreaterThanOrEqual(Math.floor(elapsedMs) - 2);
    expect(n.interruptions).toBeLessThanOrEqual(Math.ceil(elapsedMs) + 1);
    expect(n.interrupts.get(VEC_TIMER)?.count).toBe(k.sched.cores[0].timerInterrupts);
    const perTick = gpCosts.tickHandler.cycles + gpCosts.timerSoftirq.cycles + gpCosts.rcuSoftirq.cycles;
    expect(n.deferredWorkCycles).toBeGreaterThanOrEqual(n.interruptions * perTick);
    // the noise shows up in the program's run time
    expect(gp.run.machine.cores[0].cycles).toBeGreaterThan(lwk.run.machine.cores[0].cycles + n.interruptionCycles - 1);
    expect(lwk.run.kernel.percpu[0].noise.interruptions).toBe(0);
  });
});

describe('round-robin', () => {
  it('two processes on one core share it in quanta; the timer is armed only while both run', () => {
    const second = new Uint8Array(readFileSync(programPath('compute')));
    const r = runOnLwk('compute', ['900'], {
      quantumMs: 0.2,
      beforeRun: (k, m) => { m.enter(m.cores[0], () => k.spawn(m.cores[0], { image: second, path: '/second', argv: ['/second', '300'], core: 0 })); },
    });
    expect(r.status).toBe(0);
    // both ran to the end, the shorter one first, each with the result it gets alone
    expect(r.stdout).toBe(runOnLwk('compute', ['300']).stdout + runOnLwk('compute', ['900']).stdout);
    const k = r.run.kernel, cr = k.sched.cores[0];
    expect(cr.preemptions).toBeGreaterThan(5);
    expect(cr.timerInterrupts).toBeGreaterThanOrEqual(cr.preemptions);
    // after the second process ended, init ran alone: no more timer interrupts
    const ticksWhileShared = cr.timerInterrupts;
    expect(k.percpu[0].noise.interrupts.get(VEC_TIMER)?.count).toBe(ticksWhileShared);
    expect(cr.armed).toBe(0);
  });

  it('output and cycle counts are the same on every run', () => {
    const a = runOnLwk('compute', ['200'], { cores: 2 }), b = runOnLwk('compute', ['200'], { cores: 2 });
    expect(a.stdout).toBe(b.stdout);
    expect(a.run.machine.stats()).toEqual(b.run.machine.stats());
  });
});

describe('kernel threads', () => {
  it('sleep until their deadlines, never early, in deadline order', () => {
    const seen: { name: string; at: number; until: number; res: HostResume['kind'] }[] = [];
    const sleeper = (m: Machine, name: string, core: number, delays: number[]) => (function* (): HostThread {
      for (const d of delays) {
        const until = m.cores[core].cycles + d;
        const res = yield { kind: 'sleep', until };
        seen.push({ name, at: m.cores[core].cycles, until, res: res.kind });
      }
    })();
    runOnLwk('compute', ['400'], {
      cores: 2,
      beforeRun: (k, m) => {
        kthread(k, m, 1, 'a', sleeper(m, 'a', 1, [ms(0.3), ms(0.3), ms(0.3)]));
        kthread(k, m, 1, 'b', sleeper(m, 'b', 1, [ms(0.5), ms(0.5)]));
      },
    });
    expect(seen).toHaveLength(5);
    for (const s of seen) { expect(s.at).toBeGreaterThanOrEqual(s.until); expect(s.res).toBe('timeout'); }
    const order = [...seen].sort((x, y) => x.until - y.until).map((s) => s.name + s.until);
    expect(seen.map((s) => s.name + s.until)).toEqual(order);
  });

  it('a thread waiting on one core is woken by another through a reschedule IPI', () => {
    let waiter: Thread | null = null;
    const log: string[] = [];
    const r = runOnLwk('compute', ['400'], {
      cores: 3,
      beforeRun: (k, m) => {
        waiter = kthread(k, m, 1, 'waiter', (function* (): HostThread {
          const res = yield { kind: 'wait' };
          log.push(`woken:${res.kind}`);
        })());
        kthread(k, m, 2, 'waker', (function* (): HostThread {
          yield { kind: 'sleep', until: m.cores[2].cycles + ms(0.5) };
          log.push('waking');
          k.sched.wake(m.cores[2], waiter!);
        })());
      },
    });
    expect(log).toEqual(['waking', 'woken:woken']);
    const k = r.run.kernel;
    expect(k.percpu[1].noise.interrupts.get(VEC_RESCHED)?.count).toBe(1);
    expect(waiter!.state).toBe('dead');
  });

  it('a wake-up before the wait is kept (hostif rule), and yield lets the other threads run', () => {
    const log: string[] = [];
    runOnLwk('compute', ['300'], {
      cores: 2,
      beforeRun: (k, m) => {
        const t = kthread(k, m, 1, 'w', (function* (): HostThread {
          yield { kind: 'yield' };
          log.push('w after yield');
          const res = yield { kind: 'wait' };
          log.push(`w ${res.kind}`);
        })());
        kthread(k, m, 1, 'x', (function* (): HostThread {
          log.push('x runs');
          k.sched.wake(m.cores[1], t);
          yield { kind: 'yield' };
          log.push('x after yield');
        })());
      },
    });
    expect(log).toEqual(['x runs', 'w after yield', 'x after yield', 'w woken']);
  });
});

describe('sleeping processes', () => {
  it('nanosleep arms the timer for the deadline and idles the core meanwhile', () => {
    const r = runOnLwk('clock');
    expect(r.status).toBe(0);
    const k = r.run.kernel;
    expect(k.sched.cores[0].timerInterrupts).toBe(2); // nanosleep, clock_nanosleep
    expect(k.percpu[0].noise.idleWakeups).toBe(2);
    expect(k.percpu[0].noise.interruptions).toBe(0);
    expect(k.percpu[0].idleCycles).toBeGreaterThanOrEqual(ms(5) - ms(0.1));
  });
});
