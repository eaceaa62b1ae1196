import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { Port92, type Port92State } from '../../../hw/devices/port92.ts';
import { checkSnapshotRoundTrip } from './helpers.ts';

function setup() {
  const events: string[] = [];
  const port = new Port92({ onReset: () => events.push('reset'), onA20: (on) => events.push(`a20:${on}`) });
  return { port, events };
}

describe('port 0x92', () => {
  it('bit 1 drives A20 on every write; reads return the value written', () => {
    const { port, events } = setup();
    port.ioWrite(0, 1, 0x02);
    expect(port.ioRead(0, 1)).toBe(0x02);
    port.ioWrite(0, 1, 0x00);
    expect(events).toEqual(['a20:true', 'a20:false']);
  });

  it('bit 0 resets on its rising edge only', () => {
    const { port, events } = setup();
    port.ioWrite(0, 1, 0x03);
    port.ioWrite(0, 1, 0x03);
    expect(events.filter((e) => e === 'reset').length).toBe(1);
    port.reset();
    expect(port.ioRead(0, 1)).toBe(0x02);
    port.ioWrite(0, 1, 0x01);
    expect(events.filter((e) => e === 'reset').length).toBe(2);
  });

  it('save/restore round trip', () => {
    type Op = { k: 'w'; v: number } | { k: 'r' };
    checkSnapshotRoundTrip<Port92State, Port92, Op>(
      (start) => {
        const log: unknown[] = [];
        return { queue: new EventQueue(1000, start), device: new Port92({ onReset: () => log.push('reset'), onA20: (on) => log.push(on) }), log };
      },
      fc.oneof(fc.record({ k: fc.constant('w' as const), v: fc.integer({ min: 0, max: 255 }) }), fc.record({ k: fc.constant('r' as const) })),
      (rig, op) => {
        if (op.k === 'r') return rig.device.ioRead(0, 1);
        rig.device.ioWrite(0, 1, op.v);
        return null;
      },
    );
  });
});
