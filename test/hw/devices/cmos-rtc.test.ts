import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { civilFromDays, daysFromCivil, fromEpochSeconds, toEpochSeconds, weekday } from '../../../hw/devices/calendar.ts';
import { CmosRtc, type CmosRtcOptions, type CmosRtcState, RTC_HZ } from '../../../hw/devices/cmos-rtc.ts';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { checkSnapshotRoundTrip, fcParams, LineRecorder } from './helpers.ts';

// At this clock, cycle n is RTC tick n (32.768 kHz).
function setup(extra: Partial<CmosRtcOptions> = {}, hz = RTC_HZ) {
  const q = new EventQueue(hz);
  const irq = new LineRecorder(q);
  const rtc = new CmosRtc({ time: q, scheduler: q, irq, ...extra });
  return { q, irq, rtc };
}
function get(rtc: CmosRtc, i: number): number {
  rtc.ioWrite(0, 1, i);
  return rtc.ioRead(1, 1);
}
function set(rtc: CmosRtc, i: number, v: number): void {
  rtc.ioWrite(0, 1, i);
  rtc.ioWrite(1, 1, v);
}
/** [century, year, month, day, dow, hour, minute, second] as raw register bytes. */
function clock(rtc: CmosRtc): number[] {
  return [0x32, 9, 8, 7, 6, 4, 2, 0].map((i) => get(rtc, i));
}
/** Runs to `until`, reading status C after every rising edge of IRQ 8 (an interrupt handler). */
function serviceUntil(q: EventQueue, rtc: CmosRtc, irq: LineRecorder, until: number): number[] {
  const cs: number[] = [];
  for (;;) {
    const next = q.nextEventAt();
    if (next > until) break;
    q.runUntil(next);
    if (irq.level) cs.push(get(rtc, 0x0c));
  }
  q.runUntil(until);
  return cs;
}

describe('calendar arithmetic', () => {
  it('round-trips days and seconds and knows weekdays', () => {
    expect(daysFromCivil(1970, 1, 1)).toBe(0);
    expect(weekday(daysFromCivil(2000, 1, 1))).toBe(6); // Saturday
    expect(weekday(daysFromCivil(2024, 3, 1))).toBe(5); // Friday
    expect(toEpochSeconds({ year: 2001, month: 9, day: 9, hour: 1, minute: 46, second: 40 })).toBe(1_000_000_000);
    fc.assert(
      fc.property(fc.integer({ min: -1_000_000, max: 1_000_000 }), (d) => {
        const c = civilFromDays(d);
        expect(daysFromCivil(c.year, c.month, c.day)).toBe(d);
        expect(toEpochSeconds(fromEpochSeconds(d * 86400 + 4321))).toBe(d * 86400 + 4321);
      }),
      fcParams,
    );
  });
});

