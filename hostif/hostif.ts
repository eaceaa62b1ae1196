/**
 * The host interface: everything the VMM asks of the host it is embedded in, as one table of
 * functions (the equivalent of Palacios' struct v3_os_hooks, plus its optional stream
 * interface). The VMM imports this file and requests.ts, never a host; a host (the LWK in
 * kernel/, the minimal hosted one in hosted.ts) implements Host and passes the contract suite in
 * test/hostif/contract.ts.
 *
 * Contexts. Host functions may be called from any *host context*: a host thread (between its
 * requests), a function run by callOnCore, an interrupt handler installed with hookInterrupt, a
 * stream's input callback, or the embedder itself before or between runs of the machine (the
 * "boot context", which counts as core 0 and has no current thread). None of them blocks:
 * waiting is a request a thread yields (requests.ts). Argument errors (a bad core number, a
 * block that was never allocated) are programming errors and throw RangeError / HostifError;
 * running out of a resource is a result the caller sees (null, false).
 *
 * Addresses. Host software addresses emulated memory physically, through `mem` (PhysMem): the
 * "virtual" address of a page for host software is its physical address. physToVirt and
 * virtToPhys are therefore the identity in this version of the interface; they exist so the
 * VMM's code reads like Palacios' and stays correct if a host ever maps memory elsewhere.
 *
 * Time. Each core has its own cycle clock (the TSC); cycles() is the calling core's.
 */
import type { PhysMem } from '../hw/mem/physmem.ts';
import type { HostLock, HostThread } from './requests.ts';

export type { HostLock, HostRequest, HostResume, HostThread } from './requests.ts';

/** The interface's version: a host with another major, or a lower minor, is refused. */
export const HOSTIF_VERSION: HostifVersion = Object.freeze({ major: 1, minor: 0 });

export interface HostifVersion {
  readonly major: number;
  readonly minor: number;
}

export const PAGE_SIZE = 4096;

/** Vectors a VMM may hook (hookInterrupt); a host may still refuse some (it returns false). */
export const HOOKABLE_VECTOR_FIRST = 0x20;
export const HOOKABLE_VECTOR_LAST = 0xef;

/** A programming error in a use of the host interface (a bad request, an unlock by a non-holder). */
export class HostifError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HostifError';
  }
}

export interface AllocOptions {
  /** Alignment of the block's base in bytes: a power of two, at least PAGE_SIZE (the default). */
  align?: number;
  /** NUMA node hint: a node number below numaNodes(), or -1 (the default) for any node. */
  node?: number;
}

export interface MemStats {
  /** Pages the host offers to allocPages in all. */
  totalPages: number;
  /** Pages not allocated now. */
  freePages: number;
}

export type HostThreadState = 'runnable' | 'running' | 'blocked' | 'done' | 'failed';

/** A host thread as its creator sees it. */
export interface HostThreadHandle {
  readonly id: number;
  readonly name: string;
  /** The core it runs on (threads stay where they were started). */
  readonly core: number;
  readonly state: HostThreadState;
  /** What the thread threw when it failed (state 'failed'). */
  readonly error: unknown;
}

export interface CallOnCoreOptions {
  /** A thread to wake (Host.wake) once the function has run: the way to wait for a call. */
  notify?: HostThreadHandle;
}

/** The completion of a callOnCore. */
export interface HostCall {
  /** True once the function has run. */
  readonly done: boolean;
}

/** A host interrupt handler: runs in host context on the core that took the interrupt. */
export type HostInterruptHandler = (vector: number, core: number) => void;

/** A byte stream to the outside world (a guest's serial port reaches it through one). */
export interface HostStream {
  readonly name: string;
  /** Sends bytes; returns how many the outside accepted now (the rest are not sent). */
  write(bytes: Uint8Array): number;
  /** Polls: up to `max` bytes of input buffered now (empty when there is none). */
  read(max: number): Uint8Array;
  /** True once the outside closed its input and all of it has been read. */
  eof(): boolean;
  /**
   * Delivers input as it arrives, in order, each byte once, in host context (as an interrupt
   * handler: it must not block); `onEnd` once when the input ends. null goes back to polling.
   */
  onInput(cb: ((bytes: Uint8Array) => void) | null, onEnd?: () => void): void;
  close(): void;
}

/** The host interface (Palacios: struct v3_os_hooks). */
export interface Host {
  readonly version: HostifVersion;
  /** The host's name, for logs ("lwk", "hosted"). */
  readonly name: string;

