// The I/O family (isa/io.ts) where user mode on the host cannot take us: IOPL and CPL, the TSS
// I/O permission bitmap, real mode, and the effects of IN/OUT/INS/OUTS on a fake bus.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { IoBus } from '../../../hw/cpu/cpu.ts';
import { ioAllowed } from '../../../hw/cpu/isa/io.ts';
import { CODE, endedAtMarker, makeRig, type Rig, runRig } from './rig.ts';

const SEED = Number(process.env.FC_SEED ?? 20261125);
const TSS = 0x8000;

/** A bus that logs every access and answers reads with a counter. */
class FakeBus implements IoBus {
  readonly log: string[] = [];
  next = 0x11;
  in(port: number, size: 1 | 2 | 4): number {
    this.log.push(`in${size} ${port.toString(16)}`);
    const v = size === 1 ? this.next & 0xff : size === 2 ? (this.next * 0x101) & 0xffff : (this.next * 0x01010101) >>> 0;
    this.next++;
    return v;
  }
  out(port: number, size: 1 | 2 | 4, value: number): void {
    this.log.push(`out${size} ${port.toString(16)}=${value.toString(16)}`);
  }
}

/** A 32-bit TSS at TSS with the bitmap at TSS+0x68: `bitmap` bytes, then 0xff; limit as given. */
function setTss(r: Rig, bitmap: Uint8Array, limit = 0x68 + bitmap.length, ar = 0x8b): void {
  const { cpu, mem } = r;
  mem.write(TSS + 0x66, 2, 0x68);
  mem.writeBytes(TSS + 0x68, bitmap);
  mem.write(TSS + 0x68 + bitmap.length, 1, 0xff);
  cpu.trSel = 0x28; cpu.trBase = TSS; cpu.trLimit = limit; cpu.trAr = ar;
}

const inDx = (port: number, size: 1 | 2 | 4) => [0xba, ...le32(port), ...(size === 2 ? [0x66] : []), size === 1 ? 0xec : 0xed];
const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];

function rigFor(code: number[], mode: 'real' | 'flat32', cpl: number, iopl: number) {
  const bus = new FakeBus();
  const r = makeRig(code, { mode, cpl, iopl, io: bus });
  return { r, bus };
}

describe('IN/OUT privilege: IOPL and CPL', () => {
  const code = [0xe4, 0x61, 0xe6, 0x80]; // in al, 0x61; out 0x80, al
  it('real mode allows every port', () => {
    const { r, bus } = rigFor(code, 'real', 0, 0);
    setTss(r, new Uint8Array(0), 0x67); // no bitmap: would deny if consulted
    runRig(r);
    expect(endedAtMarker(r, code.length)).toBe(true);
    expect(bus.log).toEqual(['in1 61', 'out1 80=11']);
  });
  it('CPL 0 with IOPL 0 allows every port without consulting the bitmap', () => {
    const { r, bus } = rigFor(code, 'flat32', 0, 0);
    setTss(r, new Uint8Array(0), 0x67);
    runRig(r);
    expect(endedAtMarker(r, code.length)).toBe(true);
    expect(bus.log).toEqual(['in1 61', 'out1 80=11']);
  });
  it('CPL 3 with IOPL 3 allows every port', () => {
    const { r, bus } = rigFor(code, 'flat32', 3, 3);
    setTss(r, new Uint8Array(0), 0x67);
    runRig(r);
    expect(endedAtMarker(r, code.length)).toBe(true);
    expect(bus.log).toEqual(['in1 61', 'out1 80=11']);
  });
  it('CPL 3 with IOPL 2 and no bitmap is #GP(0) at the instruction, with no bus access', () => {
    const { r, bus } = rigFor(code, 'flat32', 3, 2);
    setTss(r, new Uint8Array(0), 0x67);
    runRig(r);
    expect(r.rec.last).toMatchObject({ vector: 13, errorCode: 0, eip: CODE });
    expect(bus.log).toEqual([]);
  });
  it('CPL 1 with IOPL 1 is allowed, CPL 2 with IOPL 1 is not', () => {
    for (const [cpl, ok] of [[1, true], [2, false]] as const) {
      const { r, bus } = rigFor(code, 'flat32', cpl, 1);
      setTss(r, new Uint8Array(0), 0x67);
      runRig(r);
      expect(endedAtMarker(r, code.length)).toBe(ok);
      expect(bus.log.length).toBe(ok ? 2 : 0);
    }
  });
});

