/**
 * The LWK's implementation of the host interface (hostif/hostif.ts): what the VMM linked into
 * the kernel runs on, as Kitten implements Palacios' v3_os_hooks. It is built by bootKernel
 * (kernel/boot.ts) and reached as `kernel.host`.
 *
 * - Log: print() is a line of the kernel log (COM1), never a program's or guest's stdout.
 * - Memory: allocPages takes physically contiguous, aligned blocks of free memory from pmem and
 *   types them 'vmm' (pmem's best fit, so no partial state on failure); freePages gives a whole
 *   block back, exactly as allocated (the host keeps a table of live blocks). One NUMA node.
 * - Threads: startThread makes a kernel thread (kernel/sched/thread.ts) on that core's run
 *   queue; the scheduler steps it request by request in the trap handler. 'sleep', 'wait' and
 *   'yield' are the scheduler's own; 'lock' is carried out here (KernelThreadHooks.request);
 *   'vmrun' is the scheduler's (its turn, the timer) with the hardware side here: the VMCB
 *   checks, the guest registers, hw/cpu/svm.ts vmrun(), and the registers back after the exit.
 * - Other cores: a start, wake, lock hand-over or call for another core goes into that core's
 *   mailbox, stamped with the sender's clock, and is announced with the kernel's reschedule IPI
 *   (VEC_RESCHED). The target takes its due messages at the start of every scheduling decision
 *   (KernelThreadHooks.drain); one stamped later than its own clock (cores drift apart by up to
 *   a machine quantum) waits for it, the timer armed for the stamp (nextDeadline), so no
 *   cross-core work happens before it was asked for.
 * - Interrupts: a hooked vector's handler runs in the trap path (kernel/trap.ts) on the core
 *   that took it, without EOI; ackInterrupt is the local APIC EOI after checking the vector is
 *   the one in service. The kernel keeps the 0xE0-0xFF vectors (its timer 0xEC, the console
 *   0xE1, reschedule 0xFD, ...), so a hooked vector never blocks them. interruptCore without a
 *   vector sends the reschedule IPI.
 * - Streams: host console channels (an input channel and an output channel per stream), by
 *   port I/O; input arrives by the console's IRQ through the IOAPIC to core 0 (VEC_HOST_CONSOLE).
 * - Contexts: trap.ts tells the host which core's handler runs (enterCore/leaveCore); outside
 *   any handler (the embedder between machine runs: the boot context) calls act as core 0, and
 *   their costs are not charged.
 * - Costs from kernel/costs.ts (vmrunEntry, vmexitEntry, hostMessage, hostLock, hostAlloc, the
 *   register words, port and MMIO accesses through KernelIo).
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { vmrun } from '../../hw/cpu/svm.ts';
import { IC3_INTR, VMCB_INTERCEPTS3, VMCB_VINTR } from '../../hw/cpu/vmcb.ts';
import type { Machine } from '../../hw/machine.ts';
import type { PhysMem } from '../../hw/mem/physmem.ts';
import {
  type AllocOptions, type CallOnCoreOptions, HOOKABLE_VECTOR_FIRST, type Host, type HostCall, HostifError,
  type HostifVersion, type HostInterruptHandler, type HostStream, type HostThreadHandle, type HostThreadState,
  HOSTIF_VERSION, type MemStats, PAGE_SIZE,
} from '../../hostif/hostif.ts';
import type { HostLock, HostRequest, HostThread } from '../../hostif/requests.ts';
import { charge, chargeMem } from '../costs.ts';
import type { Kernel } from '../kernel.ts';
import type { Tally } from '../noise.ts';
import { type KernelThreadHooks, VEC_RESCHED } from '../sched/scheduler.ts';
import { Thread } from '../sched/thread.ts';

/** The host console's RX interrupt (IOAPIC pin 5 to core 0). */
export const VEC_HOST_CONSOLE = 0xe1;
/** The highest vector a VMM may hook on the LWK: 0xE0 and above are the kernel's. */
export const LWK_HOOKABLE_LAST = 0xdf;
/** VMCB_VINTR bit 24: physical interrupts are masked by the host's IF, not the guest's (APM 15.21.1). */
const V_INTR_MASKING = 1 << 24;
/** The host console's ISA IRQ (hw/machine.ts wires it to IRQ 5, IOAPIC pin 5). */
const CONSOLE_IRQ = 5;
/** Local APIC ISR registers (8 x 32 bits, 0x100-0x170). */
const APIC_ISR = 0x100;
/** Guest registers a 'vmrun' carries (EAX and ESP are in the VMCB). */
const GUEST_REGS = [1, 2, 3, 5, 6, 7] as const;

