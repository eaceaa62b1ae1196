import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ByteQueue } from '../../../hw/devices/byte-queue.ts';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { HostConsole, type HostConsoleState } from '../../../hw/devices/host-console.ts';
import { checkSnapshotRoundTrip, fcParams, LineRecorder } from './helpers.ts';

const SELECT = 0x0;
const DATA = 0x1;
const STATUS = 0x2;
const IER = 0x3;
const PENDING = 0x4;
const RX_COUNT = 0x8;
const CHANNELS = 0xc;
const ACK = 0xd;

function setup(n = 3) {
  const outs: number[][] = Array.from({ length: n }, () => []);
  const irq = new LineRecorder();
  const con = new HostConsole({ channels: outs.map((o) => ({ write: (b: Uint8Array) => o.push(...b) })), irq });
  return { con, outs, irq };
}
const sel = (c: HostConsole, ch: number): void => c.ioWrite(SELECT, 1, ch);

describe('host console', () => {
  it('routes output bytes to the selected channel', () => {
    const { con, outs } = setup();
    expect(con.ioRead(CHANNELS, 1)).toBe(3);
    sel(con, 1);
    for (const b of [0x6f, 0x6b]) con.ioWrite(DATA, 1, b);
    sel(con, 2);
    con.ioWrite(DATA, 1, 0x21);
    sel(con, 7); // out of range: ignored
    expect(con.ioRead(SELECT, 1)).toBe(2);
    expect(outs).toEqual([[], [0x6f, 0x6b], [0x21]]);
  });

  it('input: status, count, bytes in order, then EOF once closed and drained', () => {
    const { con } = setup();
    con.input(0, [1, 2, 3]);
    sel(con, 0);
    expect(con.ioRead(STATUS, 1)).toBe(0x03);
    expect(con.ioRead(RX_COUNT, 4)).toBe(3);
    con.closeInput(0);
    expect(con.ioRead(STATUS, 1)).toBe(0x03);
    expect([con.ioRead(DATA, 1), con.ioRead(DATA, 1), con.ioRead(DATA, 1)]).toEqual([1, 2, 3]);
    expect(con.ioRead(STATUS, 1)).toBe(0x06);
    expect(con.ioRead(DATA, 1)).toBe(0);
    sel(con, 1);
    expect(con.ioRead(STATUS, 1)).toBe(0x02);
  });

  it('RX interrupt: level while input is buffered on an enabled channel, PENDING names it', () => {
    const { con, irq } = setup();
    sel(con, 2);
    con.ioWrite(IER, 1, 0x01);
    con.input(1, [9]);
    expect(irq.level).toBe(false); // channel 1 not enabled
    con.input(2, [5, 6]);
    expect(irq.level).toBe(true);
    expect(con.ioRead(PENDING, 4)).toBe(0b100);
    con.ioRead(DATA, 1);
    expect(irq.level).toBe(true);
    con.ioRead(DATA, 1);
    expect(irq.level).toBe(false);
    con.closeInput(2); // EOF is an RX condition too
    expect(irq.level).toBe(true);
    expect(con.ioRead(PENDING + 0, 1)).toBe(0b100);
  });

  it('TX: blocked output is dropped and counted; readiness returning raises a TX event', () => {
    const { con, outs, irq } = setup();
    sel(con, 0);
    con.ioWrite(IER, 1, 0x02); // enabling while ready signals at once, like THRE
    expect(con.ioRead(PENDING, 4)).toBe(1);
    con.ioWrite(ACK, 1, 0x02);
    expect(irq.level).toBe(false);
    con.setOutputReady(0, false);
    expect(con.ioRead(STATUS, 1) & 2).toBe(0);
    con.ioWrite(DATA, 1, 0x41);
    expect(outs[0]).toEqual([]);
    expect(con.dropped(0)).toBe(1);
    con.setOutputReady(0, true);
    expect(irq.level).toBe(true);
    con.ioWrite(DATA, 1, 0x42); // writing clears the event
    expect(irq.level).toBe(false);
    expect(outs[0]).toEqual([0x42]);
  });

  it('reset clears guest registers and keeps host input', () => {
    const { con, irq } = setup();
    sel(con, 1);
    con.ioWrite(IER, 1, 0x01);
    con.input(1, [1]);
    expect(irq.level).toBe(true);
    con.reset();
    expect(irq.level).toBe(false);
    expect(con.ioRead(SELECT, 1)).toBe(0);
    expect(con.pendingInput(1)).toBe(1);
  });

  it('ByteQueue keeps order across growth and wrap-around', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 }), fc.integer({ min: 0, max: 30 })), { maxLength: 30 }), (ops) => {
        const q = new ByteQueue(4);
        const ref: number[] = [];
        for (const op of ops) {
          if (typeof op === 'number') {
            for (let i = 0; i < op; i++) expect(q.shift()).toBe(ref.length > 0 ? ref.shift() : -1);
          } else {
            q.push(op);
            ref.push(...op);
          }
          expect(q.toArray()).toEqual(ref);
        }
      }),
      fcParams,
    );
  });

  type Op =
    | { k: 'w'; port: number; v: number }
    | { k: 'r'; port: number }
    | { k: 'in'; ch: number; bytes: number[] }
    | { k: 'eof'; ch: number }
    | { k: 'ready'; ch: number; ready: boolean };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('w' as const), port: fc.constantFrom(SELECT, DATA, IER, ACK, 0xe), v: fc.integer({ min: 0, max: 3 }) }),
    fc.record({ k: fc.constant('w' as const), port: fc.integer({ min: 0, max: 15 }), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('r' as const), port: fc.integer({ min: 0, max: 15 }) }),
    fc.record({ k: fc.constant('in' as const), ch: fc.integer({ min: 0, max: 2 }), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 5 }) }),
    fc.record({ k: fc.constant('eof' as const), ch: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ k: fc.constant('ready' as const), ch: fc.integer({ min: 0, max: 2 }), ready: fc.boolean() }),
  );

  it('save, restore into a fresh instance, and both behave identically', () => {
    checkSnapshotRoundTrip<HostConsoleState, HostConsole, Op>(
      (start) => {
        const log: unknown[] = [];
        const device = new HostConsole({
          channels: [0, 1, 2].map((ch) => ({ write: (b: Uint8Array) => log.push([ch, ...b]) })),
          irq: { set: (l) => log.push(l) },
        });
        return { queue: new EventQueue(1000, start), device, log };
      },
      opArb,
      (rig, op) => {
        const c = rig.device;
        switch (op.k) {
          case 'w':
            c.ioWrite(op.port, 1, op.v);
            return null;
          case 'r':
            return c.ioRead(op.port, 1);
          case 'in':
            c.input(op.ch, op.bytes);
            return null;
          case 'eof':
            c.closeInput(op.ch);
            return null;
          default:
            c.setOutputReady(op.ch, op.ready);
            return c.dropped(op.ch);
        }
      },
    );
  });
});
