import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import type { ByteSource } from '../../../hw/devices/types.ts';
import { Uart16550, type Uart16550Options, type Uart16550State } from '../../../hw/devices/uart16550.ts';
import { checkSnapshotRoundTrip, LineRecorder } from './helpers.ts';

const RBR = 0;
const THR = 0;
const IER = 1;
const IIR = 2;
const FCR = 2;
const LCR = 3;
const MCR = 4;
const LSR = 5;
const MSR = 6;
const SCR = 7;

// At this clock an 8N1 character at divisor 1 (115200 baud) lasts exactly 100 cycles.
const HZ = 1_152_000;

function setup(extra: Partial<Uart16550Options> = {}) {
  const q = new EventQueue(HZ);
  const irq = new LineRecorder(q);
  const sent: number[] = [];
  const uart = new Uart16550({ time: q, scheduler: q, irq, sink: { write: (b) => sent.push(...b) }, ...extra });
  uart.ioWrite(LCR, 1, 0x80);
  uart.ioWrite(0, 1, 1); // divisor 1
  uart.ioWrite(1, 1, 0);
  uart.ioWrite(LCR, 1, 0x03); // 8N1
  return { q, irq, uart, sent };
}
const r = (u: Uart16550, off: number): number => u.ioRead(off, 1);
const w = (u: Uart16550, off: number, v: number): void => u.ioWrite(off, 1, v);

describe('16550A registers', () => {
  it('has the data sheet reset values', () => {
    const q = new EventQueue(HZ);
    const uart = new Uart16550({ time: q, scheduler: q });
    expect([r(uart, IER), r(uart, IIR), r(uart, LCR), r(uart, MCR), r(uart, LSR), r(uart, MSR)]).toEqual([0, 0x01, 0, 0, 0x60, 0xb0]);
  });

  it('DLAB switches offsets 0 and 1 to the divisor latch', () => {
    const { uart } = setup();
    w(uart, LCR, 0x83);
    w(uart, 0, 0x0c);
    w(uart, 1, 0x01);
    expect([r(uart, 0), r(uart, 1)]).toEqual([0x0c, 0x01]);
    w(uart, LCR, 0x03);
    w(uart, IER, 0xff);
    expect(r(uart, IER)).toBe(0x0f);
    w(uart, LCR, 0x83);
    expect([r(uart, 0), r(uart, 1)]).toEqual([0x0c, 0x01]);
  });

  it('scratch register holds a byte', () => {
    const { uart } = setup();
    w(uart, SCR, 0xa5);
    expect(r(uart, SCR)).toBe(0xa5);
  });

  it('transmits to the sink at once: THRE and TEMT stay set', () => {
    const { uart, sent } = setup();
    for (const c of 'hi\n') w(uart, THR, c.charCodeAt(0));
    expect(sent).toEqual([0x68, 0x69, 0x0a]);
    expect(r(uart, LSR) & 0x60).toBe(0x60);
  });
});

