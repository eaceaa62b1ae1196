// The kernel's GDT and TLS descriptors (kernel/gdt.ts): Linux's user_desc encoding
// (fill_ldt / fill_user_desc) round-trips, and what the CPU decodes from a descriptor is the
// segment set_thread_area asked for.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { descAr, descBase, descLimit } from '../../hw/cpu/segmentation.ts';
import { descriptorFromUserDesc, parseUserDescFlags, type UserDesc, userDescFlags, userDescFromDescriptor, userDescIsEmpty } from '../../kernel/gdt.ts';
import { SEED } from '../native/diff.ts';

const userDesc = fc.record({
  entryNumber: fc.integer({ min: 6, max: 8 }),
  baseAddr: fc.integer({ min: 0, max: 0xffffffff }),
  limit: fc.integer({ min: 0, max: 0xfffff }),
  seg32bit: fc.integer({ min: 0, max: 1 }),
  contents: fc.integer({ min: 0, max: 2 }),
  readExecOnly: fc.integer({ min: 0, max: 1 }),
  limitInPages: fc.integer({ min: 0, max: 1 }),
  segNotPresent: fc.integer({ min: 0, max: 1 }),
  useable: fc.integer({ min: 0, max: 1 }),
});

describe('TLS descriptors', () => {
  it('user_desc -> descriptor -> user_desc is the identity (non-empty descriptors)', () => {
    fc.assert(fc.property(userDesc, (u: UserDesc) => {
      fc.pre(!userDescIsEmpty(u));
      expect(userDescFromDescriptor(u.entryNumber, descriptorFromUserDesc(u))).toEqual(u);
      expect(parseUserDescFlags(u.entryNumber, u.baseAddr, u.limit, userDescFlags(u))).toEqual(u);
    }), { seed: SEED, numRuns: 2000 });
  });

  it('the CPU decodes the base, the limit and a DPL-3 data segment from it', () => {
    fc.assert(fc.property(userDesc, (u: UserDesc) => {
      fc.pre(!userDescIsEmpty(u) && u.contents !== 3);
      const d = descriptorFromUserDesc(u);
      const raw = { lo: d.lo, hi: d.hi, addr: 0 };
      expect(descBase(raw)).toBe(u.baseAddr >>> 0);
      expect(descLimit(raw)).toBe(u.limitInPages ? ((u.limit << 12) | 0xfff) >>> 0 : u.limit);
      const ar = descAr(raw);
      expect((ar >>> 5) & 3).toBe(3);                     // DPL 3
      expect(ar & 0x10).toBe(0x10);                        // a code/data segment
      expect((ar & 0x80) !== 0).toBe(u.segNotPresent === 0);
      expect((ar & 1)).toBe(1);                            // accessed, so the CPU never writes the GDT
    }), { seed: SEED, numRuns: 2000 });
  });

  it('the empty forms clear the slot', () => {
    const zero: UserDesc = { entryNumber: 6, baseAddr: 0, limit: 0, seg32bit: 0, contents: 0, readExecOnly: 0, limitInPages: 0, segNotPresent: 0, useable: 0 };
    expect(descriptorFromUserDesc(zero)).toEqual({ lo: 0, hi: 0 });
    expect(descriptorFromUserDesc({ ...zero, readExecOnly: 1, segNotPresent: 1 })).toEqual({ lo: 0, hi: 0 });
    expect(descriptorFromUserDesc({ ...zero, seg32bit: 1 })).not.toEqual({ lo: 0, hi: 0 });
  });
});
