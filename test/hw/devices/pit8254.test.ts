import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { PIT_HZ, Pit8254, type Pit8254State } from '../../../hw/devices/pit8254.ts';
import { checkSnapshotRoundTrip, LineRecorder, loggingLine, type Rig } from './helpers.ts';

// With the cycle clock at the PIT rate, cycle n is PIT tick n: timings read straight off the
// data sheet.
function setup(hz = PIT_HZ) {
  const q = new EventQueue(hz);
  const irq0 = new LineRecorder(q);
  const pit = new Pit8254({ time: q, scheduler: q, outputs: [irq0] });
  return { q, pit, irq0 };
}

const control = (pit: Pit8254, v: number): void => pit.ioWrite(3, 1, v);
function load16(pit: Pit8254, c: number, n: number): void {
  pit.ioWrite(c, 1, n & 0xff);
  pit.ioWrite(c, 1, (n >> 8) & 0xff);
}
/** Counter latch command, then LSB and MSB. */
function latched(pit: Pit8254, c: number): number {
  control(pit, c << 6);
  const lo = pit.ioRead(c, 1);
  return lo | (pit.ioRead(c, 1) << 8);
}
/** Read-back command latching only the status of counter c. */
function status(pit: Pit8254, c: number): number {
  control(pit, 0xe0 | (2 << c));
  return pit.ioRead(c, 1);
}
/** Counts of counter c (latched) at each of the given ticks. */
function countsAt(q: EventQueue, pit: Pit8254, c: number, ticks: number[]): number[] {
  return ticks.map((t) => {
    q.runUntil(t);
    return latched(pit, c);
  });
}
function outputsAt(q: EventQueue, pit: Pit8254, c: number, ticks: number[]): boolean[] {
  return ticks.map((t) => {
    q.runUntil(t);
    return pit.output(c);
  });
}

describe('8254 mode 0: interrupt on terminal count', () => {
  it('OUT goes low on the control word and high N+1 ticks after the count write', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x30); // counter 0, LSB then MSB, mode 0, binary
    expect(pit.output(0)).toBe(false);
    load16(pit, 0, 10);
    expect(countsAt(q, pit, 0, [1, 2, 5, 10, 11, 12])).toEqual([10, 9, 6, 1, 0, 0xffff]);
    q.runUntil(1000);
    expect(irq0.log).toEqual([[0, false], [11, true]]);
    expect(q.pending).toBe(0); // nothing left to schedule after terminal count
  });

  it('writing the first byte of a new count stops counting and drives OUT low', () => {
    const { q, pit } = setup();
    control(pit, 0x30);
    load16(pit, 0, 100);
    q.runUntil(20);
    expect(latched(pit, 0)).toBe(81);
    pit.ioWrite(0, 1, 50); // LSB only: counting stops
    expect(pit.output(0)).toBe(false);
    q.runUntil(40);
    expect(latched(pit, 0)).toBe(81);
    pit.ioWrite(0, 1, 0); // MSB: count 50 loads on the next tick
    expect(countsAt(q, pit, 0, [41, 60])).toEqual([50, 31]);
    expect(outputsAt(q, pit, 0, [90, 91])).toEqual([false, true]);
  });

  it('GATE low suspends counting without touching OUT', () => {
    const { q, pit } = setup();
    control(pit, 0xb0); // counter 2, mode 0 (its gate starts low)
    load16(pit, 2, 5);
    expect(countsAt(q, pit, 2, [8])).toEqual([5]);
    q.runUntil(10);
    pit.setGate(2, true);
    expect(countsAt(q, pit, 2, [10, 11, 14])).toEqual([5, 4, 1]);
    expect(outputsAt(q, pit, 2, [14, 15])).toEqual([false, true]);

    control(pit, 0xb0);
    load16(pit, 2, 10); // at tick 15, loads at 16
    q.runUntil(20);
    expect(latched(pit, 2)).toBe(6);
    pit.setGate(2, false);
    q.runUntil(50);
    expect(latched(pit, 2)).toBe(6);
    pit.setGate(2, true);
    expect(outputsAt(q, pit, 2, [55, 56])).toEqual([false, true]);
  });
});

