// The host-interface contract: the properties every host (hostif/hostif.ts) must have, run
// against any implementation through a harness that builds a machine with that host on it.
// A test file per implementation calls runHostContract(name, makeHost); test/hostif/broken.test.ts
// runs the same checks against deliberately broken hosts and expects them to fail.
//
// Properties use fast-check with the project's fixed seed; allocation is checked against a
// reference model (immer state) with fc.commands.
import fc from 'fast-check';
import { produce } from 'immer';
import { describe, expect, it } from 'vitest';
import * as V from '../../hw/cpu/vmcb.ts';
import type { Machine } from '../../hw/machine.ts';
import {
  checkHostifVersion, HOSTIF_VERSION, type Host, HostifError, hostifCompatible, type HostThreadHandle, PAGE_SIZE,
} from '../../hostif/hostif.ts';
import type { HostResume, HostThread } from '../../hostif/requests.ts';
import { SEED } from '../native/diff.ts';
import { spinGuest } from './guest.ts';

// =================================================================================== harness

export interface ContractSpec {
  cores: number;
  ram: number;
  /** Stream names the host must offer (openStream). */
  streams: readonly string[];
}

/** The outside end of a host stream. */
export interface StreamEnd {
  /** Everything the host wrote so far. */
  output(): Uint8Array;
  input(bytes: Uint8Array): void;
  closeInput(): void;
}

export interface HostHarness {
  readonly host: Host;
  readonly machine: Machine;
  /** What the host keeps for itself: no allocation may overlap it. */
  readonly reserved: readonly { base: number; length: number }[];
  /** How late (in cycles) the host may end a sleep or a guest run after its deadline. */
  readonly latency: number;
  /** Runs the machine until nothing is left to do or the clock reaches `untilCycle`. */
  run(untilCycle: number): string;
  streamEnd(name: string): StreamEnd | null;
}

export type MakeHost = (spec: ContractSpec) => HostHarness;

export interface ContractOptions {
  /** fast-check runs per property (default 40; the allocation model 100). */
  numRuns?: number;
  seed?: number;
  /** Stop at the first failure without shrinking it (for checks expected to fail). */
  endOnFailure?: boolean;
}

export interface ContractCheck {
  id: string;
  name: string;
  run(): void;
}

/** Registers the whole contract as vitest tests for one implementation. */
export function runHostContract(name: string, makeHost: MakeHost, opts: ContractOptions = {}): void {
  describe(`host interface contract: ${name}`, () => {
    for (const c of hostContract(makeHost, opts)) it(c.name, () => c.run());
  });
}

// =================================================================================== helpers

const SPEC: ContractSpec = { cores: 3, ram: 8 << 20, streams: ['serial0', 'serial1'] };
/** Cycles any check may take (the longest legitimate one needs a few million). */
const LIMIT = 20_000_000;

function fresh(mk: MakeHost, spec: Partial<ContractSpec> = {}): HostHarness {
  return mk({ ...SPEC, ...spec });
}

/** Runs until idle and requires every thread to have finished. */
function runToEnd(h: HostHarness, threads: readonly HostThreadHandle[]): void {
  h.run(LIMIT);
  const stuck = threads.filter((t) => t.state !== 'done');
  if (stuck.length > 0) {
    const why = stuck.map((t) => `${t.name}: ${t.state}${t.state === 'failed' ? ` (${String(t.error)})` : ''}`).join('; ');
    throw new Error(`threads did not finish: ${why}`);
  }
}

/** A strictly increasing stamp of what happened in which order (JavaScript order). */
class Seq {
  private n = 0;
  next(): number { return this.n++; }
}

const hex = (v: number) => `0x${(v >>> 0).toString(16)}`;

/** A sleep or a guest run with a deadline, as a thread saw it. */
interface Timed {
  what: string;
  core: number;
  kind: 'sleep' | 'run';
  until: number;
  /** Stamps when it was asked for and when the thread saw it end. */
  req: number;
  done: number;
  /** The thread's core clock when it saw it end. */
  at: number;
}

/**
 * Never early, on time (within the host's latency), and in deadline order on each core: of two
 * that were pending at once, the one with the earlier deadline ends first (for two sleeps
 * exactly; when a guest run is involved, for deadlines more than `latency` apart, since a run
 * only sees time again at its next exit).
 */
function checkTimed(ops: readonly Timed[], latency: number): void {
  for (const o of ops) {
    if (o.at < o.until) throw new Error(`${o.what} ended early: at cycle ${o.at}, deadline ${o.until}`);
    if (o.at > o.until + latency) throw new Error(`${o.what} ended late: at cycle ${o.at}, deadline ${o.until} (latency ${latency})`);
  }
  for (const a of ops) {
    for (const b of ops) {
      if (a === b || a.core !== b.core) continue;
      const overlap = a.req < b.done && b.req < a.done;
      const tol = a.kind === 'sleep' && b.kind === 'sleep' ? 0 : latency;
      if (overlap && a.until + tol < b.until && a.done > b.done) {
        throw new Error(`out of deadline order on core ${a.core}: ${a.what} (deadline ${a.until}) ended after ${b.what} (deadline ${b.until})`);
      }
    }
  }
}

// =================================================================================== the checks

