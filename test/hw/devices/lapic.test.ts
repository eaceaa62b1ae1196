import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import {
  ApicBus,
  ESR_ILLEGAL_REGISTER,
  ESR_RECEIVE_ILLEGAL_VECTOR,
  ESR_SEND_ILLEGAL_VECTOR,
  LAPIC_VERSION,
  LapicReg as R,
  LocalApic,
  type InterruptSource,
  type LocalApicOptions,
  type LocalApicState,
} from '../../../hw/devices/lapic.ts';
import { fcParams } from './helpers.ts';

/** 2.2 GHz cycle clock and the default 100 MHz APIC timer clock: 22 cycles per bus tick. */
const HZ = 2_200_000_000;
const CPT = 22;

const MASK = 1 << 16;
const PERIODIC = 1 << 17;
const DEADLINE = 2 << 17;

interface Rig {
  q: EventQueue;
  apic: LocalApic;
  log: unknown[];
}

function rig(opts: Partial<LocalApicOptions> = {}, hz = HZ, enable = true): Rig {
  const q = new EventQueue(hz);
  const log: unknown[] = [];
  const apic = new LocalApic({
    time: q,
    scheduler: q,
    apicId: 0,
    onInterruptChange: () => log.push(['intr', q.now()]),
    onNmi: () => log.push(['nmi', q.now()]),
    onInit: () => log.push(['init', q.now()]),
    onStartup: (v) => log.push(['sipi', v]),
    onEoiBroadcast: (v) => log.push(['eoi', v]),
    ...opts,
  });
  if (enable) apic.writeRegister(R.SVR, 0x1ff);
  return { q, apic, log };
}

const cur = (a: LocalApic): number => a.readRegister(R.TIMER_CURRENT);
const bitOf = (a: LocalApic, base: number, v: number): boolean => ((a.readRegister(base + (v >>> 5) * 0x10) >>> (v & 31)) & 1) === 1;
const inIrr = (a: LocalApic, v: number): boolean => bitOf(a, R.IRR, v);
const inIsr = (a: LocalApic, v: number): boolean => bitOf(a, R.ISR, v);
const inTmr = (a: LocalApic, v: number): boolean => bitOf(a, R.TMR, v);
const readEsr = (a: LocalApic): number => {
  a.writeRegister(R.ESR, 0);
  return a.readRegister(R.ESR);
};
const eoi = (a: LocalApic): void => a.writeRegister(R.EOI, 0);

/** Runs the queue and returns the cycles at which the APIC raised a deliverable interrupt (acknowledged and EOI'd each time). */
function interruptCycles(r: Rig, until: number): number[] {
  const out: number[] = [];
  while (r.q.now() < until) {
    const next = Math.min(until, r.q.nextEventAt());
    r.q.runUntil(next);
    if (r.apic.hasInterrupt()) {
      out.push(r.q.now());
      r.apic.acknowledge();
      eoi(r.apic);
    }
    if (next === until) break;
  }
  return out;
}

describe('local APIC registers', () => {
  it('has the power-up values of the SDM', () => {
    const { apic } = rig({ apicId: 3 }, HZ, false);
    expect(apic.readRegister(R.ID)).toBe(0x03000000);
    expect(apic.readRegister(R.VERSION)).toBe(0x00050014);
    expect(LAPIC_VERSION >>> 16).toBe(5); // max LVT entry: six entries
    expect(apic.readRegister(R.TPR)).toBe(0);
    expect(apic.readRegister(R.PPR)).toBe(0);
    expect(apic.readRegister(R.LDR)).toBe(0);
    expect(apic.readRegister(R.DFR)).toBe(0xffffffff);
    expect(apic.readRegister(R.SVR)).toBe(0xff);
    for (const reg of [R.LVT_TIMER, R.LVT_THERMAL, R.LVT_PERF, R.LVT_LINT0, R.LVT_LINT1, R.LVT_ERROR]) {
      expect(apic.readRegister(reg)).toBe(0x00010000);
    }
    for (let i = 0; i < 8; i++) {
      expect(apic.readRegister(R.IRR + i * 16)).toBe(0);
      expect(apic.readRegister(R.ISR + i * 16)).toBe(0);
      expect(apic.readRegister(R.TMR + i * 16)).toBe(0);
    }
    expect(apic.readRegister(R.TIMER_INITIAL)).toBe(0);
    expect(apic.readRegister(R.TIMER_CURRENT)).toBe(0);
    expect(apic.readRegister(R.TIMER_DIVIDE)).toBe(0);
    expect(apic.readApicBaseMsr()).toBe(0xfee00800); // enabled, not the BSP
    expect(rig({ apicId: 0 }).apic.readApicBaseMsr()).toBe(0xfee00900); // enabled, BSP
    expect(rig({ apicId: 3, bsp: true }).apic.readApicBaseMsr()).toBe(0xfee00900);
  });

  it('keeps only the writable bits of each register', () => {
    const { apic } = rig();
    apic.writeRegister(R.ID, 0xffffffff);
    expect(apic.readRegister(R.ID)).toBe(0xff000000);
    apic.writeRegister(R.TPR, 0xffffffff);
    expect(apic.readRegister(R.TPR)).toBe(0xff);
    apic.writeRegister(R.LDR, 0xffffffff);
    expect(apic.readRegister(R.LDR)).toBe(0xff000000);
    apic.writeRegister(R.DFR, 0x00000000);
    expect(apic.readRegister(R.DFR)).toBe(0x0fffffff);
    apic.writeRegister(R.SVR, 0xffffffff);
    expect(apic.readRegister(R.SVR)).toBe(0x3ff);
    apic.writeRegister(R.TIMER_DIVIDE, 0xffffffff);
    expect(apic.readRegister(R.TIMER_DIVIDE)).toBe(0xb);
    apic.writeRegister(R.LVT_TIMER, 0xffffffff);
    expect(apic.readRegister(R.LVT_TIMER)).toBe(0x000700ff);
    apic.writeRegister(R.LVT_THERMAL, 0xffffffff);
    expect(apic.readRegister(R.LVT_THERMAL)).toBe(0x000107ff);
    apic.writeRegister(R.LVT_PERF, 0xffffffff);
    expect(apic.readRegister(R.LVT_PERF)).toBe(0x000107ff);
    apic.writeRegister(R.LVT_LINT0, 0xffffffff);
    expect(apic.readRegister(R.LVT_LINT0)).toBe(0x0001a7ff); // delivery status and remote IRR read-only
    apic.writeRegister(R.LVT_ERROR, 0xffffffff);
    expect(apic.readRegister(R.LVT_ERROR)).toBe(0x000100ff);
    apic.writeRegister(R.ICR_HIGH, 0xffffffff);
    expect(apic.readRegister(R.ICR_HIGH)).toBe(0xff000000);
    // read-only registers ignore writes
    apic.writeRegister(R.VERSION, 0);
    apic.writeRegister(R.PPR, 0x12);
    apic.writeRegister(R.IRR + 0x30, 0xffffffff);
    apic.writeRegister(R.ISR + 0x30, 0xffffffff);
    expect(apic.readRegister(R.VERSION)).toBe(LAPIC_VERSION);
    expect(apic.readRegister(R.IRR + 0x30)).toBe(0);
    expect(apic.readRegister(R.ISR + 0x30)).toBe(0);
    expect(readEsr(apic)).toBe(0); // no error for read-only registers
  });

  it('answers MMIO reads of any size from the register image and takes only aligned 32-bit writes', () => {
    const { apic } = rig({ apicId: 0x12 });
    expect(apic.mmioRead(0x20, 4)).toBe(0x12000000);
    expect(apic.mmioRead(0x23, 1)).toBe(0x12);
    expect(apic.mmioRead(0x22, 2)).toBe(0x1200);
    expect(apic.mmioRead(0x32, 1)).toBe(0x05);
    expect(apic.mmioRead(0x24, 4)).toBe(0); // bytes 4-15 of a slot
    expect(apic.mmioRead(0x2e, 4)).toBe(0x00140000); // two gap bytes, then version bytes 0-1
    apic.mmioWrite(0x80, 2, 0x55);
    expect(apic.readRegister(R.TPR)).toBe(0);
    apic.mmioWrite(0x84, 4, 0x55);
    expect(apic.readRegister(R.TPR)).toBe(0);
    apic.mmioWrite(0x80, 4, 0x55);
    expect(apic.mmioRead(0x80, 4)).toBe(0x55);
    apic.mmioWrite(0x1080, 4, 0x66); // offset wraps within the page
    expect(apic.mmioRead(0x80, 4)).toBe(0x66);
  });

  it('flags unimplemented registers in ESR bit 7, write then read', () => {
    const { apic } = rig();
    expect(apic.readRegister(R.ESR)).toBe(0);
    expect(apic.mmioRead(0x2f0, 4)).toBe(0); // no CMCI entry with max LVT 5
    expect(apic.readRegister(R.ESR)).toBe(0); // not latched until ESR is written
    apic.writeRegister(R.ESR, 0);
    expect(apic.readRegister(R.ESR)).toBe(ESR_ILLEGAL_REGISTER);
    expect(apic.readRegister(R.ESR)).toBe(ESR_ILLEGAL_REGISTER);
    apic.writeRegister(R.ESR, 0);
    expect(apic.readRegister(R.ESR)).toBe(0);
    for (const off of [0x000, 0x010, 0x040, 0x070, 0x0c0, 0x290, 0x3a0, 0x3f0, 0x400, 0xff0]) {
      apic.mmioWrite(off, 4, 0);
      expect(readEsr(apic)).toBe(ESR_ILLEGAL_REGISTER);
    }
    for (const off of [0x020, 0x030, 0x080, 0x0b0, 0x0e0, 0x100, 0x270, 0x280, 0x390, 0x3e0]) {
      apic.mmioRead(off, 4);
      expect(readEsr(apic)).toBe(0);
    }
  });
});

