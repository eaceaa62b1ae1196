// The LWK's implementation of the host interface (kernel/hostif/host.ts): it passes the same
// contract as the hosted host, booted by the kernel's own boot path on 1 to 3 cores, and the
// contract fails on broken versions of it; a kernel thread runs a small guest through 'vmrun'
// to completion (its port output reaching stdout through a host stream); the profiles differ
// where they should: under lwk a guest alone on its core takes no host interrupt but its own
// deadlines, under gp it takes the periodic ticks (INTR exits), counted in the kernel's noise
// accounting; a guest and a process share a core by the quantum without disturbing each other.
import { describe, expect, it } from 'vitest';
import * as V from '../../hw/cpu/vmcb.ts';
import type { ByteSink } from '../../hw/devices/types.ts';
import { Machine } from '../../hw/machine.ts';
import { type Host, PAGE_SIZE } from '../../hostif/hostif.ts';
import type { HostRequest, HostResume, HostThread } from '../../hostif/requests.ts';
import { bootKernel, makeBootInfo } from '../../kernel/boot.ts';
import { kernelCosts } from '../../kernel/costs.ts';
import { LWK_HOOKABLE_LAST, type LwkHost } from '../../kernel/hostif/host.ts';
import type { Kernel, KernelOptions } from '../../kernel/kernel.ts';
import { VEC_RESCHED, VEC_TIMER } from '../../kernel/sched/scheduler.ts';
import { runOnLwk } from '../kernel/lwk.ts';
import { type ContractSpec, type HostHarness, hostContract, runHostContract, type StreamEnd } from './contract.ts';
import { spinGuest } from './guest.ts';

class Capture implements ByteSink {
  readonly bytes: number[] = [];
  write(b: Uint8Array): void { this.bytes.push(...b); }
}

/** How late the LWK may meet a deadline: a #VMEXIT, the interrupt after it, and a few one-step traps. */
export const LWK_LATENCY = 30_000;

interface LwkHarness extends HostHarness { host: LwkHost; kernel: Kernel }

/**
 * Boots the LWK (kernel/boot.ts, no init program) on a fresh machine, runs it until every core
 * is up and idle, and hands out its host. run(u) counts from the end of boot (the BSP's clock
 * is past 22 M cycles then: the MP start-up waits).
 */
