import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { PostCode, type PostCodeState } from '../../../hw/devices/post-code.ts';
import { checkSnapshotRoundTrip } from './helpers.ts';

describe('port 0x80 POST codes', () => {
  it('records written codes in order and reads 0xFF', () => {
    const seen: number[] = [];
    const post = new PostCode(1024, (c) => seen.push(c));
    for (const c of [0x01, 0x55, 0xaa, 0x1ff]) post.ioWrite(0, 1, c);
    expect(post.codes).toEqual([0x01, 0x55, 0xaa, 0xff]);
    expect(seen).toEqual([0x01, 0x55, 0xaa, 0xff]);
    expect(post.ioRead(0, 1)).toBe(0xff);
  });

  it('keeps the most recent codes within its capacity and counts all', () => {
    const post = new PostCode(3);
    for (let i = 0; i < 10; i++) post.ioWrite(0, 1, i);
    expect(post.codes).toEqual([7, 8, 9]);
    expect(post.total).toBe(10);
  });

  it('save/restore round trip', () => {
    type Op = { k: 'w'; v: number } | { k: 'r' };
    checkSnapshotRoundTrip<PostCodeState, PostCode, Op>(
      (start) => ({ queue: new EventQueue(1000, start), device: new PostCode(8), log: [] }),
      fc.oneof(fc.record({ k: fc.constant('w' as const), v: fc.integer({ min: 0, max: 255 }) }), fc.record({ k: fc.constant('r' as const) })),
      (rig, op) => {
        if (op.k === 'r') return [...rig.device.codes, rig.device.total];
        rig.device.ioWrite(0, 1, op.v);
        return null;
      },
    );
  });
});