describe('8254 mode 1: hardware retriggerable one-shot', () => {
  it('a GATE rising edge starts an N-tick low pulse on the next tick; retriggering restarts it', () => {
    const { q, pit } = setup();
    control(pit, 0xb2); // counter 2, mode 1
    load16(pit, 2, 4);
    expect(status(pit, 2) & 0x40).toBe(0x40); // null count until the trigger loads it
    q.runUntil(10);
    expect(pit.output(2)).toBe(true);
    pit.setGate(2, true);
    expect(outputsAt(q, pit, 2, [10, 11, 14, 15])).toEqual([true, false, false, true]);
    expect(status(pit, 2) & 0x40).toBe(0);
    q.runUntil(20);
    pit.setGate(2, false);
    q.runUntil(21);
    pit.setGate(2, true);
    q.runUntil(23);
    pit.setGate(2, false);
    q.runUntil(24);
    pit.setGate(2, true); // retrigger during the pulse: reload at 25
    expect(outputsAt(q, pit, 2, [25, 28, 29])).toEqual([false, false, true]);
  });
});

describe('8254 mode 2: rate generator', () => {
  it('OUT is low for one tick every N ticks; counts never read 0', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x34);
    load16(pit, 0, 5);
    expect(countsAt(q, pit, 0, [1, 2, 3, 4, 5, 6, 7])).toEqual([5, 4, 3, 2, 1, 5, 4]);
    q.runUntil(21);
    expect(irq0.falls()).toEqual([5, 10, 15, 20]);
    expect(irq0.rises()).toEqual([6, 11, 16, 21]);
  });

  it('a new count takes effect at the end of the current period', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x34);
    load16(pit, 0, 5);
    q.runUntil(7);
    load16(pit, 0, 3);
    expect(status(pit, 0) & 0x40).toBe(0x40); // not yet in the counting element
    q.runUntil(18);
    expect(irq0.falls()).toEqual([5, 10, 13, 16]);
    expect(irq0.rises()).toEqual([6, 11, 14, 17]);
    expect(status(pit, 0) & 0x40).toBe(0);
  });

  it('GATE low forces OUT high and stops; GATE high reloads on the next tick', () => {
    const { q, pit } = setup();
    control(pit, 0xb4); // counter 2, mode 2
    pit.setGate(2, true);
    load16(pit, 2, 4);
    expect(outputsAt(q, pit, 2, [4, 5, 8])).toEqual([false, true, false]);
    pit.setGate(2, false); // during the low tick
    expect(pit.output(2)).toBe(true);
    q.runUntil(30);
    expect(latched(pit, 2)).toBe(1);
    pit.setGate(2, true);
    expect(countsAt(q, pit, 2, [31, 33])).toEqual([4, 2]);
    expect(outputsAt(q, pit, 2, [33, 34, 35])).toEqual([true, false, true]);
  });

  it('count 0 means 65536: IRQ0 at 18.2 Hz', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x34);
    load16(pit, 0, 0);
    q.runUntil(PIT_HZ); // one second
    expect(irq0.rises()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18].map((k) => 1 + 65536 * k));
  });
});

describe('8254 mode 3: square wave', () => {
  it('even count: N/2 high, N/2 low, counting down by two', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x36);
    load16(pit, 0, 6);
    expect(countsAt(q, pit, 0, [1, 2, 3, 4, 5, 6, 7])).toEqual([6, 4, 2, 6, 4, 2, 6]);
    q.runUntil(20);
    expect(irq0.falls()).toEqual([4, 10, 16]);
    expect(irq0.rises()).toEqual([7, 13, 19]);
  });

  it('odd count: (N+1)/2 high, (N-1)/2 low', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x36);
    load16(pit, 0, 5);
    expect(countsAt(q, pit, 0, [1, 2, 3, 4, 5, 6])).toEqual([4, 2, 0, 4, 2, 4]);
    q.runUntil(16);
    expect(irq0.falls()).toEqual([4, 9, 14]);
    expect(irq0.rises()).toEqual([6, 11, 16]);
  });

  it('a new count takes effect at the end of the current half period', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x36);
    load16(pit, 0, 10);
    q.runUntil(3); // high phase: ticks 1-5
    load16(pit, 0, 4);
    q.runUntil(20);
    expect(irq0.falls()).toEqual([6, 10, 14, 18]);
    expect(irq0.rises()).toEqual([8, 12, 16, 20]);
  });
});

