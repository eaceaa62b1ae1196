import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { IOAPIC_VERSION, IoApic, type IoApicBus, type IoApicState } from '../../../hw/devices/ioapic.ts';
import { ApicBus, type DestMode, LapicReg, LocalApic, type TriggerMode } from '../../../hw/devices/lapic.ts';
import { fcParams } from './helpers.ts';

interface Msg {
  dest: number;
  destMode: DestMode;
  mode: number;
  vector: number;
  level: boolean;
  trigger: TriggerMode;
}

class RecordingBus implements IoApicBus {
  readonly msgs: Msg[] = [];
  deliver(dest: number, destMode: DestMode, mode: number, vector: number, level: boolean, trigger: TriggerMode): void {
    this.msgs.push({ dest, destMode, mode, vector, level, trigger });
  }
  vectors(): number[] {
    return this.msgs.map((m) => m.vector);
  }
}

const rd = (io: IoApic, index: number): number => {
  io.mmioWrite(0x00, 4, index);
  return io.mmioRead(0x10, 4);
};
const wr = (io: IoApic, index: number, value: number): void => {
  io.mmioWrite(0x00, 4, index);
  io.mmioWrite(0x10, 4, value);
};
const setEntry = (io: IoApic, pin: number, low: number, high = 0): void => {
  wr(io, 0x11 + 2 * pin, high);
  wr(io, 0x10 + 2 * pin, low);
};

const MASK = 1 << 16;
const LEVEL = 1 << 15;
const REMOTE_IRR = 1 << 14;
const ACTIVE_LOW = 1 << 13;

function rig() {
  const bus = new RecordingBus();
  const io = new IoApic({ bus, id: 2 });
  return { bus, io };
}

describe('IOAPIC registers', () => {
  it('reads ID, version and arbitration ID through IOREGSEL/IOWIN', () => {
    const { io } = rig();
    expect(rd(io, 0x00)).toBe(0x02000000);
    expect(rd(io, 0x01)).toBe(0x00170011);
    expect(IOAPIC_VERSION >>> 16).toBe(23); // 24 entries
    expect(rd(io, 0x02)).toBe(0x02000000);
    wr(io, 0x00, 0xffffffff);
    expect(rd(io, 0x00)).toBe(0x0f000000); // 4-bit ID
    expect(rd(io, 0x02)).toBe(0x0f000000); // arbitration ID loaded from it
    wr(io, 0x01, 0);
    wr(io, 0x02, 0);
    expect(rd(io, 0x01)).toBe(IOAPIC_VERSION);
    expect(rd(io, 0x02)).toBe(0x0f000000);
    expect(rd(io, 0x03)).toBe(0);
    expect(rd(io, 0x40)).toBe(0); // past the last entry
    expect(rd(io, 0xff)).toBe(0);
  });

  it('resets every entry masked and keeps only the writable entry bits', () => {
    const { io } = rig();
    for (let pin = 0; pin < 24; pin++) {
      expect(rd(io, 0x10 + 2 * pin)).toBe(0x00010000);
      expect(rd(io, 0x11 + 2 * pin)).toBe(0);
    }
    wr(io, 0x10 + 2 * 23, 0xffffffff);
    expect(rd(io, 0x10 + 2 * 23)).toBe(0x0001afff); // delivery status and remote IRR read-only
    wr(io, 0x11 + 2 * 23, 0xffffffff);
    expect(rd(io, 0x11 + 2 * 23)).toBe(0xff000000);
    expect(rd(io, 0x10 + 2 * 22)).toBe(0x00010000);
  });

  it('handles access sizes: IOREGSEL byte-wide, IOWIN reads of any size, IOWIN writes only 32-bit', () => {
    const { io } = rig();
    io.mmioWrite(0x00, 1, 0x01);
    expect(io.mmioRead(0x00, 4)).toBe(0x01);
    expect(io.mmioRead(0x10, 4)).toBe(IOAPIC_VERSION);
    expect(io.mmioRead(0x10, 1)).toBe(0x11);
    expect(io.mmioRead(0x12, 1)).toBe(0x17);
    expect(io.mmioRead(0x12, 2)).toBe(0x0017);
    io.mmioWrite(0x00, 4, 0x112);
    expect(io.mmioRead(0x00, 4)).toBe(0x12);
    io.mmioWrite(0x10, 2, 0x0040);
    expect(io.mmioRead(0x10, 4)).toBe(0x00010000);
    io.mmioWrite(0x10, 4, 0x00000040);
    expect(io.mmioRead(0x10, 4)).toBe(0x00000040);
    expect(io.mmioRead(0x20, 4)).toBe(0);
    expect(io.mmioRead(0x04, 4)).toBe(0);
  });
});