/** Every check of the contract, to run as tests or one by one. */
export function hostContract(mk: MakeHost, opts: ContractOptions = {}): ContractCheck[] {
  const seed = opts.seed ?? SEED;
  const runs = opts.numRuns ?? 40;
  // shrinking runs whole machines: bound it, and report the counterexample found so far
  const params = (n = runs) => ({ seed, numRuns: n, endOnFailure: opts.endOnFailure ?? false, interruptAfterTimeLimit: 45_000, markInterruptAsFailure: true });
  const checks: ContractCheck[] = [];
  const check = (id: string, name: string, run: () => void) => checks.push({ id, name, run });

  // ---------------------------------------------------------------- version, cores, time
  check('version', 'is versioned: its version is compatible with HOSTIF_VERSION and the check accepts it', () => {
    const h = fresh(mk);
    expect(hostifCompatible(h.host.version)).toBe(true);
    expect(() => checkHostifVersion(h.host)).not.toThrow();
    expect(() => checkHostifVersion({ name: 'x', version: { major: HOSTIF_VERSION.major + 1, minor: 0 } })).toThrow(HostifError);
    expect(() => checkHostifVersion({ name: 'x', version: { major: HOSTIF_VERSION.major, minor: HOSTIF_VERSION.minor - 1 } })).toThrow(HostifError);
  });

  check('cores', 'reports its cores and clock: coreCount, currentCore in the boot context, cyclesPerSecond, a clock that never goes back', () => {
    const h = fresh(mk);
    const host = h.host;
    expect(host.coreCount()).toBe(SPEC.cores);
    expect(host.currentCore()).toBe(0);
    expect(host.currentThread()).toBeNull();
    expect(host.cyclesPerSecond()).toBe(h.machine.hz);
    const seen: number[][] = [];
    const threads = [0, 1, 2].map((k) => host.startThread(k, (function* (): HostThread {
      const mine: number[] = [];
      seen.push(mine);
      for (let i = 0; i < 4; i++) {
        mine.push(host.cycles());
        yield { kind: 'sleep', until: host.cycles() + 1000 * (i + 1) };
      }
      mine.push(host.cycles());
    })()));
    runToEnd(h, threads);
    for (const s of seen) for (let i = 1; i < s.length; i++) expect(s[i]).toBeGreaterThan(s[i - 1]);
  });

  // ---------------------------------------------------------------- memory
  check('alloc-model', 'allocates like the reference model: aligned blocks inside usable RAM that never overlap, frees that return memory, clean exhaustion', () => {
    fc.assert(fc.property(fc.commands(allocCommands(), { maxCommands: 40 }), (cmds) => {
      const h = fresh(mk, { cores: 1 });
      const st = h.host.memStats();
      const usable = h.machine.memoryMap.filter((r) => r.type === 1);
      fc.modelRun(() => ({ model: { s: { live: [], free: st.freePages, total: st.totalPages, best: null, nextTag: 1 } as AllocState }, real: { h, usable } }), cmds);
    }), params(opts.numRuns ?? 100));
  });

  check('alloc-fill', 'fills memory to exhaustion with disjoint blocks, and after freeing everything fills it again as far', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 12, max: 20 }), (count, alignLog2) => {
      const h = fresh(mk, { cores: 1 });
      const host = h.host;
      const total = host.memStats().totalPages;
      const fill = (): number[] => {
        const got: number[] = [];
        for (;;) {
          const before = host.memStats().freePages;
          const b = host.allocPages(count, { align: 2 ** alignLog2 });
          if (b === null) { expect(host.memStats().freePages).toBe(before); return got; }
          got.push(b);
          expect(got.length).toBeLessThanOrEqual(total);
        }
      };
      const first = fill();
      const sorted = [...first].sort((a, b) => a - b);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]).toBeGreaterThanOrEqual(sorted[i - 1] + count * PAGE_SIZE);
      for (const b of first) host.freePages(b, count);
      expect(host.memStats().freePages).toBe(total);
      const second = fill();
      expect(second.length).toBeGreaterThanOrEqual(first.length);
      for (const b of second) host.freePages(b, count);
      expect(host.memStats().freePages).toBe(total);
    }), params(Math.min(runs, 30)));
  });

  check('alloc-args', 'refuses bad allocation arguments with RangeError and changes nothing', () => {
    const h = fresh(mk, { cores: 1 });
    const host = h.host;
    const free = host.memStats().freePages;
    for (const count of [0, -1, 1.5, NaN]) expect(() => host.allocPages(count)).toThrow(RangeError);
    for (const align of [1000, 2048, 3 * PAGE_SIZE, 0]) expect(() => host.allocPages(1, { align })).toThrow(RangeError);
    expect(() => host.allocPages(1, { node: host.numaNodes() })).toThrow(RangeError);
    expect(host.memStats().freePages).toBe(free);
    const b = host.allocPages(3)!;
    expect(b).not.toBeNull();
    expect(() => host.freePages(b, 2)).toThrow(RangeError);
    expect(() => host.freePages(b + PAGE_SIZE, 1)).toThrow(RangeError);
    host.freePages(b, 3);
    expect(() => host.freePages(b, 3)).toThrow(RangeError); // double free
    expect(host.memStats().freePages).toBe(free);
    expect(host.allocPages(free + 1)).toBeNull();
    expect(host.memStats().freePages).toBe(free);
  });

  check('addresses', 'translates addresses as the identity (host software addresses memory physically)', () => {
    const h = fresh(mk, { cores: 1 });
    const b = h.host.allocPages(4)!;
    for (const pa of [b, b + 0x123, b + 4 * PAGE_SIZE - 1]) {
      expect(h.host.physToVirt(pa)).toBe(pa);
      expect(h.host.virtToPhys(pa)).toBe(pa);
    }
    expect(h.host.numaNodes()).toBeGreaterThanOrEqual(1);
  });

  // ---------------------------------------------------------------- threads
  check('start-core', 'starts each thread on the core asked for, and keeps it there', () => {
    fc.assert(fc.property(fc.array(fc.nat(SPEC.cores - 1), { minLength: 1, maxLength: 8 }), (cores) => {
      const h = fresh(mk);
      const host = h.host;
      const seen: { asked: number; cores: number[]; self: boolean[] }[] = [];
      const handles: HostThreadHandle[] = [];
      cores.forEach((core, i) => {
        const rec = { asked: core, cores: [] as number[], self: [] as boolean[] };
        seen.push(rec);
        handles.push(host.startThread(core, (function* (): HostThread {
          const look = () => { rec.cores.push(host.currentCore()); rec.self.push(host.currentThread() === handles[i]); };
          look();
          yield { kind: 'yield' };
          look();
          yield { kind: 'sleep', until: host.cycles() + 5000 * (i + 1) };
          look();
        })(), `t${i}`));
      });
      handles.forEach((t, i) => expect(t.core).toBe(cores[i]));
      runToEnd(h, handles);
      for (const r of seen) {
        expect(r.cores).toEqual([r.asked, r.asked, r.asked]);
        expect(r.self).toEqual([true, true, true]);
      }
    }), params());
  });

  check('sleep-order', 'ends sleeps in deadline order, never early, within its latency', () => {
    // deadlines often close together (within a handler's work), so several are due at once
    const offset = fc.oneof(fc.integer({ min: 0, max: 400 }), fc.integer({ min: 0, max: 200_000 }));
    const arb = fc.array(fc.record({
      core: fc.oneof(fc.constant(0), fc.nat(SPEC.cores - 1)),
      sleeps: fc.array(offset, { minLength: 1, maxLength: 4 }),
    }), { minLength: 1, maxLength: 8 });
    fc.assert(fc.property(arb, (specs) => {
      const h = fresh(mk);
      const host = h.host, seq = new Seq();
      const ops: Timed[] = [];
      const handles = specs.map((sp, i) => host.startThread(sp.core, (function* (): HostThread {
        for (const [j, off] of sp.sleeps.entries()) {
          const until = host.cycles() + off;
          const req = seq.next();
          const r = yield { kind: 'sleep', until };
          if (r.kind !== 'timeout') throw new Error(`sleep ${i}.${j} resumed with ${r.kind}`);
          ops.push({ what: `sleep ${i}.${j}`, core: sp.core, kind: 'sleep', until, req, done: seq.next(), at: host.cycles() });
        }
      })(), `sleeper${i}`));
      runToEnd(h, handles);
      checkTimed(ops, h.latency);
    }), params());
  });

  check('wake', 'ends a sleep early with woken when another thread wakes it, not before the wake-up', () => {
    const arb = fc.record({ sleeper: fc.nat(SPEC.cores - 1), waker: fc.nat(SPEC.cores - 1), delay: fc.integer({ min: 1, max: 100_000 }), wait: fc.boolean() });
    fc.assert(fc.property(arb, ({ sleeper, waker, delay, wait }) => {
      const h = fresh(mk);
      const host = h.host;
      let woke = -1, resumed = -1, result: HostResume | null = null, until = 0;
      const s = host.startThread(sleeper, (function* (): HostThread {
        until = host.cycles() + 50_000_000;
        result = yield wait ? { kind: 'wait' } : { kind: 'sleep', until };
        resumed = host.cycles();
      })(), 'sleeper');
      const w = host.startThread(waker, (function* (): HostThread {
        yield { kind: 'sleep', until: host.cycles() + delay };
        woke = host.cycles();
        host.wake(s);
      })(), 'waker');
      runToEnd(h, [s, w]);
      expect(result).toEqual({ kind: 'woken' });
      expect(resumed).toBeGreaterThanOrEqual(woke);
      expect(resumed).toBeLessThanOrEqual(woke + h.latency);
      if (!wait) expect(resumed).toBeLessThan(until);
    }), params());
  });

  check('wake-kept', 'keeps a wake-up for a thread that is not sleeping (one, not counted), and ignores wakes of finished threads', () => {
    const h = fresh(mk);
    const host = h.host;
    const got: string[] = [];
    const u = host.startThread(1, (function* (): HostThread {
      yield { kind: 'yield' }; // the waker runs meanwhile (same core, FIFO)
      const a = yield { kind: 'sleep', until: host.cycles() + 10_000_000 };
      got.push(a.kind);
      const b = yield { kind: 'sleep', until: host.cycles() + 10_000 };
      got.push(b.kind);
      const c = yield { kind: 'wait' };
      got.push(c.kind);
    })(), 'sleeper');
    const w = host.startThread(1, (function* (): HostThread {
      host.wake(u);
      host.wake(u); // two wakes keep one wake-up
      yield { kind: 'sleep', until: host.cycles() + 200_000 };
      host.wake(u); // ends the wait
    })(), 'waker');
    runToEnd(h, [u, w]);
    expect(got).toEqual(['woken', 'timeout', 'woken']);
    expect(() => host.wake(u)).not.toThrow();
    h.run(LIMIT);
    expect(u.state).toBe('done');
  });

  check('yield', 'lets the core\'s other runnable threads run first when a thread yields (round robin)', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 4 }), fc.integer({ min: 1, max: 6 }), fc.nat(SPEC.cores - 1), (n, rounds, core) => {
      const h = fresh(mk);
      const host = h.host;
      const order: number[] = [];
      const hs = Array.from({ length: n }, (_, i) => host.startThread(core, (function* (): HostThread {
        for (let r = 0; r < rounds; r++) {
          order.push(i);
          const x = yield { kind: 'yield' };
          if (x.kind !== 'yielded') throw new Error(`yield resumed with ${x.kind}`);
        }
      })(), `y${i}`));
      runToEnd(h, hs);
      expect(order).toEqual(Array.from({ length: n * rounds }, (_, k) => k % n));
    }), params());
  });

  check('lock', 'grants locks one holder at a time, in the order they were asked for', () => {
    const arb = fc.array(fc.record({ core: fc.nat(SPEC.cores - 1), iters: fc.integer({ min: 1, max: 3 }), hold: fc.integer({ min: 0, max: 50_000 }), gap: fc.integer({ min: 0, max: 30_000 }) }), { minLength: 2, maxLength: 6 });
    fc.assert(fc.property(arb, (specs) => {
      const h = fresh(mk);
      const host = h.host, seq = new Seq();
      const lock = host.createLock('contract');
      let holder = -1;
      const reqs: { who: number; req: number; grant: number }[] = [];
      const hs = specs.map((sp, i) => host.startThread(sp.core, (function* (): HostThread {
        for (let k = 0; k < sp.iters; k++) {
          yield { kind: 'sleep', until: host.cycles() + sp.gap };
          const rec = { who: i, req: seq.next(), grant: -1 };
          reqs.push(rec);
          const r = yield { kind: 'lock', lock };
          if (r.kind !== 'locked') throw new Error(`lock resumed with ${r.kind}`);
          rec.grant = seq.next();
          if (holder !== -1) throw new Error(`thread ${i} got the lock while thread ${holder} held it`);
          holder = i;
          yield { kind: 'sleep', until: host.cycles() + sp.hold };
          holder = -1;
          host.unlock(lock);
        }
      })(), `locker${i}`));
      runToEnd(h, hs);
      for (const a of reqs) {
        for (const b of reqs) {
          if (a.req < b.req && b.req < a.grant && a.grant > b.grant) {
            throw new Error(`lock not FIFO: thread ${a.who} asked before thread ${b.who} but got it after`);
          }
        }
      }
    }), params());
  });

  check('lock-misuse', 'refuses an unlock by a thread that does not hold the lock, and a second lock by its holder', () => {
    const h = fresh(mk);
    const host = h.host;
    const lock = host.createLock('m');
    let unlockErr: unknown = null, relockErr: unknown = null;
    const a = host.startThread(0, (function* (): HostThread {
      try { host.unlock(lock); } catch (e) { unlockErr = e; }
      yield { kind: 'lock', lock };
      try { yield { kind: 'lock', lock }; } catch (e) { relockErr = e; }
      host.unlock(lock);
    })(), 'a');
    runToEnd(h, [a]);
    expect(unlockErr).toBeInstanceOf(Error);
    expect(relockErr).toBeInstanceOf(Error);
  });

  check('bad-request', 'throws an unknown request back into the thread, which can carry on', () => {
    const h = fresh(mk);
    let err: unknown = null;
    const t = h.host.startThread(0, (function* (): HostThread {
      try { yield { kind: 'bogus' } as unknown as { kind: 'yield' }; } catch (e) { err = e; }
      yield { kind: 'yield' };
    })(), 'bad');
    runToEnd(h, [t]);
    expect(err).toBeInstanceOf(Error);
  });

  check('thread-failure', 'marks a thread that throws as failed with its error, and carries on', () => {
    const h = fresh(mk);
    const host = h.host;
    const boom = new Error('boom');
    let after = false;
    const bad = host.startThread(1, (function* (): HostThread {
      yield { kind: 'yield' };
      throw boom;
    })(), 'bad');
    const good = host.startThread(1, (function* (): HostThread {
      yield { kind: 'sleep', until: host.cycles() + 20_000 };
      after = true;
    })(), 'good');
    h.run(LIMIT);
    expect(bad.state).toBe('failed');
    expect(bad.error).toBe(boom);
    expect(good.state).toBe('done');
    expect(after).toBe(true);
  });

  // ---------------------------------------------------------------- other cores
  check('calls', 'runs each cross-core call exactly once, on the core asked for, in host context, not before it was asked for', () => {
    const arb = fc.array(fc.record({ from: fc.integer({ min: -1, max: SPEC.cores - 1 }), to: fc.nat(SPEC.cores - 1), hop: fc.option(fc.nat(SPEC.cores - 1)) }), { minLength: 1, maxLength: 12 });
    fc.assert(fc.property(arb, (calls) => {
      const h = fresh(mk);
      const host = h.host;
      const ran: { id: string; core: number; thread: boolean; at: number }[] = [];
      const asked = new Map<string, number>();
      const expected: { id: string; core: number }[] = [];
      const handles: { done: boolean }[] = [];
      const look = (id: string) => ran.push({ id, core: host.currentCore(), thread: host.currentThread() !== null, at: host.cycles() });
      const fnFor = (i: number, to: number, hop: number | null) => () => {
        look(`${i}`);
        if (hop !== null) {
          asked.set(`${i}.hop`, host.cycles());
          handles.push(host.callOnCore(hop, () => look(`${i}.hop`)));
        }
      };
      calls.forEach((c, i) => {
        expected.push({ id: `${i}`, core: c.to });
        if (c.hop !== null) expected.push({ id: `${i}.hop`, core: c.hop });
      });
      calls.forEach((c, i) => { if (c.from === -1) handles.push(host.callOnCore(c.to, fnFor(i, c.to, c.hop))); });
      const threads: HostThreadHandle[] = [];
      for (let core = 0; core < SPEC.cores; core++) {
        const mine = calls.map((c, i) => ({ c, i })).filter((x) => x.c.from === core);
        if (mine.length === 0) continue;
        const t: HostThreadHandle = host.startThread(core, (function* (): HostThread {
          for (const { c, i } of mine) {
            asked.set(`${i}`, host.cycles());
            const call = host.callOnCore(c.to, fnFor(i, c.to, c.hop), { notify: host.currentThread()! });
            handles.push(call);
            while (!call.done) yield { kind: 'wait' };
          }
        })(), `caller${core}`);
        threads.push(t);
      }
      runToEnd(h, threads);
      for (const e of expected) {
        const r = ran.filter((x) => x.id === e.id);
        if (r.length !== 1) throw new Error(`call ${e.id} ran ${r.length} times`);
        if (r[0].core !== e.core) throw new Error(`call ${e.id} ran on core ${r[0].core}, not ${e.core}`);
        if (r[0].thread) throw new Error(`call ${e.id} ran with a current thread (not in host context)`);
        const t = asked.get(e.id);
        if (t !== undefined && r[0].at < t) throw new Error(`call ${e.id} ran at cycle ${r[0].at}, before it was asked for at ${t}`);
      }
      expect(ran.length).toBe(expected.length);
      for (const c of handles) expect(c.done).toBe(true);
    }), params());
  });

  // ---------------------------------------------------------------- guest runs
  check('vmrun-deadline', 'ends guest runs at their deadline: one INTR exit, never early, within its latency', () => {
    const arb = fc.array(fc.array(fc.integer({ min: 1, max: 150_000 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: SPEC.cores });
    fc.assert(fc.property(arb, (perCore) => {
      const h = fresh(mk);
      const host = h.host, seq = new Seq();
      const ops: Timed[] = [];
      const hs = perCore.map((offs, core) => {
        const g = spinGuest(host);
        return host.startThread(core, (function* (): HostThread {
          for (const [j, off] of offs.entries()) {
            const until = host.cycles() + off;
            const req = seq.next();
            const r = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: until };
            if (r.kind !== 'vmexit' || r.exitCode !== V.EXIT_INTR || r.vmcb !== g.vmcb) throw new Error(`run ${core}.${j} resumed with ${JSON.stringify(r)}, not an INTR exit of its VMCB`);
            ops.push({ what: `run ${core}.${j}`, core, kind: 'run', until, req, done: seq.next(), at: host.cycles() });
          }
        })(), `runner${core}`);
      });
      runToEnd(h, hs);
      checkTimed(ops, h.latency);
    }), params());
  });

  check('vmrun-mixed', 'ends sleeps and guest runs that share a core in deadline order, never early, within its latency', () => {
    const arb = fc.array(fc.record({
      runs: fc.array(fc.integer({ min: 1, max: 150_000 }), { minLength: 1, maxLength: 3 }),
      sleepers: fc.array(fc.array(fc.integer({ min: 0, max: 150_000 }), { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 3 }),
    }), { minLength: 1, maxLength: 2 });
    fc.assert(fc.property(arb, (cores) => {
      const h = fresh(mk);
      const host = h.host, seq = new Seq();
      const ops: Timed[] = [];
      const hs: HostThreadHandle[] = [];
      cores.forEach((spec, core) => {
        const g = spinGuest(host);
        hs.push(host.startThread(core, (function* (): HostThread {
          for (const [j, off] of spec.runs.entries()) {
            const until = host.cycles() + off;
            const req = seq.next();
            // the VMM's loop: an INTR exit before the deadline (a host timer of this core) re-enters
            do {
              const r = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: until };
              if (r.kind !== 'vmexit' || r.exitCode !== V.EXIT_INTR) throw new Error(`run ${core}.${j} resumed with ${JSON.stringify(r)}`);
            } while (host.cycles() < until);
            ops.push({ what: `run ${core}.${j}`, core, kind: 'run', until, req, done: seq.next(), at: host.cycles() });
          }
        })(), `runner${core}`));
        spec.sleepers.forEach((sleeps, i) => hs.push(host.startThread(core, (function* (): HostThread {
          for (const [j, off] of sleeps.entries()) {
            const until = host.cycles() + off;
            const req = seq.next();
            const r = yield { kind: 'sleep', until };
            if (r.kind !== 'timeout') throw new Error(`sleep resumed with ${r.kind}`);
            ops.push({ what: `sleep ${core}.${i}.${j}`, core, kind: 'sleep', until, req, done: seq.next(), at: host.cycles() });
          }
        })(), `sleeper${core}.${i}`)));
      });
      runToEnd(h, hs);
      checkTimed(ops, h.latency);
    }), params(Math.min(runs, 30)));
  });

  check('sleep-beside-guest', 'ends sleeps on other cores on time while a core runs a guest (an idle core wakes at its deadline, not at its old clock)', () => {
    const arb = fc.array(fc.record({ core: fc.integer({ min: 1, max: SPEC.cores - 1 }), sleeps: fc.array(fc.integer({ min: 0, max: 300_000 }), { minLength: 1, maxLength: 3 }) }), { minLength: 1, maxLength: 4 });
    fc.assert(fc.property(arb, fc.integer({ min: 100_000, max: 1_500_000 }), (specs, runFor) => {
      const h = fresh(mk);
      const host = h.host, seq = new Seq();
      const ops: Timed[] = [];
      const g = spinGuest(host);
      const hs = [host.startThread(0, (function* (): HostThread {
        const until = host.cycles() + runFor;
        do yield { kind: 'vmrun', vmcb: g.vmcb, deadline: until }; while (host.cycles() < until);
      })(), 'runner')];
      specs.forEach((sp, i) => hs.push(host.startThread(sp.core, (function* (): HostThread {
        for (const [j, off] of sp.sleeps.entries()) {
          const until = host.cycles() + off;
          const req = seq.next();
          const r = yield { kind: 'sleep', until };
          if (r.kind !== 'timeout') throw new Error(`sleep resumed with ${r.kind}`);
          ops.push({ what: `sleep ${i}.${j}`, core: sp.core, kind: 'sleep', until, req, done: seq.next(), at: host.cycles() });
        }
      })(), `sleeper${i}`)));
      runToEnd(h, hs);
      checkTimed(ops, h.latency);
    }), params(Math.min(runs, 25)));
  });

  check('vmrun-kick', 'ends a guest run with no deadline when another core interrupts that core', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: SPEC.cores - 1 }), fc.integer({ min: 1000, max: 200_000 }), (target, delay) => {
      const h = fresh(mk);
      const host = h.host;
      const g = spinGuest(host);
      const seq = new Seq();
      let kicked = -1, kickSeq = -1, ended = -1, endSeq = -1, exit = -1;
      const r = host.startThread(target, (function* (): HostThread {
        const x = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: Infinity };
        if (x.kind === 'vmexit') exit = x.exitCode;
        ended = host.cycles();
        endSeq = seq.next();
      })(), 'runner');
      const k = host.startThread(0, (function* (): HostThread {
        yield { kind: 'sleep', until: host.cycles() + delay };
        kicked = host.cycles();
        kickSeq = seq.next();
        host.interruptCore(target);
      })(), 'kicker');
      runToEnd(h, [r, k]);
      expect(exit).toBe(V.EXIT_INTR);
      expect(endSeq).toBeGreaterThan(kickSeq); // the run ended because of the kick, not before it
      expect(ended).toBeLessThanOrEqual(kicked + h.latency);
    }), params(Math.min(runs, 20)));
  });

  check('vmrun-regs', 'keeps each guest\'s registers in its request: two guests on one core do not mix them', () => {
    const h = fresh(mk);
    const host = h.host;
    const regs = [new Int32Array(8), new Int32Array(8)];
    regs[0][3] = 100; regs[0][6] = 7; regs[1][3] = 200; regs[1][6] = 9;
    const hs = [0, 1].map((i) => {
      const g = spinGuest(host, { code: [0x43, 0x46, 0xf4], intercepts3: V.IC3_INTR | V.IC3_HLT }); // inc ebx; inc esi; hlt
      const v = new V.VmcbView(host.mem, g.vmcb);
      return host.startThread(0, (function* (): HostThread {
        for (let n = 0; n < 3; n++) {
          v.w64(V.VMCB_RIP, g.code);
          let r: HostResume;
          do r = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: Infinity, regs: regs[i] };
          while (r.kind === 'vmexit' && r.exitCode === V.EXIT_INTR); // a host interrupt came first: go on
          if (r.kind !== 'vmexit' || r.exitCode !== V.EXIT_HLT) throw new Error(`guest ${i} resumed with ${JSON.stringify(r)}`);
          yield { kind: 'yield' };
        }
      })(), `guest${i}`);
    });
    runToEnd(h, hs);
    expect([regs[0][3], regs[0][6], regs[1][3], regs[1][6]]).toEqual([103, 10, 203, 12]);
  });

  check('vmrun-errors', 'refuses a VMCB that does not intercept INTR or set V_INTR_MASKING (an error thrown into the thread, naming it) and reports a VMCB VMRUN rejects as EXIT_INVALID', () => {
    const h = fresh(mk);
    const host = h.host;
    const noIntr = spinGuest(host, { intercepts3: V.IC3_HLT });
    const noMasking = spinGuest(host, { vintr: 0 });
    const invalid = spinGuest(host, { asid: 0 });
    let err: unknown = null, err2: unknown = null, exit: HostResume | null = null;
    const t = host.startThread(1, (function* (): HostThread {
      try { yield { kind: 'vmrun', vmcb: noIntr.vmcb, deadline: host.cycles() + 10_000 }; } catch (e) { err = e; }
      try { yield { kind: 'vmrun', vmcb: noMasking.vmcb, deadline: host.cycles() + 10_000 }; } catch (e) { err2 = e; }
      exit = yield { kind: 'vmrun', vmcb: invalid.vmcb, deadline: host.cycles() + 10_000 };
    })(), 'vmm');
    runToEnd(h, [t]);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/INTR/);
    expect(err2).toBeInstanceOf(Error);
    expect(String((err2 as Error).message)).toMatch(/V_INTR_MASKING/);
    expect(exit).toEqual({ kind: 'vmexit', exitCode: V.EXIT_INVALID, vmcb: invalid.vmcb });
  });

  // ---------------------------------------------------------------- host interrupts
  check('interrupts', 'calls a hooked vector\'s handler on the core it arrives on; the vector comes again only once acknowledged', () => {
    const h = fresh(mk);
    const host = h.host;
    const got: { v: number; core: number; thread: boolean; at: string }[] = [];
    let phase = 'start';
    expect(host.hookInterrupt(0x40, (v, core) => { got.push({ v, core, thread: host.currentThread() !== null, at: phase }); host.ackInterrupt(v); })).toBe(true);
    expect(host.hookInterrupt(0x41, (v, core) => { got.push({ v, core, thread: host.currentThread() !== null, at: phase }); })).toBe(true);
    expect(host.hookInterrupt(0x40, () => {})).toBe(false); // taken
    for (const v of [0x10, 0x1f, 0xf0, 0xff, 0x100, -1]) expect(host.hookInterrupt(v, () => {})).toBe(false);
    const sender = host.startThread(0, (function* (): HostThread {
      for (const v of [0x40, 0x40, 0x41, 0x41]) {
        host.interruptCore(2, v);
        yield { kind: 'sleep', until: host.cycles() + 20_000 };
      }
    })(), 'sender');
    const acker = host.startThread(2, (function* (): HostThread {
      yield { kind: 'sleep', until: host.cycles() + 200_000 };
      phase = 'acked';
      host.ackInterrupt(0x41); // the first 0x41, left in service by its handler
    })(), 'acker');
    runToEnd(h, [sender, acker]);
    expect(got.filter((g) => g.v === 0x40).length).toBe(2);
    const v41 = got.filter((g) => g.v === 0x41);
    expect(v41.map((g) => g.at)).toEqual(['start', 'acked']); // the second waited for the acknowledgement
    for (const g of got) { expect(g.core).toBe(2); expect(g.thread).toBe(false); }
    host.unhookInterrupt(0x41);
    expect(host.hookInterrupt(0x41, () => {})).toBe(true);
  });

  // ---------------------------------------------------------------- streams
  check('streams', 'carries bytes both ways on named streams: writes reach the outside in order, input reaches the callback once, in order, then the end', () => {
    const chunk = fc.uint8Array({ minLength: 1, maxLength: 40 });
    fc.assert(fc.property(fc.array(chunk, { minLength: 1, maxLength: 5 }), fc.array(chunk, { minLength: 0, maxLength: 5 }), (outs, ins) => {
      const h = fresh(mk, { cores: 2 });
      const host = h.host;
      expect(host.openStream('no such stream')).toBeNull();
      const s0 = host.openStream('serial0')!, s1 = host.openStream('serial1')!;
      const e0 = h.streamEnd('serial0')!, e1 = h.streamEnd('serial1')!;
      expect(s0).not.toBeNull(); expect(s1).not.toBeNull();
      const got: number[] = [];
      let ends = 0, inThread = false;
      s0.onInput((b) => { got.push(...b); inThread ||= host.currentThread() !== null; }, () => { ends++; });
      const writer = host.startThread(1, (function* (): HostThread {
        for (const o of outs) {
          expect(s0.write(o)).toBe(o.length);
          yield { kind: 'sleep', until: host.cycles() + 10_000 };
        }
      })(), 'writer');
      for (const i of ins) { e0.input(i); e1.input(i); h.run(h.machine.cores[0].cycles + 50_000); }
      e0.closeInput();
      runToEnd(h, [writer]);
      const cat = (a: Uint8Array[]) => Array.from(a.flatMap((x) => Array.from(x)));
      expect(Array.from(e0.output())).toEqual(cat(outs));
      expect(got).toEqual(cat(ins));
      expect(ends).toBe(1);
      expect(inThread).toBe(false);
      expect(s0.eof()).toBe(true);
      // serial1 has no callback: its input waits for a poll
      const polled = s1.read(1 << 20);
      expect(Array.from(polled)).toEqual(cat(ins));
      expect(s1.read(10).length).toBe(0);
      expect(s1.eof()).toBe(false);
      s0.close(); s1.close();
    }), params(Math.min(runs, 25)));
  });

  return checks;
}

