import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { Pic8259, type Pic8259State } from '../../../hw/devices/pic8259.ts';
import { checkSnapshotRoundTrip, LineRecorder, loggingLine } from './helpers.ts';

const M_CMD = 0;
const M_DATA = 1;
const S_CMD = 2;
const S_DATA = 3;

/** The initialisation Linux and BIOSes do: edge, cascade, ICW4; vectors 0x20 and 0x28. */
function init(pic: Pic8259, icw4 = 0x01): void {
  pic.ioWrite(M_CMD, 1, 0x11);
  pic.ioWrite(M_DATA, 1, 0x20);
  pic.ioWrite(M_DATA, 1, 0x04);
  pic.ioWrite(M_DATA, 1, icw4);
  pic.ioWrite(S_CMD, 1, 0x11);
  pic.ioWrite(S_DATA, 1, 0x28);
  pic.ioWrite(S_DATA, 1, 0x02);
  pic.ioWrite(S_DATA, 1, icw4);
}

function setup(icw4 = 0x01) {
  const intr = new LineRecorder();
  const pic = new Pic8259(intr);
  init(pic, icw4);
  return { pic, intr };
}

function pulse(pic: Pic8259, irq: number): void {
  pic.setIrq(irq, true);
  pic.setIrq(irq, false);
}

const irr = (pic: Pic8259, cmd: number): number => {
  pic.ioWrite(cmd, 1, 0x0a);
  return pic.ioRead(cmd, 1);
};
const isr = (pic: Pic8259, cmd: number): number => {
  pic.ioWrite(cmd, 1, 0x0b);
  return pic.ioRead(cmd, 1);
};
const eoi = (pic: Pic8259, cmd: number): void => pic.ioWrite(cmd, 1, 0x20);

describe('8259A priorities and EOI', () => {
  it('serves the highest-priority request first; lower ones wait for EOI', () => {
    const { pic, intr } = setup();
    pulse(pic, 3);
    pulse(pic, 1);
    expect(intr.level).toBe(true);
    expect(pic.acknowledge()).toBe(0x21);
    expect(isr(pic, M_CMD)).toBe(0x02);
    expect(irr(pic, M_CMD)).toBe(0x08);
    expect(pic.hasInterrupt()).toBe(false); // IRQ 3 is below IRQ 1 in service
    expect(intr.level).toBe(false);
    eoi(pic, M_CMD);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x23);
  });

  it('a higher-priority request nests; non-specific EOI ends the highest in service', () => {
    const { pic } = setup();
    pulse(pic, 3);
    expect(pic.acknowledge()).toBe(0x23);
    pulse(pic, 0);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x20);
    expect(isr(pic, M_CMD)).toBe(0x09);
    eoi(pic, M_CMD);
    expect(isr(pic, M_CMD)).toBe(0x08);
  });

  it('specific EOI clears the named level only', () => {
    const { pic } = setup();
    pulse(pic, 4);
    pic.acknowledge();
    pulse(pic, 2);
    pic.acknowledge(); // IRQ 2 with nothing on the slave: spurious IRQ 15, master ISR 2 set
    expect(isr(pic, M_CMD)).toBe(0x14);
    pic.ioWrite(M_CMD, 1, 0x60 | 4);
    expect(isr(pic, M_CMD)).toBe(0x04);
  });

  it('masking holds a request in IRR; unmasking delivers it', () => {
    const { pic, intr } = setup();
    pic.ioWrite(M_DATA, 1, 0x10);
    expect(pic.ioRead(M_DATA, 1)).toBe(0x10);
    pulse(pic, 4);
    expect(pic.hasInterrupt()).toBe(false);
    expect(intr.level).toBe(false);
    expect(irr(pic, M_CMD)).toBe(0x10);
    pic.ioWrite(M_DATA, 1, 0x00);
    expect(intr.level).toBe(true);
    expect(pic.acknowledge()).toBe(0x24);
    expect(irr(pic, M_CMD)).toBe(0);
  });

  it('ICW2 sets the vector base (low three bits ignored); ICW1 clears IMR and ISR', () => {
    const { pic } = setup();
    pic.ioWrite(M_DATA, 1, 0xff);
    pulse(pic, 6);
    pic.ioWrite(M_DATA, 1, 0x00);
    pic.acknowledge();
    pic.ioWrite(M_CMD, 1, 0x11);
    pic.ioWrite(M_DATA, 1, 0x47);
    pic.ioWrite(M_DATA, 1, 0x04);
    pic.ioWrite(M_DATA, 1, 0x01);
    expect(pic.ioRead(M_DATA, 1)).toBe(0);
    expect(isr(pic, M_CMD)).toBe(0);
    pulse(pic, 6);
    expect(pic.acknowledge()).toBe(0x46);
  });

  it('OCW3 selects IRR or ISR for command-port reads and stays selected', () => {
    const { pic } = setup();
    pulse(pic, 5);
    pulse(pic, 6);
    pic.acknowledge();
    pic.ioWrite(M_CMD, 1, 0x0b);
    expect(pic.ioRead(M_CMD, 1)).toBe(0x20);
    expect(pic.ioRead(M_CMD, 1)).toBe(0x20);
    pic.ioWrite(M_CMD, 1, 0x0a);
    expect(pic.ioRead(M_CMD, 1)).toBe(0x40);
  });
});