describe('local APIC timer', () => {
  it('one-shot, divide by 16: counts down every 16 bus ticks from the write and interrupts at zero', () => {
    const r = rig();
    const { q, apic } = r;
    q.runUntil(1000); // bus tick 45
    apic.writeRegister(R.TIMER_DIVIDE, 0x3);
    apic.writeRegister(R.LVT_TIMER, 0x40);
    apic.writeRegister(R.TIMER_INITIAL, 1000);
    expect(cur(apic)).toBe(1000);
    q.runUntil(61 * CPT - 1); // tick 60
    expect(cur(apic)).toBe(1000);
    q.runUntil(61 * CPT); // tick 61: first decrement
    expect(cur(apic)).toBe(999);
    q.runUntil((45 + 16 * 500) * CPT + 5);
    expect(cur(apic)).toBe(500);
    q.runUntil((45 + 16000) * CPT - 1);
    expect(cur(apic)).toBe(1);
    expect(apic.hasInterrupt()).toBe(false);
    q.runUntil((45 + 16000) * CPT); // cycle 352990
    expect(cur(apic)).toBe(0);
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x40);
    eoi(apic);
    q.runUntil(100_000_000);
    expect(cur(apic)).toBe(0);
    expect(apic.hasInterrupt()).toBe(false);
    expect(q.pending).toBe(0);
    expect(apic.readRegister(R.TIMER_INITIAL)).toBe(1000);
  });

  it('interrupts at start tick + count x divisor for every divide value', () => {
    const cases: Array<[number, number]> = [
      [0x0, 2], [0x1, 4], [0x2, 8], [0x3, 16], [0x8, 32], [0x9, 64], [0xa, 128], [0xb, 1],
    ];
    for (const [cfg, div] of cases) {
      const r = rig();
      r.q.runUntil(1001); // tick 45
      r.apic.writeRegister(R.TIMER_DIVIDE, cfg);
      r.apic.writeRegister(R.LVT_TIMER, 0x41);
      r.apic.writeRegister(R.TIMER_INITIAL, 37);
      const expiry = (45 + 37 * div) * CPT;
      r.q.runUntil(expiry - 1);
      expect(r.apic.hasInterrupt(), `divide ${div}`).toBe(false);
      expect(cur(r.apic)).toBe(1);
      r.q.runUntil(expiry);
      expect(r.apic.hasInterrupt(), `divide ${div}`).toBe(true);
      // current count at arbitrary points: 37 - floor((tick - 45) / div)
      const r2 = rig();
      r2.q.runUntil(1001);
      r2.apic.writeRegister(R.TIMER_DIVIDE, cfg);
      r2.apic.writeRegister(R.TIMER_INITIAL, 37);
      for (let c = 1001; c < expiry + 50 * CPT; c += 97) {
        r2.q.runUntil(c);
        const n = Math.floor((Math.floor(c / CPT) - 45) / div);
        expect(cur(r2.apic)).toBe(Math.max(0, 37 - n));
      }
    }
  });

  it('keeps exact time when the cycle clock is not a multiple of the bus clock', () => {
    // 1 GHz cycles, 300 MHz bus: bus tick k at cycle ceil(k * 10 / 3)
    const r = rig({ busHz: 300_000_000 }, 1_000_000_000);
    r.q.runUntil(5); // tick 1
    r.apic.writeRegister(R.TIMER_DIVIDE, 0x0); // / 2
    r.apic.writeRegister(R.LVT_TIMER, 0x40);
    r.apic.writeRegister(R.TIMER_INITIAL, 7); // zero at tick 15 = cycle 50
    r.q.runUntil(16); // tick 4
    expect(cur(r.apic)).toBe(6);
    r.q.runUntil(49); // tick 14
    expect(cur(r.apic)).toBe(1);
    expect(r.apic.hasInterrupt()).toBe(false);
    r.q.runUntil(50);
    expect(r.apic.hasInterrupt()).toBe(true);
    expect(() => rig({ busHz: 2_000_000_000 }, 1_000_000_000)).toThrow(RangeError);
  });

  it('periodic: reloads and interrupts every count x divisor ticks', () => {
    const r = rig();
    r.apic.writeRegister(R.TIMER_DIVIDE, 0xb); // / 1
    r.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x50);
    r.apic.writeRegister(R.TIMER_INITIAL, 50); // tick 0; period 50 ticks = 1100 cycles
    for (let c = 0; c < 5000; c += 37) {
      r.q.runUntil(c);
      expect(cur(r.apic)).toBe(50 - (Math.floor(c / CPT) % 50));
      if (r.apic.hasInterrupt()) {
        r.apic.acknowledge();
        eoi(r.apic);
      }
    }
    const r2 = rig();
    r2.apic.writeRegister(R.TIMER_DIVIDE, 0xb);
    r2.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x50);
    r2.apic.writeRegister(R.TIMER_INITIAL, 50);
    expect(interruptCycles(r2, 5000)).toEqual([1100, 2200, 3300, 4400]);
    expect(r2.q.pending).toBe(1); // only the next expiry is scheduled
  });

  it('schedules nothing while the timer entry is masked, but keeps counting', () => {
    const r = rig();
    r.apic.writeRegister(R.TIMER_DIVIDE, 0xb);
    r.apic.writeRegister(R.LVT_TIMER, MASK | PERIODIC | 0x50);
    r.apic.writeRegister(R.TIMER_INITIAL, 100); // period 2200 cycles
    expect(r.q.pending).toBe(0);
    r.q.runUntil(3000); // one expiry passed while masked
    expect(r.apic.hasInterrupt()).toBe(false);
    expect(cur(r.apic)).toBe(100 - (Math.floor(3000 / CPT) % 100));
    r.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x50); // unmask: next expiry at tick 200
    expect(r.q.pending).toBe(1);
    expect(interruptCycles(r, 7000)).toEqual([4400, 6600]);
    r.apic.writeRegister(R.LVT_TIMER, MASK | PERIODIC | 0x50);
    expect(r.q.pending).toBe(0);
    // software disable masks the entry and cancels the event
    r.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x50);
    expect(r.q.pending).toBe(1);
    r.apic.writeRegister(R.SVR, 0xff);
    expect(r.q.pending).toBe(0);
    // one-shot that expires while masked: nothing later when unmasked
    const o = rig();
    o.apic.writeRegister(R.LVT_TIMER, MASK | 0x50);
    o.apic.writeRegister(R.TIMER_INITIAL, 10);
    o.q.runUntil(1_000_000);
    expect(cur(o.apic)).toBe(0);
    o.apic.writeRegister(R.LVT_TIMER, 0x50);
    expect(o.q.pending).toBe(0);
    o.q.runUntil(2_000_000);
    expect(o.apic.hasInterrupt()).toBe(false);
  });

  it('stops on an initial count of 0 and restarts on a new count', () => {
    const r = rig();
    r.apic.writeRegister(R.TIMER_DIVIDE, 0xb);
    r.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x50);
    r.apic.writeRegister(R.TIMER_INITIAL, 100);
    r.q.runUntil(1000);
    r.apic.writeRegister(R.TIMER_INITIAL, 0);
    expect(cur(r.apic)).toBe(0);
    expect(r.q.pending).toBe(0);
    r.q.runUntil(10_000);
    expect(r.apic.hasInterrupt()).toBe(false);
    r.apic.writeRegister(R.LVT_TIMER, 0x50); // one-shot (a mode change: disarms, nothing running anyway)
    r.q.runUntil(11_000); // tick 500
    r.apic.writeRegister(R.TIMER_INITIAL, 100);
    r.q.runUntil(20_000); // tick 909
    r.apic.writeRegister(R.TIMER_INITIAL, 100); // restart at tick 909: expiry at 1009
    expect(cur(r.apic)).toBe(100);
    expect(interruptCycles(r, 40_000)).toEqual([1009 * CPT]);
  });

  it('a divide change while counting continues from the current count with the new divisor', () => {
    const r = rig();
    r.apic.writeRegister(R.TIMER_DIVIDE, 0xb); // / 1
    r.apic.writeRegister(R.LVT_TIMER, 0x50);
    r.apic.writeRegister(R.TIMER_INITIAL, 1000);
    r.q.runUntil(100 * CPT);
    expect(cur(r.apic)).toBe(900);
    r.apic.writeRegister(R.TIMER_DIVIDE, 0x0); // / 2 from tick 100
    expect(cur(r.apic)).toBe(900);
    r.q.runUntil(101 * CPT);
    expect(cur(r.apic)).toBe(900);
    r.apic.writeRegister(R.TIMER_DIVIDE, 0x0); // same divisor: no effect on the phase
    r.q.runUntil(102 * CPT);
    expect(cur(r.apic)).toBe(899);
    expect(interruptCycles(r, 100_000)).toEqual([(100 + 1800) * CPT]);
  });

  it('a write to the LVT timer that changes the mode disarms the timer', () => {
    const r = rig();
    r.apic.writeRegister(R.TIMER_DIVIDE, 0xb);
    r.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x50);
    r.apic.writeRegister(R.TIMER_INITIAL, 100);
    r.q.runUntil(500);
    r.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x51); // vector only: keeps running
    expect(cur(r.apic)).toBe(100 - Math.floor(500 / CPT));
    r.apic.writeRegister(R.LVT_TIMER, 0x51); // periodic -> one-shot
    expect(cur(r.apic)).toBe(0);
    expect(r.q.pending).toBe(0);
    expect(interruptCycles(r, 100_000)).toEqual([]);
  });

  it('delivers the vector programmed at expiry time', () => {
    const r = rig();
    r.apic.writeRegister(R.TIMER_DIVIDE, 0xb);
    r.apic.writeRegister(R.LVT_TIMER, 0x50);
    r.apic.writeRegister(R.TIMER_INITIAL, 10);
    r.apic.writeRegister(R.LVT_TIMER, 0x60);
    r.q.runUntil(10 * CPT);
    expect(r.apic.acknowledge()).toBe(0x60);
  });
});

