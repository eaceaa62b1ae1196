// The contract suite must fail on a host that breaks it: each stub below wraps the hosted host
// and breaks one promise; the contract checks that cover that promise must then fail (and the
// same checks pass on the real host, in hosted.test.ts).
import { describe, expect, it } from 'vitest';
import { type Host, PAGE_SIZE } from '../../hostif/hostif.ts';
import type { HostRequest, HostResume, HostThread } from '../../hostif/requests.ts';
import { IC3_INTR, VMCB_INTERCEPTS3, VMCB_VINTR } from '../../hw/cpu/vmcb.ts';
import { type ContractSpec, type HostHarness, hostContract, type MakeHost } from './contract.ts';
import { V_INTR_MASKING } from './guest.ts';
import { makeHostedHarness } from './hosted-harness.ts';

/** A host that forwards everything to `inner`, with some functions replaced. */
function wrapHost(inner: Host, over: Partial<Host>): Host {
  const base: Host = {
    version: inner.version, name: `broken ${inner.name}`, mem: inner.mem,
    print: (l) => inner.print(l),
    allocPages: (c, o) => inner.allocPages(c, o), freePages: (b, c) => inner.freePages(b, c), memStats: () => inner.memStats(),
    numaNodes: () => inner.numaNodes(), physToVirt: (a) => inner.physToVirt(a), virtToPhys: (a) => inner.virtToPhys(a),
    coreCount: () => inner.coreCount(), currentCore: () => inner.currentCore(), cyclesPerSecond: () => inner.cyclesPerSecond(), cycles: () => inner.cycles(),
    startThread: (k, b, n) => inner.startThread(k, b, n), currentThread: () => inner.currentThread(), wake: (t) => inner.wake(t),
    callOnCore: (k, f, o) => inner.callOnCore(k, f, o), interruptCore: (k, v) => inner.interruptCore(k, v),
    hookInterrupt: (v, f) => inner.hookInterrupt(v, f), unhookInterrupt: (v) => inner.unhookInterrupt(v), ackInterrupt: (v) => inner.ackInterrupt(v),
    openStream: (n) => inner.openStream(n), createLock: (n) => inner.createLock(n), unlock: (l) => inner.unlock(l),
  };
  return { ...base, ...over };
}

/** A thread whose requests (and their results) the broken host carries out wrongly. */
function* rewrite(body: HostThread, req: (q: HostRequest) => HostRequest, res: (r: HostResume, q: HostRequest) => HostResume = (r) => r): HostThread {
  let step = body.next({ kind: 'start' });
  while (step.done !== true) {
    const q = step.value;
    let got: HostResume;
    try {
      got = yield req(q);
    } catch (e) {
      step = body.throw(e);
      continue;
    }
    step = body.next(res(got, q));
  }
}

type Breaker = (inner: Host, h: HostHarness) => Partial<Host>;

function broken(br: Breaker): MakeHost {
  return (spec: ContractSpec) => {
    const h = makeHostedHarness(spec);
    return { ...h, run: (u: number) => h.run(u), streamEnd: (n: string) => h.streamEnd(n), host: wrapHost(h.host, br(h.host, h)) };
  };
}

const requests = (req: (q: HostRequest) => HostRequest, res?: (r: HostResume, q: HostRequest) => HostResume): Breaker =>
  (inner) => ({ startThread: (k, b, n) => inner.startThread(k, rewrite(b, req, res), n) });

