/**
 * Shared test helpers for the device models: a recording IrqLine, fast-check settings with a
 * fixed seed, and the save/restore round-trip property every device must satisfy.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import type { IrqLine, PortDevice, Snapshottable, TimeSource } from '../../../hw/devices/types.ts';

/** fast-check runs with a fixed seed (override with FC_SEED); failures print the seed and path. */
export const FC_SEED = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : 0x5eed;
export const fcParams = { seed: FC_SEED, numRuns: 150, verbose: 1 } as const;

/** An IrqLine that records every set() call with the time it happened. */
export class LineRecorder implements IrqLine {
  level = false;
  readonly log: Array<[number, boolean]> = [];
  constructor(private readonly time?: TimeSource) {}
  set(level: boolean): void {
    this.level = level;
    this.log.push([this.time?.now() ?? 0, level]);
  }
  /** Cycles at which the line rose. */
  rises(): number[] {
    return this.log.filter(([, l]) => l).map(([t]) => t);
  }
  falls(): number[] {
    return this.log.filter(([, l]) => !l).map(([t]) => t);
  }
  clear(): void {
    this.log.length = 0;
  }
}

export interface Rig<S, D extends PortDevice & Snapshottable<S> = PortDevice & Snapshottable<S>> {
  queue: EventQueue;
  device: D;
  /** Everything observable outside the device (lines, sinks, callbacks), appended in order. */
  log: unknown[];
}

/**
 * The save/restore property: run random operations on a device, save (through JSON, so the
 * state must be plain data), restore into a fresh instance at the same time, then run the same
 * further operations on both: every observation, everything they emit and their final states
 * must be identical.
 */
export function checkSnapshotRoundTrip<S, D extends PortDevice & Snapshottable<S>, Op>(
  make: (startCycle: number) => Rig<S, D>,
  opArb: fc.Arbitrary<Op>,
  apply: (rig: Rig<S, D>, op: Op) => unknown,
  params: { numRuns?: number; maxOps?: number } = {},
): void {
  const maxOps = params.maxOps ?? 40;
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: maxOps }), fc.array(opArb, { maxLength: maxOps }), (prefix, suffix) => {
      const a = make(0);
      for (const op of prefix) apply(a, op);
      const json = JSON.stringify(a.device.save());
      const b = make(a.queue.now());
      b.device.restore(JSON.parse(json) as S);
      expect(JSON.stringify(b.device.save())).toBe(json);
      a.log.length = 0;
      b.log.length = 0;
      const obsA = suffix.map((op) => apply(a, op));
      const obsB = suffix.map((op) => apply(b, op));
      expect(obsB).toEqual(obsA);
      expect(b.log).toEqual(a.log);
      expect(b.queue.now()).toBe(a.queue.now());
      expect(JSON.stringify(b.device.save())).toBe(JSON.stringify(a.device.save()));
    }),
    { ...fcParams, numRuns: params.numRuns ?? fcParams.numRuns },
  );
}

/** An IrqLine that appends its transitions (with the time) to a rig log. */
export function loggingLine(log: unknown[], name: string, time: TimeSource): IrqLine {
  return { set: (level: boolean) => log.push([name, time.now(), level]) };
}
