import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { I8042, type I8042State } from '../../../hw/devices/i8042.ts';
import { checkSnapshotRoundTrip, LineRecorder } from './helpers.ts';

const DATA = 0;
const CMD = 4;

function setup() {
  const kbdIrq = new LineRecorder();
  const auxIrq = new LineRecorder();
  const events: string[] = [];
  const kbc = new I8042({ kbdIrq, auxIrq, onReset: () => events.push('reset'), onA20: (on) => events.push(`a20:${on}`) });
  return { kbc, kbdIrq, auxIrq, events };
}
const status = (k: I8042): number => k.ioRead(CMD, 1);
/** Reads every byte in the output buffer (as a driver's flush does). */
function drain(k: I8042): number[] {
  const out: number[] = [];
  while (status(k) & 1) out.push(k.ioRead(DATA, 1));
  return out;
}

describe('8042 controller commands', () => {
  it('status after reset; self test answers 0x55 and sets the system flag', () => {
    const { kbc } = setup();
    expect(status(kbc)).toBe(0x18);
    kbc.ioWrite(CMD, 1, 0xaa);
    expect(status(kbc)).toBe(0x1d);
    expect(kbc.ioRead(DATA, 1)).toBe(0x55);
    expect(status(kbc) & 1).toBe(0);
  });

  it('interface tests answer 0x00', () => {
    const { kbc } = setup();
    kbc.ioWrite(CMD, 1, 0xab);
    expect(drain(kbc)).toEqual([0x00]);
    kbc.ioWrite(CMD, 1, 0xa9);
    expect(drain(kbc)).toEqual([0x00]);
  });

  it('reads and writes the command byte; bit 2 is the system flag', () => {
    const { kbc } = setup();
    kbc.ioWrite(CMD, 1, 0x20);
    expect(drain(kbc)).toEqual([0x03]);
    kbc.ioWrite(CMD, 1, 0x60);
    expect(status(kbc) & 0x08).toBe(0x08);
    kbc.ioWrite(DATA, 1, 0x65);
    expect(status(kbc) & 0x0c).toBe(0x04);
    kbc.ioWrite(CMD, 1, 0x20);
    expect(drain(kbc)).toEqual([0x65]);
    kbc.ioWrite(CMD, 1, 0xa7);
    kbc.ioWrite(CMD, 1, 0xad);
    kbc.ioWrite(CMD, 1, 0x20);
    expect(drain(kbc)).toEqual([0x75]);
    kbc.ioWrite(CMD, 1, 0xa8);
    kbc.ioWrite(CMD, 1, 0xae);
    kbc.ioWrite(CMD, 1, 0x20);
    expect(drain(kbc)).toEqual([0x45]);
  });

  it('output port: A20 and reset bits, 0xDD/0xDF, pulse 0xFE', () => {
    const { kbc, events } = setup();
    expect(kbc.a20).toBe(true);
    kbc.ioWrite(CMD, 1, 0xd0);
    expect(drain(kbc)).toEqual([0xcf]);
    kbc.ioWrite(CMD, 1, 0xd1);
    kbc.ioWrite(DATA, 1, 0xdd); // A20 off, reset line inactive
    expect(events).toEqual(['a20:false']);
    expect(kbc.a20).toBe(false);
    kbc.ioWrite(CMD, 1, 0xd1);
    kbc.ioWrite(DATA, 1, 0xdf);
    kbc.ioWrite(CMD, 1, 0xdd);
    kbc.ioWrite(CMD, 1, 0xdf);
    expect(events).toEqual(['a20:false', 'a20:true', 'a20:false', 'a20:true']);
    kbc.ioWrite(CMD, 1, 0xfe);
    expect(events.at(-1)).toBe('reset');
    kbc.ioWrite(CMD, 1, 0xff); // pulses nothing
    kbc.ioWrite(CMD, 1, 0xd1);
    kbc.ioWrite(DATA, 1, 0x02); // bit 0 clear: reset
    expect(events.slice(-2)).toEqual(['a20:true', 'reset']);
  });

  it('the output port read reports the IRQ1 and IRQ12 outputs', () => {
    const { kbc } = setup();
    kbc.ioWrite(DATA, 1, 0xee); // keyboard echo waits in the buffer: IRQ1 high
    kbc.ioWrite(CMD, 1, 0xd0);
    // The echo is delivered first; the output-port byte queues behind it.
    expect(kbc.ioRead(DATA, 1)).toBe(0xee);
    expect(kbc.ioRead(DATA, 1) & 0x30).toBe(0x10);
  });
});