describe('8259A cascade', () => {
  it('slave requests come through IR2 with the slave vector; both chips need EOI', () => {
    const { pic } = setup();
    pulse(pic, 10);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x2a);
    expect(isr(pic, M_CMD)).toBe(0x04);
    expect(isr(pic, S_CMD)).toBe(0x04);
    pulse(pic, 3); // below IR2 on the master: waits
    pulse(pic, 1); // above it: nests
    expect(pic.acknowledge()).toBe(0x21);
    eoi(pic, M_CMD);
    eoi(pic, S_CMD);
    eoi(pic, M_CMD);
    expect(isr(pic, M_CMD)).toBe(0);
    expect(isr(pic, S_CMD)).toBe(0);
    expect(pic.acknowledge()).toBe(0x23);
  });

  it('slave priorities: IRQ 8 before IRQ 12; the slave mask holds requests', () => {
    const { pic } = setup();
    pic.ioWrite(S_DATA, 1, 0x01); // mask IRQ 8
    pulse(pic, 12);
    pulse(pic, 8);
    expect(pic.acknowledge()).toBe(0x2c);
    eoi(pic, S_CMD);
    eoi(pic, M_CMD);
    expect(pic.hasInterrupt()).toBe(false);
    pic.ioWrite(S_DATA, 1, 0x00);
    expect(pic.acknowledge()).toBe(0x28);
  });

  it('masking IR2 on the master holds all slave requests', () => {
    const { pic } = setup();
    pic.ioWrite(M_DATA, 1, 0x04);
    pulse(pic, 14);
    expect(pic.hasInterrupt()).toBe(false);
    pic.ioWrite(M_DATA, 1, 0x00);
    expect(pic.acknowledge()).toBe(0x2e);
  });
});

