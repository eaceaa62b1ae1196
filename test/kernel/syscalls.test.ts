// System calls (issue 5, "Native applications"): the Linux i386 ABI through INT 0x80 and
// SYSENTER, the table with -ENOSYS for what is missing, --strace, and each call's behaviour
// (called directly on a booted kernel's first process, with its real address space).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Machine } from '../../hw/machine.ts';
import { bootKernel, makeBootInfo } from '../../kernel/boot.ts';
import { GDT_ENTRY_TLS_MIN } from '../../kernel/gdt.ts';
import type { Kernel } from '../../kernel/kernel.ts';
import { E } from '../../kernel/syscalls/errno.ts';
import { NR } from '../../kernel/syscalls/numbers.ts';
import { SYSCALLS } from '../../kernel/syscalls/table.ts';
import { type SysCtx, type SysRet } from '../../kernel/syscalls/types.ts';
import { GS } from '../../hw/cpu/insn.ts';
import { programPath, runImage, runOnLwk, TINY_DATA, tinyElf, X } from './lwk.ts';

/** A booted kernel whose first process (a program that would exit 0) has not run yet. */
function booted(seed = 0) {
  const m = new Machine({ cores: 1, ram: 64 << 20 });
  const k = bootKernel(m, makeBootInfo(m, [{ name: '/prog', data: tinyElf(Uint8Array.from(X.exit(0)), { data: new Uint8Array(64), bss: 0x3000 }) }]), { seed });
  const call = (nr: number, ...args: number[]): SysRet => m.enter(m.cores[0], () => {
    const proc = k.processes.get(k.initPid)!;
    const c: SysCtx = { k, cpu: m.cores[0], core: 0, thread: proc.threads[0], proc, a: [...args, 0, 0, 0, 0, 0, 0].slice(0, 6).map((v) => v >>> 0), nr };
    return SYSCALLS[nr]!.fn(c);
  });
  const proc = () => k.processes.get(k.initPid)!;
  const read = (va: number, n: number) => { const r = proc().aspace.copyin({ cycles: 0 }, va, n); if (!r.ok) throw new Error(r.error); return r.value; };
  const write = (va: number, b: Uint8Array) => { const r = proc().aspace.copyout({ cycles: 0 }, va, b); if (!r.ok) throw new Error(r.error); };
  const cstr = (va: number, n = 65) => { const b = read(va, n); const z = b.indexOf(0); return Buffer.from(b.subarray(0, z < 0 ? n : z)).toString('latin1'); };
  return { m, k, call, proc, read, write, cstr };
}

/** Scratch user memory in the process's data segment. */
const BUF = TINY_DATA + 0x100;

describe('the system-call path', () => {
  it('an unknown call is -ENOSYS, counted, and shown by --strace', () => {
    const r = runImage(tinyElf(Uint8Array.from([...X.movEax(999), ...X.int80, ...X.exitWithEax])));
    expect(r.status).toBe(-E.ENOSYS & 0xff);
    expect(r.run.kernel.unknownSyscalls.get(999)).toBe(1);
    expect(r.strace[0]).toBe('syscall_999(0x0, 0x0, 0x0, 0x0, 0x0, 0x0) = -1 ENOSYS (Function not implemented)');
  });

  it('SYSENTER and INT 0x80 both reach the table (Linux\'s convention: the sixth argument at [EBP])', () => {
    const r = runOnLwk('sysenter');
    expect(r.stdout).toBe('int 0x80 works\nsysenter works\n');
    expect(r.status).toBe(42);
    expect(r.strace).toEqual([
      'write(1, "int 0x80 works\\n", 15) = 15',
      'write(1, "sysenter works\\n", 15) = 15',
      'getpid() = 1',
      'exit(42) = ?',
    ]);
  });

  it('--strace shows a C program\'s calls with their arguments and results', () => {
    const r = runOnLwk('hello', ['5']);
    expect(r.strace).toContain('write(1, "hello, world\\n", 13) = 13');
    expect(r.strace).toContain('rseq(0x' + r.strace.find((l) => l.startsWith('rseq('))!.slice(7));
    expect(r.strace.find((l) => l.startsWith('rseq('))).toMatch(/= -1 ENOSYS/);
    expect(r.strace.find((l) => l.startsWith('set_thread_area('))).toMatch(/= 0$/);
    expect(r.strace[r.strace.length - 1]).toBe('exit_group(5) = ?');
  });

  it('what identifies the system is the LWK\'s own: pids, ids, auxv identity entries, the program path', () => {
    const r = runOnLwk('args', ['--ids'], { path: 'bin/args', image: new Uint8Array(readFileSync(programPath('args'))) });
    expect(r.stdout).toMatch(/^AT_UID 0 AT_EUID 0 AT_GID 0 AT_EGID 0$/m);
    expect(r.stdout).toMatch(/^pid 1 ppid 0 uid 0 euid 0 gid 0 egid 0$/m);
    // (glibc's getauxval(AT_HWCAP) on i386 is its own x86 hwcap word, not the auxv value: see elf.test.ts for that)
    expect(r.stdout).toContain('argv[0] bin/args\n');
    expect(r.stdout).toContain('AT_EXECFN is argv[0] yes\n');
    expect(r.strace).toContain('readlink("/proc/self/exe", 0x' + r.strace.find((l) => l.startsWith('readlink('))!.split('0x')[1].split(',')[0] + ', 4096) = 9'); // "/bin/args"
  });

  it('records each call\'s count and cycles per core', () => {
    const r = runOnLwk('hello');
    const n = r.run.kernel.percpu[0].noise;
    expect(n.syscalls.get(NR.write)?.count).toBe(2);
    expect(n.syscalls.get(NR.write)!.cycles).toBeGreaterThan(0);
    expect(n.syscalls.get(NR.exit_group)?.count).toBe(1);
  });
});

