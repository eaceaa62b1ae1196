/**
 * Threads (DESIGN.md, "The hardware line and the execution model"). A process's thread is
 * plain saved register state: its registers are loaded into the core when it runs and saved
 * when it stops running. A kernel thread is code: a generator that yields hostif requests (sleep
 * until a deadline, wait until woken, yield the core) and is resumed with their result.
 */
import type { HostRequest, HostResume, HostThread } from '../../hostif/requests.ts';
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

/**
 * What a blocked system call's onResume returns to run the call again from the start (Linux's
 * -ERESTARTNOINTR): the scheduler moves EIP back over the 2-byte INT 0x80 or SYSENTER; EAX still
 * holds the call's number, the other registers its arguments.
 */
export const RESTART_SYSCALL = -513;

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
  /** A kernel thread's 'vmrun' waiting for its turn on the core (carried out by schedule()). */
  pendingRun: Extract<HostRequest, { kind: 'vmrun' }> | null = null;
  /** An error to throw into a kernel thread when it next runs (a request it may not make), or null. */
  throwNext: { error: unknown } | null = null;
  /** A kernel thread that threw: its error (its state is then 'dead'). */
  failure: { error: unknown } | null = null;
  /**
   * A user thread blocked in a system call: what to finish when it runs again (returns EAX, or
   * RESTART_SYSCALL to execute the call again: EIP goes back to the INT 0x80 / SYSENTER).
   */
  onResume: (() => number) | null = null;
  /**
   * The thread must die (exit_group, a fatal signal, another thread's execve) but was running on
   * another core when that was decided: it leaves at that core's next trap (the reschedule IPI
   * sent then), as Linux's zapped threads leave on their way back to user mode.
   */
  killed = false;
  /**
   * The signals this thread blocks (rt_sigprocmask), bit n-1 for signal n: per thread, as on
   * Linux; a new thread or process starts with its creator's (syscalls/clone.ts).
   */
  sigmask = 0n;
  /** set_tid_address / CLONE_CHILD_CLEARTID: zeroed and FUTEX_WAKEd when the thread exits (0: none). */
  clearChildTid = 0;
  /** Cycles the thread has run (charged at each switch). */
  runCycles = 0;
  /** When it last started running on its core. */
  lastStart = 0;

  private constructor(
    /** The thread id (a process's main thread has tid = pid; execve by another thread takes the pid). */
    public tid: number,
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
