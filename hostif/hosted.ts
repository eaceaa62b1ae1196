/**
 * The minimal hosted implementation of the host interface: what the VMM's own tests run on.
 * It takes a Machine and becomes the host software of all its cores, as a tiny kernel would:
 *
 * - Cores. It installs itself as every core's host handler (cpu.host) and idles them. The
 *   application processors are claimed directly, without INIT/SIPI: there is no machine code
 *   to start (a test harness's shortcut; the LWK brings its cores up properly). It masks the
 *   8259s and LINT0 (the APIC does everything), puts each local APIC timer in TSC-deadline
 *   mode, and routes the host console's IRQ through the IOAPIC to core 0. A core's local APIC
 *   registers are written with LocalApic.writeRegister on that core's own APIC, which is what
 *   an MMIO store to the APIC page from that core does (the boot context uses core 0's).
 * - Threads. Each core has a FIFO run queue of generator threads (requests.ts). The core's
 *   handler runs them one request at a time: run-to-completion, no preemption of a thread
 *   between requests. Whenever the host gets the core (an interrupt while idle, a #VMEXIT) it
 *   takes its messages from other cores, ends due sleeps (in deadline order), and runs the
 *   queue; the thread that just left the guest goes behind the threads that became runnable.
 *   A free lock lets the same thread continue; a sleep whose deadline has passed, or a sleep
 *   or wait that finds a kept wake-up, ends at once but queues behind the runnable threads (so
 *   due sleeps still end in deadline order). After a quantum of the machine's cycles in one
 *   go, the handler gives the core back to the machine (a self-IPI, then idle), so other cores
 *   and device events keep up. With nothing to run it arms the timer for the earliest sleep
 *   and idles the core (cpu.idle()).
 * - 'vmrun'. A 'vmrun' is a request like the others: it queues behind the runnable threads and
 *   is carried out when its turn comes. The VMCB must intercept INTR and set V_INTR_MASKING,
 *   as KVM's always do (else the request throws a HostifError into the thread): only then does
 *   a host interrupt end the run whatever the guest's IF. The host arms the core's local APIC
 *   timer in TSC-deadline mode (WRMSR IA32_TSC_DEADLINE through cpu.apic) for the earliest of
 *   the run's deadline, the core's sleeps and its pending messages, and, when other threads
 *   of the core are runnable, the end of a time slice (HostedOptions.slice); it loads the guest
 *   registers of the request and calls hw/cpu/svm.ts vmrun(). The timer's interrupt forces
 *   the INTR exit, as KVM's host timers do; the #VMEXIT (TRAP_VMEXIT) resumes the thread with
 *   {kind:'vmexit'}. The pending host interrupt is then taken the way host software takes one
 *   after a #VMEXIT: the host idles with it pending (STI; HLT), the core delivers it at once
 *   (TRAP_IDLE), and the host acknowledges it (EOI).
 * - Other cores. A start, wake, lock hand-over or call for another core is put in that core's
 *   mailbox (host memory shared by the cores), stamped with the sender's clock, and announced
 *   with a fixed IPI through the local APIC's ICR (vector IPI_VECTOR). The machine lets cores
 *   drift apart by up to a quantum, so the target may get it "before" it was sent by its own
 *   clock: it then waits (its timer armed for the stamp) until its clock reaches the stamp, so
 *   the work never happens before it was asked for. (An idle core's clock also catches up when
 *   an interrupt reaches it: hw/machine.ts.)
 * - Memory. First-fit over the usable RAM of machine.memoryMap above `reserveBelow` (default
 *   1 MiB, the host's own area: real-mode memory and the BIOS), page-granular, aligned, with
 *   coalescing frees. One NUMA node. The allocator's bookkeeping is host data (JavaScript), not
 *   in emulated memory, so no block is ever touched by it.
 * - Streams. Named streams map to host console channels (options.streams); the host writes
 *   and reads them through the device's ports, and delivers input from its RX interrupt.
 * - Costs. The host charges the core it runs on: HOSTED_COSTS.entry per handler entry,
 *   .step per thread resume, the cost table's msr figure per TSC-deadline write, .apic per
 *   local APIC register write (ICR, EOI), and the cost table's io figure per console port
 *   access. Nothing is charged in the boot context.
 * - Errors. A thread that throws is 'failed' (its handle keeps the error); a callback (callOnCore
 *   function, interrupt handler, stream callback) that throws is logged. Both go to `errors`
 *   and the log, and the host carries on. A trap the host cannot explain (an exception in host
 *   mode: it runs no machine code) is a bug of this file and throws out of Machine.run().
 */