describe('faults become signals', () => {
  const cases: [string, number[], number][] = [
    ['UD2: SIGILL', [0x0f, 0x0b], 128 + 4],
    ['divide by zero: SIGFPE', [0x31, 0xc9, 0xf7, 0xf1], 128 + 8],
    ['INT3: SIGTRAP', [0xcc], 128 + 5],
    ['HLT at CPL 3 (#GP): SIGSEGV', [0xf4], 128 + 11],
    ['INT 0x81 (a kernel-only gate, #GP): SIGSEGV', [0xcd, 0x81], 128 + 11],
    ['a store to its own text (read-only): SIGSEGV', [0xc6, 0x05, ...[0x00, 0x81, 0x04, 0x08], 0x90], 128 + 11],
    ['a load from an unmapped page: SIGSEGV', [0xa1, 0x00, 0x00, 0x00, 0x00], 128 + 11],
  ];
  for (const [name, code, status] of cases) {
    it(name, () => {
      const r = runImage(tinyElf(Uint8Array.from([...code, ...X.exit(0)])));
      expect(r.status).toBe(status);
    });
  }
  it('the kernel log names the signal, the trap and the address', () => {
    const r = runImage(tinyElf(Uint8Array.from([0xa1, 0x10, 0x00, 0x00, 0x00])));
    expect(r.status).toBe(139);
    expect(r.log).toMatch(/tiny\[1\]: SIGSEGV \(trap 14 error 4\) at eip 0x8048100 address 0x10/);
  });
});