describe('IOAPIC interrupt delivery', () => {
  it('edge: one message per rising edge, with the entry fields', () => {
    const { io, bus } = rig();
    setEntry(io, 4, 0x0834, 0x03000000); // vector 0x34, logical, edge
    io.setIrq(4, true);
    io.setIrq(4, true);
    expect(bus.msgs).toEqual([{ dest: 3, destMode: 1, mode: 0, vector: 0x34, level: true, trigger: 0 }]);
    io.setIrq(4, false);
    expect(bus.msgs.length).toBe(1);
    io.setIrq(4, true);
    expect(bus.msgs.length).toBe(2);
    expect(rd(io, 0x18) & REMOTE_IRR).toBe(0);
  });

  it('edge: edges on a masked pin are lost, also when it is unmasked while high', () => {
    const { io, bus } = rig();
    setEntry(io, 1, MASK | 0x31);
    io.setIrq(1, true);
    io.setIrq(1, false);
    io.setIrq(1, true);
    setEntry(io, 1, 0x31);
    expect(bus.msgs).toEqual([]);
    io.setIrq(1, false);
    io.setIrq(1, true);
    expect(bus.vectors()).toEqual([0x31]);
  });

  it('edge with active-low polarity fires on the falling edge', () => {
    const { io, bus } = rig();
    io.setIrq(9, true); // idle high
    setEntry(io, 9, ACTIVE_LOW | 0x39);
    io.setIrq(9, false);
    expect(bus.vectors()).toEqual([0x39]);
    io.setIrq(9, true);
    expect(bus.vectors()).toEqual([0x39]);
  });

  it('level: one message while remote IRR is set; the EOI of its vector clears it and resends while asserted', () => {
    const { io, bus } = rig();
    setEntry(io, 10, LEVEL | 0x4a, 0x01000000);
    io.setIrq(10, true);
    expect(bus.msgs).toEqual([{ dest: 1, destMode: 0, mode: 0, vector: 0x4a, level: true, trigger: 1 }]);
    expect(rd(io, 0x10 + 20)).toBe(LEVEL | REMOTE_IRR | 0x4a);
    io.setIrq(10, false);
    io.setIrq(10, true);
    expect(bus.msgs.length).toBe(1); // remote IRR still set
    io.eoi(0x4b);
    expect(rd(io, 0x10 + 20) & REMOTE_IRR).toBe(REMOTE_IRR);
    expect(bus.msgs.length).toBe(1);
    io.eoi(0x4a); // still asserted: sent again
    expect(bus.msgs.length).toBe(2);
    expect(rd(io, 0x10 + 20) & REMOTE_IRR).toBe(REMOTE_IRR);
    io.setIrq(10, false);
    io.eoi(0x4a);
    expect(rd(io, 0x10 + 20) & REMOTE_IRR).toBe(0);
    expect(bus.msgs.length).toBe(2);
    io.setIrq(10, true);
    expect(bus.msgs.length).toBe(3);
  });

  it('level: asserts on a masked pin have no effect until it is unmasked, then it is sent at once', () => {
    const { io, bus } = rig();
    setEntry(io, 11, MASK | LEVEL | 0x4b);
    io.setIrq(11, true);
    expect(bus.msgs).toEqual([]);
    expect(rd(io, 0x10 + 22) & REMOTE_IRR).toBe(0);
    setEntry(io, 11, LEVEL | 0x4b);
    expect(bus.vectors()).toEqual([0x4b]);
    // masking after acceptance leaves remote IRR; the EOI still clears it
    setEntry(io, 11, MASK | LEVEL | 0x4b);
    expect(rd(io, 0x10 + 22) & REMOTE_IRR).toBe(REMOTE_IRR);
    io.eoi(0x4b);
    expect(rd(io, 0x10 + 22) & REMOTE_IRR).toBe(0);
    expect(bus.msgs.length).toBe(1); // masked: not resent
  });

  it('level with active-low polarity asserts while the pin is low', () => {
    const { io, bus } = rig();
    io.setIrq(16, true);
    setEntry(io, 16, ACTIVE_LOW | LEVEL | 0x50);
    expect(bus.msgs).toEqual([]);
    io.setIrq(16, false);
    expect(bus.vectors()).toEqual([0x50]);
    io.setIrq(16, true);
    io.eoi(0x50);
    expect(bus.msgs.length).toBe(1);
  });

  it('reprogramming to edge clears remote IRR; NMI, INIT and ExtINT entries are edge whatever bit 15 says', () => {
    const { io, bus } = rig();
    setEntry(io, 5, LEVEL | 0x45);
    io.setIrq(5, true);
    setEntry(io, 5, 0x45);
    expect(rd(io, 0x10 + 10) & REMOTE_IRR).toBe(0);
    setEntry(io, 2, LEVEL | 0x400, 0x01000000); // NMI
    io.setIrq(2, true);
    expect(bus.msgs[1]).toEqual({ dest: 1, destMode: 0, mode: 4, vector: 0, level: true, trigger: 0 });
    expect(rd(io, 0x10 + 4) & REMOTE_IRR).toBe(0);
    io.setIrq(2, false);
    io.setIrq(2, true);
    expect(bus.msgs.length).toBe(3);
    setEntry(io, 0, 0x700);
    io.setIrq(0, true);
    expect(bus.msgs[3]!.mode).toBe(7);
    setEntry(io, 3, 0x1ac, 0xff000000); // lowest priority, edge
    io.setIrq(3, true);
    expect(bus.msgs[4]).toEqual({ dest: 0xff, destMode: 0, mode: 1, vector: 0xac, level: true, trigger: 0 });
  });

  it('an EOI clears the remote IRR of every entry with that vector', () => {
    const { io, bus } = rig();
    setEntry(io, 20, LEVEL | 0x60);
    setEntry(io, 21, LEVEL | 0x60);
    io.setIrq(20, true);
    io.setIrq(21, true);
    io.setIrq(20, false);
    io.setIrq(21, false);
    expect(bus.msgs.length).toBe(2);
    io.eoi(0x60);
    expect(rd(io, 0x10 + 40) & REMOTE_IRR).toBe(0);
    expect(rd(io, 0x10 + 42) & REMOTE_IRR).toBe(0);
  });

  it('rejects pins out of range', () => {
    const { io } = rig();
    expect(() => io.setIrq(24, true)).toThrow(RangeError);
    expect(() => io.setIrq(-1, true)).toThrow(RangeError);
  });
});