describe('MC146818 time and date', () => {
  it('starts at the configured time and counts from the simulated clock (BCD, 24 h)', () => {
    const { q, rtc } = setup();
    expect(clock(rtc)).toEqual([0x20, 0x00, 0x01, 0x01, 0x07, 0x00, 0x00, 0x00]);
    q.runUntil(RTC_HZ * 3661 - 1);
    expect(clock(rtc)).toEqual([0x20, 0x00, 0x01, 0x01, 0x07, 0x01, 0x01, 0x00]);
    q.runUntil(RTC_HZ * 3661);
    expect(get(rtc, 0)).toBe(0x01);
  });

  it('rolls over a leap day, month, weekday', () => {
    const { q, rtc } = setup({ startTime: { year: 2024, month: 2, day: 29, hour: 23, minute: 59, second: 58 } });
    expect(clock(rtc)).toEqual([0x20, 0x24, 0x02, 0x29, 0x05, 0x23, 0x59, 0x58]);
    q.runUntil(RTC_HZ * 2);
    expect(clock(rtc)).toEqual([0x20, 0x24, 0x03, 0x01, 0x06, 0x00, 0x00, 0x00]);
  });

  it('binary mode and the 12-hour format follow status B', () => {
    const { q, rtc } = setup({ startTime: { year: 1999, month: 12, day: 31, hour: 13, minute: 5, second: 9 } });
    set(rtc, 0x0b, 0x06); // binary, 24 h
    expect(clock(rtc)).toEqual([19, 99, 12, 31, 6, 13, 5, 9]);
    set(rtc, 0x0b, 0x00); // BCD, 12 h
    expect(get(rtc, 4)).toBe(0x81); // 1 PM
    set(rtc, 0x0b, 0x04); // binary, 12 h
    expect(get(rtc, 4)).toBe(0x81);
    q.runUntil(RTC_HZ * (11 * 3600 - 5 * 60 - 9)); // midnight
    expect(get(rtc, 4)).toBe(12); // 12 AM
    expect(clock(rtc).slice(0, 4)).toEqual([20, 0, 1, 1]);
    set(rtc, 0x0b, 0x00);
    q.runUntil(RTC_HZ * (23 * 3600 - 5 * 60 - 9)); // noon
    expect(get(rtc, 4)).toBe(0x92);
  });

  it('SET halts updates while the time is written; clearing it starts from the written time', () => {
    const { q, rtc } = setup();
    q.runUntil(RTC_HZ * 10 + 5);
    set(rtc, 0x0b, 0x82);
    const written: Array<[number, number]> = [[0x32, 0x19], [9, 0x99], [8, 0x06], [7, 0x15], [6, 0x03], [4, 0x10], [2, 0x30], [0, 0x00]];
    for (const [i, v] of written) set(rtc, i, v);
    q.runUntil(RTC_HZ * 30);
    expect(clock(rtc)).toEqual([0x19, 0x99, 0x06, 0x15, 0x03, 0x10, 0x30, 0x00]);
    set(rtc, 0x0b, 0x02);
    q.runUntil(RTC_HZ * 120);
    expect(clock(rtc)).toEqual([0x19, 0x99, 0x06, 0x15, 0x03, 0x10, 0x31, 0x30]);
    expect(rtc.currentTime()).toEqual({ year: 1999, month: 6, day: 15, hour: 10, minute: 31, second: 30 });
  });

  it('writing a time register while running keeps the update phase; the day of week counts on its own', () => {
    const { q, rtc } = setup();
    q.runUntil(RTC_HZ * 2 + 100);
    set(rtc, 0, 0x30);
    expect(get(rtc, 0)).toBe(0x30);
    q.runUntil(RTC_HZ * 3 - 1);
    expect(get(rtc, 0)).toBe(0x30);
    q.runUntil(RTC_HZ * 3);
    expect(get(rtc, 0)).toBe(0x31);
    set(rtc, 6, 0x02);
    q.runUntil(RTC_HZ * 86400);
    expect(get(rtc, 6)).toBe(0x03);
  });

  it('UIP is set for the 244 us before each update', () => {
    const { q, rtc } = setup();
    const uip = (t: number): number => {
      q.runUntil(t);
      return get(rtc, 0x0a) >> 7;
    };
    expect([uip(RTC_HZ - 9), uip(RTC_HZ - 8), uip(RTC_HZ - 1), uip(RTC_HZ)]).toEqual([0, 1, 1, 0]);
    expect(get(rtc, 0)).toBe(0x01);
    set(rtc, 0x0b, 0x82);
    expect(uip(2 * RTC_HZ - 1)).toBe(0);
  });

  it('holding the divider in reset stops the clock; the first update comes 500 ms after release', () => {
    const { q, rtc } = setup();
    q.runUntil(RTC_HZ * 5 + 1000);
    set(rtc, 0x0a, 0x70);
    q.runUntil(RTC_HZ * 50);
    expect(get(rtc, 0)).toBe(0x05);
    set(rtc, 0x0a, 0x26);
    q.runUntil(RTC_HZ * 50 + RTC_HZ / 2 - 1);
    expect(get(rtc, 0)).toBe(0x05);
    q.runUntil(RTC_HZ * 50 + RTC_HZ / 2);
    expect(get(rtc, 0)).toBe(0x06);
  });
});