describe('8254 mode 4 and 5: strobes', () => {
  it('mode 4: OUT low for one tick N+1 ticks after the count write, once', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x38);
    load16(pit, 0, 3);
    q.runUntil(100);
    expect(irq0.log).toEqual([[4, false], [5, true]]);
  });

  it('mode 5: the strobe comes N+1 ticks after a GATE rising edge', () => {
    const { q, pit } = setup();
    control(pit, 0xba); // counter 2, mode 5
    load16(pit, 2, 3);
    q.runUntil(10);
    pit.setGate(2, true);
    expect(outputsAt(q, pit, 2, [13, 14, 15, 40])).toEqual([true, false, true, true]);
  });
});

describe('8254 access modes, latch and read-back', () => {
  it('counter latch freezes the value until read; a second latch before the read is ignored', () => {
    const { q, pit } = setup();
    control(pit, 0x34);
    load16(pit, 0, 1000);
    q.runUntil(100);
    control(pit, 0x00);
    q.runUntil(200);
    control(pit, 0x00); // ignored
    expect(pit.ioRead(0, 1) | (pit.ioRead(0, 1) << 8)).toBe(901);
    expect(latched(pit, 0)).toBe(801);
  });

  it('unlatched LSB/MSB reads alternate and see the live count', () => {
    const { q, pit } = setup();
    control(pit, 0x34);
    load16(pit, 0, 0x1234);
    q.runUntil(1);
    expect(pit.ioRead(0, 1)).toBe(0x34);
    q.runUntil(0x35); // count 0x1200
    expect(pit.ioRead(0, 1)).toBe(0x12);
    expect(pit.ioRead(0, 1)).toBe(0x00);
  });

  it('LSB-only and MSB-only access', () => {
    const { q, pit } = setup();
    control(pit, 0x14); // LSB only, mode 2
    pit.ioWrite(0, 1, 0x20);
    q.runUntil(1);
    expect(pit.ioRead(0, 1)).toBe(0x20);
    expect(pit.ioRead(0, 1)).toBe(0x20);
    control(pit, 0x24); // MSB only
    pit.ioWrite(0, 1, 0x02); // count 0x200, loads at tick 2
    q.runUntil(2);
    expect(pit.ioRead(0, 1)).toBe(0x02);
    q.runUntil(3);
    expect(pit.ioRead(0, 1)).toBe(0x01);
    expect(status(pit, 0)).toBe(0x80 | (2 << 4) | (2 << 1));
  });

  it('status byte: OUTPUT, NULL COUNT, RW, mode, BCD', () => {
    const { q, pit } = setup();
    expect(status(pit, 0)).toBe(0xf6); // after reset: OUT high, null count, LSB/MSB, mode 3
    control(pit, 0x34);
    expect(status(pit, 0)).toBe(0xf4);
    load16(pit, 0, 5);
    expect(status(pit, 0)).toBe(0xf4); // loads on the next tick
    q.runUntil(1);
    expect(status(pit, 0)).toBe(0xb4);
    q.runUntil(5);
    expect(status(pit, 0)).toBe(0x34); // OUT low at count 1
    control(pit, 0x3f); // mode 7 (= 3) BCD: reported as written
    expect(status(pit, 0)).toBe(0xc0 | 0x30 | (7 << 1) | 1);
    control(pit, 0x30);
    expect(status(pit, 0) & 0x80).toBe(0); // mode 0 OUT starts low
  });

  it('read-back latches status then count for several counters at once', () => {
    const { q, pit } = setup();
    control(pit, 0x34);
    load16(pit, 0, 300);
    control(pit, 0xb0);
    pit.setGate(2, true);
    load16(pit, 2, 700);
    q.runUntil(101);
    control(pit, 0xc0 | 0x08 | 0x02); // latch count and status of counters 0 and 2
    q.runUntil(150);
    control(pit, 0xc0 | 0x08 | 0x02); // both already latched: ignored
    expect([pit.ioRead(0, 1), pit.ioRead(0, 1), pit.ioRead(0, 1)]).toEqual([0xb4, 200 & 0xff, 200 >> 8]);
    expect([pit.ioRead(2, 1), pit.ioRead(2, 1), pit.ioRead(2, 1)]).toEqual([0x30, 600 & 0xff, 600 >> 8]);
    control(pit, 0xd0 | 0x02); // count only (status bit 4 = 1)
    expect(pit.ioRead(0, 1) | (pit.ioRead(0, 1) << 8)).toBe(300 - 149); // the live count at tick 150
  });

  it('BCD counting', () => {
    const { q, pit, irq0 } = setup();
    control(pit, 0x35); // mode 2, BCD
    load16(pit, 0, 0x0100); // 100 decimal
    expect(countsAt(q, pit, 0, [1, 11, 92])).toEqual([0x0100, 0x0090, 0x0009]);
    q.runUntil(202);
    expect(irq0.rises()).toEqual([101, 201]);
    control(pit, 0x31); // mode 0, BCD: wraps from 0 to 9999
    load16(pit, 0, 0x0002);
    expect(countsAt(q, pit, 0, [205, 206])).toEqual([0x0000, 0x9999]);
  });
});

