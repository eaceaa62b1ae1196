/**
 * Reading the wall-clock time from the CMOS real-time clock at boot, as a kernel does (Linux's
 * mach_get_cmos_time): wait for no update in progress, read the time registers, honour BCD and
 * 12-hour formats from status B, and the century byte at 0x32.
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import { daysFromCivil } from '../../hw/devices/calendar.ts';
import type { KernelIo } from './io.ts';

const INDEX = 0x70, DATA = 0x71;

export function readCmosTime(io: KernelIo, cpu: Cpu): number {
  const reg = (r: number): number => { io.out8(cpu, INDEX, r); return io.in8(cpu, DATA); };
  for (let k = 0; k < 1000 && (reg(0x0a) & 0x80) !== 0; k++) { /* UIP: an update is coming */ }
  let sec = reg(0), min = reg(2), hour = reg(4), day = reg(7), mon = reg(8), year = reg(9), cent = reg(0x32);
  const b = reg(0x0b);
  const bcd = (v: number): number => (v & 0x0f) + (v >> 4) * 10;
  const pm = (hour & 0x80) !== 0;
  hour &= 0x7f;
  if ((b & 0x04) === 0) {
    sec = bcd(sec); min = bcd(min); hour = bcd(hour); day = bcd(day); mon = bcd(mon); year = bcd(year); cent = bcd(cent);
  }
  if ((b & 0x02) === 0) hour = (hour % 12) + (pm ? 12 : 0);
  const fullYear = (cent >= 19 && cent <= 30 ? cent : 20) * 100 + year;
  return daysFromCivil(fullYear, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
}