describe('MC146818 interrupts', () => {
  it.each([
    [0x26, 1024],
    [0x23, 8192],
    [0x2f, 2],
    [0x21, 256],
    [0x22, 128],
  ])('status A %i: periodic interrupt at %i Hz', (a, rate) => {
    const { q, rtc, irq } = setup();
    set(rtc, 0x0a, a);
    get(rtc, 0x0c);
    set(rtc, 0x0b, 0x42); // PIE
    const cs = serviceUntil(q, rtc, irq, RTC_HZ);
    expect(cs.length).toBe(rate);
    expect(cs.every((c) => (c & 0xe0) === 0xc0)).toBe(true); // IRQF, PF (UF too at each update)
    expect(cs.filter((c) => c & 0x10).length).toBe(1);
    expect(irq.rises()[1]! - irq.rises()[0]!).toBe(RTC_HZ / rate);
  });

  it('the periodic rate holds against the 2.2 GHz cycle clock', () => {
    const hz = 2_200_000_000;
    const { q, rtc, irq } = setup({}, hz);
    set(rtc, 0x0b, 0x42);
    expect(serviceUntil(q, rtc, irq, hz).length).toBe(1024);
  });

  it('flags are set whether or not enabled; reading C clears them and IRQF', () => {
    const { q, rtc, irq } = setup();
    q.runUntil(RTC_HZ + 40);
    expect(q.pending).toBe(0); // no interrupt enabled: nothing scheduled
    expect(get(rtc, 0x0c)).toBe(0x50); // PF and UF, no IRQF
    expect(get(rtc, 0x0c)).toBe(0x00);
    set(rtc, 0x0b, 0x42);
    q.runUntil(RTC_HZ + 100);
    expect(irq.level).toBe(true);
    set(rtc, 0x0b, 0x02); // disabling PIE drops IRQF
    expect(irq.level).toBe(false);
    expect(get(rtc, 0x0c)).toBe(0x40);
  });

  it('update-ended interrupt once a second; SET clears UIE', () => {
    const { q, rtc, irq } = setup();
    set(rtc, 0x0a, 0x20); // no periodic rate
    set(rtc, 0x0b, 0x12);
    expect(serviceUntil(q, rtc, irq, 3 * RTC_HZ)).toEqual([0x90, 0x90, 0x90]);
    expect(irq.rises()).toEqual([RTC_HZ, 2 * RTC_HZ, 3 * RTC_HZ]);
    set(rtc, 0x0b, 0x92);
    expect(get(rtc, 0x0b)).toBe(0x82);
  });

  it('alarm interrupt at the alarm time, with don\'t-care bytes', () => {
    const { q, rtc, irq } = setup();
    set(rtc, 0x0a, 0x20);
    set(rtc, 1, 0x05);
    set(rtc, 3, 0x00);
    set(rtc, 5, 0x00);
    set(rtc, 0x0b, 0x22);
    expect(serviceUntil(q, rtc, irq, 10 * RTC_HZ)).toEqual([0xb0]);
    expect(irq.rises()).toEqual([5 * RTC_HZ]);
    irq.clear();
    set(rtc, 1, 0x10);
    set(rtc, 3, 0xff);
    set(rtc, 5, 0xc0); // every minute at second 10
    serviceUntil(q, rtc, irq, 200 * RTC_HZ); // from 00:00:10
    expect(irq.rises()).toEqual([70, 130, 190].map((s) => s * RTC_HZ));
  });

  it('the alarm flag is found when C is read even without AIE', () => {
    const { q, rtc } = setup();
    set(rtc, 0x0a, 0x20);
    set(rtc, 1, 0x30);
    set(rtc, 3, 0x00);
    set(rtc, 5, 0x00);
    q.runUntil(29 * RTC_HZ);
    expect(get(rtc, 0x0c)).toBe(0x10);
    q.runUntil(31 * RTC_HZ);
    expect(get(rtc, 0x0c)).toBe(0x30);
  });
});