export function makeLwkHarness(spec: ContractSpec, opts: KernelOptions = {}): LwkHarness {
  const sinks = spec.streams.map(() => new Capture());
  const machine = new Machine({ cores: spec.cores, ram: spec.ram, consoleChannels: sinks.length > 0 ? sinks : [null] });
  const info = makeBootInfo(machine, []);
  const kernel = bootKernel(machine, info, { ...opts, host: { streams: Object.fromEntries(spec.streams.map((n, i) => [n, i])) } });
  expect(machine.run(1e9)).toBe('idle');
  machine.stopReason = null;
  for (const p of kernel.percpu) expect(p.online).toBe(true);
  const host = kernel.host!;
  const base = Math.max(...machine.cores.map((c) => c.cycles));
  const reserved = kernel.pmem.regions().filter((r) => r.type !== 'free').map((r) => ({ base: r.base, length: r.size }));
  return {
    host, kernel, machine, reserved, latency: LWK_LATENCY,
    run(untilCycle: number): string {
      machine.stopReason = null;
      return machine.run(base + untilCycle);
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

runHostContract('lwk', (spec) => makeLwkHarness(spec));

// =================================================================================== guests on the LWK

/** Boots the LWK as `v3vee` does (default streams: console = channels 0/1, stderr = 2), no init program. */
function bootLwk(cores: number, opts: KernelOptions = {}): { m: Machine; k: Kernel; host: LwkHost; stdout: Capture } {
  const stdout = new Capture();
  const m = new Machine({ cores, ram: 16 << 20, consoleChannels: [null, stdout, new Capture()] });
  const k = bootKernel(m, makeBootInfo(m, []), opts);
  // until every core is up (the gp profile's tick never lets the machine idle)
  m.run(Math.max(...m.cores.map((c) => c.cycles)) + 1_000_000);
  m.stopReason = null;
  for (const p of k.percpu) expect(p.online).toBe(true);
  return { m, k, host: k.host!, stdout };
}

/** Runs the machine until `done()` (in slices of a millisecond; the gp tick never lets it idle). */
function runUntil(m: Machine, done: () => boolean): void {
  for (let i = 0; i < 1000 && !done(); i++) {
    m.stopReason = null;
    const r = m.run(Math.max(...m.cores.map((c) => c.cycles)) + 2_200_000);
    if (r !== 'limit' && r !== 'idle') throw new Error(`the machine stopped: ${r}`);
  }
  expect(done()).toBe(true);
}

const le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];

/**
 * A small guest in flat 32-bit protected mode (no paging, guest-physical = host-physical): it
 * writes `msg` to port 0xE9 a byte at a time, sums 1..n into EBX, and halts. IOIO (for ports
 * 0xE9 only, through its IOPM), HLT and INTR are intercepted.
 */
function writerGuest(host: LwkHost, msg: string, n: number): { vmcb: number } {
  const base = host.allocPages(5)!; // VMCB, code, IOPM (3 pages)
  const vmcb = base, code = base + PAGE_SIZE, iopm = base + 2 * PAGE_SIZE;
  host.mem.writeBytes(vmcb, new Uint8Array(5 * PAGE_SIZE));
  const text = Array.from(new TextEncoder().encode(msg));
  const at = code + 0x100;
  const bytes = [
    0xbe, ...le(at),            // mov esi, msg
    0xb9, ...le(text.length),   // mov ecx, len
    0x66, 0xba, 0xe9, 0x00,     // mov dx, 0xe9
    0xac,                       // 1: lodsb
    0xee,                       //    out dx, al
    0xe2, 0xfc,                 //    loop 1b
    0x31, 0xdb,                 // xor ebx, ebx
    0xb9, ...le(n),             // mov ecx, n
    0x01, 0xcb,                 // 2: add ebx, ecx
    0xe2, 0xfc,                 //    loop 2b
    0xf4,                       // hlt
  ];
  host.mem.writeBytes(code, Uint8Array.from(bytes));
  host.mem.writeBytes(at, Uint8Array.from(text));
  host.mem.write(iopm + (0xe9 >>> 3), 1, 1 << (0xe9 & 7));
  const v = new V.VmcbView(host.mem, vmcb);
  v.w32(V.VMCB_INTERCEPTS3, V.IC3_INTR | V.IC3_IOIO | V.IC3_HLT);
  v.w32(V.VMCB_INTERCEPTS4, V.IC4_VMRUN);
  v.w64(V.VMCB_IOPM_BASE, iopm);
  v.w32(V.VMCB_ASID, 1);
  v.w32(V.VMCB_VINTR, 1 << 24); // V_INTR_MASKING
  for (const [i, o] of V.VMCB_SEGS.entries()) {
    const cs = i === 1;
    v.w16(o, cs ? 0x08 : 0x10); v.w16(o + 2, cs ? 0xc9b : 0xc93); v.w32(o + 4, 0xffffffff); v.w64(o + 8, 0);
  }
  v.w32(V.VMCB_CR0, 0x11); v.w64(V.VMCB_RFLAGS, 2); v.w64(V.VMCB_RIP, code); v.w64(V.VMCB_RSP, code + PAGE_SIZE);
  return { vmcb };
}

describe('guests on the LWK host', () => {
  it('a kernel thread runs a small guest through vmrun to completion; its port output reaches stdout through a host stream', () => {
    const { m, k, host, stdout } = bootLwk(2);
    const msg = 'hello from a guest on the LWK\n';
    const g = writerGuest(host, msg, 1000);
    const v = new V.VmcbView(host.mem, g.vmcb);
    const regs = new Int32Array(8);
    const exits: number[] = [];
    let halted = false;
    const console = host.openStream('console')!;
    const vmm = host.startThread(1, (function* (): HostThread {
      for (;;) {
        const r: HostResume = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: host.cycles() + 200_000, regs };
        if (r.kind !== 'vmexit') throw new Error(`resumed with ${r.kind}`);
        exits.push(r.exitCode);
        if (r.exitCode === V.EXIT_IOIO) {
          const info1 = v.u32(V.VMCB_EXITINFO1);
          if (info1 >>> 16 !== 0xe9 || (info1 & 1) !== 0) throw new Error(`unexpected I/O exit ${info1.toString(16)}`);
          expect(console.write(Uint8Array.of(v.u32(V.VMCB_RAX) & 0xff))).toBe(1);
          v.w64(V.VMCB_RIP, v.u32(V.VMCB_NRIP));
        } else if (r.exitCode === V.EXIT_HLT) {
          halted = true;
          return;
        } else if (r.exitCode !== V.EXIT_INTR) throw new Error(`unexpected exit ${r.exitCode}`);
      }
    })(), 'vmm');
    expect(m.run(1e9)).toBe('idle');
    expect(vmm.state).toBe('done');
    expect(halted).toBe(true);
    expect(regs[3]).toBe(500_500); // EBX = 1 + ... + 1000, stored back from the core after the exit
    expect(new TextDecoder().decode(Uint8Array.from(stdout.bytes))).toBe(msg);
    expect(exits.filter((c) => c === V.EXIT_IOIO)).toHaveLength(msg.length);
    const gs = host.guests[1];
    expect(gs.runs).toBe(exits.length);
    expect(gs.exits.get(V.EXIT_IOIO)?.count).toBe(msg.length);
    expect(gs.exits.get(V.EXIT_HLT)?.count).toBe(1);
    expect(gs.guestCycles).toBeGreaterThan(1000); // the summing loop ran in the guest
    // the kernel charged its exit path for each exit (kernel/costs.ts vmexitEntry)
    expect(gs.exits.get(V.EXIT_IOIO)!.cycles).toBeGreaterThanOrEqual(msg.length * kernelCosts.vmexitEntry.cycles);
    expect(k.percpu[1].noise.interruptions).toBe(exits.filter((c) => c === V.EXIT_INTR).length);
  });

  /** Runs a spinning guest on core 1 in `runs` runs of `each` cycles; what the VMM and the kernel saw. */
  function spinRuns(profile: 'lwk' | 'gp', runs: number, each: number) {
    const { m, k, host } = bootLwk(2, { profile, hz: 1000 });
    const g = spinGuest(host);
    let deadlines = 0, early = 0, late = 0;
    const vmm = host.startThread(1, (function* (): HostThread {
      for (let i = 0; i < runs; i++) {
        const until = host.cycles() + each;
        for (;;) {
          const r = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: until };
          if (r.kind !== 'vmexit' || r.exitCode !== V.EXIT_INTR) throw new Error(`unexpected ${JSON.stringify(r)}`);
          if (host.cycles() >= until) { deadlines++; late = Math.max(late, host.cycles() - until); break; }
          early++; // the host took the core before the deadline: an interruption of the guest
        }
      }
    })(), 'vmm');
    const n0 = k.percpu[1].noise;
    const before = n0.interruptions;
    runUntil(m, () => vmm.state === 'done');
    return { k, host, deadlines, early, late, noise: n0, interruptions: n0.interruptions - before };
  }

  it('on the lwk profile a guest alone on its core takes no host interrupt but its own deadlines', () => {
    const r = spinRuns('lwk', 20, 500_000);
    expect(r.deadlines).toBe(20);
    expect(r.early).toBe(0);
    expect(r.late).toBeLessThan(LWK_LATENCY);
    // every interruption of the guest was the timer, armed for its deadline: 20 of them
    expect(r.interruptions).toBe(20);
    // all the core took: those 20 timer interrupts, and the IPI that started the thread (waking the idle core)
    expect(new Map([...r.noise.interrupts].map(([v, t]) => [v, t.count]))).toEqual(new Map([[VEC_TIMER, 20], [VEC_RESCHED, 1]]));
    expect(r.noise.idleWakeups).toBe(1);
    expect(r.k.sched.cores[1].spuriousTimers).toBe(0);
    expect(r.noise.deferredWorkCycles).toBe(0);
    expect(r.host.guests[1].exits.get(V.EXIT_INTR)?.count).toBe(20);
  });

  it('on the gp profile the same guest takes the periodic ticks as INTR exits before its deadlines, with deferred work', () => {
    const lwk = spinRuns('lwk', 20, 500_000);
    const gp = spinRuns('gp', 20, 500_000);
    expect(gp.deadlines).toBe(20);
    // 20 runs of 0.23 ms at 1000 Hz: about 4-5 ticks, each an interruption the VMM sees early
    const elapsedMs = (20 * 500_000) / 2.2e6;
    expect(gp.early).toBeGreaterThanOrEqual(Math.floor(elapsedMs) - 1);
    expect(gp.early).toBeLessThanOrEqual(Math.ceil(elapsedMs) + 1);
    expect(gp.interruptions).toBe(20 + gp.early);
    expect(gp.noise.deferredWorkCycles).toBeGreaterThan(0);
    expect(gp.host.guests[1].exits.get(V.EXIT_INTR)?.count).toBe(20 + gp.early);
    expect(lwk.early).toBe(0);
  });
});