describe('IOAPIC with local APICs', () => {
  it('a level interrupt reaches the local APIC, whose EOI broadcast clears remote IRR', () => {
    const q = new EventQueue(2_200_000_000);
    const bus = new ApicBus();
    const io = new IoApic({ bus });
    const apics = [0, 1].map((id) => new LocalApic({ time: q, scheduler: q, apicId: id, bus, onEoiBroadcast: (v) => io.eoi(v) }));
    for (const a of apics) {
      bus.attach(a);
      a.writeRegister(LapicReg.SVR, 0x1ff);
    }
    const [a0, a1] = apics as [LocalApic, LocalApic];
    setEntry(io, 10, LEVEL | 0x6a, 0x01000000); // physical destination APIC 1
    io.setIrq(10, true);
    expect(a0.hasInterrupt()).toBe(false);
    expect(a1.hasInterrupt()).toBe(true);
    expect((a1.readRegister(LapicReg.TMR + 0x30) >>> 10) & 1).toBe(1);
    expect(a1.acknowledge()).toBe(0x6a);
    expect(rd(io, 0x10 + 20) & REMOTE_IRR).toBe(REMOTE_IRR);
    io.setIrq(10, false);
    a1.writeRegister(LapicReg.EOI, 0);
    expect(rd(io, 0x10 + 20) & REMOTE_IRR).toBe(0);
    expect(a1.hasInterrupt()).toBe(false);
    // still asserted at EOI time: delivered again to the APIC
    io.setIrq(10, true);
    expect(a1.acknowledge()).toBe(0x6a);
    a1.writeRegister(LapicReg.EOI, 0);
    expect(a1.hasInterrupt()).toBe(true);
    expect(rd(io, 0x10 + 20) & REMOTE_IRR).toBe(REMOTE_IRR);
    // an edge interrupt's EOI is not broadcast, so a level entry's remote IRR stays
    setEntry(io, 1, 0x0831, 0x02000000); // logical, to the APIC whose LDR has bit 1
    a0.writeRegister(LapicReg.LDR, 0x02000000);
    io.setIrq(1, true);
    expect(a0.acknowledge()).toBe(0x31);
    a0.writeRegister(LapicReg.EOI, 0);
    expect(rd(io, 0x10 + 20) & REMOTE_IRR).toBe(REMOTE_IRR);
  });
});