describe('16550A receiver', () => {
  it('non-FIFO mode: one holding register, DR, last byte re-read when empty', () => {
    const { uart } = setup();
    uart.receive([0x41, 0x42]);
    expect(uart.pendingInput).toBe(1);
    expect(r(uart, LSR) & 1).toBe(1);
    expect(r(uart, RBR)).toBe(0x41);
    expect(r(uart, LSR) & 1).toBe(1);
    expect(r(uart, RBR)).toBe(0x42);
    expect(r(uart, LSR) & 1).toBe(0);
    expect(r(uart, RBR)).toBe(0x42);
  });

  it('FIFO mode holds 16 bytes; the rest waits on the line, nothing is lost', () => {
    const { uart } = setup();
    w(uart, FCR, 0x07);
    expect(r(uart, IIR) & 0xc0).toBe(0xc0);
    const data = Array.from({ length: 20 }, (_, i) => 0x30 + i);
    uart.receive(data);
    expect(uart.pendingInput).toBe(4);
    const got: number[] = [];
    while (r(uart, LSR) & 1) got.push(r(uart, RBR));
    expect(got).toEqual(data);
  });

  it('FCR bit 1 clears the receive FIFO; disabling the FIFOs clears them too', () => {
    const { uart } = setup();
    w(uart, FCR, 0x01);
    uart.receive([1, 2, 3]);
    w(uart, FCR, 0x03);
    expect(r(uart, LSR) & 1).toBe(0);
    uart.receive([4]);
    w(uart, FCR, 0x00);
    expect(r(uart, LSR) & 1).toBe(0);
    expect(r(uart, IIR) & 0xc0).toBe(0);
  });

  it('RDA is signalled at the FIFO trigger level and withdrawn below it', () => {
    const { uart, irq } = setup();
    w(uart, FCR, 0xc7); // trigger 14
    w(uart, IER, 0x01);
    w(uart, MCR, 0x08);
    uart.receive(new Array(13).fill(0x55));
    expect(r(uart, IIR)).toBe(0xc1);
    expect(irq.level).toBe(false);
    uart.receive([0x56]);
    expect(r(uart, IIR)).toBe(0xc4);
    expect(irq.level).toBe(true);
    r(uart, RBR);
    expect(r(uart, IIR)).toBe(0xc1);
    expect(irq.level).toBe(false);
  });

  it.each([[0x07, 1], [0x47, 4], [0x87, 8], [0xc7, 14]])('FCR %i: trigger level %i', (fcr, level) => {
    const { uart } = setup();
    w(uart, FCR, fcr);
    w(uart, IER, 0x01);
    uart.receive(new Array(level - 1).fill(0));
    expect(r(uart, IIR) & 0x0f).toBe(0x01);
    uart.receive([0]);
    expect(r(uart, IIR) & 0x0f).toBe(0x04);
  });

  it('character timeout after 4 character times without input or reads', () => {
    const { q, uart, irq } = setup();
    w(uart, FCR, 0x87); // trigger 8
    w(uart, IER, 0x01);
    w(uart, MCR, 0x08);
    uart.receive([1, 2, 3]);
    q.runUntil(399);
    expect(r(uart, IIR)).toBe(0xc1);
    q.runUntil(400);
    expect(r(uart, IIR)).toBe(0xcc);
    expect(irq.rises()).toEqual([400]);
    expect(r(uart, RBR)).toBe(1); // clears the timeout and restarts the timer
    expect(r(uart, IIR)).toBe(0xc1);
    q.runUntil(799);
    expect(r(uart, IIR)).toBe(0xc1);
    q.runUntil(800);
    expect(r(uart, IIR)).toBe(0xcc);
    r(uart, RBR);
    r(uart, RBR);
    q.runUntil(5000);
    expect(r(uart, IIR)).toBe(0xc1); // empty FIFO: no timeout
    expect(q.pending).toBe(0);
  });

  it('the timeout scales with the divisor and the frame (7E2 at divisor 3: 11 bits)', () => {
    const { q, uart } = setup();
    w(uart, LCR, 0x80);
    w(uart, 0, 3);
    w(uart, LCR, 0x0e); // 7 data bits, 2 stop, parity: 1 + 7 + 1 + 2 = 11 bits
    w(uart, FCR, 0xc7);
    w(uart, IER, 0x01);
    uart.receive([9]);
    q.runUntil(4 * 11 * 3 * 10 - 1);
    expect(r(uart, IIR) & 0x0f).toBe(0x01);
    q.runUntil(4 * 11 * 3 * 10);
    expect(r(uart, IIR) & 0x0f).toBe(0x0c);
  });

  it('pulls from the ByteSource only what fits, on pollInput, RBR and LSR reads', () => {
    const chunks = [[1, 2, 3], [], Array.from({ length: 30 }, (_, i) => 100 + i)];
    const asks: number[] = [];
    const source: ByteSource = {
      read: (max) => {
        asks.push(max);
        const c = chunks.shift();
        return c === undefined ? null : Uint8Array.from(c.slice(0, max));
      },
    };
    const { uart } = setup({ source });
    w(uart, FCR, 0x07); // FIFO on: room for 16: [1,2,3], then [] stops the pull
    expect(asks).toEqual([16, 13]);
    uart.pollInput(); // 13 of the 30
    expect(asks).toEqual([16, 13, 13]);
    expect(r(uart, LSR) & 1).toBe(1);
    expect(asks.length).toBe(3); // the FIFO is full: nothing asked
    const got: number[] = [];
    for (let i = 0; i < 16; i++) got.push(r(uart, RBR));
    expect(got).toEqual([1, 2, 3, ...Array.from({ length: 13 }, (_, i) => 100 + i)]);
    expect(asks.every((m) => m >= 1 && m <= 16)).toBe(true);
  });
});