  // ---- the log
  /** One line to the host's log (the kernel console); never to a guest's or program's stdout. */
  print(line: string): void;

  // ---- memory
  /** Emulated physical memory, which host software addresses physically (see above). */
  readonly mem: PhysMem;
  /**
   * A physically contiguous block of `count` pages (count >= 1, an integer), aligned as asked,
   * inside usable RAM, overlapping no other live block and nothing the host keeps for itself.
   * null when no such block is free: nothing is allocated then (never a partial block). Its
   * contents are unspecified.
   */
  allocPages(count: number, opts?: AllocOptions): number | null;
  /** Frees a whole block: `base` and `count` exactly as allocPages returned and was asked. */
  freePages(base: number, count: number): void;
  memStats(): MemStats;
  /** NUMA nodes (at least 1). */
  numaNodes(): number;
  /** Identity in this version (see above). */
  physToVirt(pa: number): number;
  virtToPhys(va: number): number;

  // ---- cores and time
  coreCount(): number;
  /** The core the caller runs on (0 in the boot context). */
  currentCore(): number;
  cyclesPerSecond(): number;
  /** The calling core's cycle clock. */
  cycles(): number;
  /**
   * Charges `cycles` of host software work (the VMM's handler costs, from its cost table) to
   * the calling core's clock; nothing in the boot context. Optional: a host without it leaves
   * the VMM's own work free of charge.
   */
  spend?(cycles: number): void;

  // ---- threads (requests.ts; README "The requests")
  /** Starts `body` on `core`, where it stays; it first runs when that core next schedules. */
  startThread(core: number, body: HostThread, name?: string): HostThreadHandle;
  /** The calling thread, null outside threads. */
  currentThread(): HostThreadHandle | null;
  /**
   * Wakes a thread: a 'sleep' or 'wait' ends with {kind:'woken'}; a thread that is not
   * sleeping or waiting keeps the wake-up, and its next 'sleep' or 'wait' returns 'woken' at
   * once (wakes do not count up: one is kept). A finished thread ignores it.
   */
  wake(thread: HostThreadHandle): void;

  // ---- other cores
  /**
   * Runs `fn` exactly once on `core`, in host context there (no current thread; it must not
   * block). On the calling core itself it runs before callOnCore returns; on another core soon
   * after (an IPI), as an interrupt handler would.
   */
  callOnCore(core: number, fn: () => void, opts?: CallOnCoreOptions): HostCall;
  /**
   * Sends an interrupt to `core` (an IPI): a guest running there takes an INTR exit. Without a
   * vector the host's own "kick" vector is used, which the host acknowledges itself; with a
   * hooked vector its handler runs there.
   */
  interruptCore(core: number, vector?: number): void;

  // ---- host interrupts
  /**
   * Calls `handler` when `vector` arrives on any core. The host does not acknowledge a hooked
   * vector: the VMM calls ackInterrupt on that core when it is done (until then the vector, and
   * every lower-priority one, stays blocked there, as with any in-service interrupt). Returns
   * false when the vector is not available (outside HOOKABLE_VECTOR_FIRST..LAST, used by the
   * host, or already hooked).
   */
  hookInterrupt(vector: number, handler: HostInterruptHandler): boolean;
  unhookInterrupt(vector: number): void;
  /** End of interrupt for a hooked vector, on the core that took it (the caller's). */
  ackInterrupt(vector: number): void;

  // ---- the outside world
  /** A named byte stream (the host decides which names exist), or null. */
  openStream(name: string): HostStream | null;

  // ---- locks
  createLock(name: string): HostLock;
  /** Releases a lock the calling thread holds; the longest waiter gets it next. */
  unlock(lock: HostLock): void;
}

/** True when a host of version `v` offers what this VMM (built against HOSTIF_VERSION) needs. */
export function hostifCompatible(v: HostifVersion, need: HostifVersion = HOSTIF_VERSION): boolean {
  return v.major === need.major && v.minor >= need.minor;
}

/** The VMM's check when it is given a host (Palacios' Init_V3): throws on an incompatible one. */
export function checkHostifVersion(host: Pick<Host, 'version' | 'name'>, need: HostifVersion = HOSTIF_VERSION): void {
  const v = host.version;
  if (!hostifCompatible(v, need)) {
    throw new HostifError(`host '${host.name}' implements host interface ${v.major}.${v.minor}; this VMM needs ${need.major}.${need.minor} (same major, minor at least ${need.minor})`);
  }
}