// =================================================================================== the allocation model

interface Block { base: number; count: number; align: number; delta: number; tag: number }
interface AllocState {
  live: Block[];
  /** Free pages as the host reported them (the model tracks its deltas). */
  free: number;
  total: number;
  /** The largest (count, align) that ever succeeded: it must succeed again on an empty pool. */
  best: { count: number; align: number } | null;
  nextTag: number;
}
interface AllocModel { s: AllocState }
interface AllocReal { h: HostHarness; usable: readonly { base: number; length: number }[] }

const tagOf = (n: number) => Math.imul(n, 0x9e3779b1) >>> 0;

function writeTags(r: AllocReal, b: Block): void {
  const end = b.base + b.count * PAGE_SIZE - 4;
  r.h.host.mem.write(b.base, 4, b.tag);
  r.h.host.mem.write(end, 4, ~b.tag >>> 0);
}

/** Every live block still holds its tags: nothing else was put there, and no block overlaps another. */
function checkTags(m: AllocModel, r: AllocReal): void {
  for (const b of m.s.live) {
    const end = b.base + b.count * PAGE_SIZE - 4;
    if (r.h.host.mem.read(b.base, 4) >>> 0 !== b.tag || r.h.host.mem.read(end, 4) >>> 0 !== (~b.tag >>> 0)) {
      throw new Error(`the block of ${b.count} pages at ${hex(b.base)} was overwritten (blocks overlap)`);
    }
  }
  expect(r.h.host.memStats().freePages).toBe(m.s.free);
}