/** A stream's host console channels: where its input comes from and its output goes (null: none). */
export interface StreamChannels { in: number | null; out: number | null }

/**
 * The streams of `v3vee` under the LWK: `console` reads the CLI's stdin (channel 0) and writes
 * its stdout (channel 1), which is where a guest's serial port goes; `stderr` writes channel 2.
 * On a machine with fewer channels a default stream uses the ones that exist (or is left out).
 */
export const DEFAULT_STREAMS: Readonly<Record<string, StreamChannels>> = {
  console: { in: 0, out: 1 },
  stderr: { in: null, out: 2 },
};

export interface LwkHostOptions {
  /** Stream names and their channels (a number: that channel both ways). Default DEFAULT_STREAMS. */
  streams?: Readonly<Record<string, number | StreamChannels>>;
}

/** Per-core figures of the guests run through 'vmrun' (where a guest's time went). */
export class GuestStats {
  /** Guest runs entered (VMRUN that entered the guest). */
  runs = 0;
  /** Cycles from each VMRUN to its #VMEXIT (world switches included). */
  guestCycles = 0;
  /** #VMEXITs by exit code: count and the kernel's cycles to take each (the trap path, not the VMM's handling). */
  readonly exits = new Map<number, Tally>();
  /** VMRUNs refused (EXIT_INVALID). */
  invalid = 0;
  enteredAt = 0;
}

// ---------------------------------------------------------------------------------- handles

class LwkThread implements HostThreadHandle {
  constructor(readonly owner: LwkHost, readonly t: Thread) {}
  get id(): number { return -this.t.tid; }
  get name(): string { return this.t.name; }
  get core(): number { return this.t.core; }
  get state(): HostThreadState {
    const t = this.t;
    if (t.state === 'dead') return t.failure !== null ? 'failed' : 'done';
    if (t.state === 'sleeping') return 'blocked';
    return t.state;
  }
  get error(): unknown { return this.t.failure?.error; }
}

class LwkLock implements HostLock {
  holder: Thread | null = null;
  readonly waiters: Thread[] = [];
  constructor(readonly owner: LwkHost, readonly id: number, readonly name: string) {}
}

class Call implements HostCall {
  done = false;
}

/** Work for another core, stamped with the sender's clock (`at`): it is not done before then. */
type Message = { at: number } & (
  | { kind: 'start'; t: Thread }
  | { kind: 'wake'; t: Thread }
  | { kind: 'grant'; t: Thread }
  | { kind: 'call'; fn: () => void; call: Call; notify: Thread | null });

// ---------------------------------------------------------------------------------- streams

const SELECT = 0x0, DATA = 0x1, STATUS = 0x2, IER = 0x3, RX_COUNT = 0x8;
const ST_TX_READY = 2, ST_RX_EOF = 4, IER_RX = 1;

class LwkStream implements HostStream {
  cb: ((bytes: Uint8Array) => void) | null = null;
  onEnd: (() => void) | null = null;
  ended = false;

  constructor(private readonly h: LwkHost, readonly name: string, readonly ch: StreamChannels) {}

  write(bytes: Uint8Array): number {
    const out = this.ch.out;
    if (out === null) return 0;
    return this.h.onChannel(out, (cpu, port) => {
      let n = 0;
      for (const b of bytes) {
        if ((this.h.k.io.in8(cpu, port(STATUS)) & ST_TX_READY) === 0) break;
        this.h.k.io.out8(cpu, port(DATA), b);
        n++;
      }
      return n;
    });
  }