describe('the LWK host', () => {
  it('works on one core: a guest run, a sleeper and a lock holder share the boot processor, each on time', () => {
    const { m, host } = bootLwk(1);
    const g = spinGuest(host);
    const lock = host.createLock('one');
    const late: number[] = [];
    let held = 0;
    const hs = [
      host.startThread(0, (function* (): HostThread {
        for (let i = 0; i < 5; i++) {
          const until = host.cycles() + 300_000;
          let r: HostResume;
          do r = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: until }; while (host.cycles() < until && r.kind === 'vmexit' && r.exitCode === V.EXIT_INTR);
          late.push(host.cycles() - until);
        }
      })(), 'guest'),
      host.startThread(0, (function* (): HostThread {
        for (let i = 0; i < 8; i++) {
          const until = host.cycles() + 170_000;
          const r = yield { kind: 'sleep', until };
          expect(r.kind).toBe('timeout');
          late.push(host.cycles() - until);
        }
      })(), 'sleeper'),
      ...[0, 1].map((i) => host.startThread(0, (function* (): HostThread {
        for (let n = 0; n < 3; n++) {
          yield { kind: 'lock', lock };
          held++;
          expect(held).toBe(1);
          yield { kind: 'sleep', until: host.cycles() + 50_000 * (i + 1) };
          held--;
          host.unlock(lock);
        }
      })(), `locker${i}`)),
    ];
    expect(m.run(1e10)).toBe('idle');
    for (const t of hs) expect(t.state).toBe('done');
    expect(late).toHaveLength(13);
    for (const l of late) { expect(l).toBeGreaterThanOrEqual(0); expect(l).toBeLessThan(LWK_LATENCY); }
  });

  it('keeps the kernel\'s vectors: hooks only 0x20-0xDF', () => {
    const { host } = bootLwk(1);
    expect(host.hookInterrupt(LWK_HOOKABLE_LAST, () => {})).toBe(true);
    for (const v of [0xe0, VEC_TIMER, 0xef]) expect(host.hookInterrupt(v, () => {})).toBe(false);
  });

  it('types its blocks vmm in pmem and gives them back on free', () => {
    const { k, host } = bootLwk(1);
    const before = k.pmem.bytesOf('vmm');
    const b = host.allocPages(16, { align: 1 << 16 })!;
    expect(b % (1 << 16)).toBe(0);
    expect(k.pmem.typeOf(b)).toBe('vmm');
    expect(k.pmem.bytesOf('vmm')).toBe(before + 16 * PAGE_SIZE);
    host.freePages(b, 16);
    expect(k.pmem.typeOf(b)).toBe('free');
  });

  it('prints to the kernel log, and logs a failed kernel thread there', () => {
    const { m, k, host } = bootLwk(2);
    host.print('hello from the VMM');
    const t = host.startThread(1, (function* (): HostThread { yield { kind: 'yield' }; throw new Error('boom'); })(), 'bad');
    m.run(1e9);
    expect(t.state).toBe('failed');
    expect(k.log.lines.some((l) => l.endsWith('hello from the VMM'))).toBe(true);
    expect(k.log.lines.some((l) => /kernel thread 'bad' \(core 1\) failed: boom/.test(l))).toBe(true);
    expect(host.errors).toHaveLength(1);
  });

  it('is deterministic: the same threads and guests give the same cycle counts', () => {
    const once = () => {
      const { m, host } = bootLwk(3);
      const seen: string[] = [];
      const lock = host.createLock('l');
      const g = spinGuest(host);
      const hs = [0, 1, 2].map((c) => host.startThread(c, (function* (): HostThread {
        for (let i = 0; i < 3; i++) {
          yield { kind: 'lock', lock };
          seen.push(`${c}@${host.cycles()}`);
          if (c === 0) yield { kind: 'vmrun', vmcb: g.vmcb, deadline: host.cycles() + 7_000 };
          else yield { kind: 'sleep', until: host.cycles() + 3_000 * c };
          host.unlock(lock);
          host.callOnCore((c + 1) % 3, () => seen.push(`call ${c}->${host.currentCore()}@${host.cycles()}`));
        }
      })()));
      m.run(1e9);
      for (const t of hs) expect(t.state).toBe('done');
      return { seen, cycles: m.cores.map((x) => x.cycles) };
    };
    expect(once()).toEqual(once());
  });
});