import { type CostEntry, insnCosts } from '../hw/costs.ts';
import type { Cpu, TrapRecord } from '../hw/cpu/cpu.ts';
import { vmrun } from '../hw/cpu/svm.ts';
import { TRAP_IDLE, TRAP_VMEXIT } from '../hw/cpu/traps.ts';
import { IC3_INTR, VMCB_INTERCEPTS3, VMCB_VINTR } from '../hw/cpu/vmcb.ts';
import { HOST_CONSOLE_PORTS } from '../hw/devices/host-console.ts';
import { IOAPIC_BASE } from '../hw/devices/ioapic.ts';
import { LapicReg } from '../hw/devices/lapic.ts';
import type { Machine } from '../hw/machine.ts';
import type { PhysMem } from '../hw/mem/physmem.ts';
import {
  type AllocOptions, type CallOnCoreOptions, HOOKABLE_VECTOR_FIRST, HOOKABLE_VECTOR_LAST, type Host, type HostCall,
  HostifError, type HostifVersion, type HostInterruptHandler, type HostStream, type HostThreadHandle, type HostThreadState,
  HOSTIF_VERSION, type MemStats, PAGE_SIZE,
} from './hostif.ts';
import type { HostLock, HostRequest, HostResume, HostThread } from './requests.ts';

/** The host's own vectors (above every hookable one, so an unacknowledged hooked vector never blocks them). */
export const TIMER_VECTOR = 0xf0;
export const IPI_VECTOR = 0xf1;
export const CONSOLE_VECTOR = 0xf2;
/** The spurious vector the machine's APICs are left with (SVR bits 7:0): never acknowledged. */
const SPURIOUS_VECTOR = 0xff;
const NMI_VECTOR = 2;
/** VMCB_VINTR bit 24: physical interrupts are masked by the host's IF, not the guest's (APM 15.21.1). */
const V_INTR_MASKING = 1 << 24;
/** The host console's ISA IRQ (hw/machine.ts wires it to IRQ 5, IOAPIC pin 5). */
const CONSOLE_IRQ = 5;

function cost(cycles: number, source: string): CostEntry {
  return { cycles, kind: 'assumed', source };
}

export interface HostedCosts {
  /** Entering and leaving the host's handler once. */
  entry: CostEntry;
  /** Resuming a thread and taking its next request. */
  step: CostEntry;
  /** A local APIC register write (ICR, EOI, LVT): an uncached MMIO store. */
  apic: CostEntry;
}

export const HOSTED_COSTS: HostedCosts = {
  entry: cost(100, 'a minimal host entry and exit: an interrupt-gate delivery (~40 cycles, hw/costs.ts) plus saving and restoring a few registers'),
  step: cost(50, 'switching between two kernel threads of one address space: a few dozen register moves and a return'),
  apic: cost(40, 'an xAPIC register write, an uncached MMIO store, of the order of a WRMSR (hw/costs.ts msr)'),
};

export interface HostedOptions {
  /** Bytes at the bottom of RAM the host keeps for itself (default 1 MiB); rounded up to a page. */
  reserveBelow?: number;
  /** Stream names and the host console channel each one uses. */
  streams?: Readonly<Record<string, number>>;
  /** Where print() goes (default: the `log` array). */
  log?: (line: string) => void;
  costs?: Partial<HostedCosts>;
  /**
   * The longest a guest runs while other threads of its core are runnable, in cycles (default
   * 5,000, about 2.3 us at 2.2 GHz: short next to the deadlines of the threads it delays).
   */
  slice?: number;
}

// ---------------------------------------------------------------------------------- threads

type Blocked = 'none' | 'sleep' | 'wait' | 'lock';
type VmrunRequest = Extract<HostRequest, { kind: 'vmrun' }>;

class Thread implements HostThreadHandle {
  state: HostThreadState = 'runnable';
  error: unknown = undefined;
  /** A wake-up kept for the next 'sleep' or 'wait'. */
  permit = false;
  blocked: Blocked = 'none';
  until = Infinity;
  sleepSeq = 0;
  /** What the next resume passes in, or an error to throw into the thread. */
  resume: HostResume = { kind: 'start' };
  throwNext: unknown = null;
  /** A 'vmrun' waiting for its turn on the core. */
  pendingRun: VmrunRequest | null = null;

  constructor(readonly owner: HostedHost, readonly id: number, readonly name: string, readonly core: number, readonly body: HostThread) {}
}

class Lock implements HostLock {
  holder: Thread | null = null;
  readonly waiters: Thread[] = [];
  constructor(readonly owner: HostedHost, readonly id: number, readonly name: string) {}
}

class Call implements HostCall {
  done = false;
}

/** Work for another core, stamped with the sender's clock (`at`): it is not done before then. */
type Message = { at: number } & (
  | { kind: 'start'; thread: Thread }
  | { kind: 'wake'; thread: Thread }
  | { kind: 'grant'; thread: Thread }
  | { kind: 'call'; fn: () => void; call: Call; notify: Thread | null });

class CoreSched {
  readonly runq: Thread[] = [];
  readonly sleepers: Thread[] = [];
  readonly mailbox: Message[] = [];
  /** The thread whose guest the core runs, with its request. */
  guest: Thread | null = null;
  guestReq: VmrunRequest | null = null;
  /** The thread that just left the guest, queued once due sleeps have been ended. */
  exited: Thread | null = null;
}