describe('16550A interrupts', () => {
  it('THRE: raised when ETBEI is enabled with THR empty, cleared by reading IIR, re-raised by a THR write or re-enabling', () => {
    const { uart, irq } = setup();
    w(uart, MCR, 0x08);
    w(uart, IER, 0x02);
    expect(irq.level).toBe(true);
    expect(r(uart, IIR)).toBe(0x02);
    expect(irq.level).toBe(false);
    expect(r(uart, IIR)).toBe(0x01);
    w(uart, IER, 0x02); // no change of ETBEI: nothing new
    expect(r(uart, IIR)).toBe(0x01);
    w(uart, IER, 0x00);
    w(uart, IER, 0x02); // 0 -> 1 with THR empty (Linux's UART_BUG_THRE test expects this)
    expect(r(uart, IIR)).toBe(0x02);
    w(uart, THR, 0x41);
    expect(irq.level).toBe(true);
    expect(r(uart, IIR)).toBe(0x02);
  });

  it('identifies sources in priority order: line status, data, THRE, modem status', () => {
    const { uart } = setup();
    w(uart, MCR, 0x10); // loopback
    w(uart, IER, 0x0f);
    w(uart, THR, 0x61);
    w(uart, THR, 0x62); // overruns the holding register
    w(uart, MCR, 0x12); // RTS -> CTS changes in loopback: DCTS
    expect(r(uart, IIR)).toBe(0x06);
    expect(r(uart, LSR)).toBe(0x63); // DR, OE, THRE, TEMT; reading clears OE
    expect(r(uart, IIR)).toBe(0x04);
    expect(r(uart, RBR)).toBe(0x62);
    expect(r(uart, IIR)).toBe(0x02); // reading IIR here clears THRE
    expect(r(uart, IIR)).toBe(0x00);
    // Entering loopback dropped DSR and DCD (the outputs are off), then RTS raised CTS.
    expect(r(uart, MSR)).toBe(0x1b);
    expect(r(uart, IIR)).toBe(0x01);
  });

  it('MCR OUT2 gates the IRQ line on a PC; loopback forces it off', () => {
    const { uart, irq } = setup();
    w(uart, IER, 0x01);
    uart.receive([7]);
    expect(r(uart, IIR)).toBe(0x04);
    expect(irq.level).toBe(false);
    w(uart, MCR, 0x08);
    expect(irq.level).toBe(true);
    w(uart, MCR, 0x18);
    expect(irq.level).toBe(false);
    w(uart, MCR, 0x00);
    const q = new EventQueue(HZ);
    const direct = new LineRecorder();
    const u2 = new Uart16550({ time: q, scheduler: q, irq: direct, out2GatesIrq: false });
    w(u2, IER, 0x01);
    u2.receive([7]);
    expect(direct.level).toBe(true);
  });
});