  read(max: number): Uint8Array {
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`read: max must be a non-negative integer, got ${max}`);
    const inp = this.ch.in;
    if (inp === null) return new Uint8Array(0);
    return this.h.onChannel(inp, (cpu, port) => {
      const n = Math.min(max, this.h.k.io.in32(cpu, port(RX_COUNT)));
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = this.h.k.io.in8(cpu, port(DATA));
      return out;
    });
  }

  eof(): boolean {
    const inp = this.ch.in;
    if (inp === null) return true;
    return this.h.onChannel(inp, (cpu, port) => (this.h.k.io.in8(cpu, port(STATUS)) & ST_RX_EOF) !== 0);
  }

  onInput(cb: ((bytes: Uint8Array) => void) | null, onEnd?: () => void): void {
    this.cb = cb;
    this.onEnd = cb !== null ? onEnd ?? null : null;
    const inp = this.ch.in;
    if (inp === null) return;
    this.h.onChannel(inp, (cpu, port) => this.h.k.io.out8(cpu, port(IER), cb !== null && !this.ended ? IER_RX : 0));
  }

  close(): void {
    this.onInput(null);
  }

  /** The RX interrupt: hands every buffered byte to the callback, then the end once. */
  service(): void {
    if (this.cb === null || this.ch.in === null) return;
    const bytes = this.read(0xffffffff);
    if (bytes.length > 0) this.h.guard(`stream '${this.name}' input callback`, () => this.cb!(bytes));
    if (this.cb !== null && !this.ended && this.eof()) {
      this.ended = true;
      this.h.onChannel(this.ch.in, (cpu, port) => this.h.k.io.out8(cpu, port(IER), 0));
      const end = this.onEnd;
      if (end !== null) this.h.guard(`stream '${this.name}' end callback`, end);
    }
  }
}

// ---------------------------------------------------------------------------------- the host

export class LwkHost implements Host, KernelThreadHooks {
  readonly version: HostifVersion = HOSTIF_VERSION;
  readonly name = 'lwk';
  readonly mem: PhysMem;
  /** Errors thrown by kernel threads and callbacks (also in the kernel log). */
  readonly errors: unknown[] = [];
  /** Per core: the guests' runs and exits. */
  readonly guests: GuestStats[];

  private readonly mailbox: Message[][];
  private readonly live = new Map<number, number>();
  private readonly handles = new Map<Thread, LwkThread>();
  private readonly lockWait = new Set<Thread>();
  private readonly hooks = new Map<number, HostInterruptHandler>();
  private readonly streams = new Map<string, LwkStream>();
  /** The core whose trap handler runs, -1 outside (the boot context). */
  private executing = -1;
  /** Callbacks (calls, interrupt handlers, stream callbacks) run with no current thread. */
  private inCallback = 0;
  private nextLockId = 1;
  private nextThread = 1;
  private readonly consoleBase: number;

  constructor(readonly k: Kernel, private readonly machine: Machine, opts: LwkHostOptions = {}) {
    this.mem = k.mem;
    this.mailbox = k.cores.map(() => []);
    this.guests = k.cores.map(() => new GuestStats());
    this.consoleBase = k.info.devices.hostConsole.base;
    const channels = k.info.devices.hostConsole.channels;
    for (const [name, spec] of Object.entries(opts.streams ?? DEFAULT_STREAMS)) {
      let ch: StreamChannels = typeof spec === 'number' ? { in: spec, out: spec } : spec;
      if (opts.streams === undefined) {
        // the default streams use the channels the machine has
        const have = (c: number | null) => (c !== null && c < channels ? c : null);
        ch = { in: have(ch.in), out: have(ch.out) };
        if (ch.in === null && ch.out === null) continue;
      }
      for (const c of [ch.in, ch.out]) {
        if (c !== null && (!Number.isInteger(c) || c < 0 || c >= channels)) {
          throw new RangeError(`stream '${name}': host console channel ${c} out of range 0-${channels - 1}`);
        }
      }
      this.streams.set(name, new LwkStream(this, name, ch));
    }
    // the host console's IRQ through the IOAPIC to the boot processor, level-triggered
    this.context((cpu) => {
      const io = k.io, ioapic = k.info.devices.ioapic;
      io.mmioWrite32(cpu, ioapic, 0x10 + 2 * CONSOLE_IRQ + 1);
      io.mmioWrite32(cpu, ioapic + 0x10, k.percpu[0].apicId << 24);
      io.mmioWrite32(cpu, ioapic, 0x10 + 2 * CONSOLE_IRQ);
      io.mmioWrite32(cpu, ioapic + 0x10, VEC_HOST_CONSOLE | (1 << 15));
    }, true);
    k.sched.kthreadHooks = this;
  }

