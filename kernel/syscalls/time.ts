/**
 * The clocks and sleeping: clock_gettime(64), clock_getres(_time64), gettimeofday, time, times,
 * nanosleep, clock_nanosleep(_time64), sched_yield. Time is the simulated clock: the calling
 * core's cycle count (CLOCK_MONOTONIC, CLOCK_BOOTTIME: since power-on) plus, for
 * CLOCK_REALTIME, the wall-clock time the kernel read from the CMOS RTC at boot. A sleep blocks
 * the thread until the core's clock reaches the deadline (the scheduler arms the APIC timer for
 * it; an idle machine jumps there at no host cost); a signal with a handler ends it early with
 * -EINTR and, for a relative sleep, the time left in the remainder.
 */
import { keptDeadline, sleepInterruptibly } from './block.ts';
import { E } from './errno.ts';
import { timespecNs } from './timespec.ts';
import { errno, s32, type SysCtx, type SyscallDef, type SysRet } from './types.ts';

export const CLOCK_REALTIME = 0, CLOCK_MONOTONIC = 1, CLOCK_PROCESS_CPUTIME_ID = 2, CLOCK_THREAD_CPUTIME_ID = 3;
export const CLOCK_MONOTONIC_RAW = 4, CLOCK_REALTIME_COARSE = 5, CLOCK_MONOTONIC_COARSE = 6, CLOCK_BOOTTIME = 7;
const TIMER_ABSTIME = 1;
const USER_HZ = 100;

/** [seconds, nanoseconds] of `cycles` at `hz`. */
export function cyclesToTime(cycles: number, hz: number): [number, number] {
  const sec = Math.floor(cycles / hz);
  const rem = cycles - sec * hz;
  return [sec, Number((BigInt(rem) * 1_000_000_000n) / BigInt(hz))];
}

/** The clock's value in [seconds, nanoseconds], or null for a clock the LWK does not have. */
function clockNow(c: SysCtx, clk: number): [number, number] | null {
  const hz = c.k.info.hz;
  switch (clk) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE: {
      const [s, ns] = cyclesToTime(c.cpu.cycles - c.k.wallReadCycles, hz);
      return [c.k.wallAtBoot + s, ns];
    }
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_BOOTTIME:
      return cyclesToTime(c.cpu.cycles, hz);
    case CLOCK_PROCESS_CPUTIME_ID:
    case CLOCK_THREAD_CPUTIME_ID:
      return cyclesToTime(c.proc.cpuCycles + (c.cpu.cycles - c.thread.lastStart), hz);
    default:
      return null;
  }
}

function putTimespec(c: SysCtx, addr: number, t: [number, number], wide: boolean): number {
  const dv = new DataView(new ArrayBuffer(wide ? 16 : 8));
  if (wide) { dv.setBigInt64(0, BigInt(t[0]), true); dv.setBigInt64(8, BigInt(t[1]), true); }
  else { dv.setInt32(0, t[0], true); dv.setInt32(4, t[1], true); }
  const w = c.proc.aspace.copyout(c.cpu, addr, new Uint8Array(dv.buffer));
  return w.ok ? 0 : errno(w.error);
}

function clockGettime(c: SysCtx, wide: boolean): number {
  const t = clockNow(c, s32(c.a[0]));
  if (t === null) return -E.EINVAL;
  return putTimespec(c, c.a[1], t, wide);
}

function clockGetres(c: SysCtx, wide: boolean): number {
  const clk = s32(c.a[0]);
  if (clockNow(c, clk) === null) return -E.EINVAL;
  if (c.a[1] === 0) return 0;
  const coarse = clk === CLOCK_REALTIME_COARSE || clk === CLOCK_MONOTONIC_COARSE;
  return putTimespec(c, c.a[1], coarse ? [0, 4_000_000] : [0, 1], wide);
}

function gettimeofday(c: SysCtx): number {
  const t = clockNow(c, CLOCK_REALTIME)!;
  if (c.a[0] !== 0) {
    const dv = new DataView(new ArrayBuffer(8));
    dv.setInt32(0, t[0], true);
    dv.setInt32(4, Math.floor(t[1] / 1000), true);
    const w = c.proc.aspace.copyout(c.cpu, c.a[0], new Uint8Array(dv.buffer));
    if (!w.ok) return errno(w.error);
  }
  if (c.a[1] !== 0) {
    const w = c.proc.aspace.copyout(c.cpu, c.a[1], new Uint8Array(8));
    if (!w.ok) return errno(w.error);
  }
  return 0;
}