const STUBS: { stub: string; breaker: Breaker; fails: string[] }[] = [
  {
    stub: 'an allocator that hands out a live block again',
    breaker: (inner) => {
      let last: number | null = null, n = 0;
      return { allocPages: (c, o) => { const b = inner.allocPages(c, o); if (b !== null && last !== null && ++n % 3 === 0) return last; last = b; return b; } };
    },
    fails: ['alloc-model', 'alloc-fill'],
  },
  {
    stub: 'an allocator that ignores the alignment',
    breaker: (inner) => ({ allocPages: (c) => inner.allocPages(c) }),
    fails: ['alloc-model'],
  },
  {
    stub: 'an allocator that keeps a page when it fails (partial state)',
    breaker: (inner) => ({ allocPages: (c, o) => { const b = inner.allocPages(c, o); if (b === null) inner.allocPages(1); return b; } }),
    fails: ['alloc-model', 'alloc-fill'],
  },
  {
    stub: 'a free that returns nothing',
    breaker: () => ({ freePages: () => {} }),
    fails: ['alloc-model', 'alloc-fill'],
  },
  {
    stub: 'an allocator that hands out the host\'s own memory',
    breaker: (inner) => {
      let first = true;
      return { allocPages: (c, o) => { const b = inner.allocPages(c, o); if (b !== null && first) { first = false; return 0; } return b; } };
    },
    fails: ['alloc-model'],
  },
  {
    stub: 'a sleep that ends early',
    breaker: requests((q) => q.kind === 'sleep' ? { kind: 'sleep', until: q.until - 3000 } : q),
    fails: ['sleep-order', 'vmrun-mixed', 'sleep-beside-guest'],
  },
  {
    stub: 'a sleep that ends late',
    breaker: requests((q) => q.kind === 'sleep' ? { kind: 'sleep', until: q.until + 100_000 } : q),
    fails: ['sleep-order', 'vmrun-mixed', 'sleep-beside-guest'],
  },
  {
    // never early, at most 10,000 cycles late (within the latency), but two deadlines in the
    // same 5,000-cycle window end in reverse order
    stub: 'sleeps that end on time but out of deadline order',
    breaker: requests((q) => q.kind === 'sleep' && Number.isFinite(q.until) ? { kind: 'sleep', until: q.until - 2 * (q.until % 5000) + 10_000 } : q),
    fails: ['sleep-order'],
  },
  {
    stub: 'a guest run that ignores its deadline for a while',
    breaker: requests((q) => q.kind === 'vmrun' ? { ...q, deadline: q.deadline + 100_000 } : q),
    fails: ['vmrun-deadline', 'vmrun-mixed'],
  },
  {
    stub: 'a guest run that ends before its deadline',
    breaker: requests((q) => q.kind === 'vmrun' ? { ...q, deadline: q.deadline - 5000 } : q),
    fails: ['vmrun-deadline'],
  },
  {
    stub: 'a host that starts threads on the next core',
    breaker: (inner) => ({ startThread: (k, b, n) => inner.startThread((k + 1) % inner.coreCount(), b, n) }),
    fails: ['start-core'],
  },
  {
    stub: 'cross-core calls that run twice',
    breaker: (inner) => ({ callOnCore: (k, f, o) => inner.callOnCore(k, () => { f(); f(); }, o) }),
    fails: ['calls'],
  },
  {
    stub: 'cross-core calls that run on the calling core',
    breaker: (inner) => ({ callOnCore: (_k, f, o) => inner.callOnCore(inner.currentCore(), f, o) }),
    fails: ['calls'],
  },
  {
    stub: 'a wake that is lost',
    breaker: () => ({ wake: () => {} }),
    fails: ['wake', 'wake-kept'],
  },
  {
    stub: 'locks that are granted without waiting',
    breaker: requests((q) => q.kind === 'lock' ? { kind: 'yield' } : q, (r, q) => q.kind === 'lock' ? { kind: 'locked' } : r),
    fails: ['lock'],
  },
  {
    stub: 'a yield that does not let the others run',
    // each yield becomes a free lock's request, which lets the same thread go on
    breaker: (inner) => ({
      startThread: (k, b, n) => inner.startThread(k, rewrite(b, (q) => q.kind === 'yield' ? { kind: 'lock', lock: inner.createLock('y') } : q, (r, q) => q.kind === 'yield' ? { kind: 'yielded' } : r), n),
    }),
    fails: ['yield'],
  },
  {
    stub: 'an interrupt acknowledgement that does nothing',
    breaker: () => ({ ackInterrupt: () => {} }),
    fails: ['interrupts'],
  },
  {
    stub: 'a stream that loses a byte of each write',
    breaker: (inner) => ({
      openStream: (n) => {
        const s = inner.openStream(n);
        return s === null ? null : { ...s, name: s.name, write: (b) => s.write(b.subarray(1)) + 1, read: (m) => s.read(m), eof: () => s.eof(), onInput: (c, e) => s.onInput(c, e), close: () => s.close() };
      },
    }),
    fails: ['streams'],
  },
  {
    stub: 'a host that does not hook interrupts',
    breaker: () => ({ hookInterrupt: () => true }),
    fails: ['interrupts'],
  },
  {
    stub: 'a host whose version is another major',
    breaker: (inner) => ({ version: { major: inner.version.major + 1, minor: 0 } }),
    fails: ['version'],
  },
  {
    stub: 'a clock that stands still',
    breaker: () => ({ cycles: () => 0 }),
    fails: ['cores'],
  },
  {
    stub: 'an allocator that answers a bad count with null',
    breaker: (inner) => ({ allocPages: (c, o) => (Number.isInteger(c) && c >= 1 ? inner.allocPages(c, o) : null) }),
    fails: ['alloc-args'],
  },
  {
    stub: 'an unlock that lets anyone unlock',
    breaker: (inner) => ({ unlock: (l) => { try { inner.unlock(l); } catch { /* ignored */ } } }),
    fails: ['lock-misuse'],
  },
  {
    stub: 'a host that takes an unknown request for a yield',
    breaker: requests((q) => ['vmrun', 'sleep', 'wait', 'yield', 'lock'].includes(q.kind) ? q : { kind: 'yield' }),
    fails: ['bad-request'],
  },
  {
    stub: 'a host that reports a failed thread as done',
    breaker: (inner) => ({
      startThread: (k, b, n) => inner.startThread(k, (function* (): HostThread { try { yield* b; } catch { /* swallowed */ } })(), n),
    }),
    fails: ['thread-failure'],
  },
  {
    stub: 'an interruptCore that sends nothing',
    breaker: () => ({ interruptCore: () => {} }),
    fails: ['vmrun-kick'],
  },
  {
    stub: 'guest runs that drop the guest registers',
    breaker: requests((q) => q.kind === 'vmrun' ? { kind: 'vmrun', vmcb: q.vmcb, deadline: q.deadline } : q),
    fails: ['vmrun-regs'],
  },
  {
    stub: 'guest runs that quietly fix a VMCB without INTR intercept or V_INTR_MASKING',
    breaker: (inner) => requests((q) => {
      if (q.kind === 'vmrun') {
        inner.mem.write(q.vmcb + VMCB_INTERCEPTS3, 4, inner.mem.read(q.vmcb + VMCB_INTERCEPTS3, 4) | IC3_INTR);
        inner.mem.write(q.vmcb + VMCB_VINTR, 4, inner.mem.read(q.vmcb + VMCB_VINTR, 4) | V_INTR_MASKING);
      }
      return q;
    })(inner, undefined as unknown as HostHarness),
    fails: ['vmrun-errors'],
  },
  {
    stub: 'address translation that is not the identity',
    breaker: () => ({ physToVirt: (a) => a + PAGE_SIZE }),
    fails: ['addresses'],
  },
];

describe('the host contract fails on broken hosts', () => {
  for (const { stub, breaker, fails } of STUBS) {
    const checks = hostContract(broken(breaker), { numRuns: 25, endOnFailure: true });
    for (const id of fails) {
      it(`${stub}: '${id}' fails`, () => {
        const c = checks.find((x) => x.id === id);
        if (c === undefined) throw new Error(`no contract check '${id}'`);
        expect(() => c.run()).toThrow();
      });
    }
  }
});

describe('the broken-host stubs', () => {
  it('cover every check of the contract', () => {
    const ids = hostContract((spec) => makeHostedHarness(spec)).map((c) => c.id);
    const uncovered = ids.filter((id) => !STUBS.some((s) => s.fails.includes(id)));
    expect(uncovered).toEqual([]);
  });
});