describe('local APIC TSC-deadline mode', () => {
  it('interrupts when the TSC reaches the deadline, then reads 0', () => {
    const r = rig();
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    r.q.runUntil(1000);
    r.apic.setTscDeadline(5000);
    expect(r.apic.getTscDeadline()).toBe(5000);
    r.q.runUntil(4999);
    expect(r.apic.hasInterrupt()).toBe(false);
    expect(r.apic.getTscDeadline()).toBe(5000);
    r.q.runUntil(5000);
    expect(r.apic.hasInterrupt()).toBe(true);
    expect(r.apic.getTscDeadline()).toBe(0);
    expect(r.apic.acknowledge()).toBe(0x70);
    expect(r.q.pending).toBe(0);
  });

  it('ignores the initial count and reads a current count of 0', () => {
    const r = rig();
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    r.apic.writeRegister(R.TIMER_DIVIDE, 0xb);
    r.apic.writeRegister(R.TIMER_INITIAL, 10);
    expect(r.apic.readRegister(R.TIMER_INITIAL)).toBe(0);
    expect(cur(r.apic)).toBe(0);
    expect(r.q.pending).toBe(0);
    r.q.runUntil(10_000);
    expect(r.apic.hasInterrupt()).toBe(false);
  });

  it('interrupts at once for a deadline already passed, and 0 disarms', () => {
    const r = rig();
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    r.q.runUntil(1000);
    r.apic.setTscDeadline(1000);
    expect(r.apic.hasInterrupt()).toBe(true);
    expect(r.apic.getTscDeadline()).toBe(0);
    r.apic.acknowledge();
    eoi(r.apic);
    r.apic.setTscDeadline(3000);
    r.apic.setTscDeadline(0);
    expect(r.q.pending).toBe(0);
    r.q.runUntil(10_000);
    expect(r.apic.hasInterrupt()).toBe(false);
  });

  it('moves the deadline forward and backward', () => {
    const r = rig();
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    r.apic.setTscDeadline(8000);
    r.apic.setTscDeadline(3000);
    expect(interruptCycles(r, 20_000)).toEqual([3000]);
    r.apic.setTscDeadline(25_000);
    r.apic.setTscDeadline(30_000);
    expect(interruptCycles(r, 40_000)).toEqual([30_000]);
  });

  it('ignores deadline writes in the other modes, and a mode change disarms', () => {
    const r = rig();
    r.apic.writeRegister(R.LVT_TIMER, 0x70);
    r.apic.setTscDeadline(5000);
    expect(r.apic.getTscDeadline()).toBe(0);
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    expect(r.apic.getTscDeadline()).toBe(0);
    r.apic.setTscDeadline(5000);
    r.apic.writeRegister(R.LVT_TIMER, 0x70); // to one-shot: disarms
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    expect(r.apic.getTscDeadline()).toBe(0);
    expect(interruptCycles(r, 10_000)).toEqual([]);
  });

  it('loses a deadline that passes while masked', () => {
    const r = rig();
    r.apic.writeRegister(R.LVT_TIMER, MASK | DEADLINE | 0x70);
    r.apic.setTscDeadline(5000);
    expect(r.q.pending).toBe(0);
    expect(r.apic.getTscDeadline()).toBe(5000);
    r.q.runUntil(6000);
    expect(r.apic.getTscDeadline()).toBe(0);
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    expect(interruptCycles(r, 20_000)).toEqual([]);
    // masked then unmasked before the deadline: it fires
    r.apic.writeRegister(R.LVT_TIMER, MASK | DEADLINE | 0x70);
    r.apic.setTscDeadline(25_000);
    r.apic.writeRegister(R.LVT_TIMER, DEADLINE | 0x70);
    expect(interruptCycles(r, 30_000)).toEqual([25_000]);
  });
});