describe('IOAPIC save/restore', () => {
  type Op =
    | { k: 'sel'; v: number }
    | { k: 'win'; v: number }
    | { k: 'read'; off: number; size: 1 | 2 | 4 }
    | { k: 'irq'; pin: number; level: boolean }
    | { k: 'eoi'; v: number };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('sel' as const), v: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0x10, max: 0x3f }), fc.nat({ max: 0xff })) }),
    fc.record({
      k: fc.constant('win' as const),
      v: fc.oneof(
        fc.nat({ max: 0xffffffff }),
        fc.tuple(fc.boolean(), fc.boolean(), fc.boolean(), fc.constantFrom(0, 1, 4, 7), fc.constantFrom(0x40, 0x41, 0x42)).map(
          ([m, l, p, mode, v]) => (m ? MASK : 0) | (l ? LEVEL : 0) | (p ? ACTIVE_LOW : 0) | (mode << 8) | v,
        ),
      ),
    }),
    fc.record({ k: fc.constant('read' as const), off: fc.constantFrom(0, 1, 0x10, 0x11, 0x12, 0x13, 0x20), size: fc.constantFrom(1 as const, 2 as const, 4 as const) }),
    fc.record({ k: fc.constant('irq' as const), pin: fc.integer({ min: 0, max: 23 }), level: fc.boolean() }),
    fc.record({ k: fc.constant('eoi' as const), v: fc.constantFrom(0x40, 0x41, 0x42, 0x99) }),
  );

  function make() {
    const bus = new RecordingBus();
    return { bus, io: new IoApic({ bus, id: 1 }) };
  }

  function apply(r: { io: IoApic }, op: Op): unknown {
    switch (op.k) {
      case 'sel':
        r.io.mmioWrite(0, 4, op.v);
        return null;
      case 'win':
        r.io.mmioWrite(0x10, 4, op.v);
        return null;
      case 'read':
        return r.io.mmioRead(op.off, op.size);
      case 'irq':
        r.io.setIrq(op.pin, op.level);
        return null;
      case 'eoi':
        r.io.eoi(op.v);
        return null;
    }
  }

  it('restores into a fresh instance that then behaves identically', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 60 }), fc.array(opArb, { maxLength: 60 }), (prefix, suffix) => {
        const a = make();
        for (const op of prefix) apply(a, op);
        const json = JSON.stringify(a.io.save());
        const b = make();
        b.io.restore(JSON.parse(json) as IoApicState);
        expect(JSON.stringify(b.io.save())).toBe(json);
        a.bus.msgs.length = 0;
        const obsA = suffix.map((op) => apply(a, op));
        const obsB = suffix.map((op) => apply(b, op));
        expect(obsB).toEqual(obsA);
        expect(b.bus.msgs).toEqual(a.bus.msgs);
        expect(JSON.stringify(b.io.save())).toBe(JSON.stringify(a.io.save()));
      }),
      fcParams,
    );
  });

  it('reset masks every entry and keeps the pin levels', () => {
    const { io, bus } = make();
    setEntry(io, 7, LEVEL | 0x47);
    io.setIrq(7, true);
    wr(io, 0, 0x05000000);
    io.reset();
    expect(rd(io, 0x10 + 14)).toBe(MASK);
    expect(rd(io, 0)).toBe(0x01000000);
    expect(io.mmioRead(0, 4)).toBe(0);
    setEntry(io, 7, LEVEL | 0x47); // pin 7 is still high
    expect(bus.vectors()).toEqual([0x47, 0x47]);
  });
});