// ---------------------------------------------------------------------------------- memory

interface Range { base: number; end: number }

/** First-fit allocator of page-aligned ranges, free list sorted by address, coalescing. */
class FirstFit {
  private free: Range[] = [];
  private readonly live = new Map<number, number>();
  readonly totalPages: number;
  freePages = 0;

  constructor(ranges: readonly Range[]) {
    for (const r of ranges) if (r.end > r.base) this.free.push({ ...r });
    this.free.sort((a, b) => a.base - b.base);
    for (const r of this.free) this.freePages += (r.end - r.base) / PAGE_SIZE;
    this.totalPages = this.freePages;
  }

  alloc(count: number, align: number): number | null {
    const size = count * PAGE_SIZE;
    for (let i = 0; i < this.free.length; i++) {
      const r = this.free[i];
      const base = Math.ceil(r.base / align) * align;
      if (base + size > r.end) continue;
      const pieces: Range[] = [];
      if (base > r.base) pieces.push({ base: r.base, end: base });
      if (base + size < r.end) pieces.push({ base: base + size, end: r.end });
      this.free.splice(i, 1, ...pieces);
      this.live.set(base, count);
      this.freePages -= count;
      return base;
    }
    return null;
  }

  release(base: number, count: number): void {
    if (this.live.get(base) !== count) {
      throw new RangeError(`freePages: no block of ${count} pages at 0x${(base >>> 0).toString(16)} is allocated`);
    }
    this.live.delete(base);
    this.freePages += count;
    const end = base + count * PAGE_SIZE;
    let i = 0;
    while (i < this.free.length && this.free[i].base < base) i++;
    this.free.splice(i, 0, { base, end });
    if (i + 1 < this.free.length && this.free[i + 1].base === end) {
      this.free[i].end = this.free[i + 1].end;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].end === base) {
      this.free[i - 1].end = this.free[i].end;
      this.free.splice(i, 1);
    }
  }
}

// ---------------------------------------------------------------------------------- streams

const CON = HOST_CONSOLE_PORTS[0].base;
const CON_SELECT = CON, CON_DATA = CON + 1, CON_STATUS = CON + 2, CON_IER = CON + 3, CON_RX_COUNT = CON + 8;
const ST_RX_AVAIL = 1, ST_TX_READY = 2, ST_RX_EOF = 4, IER_RX = 1;

class HostedStream implements HostStream {
  cb: ((bytes: Uint8Array) => void) | null = null;
  onEnd: (() => void) | null = null;
  ended = false;

  constructor(private readonly h: HostedHost, readonly name: string, readonly channel: number) {}

  write(bytes: Uint8Array): number {
    let n = 0;
    this.h.conSelect(this.channel);
    for (const b of bytes) {
      if ((this.h.conIn(CON_STATUS) & ST_TX_READY) === 0) break;
      this.h.conOut(CON_DATA, b);
      n++;
    }
    return n;
  }

  read(max: number): Uint8Array {
    if (!Number.isInteger(max) || max < 0) throw new RangeError(`read: max must be a non-negative integer, got ${max}`);
    this.h.conSelect(this.channel);
    const n = Math.min(max, this.h.conIn(CON_RX_COUNT, 4));
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.h.conIn(CON_DATA);
    return out;
  }

  eof(): boolean {
    this.h.conSelect(this.channel);
    return (this.h.conIn(CON_STATUS) & ST_RX_EOF) !== 0;
  }

  onInput(cb: ((bytes: Uint8Array) => void) | null, onEnd?: () => void): void {
    this.cb = cb;
    this.onEnd = cb !== null ? onEnd ?? null : null;
    this.h.conSelect(this.channel);
    this.h.conOut(CON_IER, cb !== null && !this.ended ? IER_RX : 0);
  }

  close(): void {
    this.onInput(null);
  }

  /** The RX interrupt: hands every buffered byte to the callback, then the end once. */
  service(): void {
    if (this.cb === null) return;
    const bytes = this.read(0xffffffff);
    if (bytes.length > 0) this.h.guard(`stream '${this.name}' input callback`, () => this.cb!(bytes));
    if (this.cb !== null && !this.ended && this.eof()) {
      this.ended = true;
      this.h.conSelect(this.channel);
      this.h.conOut(CON_IER, 0);
      const end = this.onEnd;
      if (end !== null) this.h.guard(`stream '${this.name}' end callback`, end);
    }
  }
}

// ---------------------------------------------------------------------------------- the host

export class HostedHost implements Host {
  readonly version: HostifVersion = HOSTIF_VERSION;
  readonly name = 'hosted';
  readonly mem: PhysMem;
  /** print() output when no log function was given. */
  readonly log: string[] = [];
  /** Errors thrown by threads and callbacks (also printed). */
  readonly errors: unknown[] = [];
  /** Bytes at the bottom of RAM the host keeps. */
  readonly reserveBelow: number;
  readonly costs: HostedCosts;
  /** See HostedOptions.slice. */
  readonly slice: number;

