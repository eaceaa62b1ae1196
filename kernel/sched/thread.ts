/**
 * Threads (DESIGN.md, "The hardware line and the execution model"). A process's thread is
 * plain saved register state: its registers are loaded into the core when it runs and saved
 * when it stops running. A kernel thread is code: a generator that yields hostif requests (sleep
 * until a deadline, wait until woken, yield the core) and is resumed with their result.
 */
import type { HostResume, HostThread } from '../../hostif/requests.ts';
import type { Descriptor } from '../gdt.ts';
import { EMPTY } from '../gdt.ts';

/** A kernel thread's code: a generator of hostif requests (hostif/requests.ts). */
export type KernelThreadBody = HostThread;

export type ThreadState = 'runnable' | 'running' | 'sleeping' | 'dead';

/** The user-mode register state of a process's thread while it is not on a core. */
export class UserContext {
  /** EAX ECX EDX EBX ESP EBP ESI EDI. */
  readonly regs = new Int32Array(8);
  eip = 0;
  eflags = 0x202;
  /** Segment selectors, in the CPU's order (ES CS SS DS FS GS). */
  readonly sel = new Int32Array(6);
  /** The thread's TLS descriptors (GDT entries 6-8). */
  readonly tls: Descriptor[] = [EMPTY, EMPTY, EMPTY];
}

/** Implemented by the process layer: what the scheduler needs of a thread's owner. */
export interface ThreadOwner {
  readonly pid: number;
  /** The physical address of the page directory to load into CR3. */
  readonly cr3: number;
}

let nextKernelTid = 1;

export class Thread {
  state: ThreadState = 'runnable';
  /** The core the thread runs on (threads are pinned unless moved). */
  core: number;
  /** The cycle at which a sleeping thread wakes (Infinity: only when woken). */
  wakeAt = Infinity;
  /** What a kernel thread is resumed with next. */
  resume: HostResume = { kind: 'start' };
  /** A wake-up that came while the thread was not asleep: its next sleep or wait ends at once (hostif). */
  pendingWake = false;
  /** A user thread blocked in a system call: what to finish when it runs again (returns EAX). */
  onResume: (() => number) | null = null;
  /** Cycles the thread has run (charged at each switch). */
  runCycles = 0;
  /** When it last started running on its core. */
  lastStart = 0;

  private constructor(
    readonly tid: number,
    readonly name: string,
    core: number,
    readonly user: UserContext | null,
    readonly owner: ThreadOwner | null,
    readonly body: KernelThreadBody | null,
  ) {
    this.core = core;
  }

  static user(tid: number, name: string, core: number, owner: ThreadOwner, ctx: UserContext): Thread {
    return new Thread(tid, name, core, ctx, owner, null);
  }

  /** A kernel thread; its tids count down from -1 so they never meet a process's. */
  static kernel(name: string, core: number, body: KernelThreadBody): Thread {
    return new Thread(-(nextKernelTid++), name, core, null, null, body);
  }

  get isKernel(): boolean { return this.body !== null; }
}