describe('local APIC interrupt acceptance and priority', () => {
  it('dispenses by priority class, nests higher classes and EOIs the highest ISR bit first', () => {
    const { apic } = rig();
    apic.acceptInterrupt(0x35, true, 0);
    apic.acceptInterrupt(0x52, true, 0);
    apic.acceptInterrupt(0x61, true, 0);
    expect(apic.readRegister(R.IRR + 0x10)).toBe(1 << 21); // 0x35
    expect(apic.acknowledge()).toBe(0x61);
    expect(inIrr(apic, 0x61)).toBe(false);
    expect(inIsr(apic, 0x61)).toBe(true);
    expect(apic.readRegister(R.PPR)).toBe(0x60);
    expect(apic.hasInterrupt()).toBe(false); // 0x52 is below the in-service class
    apic.acceptInterrupt(0x65, true, 0);
    expect(apic.hasInterrupt()).toBe(false); // same class as 0x61
    apic.acceptInterrupt(0x71, true, 0);
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x71);
    expect(apic.readRegister(R.ISR + 0x30)).toBe(((1 << 17) | (1 << 1)) >>> 0);
    eoi(apic);
    expect(apic.readRegister(R.ISR + 0x30)).toBe(1 << 1); // 0x71 cleared, 0x61 still in service
    expect(apic.hasInterrupt()).toBe(false);
    eoi(apic);
    expect(apic.readRegister(R.ISR + 0x30)).toBe(0);
    const order: number[] = [];
    while (apic.hasInterrupt()) {
      order.push(apic.acknowledge());
      eoi(apic);
    }
    expect(order).toEqual([0x65, 0x52, 0x35]);
    expect(apic.acknowledge()).toBe(0xff); // spurious
    eoi(apic); // EOI with nothing in service: harmless
    expect(apic.readRegister(R.PPR)).toBe(0);
  });

  it('queues one more interrupt of a vector in service and collapses the rest', () => {
    const { apic } = rig();
    apic.acceptInterrupt(0x40, true, 0);
    expect(apic.acknowledge()).toBe(0x40);
    apic.acceptInterrupt(0x40, true, 0);
    apic.acceptInterrupt(0x40, true, 0);
    expect(inIrr(apic, 0x40) && inIsr(apic, 0x40)).toBe(true);
    expect(apic.hasInterrupt()).toBe(false);
    eoi(apic);
    expect(apic.acknowledge()).toBe(0x40);
    eoi(apic);
    expect(apic.hasInterrupt()).toBe(false);
  });

  it('masks by TPR class and computes PPR', () => {
    const r = rig();
    const { apic } = r;
    apic.writeRegister(R.SVR, 0x1ef);
    apic.writeRegister(R.TPR, 0x50);
    apic.acceptInterrupt(0x52, true, 0);
    apic.acceptInterrupt(0x5f, true, 0);
    expect(apic.hasInterrupt()).toBe(false);
    expect(apic.readRegister(R.PPR)).toBe(0x50);
    apic.acceptInterrupt(0x61, true, 0);
    expect(apic.hasInterrupt()).toBe(true);
    // TPR raised after INTR rose: INTA gets the spurious vector and ISR is untouched
    apic.writeRegister(R.TPR, 0x6a);
    expect(apic.readRegister(R.PPR)).toBe(0x6a);
    expect(apic.hasInterrupt()).toBe(false);
    expect(apic.acknowledge()).toBe(0xef);
    expect(apic.readRegister(R.ISR + 0x30)).toBe(0);
    expect(inIrr(apic, 0x61)).toBe(true);
    r.log.length = 0;
    apic.writeRegister(R.TPR, 0x00);
    expect(r.log).toEqual([['intr', 0]]);
    expect(apic.acknowledge()).toBe(0x61);
    // PPR with something in service
    apic.writeRegister(R.TPR, 0x45);
    expect(apic.readRegister(R.PPR)).toBe(0x60);
    apic.writeRegister(R.TPR, 0x65);
    expect(apic.readRegister(R.PPR)).toBe(0x65);
    apic.writeRegister(R.TPR, 0x75);
    expect(apic.readRegister(R.PPR)).toBe(0x75);
  });

  it('computes APR as the SDM says', () => {
    const { apic } = rig();
    apic.writeRegister(R.TPR, 0x35);
    expect(apic.readRegister(R.APR)).toBe(0x35);
    apic.writeRegister(R.TPR, 0x20);
    apic.acceptInterrupt(0x52, true, 0);
    expect(apic.readRegister(R.APR)).toBe(0x50);
    apic.acknowledge();
    apic.writeRegister(R.TPR, 0x60); // TPR >= IRRV and > ISRV
    expect(apic.readRegister(R.APR)).toBe(0x60);
    apic.writeRegister(R.TPR, 0x70);
    apic.acceptInterrupt(0x91, true, 0); // IRRV 9 > TPR 7: max(7 & 5, 9)
    expect(apic.readRegister(R.APR)).toBe(0x90);
    apic.acknowledge(); // ISRV 9
    apic.writeRegister(R.TPR, 0x35); // TPR 3 <= ISRV 9: max(3 & 9, 0) = 1
    expect(apic.readRegister(R.APR)).toBe(0x10);
  });

  it('pokes the core only when the INTR output changes', () => {
    const r = rig();
    r.apic.acceptInterrupt(0x40, true, 0);
    expect(r.log).toEqual([['intr', 0]]);
    r.apic.acceptInterrupt(0x50, true, 0);
    expect(r.log.length).toBe(1);
    r.apic.acknowledge();
    r.apic.acknowledge();
    expect(r.log.length).toBe(1);
    eoi(r.apic); // 0x40 now deliverable
    expect(r.log).toEqual([['intr', 0], ['intr', 0]]);
  });

  it('refuses vectors 0-15 with a receive illegal vector error and raises the error LVT', () => {
    const { apic } = rig();
    apic.acceptInterrupt(0x05, true, 0);
    expect(apic.readRegister(R.IRR)).toBe(0);
    expect(apic.hasInterrupt()).toBe(false);
    expect(readEsr(apic)).toBe(ESR_RECEIVE_ILLEGAL_VECTOR);
    apic.writeRegister(R.LVT_ERROR, 0xe3);
    apic.acceptInterrupt(0x0f, true, 0);
    expect(apic.acknowledge()).toBe(0xe3);
    eoi(apic);
    // an error LVT with an illegal vector does not loop
    apic.writeRegister(R.LVT_ERROR, 0x03);
    apic.mmioRead(0x040, 4);
    expect(readEsr(apic)).toBe(ESR_RECEIVE_ILLEGAL_VECTOR | ESR_ILLEGAL_REGISTER);
    expect(apic.hasInterrupt()).toBe(false);
  });

  it('sets TMR for level-triggered interrupts and broadcasts their EOI', () => {
    const r = rig();
    const { apic } = r;
    apic.acceptInterrupt(0x41, true, 0);
    apic.acceptInterrupt(0x80, true, 1);
    expect(inTmr(apic, 0x80)).toBe(true);
    expect(inTmr(apic, 0x41)).toBe(false);
    expect(apic.acknowledge()).toBe(0x80);
    r.log.length = 0;
    eoi(apic);
    expect(r.log.filter((e) => (e as unknown[])[0] === 'eoi')).toEqual([['eoi', 0x80]]);
    expect(apic.acknowledge()).toBe(0x41);
    r.log.length = 0;
    eoi(apic);
    expect(r.log.filter((e) => (e as unknown[])[0] === 'eoi')).toEqual([]);
    // an edge interrupt accepted later for the same vector clears its TMR bit
    apic.acceptInterrupt(0x80, true, 0);
    expect(inTmr(apic, 0x80)).toBe(false);
    // de-assert messages are ignored
    apic.acceptInterrupt(0x90, false, 1);
    expect(inIrr(apic, 0x90)).toBe(false);
  });

  it('when software-disabled, forces LVT masks, drops fixed messages, still takes NMI/INIT/SIPI and dispenses what it holds', () => {
    const r = rig({}, HZ, false);
    const { apic } = r;
    apic.writeRegister(R.LVT_TIMER, 0x40);
    expect(apic.readRegister(R.LVT_TIMER)).toBe(0x10040);
    apic.acceptInterrupt(0x40, true, 0);
    expect(inIrr(apic, 0x40)).toBe(false);
    apic.receive(4, 0, true, 0);
    apic.receive(6, 0x9a, true, 0);
    expect(r.log).toEqual([['nmi', 0], ['sipi', 0x9a]]);
    apic.writeRegister(R.SVR, 0x1ff);
    apic.writeRegister(R.LVT_TIMER, 0x40);
    apic.writeRegister(R.LVT_LINT0, 0x700);
    expect(apic.readRegister(R.LVT_TIMER)).toBe(0x40);
    apic.acceptInterrupt(0x50, true, 0);
    apic.writeRegister(R.SVR, 0x0ff);
    for (const reg of [R.LVT_TIMER, R.LVT_THERMAL, R.LVT_PERF, R.LVT_LINT0, R.LVT_LINT1, R.LVT_ERROR]) {
      expect(apic.readRegister(reg) & MASK).toBe(MASK);
    }
    expect(apic.readRegister(R.LVT_LINT0)).toBe(0x10700);
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x50);
  });
});