describe('a guest and a process share a core', () => {
  it('round robin with the quantum: the guest is cut at each quantum end, and the process computes what it computes alone', () => {
    const alone = runOnLwk('compute', ['200']);
    let intr = 0, stop = false;
    const r = runOnLwk('compute', ['200'], {
      quantumMs: 0.2,
      beforeRun: (k) => {
        const host = k.host!;
        const g = spinGuest(host);
        const regs = Int32Array.of(0, 1, 2, 3, 4, 5, 6, 7);
        host.startThread(0, (function* (): HostThread {
          while (!stop) {
            const x = yield { kind: 'vmrun', vmcb: g.vmcb, deadline: Infinity, regs };
            if (x.kind === 'vmexit' && x.exitCode === V.EXIT_INTR) intr++;
            else throw new Error(`unexpected ${JSON.stringify(x)}`);
          }
        })(), 'vmm');
      },
    });
    stop = true;
    expect(r.status).toBe(alone.status);
    expect(r.stdout).toBe(alone.stdout);
    const cr = r.run.kernel.sched.cores[0];
    expect(cr.preemptions).toBeGreaterThan(5);
    // a 'vmrun' queues behind the runnable threads: the process and the guest take turns, the
    // VMM's step (handling the exit) being one turn and its guest run the next
    expect(intr).toBeGreaterThanOrEqual(Math.floor(cr.preemptions / 2) - 1);
    const gs = r.run.kernel.host!.guests[0];
    expect(gs.runs).toBe(intr + (cr.guest !== null ? 1 : 0));
    // each run lasted a quantum (the timer armed for its end, since the process was runnable)
    const quantum = r.run.kernel.sched.quantum;
    expect(gs.guestCycles).toBeGreaterThanOrEqual(intr * (quantum - 2_000)); // less the entry path after the decision
    expect(gs.guestCycles).toBeLessThan(gs.runs * (quantum + LWK_LATENCY));
  });
});

