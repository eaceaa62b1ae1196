/**
 * A process (a thread group): an address space, its threads, its open files, and what the
 * system calls record (the break, signal dispositions, the robust-list pointer). The LWK's own
 * pids count from 1 (the first process is pid 1, the init of the machine); thread ids come from
 * the same counter, and a process's pid is its main thread's tid.
 *
 * Life cycle (kernel.ts): 'live' from spawn or fork until its last thread is gone; then
 * 'zombie' (its memory and files released, its status kept) until its parent reaps it with
 * wait4, when it leaves the kernel's table. An orphan's parent becomes init (pid 1).
 */
import type { AddressSpace } from '../mm/aspace.ts';
import type { Thread, ThreadOwner } from '../sched/thread.ts';
import { FileTable } from './files.ts';
import { SIGCHLD } from './signals.ts';

export type ProcessState = 'live' | 'zombie';

export class Process implements ThreadOwner {
  /** The live threads (a thread leaves the list when it exits). */
  readonly threads: Thread[] = [];
  files = FileTable.standard();
  /** The exit status (exit_group's value), set when the process starts to end; null while it runs. */
  exitCode: number | null = null;
  /** The signal that killed it (0 for a normal exit). */
  termSignal = 0;
  /** Signal actions as the program installed them (rt_sigaction): the raw struct, by signal. */
  readonly sigactions = new Map<number, Uint8Array>();
  /** set_robust_list (recorded; robust futexes are not walked at exit). */
  robustList = 0;
  robustListLen = 0;
  /** prctl(PR_SET_NAME): the thread name, at most 15 bytes. */
  comm: string;
  /** When it started (spawn, fork). */
  readonly startCycles: number;
  /** Cycles of the process's threads, summed when a thread leaves a core (times, getrusage). */
  cpuCycles = 0;
  /** The program's bytes: what execve("/proc/self/exe") runs again. */
  image: Uint8Array = new Uint8Array(0);
  state: ProcessState = 'live';
  /** Its threads are being ended (exit_group, a fatal signal): no new threads, no second status. */
  exiting = false;
  /** The signal its parent gets when it ends (clone's low byte: SIGCHLD for fork, 0 for none). */
  exitSignal = SIGCHLD;
  /** Threads of this process blocked in wait4 for a child to change state. */
  readonly childWaiters = new Set<Thread>();
  /** vfork / CLONE_VFORK: the parent's thread, asleep until this process execs or ends. */
  vforkParent: Thread | null = null;
  /** Process group and session (setpgid, setsid): inherited across fork. */
  pgid: number;
  sid: number;
  /** The working directory: a canonical absolute path in the file system (chdir, getcwd); fork copies it. */
  cwd = '/';
  /** Address spaces left by execve while killed threads of the old program still ran on other cores. */
  readonly staleAspaces: AddressSpace[] = [];

  constructor(
    readonly pid: number,
    /** The parent's pid (init's is 0); an orphan is given to init. */
    public ppid: number,
    /** The path it was started from (readlink of /proc/self/exe). */
    public exe: string,
    public argv: readonly string[],
    public aspace: AddressSpace,
    startCycles: number,
  ) {
    const base = exe.slice(exe.lastIndexOf('/') + 1);
    this.comm = base.slice(0, 15);
    this.startCycles = startCycles;
    this.pgid = pid;
    this.sid = pid;
  }

  get cr3(): number { return this.aspace.cr3; }

  /** The process's status as wait(2) reports it: exit code << 8, or the signal number. */
  get waitStatus(): number {
    return this.termSignal !== 0 ? this.termSignal & 0x7f : ((this.exitCode ?? 0) & 0xff) << 8;
  }

  /** fork: a copy of the dispositions (CLONE_SIGHAND threads share the process's); masks are per thread (Thread.sigmask). */
  copySignalsFrom(p: Process): void {
    for (const [sig, act] of p.sigactions) this.sigactions.set(sig, act.slice());
  }
}
