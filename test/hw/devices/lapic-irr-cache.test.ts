// The local APIC keeps the highest IRR vector cached (lapic.ts irrTop) so its interrupt checks
// need no scan of IRR. These tests drive random sequences of everything that changes IRR, ISR,
// TPR or the whole state (accepts, INTA, EOI, TPR writes, save/restore, reset, disabling the
// APIC through IA32_APIC_BASE, INIT) and check after every step that hasInterrupt(), PPR, APR
// and the vector INTA takes agree with what the IRR/ISR/TPR registers say (a reference that
// scans them). A stale cache shows as a disagreement.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue } from '../../../hw/devices/event-queue.ts';
import { DeliveryMode, LapicReg as R, LocalApic } from '../../../hw/devices/lapic.ts';
import { fcParams } from './helpers.ts';

const HZ = 2_200_000_000;

function make(): LocalApic {
  const q = new EventQueue(HZ);
  const apic = new LocalApic({ time: q, scheduler: q, apicId: 0 });
  apic.writeRegister(R.SVR, 0x1ff);
  return apic;
}

function highest(a: LocalApic, base: number): number {
  for (let i = 7; i >= 0; i--) {
    const w = a.readRegister(base + i * 0x10) >>> 0;
    if (w !== 0) return i * 32 + 31 - Math.clz32(w);
  }
  return -1;
}

/** The reference: SDM 10.8.3.1 / 10.8.4 computed from the registers as software reads them. */
function expected(a: LocalApic): { has: boolean; ppr: number; apr: number; vector: number } {
  const tpr = a.readRegister(R.TPR) & 0xff;
  const isrv = highest(a, R.ISR), irrv = highest(a, R.IRR);
  const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
  const ppr = (tpr & 0xf0) >= isrClass ? tpr : isrClass;
  const t = tpr >>> 4, iv = Math.max(0, isrv) >>> 4, rv = Math.max(0, irrv) >>> 4;
  const apr = t >= rv && t > iv ? tpr : Math.max(t & iv, rv) << 4;
  const enabled = (a.readRegister(R.SVR) & 0x100) !== 0 && a.globallyEnabled;
  const has = enabled && irrv >= 0 && (irrv & 0xf0) > (ppr & 0xf0);
  return { has, ppr, apr, vector: has ? irrv : a.readRegister(R.SVR) & 0xff };
}

type Op =
  | { k: 'accept'; v: number; level: boolean }
  | { k: 'inta' }
  | { k: 'eoi' }
  | { k: 'tpr'; v: number }
  | { k: 'snapshot' }
  | { k: 'restore' }
  | { k: 'reset' }
  | { k: 'disable' }
  | { k: 'init' };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ k: fc.constant('accept' as const), v: fc.integer({ min: 16, max: 255 }), level: fc.boolean() }) },
  { weight: 4, arbitrary: fc.constant({ k: 'inta' as const }) },
  { weight: 3, arbitrary: fc.constant({ k: 'eoi' as const }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('tpr' as const), v: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'snapshot' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'restore' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'reset' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'disable' as const }) },
  { weight: 1, arbitrary: fc.constant({ k: 'init' as const }) },
);

describe('local APIC: the cached highest IRR vector stays exact', () => {
  it('hasInterrupt, PPR, APR and INTA match a scan of IRR/ISR/TPR after every change', () => {
    fc.assert(fc.property(fc.array(op, { minLength: 1, maxLength: 80 }), (ops) => {
      const a = make();
      let snap = a.save();
      for (const o of ops) {
        switch (o.k) {
          case 'accept': a.receive(DeliveryMode.Fixed, o.v, true, o.level ? 1 : 0); break;
          case 'inta': {
            const want = expected(a);
            expect(a.acknowledge()).toBe(want.vector);
            break;
          }
          case 'eoi': a.writeRegister(R.EOI, 0); break;
          case 'tpr': a.writeRegister(R.TPR, o.v); break;
          case 'snapshot': snap = a.save(); break;
          case 'restore': a.restore(snap); break;
          case 'reset': a.reset(); a.writeRegister(R.SVR, 0x1ff); break;
          case 'disable':
            a.writeApicBaseMsr(0xfee00000); // global disable: the state returns to power-up
            a.writeApicBaseMsr(0xfee00000 | 0x800);
            a.writeRegister(R.SVR, 0x1ff);
            break;
          case 'init': a.receive(DeliveryMode.Init, 0, true, 0); a.writeRegister(R.SVR, 0x1ff); break;
        }
        const want = expected(a);
        expect(a.hasInterrupt()).toBe(want.has);
        expect(a.readRegister(R.PPR)).toBe(want.ppr);
        expect(a.readRegister(R.APR)).toBe(want.apr);
      }
    }), fcParams);
  });

  it('a restored state with pending vectors is seen at once, and an empty one clears them', () => {
    const a = make();
    a.receive(DeliveryMode.Fixed, 0x80, true, 0);
    const busy = a.save();
    a.reset(); a.writeRegister(R.SVR, 0x1ff);
    expect(a.hasInterrupt()).toBe(false);
    a.restore(busy);
    expect(a.hasInterrupt()).toBe(true);
    expect(a.acknowledge()).toBe(0x80);
    a.receive(DeliveryMode.Fixed, 0x90, true, 0);
    a.receive(DeliveryMode.Fixed, 0x40, true, 0);
    expect(a.hasInterrupt()).toBe(true); // 0x90 is above the in-service 0x80
    expect(a.acknowledge()).toBe(0x90);
    expect(a.hasInterrupt()).toBe(false); // 0x40 waits below 0x90 in service
    a.writeRegister(R.EOI, 0);
    expect(a.hasInterrupt()).toBe(false); // 0x80 still in service
    a.writeRegister(R.EOI, 0);
    expect(a.acknowledge()).toBe(0x40);
    expect(a.hasInterrupt()).toBe(false);
  });
});
