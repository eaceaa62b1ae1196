import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { fcParams } from './helpers.ts';

describe('EventQueue', () => {
  it('fires events in cycle order, then insertion order, and advances now()', () => {
    const q = new EventQueue(1000);
    const seen: string[] = [];
    q.schedule(30, () => seen.push(`c@${q.now()}`));
    q.schedule(10, () => seen.push(`a@${q.now()}`));
    q.schedule(10, () => seen.push(`b@${q.now()}`));
    expect(q.nextEventAt()).toBe(10);
    expect(q.runUntil(20)).toBe(2);
    expect(seen).toEqual(['a@10', 'b@10']);
    expect(q.now()).toBe(20);
    q.runUntil(100);
    expect(seen).toEqual(['a@10', 'b@10', 'c@30']);
    expect(q.now()).toBe(100);
    expect(q.nextEventAt()).toBe(Infinity);
  });

  it('cancels events, also from inside callbacks', () => {
    const q = new EventQueue(1000);
    const seen: number[] = [];
    const h2 = q.schedule(20, () => seen.push(2));
    q.schedule(10, () => {
      seen.push(1);
      q.cancel(h2);
    });
    const h3 = q.schedule(5, () => seen.push(3));
    q.cancel(h3);
    q.runUntil(50);
    expect(seen).toEqual([1]);
    expect(q.pending).toBe(0);
  });

  it('runs events scheduled by callbacks within the same runUntil, past ones at once', () => {
    const q = new EventQueue(1000);
    const seen: string[] = [];
    q.schedule(10, () => {
      seen.push(`x@${q.now()}`);
      q.schedule(15, () => seen.push(`y@${q.now()}`));
      q.schedule(3, () => seen.push(`z@${q.now()}`)); // already past: fires now, first
    });
    q.runUntil(20);
    expect(seen).toEqual(['x@10', 'z@10', 'y@15']);
  });

  it('matches a sorted reference for random schedules and cancellations', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.boolean()), { maxLength: 60 }), (items) => {
        const q = new EventQueue(1);
        const fired: number[] = [];
        const handles = items.map(([at], i) => q.schedule(at, () => fired.push(i)));
        items.forEach(([, cancel], i) => cancel && q.cancel(handles[i]!));
        q.runUntil(100);
        const expected = items
          .map(([at, cancel], i) => ({ at, cancel, i }))
          .filter((e) => !e.cancel)
          .sort((a, b) => a.at - b.at || a.i - b.i)
          .map((e) => e.i);
        expect(fired).toEqual(expected);
      }),
      fcParams,
    );
  });
});
