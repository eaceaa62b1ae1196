// Signal delivery with user handlers (issue 5; kernel/proc/signals.ts, syscalls/signal.ts):
// apps/native/signals.c, run natively and under the LWK, must print the same and end with the
// same status: handlers with and without SA_SIGINFO (the siginfo and ucontext they get, the
// frame's layout and alignment), sigreturn restoring the registers (a computation in registers
// across signals), masks and pending signals, nested delivery, SA_RESETHAND/SA_NODEFER,
// SA_RESTART against EINTR, a handled SIGSEGV, SIGPIPE, SIGCHLD, a restorer-less action, and
// default actions (term, core, ignore; `run` exits 128 + the signal); per-thread masks and
// pending sets (a new thread starts with its creator's mask, kill goes to a thread that does not
// block the signal, tgkill to the thread named), and the waits a handler interrupts (nanosleep,
// clock_nanosleep, futex: EINTR, the remaining time, SA_RESTART's rules), on 1 and 2 cores.
// Also the strace of a delivery (the handler's return goes through rt_sigreturn) and the
// delivery's cycles in the per-core noise accounting.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { kernelCosts } from '../../kernel/costs.ts';
import { SIGUSR1 } from '../../kernel/proc/signals.ts';
import { canRunNatively, CI, FIXED_ENV, le32, programPath, runImage, runOnLwk, TINY_CODE, TINY_DATA, tinyElf, X } from './lwk.ts';

/** A native run; a signal's status is 128 + its number, as `run` and shells report it. */
function runNatively(name: string, args: string[]): { stdout: string; status: number } {
  const r = spawnSync(programPath(name), args, { env: FIXED_ENV, encoding: 'latin1', timeout: 30_000 });
  if (r.error !== undefined) throw r.error;
  return { stdout: r.stdout, status: r.signal !== null ? 128 + constants.signals[r.signal] : r.status ?? -1 };
}

const native = canRunNatively();
/** Modes with threads or timed waits: also run on 2 cores (threads then run on both). */
const THREAD_MODES = ['thread-mask', 'thread-kill', 'thread-tgkill', 'sleep', 'futex'];
const MODES = ['handler', 'siginfo', 'mask', 'nested', 'resethand', 'ignore', 'sigpipe', 'segv', 'frame', 'norestorer',
  'restart', 'eintr', 'child', 'sigchld', 'term', 'kill', 'usr1', ...THREAD_MODES];

describe.skipIf(!native && !CI)('signals.c: the LWK against this host', () => {
  it('this host runs the prebuilt i386 programs (CI requires it)', () => { expect(native).toBe(true); });
  for (const m of MODES) {
    it(`signals ${m}: same stdout and exit status`, () => {
      const n = runNatively('signals', [m]);
      const l = runOnLwk('signals', [m]);
      expect(l.stdout).toBe(n.stdout);
      expect(l.status).toBe(n.status);
      expect([...l.run.kernel.unknownSyscalls.keys()]).toEqual([]);
    });
  }
  for (const m of THREAD_MODES) {
    it(`signals ${m} on 2 cores: same stdout and exit status`, () => {
      const n = runNatively('signals', [m]);
      const l = runOnLwk('signals', [m], { cores: 2 });
      expect(l.stdout).toBe(n.stdout);
      expect(l.status).toBe(n.status);
    });
  }
});

