import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { PIT_HZ, Pit8254 } from '../../../hw/devices/pit8254.ts';
import { Port61, type Port61State } from '../../../hw/devices/port61.ts';
import { checkSnapshotRoundTrip } from './helpers.ts';

function setup() {
  const q = new EventQueue(PIT_HZ);
  const pit = new Pit8254({ time: q, scheduler: q });
  const port = new Port61(pit, q);
  return { q, pit, port };
}

describe('port 0x61', () => {
  it('bit 0 gates PIT counter 2 and bit 5 reads its OUT (the classic calibration loop)', () => {
    const { q, pit, port } = setup();
    port.ioWrite(0, 1, 0x00); // gate low
    pit.ioWrite(3, 1, 0xb0); // counter 2, mode 0
    pit.ioWrite(2, 1, 100);
    pit.ioWrite(2, 1, 0);
    q.runUntil(500);
    expect(port.ioRead(0, 1) & 0x20).toBe(0); // gate low: no counting
    port.ioWrite(0, 1, 0x01); // gate high at tick 500
    q.runUntil(599);
    expect(port.ioRead(0, 1) & 0x20).toBe(0);
    q.runUntil(600);
    expect(port.ioRead(0, 1) & 0x20).toBe(0x20);
  });

  it('reads back bits 0-3 as written and ignores writes to bits 4-7', () => {
    const { port } = setup();
    port.ioWrite(0, 1, 0xff);
    expect(port.ioRead(0, 1) & 0xcf).toBe(0x0f);
    port.ioWrite(0, 1, 0x0a);
    expect(port.ioRead(0, 1) & 0x0f).toBe(0x0a);
  });

  it('bit 4 toggles every 18 PIT ticks', () => {
    const { q, port } = setup();
    const bits: number[] = [];
    for (const t of [0, 17, 18, 35, 36, 54]) {
      q.runUntil(t);
      bits.push((port.ioRead(0, 1) >> 4) & 1);
    }
    expect(bits).toEqual([0, 0, 1, 1, 0, 1]);
  });

  it('reset clears the register and drives the counter 2 gate low', () => {
    const { q, pit, port } = setup();
    port.ioWrite(0, 1, 0x0b);
    pit.ioWrite(3, 1, 0xb0); // counter 2, mode 0, count 100 (loads at tick 1)
    pit.ioWrite(2, 1, 100);
    pit.ioWrite(2, 1, 0);
    q.runUntil(10);
    port.reset();
    expect(port.ioRead(0, 1) & 0x0f).toBe(0);
    q.runUntil(50);
    pit.ioWrite(3, 1, 0x80); // latch counter 2
    expect(pit.ioRead(2, 1)).toBe(91); // suspended since tick 10
  });

  it('save/restore round trip', () => {
    type Op = { k: 'w'; v: number } | { k: 'r' } | { k: 'adv'; n: number };
    checkSnapshotRoundTrip<Port61State, Port61, Op>(
      (start) => {
        const queue = new EventQueue(PIT_HZ, start);
        // The timer is shared state outside this model: each rig gets a timer in the same state.
        const pit = new Pit8254({ time: queue, scheduler: queue });
        pit.ioWrite(3, 1, 0xb6);
        pit.ioWrite(2, 1, 50);
        pit.ioWrite(2, 1, 0);
        pit.setGate(2, true);
        return { queue, device: new Port61(pit, queue), log: [] };
      },
      fc.oneof(
        fc.record({ k: fc.constant('w' as const), v: fc.constantFrom(0x00, 0x03, 0x0c, 0xf3) }),
        fc.record({ k: fc.constant('r' as const) }),
        fc.record({ k: fc.constant('adv' as const), n: fc.integer({ min: 0, max: 100 }) }),
      ),
      (rig, op) => {
        if (op.k === 'w') rig.device.ioWrite(0, 1, op.v);
        else if (op.k === 'adv') rig.queue.advance(op.n);
        else return rig.device.ioRead(0, 1) & 0x1f; // bit 5 depends on the timer's own history
        return null;
      },
    );
  });
});