describe('the TSS I/O permission bitmap (CPL 3, IOPL 0)', () => {
  it('an access is allowed exactly when every one of its ports has a clear bit', () => {
    fc.assert(fc.property(
      // each bit set with probability 1/4, so that wide accesses are allowed often enough
      fc.tuple(fc.uint8Array({ minLength: 0x80, maxLength: 0x80 }), fc.uint8Array({ minLength: 0x80, maxLength: 0x80 })).map(([a, b]) => a.map((x, k) => x & b[k])),
      fc.nat({ max: 0x3fc }), fc.constantFrom<1 | 2 | 4>(1, 2, 4),
      (bitmap, port, size) => {
        const code = inDx(port, size);
        const { r, bus } = rigFor(code, 'flat32', 3, 0);
        setTss(r, bitmap);
        runRig(r);
        let allowed = true;
        for (let p = port; p < port + size; p++) if (bitmap[p >>> 3] & (1 << (p & 7))) allowed = false;
        expect(endedAtMarker(r, code.length)).toBe(allowed);
        if (!allowed) expect(r.rec.last).toMatchObject({ vector: 13, errorCode: 0, eip: CODE + 5 });
        expect(bus.log.length).toBe(allowed ? 1 : 0);
        expect(ioAllowed(r.cpu, port, size)).toBe(allowed);
      },
    ), { numRuns: 400, seed: SEED });
  });
  it('a port whose bitmap byte, or the byte after it, lies beyond the TSS limit is denied', () => {
    // bitmap all clear; port 0x18 is in byte 3 (offset 0x6b): the check reads bytes 3 and 4
    for (const [limit, ok] of [[0x6a, false], [0x6b, false], [0x6c, true]] as const) {
      const code = inDx(0x18, 1);
      const { r } = rigFor(code, 'flat32', 3, 0);
      setTss(r, new Uint8Array(8), limit);
      runRig(r);
      expect(endedAtMarker(r, code.length)).toBe(ok);
    }
  });
  it('a TSS limit below 0x67 or a 16-bit TSS has no bitmap: denied', () => {
    for (const [limit, ar] of [[0x66, 0x8b], [0x100, 0x83], [0x100, 0x81]] as const) {
      const code = inDx(0x18, 1);
      const { r } = rigFor(code, 'flat32', 3, 0);
      setTss(r, new Uint8Array(8), limit, ar);
      runRig(r);
      expect(r.rec.last).toMatchObject({ vector: 13, errorCode: 0 });
    }
  });
  it('a 2-byte access at port 0xffff needs the bits of 0xffff and 0x10000', () => {
    const bitmap = new Uint8Array(0x2001); // bit of port 0x10000 is in byte 0x2000
    for (const [b2000, ok] of [[0, true], [1, false]] as const) {
      bitmap[0x2000] = b2000;
      const code = inDx(0xffff, 2);
      const { r, bus } = rigFor(code, 'flat32', 3, 0);
      setTss(r, bitmap);
      runRig(r);
      expect(endedAtMarker(r, code.length)).toBe(ok);
      if (ok) expect(bus.log).toEqual(['in2 ffff']);
    }
  });
});