// =================================================================================== the suite bites here too

/** A host that forwards everything to `inner`, with some functions replaced. */
function wrap(inner: Host, over: Partial<Host>): Host {
  return new Proxy(inner, {
    get(target, p, recv) {
      if (typeof p === 'string' && p in over) return (over as Record<string, unknown>)[p];
      const v = Reflect.get(target, p, recv) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

function* rewrite(body: HostThread, req: (q: HostRequest) => HostRequest): HostThread {
  let step = body.next({ kind: 'start' });
  while (step.done !== true) {
    let got: HostResume;
    try { got = yield req(step.value); } catch (e) { step = body.throw(e); continue; }
    step = body.next(got);
  }
}

describe('the contract fails on a broken LWK host', () => {
  const stubs: { stub: string; over: (h: Host) => Partial<Host>; fails: string }[] = [
    { stub: 'alignment ignored', over: (h) => ({ allocPages: (c) => h.allocPages(c) }), fails: 'alloc-model' },
    { stub: 'sleeps end 5,000 cycles early', over: (h) => ({ startThread: (k, b, n) => h.startThread(k, rewrite(b, (q) => (q.kind === 'sleep' ? { ...q, until: q.until - 5000 } : q)), n) }), fails: 'sleep-order' },
    { stub: 'guest runs overrun their deadline by 100,000 cycles', over: (h) => ({ startThread: (k, b, n) => h.startThread(k, rewrite(b, (q) => (q.kind === 'vmrun' ? { ...q, deadline: q.deadline + 100_000 } : q)), n) }), fails: 'vmrun-deadline' },
    { stub: 'cross-core calls run twice', over: (h) => ({ callOnCore: (k, f, o) => { h.callOnCore(k, f); return h.callOnCore(k, f, o); } }), fails: 'calls' },
  ];
  for (const s of stubs) {
    it(`${s.stub}: '${s.fails}' fails`, () => {
      const mk = (spec: ContractSpec) => { const h = makeLwkHarness(spec); return { ...h, run: (u: number) => h.run(u), streamEnd: (n: string) => h.streamEnd(n), host: wrap(h.host, s.over(h.host)) }; };
      const check = hostContract(mk, { numRuns: 15, endOnFailure: true }).find((c) => c.id === s.fails)!;
      expect(() => check.run()).toThrow();
    });
  }
});