describe('system calls', () => {
  it('uname: Linux on i686, the LWK\'s own names', () => {
    const b = booted();
    expect(b.call(NR.uname, BUF)).toBe(0);
    expect([b.cstr(BUF), b.cstr(BUF + 65 * 4)]).toEqual(['Linux', 'i686']);
    expect(b.call(NR.uname, 0x10)).toBe(-E.EFAULT);
  });

  it('brk: starts after the image, grows and shrinks, refuses to go below its start', () => {
    const b = booted();
    const start = b.call(NR.brk, 0) as number;
    expect(start).toBe(TINY_DATA + 0x4000); // data page + 0x3000 of bss, page-aligned
    expect(b.call(NR.brk, start + 0x2345)).toBe(start + 0x2345);
    b.write(start + 0x2344, Uint8Array.of(7));
    expect(Array.from(b.read(start, 4))).toEqual([0, 0, 0, 0]);
    expect(b.call(NR.brk, start - 0x1000)).toBe(start + 0x2345);
    expect(b.call(NR.brk, start)).toBe(start);
    expect(b.call(NR.brk, start + 0x1000)).toBe(start + 0x1000);
    expect(Array.from(b.read(start, 0x1000)).every((x) => x === 0)).toBe(true); // pages come back zeroed
  });

  it('mmap2: anonymous memory, zeroed and page-aligned; files are refused; munmap and mprotect', () => {
    const b = booted();
    const a = b.call(NR.mmap2, 0, 0x5000, 3, 0x22, -1, 0) as number;
    expect(a % 4096).toBe(0);
    expect(Array.from(b.read(a, 0x5000)).every((x) => x === 0)).toBe(true);
    expect(b.call(NR.mmap2, 0, 0x1000, 3, 0x02, 1, 0)).toBe(-E.ENODEV);
    expect(b.call(NR.mmap2, 0, 0x1000, 3, 0x02, 9, 0)).toBe(-E.EBADF);
    expect(b.call(NR.mmap2, 0, 0, 3, 0x22, -1, 0)).toBe(-E.EINVAL);
    expect(b.call(NR.mprotect, a, 0x1000, 1)).toBe(0);
    expect(b.proc().aspace.copyout({ cycles: 0 }, a, Uint8Array.of(1)).ok).toBe(false);
    expect(b.call(NR.munmap, a, 0x5000)).toBe(0);
    expect(b.proc().aspace.regionAt(a)).toBeUndefined();
    const fixed = b.call(NR.mmap2, 0x40000000, 0x2000, 3, 0x32, -1, 0);
    expect(fixed).toBe(0x40000000);
  });

  it('set_thread_area: a free TLS slot (entry 6), written back; the descriptor goes into the core\'s GDT; get_thread_area reads it', () => {
    const b = booted();
    const ud = new DataView(new ArrayBuffer(16));
    ud.setInt32(0, -1, true); ud.setUint32(4, 0x12345000, true); ud.setUint32(8, 0xfffff, true); ud.setUint32(12, 0x51, true);
    b.write(BUF, new Uint8Array(ud.buffer));
    expect(b.call(NR.set_thread_area, BUF)).toBe(0);
    expect(new DataView(b.read(BUF, 4).buffer).getInt32(0, true)).toBe(GDT_ENTRY_TLS_MIN);
    const d = b.m.enter(b.m.cores[0], () => b.k.percpu[0].gdt.get(b.m.cores[0], GDT_ENTRY_TLS_MIN));
    expect(d.lo >>> 0).toBe(0x5000ffff);
    expect(d.hi >>> 0).toBe(0x12dff334); // base 31:24, G D AVL, limit 19:16, P DPL3 S data RW accessed, base 23:16
    // the program can load %gs with it now: the hardware reads the GDT through the kernel's mapping
    const cpu = b.m.cores[0];
    b.m.enter(cpu, () => b.k.percpu[0].gdt.loadSegment(cpu, GS, GDT_ENTRY_TLS_MIN * 8 + 3));
    expect(cpu.segBase[GS] >>> 0).toBe(0x12345000);
    b.write(BUF + 16, Uint8Array.of(GDT_ENTRY_TLS_MIN, 0, 0, 0));
    expect(b.call(NR.get_thread_area, BUF + 16)).toBe(0);
    expect(Array.from(b.read(BUF + 16, 16))).toEqual(Array.from(b.read(BUF, 16)));
    ud.setInt32(0, 3, true);
    b.write(BUF, new Uint8Array(ud.buffer));
    expect(b.call(NR.set_thread_area, BUF)).toBe(-E.EINVAL);
  });

  it('the clocks: monotonic from the cycle count, the wall clock from the RTC', () => {
    const b = booted();
    expect(b.call(NR.clock_gettime, 1, BUF)).toBe(0);
    const dv = new DataView(b.read(BUF, 8).buffer);
    const cycles = b.m.cores[0].cycles;
    expect(dv.getInt32(0, true) * 1e9 + dv.getInt32(4, true)).toBeCloseTo((cycles / 2.2e9) * 1e9, -3);
    expect(b.call(NR.clock_gettime64, 0, BUF)).toBe(0);
    expect(Number(new DataView(b.read(BUF, 16).buffer).getBigInt64(0, true))).toBe(946684800); // 2000-01-01, the RTC's start
    expect(b.call(NR.time, 0)).toBe(946684800);
    expect(b.call(NR.clock_gettime, 99, BUF)).toBe(-E.EINVAL);
  });

  it('getrandom and AT_RANDOM are deterministic for a seed', () => {
    const a = booted(1), a2 = booted(1), c = booted(2);
    for (const x of [a, a2, c]) expect(x.call(NR.getrandom, BUF, 32, 0)).toBe(32);
    expect(Array.from(a.read(BUF, 32))).toEqual(Array.from(a2.read(BUF, 32)));
    expect(Array.from(a.read(BUF, 32))).not.toEqual(Array.from(c.read(BUF, 32)));
  });

  it('the console streams: character devices, not terminals; fd 0 reads end of file; bad fds and pointers fail', () => {
    const b = booted();
    expect(b.call(NR.fstat64, 1, BUF)).toBe(0);
    expect(new DataView(b.read(BUF, 96).buffer).getUint32(16, true) & 0o170000).toBe(0o020000);
    b.write(BUF + 0x200, Uint8Array.of(0));
    expect(b.call(NR.statx, 1, BUF + 0x200, 0x1000, 0x7ff, BUF)).toBe(0);
    expect(new DataView(b.read(BUF, 32).buffer).getUint16(28, true) & 0o170000).toBe(0o020000);
    expect(b.call(NR.ioctl, 1, 0x5401, BUF)).toBe(-E.ENOTTY);
    expect(b.call(NR.ioctl, 7, 0x5401, BUF)).toBe(-E.EBADF);
    expect(b.call(NR.read, 0, BUF, 10)).toBe(0);
    expect(b.call(NR.write, 0, BUF, 1)).toBe(-E.EBADF);
    expect(b.call(NR.write, 1, 0x1000, 1)).toBe(-E.EFAULT);
    expect(b.call(NR.close, 2)).toBe(0);
    expect(b.call(NR.write, 2, BUF, 1)).toBe(-E.EBADF);
    expect(b.call(NR.dup2, 1, 2)).toBe(2);
    expect(b.call(NR.fcntl64, 2, 3)).toBe(1); // F_GETFL: O_WRONLY
    expect(b.call(NR.lseek, 1, 0, 0)).toBe(-E.ESPIPE);
  });

  it('paths: /proc/self/exe names the program; there is no file system yet', () => {
    const b = booted();
    b.write(BUF, new TextEncoder().encode('/proc/self/exe\0'));
    expect(b.call(NR.readlink, BUF, BUF + 0x100, 64)).toBe(5);
    expect(b.cstr(BUF + 0x100, 5)).toBe('/prog');
    b.write(BUF, new TextEncoder().encode('/etc/passwd\0'));
    expect(b.call(NR.open, BUF, 0, 0)).toBe(-E.ENOENT);
    expect(b.call(NR.readlink, BUF, BUF + 0x100, 64)).toBe(-E.ENOENT);
  });

  it('ids, limits, affinity, names', () => {
    const b = booted();
    expect([b.call(NR.getpid), b.call(NR.gettid), b.call(NR.getppid), b.call(NR.getuid32), b.call(NR.getegid32)]).toEqual([1, 1, 0, 0, 0]);
    expect(b.call(NR.prlimit64, 0, 3, 0, BUF)).toBe(0);
    expect(new DataView(b.read(BUF, 16).buffer).getBigUint64(0, true)).toBe(8n << 20n);
    expect(b.call(NR.ugetrlimit, 7, BUF)).toBe(0);
    expect(Array.from(new Uint32Array(b.read(BUF, 8).buffer))).toEqual([1024, 1024]);
    expect(b.call(NR.sched_getaffinity, 0, 128, BUF)).toBe(4);
    expect(b.read(BUF, 1)[0]).toBe(1);
    b.write(BUF, new TextEncoder().encode('worker\0'));
    expect(b.call(NR.prctl, 15, BUF)).toBe(0);
    expect(b.call(NR.prctl, 16, BUF + 0x40)).toBe(0);
    expect(b.cstr(BUF + 0x40)).toBe('worker');
    expect(b.call(NR.set_robust_list, BUF, 12)).toBe(0);
    expect(b.call(NR.set_robust_list, BUF, 11)).toBe(-E.EINVAL);
    expect(b.call(NR.rseq, BUF, 32, 0, 0)).toBe(-E.ENOSYS);
  });

  it('signals: actions and the mask are recorded; a signal sent to itself takes its default action', () => {
    const b = booted();
    const act = new DataView(new ArrayBuffer(20));
    act.setUint32(0, 1, true); // SIG_IGN
    b.write(BUF, new Uint8Array(act.buffer));
    expect(b.call(NR.rt_sigaction, 15, BUF, 0, 8)).toBe(0);
    expect(b.call(NR.rt_sigaction, 15, 0, BUF + 0x40, 8)).toBe(0);
    expect(Array.from(b.read(BUF + 0x40, 20))).toEqual(Array.from(b.read(BUF, 20)));
    expect(b.call(NR.rt_sigaction, 9, BUF, 0, 8)).toBe(-E.EINVAL);
    expect(b.call(NR.kill, 1, 15)).toBe(0); // ignored
    expect(b.call(NR.kill, 1, 17)).toBe(0); // SIGCHLD: ignored by default
    expect(b.call(NR.kill, 77, 15)).toBe(-E.ESRCH);
    b.write(BUF, Uint8Array.of(0, 0x40, 0, 0, 0, 0, 0, 0));
    expect(b.call(NR.rt_sigprocmask, 0, BUF, 0, 8)).toBe(0);
    expect(b.proc().threads[0].sigmask).toBe(0x4000n);
    const r = runImage(tinyElf(Uint8Array.from([...X.sys(NR.getpid), 0x89, 0xc3, ...X.movEcx(6), ...X.movEax(NR.kill), ...X.int80, ...X.exit(0)])));
    expect(r.status).toBe(128 + 6);
  });
});