describe('IN/OUT/INS/OUTS data movement', () => {
  it('IN AL/AX keep the rest of EAX; OUT sends the operand size', () => {
    const code = [0xe4, 0x10, 0x66, 0xe5, 0x20, 0xe5, 0x30, 0xb0, 0x77, 0xe6, 0x40, 0x66, 0xef, 0xef];
    const { r, bus } = rigFor(code, 'flat32', 0, 0);
    r.cpu.r[0] = 0x12345678; r.cpu.r[2] = 0x1234abcd; // DX = 0xabcd
    runRig(r);
    expect(endedAtMarker(r, code.length)).toBe(true);
    expect(bus.log).toEqual(['in1 10', 'in2 20', 'in4 30', 'out1 40=77', 'out2 abcd=1377', 'out4 abcd=13131377']);
  });
  it('REP INSB fills ES:[EDI] upwards', () => {
    const code = [0xf3, 0x6c];
    const { r } = rigFor(code, 'flat32', 0, 0);
    const { cpu, mem } = r;
    cpu.r[1] = 4; cpu.r[2] = 0x60; cpu.r[7] = 0x20000;
    runRig(r);
    expect(Array.from(mem.readBytes(0x20000, 5))).toEqual([0x11, 0x12, 0x13, 0x14, 0]);
    expect(cpu.r[7]).toBe(0x20004);
  });
  it('REP INSB/INSD fill ES:[EDI] in either direction; REP OUTSW sends DS:[ESI]', () => {
    const code = [0xf3, 0x6c, 0xfd, 0xb9, 2, 0, 0, 0, 0xf3, 0x6d, 0xfc, 0xb9, 3, 0, 0, 0, 0xf3, 0x66, 0x6f];
    const { r, bus } = rigFor(code, 'flat32', 3, 0);
    setTss(r, new Uint8Array(0x20)); // ports 0..0xff allowed
    const { cpu, mem } = r;
    cpu.r[1] = 4; cpu.r[2] = 0x60; cpu.r[7] = 0x20000; cpu.r[6] = 0x30000;
    mem.writeBytes(0x30000, Uint8Array.from([1, 2, 3, 4, 5, 6]));
    runRig(r);
    expect(endedAtMarker(r, code.length)).toBe(true);
    // bytes 0x11-0x14 at 0x20000-3, then EDI = 0x20004: two dwords backwards at 0x20004 and 0x20000
    expect(bus.log.slice(0, 6)).toEqual(['in1 60', 'in1 60', 'in1 60', 'in1 60', 'in4 60', 'in4 60']);
    expect(mem.read(0x20008, 1)).toBe(0);
    expect(mem.read(0x20004, 4)).toBe(0x15151515);
    expect(mem.read(0x20000, 4)).toBe(0x16161616);
    expect(cpu.r[7]).toBe(0x20000 - 4);
    expect(bus.log.slice(6)).toEqual(['out2 60=201', 'out2 60=403', 'out2 60=605']);
    expect(cpu.r[6]).toBe(0x30006);
    expect(cpu.r[1]).toBe(0);
  });
  it('REP INS with a zero count still checks the permission (#GP), as the host does', () => {
    const code = [0xf3, 0x6c];
    const { r, bus } = rigFor(code, 'flat32', 3, 0);
    setTss(r, new Uint8Array(0), 0x67);
    r.cpu.r[1] = 0;
    runRig(r);
    expect(r.rec.last).toMatchObject({ vector: 13, errorCode: 0, eip: CODE });
    expect(bus.log).toEqual([]);
  });
  it('INS checks the destination before reading the port: a fault consumes no device data', () => {
    const code = [0x6c];
    const { r, bus } = rigFor(code, 'flat32', 0, 0);
    r.cpu.loadSegCache(0, 0x10, 0, 0xfff, 0x4093); // ES limit 0xfff
    r.cpu.r[7] = 0x1000;
    runRig(r);
    expect(r.rec.last).toMatchObject({ vector: 13, errorCode: 0, eip: CODE });
    expect(bus.log).toEqual([]);
  });
  it('a long REP OUTSB stops at quantum boundaries and resumes where it was', () => {
    const n = 50;
    const code = [0xf3, 0x6e];
    const { r, bus } = rigFor(code, 'flat32', 0, 0);
    const { cpu, mem } = r;
    mem.writeBytes(0x30000, Uint8Array.from({ length: n }, (_, k) => k));
    cpu.r[1] = n; cpu.r[2] = 0xe9; cpu.r[6] = 0x30000;
    let stops = 0;
    while (r.rec.events.length === 0) {
      cpu.run(cpu.cycles + 1000);
      if (r.rec.events.length === 0) {
        stops++;
        expect(cpu.eip).toBe(CODE);
        expect(cpu.r[6] - 0x30000).toBe(n - cpu.r[1]);
        expect(bus.log.length).toBe(n - cpu.r[1]);
      }
    }
    expect(stops).toBeGreaterThan(2);
    expect(endedAtMarker(r, code.length)).toBe(true);
    expect(bus.log).toEqual(Array.from({ length: n }, (_, k) => `out1 e9=${k.toString(16)}`));
  });
});