  // ---- the log
  print(line: string): void {
    this.context((cpu) => this.k.log.print(cpu, line));
  }

  // ---- memory
  allocPages(count: number, opts: AllocOptions = {}): number | null {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`allocPages: count must be a positive integer, got ${count}`);
    const align = opts.align ?? PAGE_SIZE;
    if (!Number.isInteger(align) || align < PAGE_SIZE || (align & (align - 1)) !== 0 || align > 2 ** 31) {
      throw new RangeError(`allocPages: align must be a power of two of at least ${PAGE_SIZE}, got ${align}`);
    }
    const node = opts.node ?? -1;
    if (node !== -1 && (!Number.isInteger(node) || node < 0 || node >= this.numaNodes())) {
      throw new RangeError(`allocPages: NUMA node ${node} does not exist (nodes 0-${this.numaNodes() - 1}, or -1 for any)`);
    }
    return this.context((cpu) => {
      charge(cpu, 'hostAlloc');
      const r = this.k.pmem.alloc(cpu, { size: count * PAGE_SIZE, type: 'vmm', align });
      if (!r.ok) return null;
      this.live.set(r.value, count);
      return r.value;
    });
  }

  freePages(base: number, count: number): void {
    if (this.live.get(base) !== count) {
      throw new RangeError(`freePages: no block of ${count} pages at 0x${(base >>> 0).toString(16)} is allocated`);
    }
    this.context((cpu) => {
      charge(cpu, 'hostAlloc');
      const r = this.k.pmem.free(cpu, base, count * PAGE_SIZE, 'vmm');
      if (!r.ok) throw new Error(`freePages: pmem refused the VMM block at 0x${base.toString(16)} (${r.error})`);
      this.live.delete(base);
    });
  }

  memStats(): MemStats {
    let held = 0;
    for (const n of this.live.values()) held += n;
    const free = Math.floor(this.k.pmem.freeBytes / PAGE_SIZE);
    return { totalPages: free + held, freePages: free };
  }

  numaNodes(): number { return 1; }
  physToVirt(pa: number): number { return pa; }
  virtToPhys(va: number): number { return va; }

  // ---- cores and time
  coreCount(): number { return this.k.cores.length; }
  currentCore(): number { return this.executing >= 0 ? this.executing : 0; }
  cyclesPerSecond(): number { return this.k.info.hz; }
  cycles(): number { return this.k.cores[this.currentCore()].cycles; }
  /** Charges the VMM's work (its own cost table) to the calling core; nothing in the boot context. */
  spend(cycles: number): void {
    if (this.executing >= 0 && cycles > 0) this.k.cores[this.executing].cycles += cycles;
  }

  // ---- threads
  startThread(core: number, body: HostThread, name?: string): HostThreadHandle {
    this.checkCore(core, 'startThread');
    if (body === null || typeof body !== 'object' || typeof body.next !== 'function' || typeof body.throw !== 'function') {
      throw new RangeError('startThread: the body must be a generator (a function* called once)');
    }
    const t = Thread.kernel(name ?? `kthread-${this.nextThread}`, core, body);
    this.nextThread++;
    const h = new LwkThread(this, t);
    this.handles.set(t, h);
    this.context((cpu) => {
      if (this.executing === core) this.k.sched.add(cpu, t);
      else this.send(cpu, core, { kind: 'start', t, at: this.stamp(cpu) });
    });
    return h;
  }

  currentThread(): HostThreadHandle | null {
    if (this.inCallback > 0) return null;
    const t = this.k.sched.stepping;
    return t === null ? null : this.handleOf(t);
  }

  wake(thread: HostThreadHandle): void {
    const t = this.ownThread(thread, 'wake');
    if (t.state === 'dead') return;
    this.context((cpu) => {
      if (this.executing === t.core) this.wakeHere(cpu, t);
      else this.send(cpu, t.core, { kind: 'wake', t, at: this.stamp(cpu) });
    });
  }

  // ---- other cores
  callOnCore(core: number, fn: () => void, opts: CallOnCoreOptions = {}): HostCall {
    this.checkCore(core, 'callOnCore');
    if (typeof fn !== 'function') throw new RangeError('callOnCore: fn must be a function');
    const notify = opts.notify !== undefined ? this.ownThread(opts.notify, 'callOnCore') : null;
    const call = new Call();
    if (core === this.currentCore()) this.runCall(fn, call, notify);
    else this.context((cpu) => this.send(cpu, core, { kind: 'call', fn, call, notify, at: this.stamp(cpu) }));
    return call;
  }

  interruptCore(core: number, vector?: number): void {
    this.checkCore(core, 'interruptCore');
    if (vector !== undefined && (!Number.isInteger(vector) || vector < HOOKABLE_VECTOR_FIRST || vector > LWK_HOOKABLE_LAST)) {
      throw new RangeError(`interruptCore: vector must be 0x${HOOKABLE_VECTOR_FIRST.toString(16)}-0x${LWK_HOOKABLE_LAST.toString(16)} on the LWK, got ${vector}`);
    }
    this.context((cpu) => this.k.apic.sendIpi(cpu, this.k.percpu[core].apicId, vector ?? VEC_RESCHED));
  }

  // ---- host interrupts
  hookInterrupt(vector: number, handler: HostInterruptHandler): boolean {
    if (!Number.isInteger(vector) || vector < HOOKABLE_VECTOR_FIRST || vector > LWK_HOOKABLE_LAST) return false;
    if (this.hooks.has(vector) || typeof handler !== 'function') return false;
    this.hooks.set(vector, handler);
    return true;
  }

  unhookInterrupt(vector: number): void {
    this.hooks.delete(vector);
  }

  ackInterrupt(vector: number): void {
    this.context((cpu) => {
      const k = this.currentCore();
      let top = -1;
      for (let i = 7; i >= 0 && top < 0; i--) {
        const w = this.k.apic.read(cpu, APIC_ISR + 0x10 * i);
        if (w !== 0) top = i * 32 + 31 - Math.clz32(w);
      }
      if (top !== vector) {
        throw new HostifError(`ackInterrupt: vector 0x${vector.toString(16)} is not the interrupt in service on core ${k} (${top < 0 ? 'none is' : `0x${top.toString(16)} is`})`);
      }
      this.k.apic.eoi(cpu);
    });
  }

  // ---- the outside world
  openStream(name: string): HostStream | null {
    return this.streams.get(name) ?? null;
  }

  /** The names openStream knows. */
  streamNames(): string[] { return [...this.streams.keys()]; }

  // ---- locks
  createLock(name: string): HostLock {
    return new LwkLock(this, this.nextLockId++, name);
  }

  unlock(lock: HostLock): void {
    const l = this.ownLock(lock, 'unlock');
    const me = this.inCallback > 0 ? null : this.k.sched.stepping;
    if (l.holder === null || l.holder !== me) {
      throw new HostifError(`unlock: lock '${l.name}' is not held by the calling thread`);
    }
    this.context((cpu) => {
      charge(cpu, 'hostLock');
      const next = l.waiters.shift() ?? null;
      l.holder = next;
      if (next === null) return;
      if (this.executing === next.core) this.grantHere(cpu, next);
      else this.send(cpu, next.core, { kind: 'grant', t: next, at: this.stamp(cpu) });
    });
  }

  // =============================================================================== the kernel's side

  /** trap.ts: the handler of `core` starts running; returns what to restore. */
  enterCore(core: number): number {
    const prev = this.executing;
    this.executing = core;
    return prev;
  }

  /** trap.ts: the handler returns. */
  leaveCore(prev: number): void {
    this.executing = prev;
  }

  /** trap.ts: an interrupt the kernel does not know; true when it was the host's (hooked, or the console's). */
  interrupt(cpu: Cpu, core: number, vector: number): boolean {
    if (vector === VEC_HOST_CONSOLE) {
      for (const s of this.streams.values()) s.service();
      this.k.apic.eoi(cpu);
      return true;
    }
    const hook = this.hooks.get(vector);
    if (hook === undefined) return false;
    this.guard(`the handler of vector 0x${vector.toString(16)}`, () => hook(vector, core));
    return true; // the VMM acknowledges it (ackInterrupt)
  }

  /** trap.ts: the kernel's part of a #VMEXIT took `cycles`. */
  noteExit(core: number, exitCode: number, cycles: number): void {
    const m = this.guests[core].exits;
    const t = m.get(exitCode);
    if (t === undefined) m.set(exitCode, { count: 1, cycles });
    else { t.count++; t.cycles += cycles; }
  }

  // ---- KernelThreadHooks (kernel/sched/scheduler.ts)

  drain(cpu: Cpu, core: number): void {
    const box = this.mailbox[core];
    for (let i = 0; i < box.length;) {
      if (box[i].at > cpu.cycles) { i++; continue; }
      const m = box.splice(i, 1)[0];
      charge(cpu, 'hostMessage');
      switch (m.kind) {
        case 'start': this.k.sched.add(cpu, m.t); break;
        case 'wake': if (m.t.state !== 'dead') this.wakeHere(cpu, m.t); break;
        case 'grant': this.grantHere(cpu, m.t); break;
        case 'call': this.runCall(m.fn, m.call, m.notify); break;
      }
    }
  }

  nextDeadline(core: number): number {
    let d = Infinity;
    for (const m of this.mailbox[core]) if (m.at < d) d = m.at;
    return d;
  }

  request(cpu: Cpu, core: number, t: Thread, req: HostRequest): boolean {
    if (req.kind !== 'lock') return false;
    charge(cpu, 'hostLock');
    const l = req.lock;
    const cr = this.k.sched.cores[core];
    const refuse = (m: string): true => { t.throwNext = { error: new HostifError(m) }; t.state = 'runnable'; cr.runq.unshift(t); return true; };
    if (!(l instanceof LwkLock) || l.owner !== this) return refuse('lock: not a lock of this host');
    if (l.holder === t) return refuse(`lock: thread '${t.name}' already holds lock '${l.name}'`);
    if (l.holder === null) {
      l.holder = t;
      t.resume = { kind: 'locked' };
      this.k.sched.add(cpu, t);
      return true;
    }
    t.state = 'sleeping'; // blocked on the lock: in no queue, not woken by wake()
    t.wakeAt = Infinity;
    this.lockWait.add(t);
    l.waiters.push(t);
    return true;
  }

  checkRun(req: Extract<HostRequest, { kind: 'vmrun' }>): Error | null {
    const { vmcb, deadline, regs } = req;
    if (typeof deadline !== 'number' || Number.isNaN(deadline)) return vmrunError(`the deadline must be a cycle count, got ${String(deadline)}`);
    if (typeof vmcb !== 'number' || !Number.isInteger(vmcb) || (vmcb & 0xfff) !== 0 || !this.mem.isRam(vmcb)) {
      return vmrunError(`the VMCB at ${String(vmcb)} must be a page of RAM`);
    }
    if (regs !== undefined && (!(regs instanceof Int32Array) || regs.length < 8)) return vmrunError('regs must be an Int32Array of 8 registers');
    if ((this.mem.read(vmcb + VMCB_INTERCEPTS3, 4) & IC3_INTR) === 0) {
      return vmrunError(`the VMCB at 0x${vmcb.toString(16)} does not intercept INTR (VMCB_INTERCEPTS3 bit 0): the kernel could not take the core back at the deadline`);
    }
    if ((this.mem.read(vmcb + VMCB_VINTR, 4) & V_INTR_MASKING) === 0) {
      return vmrunError(`the VMCB at 0x${vmcb.toString(16)} does not set V_INTR_MASKING (VMCB_VINTR bit 24): a guest with IF clear would keep the kernel's interrupts from ending its run`);
    }
    return null;
  }

  enterGuest(cpu: Cpu, core: number, _t: Thread, req: Extract<HostRequest, { kind: 'vmrun' }>): number {
    charge(cpu, 'vmrunEntry');
    chargeMem(cpu, 4 * 2); // the two words of the VMCB checked when the request was made
    if (req.regs !== undefined) {
      chargeMem(cpu, 4 * GUEST_REGS.length);
      { const r = cpu.r, gr = req.regs; r[1] = gr[1]; r[2] = gr[2]; r[3] = gr[3]; r[5] = gr[5]; r[6] = gr[6]; r[7] = gr[7]; } // GUEST_REGS, written out
    }
    const rc = vmrun(cpu, req.vmcb);
    const g = this.guests[core];
    if (rc === 0) { g.runs++; g.enteredAt = cpu.cycles; } else g.invalid++;
    return rc;
  }

  leaveGuest(cpu: Cpu, core: number, _t: Thread, req: Extract<HostRequest, { kind: 'vmrun' }>): void {
    const g = this.guests[core];
    g.guestCycles += cpu.cycles - g.enteredAt;
    if (req.regs !== undefined) {
      chargeMem(cpu, 4 * GUEST_REGS.length);
      { const r = cpu.r, gr = req.regs; gr[1] = r[1]; gr[2] = r[2]; gr[3] = r[3]; gr[5] = r[5]; gr[6] = r[6]; gr[7] = r[7]; } // GUEST_REGS, written out
    }
  }

  failed(cpu: Cpu, t: Thread): void {
    const e = t.failure?.error;
    this.errors.push(e);
    this.k.log.print(cpu, `kernel thread '${t.name}' (core ${t.core}) failed: ${describe(e)}`);
  }

  // =============================================================================== internals

  /**
   * Runs `fn` with the core the caller runs on. In the boot context (no handler running) that
   * is core 0, entered on the machine (its APIC page, its device time), and nothing is charged
   * unless `charged` (the host's own set-up at boot is the kernel's work).
   */
  private context<T>(fn: (cpu: Cpu) => T, charged = false): T {
    if (this.executing >= 0) return fn(this.k.cores[this.executing]);
    const c0 = this.k.cores[0];
    const saved = c0.cycles;
    try {
      return this.machine.enter(c0, () => fn(c0));
    } finally {
      if (!charged) c0.cycles = saved;
    }
  }

  /** Selects host console channel `ch` for `fn`, then restores the selection (the kernel's driver keeps its own). */
  onChannel<T>(ch: number, fn: (cpu: Cpu, port: (reg: number) => number) => T): T {
    return this.context((cpu) => {
      const io = this.k.io, base = this.consoleBase;
      const prev = io.in8(cpu, base + SELECT);
      io.out8(cpu, base + SELECT, ch);
      try {
        return fn(cpu, (reg) => base + reg);
      } finally {
        io.out8(cpu, base + SELECT, prev);
      }
    });
  }

  /** Runs a callback in host context (no current thread); what it throws is logged, not propagated. */
  guard(what: string, fn: () => void): void {
    this.inCallback++;
    try {
      fn();
    } catch (e) {
      this.errors.push(e);
      this.print(`hostif: ${what} threw: ${describe(e)}`);
    } finally {
      this.inCallback--;
    }
  }

  private handleOf(t: Thread): LwkThread {
    let h = this.handles.get(t);
    if (h === undefined) { h = new LwkThread(this, t); this.handles.set(t, h); }
    return h;
  }

  private checkCore(core: number, what: string): void {
    if (!Number.isInteger(core) || core < 0 || core >= this.k.cores.length) {
      throw new RangeError(`${what}: core ${core} out of range 0-${this.k.cores.length - 1}`);
    }
  }

  private ownThread(h: HostThreadHandle, what: string): Thread {
    if (!(h instanceof LwkThread) || h.owner !== this) throw new RangeError(`${what}: not a thread of this host`);
    return h.t;
  }

  private ownLock(l: HostLock, what: string): LwkLock {
    if (!(l instanceof LwkLock) || l.owner !== this) throw new RangeError(`${what}: not a lock of this host`);
    return l;
  }

  /** The sender's clock for a message (the boot context is before every core's time). */
  private stamp(cpu: Cpu): number {
    return this.executing >= 0 ? cpu.cycles : 0;
  }

  private send(cpu: Cpu, core: number, m: Message): void {
    this.mailbox[core].push(m);
    this.k.apic.sendIpi(cpu, this.k.percpu[core].apicId, VEC_RESCHED);
  }

  private wakeHere(cpu: Cpu, t: Thread): void {
    if (this.lockWait.has(t)) { t.pendingWake = true; return; }
    this.k.sched.wake(cpu, t);
  }

  private grantHere(cpu: Cpu, t: Thread): void {
    this.lockWait.delete(t);
    t.resume = { kind: 'locked' };
    this.k.sched.add(cpu, t);
  }

  private runCall(fn: () => void, call: Call, notify: Thread | null): void {
    this.guard('a function called on this core', fn);
    call.done = true;
    if (notify !== null) this.wake(this.handleOf(notify));
  }
}

function describe(v: unknown): string {
  if (v instanceof Error) return v.message;
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}

/** A refused 'vmrun' (a module function, not a closure made on every guest entry: the entry path is hot). */
function vmrunError(m: string): HostifError {
  return new HostifError(`vmrun: ${m}`);
}