describe('local APIC LINT pins and ExtINT', () => {
  class FakePic implements InterruptSource {
    queue: number[] = [];
    acks = 0;
    hasInterrupt(): boolean {
      return this.queue.length > 0;
    }
    acknowledge(): number {
      this.acks++;
      return this.queue.shift() ?? 0x27;
    }
  }

  it('virtual wire: LINT0 in ExtINT mode takes INTA to the 8259, ahead of the IRR', () => {
    const pic = new FakePic();
    const r = rig({ extInt: pic });
    const { apic } = r;
    pic.queue.push(0x20);
    expect(apic.hasInterrupt()).toBe(false); // LINT0 masked
    apic.writeRegister(R.LVT_LINT0, 0x700);
    expect(apic.hasInterrupt()).toBe(true);
    apic.acceptInterrupt(0x80, true, 0);
    expect(apic.acknowledge()).toBe(0x20);
    expect(pic.acks).toBe(1);
    expect(apic.readRegister(R.ISR + 0x00)).toBe(0); // ExtINT bypasses ISR
    expect(apic.acknowledge()).toBe(0x80);
    apic.writeRegister(R.TPR, 0xf0); // ExtINT ignores priority
    pic.queue.push(0x21);
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x21);
  });

  it('pokes the core when the 8259 INTR wired to LINT0 changes', () => {
    const pic = new FakePic();
    const r = rig({ extInt: pic });
    r.apic.setupVirtualWire();
    expect(r.apic.readRegister(R.SVR) & 0x100).toBe(0x100);
    expect(r.apic.readRegister(R.LVT_LINT0)).toBe(0x8700);
    expect(r.apic.readRegister(R.LVT_LINT1)).toBe(0x8400);
    r.log.length = 0;
    pic.queue.push(0x20, 0x21);
    r.apic.lintLine(0).set(true);
    expect(r.log).toEqual([['intr', 0]]);
    expect(r.apic.acknowledge()).toBe(0x20); // the 8259 still requests
    expect(r.apic.hasInterrupt()).toBe(true);
    pic.queue.length = 0; // the request went away: the 8259 drops INTR
    r.apic.lintLine(0).set(false);
    expect(r.log).toEqual([['intr', 0], ['intr', 0]]);
    expect(r.apic.hasInterrupt()).toBe(false);
  });

  it('an ExtINT message sends the next INTA to the 8259', () => {
    const pic = new FakePic();
    const { apic } = rig({ extInt: pic });
    pic.queue.push(0x24);
    apic.receive(7, 0, true, 0);
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x24);
    expect(apic.hasInterrupt()).toBe(false);
  });

  it('LINT1 as NMI fires on the asserting edge only', () => {
    const r = rig();
    r.apic.writeRegister(R.LVT_LINT1, 0x400);
    r.apic.setLint(1, true);
    r.apic.setLint(1, true);
    r.apic.setLint(1, false);
    r.apic.setLint(1, true);
    expect(r.log.filter((e) => (e as unknown[])[0] === 'nmi').length).toBe(2);
  });

  it('fixed edge LINT with active-low polarity', () => {
    const { apic } = rig();
    apic.writeRegister(R.LVT_LINT1, 0x2041); // active low, edge
    apic.setLint(1, true); // deasserting
    expect(inIrr(apic, 0x41)).toBe(false);
    apic.setLint(1, false); // asserting
    expect(inIrr(apic, 0x41)).toBe(true);
    expect(inTmr(apic, 0x41)).toBe(false);
  });

  it('fixed level LINT0: remote IRR set on delivery, cleared by the EOI, redelivered while asserted', () => {
    const r = rig();
    const { apic } = r;
    apic.writeRegister(R.LVT_LINT0, 0x8045);
    apic.setLint(0, true);
    expect(inIrr(apic, 0x45)).toBe(true);
    expect(inTmr(apic, 0x45)).toBe(true);
    expect(apic.readRegister(R.LVT_LINT0)).toBe(0xc045);
    expect(apic.acknowledge()).toBe(0x45);
    apic.writeRegister(R.LVT_LINT0, 0x8045); // remote IRR is read-only
    expect(apic.readRegister(R.LVT_LINT0)).toBe(0xc045);
    expect(inIrr(apic, 0x45)).toBe(false);
    eoi(apic); // still asserted: delivered again
    expect(inIrr(apic, 0x45)).toBe(true);
    expect(apic.readRegister(R.LVT_LINT0)).toBe(0xc045);
    apic.setLint(0, false);
    expect(apic.acknowledge()).toBe(0x45);
    eoi(apic);
    expect(apic.readRegister(R.LVT_LINT0)).toBe(0x8045);
    expect(apic.hasInterrupt()).toBe(false);
    // an asserted level pin is delivered when its entry is unmasked
    apic.writeRegister(R.LVT_LINT0, MASK | 0x8046);
    apic.setLint(0, true);
    expect(inIrr(apic, 0x46)).toBe(false);
    apic.writeRegister(R.LVT_LINT0, 0x8046);
    expect(inIrr(apic, 0x46)).toBe(true);
  });

  it('LINT as INIT resets the APIC and calls onInit', () => {
    const r = rig();
    r.apic.writeRegister(R.TPR, 0x30);
    r.apic.writeRegister(R.LVT_LINT1, 0x500);
    r.apic.setLint(1, true);
    expect(r.log).toContainEqual(['init', 0]);
    expect(r.apic.readRegister(R.TPR)).toBe(0);
    expect(r.apic.readRegister(R.SVR)).toBe(0xff);
  });

  it('when globally disabled: no APIC, LINT0 is INTR straight from the 8259, LINT1 is NMI', () => {
    const pic = new FakePic();
    const r = rig({ extInt: pic, apicId: 2 });
    const { apic } = r;
    apic.writeRegister(R.ID, 0x07000000);
    apic.writeRegister(R.TPR, 0x30);
    apic.acceptInterrupt(0x80, true, 0);
    expect(apic.writeApicBaseMsr(0xfee00000)).toBe(true);
    expect(apic.readApicBaseMsr()).toBe(0xfee00000);
    expect(apic.globallyEnabled).toBe(false);
    expect(apic.hasInterrupt()).toBe(false);
    pic.queue.push(0x30);
    expect(apic.hasInterrupt()).toBe(true);
    expect(apic.acknowledge()).toBe(0x30);
    expect(apic.mmioRead(0x20, 4)).toBe(0xffffffff);
    expect(apic.mmioRead(0x20, 1)).toBe(0xff);
    apic.mmioWrite(0x80, 4, 0x40);
    apic.acceptInterrupt(0x90, true, 0);
    apic.setLint(1, true);
    expect(r.log).toContainEqual(['nmi', 0]);
    // enabled again: power-up state with the ID kept
    expect(apic.writeApicBaseMsr(0xfee00800)).toBe(true);
    expect(apic.readRegister(R.ID)).toBe(0x07000000);
    expect(apic.readRegister(R.TPR)).toBe(0);
    expect(apic.readRegister(R.SVR)).toBe(0xff);
    expect(apic.readRegister(R.IRR + 0x40)).toBe(0);
    // reserved bits refuse the write (the core raises #GP)
    expect(apic.writeApicBaseMsr(0xfee00c00)).toBe(false); // x2APIC
    expect(apic.writeApicBaseMsr(0xfee00801)).toBe(false);
    expect(apic.readApicBaseMsr()).toBe(0xfee00800);
    expect(apic.writeApicBaseMsr(0xfed00800)).toBe(true);
    expect(apic.baseAddress).toBe(0xfed00000);
  });
});

