// Pipes (issue 5; kernel/fs/pipe.ts, syscalls/pipe.ts, io.ts): apps/native/pipes.c, natively and
// under the LWK: a pipe within one process (FIFO stat, reads of what was written, poll, O_NONBLOCK
// and EAGAIN, a capacity of 64 KiB, end of file once the last writer (a dup) closes, POLLHUP,
// pipe2's flags, ESPIPE), 300 KB between a parent and its child in odd-sized writes (blocking
// reads and writes through the scheduler), a writer with no reader killed by SIGPIPE, and poll,
// select and ppoll that wait for a child's write or until their timeout (simulated time).
import { describe, expect, it } from 'vitest';
import { canRunNatively, CI, runNatively, runOnLwk } from './lwk.ts';

const native = canRunNatively();

describe.skipIf(!native && !CI)('pipes.c: the LWK against this host', () => {
  it('this host runs the prebuilt i386 programs (CI requires it)', () => { expect(native).toBe(true); });
  for (const m of ['self', 'fork', 'epipe', 'wait']) {
    it(`pipes ${m}: same stdout and exit status`, () => {
      const n = runNatively('pipes', [m]);
      const l = runOnLwk('pipes', [m]);
      expect(l.stdout).toBe(n.stdout);
      expect(l.status).toBe(n.status);
      expect([...l.run.kernel.unknownSyscalls.keys()]).toEqual([]);
    });
  }
});

describe('pipes on the LWK', () => {
  it('a parent and child exchange 300 KB: the transfer blocks and wakes both sides, and the sums agree', () => {
    const l = runOnLwk('pipes', ['fork']);
    const m = /child: 300000 bytes sum (\d+), status 0; expected sum (\d+)/.exec(l.stdout);
    expect(m).not.toBeNull();
    expect(m![1]).toBe(m![2]);
    // the 64 KiB pipe fills: the writer blocked and was restarted at least once
    const writes = l.strace.filter((s) => s.startsWith('write(4,')).length;
    expect(writes).toBeGreaterThan(300000 / 20011);
  });

  it('on 2 cores (reader and writer on different cores, woken by IPI): the same bytes, no short writes', () => {
    const l = runOnLwk('pipes', ['fork'], { cores: 2 });
    expect(l.stdout).toMatch(/^short writes: 0\nchild: 300000 bytes sum (\d+), status 0; expected sum \1\n$/);
    // both cores made system calls: the child ran on core 1
    expect(l.run.kernel.percpu.map((pc) => pc.noise.totals().syscalls.count > 0)).toEqual([true, true]);
  });

  it('the capacity is 64 KiB and a full pipe answers EAGAIN to a non-blocking writer', () => {
    expect(runOnLwk('pipes', ['self']).stdout).toContain('capacity 65536 then Resource temporarily unavailable');
  });
});
