/**
 * A process: an address space, its threads, its open files, and what the system calls record
 * (the break, signal dispositions, the TLS and robust-list pointers). The LWK's own pids count
 * from 1 (the first process is pid 1, the init of the machine).
 */
import type { AddressSpace } from '../mm/aspace.ts';
import type { Thread, ThreadOwner } from '../sched/thread.ts';
import { FileTable } from './files.ts';

export class Process implements ThreadOwner {
  readonly threads: Thread[] = [];
  files = FileTable.standard();
  /** The exit status (exit_group's value), set when the process ends; null while it runs. */
  exitCode: number | null = null;
  /** The signal that killed it (0 for a normal exit). */
  termSignal = 0;
  /** Signal actions as the program installed them (rt_sigaction): the raw struct, by signal. */
  readonly sigactions = new Map<number, Uint8Array>();
  /** The blocked-signal mask (rt_sigprocmask), bit n-1 for signal n. */
  sigmask = 0n;
  /** set_tid_address, set_robust_list. */
  clearChildTid = 0;
  robustList = 0;
  robustListLen = 0;
  /** prctl(PR_SET_NAME): the thread name, at most 15 bytes. */
  comm: string;
  readonly startCycles: number;
  /** Cycles of the process's threads, summed when a thread leaves a core (times, getrusage). */
  cpuCycles = 0;

  constructor(
    readonly pid: number,
    readonly ppid: number,
    /** The path it was started from (readlink of /proc/self/exe). */
    readonly exe: string,
    readonly argv: readonly string[],
    readonly aspace: AddressSpace,
    startCycles: number,
  ) {
    const base = exe.slice(exe.lastIndexOf('/') + 1);
    this.comm = base.slice(0, 15);
    this.startCycles = startCycles;
  }

  get cr3(): number { return this.aspace.cr3; }

  /** The process's status as wait(2) reports it: exit code << 8, or the signal number. */
  get waitStatus(): number {
    return this.termSignal !== 0 ? this.termSignal & 0x7f : ((this.exitCode ?? 0) & 0xff) << 8;
  }
}
