// Threads (issue 5: clone for threads, futex, set_tid_address): apps/native/threads (pthreads
// with __thread data, a mutex, a condition variable, pthread_join through CLONE_CHILD_CLEARTID,
// exit of one thread against exit_group, execve from a thread while others run, munmap of a page another core's thread reads) and apps/native/futex (each futex operation) run
// natively and on the LWK on 1, 2 and 4 cores with the same stdout and exit status. On the LWK:
// threads spread over the cores, nothing is left waiting, every page goes back to pmem.
import { describe, expect, it } from 'vitest';
import { VEC_RESCHED } from '../../kernel/sched/scheduler.ts';
import { SYSCALL_NAMES } from '../../kernel/syscalls/numbers.ts';
import { SYSCALLS } from '../../kernel/syscalls/table.ts';
import type { SyscallDef } from '../../kernel/syscalls/types.ts';
import { canRunNatively, CI, runNatively, runOnLwk, type LwkOutcome } from './lwk.ts';

const native = canRunNatively();
/** A bound on every run: a thread that never stops would otherwise run until the test times out. */
const MAX_CYCLES = 20_000_000_000;

function clean(l: LwkOutcome): void {
  const k = l.run.kernel;
  expect(l.run.reason).toBe('exit');
  expect([...k.processes.keys()]).toEqual([]);
  expect(k.pmem.bytesOf('user')).toBe(0);
  expect(k.futexes.waiting).toBe(0);
  expect(k.unknownSyscalls.size).toBe(0);
}

const CASES: { args: string[]; cores: number[] }[] = [
  { args: [], cores: [1, 2, 4] },
  { args: ['detach'], cores: [1, 2] },
  { args: ['group'], cores: [1, 4] },
  { args: ['exec'], cores: [1, 4] },
  { args: ['unmap'], cores: [2] }, // the TLB shootdown: the reader's core must drop the page
];

describe.skipIf(!native && !CI)('threads: the LWK against this host', () => {
  it('this host runs the prebuilt i386 programs (CI requires it)', () => {
    expect(native).toBe(true);
  });
  for (const c of CASES) {
    it(`threads ${c.args.join(' ')}: same stdout and exit status natively and on ${c.cores.join(', ')} cores`, () => {
      const n = runNatively('threads', c.args);
      for (const cores of c.cores) {
        const l = runOnLwk('threads', c.args, { cores, maxCycles: MAX_CYCLES });
        expect(l.stdout, `${cores} cores`).toBe(n.stdout);
        expect(l.status, `${cores} cores`).toBe(n.status);
        clean(l);
      }
    });
  }
  it('futex: every operation gives the same results natively and on 1 and 2 cores', () => {
    const n = runNatively('futex');
    expect(n.status).toBe(0);
    for (const cores of [1, 2]) {
      const l = runOnLwk('futex', [], { cores, maxCycles: MAX_CYCLES });
      expect(l.stdout, `${cores} cores`).toBe(n.stdout);
      expect(l.status).toBe(0);
      clean(l);
    }
  });
});

describe('threads on the LWK', () => {
  it('pthread_create is clone3 with the thread flags; each thread has its own tid; join wakes through the cleared tid', () => {
    const l = runOnLwk('threads', [], { cores: 2, maxCycles: MAX_CYCLES });
    expect(l.status).toBe(0);
    const clones = l.strace.filter((s) => s.startsWith('clone3('));
    expect(clones).toHaveLength(6);
    const tids = clones.map((s) => Number(s.split(' = ')[1]));
    expect(new Set(tids).size).toBe(6);
    expect(tids.every((t) => t > 1)).toBe(true);
    expect(l.strace.filter((s) => s.startsWith('exit('))).toHaveLength(6); // each thread ends alone
    expect(l.strace.some((s) => s.startsWith('futex('))).toBe(true);
    expect(l.stdout).toContain('counter 20000 (expected 20000)\n');
  });

  it('with clone3 answering -ENOSYS, glibc falls back to clone (i386 argument order) with the same result', () => {
    const table = SYSCALLS as (SyscallDef | undefined)[];
    const nr = SYSCALL_NAMES.indexOf('clone3');
    const saved = table[nr];
    table[nr] = { name: 'clone3', args: 'pu', fn: () => -38 };
    try {
      const l = runOnLwk('threads', [], { cores: 2, maxCycles: MAX_CYCLES });
      expect(l.status).toBe(0);
      expect(l.stdout).toContain('worker 3: returned 109, tid differs from pid: yes, tls intact: yes\n');
      expect(l.stdout).toContain('condvar queue: sum 8925 items 50\n');
      const clones = l.strace.filter((s) => s.startsWith('clone('));
      expect(clones).toHaveLength(6);
      expect(clones.every((s) => /^clone\(0x3d0f00, /.test(s))).toBe(true); // VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
      clean(l);
    } finally {
      table[nr] = saved;
    }
  });

  it('new threads go to the least-loaded core: with 4 cores every core runs system calls of the program', () => {
    const l = runOnLwk('threads', [], { cores: 4, maxCycles: MAX_CYCLES });
    expect(l.status).toBe(0);
    for (let core = 0; core < 4; core++) {
      expect(l.run.kernel.percpu[core].noise.totals().syscalls.count, `core ${core}`).toBeGreaterThan(0);
    }
    clean(l);
  });

  it('exit_group stops threads that are running on other cores (a reschedule IPI, then they leave)', () => {
    const l = runOnLwk('threads', ['group'], { cores: 4, maxCycles: MAX_CYCLES });
    expect(l.status).toBe(5);
    expect(l.stdout).toBe('ender: three threads spin, exit(5)\n');
    const k = l.run.kernel;
    let ipis = 0;
    for (let core = 1; core < 4; core++) ipis += k.percpu[core].noise.interrupts.get(VEC_RESCHED)?.count ?? 0;
    expect(ipis).toBeGreaterThanOrEqual(2); // at least the spinners not on the exiting thread's core
    clean(l);
  });

  it('the last thread\'s exit ends the process with its status', () => {
    const l = runOnLwk('threads', ['detach'], { maxCycles: MAX_CYCLES });
    expect(l.status).toBe(3);
    expect(l.strace.find((s) => s.startsWith('exit('))).toBe('exit(0) = ?'); // the main thread's pthread_exit
    expect(l.strace[l.strace.length - 1]).toBe('exit_group(3) = ?');
  });

  it('runs are deterministic: the same program twice gives the same cycles on every core', () => {
    const a = runOnLwk('threads', [], { cores: 2, maxCycles: MAX_CYCLES });
    const b = runOnLwk('threads', [], { cores: 2, maxCycles: MAX_CYCLES });
    expect(b.run.machine.cores.map((c) => c.cycles)).toEqual(a.run.machine.cores.map((c) => c.cycles));
    expect(b.strace).toEqual(a.strace);
  });
});