describe('8259A triggering', () => {
  it('edge: a pulse is latched until INTA; a line held high requests once', () => {
    const { pic } = setup();
    pic.setIrq(4, true);
    expect(pic.acknowledge()).toBe(0x24);
    eoi(pic, M_CMD);
    expect(pic.hasInterrupt()).toBe(false);
    pic.setIrq(4, false);
    pic.setIrq(4, true);
    expect(pic.acknowledge()).toBe(0x24);
  });

  it('level (ELCR): requests while high, again after EOI, and not once low', () => {
    const { pic } = setup();
    pic.ioWrite(5, 1, 0x04); // IRQ 10 level
    pic.setIrq(10, true);
    expect(pic.acknowledge()).toBe(0x2a);
    eoi(pic, S_CMD);
    eoi(pic, M_CMD);
    expect(pic.hasInterrupt()).toBe(true);
    expect(pic.acknowledge()).toBe(0x2a);
    pic.setIrq(10, false);
    eoi(pic, S_CMD);
    eoi(pic, M_CMD);
    expect(pic.hasInterrupt()).toBe(false);
    expect(irr(pic, S_CMD)).toBe(0);
  });

  it('ELCR bits of IRQ 0, 1, 2, 8 and 13 are fixed at edge', () => {
    const { pic } = setup();
    pic.ioWrite(4, 1, 0xff);
    pic.ioWrite(5, 1, 0xff);
    expect(pic.ioRead(4, 1)).toBe(0xf8);
    expect(pic.ioRead(5, 1)).toBe(0xde);
    expect(pic.ioRead(4, 2)).toBe(0xdef8);
  });

  it('LTIM in ICW1 makes every line level triggered', () => {
    const { pic } = setup();
    pic.ioWrite(M_CMD, 1, 0x19);
    pic.ioWrite(M_DATA, 1, 0x20);
    pic.ioWrite(M_DATA, 1, 0x04);
    pic.ioWrite(M_DATA, 1, 0x01);
    pic.setIrq(1, true);
    pic.acknowledge();
    eoi(pic, M_CMD);
    expect(pic.hasInterrupt()).toBe(true);
    pic.setIrq(1, false);
    expect(pic.hasInterrupt()).toBe(false);
  });

  it('spurious IRQ 7: the request went away before INTA; ISR stays clear', () => {
    const { pic, intr } = setup();
    pic.ioWrite(4, 1, 0x20); // IRQ 5 level
    pic.setIrq(5, true);
    expect(intr.level).toBe(true);
    pic.setIrq(5, false);
    expect(pic.acknowledge()).toBe(0x27);
    expect(isr(pic, M_CMD)).toBe(0);
  });

  it('spurious IRQ 15: the slave request went away; the master still acknowledges IR2', () => {
    const { pic } = setup();
    pic.ioWrite(5, 1, 0x08); // IRQ 11 level
    pic.setIrq(11, true);
    pic.setIrq(11, false);
    expect(pic.hasInterrupt()).toBe(true); // the master latched the edge on IR2
    expect(pic.acknowledge()).toBe(0x2f);
    expect(isr(pic, S_CMD)).toBe(0);
    expect(isr(pic, M_CMD)).toBe(0x04);
  });
});