describe('local APIC IPIs', () => {
  function pair() {
    const q = new EventQueue(HZ);
    const bus = new ApicBus();
    const log: unknown[] = [];
    const make = (id: number, name: string) =>
      new LocalApic({
        time: q,
        scheduler: q,
        apicId: id,
        bus,
        onNmi: () => log.push([name, 'nmi']),
        onInit: () => log.push([name, 'init']),
        onStartup: (v) => log.push([name, 'sipi', v]),
      });
    const a = make(0, 'a');
    const b = make(1, 'b');
    bus.attach(a);
    bus.attach(b);
    a.writeRegister(R.SVR, 0x1ff);
    b.writeRegister(R.SVR, 0x1ff);
    return { q, bus, a, b, log };
  }
  const ipi = (from: LocalApic, low: number, dest = 0): void => {
    from.writeRegister(R.ICR_HIGH, dest << 24);
    from.writeRegister(R.ICR_LOW, low);
  };
  /** Which of a, b received `v` in IRR (and clears their IRRs by acknowledging and EOI). */
  const got = (p: { a: LocalApic; b: LocalApic }, v: number): string => {
    let s = '';
    for (const [n, x] of [['a', p.a], ['b', p.b]] as const) {
      if (inIrr(x, v)) {
        s += n;
        while (x.hasInterrupt()) {
          x.acknowledge();
          eoi(x);
        }
      }
    }
    return s;
  };

  it('routes physical destinations and shorthands', () => {
    const p = pair();
    ipi(p.a, 0x40, 1);
    expect(got(p, 0x40)).toBe('b');
    ipi(p.b, 0x41, 0);
    expect(got(p, 0x41)).toBe('a');
    ipi(p.a, 0x42, 0xff);
    expect(got(p, 0x42)).toBe('ab');
    ipi(p.a, 0x43, 5);
    expect(got(p, 0x43)).toBe('');
    ipi(p.a, 0x40000 | 0x44, 1); // self: the destination field is ignored
    expect(got(p, 0x44)).toBe('a');
    ipi(p.b, 0x80000 | 0x45); // all including self
    expect(got(p, 0x45)).toBe('ab');
    ipi(p.b, 0xc0000 | 0x46); // all excluding self
    expect(got(p, 0x46)).toBe('a');
    ipi(p.a, 0xc0000 | 0x47);
    expect(got(p, 0x47)).toBe('b');
    p.b.writeRegister(R.ID, 0x05000000);
    ipi(p.a, 0x48, 1);
    expect(got(p, 0x48)).toBe('');
    ipi(p.a, 0x48, 5);
    expect(got(p, 0x48)).toBe('b');
  });

  it('routes logical destinations in the flat and cluster models', () => {
    const p = pair();
    const LOGICAL = 0x800;
    p.a.writeRegister(R.LDR, 0x01000000);
    p.b.writeRegister(R.LDR, 0x02000000);
    ipi(p.a, LOGICAL | 0x50, 0x02);
    expect(got(p, 0x50)).toBe('b');
    ipi(p.a, LOGICAL | 0x51, 0x03);
    expect(got(p, 0x51)).toBe('ab');
    ipi(p.a, LOGICAL | 0x52, 0x04);
    expect(got(p, 0x52)).toBe('');
    ipi(p.a, 0x53, 0x02); // physical 2: nobody
    expect(got(p, 0x53)).toBe('');
    for (const x of [p.a, p.b]) x.writeRegister(R.DFR, 0x0fffffff);
    p.a.writeRegister(R.LDR, 0x11000000);
    p.b.writeRegister(R.LDR, 0x12000000);
    ipi(p.a, LOGICAL | 0x54, 0x13);
    expect(got(p, 0x54)).toBe('ab');
    ipi(p.a, LOGICAL | 0x55, 0x12);
    expect(got(p, 0x55)).toBe('b');
    ipi(p.a, LOGICAL | 0x56, 0x23); // other cluster
    expect(got(p, 0x56)).toBe('');
    ipi(p.a, LOGICAL | 0x57, 0xff);
    expect(got(p, 0x57)).toBe('ab');
    // the flat model would have matched 0x23 & 0x12
    p.b.writeRegister(R.DFR, 0xffffffff);
    ipi(p.a, LOGICAL | 0x58, 0x23);
    expect(got(p, 0x58)).toBe('b');
  });

  it('delivers lowest priority to the matching APIC with the lowest TPR, the first on ties', () => {
    const p = pair();
    const LOWEST = 0x100 | 0x800;
    p.a.writeRegister(R.LDR, 0x01000000);
    p.b.writeRegister(R.LDR, 0x02000000);
    p.a.writeRegister(R.TPR, 0x20);
    p.b.writeRegister(R.TPR, 0x10);
    ipi(p.a, LOWEST | 0x90, 0x03);
    expect(got(p, 0x90)).toBe('b');
    p.b.writeRegister(R.TPR, 0x30);
    ipi(p.a, LOWEST | 0x91, 0x03);
    expect(got(p, 0x91)).toBe('a');
    p.b.writeRegister(R.TPR, 0x20);
    ipi(p.a, LOWEST | 0x92, 0x03);
    expect(got(p, 0x92)).toBe('a');
    ipi(p.a, LOWEST | 0x93, 0x02);
    expect(got(p, 0x93)).toBe('b');
    p.a.writeRegister(R.SVR, 0xff); // software-disabled APICs are not chosen
    p.b.writeRegister(R.TPR, 0x80);
    ipi(p.b, LOWEST | 0x94, 0x03);
    expect(got(p, 0x94)).toBe('b');
  });

  it('sends NMI, INIT and start-up IPIs to the callbacks; INIT resets the target but keeps its ID', () => {
    const p = pair();
    p.b.writeRegister(R.ID, 0x07000000);
    p.b.writeRegister(R.TPR, 0x40);
    p.b.writeRegister(R.LDR, 0x02000000);
    p.b.acceptInterrupt(0x99, true, 0);
    ipi(p.a, 0x4400, 7); // NMI
    expect(p.log).toEqual([['b', 'nmi']]);
    ipi(p.a, 0x4500, 7); // INIT, level assert
    expect(p.log).toEqual([['b', 'nmi'], ['b', 'init']]);
    expect(p.b.readRegister(R.ID)).toBe(0x07000000);
    expect(p.b.readRegister(R.TPR)).toBe(0);
    expect(p.b.readRegister(R.LDR)).toBe(0);
    expect(p.b.readRegister(R.SVR)).toBe(0xff);
    expect(inIrr(p.b, 0x99)).toBe(false);
    expect(p.a.readRegister(R.SVR)).toBe(0x1ff);
    ipi(p.a, 0x88500); // INIT level de-assert to all including self: ignored
    expect(p.log.length).toBe(2);
    ipi(p.a, 0x4600 | 0x9a, 7); // start-up, vector 0x9A, even to a software-disabled APIC
    ipi(p.a, 0x4600 | 0x9a, 7);
    expect(p.log).toEqual([['b', 'nmi'], ['b', 'init'], ['b', 'sipi', 0x9a], ['b', 'sipi', 0x9a]]);
    ipi(p.a, 0xc4500); // INIT to all excluding self
    expect(p.log[4]).toEqual(['b', 'init']);
    expect(p.log.length).toBe(5);
  });

  it('keeps the ICR, reads delivery status idle, and refuses illegal vectors', () => {
    const p = pair();
    ipi(p.a, 0x000c_d0ff | (1 << 12), 1);
    expect(p.a.readRegister(R.ICR_LOW)).toBe(0x000cc0ff); // delivery status reads idle
    expect(p.a.readRegister(R.ICR_HIGH)).toBe(0x01000000);
    ipi(p.a, 0x4005, 1);
    expect(readEsr(p.a)).toBe(ESR_SEND_ILLEGAL_VECTOR);
    expect(p.b.readRegister(R.IRR)).toBe(0);
    expect(readEsr(p.b)).toBe(0);
    // NMI with vector 0 is fine
    ipi(p.a, 0x4400, 1);
    expect(readEsr(p.a)).toBe(0);
  });

  it('sends self IPIs to itself without a bus', () => {
    const { apic } = rig();
    apic.writeRegister(R.ICR_LOW, 0x40000 | 0x66);
    expect(inIrr(apic, 0x66)).toBe(true);
    apic.writeRegister(R.ICR_HIGH, 0);
    apic.writeRegister(R.ICR_LOW, 0x67); // physical 0 = itself
    expect(inIrr(apic, 0x67)).toBe(true);
  });
});