  private readonly sched: CoreSched[];
  private readonly pages: FirstFit;
  private readonly hooks = new Map<number, HostInterruptHandler>();
  private readonly streams = new Map<string, HostedStream>();
  private readonly logFn: ((line: string) => void) | null;
  /** The core whose handler is running, -1 in the boot context. */
  private executing = -1;
  private current: Thread | null = null;
  private nextThreadId = 1;
  private nextLockId = 1;
  private sleepSeq = 0;

  constructor(readonly machine: Machine, opts: HostedOptions = {}) {
    this.mem = machine.mem;
    this.costs = { ...HOSTED_COSTS, ...opts.costs };
    this.slice = opts.slice ?? 5000;
    if (!(this.slice > 0)) throw new RangeError(`slice must be a positive number of cycles, got ${opts.slice}`);
    this.logFn = opts.log ?? null;
    const reserve = Math.ceil((opts.reserveBelow ?? 0x100000) / PAGE_SIZE) * PAGE_SIZE;
    if (!(reserve >= 0)) throw new RangeError(`reserveBelow must be a non-negative number of bytes, got ${opts.reserveBelow}`);
    this.reserveBelow = reserve;
    const ranges: Range[] = [];
    for (const r of machine.memoryMap) {
      if (r.type !== 1) continue;
      const base = Math.max(reserve, Math.ceil(r.base / PAGE_SIZE) * PAGE_SIZE);
      const end = Math.min(machine.mem.ramSize, Math.floor((r.base + r.length) / PAGE_SIZE) * PAGE_SIZE);
      if (end > base) ranges.push({ base, end });
    }
    this.pages = new FirstFit(ranges);
    for (const [name, ch] of Object.entries(opts.streams ?? {})) {
      if (!Number.isInteger(ch) || ch < 0 || ch >= machine.console.channelCount) {
        throw new RangeError(`stream '${name}': host console channel ${ch} out of range 0-${machine.console.channelCount - 1}`);
      }
      this.streams.set(name, new HostedStream(this, name, ch));
    }

    // the interrupt controllers: 8259s masked, every APIC's LINT0 masked and its timer in
    // TSC-deadline mode; the console's IRQ through the IOAPIC to core 0, level-triggered
    machine.ports.out(0x21, 1, 0xff);
    machine.ports.out(0xa1, 1, 0xff);
    for (const a of machine.lapics) {
      a.writeRegister(LapicReg.LVT_LINT0, 0x10700);
      a.writeRegister(LapicReg.LVT_TIMER, (2 << 17) | TIMER_VECTOR);
    }
    machine.mem.write(IOAPIC_BASE, 4, 0x10 + 2 * CONSOLE_IRQ + 1);
    machine.mem.write(IOAPIC_BASE + 0x10, 4, 0);
    machine.mem.write(IOAPIC_BASE, 4, 0x10 + 2 * CONSOLE_IRQ);
    machine.mem.write(IOAPIC_BASE + 0x10, 4, CONSOLE_VECTOR | (1 << 15));

    this.sched = machine.cores.map(() => new CoreSched());
    machine.cores.forEach((cpu, k) => {
      cpu.host = { trap: (c, t) => this.trap(k, c, t) };
      cpu.idle();
    });
  }

  // ---- the log
  print(line: string): void {
    if (this.logFn !== null) this.logFn(line);
    else this.log.push(line);
  }