describe('8259A modes', () => {
  it('auto-EOI: INTA does not set ISR', () => {
    const { pic } = setup(0x03);
    pulse(pic, 3);
    expect(pic.acknowledge()).toBe(0x23);
    expect(isr(pic, M_CMD)).toBe(0);
    pulse(pic, 4);
    expect(pic.acknowledge()).toBe(0x24);
  });

  it('rotate on non-specific EOI makes the served level the lowest', () => {
    const { pic } = setup();
    pulse(pic, 3);
    pic.acknowledge();
    pic.ioWrite(M_CMD, 1, 0xa0);
    pulse(pic, 1);
    pulse(pic, 5);
    expect(pic.acknowledge()).toBe(0x25); // order now 4 5 6 7 0 1 2 3
    pic.ioWrite(M_CMD, 1, 0xc7); // set priority: IR7 lowest again
    pulse(pic, 0);
    expect(pic.acknowledge()).toBe(0x20);
  });

  it('rotate on specific EOI and rotate in auto-EOI mode', () => {
    const { pic } = setup();
    pulse(pic, 6);
    pic.acknowledge();
    pic.ioWrite(M_CMD, 1, 0xe6); // EOI 6, IR6 lowest: order 7 0 1 ...
    pulse(pic, 0);
    pulse(pic, 7);
    expect(pic.acknowledge()).toBe(0x27);

    const b = setup(0x03).pic;
    b.ioWrite(M_CMD, 1, 0x80); // rotate in automatic EOI mode
    pulse(b, 3);
    pulse(b, 1);
    expect(b.acknowledge()).toBe(0x21); // order now 2 3 ... 0 1
    pulse(b, 0);
    expect(b.acknowledge()).toBe(0x23);
  });

  it('poll command: reads 0x80 | level and acknowledges it; 0 when nothing is pending', () => {
    const { pic } = setup();
    pulse(pic, 6);
    pic.ioWrite(M_CMD, 1, 0x0c);
    expect(pic.ioRead(M_CMD, 1)).toBe(0x86);
    expect(isr(pic, M_CMD)).toBe(0x40);
    pic.ioWrite(M_CMD, 1, 0x0c);
    expect(pic.ioRead(M_CMD, 1)).toBe(0);
  });

  it('special mask mode lets lower levels in while a masked level is in service', () => {
    const { pic } = setup();
    pulse(pic, 3);
    pic.acknowledge();
    pulse(pic, 5);
    expect(pic.hasInterrupt()).toBe(false);
    pic.ioWrite(M_DATA, 1, 0x08);
    pic.ioWrite(M_CMD, 1, 0x68); // set special mask
    expect(pic.acknowledge()).toBe(0x25);
    pic.ioWrite(M_CMD, 1, 0x48); // reset special mask
    pulse(pic, 6);
    expect(pic.hasInterrupt()).toBe(false);
  });

  it('special fully nested mode: a slave request nests over one in service', () => {
    const { pic } = setup(0x11);
    pulse(pic, 12);
    expect(pic.acknowledge()).toBe(0x2c);
    pulse(pic, 9);
    expect(pic.acknowledge()).toBe(0x29);
  });
});

describe('8259A reset and save/restore', () => {
  it('reset clears registers and drops INTR', () => {
    const { pic, intr } = setup();
    pulse(pic, 4);
    expect(intr.level).toBe(true);
    pic.reset();
    expect(intr.level).toBe(false);
    expect(pic.registers('master')).toEqual({ irr: 0, isr: 0, imr: 0 });
  });

  type Op =
    | { k: 'w'; port: number; v: number }
    | { k: 'r'; port: number }
    | { k: 'irq'; n: number; level: boolean }
    | { k: 'ack' }
    | { k: 'init'; icw4: number }
    | { k: 'has' };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('w' as const), port: fc.integer({ min: 0, max: 5 }), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('w' as const), port: fc.constantFrom(0, 2), v: fc.constantFrom(0x20, 0x0a, 0x0b, 0x0c, 0xa0, 0x68, 0x48, 0x63) }),
    fc.record({ k: fc.constant('r' as const), port: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ k: fc.constant('irq' as const), n: fc.integer({ min: 0, max: 15 }), level: fc.boolean() }),
    fc.record({ k: fc.constant('ack' as const) }),
    fc.record({ k: fc.constant('init' as const), icw4: fc.constantFrom(0x01, 0x03, 0x11) }),
    fc.record({ k: fc.constant('has' as const) }),
  );

  it('save, restore into a fresh instance, and both behave identically', () => {
    checkSnapshotRoundTrip<Pic8259State, Pic8259, Op>(
      (start) => {
        const queue = new EventQueue(1000, start);
        const log: unknown[] = [];
        const device = new Pic8259(loggingLine(log, 'intr', queue));
        return { queue, device, log };
      },
      opArb,
      (rig, op) => {
        const pic = rig.device;
        switch (op.k) {
          case 'w':
            pic.ioWrite(op.port, 1, op.v);
            return null;
          case 'r':
            return pic.ioRead(op.port, 1);
          case 'irq':
            pic.setIrq(op.n, op.level);
            return null;
          case 'ack':
            return pic.acknowledge();
          case 'init':
            init(pic, op.icw4);
            return null;
          default:
            return pic.hasInterrupt();
        }
      },
    );
  });
});