describe('local APIC save/restore', () => {
  it('re-arms a running timer on restore', () => {
    const a = rig();
    a.apic.writeRegister(R.TIMER_DIVIDE, 0xb);
    a.apic.writeRegister(R.LVT_TIMER, PERIODIC | 0x50);
    a.apic.writeRegister(R.TIMER_INITIAL, 100);
    a.q.runUntil(3000);
    const saved = JSON.parse(JSON.stringify(a.apic.save())) as LocalApicState;
    const q = new EventQueue(HZ, 3000);
    const b = new LocalApic({ time: q, scheduler: q, apicId: 0 });
    b.restore(saved);
    expect(interruptCycles({ q, apic: b, log: [] }, 10_000)).toEqual([4400, 6600, 8800]);
    expect(interruptCycles(a, 10_000)).toEqual([4400, 6600, 8800]);
  });

  it('reset returns to the power-up state and cancels the timer', () => {
    const r = rig({ apicId: 4 });
    r.apic.writeRegister(R.ID, 0x09000000);
    r.apic.writeRegister(R.LVT_TIMER, 0x50);
    r.apic.writeRegister(R.TIMER_INITIAL, 100);
    r.apic.acceptInterrupt(0x40, true, 0);
    r.apic.reset();
    expect(r.q.pending).toBe(0);
    expect(r.apic.readRegister(R.ID)).toBe(0x04000000);
    expect(r.apic.readRegister(R.SVR)).toBe(0xff);
    expect(r.apic.hasInterrupt()).toBe(false);
    const fresh = new LocalApic({ time: r.q, scheduler: r.q, apicId: 4 });
    expect(r.apic.save()).toEqual(fresh.save());
  });

  type Op =
    | { k: 'w'; reg: number; v: number }
    | { k: 'r'; reg: number }
    | { k: 'adv'; n: number }
    | { k: 'irq'; v: number; trig: 0 | 1 }
    | { k: 'ack' }
    | { k: 'lint'; pin: 0 | 1; level: boolean }
    | { k: 'dl'; d: number }
    | { k: 'msg'; mode: number; v: number };

  const vec = fc.integer({ min: 0, max: 255 });
  const writeArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ k: fc.constant('w' as const), reg: fc.constantFrom(R.TPR, R.LDR, R.DFR, R.ID, R.ESR, R.EOI, R.ICR_HIGH), v: fc.nat({ max: 0xffffffff }) }),
    fc.record({ k: fc.constant('w' as const), reg: fc.constant(R.SVR), v: fc.tuple(fc.boolean(), vec).map(([e, v]) => (e ? 0x100 : 0) | v) }),
    fc.record({ k: fc.constant('w' as const), reg: fc.constant(R.ICR_LOW), v: fc.tuple(fc.constantFrom(0, 1, 4, 5, 6), fc.nat({ max: 3 }), vec, fc.boolean()).map(([m, sh, v, lg]) => (sh << 18) | (m << 8) | (lg ? 0x800 : 0) | 0x4000 | v) }),
    fc.record({
      k: fc.constant('w' as const),
      reg: fc.constant(R.LVT_TIMER),
      v: fc.tuple(fc.boolean(), fc.constantFrom(0, 1, 2), fc.integer({ min: 0x10, max: 0xff })).map(([m, mode, v]) => (m ? MASK : 0) | (mode << 17) | v),
    }),
    fc.record({ k: fc.constant('w' as const), reg: fc.constantFrom(R.LVT_LINT0, R.LVT_LINT1, R.LVT_ERROR, R.LVT_THERMAL), v: fc.nat({ max: 0x1ffff }) }),
    fc.record({ k: fc.constant('w' as const), reg: fc.constant(R.TIMER_INITIAL), v: fc.integer({ min: 0, max: 400 }) }),
    fc.record({ k: fc.constant('w' as const), reg: fc.constant(R.TIMER_DIVIDE), v: fc.nat({ max: 15 }) }),
  );
  const readRegs = [
    R.ID, R.TPR, R.APR, R.PPR, R.LDR, R.DFR, R.SVR, R.ESR, R.ICR_LOW, R.ICR_HIGH, R.LVT_TIMER, R.LVT_LINT0, R.LVT_LINT1,
    R.LVT_ERROR, R.TIMER_INITIAL, R.TIMER_CURRENT, R.TIMER_DIVIDE, 0x2f0,
    ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap((i) => [R.ISR + i * 16, R.TMR + i * 16, R.IRR + i * 16]),
  ];
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    { arbitrary: writeArb, weight: 5 },
    { arbitrary: fc.record({ k: fc.constant('r' as const), reg: fc.constantFrom(...readRegs) }), weight: 2 },
    { arbitrary: fc.record({ k: fc.constant('adv' as const), n: fc.integer({ min: 0, max: 60_000 }) }), weight: 3 },
    { arbitrary: fc.record({ k: fc.constant('irq' as const), v: vec, trig: fc.constantFrom(0 as const, 1 as const) }), weight: 2 },
    { arbitrary: fc.constant({ k: 'ack' as const }), weight: 2 },
    { arbitrary: fc.record({ k: fc.constant('lint' as const), pin: fc.constantFrom(0 as const, 1 as const), level: fc.boolean() }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant('dl' as const), d: fc.integer({ min: -1000, max: 100_000 }) }), weight: 1 },
    { arbitrary: fc.record({ k: fc.constant('msg' as const), mode: fc.constantFrom(0, 4, 5, 6, 7), v: vec }), weight: 1 },
  );

  function makeRig(start: number): Rig {
    const q = new EventQueue(HZ, start);
    const log: unknown[] = [];
    const pic: InterruptSource = { hasInterrupt: () => true, acknowledge: () => 0x28 };
    const apic = new LocalApic({
      time: q,
      scheduler: q,
      apicId: 0,
      extInt: pic,
      onInterruptChange: () => log.push(['intr', q.now()]),
      onNmi: () => log.push(['nmi', q.now()]),
      onInit: () => log.push(['init', q.now()]),
      onStartup: (v) => log.push(['sipi', q.now(), v]),
      onEoiBroadcast: (v) => log.push(['eoi', q.now(), v]),
    });
    return { q, apic, log };
  }

  function apply(r: Rig, op: Op): unknown {
    switch (op.k) {
      case 'w':
        r.apic.writeRegister(op.reg, op.v);
        break;
      case 'r':
        return r.apic.readRegister(op.reg);
      case 'adv':
        r.q.advance(op.n);
        break;
      case 'irq':
        r.apic.acceptInterrupt(op.v, true, op.trig);
        break;
      case 'ack':
        return r.apic.hasInterrupt() ? r.apic.acknowledge() : -1;
      case 'lint':
        r.apic.setLint(op.pin, op.level);
        break;
      case 'dl':
        r.apic.setTscDeadline(r.q.now() + op.d);
        return r.apic.getTscDeadline();
      case 'msg':
        r.apic.receive(op.mode, op.v, true, 0);
        break;
    }
    return [r.apic.hasInterrupt(), r.apic.readRegister(R.TIMER_CURRENT), r.q.pending];
  }

  it('restores into a fresh instance that then behaves identically (random register traffic)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 40 }), fc.array(opArb, { maxLength: 40 }), (prefix, suffix) => {
        const a = makeRig(0);
        for (const op of prefix) apply(a, op);
        const json = JSON.stringify(a.apic.save());
        const b = makeRig(a.q.now());
        b.apic.restore(JSON.parse(json) as LocalApicState);
        expect(JSON.stringify(b.apic.save())).toBe(json);
        expect(b.q.pending).toBe(a.q.pending);
        a.log.length = 0;
        const obsA = suffix.map((op) => apply(a, op));
        const obsB = suffix.map((op) => apply(b, op));
        // a final long run lets any armed timer fire
        a.q.advance(10_000_000);
        b.q.advance(10_000_000);
        expect(obsB).toEqual(obsA);
        expect(b.log).toEqual(a.log);
        expect(JSON.stringify(b.apic.save())).toBe(JSON.stringify(a.apic.save()));
      }),
      fcParams,
    );
  });
});
