// Processes (issue 5, "Processes, so that a shell works"): fork, vfork, execve, wait4/waitpid,
// zombies and reparenting, SIGCHLD. apps/native/procs runs natively and on the LWK (one and
// two cores) with the same stdout and exit status; on the LWK every child is reaped and every
// page of user memory is back in pmem when the run ends.
import { describe, expect, it } from 'vitest';
import { PROT_READ, PROT_WRITE } from '../../kernel/mm/aspace.ts';
import { canRunNatively, CI, runNatively, runOnLwk, type LwkOutcome } from './lwk.ts';

const native = canRunNatively();

/** What every run must leave behind on the LWK: no process, no user memory, nobody on a futex. */
function clean(l: LwkOutcome): void {
  const k = l.run.kernel;
  expect([...k.processes.keys()]).toEqual([]);
  expect(k.pmem.bytesOf('user')).toBe(0);
  expect(k.futexes.waiting).toBe(0);
  expect(l.run.kernel.unknownSyscalls.size).toBe(0);
}

const MODES = ['fork', 'any', 'exec', 'vfork', 'wnohang', 'signal', 'memory', 'pipe', 'sigchld', 'waitid'];

describe.skipIf(!native && !CI)('procs: the LWK against this host', () => {
  it('this host runs the prebuilt i386 programs (CI requires it)', () => {
    expect(native).toBe(true);
  });
  for (const mode of MODES) {
    it(`procs ${mode}: same stdout and exit status natively and on 1 and 2 cores`, () => {
      const n = runNatively('procs', [mode]);
      expect(n.status).toBe(0);
      for (const cores of [1, 2]) {
        const l = runOnLwk('procs', [mode], { cores });
        expect(l.stdout, `${cores} cores`).toBe(n.stdout);
        expect(l.status).toBe(n.status);
        clean(l);
      }
    });
  }
});

describe('processes on the LWK', () => {
  it('fork: each child has its own pid, the parent gets it, the child 0; getppid names the parent', () => {
    const l = runOnLwk('procs', ['fork'], { cores: 2 });
    expect(l.status).toBe(0);
    const forks = l.strace.filter((s) => s.startsWith('clone(') || s.startsWith('fork('));
    expect(forks.length).toBe(4);
    const pids = forks.map((s) => Number(s.split(' = ')[1]));
    expect(new Set(pids).size).toBe(4);
    expect(pids.every((p) => p > 1)).toBe(true);
    expect(l.stdout).toContain('child 3: parent is the forker\nchild 3: exited 10\n');
    clean(l);
  });

  it('wait4 blocks until the child ends, and WNOHANG does not', () => {
    const l = runOnLwk('procs', ['wnohang']);
    const waits = l.strace.filter((s) => s.startsWith('wait4('));
    expect(waits[0]).toMatch(/, 0x1, NULL\) = 0$/); // WNOHANG while the child runs
    expect(waits[1]).toMatch(/, 0x0, NULL\) = \? ERESTARTNOINTR/); // asleep, then woken by the child's exit
    expect(waits[2]).toMatch(/, 0x0, NULL\) = \d+$/);
    expect(waits[3]).toMatch(/= -1 ECHILD/);
    expect(l.stdout).toContain('child: exited 9');
  });

  it('vfork: the parent sleeps until the child exits, and the child runs in the parent\'s memory', () => {
    const shared: boolean[] = [];
    const l = runOnLwk('procs', ['vfork'], {
      beforeRun: (k) => {
        // the child's address space is the parent's (no copy), until it exits
        const orig = k.retainAspace.bind(k);
        k.retainAspace = (as) => { orig(as); shared.push(as === k.processes.get(1)?.aspace); };
      },
    });
    expect(l.stdout).toBe('vfork child: running while the parent waits\nvfork parent: resumed after the child\nvfork child: exited 5\n');
    expect(shared).toEqual([true]);
    expect(l.strace.some((s) => s.startsWith('vfork() = '))).toBe(true);
    clean(l);
  });

  it('execve replaces the program: /proc/self/exe names it, argv/envp are the new ones, the old memory is freed', () => {
    const l = runOnLwk('procs', ['exec'], { cores: 2 });
    expect(l.status).toBe(0);
    expect(l.stdout).toContain('exec of a missing file: ENOENT yes, still running\n');
    expect(l.stdout).toContain('  argv[2] "first arg"\n  argv[3] ""\n');
    expect(l.stdout).toContain('  fd 6 (F_DUPFD_CLOEXEC): closed\n');
    expect(l.stdout).toContain('exec\'d child: exited 7\n');
    expect(l.strace.filter((s) => s.startsWith('execve(')).map((s) => s.split(' = ')[1])).toEqual(['-1 ENOENT (No such file or directory)', '0']);
    clean(l);
  });

  it('an orphan is adopted by init (pid 1), which reaps it', () => {
    const l = runOnLwk('procs', ['orphan'], { cores: 2 });
    expect(l.status).toBe(0);
    expect(l.stdout).toBe('grandchild: parent is now 1\nchild: exited 0\nthe adopted grandchild: exited 6\n');
    clean(l);
  });

  it('a child killed by a signal is reported with the signal number (no core-dump bit)', () => {
    const l = runOnLwk('procs', ['signal']);
    expect(l.stdout).toBe('faulting child: killed by signal 11\n');
    expect(l.strace.filter((s) => s.startsWith('wait4(')).pop()).toMatch(/= \d+$/);
    expect(l.log).toMatch(/SIGSEGV/);
  });

  it('children are placed on the least-loaded core: with two cores, system calls happen on both', () => {
    const l = runOnLwk('procs', ['pipe'], { cores: 2 });
    expect(l.status).toBe(0);
    const k = l.run.kernel;
    expect(k.percpu[0].noise.totals().syscalls.count).toBeGreaterThan(0);
    expect(k.percpu[1].noise.totals().syscalls.count).toBeGreaterThan(0);
  });

  it('fork copies memory eagerly: the child\'s pages are new physical memory with the same contents', () => {
    const seen: { parent: number; child: number; same: boolean }[] = [];
    runOnLwk('procs', ['memory'], {
      beforeRun: (k) => {
        const orig = k.hookInvalidate.bind(k);
        k.hookInvalidate = (as) => {
          orig(as);
          const parent = k.processes.get(1);
          if (parent === undefined || parent.aspace === as) return;
          const r = parent.aspace.regions().find((x) => x.kind === 'data' && (x.prot & (PROT_READ | PROT_WRITE)) === 3)!;
          const a = parent.aspace.copyin({ cycles: 0 }, r.start, 64), b = as.copyin({ cycles: 0 }, r.start, 64);
          seen.push({ parent: parent.aspace.translate(r.start), child: as.translate(r.start), same: a.ok && b.ok && Buffer.from(a.value).equals(Buffer.from(b.value)) });
        };
      },
    });
    expect(seen.length).toBe(1);
    expect(seen[0].child).not.toBe(seen[0].parent);
    expect(seen[0].same).toBe(true);
  });
});
