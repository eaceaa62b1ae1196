/** Reading a struct timespec from user memory (futex timeouts, nanosleep, clock_nanosleep). */
import { E } from './errno.ts';
import { errno, type SysCtx } from './types.ts';

/**
 * The timespec at `addr` (two 32-bit fields, or two 64-bit ones for the *_time64 calls) as
 * nanoseconds, or a negative errno: the copy's fault, or -EINVAL for a negative value or
 * nanoseconds of a second or more.
 */
export function timespecNs(c: SysCtx, addr: number, wide: boolean): bigint | number {
  const r = c.proc.aspace.copyin(c.cpu, addr, wide ? 16 : 8);
  if (!r.ok) return errno(r.error);
  const dv = new DataView(r.value.buffer);
  const sec = wide ? dv.getBigInt64(0, true) : BigInt(dv.getInt32(0, true));
  const nsec = wide ? dv.getBigInt64(8, true) : BigInt(dv.getInt32(4, true));
  if (sec < 0n || nsec < 0n || nsec >= 1_000_000_000n) return -E.EINVAL;
  return sec * 1_000_000_000n + nsec;
}