  // ---- memory
  allocPages(count: number, opts: AllocOptions = {}): number | null {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`allocPages: count must be a positive integer, got ${count}`);
    const align = opts.align ?? PAGE_SIZE;
    if (!Number.isInteger(align) || align < PAGE_SIZE || !isPow2(align)) {
      throw new RangeError(`allocPages: align must be a power of two of at least ${PAGE_SIZE}, got ${align}`);
    }
    const node = opts.node ?? -1;
    if (node !== -1 && (!Number.isInteger(node) || node < 0 || node >= this.numaNodes())) {
      throw new RangeError(`allocPages: NUMA node ${node} does not exist (nodes 0-${this.numaNodes() - 1}, or -1 for any)`);
    }
    return this.pages.alloc(count, align);
  }

  freePages(base: number, count: number): void {
    this.pages.release(base, count);
  }

  memStats(): MemStats {
    return { totalPages: this.pages.totalPages, freePages: this.pages.freePages };
  }

  numaNodes(): number { return 1; }
  physToVirt(pa: number): number { return pa; }
  virtToPhys(va: number): number { return va; }

  // ---- cores and time
  coreCount(): number { return this.machine.cores.length; }
  currentCore(): number { return this.executing >= 0 ? this.executing : 0; }
  cyclesPerSecond(): number { return this.machine.hz; }
  cycles(): number { return this.machine.cores[this.currentCore()].cycles; }
  spend(cycles: number): void {
    if (this.executing >= 0 && cycles > 0) this.machine.cores[this.executing].cycles += cycles;
  }

  // ---- threads
  startThread(core: number, body: HostThread, name?: string): HostThreadHandle {
    this.checkCore(core, 'startThread');
    if (body === null || typeof body !== 'object' || typeof body.next !== 'function' || typeof body.throw !== 'function') {
      throw new RangeError('startThread: the body must be a generator (a function* called once)');
    }
    const id = this.nextThreadId++;
    const t = new Thread(this, id, name ?? `thread-${id}`, core, body);
    if (this.executing === core) this.sched[core].runq.push(t);
    else this.send(core, { kind: 'start', thread: t, at: this.stamp() });
    return t;
  }

  currentThread(): HostThreadHandle | null { return this.current; }

  wake(thread: HostThreadHandle): void {
    const t = this.ownThread(thread, 'wake');
    if (t.state === 'done' || t.state === 'failed') return;
    if (this.executing === t.core) this.wakeHere(t);
    else this.send(t.core, { kind: 'wake', thread: t, at: this.stamp() });
  }

  // ---- other cores
  callOnCore(core: number, fn: () => void, opts: CallOnCoreOptions = {}): HostCall {
    this.checkCore(core, 'callOnCore');
    if (typeof fn !== 'function') throw new RangeError('callOnCore: fn must be a function');
    const notify = opts.notify !== undefined ? this.ownThread(opts.notify, 'callOnCore') : null;
    const call = new Call();
    if (core === this.currentCore()) this.runCall(fn, call, notify);
    else this.send(core, { kind: 'call', fn, call, notify, at: this.stamp() });
    return call;
  }

  interruptCore(core: number, vector?: number): void {
    this.checkCore(core, 'interruptCore');
    if (vector !== undefined && (!Number.isInteger(vector) || vector < HOOKABLE_VECTOR_FIRST || vector > HOOKABLE_VECTOR_LAST)) {
      throw new RangeError(`interruptCore: vector must be 0x${HOOKABLE_VECTOR_FIRST.toString(16)}-0x${HOOKABLE_VECTOR_LAST.toString(16)}, got ${vector}`);
    }
    this.ipi(core, vector ?? IPI_VECTOR);
  }

  // ---- host interrupts
  hookInterrupt(vector: number, handler: HostInterruptHandler): boolean {
    if (!Number.isInteger(vector) || vector < HOOKABLE_VECTOR_FIRST || vector > HOOKABLE_VECTOR_LAST) return false;
    if (this.hooks.has(vector)) return false;
    this.hooks.set(vector, handler);
    return true;
  }

  unhookInterrupt(vector: number): void {
    this.hooks.delete(vector);
  }

  ackInterrupt(vector: number): void {
    const k = this.currentCore();
    const a = this.machine.lapics[k];
    let top = -1;
    for (let i = 7; i >= 0 && top < 0; i--) {
      const w = a.readRegister(LapicReg.ISR + 0x10 * i);
      if (w !== 0) top = i * 32 + 31 - Math.clz32(w);
    }
    if (top !== vector) {
      throw new HostifError(`ackInterrupt: vector 0x${vector.toString(16)} is not the interrupt in service on core ${k} (${top < 0 ? 'none is' : `0x${top.toString(16)} is`})`);
    }
    this.eoi(k);
  }

  // ---- the outside world
  openStream(name: string): HostStream | null {
    return this.streams.get(name) ?? null;
  }

  // ---- locks
  createLock(name: string): HostLock {
    return new Lock(this, this.nextLockId++, name);
  }

  unlock(lock: HostLock): void {
    const l = this.ownLock(lock, 'unlock');
    if (l.holder === null || l.holder !== this.current) {
      throw new HostifError(`unlock: lock '${l.name}' is not held by the calling thread`);
    }
    const next = l.waiters.shift() ?? null;
    l.holder = next;
    if (next === null) return;
    if (this.executing === next.core) this.makeRunnable(next, { kind: 'locked' });
    else this.send(next.core, { kind: 'grant', thread: next, at: this.stamp() });
  }

  // =============================================================================== internals

  private checkCore(core: number, what: string): void {
    if (!Number.isInteger(core) || core < 0 || core >= this.machine.cores.length) {
      throw new RangeError(`${what}: core ${core} out of range 0-${this.machine.cores.length - 1}`);
    }
  }

  private ownThread(h: HostThreadHandle, what: string): Thread {
    if (!(h instanceof Thread) || h.owner !== this) throw new RangeError(`${what}: not a thread of this host`);
    return h;
  }

  private ownLock(l: HostLock, what: string): Lock {
    if (!(l instanceof Lock) || l.owner !== this) throw new RangeError(`${what}: not a lock of this host`);
    return l;
  }

  private charge(c: CostEntry): void {
    if (this.executing >= 0) this.machine.cores[this.executing].cycles += c.cycles;
  }

  /** Runs a callback in host context; what it throws is logged, not propagated (used by the streams). */
  guard(what: string, fn: () => void): void {
    const saved = this.current;
    this.current = null;
    try {
      fn();
    } catch (e) {
      this.fail(`${what} threw: ${describe(e)}`, e);
    } finally {
      this.current = saved;
    }
  }

  private fail(line: string, e: unknown): void {
    this.errors.push(e);
    this.print(`hosted: ${line}`);
  }

  // ---- the console's ports (host software's port I/O; used by the streams)
  conSelect(ch: number): void { this.conOut(CON_SELECT, ch); }
  conOut(port: number, v: number): void {
    this.charge(insnCosts.io);
    this.machine.ports.out(port, 1, v);
  }
  conIn(port: number, size: 1 | 4 = 1): number {
    this.charge(insnCosts.io);
    return this.machine.ports.in(port, size);
  }

  // ---- the local APIC
  private eoi(k: number): void {
    this.charge(this.costs.apic);
    this.machine.lapics[k].writeRegister(LapicReg.EOI, 0);
  }

  /** A fixed IPI from the calling core's APIC (the boot processor's in the boot context). */
  private ipi(target: number, vector: number): void {
    const a = this.machine.lapics[this.currentCore()];
    this.charge(this.costs.apic);
    this.charge(this.costs.apic);
    a.writeRegister(LapicReg.ICR_HIGH, target << 24);
    a.writeRegister(LapicReg.ICR_LOW, vector);
  }

  /** The sender's clock for a message (the boot context is before every core's time). */
  private stamp(): number {
    return this.executing >= 0 ? this.machine.cores[this.executing].cycles : 0;
  }

  private send(core: number, m: Message): void {
    this.sched[core].mailbox.push(m);
    if (this.executing !== core) this.ipi(core, IPI_VECTOR);
  }

  /**
   * Arms core k's TSC deadline for the earliest of `also`, its sleeps and the messages it may
   * not act on yet (0: disarmed).
   */
  private armTimer(k: number, also = Infinity): void {
    let d = also;
    const s = this.sched[k];
    if (s.sleepers.length > 0) for (const t of s.sleepers) if (t.until < d) d = t.until;
    if (s.mailbox.length > 0) for (const m of s.mailbox) if (m.at < d) d = m.at;
    const want = d === Infinity ? 0 : Math.max(1, Math.ceil(d));
    const apic = this.machine.cores[k].apic!;
    if (apic.getTscDeadline() === want) return;
    this.charge(insnCosts.msr);
    apic.setTscDeadline(want);
  }

  // ---- the handler: the host's "IDT"
  private trap(k: number, cpu: Cpu, t: TrapRecord): void {
    if (this.executing !== -1) throw new Error(`hosted: trap on core ${k} while core ${this.executing}'s handler runs`);
    this.executing = k;
    try {
      this.charge(this.costs.entry);
      if (t.kind === TRAP_VMEXIT) this.vmexit(k, cpu, t.vector);
      else if (t.kind === TRAP_IDLE) this.interrupt(k, t.vector);
      else throw new Error(`hosted: unexpected host trap (kind ${t.kind}, vector ${t.vector}) on core ${k} at eip 0x${t.eip.toString(16)}: the hosted host runs no machine code`);
      this.dispatch(k, cpu);
    } finally {
      this.executing = -1;
      this.current = null;
    }
  }

  private vmexit(k: number, cpu: Cpu, exitCode: number): void {
    const s = this.sched[k];
    const t = s.guest, req = s.guestReq;
    if (t === null || req === null) throw new Error(`hosted: #VMEXIT on core ${k}, which runs no guest of ours`);
    s.guest = null; s.guestReq = null;
    const regs = req.regs;
    if (regs !== undefined) { // GUEST_REGS, written out (a for-of here cost ~2% of an exit)
      const r = cpu.r;
      regs[1] = r[1]; regs[2] = r[2]; regs[3] = r[3]; regs[5] = r[5]; regs[6] = r[6]; regs[7] = r[7];
    }
    t.state = 'runnable';
    t.resume = { kind: 'vmexit', exitCode, vmcb: req.vmcb };
    s.exited = t;
  }

  private interrupt(k: number, vector: number): void {
    if (vector === SPURIOUS_VECTOR || vector === NMI_VECTOR) return;
    const hook = this.hooks.get(vector);
    if (hook !== undefined) {
      this.guard(`the handler of vector 0x${vector.toString(16)}`, () => hook(vector, k));
      return; // the VMM acknowledges it (ackInterrupt)
    }
    if (vector === CONSOLE_VECTOR) for (const st of this.streams.values()) st.service();
    else if (vector !== TIMER_VECTOR && vector !== IPI_VECTOR) this.print(`hosted: stray interrupt 0x${vector.toString(16)} on core ${k}`);
    this.eoi(k);
  }

  /** Runs core k's work until it enters a guest or idles. */
  private dispatch(k: number, cpu: Cpu): void {
    const s = this.sched[k];
    const apic = this.machine.lapics[k];
    const budgetEnd = cpu.cycles + this.machine.quantum;
    for (;;) {
      this.drainMailbox(k, cpu.cycles);
      this.endSleeps(k, cpu.cycles);
      if (s.exited !== null) { s.runq.push(s.exited); s.exited = null; }
      if (apic.hasInterrupt()) { this.idle(k, cpu); return; } // take it first (STI; HLT)
      if (s.runq.length === 0) { this.idle(k, cpu); return; }
      if (cpu.cycles >= budgetEnd) {
        // give the core back to the machine for a moment: a self-IPI brings us back
        this.ipi(k, IPI_VECTOR);
        this.idle(k, cpu);
        return;
      }
      const t = s.runq.shift()!;
      if (t.pendingRun !== null) {
        if (this.enterGuest(k, cpu, t, s.runq.length > 0)) return;
      } else this.step(k, cpu, t);
    }
  }

  private idle(k: number, cpu: Cpu): void {
    this.armTimer(k);
    cpu.idle();
  }

  /**
   * Does the messages due at `now`, in the order they came. One sent at a later cycle than this
   * core's clock (the machine lets cores drift apart by up to a quantum) waits for the clock:
   * the timer is armed for it, so a woken thread never sees a time before its wake-up.
   */
  private drainMailbox(k: number, now: number): void {
    const box = this.sched[k].mailbox;
    if (box.length === 0) return;
    for (let i = 0; i < box.length;) {
      if (box[i].at > now) { i++; continue; }
      const m = box.splice(i, 1)[0];
      switch (m.kind) {
        case 'start': this.sched[k].runq.push(m.thread); break;
        case 'wake': if (m.thread.state !== 'done' && m.thread.state !== 'failed') this.wakeHere(m.thread); break;
        case 'grant': this.makeRunnable(m.thread, { kind: 'locked' }); break;
        case 'call': this.runCall(m.fn, m.call, m.notify); break;
      }
    }
  }

  private runCall(fn: () => void, call: Call, notify: Thread | null): void {
    this.guard('a function called on this core', fn);
    call.done = true;
    if (notify !== null) this.wake(notify);
  }

  /** Ends the sleeps due at `now`, in deadline order (then in the order they were asked for). */
  private endSleeps(k: number, now: number): void {
    const s = this.sched[k];
    if (s.sleepers.length === 0) return;
    const due = s.sleepers.filter((t) => t.until <= now);
    if (due.length === 0) return;
    due.sort((a, b) => a.until - b.until || a.sleepSeq - b.sleepSeq);
    for (const t of due) {
      s.sleepers.splice(s.sleepers.indexOf(t), 1);
      this.makeRunnable(t, { kind: 'timeout' });
    }
  }

  private wakeHere(t: Thread): void {
    const s = this.sched[t.core];
    if (t.blocked === 'sleep') {
      s.sleepers.splice(s.sleepers.indexOf(t), 1);
      this.makeRunnable(t, { kind: 'woken' });
    } else if (t.blocked === 'wait') {
      this.makeRunnable(t, { kind: 'woken' });
    } else {
      t.permit = true;
    }
  }

  private makeRunnable(t: Thread, r: HostResume, front = false): void {
    t.blocked = 'none';
    t.state = 'runnable';
    t.resume = r;
    if (front) this.sched[t.core].runq.unshift(t);
    else this.sched[t.core].runq.push(t);
  }

  /** Refuses a thread's 'vmrun' with a HostifError naming the problem (a method, not a closure: no allocation per entry). */
  private refuse(t: Thread, m: string): false {
    this.throwInto(t, new HostifError(`vmrun: ${m}`));
    return false;
  }

  private throwInto(t: Thread, e: unknown): void {
    t.throwNext = e;
    this.makeRunnable(t, { kind: 'start' }, true);
  }

  /** Resumes a thread and takes its next request. */
  private step(k: number, cpu: Cpu, t: Thread): void {
    this.charge(this.costs.step);
    t.state = 'running';
    this.current = t;
    let r: IteratorResult<HostRequest, void>;
    try {
      if (t.throwNext !== null) {
        const e = t.throwNext;
        t.throwNext = null;
        r = t.body.throw(e);
      } else r = t.body.next(t.resume);
    } catch (e) {
      t.state = 'failed';
      t.error = e;
      this.fail(`thread '${t.name}' (core ${k}) failed: ${describe(e)}`, e);
      return;
    } finally {
      this.current = null;
    }
    if (r.done === true) { t.state = 'done'; return; }
    this.request(k, cpu, t, r.value);
  }

  private request(k: number, cpu: Cpu, t: Thread, req: HostRequest): void {
    const s = this.sched[k];
    const kind = req !== null && typeof req === 'object' ? (req as { kind?: unknown }).kind : undefined;
    switch (kind) {
      case 'yield':
        this.makeRunnable(t, { kind: 'yielded' });
        return;
      case 'sleep': {
        const until = (req as { until: unknown }).until;
        if (typeof until !== 'number' || Number.isNaN(until)) { this.throwInto(t, new HostifError(`sleep: until must be a cycle count, got ${String(until)}`)); return; }
        if (t.permit) { t.permit = false; this.makeRunnable(t, { kind: 'woken' }); return; }
        t.state = 'blocked'; t.blocked = 'sleep'; t.until = until; t.sleepSeq = this.sleepSeq++;
        s.sleepers.push(t);
        // a deadline already passed ends at once, but behind the due sleeps with earlier deadlines
        this.endSleeps(k, cpu.cycles);
        return;
      }
      case 'wait':
        if (t.permit) { t.permit = false; this.makeRunnable(t, { kind: 'woken' }); return; }
        t.state = 'blocked'; t.blocked = 'wait';
        return;
      case 'lock': {
        const l = (req as { lock: unknown }).lock;
        if (!(l instanceof Lock) || l.owner !== this) { this.throwInto(t, new HostifError('lock: not a lock of this host')); return; }
        if (l.holder === null) { l.holder = t; this.makeRunnable(t, { kind: 'locked' }, true); return; }
        if (l.holder === t) { this.throwInto(t, new HostifError(`lock: thread '${t.name}' already holds lock '${l.name}'`)); return; }
        t.state = 'blocked'; t.blocked = 'lock';
        l.waiters.push(t);
        return;
      }
      case 'vmrun':
        t.pendingRun = req as VmrunRequest;
        t.state = 'runnable';
        s.runq.push(t);
        return;
      default:
        this.throwInto(t, new HostifError(`unknown request ${describe(req)}`));
    }
  }

  /**
   * Carries out a thread's 'vmrun'. True when the core now runs the guest. With other threads
   * runnable the run is cut after a slice (an INTR exit before the deadline), so they wait at
   * most that long.
   */
  private enterGuest(k: number, cpu: Cpu, t: Thread, others: boolean): boolean {
    const req = t.pendingRun!;
    t.pendingRun = null;
    const { vmcb, deadline, regs } = req;
    if (typeof deadline !== 'number' || Number.isNaN(deadline)) return this.refuse(t, `the deadline must be a cycle count, got ${String(deadline)}`);
    if (typeof vmcb !== 'number' || !Number.isInteger(vmcb) || (vmcb & 0xfff) !== 0 || !this.mem.isRam(vmcb)) {
      return this.refuse(t, `the VMCB at ${describe(vmcb)} must be a page of RAM`);
    }
    if (regs !== undefined && (!(regs instanceof Int32Array) || regs.length < 8)) return this.refuse(t, 'regs must be an Int32Array of 8 registers');
    const m32 = this.mem.i32, w = vmcb >>> 2; // a page of RAM (checked above): read as words
    if ((m32[w + (VMCB_INTERCEPTS3 >>> 2)] & IC3_INTR) === 0) {
      return this.refuse(t, `the VMCB at 0x${vmcb.toString(16)} does not intercept INTR (VMCB_INTERCEPTS3 bit 0): the host could not take the core back at the deadline`);
    }
    if ((m32[w + (VMCB_VINTR >>> 2)] & V_INTR_MASKING) === 0) {
      return this.refuse(t, `the VMCB at 0x${vmcb.toString(16)} does not set V_INTR_MASKING (VMCB_VINTR bit 24): a guest with IF clear would keep the host's INTR from exiting at the deadline`);
    }
    if (regs !== undefined) { // GUEST_REGS, written out
      const r = cpu.r;
      r[1] = regs[1]; r[2] = regs[2]; r[3] = regs[3]; r[5] = regs[5]; r[6] = regs[6]; r[7] = regs[7];
    }
    this.armTimer(k, others ? Math.min(deadline, cpu.cycles + this.slice) : deadline);
    let rc: number;
    try {
      rc = vmrun(cpu, vmcb);
    } catch (e) {
      this.throwInto(t, e);
      return false;
    }
    if (rc !== 0) { // VMEXIT_INVALID: the core stayed in host mode
      this.makeRunnable(t, { kind: 'vmexit', exitCode: rc, vmcb }, true);
      return false;
    }
    this.sched[k].guest = t;
    this.sched[k].guestReq = req;
    t.state = 'running';
    return true;
  }
}

// GUEST_REGS: the guest registers a 'vmrun' request carries, ECX EDX EBX EBP ESI EDI (1-3, 5-7;
// EAX and ESP are in the VMCB).

function isPow2(v: number): boolean {
  return v > 0 && Number.isInteger(Math.log2(v));
}

function describe(v: unknown): string {
  if (v instanceof Error) return v.message;
  if (typeof v === 'number') return Number.isInteger(v) && v >= 0 ? `0x${v.toString(16)}` : String(v);
  try { return JSON.stringify(v) ?? String(v); } catch { return String(v); }
}