describe('8254 timing against the 2.2 GHz cycle clock', () => {
  it('mode 2 with count 1193 gives 1000 IRQ0 edges a second, at the exact cycles, with two events per period', () => {
    const hz = 2_200_000_000;
    const { q, pit, irq0 } = setup(hz);
    control(pit, 0x34);
    load16(pit, 0, 1193);
    let fired = 0;
    for (let c = 0; c < hz; c += 10_000_000) fired += q.runUntil(Math.min(hz, c + 10_000_000));
    const rises = irq0.rises();
    expect(rises.length).toBe(1000);
    const cycleOf = (tick: number): number => Number((BigInt(tick) * BigInt(hz) + BigInt(PIT_HZ) - 1n) / BigInt(PIT_HZ));
    expect(rises[0]).toBe(cycleOf(1 + 1193));
    expect(rises[999]).toBe(cycleOf(1 + 1193 * 1000));
    expect(fired).toBeLessThanOrEqual(2001);
  });

  it('counters without an output line schedule nothing', () => {
    const { q, pit } = setup();
    control(pit, 0x74); // counter 1, mode 2
    load16(pit, 1, 10);
    control(pit, 0xb6); // counter 2, mode 3
    pit.setGate(2, true);
    load16(pit, 2, 10);
    expect(q.pending).toBe(0);
    q.runUntil(25);
    expect(latched(pit, 1)).toBe(6);
  });
});

describe('8254 save/restore and reset', () => {
  it('reset leaves every counter unprogrammed and cancels events', () => {
    const { q, pit } = setup();
    control(pit, 0x34);
    load16(pit, 0, 5);
    q.runUntil(3);
    pit.reset();
    expect(q.pending).toBe(0);
    expect(status(pit, 0)).toBe(0xf6);
  });

  type Op =
    | { k: 'w'; port: number; v: number }
    | { k: 'r'; port: number }
    | { k: 'adv'; n: number }
    | { k: 'gate'; level: boolean }
    | { k: 'out'; c: number };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('w' as const), port: fc.integer({ min: 0, max: 3 }), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('w' as const), port: fc.constant(3), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('r' as const), port: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ k: fc.constant('adv' as const), n: fc.integer({ min: 0, max: 3000 }) }),
    fc.record({ k: fc.constant('gate' as const), level: fc.boolean() }),
    fc.record({ k: fc.constant('out' as const), c: fc.integer({ min: 0, max: 2 }) }),
  );

  it('save, restore into a fresh instance, and both behave identically', () => {
    checkSnapshotRoundTrip<Pit8254State, Pit8254, Op>(
      (start) => {
        const queue = new EventQueue(PIT_HZ * 3, start);
        const log: unknown[] = [];
        const device = new Pit8254({ time: queue, scheduler: queue, outputs: [loggingLine(log, 'irq0', queue)] });
        return { queue, device, log };
      },
      opArb,
      (rig: Rig<Pit8254State, Pit8254>, op: Op) => {
        switch (op.k) {
          case 'w':
            rig.device.ioWrite(op.port, 1, op.v);
            return null;
          case 'r':
            return rig.device.ioRead(op.port, 1);
          case 'adv':
            rig.queue.advance(op.n);
            return null;
          case 'gate':
            rig.device.setGate(2, op.level);
            return null;
          default:
            return rig.device.output(op.c);
        }
      },
    );
  });
});