describe('8042 keyboard', () => {
  it('reset answers ACK then BAT OK, one IRQ1 edge per byte', () => {
    const { kbc, kbdIrq } = setup();
    kbc.ioWrite(DATA, 1, 0xff);
    expect(kbdIrq.level).toBe(true);
    expect(kbc.ioRead(DATA, 1)).toBe(0xfa);
    expect(kbc.ioRead(DATA, 1)).toBe(0xaa);
    expect(kbdIrq.log.map(([, l]) => l)).toEqual([true, false, true, false]);
    expect(status(kbc) & 1).toBe(0);
  });

  it('identify: MF2 keyboard, 0x83 or 0x41 when translating', () => {
    const { kbc } = setup();
    kbc.ioWrite(DATA, 1, 0xf2);
    expect(drain(kbc)).toEqual([0xfa, 0xab, 0x83]);
    kbc.ioWrite(CMD, 1, 0x60);
    kbc.ioWrite(DATA, 1, 0x47);
    kbc.ioWrite(DATA, 1, 0xf2);
    expect(drain(kbc)).toEqual([0xfa, 0xab, 0x41]);
  });

  it('set LEDs, typematic and scan code set take a parameter byte', () => {
    const { kbc } = setup();
    kbc.ioWrite(DATA, 1, 0xed);
    kbc.ioWrite(DATA, 1, 0x07);
    kbc.ioWrite(DATA, 1, 0xf3);
    kbc.ioWrite(DATA, 1, 0x20);
    kbc.ioWrite(DATA, 1, 0xf0);
    kbc.ioWrite(DATA, 1, 0x00);
    expect(drain(kbc)).toEqual([0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0x02]);
    expect(kbc.save().leds).toBe(7);
    kbc.ioWrite(DATA, 1, 0x12); // not a command
    expect(drain(kbc)).toEqual([0xfe]);
  });

  it('enable/disable scanning gates injected scan codes', () => {
    const { kbc } = setup();
    kbc.ioWrite(DATA, 1, 0xf5);
    expect(drain(kbc)).toEqual([0xfa]);
    kbc.keyboardInput([0x1e, 0x9e]);
    expect(drain(kbc)).toEqual([]);
    kbc.ioWrite(DATA, 1, 0xf4);
    kbc.keyboardInput([0x1e, 0x9e]);
    expect(drain(kbc)).toEqual([0xfa, 0x1e, 0x9e]);
  });

  it('a disabled keyboard interface holds keyboard bytes but not controller replies', () => {
    const { kbc } = setup();
    kbc.ioWrite(CMD, 1, 0xad);
    kbc.keyboardInput([0x1c]);
    kbc.ioWrite(CMD, 1, 0xaa);
    expect(drain(kbc)).toEqual([0x55]);
    kbc.ioWrite(CMD, 1, 0xae);
    expect(drain(kbc)).toEqual([0x1c]);
  });

  it('IRQ1 follows command byte bit 0', () => {
    const { kbc, kbdIrq } = setup();
    kbc.ioWrite(CMD, 1, 0x60);
    kbc.ioWrite(DATA, 1, 0x00);
    kbc.keyboardInput([0x10]);
    expect(kbdIrq.level).toBe(false);
    expect(status(kbc) & 1).toBe(1);
    kbc.ioWrite(CMD, 1, 0x60);
    kbc.ioWrite(DATA, 1, 0x01);
    expect(kbdIrq.level).toBe(true);
  });
});

describe('8042 auxiliary port', () => {
  it('0xD3 loops a byte back as auxiliary data with IRQ12; 0xD4 to the absent mouse answers 0xFE', () => {
    const { kbc, auxIrq, kbdIrq } = setup();
    kbc.ioWrite(CMD, 1, 0xd3);
    kbc.ioWrite(DATA, 1, 0x5a);
    expect(status(kbc) & 0x21).toBe(0x21);
    expect(auxIrq.level).toBe(true);
    expect(kbdIrq.level).toBe(false);
    expect(kbc.ioRead(DATA, 1)).toBe(0x5a);
    expect(auxIrq.level).toBe(false);
    kbc.ioWrite(CMD, 1, 0xd4);
    kbc.ioWrite(DATA, 1, 0xff);
    expect(status(kbc) & 0x21).toBe(0x21);
    expect(drain(kbc)).toEqual([0xfe]);
  });
});

describe('8042 reset and save/restore', () => {
  it('reset returns to the power-on state and drops the IRQ lines', () => {
    const { kbc, kbdIrq, events } = setup();
    kbc.ioWrite(DATA, 1, 0xff);
    kbc.ioWrite(CMD, 1, 0xdd);
    kbc.reset();
    expect(kbdIrq.level).toBe(false);
    expect(status(kbc)).toBe(0x18);
    expect(kbc.a20).toBe(true);
    expect(events).toEqual(['a20:false']);
  });

  type Op = { k: 'cmd'; v: number } | { k: 'data'; v: number } | { k: 'r'; port: number } | { k: 'key'; bytes: number[] };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('cmd' as const), v: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x20, 0x60, 0xa7, 0xa8, 0xaa, 0xad, 0xae, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xdd, 0xdf, 0xfe)) }),
    fc.record({ k: fc.constant('data' as const), v: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0xff, 0xf2, 0xf4, 0xf5, 0xed, 0xf0, 0xee)) }),
    fc.record({ k: fc.constant('r' as const), port: fc.constantFrom(0, 4) }),
    fc.record({ k: fc.constant('key' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 6 }) }),
  );

  it('save, restore into a fresh instance, and both behave identically', () => {
    checkSnapshotRoundTrip<I8042State, I8042, Op>(
      (start) => {
        const queue = new EventQueue(1000, start);
        const log: unknown[] = [];
        const device = new I8042({
          kbdIrq: { set: (l) => log.push(['irq1', l]) },
          auxIrq: { set: (l) => log.push(['irq12', l]) },
          onReset: () => log.push('reset'),
          onA20: (on) => log.push(['a20', on]),
        });
        return { queue, device, log };
      },
      opArb,
      (rig, op) => {
        switch (op.k) {
          case 'cmd':
            rig.device.ioWrite(CMD, 1, op.v);
            return null;
          case 'data':
            rig.device.ioWrite(DATA, 1, op.v);
            return null;
          case 'r':
            return rig.device.ioRead(op.port, 1);
          default:
            rig.device.keyboardInput(op.bytes);
            return null;
        }
      },
    );
  });
});