function time(c: SysCtx): number {
  const t = clockNow(c, CLOCK_REALTIME)!;
  if (c.a[0] !== 0) {
    const dv = new DataView(new ArrayBuffer(4));
    dv.setInt32(0, t[0], true);
    const w = c.proc.aspace.copyout(c.cpu, c.a[0], new Uint8Array(dv.buffer));
    if (!w.ok) return errno(w.error);
  }
  return t[0];
}

function times(c: SysCtx): number {
  const hz = c.k.info.hz;
  const ticks = (cycles: number): number => Math.floor((cycles * USER_HZ) / hz);
  if (c.a[0] !== 0) {
    const dv = new DataView(new ArrayBuffer(16));
    dv.setInt32(0, ticks(c.proc.cpuCycles + (c.cpu.cycles - c.thread.lastStart)), true);
    const w = c.proc.aspace.copyout(c.cpu, c.a[0], new Uint8Array(dv.buffer));
    if (!w.ok) return errno(w.error);
  }
  return ticks(c.cpu.cycles) | 0;
}

/**
 * Blocks until `deadlineNs` on clock `clk` (absolute), interruptibly (syscalls/block.ts): a
 * signal with a handler ends the sleep with -EINTR, SA_RESTART or not (Linux never restarts a
 * sleep after a handler: -ERESTART_RESTARTBLOCK, -ERESTARTNOHAND), and a relative sleep given a
 * remainder address `rem` then gets the time left there.
 */
function sleepUntil(c: SysCtx, clk: number, deadlineNs: bigint, rem: { addr: number; wide: boolean } | null): SysRet {
  let until = keptDeadline(c); // the same sleep, running again after a wake-up with nothing to deliver
  if (until === undefined) {
    const now = clockNow(c, clk)!;
    const nowNs = BigInt(now[0]) * 1_000_000_000n + BigInt(now[1]);
    if (deadlineNs <= nowNs) return 0;
    until = c.cpu.cycles + Number(((deadlineNs - nowNs) * BigInt(c.k.info.hz) + 999_999_999n) / 1_000_000_000n);
  }
  if (until <= c.cpu.cycles) return 0;
  const hz = c.k.info.hz;
  return sleepInterruptibly(c, {
    until, restartable: false, timedOut: () => 0,
    interrupted: (left) => (rem === null || rem.addr === 0 ? 0 : putTimespec(c, rem.addr, cyclesToTime(left, hz), rem.wide)),
  });
}

function nanosleep(c: SysCtx, wide: boolean): SysRet {
  const ns = timespecNs(c, c.a[0], wide);
  if (typeof ns === 'number') return ns;
  const now = clockNow(c, CLOCK_MONOTONIC)!;
  return sleepUntil(c, CLOCK_MONOTONIC, BigInt(now[0]) * 1_000_000_000n + BigInt(now[1]) + ns, { addr: c.a[1], wide });
}

function clockNanosleep(c: SysCtx, wide: boolean): SysRet {
  const clk = s32(c.a[0]);
  if (clk === CLOCK_THREAD_CPUTIME_ID) return -E.EINVAL;
  const now = clockNow(c, clk);
  if (now === null) return -E.EINVAL;
  const ns = timespecNs(c, c.a[2], wide);
  if (typeof ns === 'number') return ns;
  const abs = (c.a[1] & TIMER_ABSTIME) !== 0;
  return sleepUntil(c, clk, abs ? ns : BigInt(now[0]) * 1_000_000_000n + BigInt(now[1]) + ns, abs ? null : { addr: c.a[3], wide });
}

function schedYield(c: SysCtx): number {
  c.k.sched.yieldCurrent(c.cpu, c.core);
  return 0;
}

export const timeCalls: Record<string, SyscallDef> = {
  clock_gettime: { name: 'clock_gettime', args: 'dp', fn: (c) => clockGettime(c, false) },
  clock_gettime64: { name: 'clock_gettime64', args: 'dp', fn: (c) => clockGettime(c, true) },
  clock_getres: { name: 'clock_getres', args: 'dp', fn: (c) => clockGetres(c, false) },
  clock_getres_time64: { name: 'clock_getres_time64', args: 'dp', fn: (c) => clockGetres(c, true) },
  gettimeofday: { name: 'gettimeofday', args: 'pp', fn: gettimeofday },
  time: { name: 'time', args: 'p', fn: time },
  times: { name: 'times', args: 'p', fn: times },
  nanosleep: { name: 'nanosleep', args: 'pp', fn: (c) => nanosleep(c, false) },
  clock_nanosleep: { name: 'clock_nanosleep', args: 'dxpp', fn: (c) => clockNanosleep(c, false) },
  clock_nanosleep_time64: { name: 'clock_nanosleep_time64', args: 'dxpp', fn: (c) => clockNanosleep(c, true) },
  sched_yield: { name: 'sched_yield', args: '', fn: schedYield },
};