describe('signal delivery on the LWK', () => {
  it('a handler runs on the way back from kill and returns through rt_sigreturn (glibc\'s restorer)', () => {
    const l = runOnLwk('signals', ['siginfo']);
    expect(l.status).toBe(0);
    const i = l.strace.findIndex((s) => s.startsWith('rt_sigaction(10,'));
    expect(i).toBeGreaterThanOrEqual(0);
    const after = l.strace.slice(i);
    const kill = after.findIndex((s) => /^(tgkill|kill)\(/.test(s));
    const write = after.findIndex((s) => s.startsWith('write(1,'));
    expect(kill).toBeGreaterThanOrEqual(0);
    // between the kill and the next printf: the handler (its getpid), then its return through rt_sigreturn
    expect(after.slice(kill + 1, write)).toEqual([
      '--- SIGUSR1 {si_signo=SIGUSR1, si_code=-6, si_pid=1} ---', 'getpid() = 1', expect.stringMatching(/^rt_sigreturn\(\) = 0$/),
    ]);
    expect(l.stdout).toContain('signo 10 code -6 pid-ok 1 saved-mask-has-usr2 1 count 1');
  });

  it('a fatal signal to process 1 is `run`\'s 128 + signo, with a line in the kernel log', () => {
    const l = runOnLwk('signals', ['term']);
    expect(l.status).toBe(143);
    expect(l.log).toMatch(/init \(pid 1\) killed by SIGTERM/);
    expect(runOnLwk('signals', ['sigpipe']).status).toBe(141);
  });

  it('per-thread masks: what each thread of thread-mask/thread-tgkill sees (the LWK on its own)', () => {
    const m = runOnLwk('signals', ['thread-mask']);
    expect(m.stdout).toContain('clone: ok 1, the new thread started with usr2 blocked 1, hup 0\n');
    expect(m.stdout).toContain('main blocks hup 0');
    expect(m.stdout).toContain('main blocks term 0');
    expect(m.stdout).toContain('fork from a thread: the child blocks usr1 1');
    const t = runOnLwk('signals', ['thread-tgkill'], { cores: 2 });
    expect(t.stdout).toContain('usr2 pending for the worker 1, for main 0');
  });

  it('a process-directed signal reaches a thread spinning on another core (a reschedule IPI)', () => {
    const l = runOnLwk('signals', ['thread-kill'], { cores: 2 });
    // the spinner makes no system call and is alone on its core (no timer): only the IPI can stop it
    expect(l.stdout).toContain('kill: taken by the spinning thread 1, by main 0');
  });

  it('nanosleep and futex waits end with EINTR at the signal, in simulated time', () => {
    const l = runOnLwk('signals', ['sleep']);
    expect(l.stdout).toContain('nanosleep -1 (Interrupted system call), rem 9.x s 1, handler count 1');
    // the call ends with EINTR, then the handler runs on the way out
    const i = l.strace.findIndex((s) => /^clock_nanosleep\S*\(.*\) = -1 EINTR/.test(s));
    expect(i).toBeGreaterThanOrEqual(0);
    expect(l.strace[i + 1]).toMatch(/^--- SIGUSR1 /);
    // the 10 s sleeps ended at the signal: the whole run takes well under 10 s of simulated time
    expect(l.run.machine.stats().cycles).toBeLessThan(10 * l.run.kernel.info.hz);
    const f = runOnLwk('signals', ['futex']);
    expect(f.stdout).toContain('SA_RESTART: FUTEX_WAIT 0 (ok), handler count 2, word 1');
    expect(f.stdout).toContain('SA_RESTART: FUTEX_WAIT with a timeout -1 (Interrupted system call)');
    expect(f.run.kernel.futexes.waiting).toBe(0);
  });

  it('delivery cycles are counted in the per-core noise accounting, by signal', () => {
    const l = runOnLwk('signals', ['handler']);
    expect(l.status).toBe(0);
    const tallies = l.run.kernel.percpu.map((pc) => pc.noise.signals.get(SIGUSR1)).filter((t) => t !== undefined);
    const count = tallies.reduce((n, t) => n + t.count, 0);
    const cycles = tallies.reduce((n, t) => n + t.cycles, 0);
    expect(count).toBe(9); // 8 raise() in regs_across, one kill()
    // each delivery: at least the frame set-up's fixed cost, plus the frame's words written
    expect(cycles).toBeGreaterThan(9 * kernelCosts.signalDelivery.cycles);
    const totals = l.run.kernel.percpu.map((pc) => pc.noise.totals().signals);
    expect(totals.reduce((n, t) => n + t.count, 0)).toBe(9);
    expect(totals.reduce((n, t) => n + t.cycles, 0)).toBe(cycles);
  });

  it('a read interrupted without SA_RESTART returns EINTR; with it the read completes', () => {
    expect(runOnLwk('signals', ['eintr']).stdout).toContain('read -1 (Interrupted system call), handler count 1');
    expect(runOnLwk('signals', ['restart']).stdout).toContain('read 4 (ok), handler count 1');
  });
});

describe('signal frames, by hand', () => {
  /**
   * Machine code: a SIGILL handler (SA_SIGINFO|SA_RESTORER) is installed; the program loads
   * known values into every general register and CF, executes UD2; the handler moves the saved
   * EIP past the UD2 in its ucontext, clobbers every register, and returns to the restorer,
   * which calls rt_sigreturn. The program then checks that every register and CF came back.
   */
  function program(): Uint8Array {
    const code: number[] = [];
    const labels = new Map<string, number>();
    const fix: [number, string][] = [];
    const at = (l: string): void => { labels.set(l, code.length); };
    const jcc = (op: number, l: string): void => { code.push(op, 0); fix.push([code.length - 1, l]); };
    const VALS = [0x11111111, 0x33333333, 0x44444444, 0x22222222, 0, 0x77777777, 0x55555555, 0x66666666]; // EAX ECX EDX EBX ESP EBP ESI EDI
    code.push(...X.sys(174, 4, TINY_DATA, 0).slice(0, 15), 0xbe, ...le32(8), 0xb8, ...le32(174), 0xcd, 0x80); // rt_sigaction(SIGILL, act, NULL, 8)
    for (const r of [0, 1, 2, 3, 5, 6, 7]) code.push(0xb8 + r, ...le32(VALS[r]));
    code.push(0xf9, 0x0f, 0x0b); // stc; ud2
    jcc(0x73, 'fail'); // jnc
    code.push(0x3d, ...le32(VALS[0])); jcc(0x75, 'fail');
    for (const r of [1, 2, 3, 5, 6, 7]) { code.push(0x81, 0xf8 + r, ...le32(VALS[r])); jcc(0x75, 'fail'); }
    code.push(...X.exit(0));
    at('fail'); code.push(...X.exit(1));
    at('handler');
    code.push(0x8b, 0x44, 0x24, 0x0c); // mov eax, [esp+12]   (uc)
    code.push(0x83, 0x40, 20 + 56, 0x02); // add dword [eax+76], 2   (uc_mcontext.eip past the ud2)
    for (const r of [0, 1, 2, 3, 5, 6, 7]) code.push(0x31, 0xc0 | (r << 3) | r); // xor r, r
    code.push(0xf8, 0xc3); // clc; ret (to the restorer)
    at('restorer'); code.push(0xb8, ...le32(173), 0xcd, 0x80);
    for (const [pos, l] of fix) code[pos] = (labels.get(l)! - (pos + 1)) & 0xff;
    const act = [...le32(TINY_CODE + labels.get('handler')!), ...le32(0x04000004), ...le32(TINY_CODE + labels.get('restorer')!), 0, 0, 0, 0, 0, 0, 0, 0];
    return tinyElf(Uint8Array.from(code), { data: Uint8Array.from(act) });
  }

  it('rt_sigreturn restores every general register and the flags the handler clobbered', () => {
    const l = runImage(program());
    expect(l.status).toBe(0);
    expect(l.strace.some((s) => s.startsWith('--- SIGILL {si_signo=SIGILL, si_code=2, si_addr=0x'))).toBe(true);
    expect(l.strace.some((s) => s.startsWith('rt_sigreturn() = 286331153'))).toBe(true); // EAX restored: 0x11111111
  });

  it('rt_sigreturn with a frame it cannot read kills with SIGSEGV (139)', () => {
    const code = [0xbc, ...le32(0x1000), 0xb8, ...le32(173), 0xcd, 0x80]; // mov esp, 0x1000; rt_sigreturn
    const l = runImage(tinyElf(Uint8Array.from(code)));
    expect(l.status).toBe(139);
  });
});