describe('CMOS RAM and the index port', () => {
  it('stores NVRAM bytes; D reads VRT; the index port reads 0xFF and holds the NMI bit', () => {
    const { rtc } = setup();
    set(rtc, 0x40, 0x12);
    set(rtc, 0x7f, 0x34);
    expect([get(rtc, 0x40), get(rtc, 0x7f)]).toEqual([0x12, 0x34]);
    set(rtc, 0x0d, 0x00);
    expect(get(rtc, 0x0d)).toBe(0x80);
    rtc.ioWrite(0, 1, 0x80 | 0x40);
    expect(rtc.nmiDisabled).toBe(true);
    expect(rtc.ioRead(1, 1)).toBe(0x12);
    expect(rtc.ioRead(0, 1)).toBe(0xff);
    rtc.ioWrite(0, 1, 0x40);
    expect(rtc.nmiDisabled).toBe(false);
  });

  it('fills the memory-size fields as PC firmware does', () => {
    const { rtc } = setup();
    rtc.setMemorySize(128 * 1024 * 1024);
    expect([0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35].map((i) => get(rtc, i))).toEqual([0x80, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00, 0x07]);
    rtc.setMemorySize(32 * 1024 * 1024);
    expect([0x17, 0x18, 0x34, 0x35].map((i) => get(rtc, i))).toEqual([0x00, 0x7c, 0x00, 0x01]); // 31744 KiB; 256 x 64 KiB
    rtc.setMemorySize(2 * 1024 * 1024 * 1024, 1024 * 1024 * 1024);
    expect([0x34, 0x35, 0x5b, 0x5c, 0x5d].map((i) => get(rtc, i))).toEqual([0x00, 0x7f, 0x00, 0x40, 0x00]);
  });
});

describe('MC146818 reset and save/restore', () => {
  it('reset clears the interrupt enables and flags, keeps time and RAM', () => {
    const { q, rtc, irq } = setup();
    set(rtc, 0x40, 0x99);
    set(rtc, 0x0b, 0x72);
    q.runUntil(RTC_HZ * 2);
    expect(irq.level).toBe(true);
    rtc.reset();
    expect(irq.level).toBe(false);
    expect(get(rtc, 0x0b)).toBe(0x02);
    expect(get(rtc, 0x0c)).toBe(0);
    expect(get(rtc, 0x40)).toBe(0x99);
    expect(get(rtc, 0)).toBe(0x02);
    expect(q.pending).toBe(0);
  });

  type Op = { k: 'idx'; v: number } | { k: 'w'; v: number } | { k: 'r' } | { k: 'adv'; n: number };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('idx' as const), v: fc.oneof(fc.integer({ min: 0, max: 0x0d }), fc.constantFrom(0x32, 0x40, 0x8c)) }),
    fc.record({ k: fc.constant('w' as const), v: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x02, 0x06, 0x12, 0x22, 0x42, 0x72, 0x82, 0x26, 0x2f, 0x70, 0xc0)) }),
    fc.record({ k: fc.constant('r' as const) }),
    fc.record({ k: fc.constant('adv' as const), n: fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 4 * RTC_HZ })) }),
  );

  it('save, restore into a fresh instance, and both behave identically', () => {
    checkSnapshotRoundTrip<CmosRtcState, CmosRtc, Op>(
      (start) => {
        const queue = new EventQueue(RTC_HZ * 3, start);
        const log: unknown[] = [];
        const device = new CmosRtc({ time: queue, scheduler: queue, irq: { set: (l) => log.push([queue.now(), l]) }, startTime: { year: 2023, month: 12, day: 31, hour: 23, minute: 59, second: 50 } });
        return { queue, device, log };
      },
      opArb,
      (rig, op) => {
        switch (op.k) {
          case 'idx':
            rig.device.ioWrite(0, 1, op.v);
            return null;
          case 'w':
            rig.device.ioWrite(1, 1, op.v);
            return null;
          case 'r':
            return rig.device.ioRead(1, 1);
          default:
            rig.queue.advance(op.n);
            return null;
        }
      },
    );
  });
});