describe('16550A loopback and modem status', () => {
  it('loopback: transmitted bytes come back, modem outputs drive the inputs (Linux probe 0x1A -> 0x90)', () => {
    const { uart, sent } = setup();
    uart.receive([0x99]); // the external line is held off in loopback...
    r(uart, RBR);
    w(uart, MCR, 0x1a);
    expect(r(uart, MSR) & 0xf0).toBe(0x90);
    w(uart, THR, 0x5a);
    expect(r(uart, RBR)).toBe(0x5a);
    expect(sent).toEqual([]);
    w(uart, MCR, 0x1f);
    expect(r(uart, MSR) & 0xf0).toBe(0xf0);
    w(uart, MCR, 0x00);
    expect(r(uart, MSR) & 0xf0).toBe(0xb0);
  });

  it('modem input changes set delta bits until MSR is read; RI reports its trailing edge', () => {
    const { uart } = setup();
    uart.setModemInputs({ cts: false });
    expect(r(uart, MSR)).toBe(0xa1);
    expect(r(uart, MSR)).toBe(0xa0);
    uart.setModemInputs({ ri: true, dsr: false });
    expect(r(uart, MSR)).toBe(0xc2);
    uart.setModemInputs({ ri: false, dcd: false });
    expect(r(uart, MSR)).toBe(0x0c);
  });
});

describe('16550A save/restore and reset', () => {
  it('reset returns the registers to their reset values and keeps queued host input', () => {
    const { uart, irq } = setup();
    w(uart, FCR, 0x07);
    w(uart, IER, 0x0f);
    w(uart, MCR, 0x0b);
    uart.receive(new Array(20).fill(1));
    uart.reset();
    expect(irq.level).toBe(false);
    expect([r(uart, IER), r(uart, IIR), r(uart, LCR), r(uart, MCR), r(uart, LSR)]).toEqual([0, 0x01, 0, 0, 0x61]);
    expect(uart.pendingInput).toBe(3); // 4 were waiting; one moved into the holding register
  });

  type Op =
    | { k: 'w'; port: number; v: number }
    | { k: 'r'; port: number }
    | { k: 'rx'; bytes: number[] }
    | { k: 'adv'; n: number }
    | { k: 'modem'; cts: boolean; ri: boolean };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('w' as const), port: fc.integer({ min: 0, max: 7 }), v: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ k: fc.constant('w' as const), port: fc.constantFrom(1, 2, 3, 4), v: fc.constantFrom(0x00, 0x01, 0x03, 0x07, 0x0f, 0x10, 0x18, 0x83, 0xc7) }),
    fc.record({ k: fc.constant('r' as const), port: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ k: fc.constant('rx' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 20 }) }),
    fc.record({ k: fc.constant('adv' as const), n: fc.integer({ min: 0, max: 20000 }) }),
    fc.record({ k: fc.constant('modem' as const), cts: fc.boolean(), ri: fc.boolean() }),
  );

  it('save, restore into a fresh instance, and both behave identically', () => {
    checkSnapshotRoundTrip<Uart16550State, Uart16550, Op>(
      (start) => {
        const queue = new EventQueue(HZ, start);
        const log: unknown[] = [];
        const device = new Uart16550({
          time: queue,
          scheduler: queue,
          irq: { set: (l) => log.push(['irq', queue.now(), l]) },
          sink: { write: (b) => log.push(['tx', queue.now(), [...b]]) },
        });
        return { queue, device, log };
      },
      opArb,
      (rig, op) => {
        const u = rig.device;
        switch (op.k) {
          case 'w':
            u.ioWrite(op.port, 1, op.v);
            return null;
          case 'r':
            return u.ioRead(op.port, 1);
          case 'rx':
            u.receive(op.bytes);
            return u.pendingInput;
          case 'adv':
            rig.queue.advance(op.n);
            return null;
          default:
            u.setModemInputs({ cts: op.cts, ri: op.ri });
            return null;
        }
      },
    );
  });
});
