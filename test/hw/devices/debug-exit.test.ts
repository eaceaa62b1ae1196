import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DebugExit, type DebugExitState } from '../../../hw/devices/debug-exit.ts';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { checkSnapshotRoundTrip } from './helpers.ts';

describe('isa-debug-exit', () => {
  it('a write of v exits with (v << 1) | 1, as QEMU', () => {
    const exits: number[] = [];
    const dev = new DebugExit((s) => exits.push(s));
    dev.ioWrite(0, 1, 0);
    dev.ioWrite(0, 4, 0x10);
    dev.ioWrite(0, 2, 0x31);
    dev.ioWrite(0, 1, 0x1ff); // a byte write carries 8 bits
    expect(exits).toEqual([1, 0x21, 0x63, 0x1ff]);
    expect(dev.status).toBe(0x1ff);
    expect(dev.ioRead(0, 4)).toBe(0);
  });

  it('a 32-bit value wraps modulo 2^32', () => {
    const exits: number[] = [];
    new DebugExit((s) => exits.push(s)).ioWrite(0, 4, 0x80000001);
    expect(exits).toEqual([3]);
  });

  it('save/restore round trip', () => {
    type Op = { v: number };
    checkSnapshotRoundTrip<DebugExitState, DebugExit, Op>(
      (start) => {
        const log: unknown[] = [];
        return { queue: new EventQueue(1000, start), device: new DebugExit((s) => log.push(s)), log };
      },
      fc.record({ v: fc.integer({ min: 0, max: 255 }) }),
      (rig, op) => {
        rig.device.ioWrite(0, 1, op.v);
        return rig.device.status;
      },
    );
  });
});
