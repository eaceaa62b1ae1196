// The minimal hosted host: it passes the host-interface contract, and what is particular to it
// (its log and errors, its costs, the core it gives back to the machine, idle time that costs
// no host work, determinism).
import { describe, expect, it } from 'vitest';
import { TRAP_IDLE } from '../../hw/cpu/traps.ts';
import { LapicReg } from '../../hw/devices/lapic.ts';
import { Machine } from '../../hw/machine.ts';
import { HOSTED_COSTS, HostedHost, TIMER_VECTOR } from '../../hostif/hosted.ts';
import type { HostThread } from '../../hostif/requests.ts';
import { runHostContract } from './contract.ts';
import { spinGuest } from './guest.ts';
import { makeHostedHarness } from './hosted-harness.ts';

runHostContract('hosted', (spec) => makeHostedHarness(spec));

const SPEC = { cores: 2, ram: 8 << 20, streams: [] };

/** Counts the host handler's entries per core. */
function countEntries(m: Machine): number[] {
  const n = m.cores.map(() => 0);
  m.cores.forEach((c, k) => {
    const inner = c.host!;
    c.host = { trap: (cpu, t) => { n[k]++; inner.trap(cpu, t); } };
  });
  return n;
}

describe('the hosted host', () => {
  it('prints to its log, and records a failed thread there and in errors', () => {
    const h = makeHostedHarness(SPEC);
    h.host.print('hello');
    const t = h.host.startThread(1, (function* (): HostThread { yield { kind: 'yield' }; throw new Error('boom'); })(), 'bad');
    h.run(1e7);
    expect(t.state).toBe('failed');
    expect(h.host.log[0]).toBe('hello');
    expect(h.host.log[1]).toMatch(/thread 'bad' \(core 1\) failed: boom/);
    expect(h.host.errors).toHaveLength(1);
  });

  it('charges its costs to the core it runs on: a thread started on an idle core first runs after an entry, an EOI and a step', () => {
    const h = makeHostedHarness(SPEC);
    let first = -1;
    const t = h.host.startThread(1, (function* (): HostThread { first = h.host.cycles(); yield { kind: 'yield' }; })());
    h.run(1e7);
    expect(t.state).toBe('done');
    expect(first).toBe(HOSTED_COSTS.entry.cycles + HOSTED_COSTS.apic.cycles + HOSTED_COSTS.step.cycles);
  });

  it('gives the core back to the machine while a thread only yields, so other cores keep their deadlines', () => {
    const h = makeHostedHarness(SPEC);
    const host = h.host;
    let stop = false, spins = 0, woke = -1, deadline = 0;
    const spinner = host.startThread(0, (function* (): HostThread { while (!stop) { spins++; yield { kind: 'yield' }; } })(), 'spinner');
    const sleeper = host.startThread(1, (function* (): HostThread {
      deadline = host.cycles() + 1_000_000;
      yield { kind: 'sleep', until: deadline };
      woke = host.cycles();
      stop = true;
    })(), 'sleeper');
    h.run(1e8);
    expect([spinner.state, sleeper.state]).toEqual(['done', 'done']);
    expect(woke).toBeGreaterThanOrEqual(deadline);
    expect(woke).toBeLessThan(deadline + 20_000);
    // the spinner ran about as long as the sleeper slept, not forever
    expect(spins * (HOSTED_COSTS.step.cycles)).toBeLessThan(2 * 1_000_000);
  });

  it('idles every core when nothing is left, with no timer armed, and the machine stops idle', () => {
    const h = makeHostedHarness({ ...SPEC, cores: 3 });
    const hs = [0, 1, 2].map((k) => h.host.startThread(k, (function* (): HostThread { yield { kind: 'sleep', until: h.host.cycles() + 10_000 * (k + 1) }; })()));
    expect(h.run(1e8)).toBe('idle');
    for (const t of hs) expect(t.state).toBe('done');
    for (const c of h.machine.cores) { expect(c.state).toBe(1 /* HALTED */); expect(c.apic!.getTscDeadline()).toBe(0); }
  });

  it('enters its handler once per wake-up of a sleeping core while another core runs a guest (idle time costs no host work)', () => {
    const h = makeHostedHarness(SPEC);
    const host = h.host;
    const entries = countEntries(h.machine);
    const g = spinGuest(host);
    const runner = host.startThread(0, (function* (): HostThread {
      const until = host.cycles() + 3_000_000;
      do yield { kind: 'vmrun', vmcb: g.vmcb, deadline: until }; while (host.cycles() < until);
    })(), 'runner');
    const sleeper = host.startThread(1, (function* (): HostThread {
      for (let i = 0; i < 5; i++) yield { kind: 'sleep', until: host.cycles() + 400_000 };
    })(), 'sleeper');
    h.run(1e8);
    expect([runner.state, sleeper.state]).toEqual(['done', 'done']);
    // one entry to start the thread, one per sleep: a core lagging behind its timer would spin
    expect(entries[1]).toBe(6);
  });

  it('is deterministic: the same threads give the same cycle counts and the same log', () => {
    const once = () => {
      const h = makeHostedHarness({ ...SPEC, cores: 3 });
      const host = h.host;
      const seen: string[] = [];
      const lock = host.createLock('l');
      const g = spinGuest(host);
      const hs = [0, 1, 2].map((k) => host.startThread(k, (function* (): HostThread {
        for (let i = 0; i < 3; i++) {
          yield { kind: 'lock', lock };
          seen.push(`${k}@${host.cycles()}`);
          if (k === 0) yield { kind: 'vmrun', vmcb: g.vmcb, deadline: host.cycles() + 7_000 };
          else yield { kind: 'sleep', until: host.cycles() + 3_000 * k };
          host.unlock(lock);
          host.callOnCore((k + 1) % 3, () => seen.push(`call ${k}->${host.currentCore()}@${host.cycles()}`));
        }
      })()));
      h.run(1e8);
      for (const t of hs) expect(t.state).toBe('done');
      return { seen, cycles: h.machine.cores.map((c) => c.cycles) };
    };
    expect(once()).toEqual(once());
  });

  it('refuses a stream mapped to a host console channel that does not exist', () => {
    const m = new Machine({ cores: 1, ram: 4 << 20 });
    expect(() => new HostedHost(m, { streams: { s: 3 } })).toThrow(RangeError);
  });
});

describe('the machine under a host (hw/machine.ts)', () => {
  it('wakes a halted core at the time of the interrupt that wakes it, though another core ran ahead meanwhile', () => {
    const m = new Machine({ cores: 2, ram: 4 << 20 });
    m.mem.writeBytes(0x1000, Uint8Array.of(0xeb, 0xfe)); // core 0 spins in real mode at 0:1000
    m.cores[0].loadSegCache(1, 0, 0, 0xffff, 0x9b);
    m.cores[0].eip = 0x1000;
    let woke = -1;
    m.cores[1].host = { trap: (cpu, t) => { if (t.kind === TRAP_IDLE) { woke = cpu.cycles; m.stop('exit', 0); } } };
    m.cores[1].idle();
    m.lapics[1].writeRegister(LapicReg.LVT_TIMER, (2 << 17) | TIMER_VECTOR);
    m.cores[1].apic!.setTscDeadline(500_000);
    m.run(2_000_000);
    expect(woke).toBe(500_000);
  });
});