class AllocCmd implements fc.Command<AllocModel, AllocReal> {
  constructor(readonly count: number, readonly alignLog2: number, readonly nodeSel: number) {}
  check(): boolean { return true; }
  run(m: AllocModel, r: AllocReal): void {
    const host = r.h.host;
    const before = host.memStats().freePages;
    expect(before).toBe(m.s.free);
    const align = 2 ** this.alignLog2;
    const node = this.nodeSel === 0 ? -1 : (this.nodeSel - 1) % host.numaNodes();
    const b = host.allocPages(this.count, { align, node });
    const after = host.memStats().freePages;
    if (this.count > before && b !== null) throw new Error(`allocated ${this.count} pages with only ${before} free`);
    if (b === null) {
      if (after !== before) throw new Error(`a failed allocation changed the free count (${before} -> ${after}): partial state`);
      checkTags(m, r);
      return;
    }
    const size = this.count * PAGE_SIZE, end = b + size;
    if (!Number.isInteger(b) || b % align !== 0) throw new Error(`block ${hex(b)} is not aligned to ${hex(align)}`);
    if (!r.usable.some((u) => b >= u.base && end <= u.base + u.length)) throw new Error(`block [${hex(b)}, ${hex(end)}) is not inside usable RAM`);
    for (const z of r.h.reserved) if (b < z.base + z.length && z.base < end) throw new Error(`block [${hex(b)}, ${hex(end)}) overlaps the host's reserved [${hex(z.base)}, ${hex(z.base + z.length)})`);
    for (const o of m.s.live) if (b < o.base + o.count * PAGE_SIZE && o.base < end) throw new Error(`block [${hex(b)}, ${hex(end)}) overlaps the live block at ${hex(o.base)}`);
    const delta = before - after;
    if (delta < this.count) throw new Error(`allocating ${this.count} pages took only ${delta} from the free count`);
    const blk: Block = { base: b, count: this.count, align, delta, tag: tagOf(m.s.nextTag) };
    writeTags(r, blk);
    m.s = produce(m.s, (d) => {
      d.live.push(blk);
      d.free -= delta;
      d.nextTag++;
      if (d.best === null || this.count > d.best.count) d.best = { count: this.count, align };
    });
    checkTags(m, r);
  }
  toString(): string { return `alloc(${this.count}, align 2^${this.alignLog2}, node sel ${this.nodeSel})`; }
}

class FreeCmd implements fc.Command<AllocModel, AllocReal> {
  constructor(readonly pick: number) {}
  check(m: Readonly<AllocModel>): boolean { return m.s.live.length > 0; }
  run(m: AllocModel, r: AllocReal): void {
    const i = this.pick % m.s.live.length;
    const b = m.s.live[i];
    const before = r.h.host.memStats().freePages;
    r.h.host.freePages(b.base, b.count);
    const back = r.h.host.memStats().freePages - before;
    if (back !== b.delta) throw new Error(`freeing ${b.count} pages at ${hex(b.base)} returned ${back} pages, not the ${b.delta} it took`);
    m.s = produce(m.s, (d) => { d.live.splice(i, 1); d.free += b.delta; });
    checkTags(m, r);
  }
  toString(): string { return `free(#${this.pick})`; }
}

class FreeAllCmd implements fc.Command<AllocModel, AllocReal> {
  check(): boolean { return true; }
  run(m: AllocModel, r: AllocReal): void {
    const host = r.h.host;
    for (const b of m.s.live) host.freePages(b.base, b.count);
    m.s = produce(m.s, (d) => { d.live = []; d.free = d.total; });
    if (host.memStats().freePages !== m.s.total) throw new Error(`after freeing everything ${host.memStats().freePages} of ${m.s.total} pages are free`);
    const best = m.s.best;
    if (best !== null) {
      const b = host.allocPages(best.count, { align: best.align });
      if (b === null) throw new Error(`with everything free, ${best.count} pages aligned to ${hex(best.align)} (allocated before) cannot be allocated`);
      host.freePages(b, best.count);
    }
    checkTags(m, r);
  }
  toString(): string { return 'freeAll'; }
}

function allocCommands(): fc.Arbitrary<fc.Command<AllocModel, AllocReal>>[] {
  return [
    fc.tuple(fc.integer({ min: 1, max: 640 }), fc.integer({ min: 12, max: 22 }), fc.nat(3)).map(([c, a, n]) => new AllocCmd(c, a, n)),
    fc.tuple(fc.integer({ min: 1, max: 16 }), fc.integer({ min: 12, max: 16 }), fc.nat(3)).map(([c, a, n]) => new AllocCmd(c, a, n)),
    // large requests, which often fail while memory is left: exhaustion and fragmentation
    fc.tuple(fc.integer({ min: 641, max: 2500 }), fc.integer({ min: 12, max: 22 }), fc.nat(3)).map(([c, a, n]) => new AllocCmd(c, a, n)),
    fc.nat().map((p) => new FreeCmd(p)),
    fc.nat().map((p) => new FreeCmd(p)),
    fc.constant(new FreeAllCmd()),
  ];
}
