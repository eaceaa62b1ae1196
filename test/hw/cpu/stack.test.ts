// The stack family (isa/stack.ts) where the host cannot serve as the reference: a 16-bit stack
// (SP wraps, the upper half of ESP is kept), POPF at CPL 0 and with IOPL >= CPL, POPF letting a
// pending interrupt in, and the interrupt shadow of POP SS.
import { describe, expect, it } from 'vitest';
import type { InterruptController } from '../../../hw/cpu/cpu.ts';
import { SS } from '../../../hw/cpu/insn.ts';
import { CODE, endedAtMarker, makeRig, type Rig, runRig } from './rig.ts';

const SS_BASE = 0x30000;

/** Real mode with SS at 0x30000 and ESP = hi:sp. */
function realRig(code: number[], sp: number, hi = 0x1234): Rig {
  const r = makeRig(code, { mode: 'real' });
  r.cpu.loadSegCache(SS, SS_BASE >>> 4, SS_BASE, 0xffff, 0x93);
  r.cpu.r[4] = (hi << 16) | sp;
  return r;
}
const w16 = (r: Rig, off: number) => r.mem.read(SS_BASE + off, 2);

describe('a 16-bit stack', () => {
  it('PUSH/POP wrap SP at 64 KiB and keep the upper half of ESP', () => {
    // push ax; push bx; pop cx; pop dx
    const r = realRig([0x50, 0x53, 0x59, 0x5a], 0x0002);
    r.cpu.r[0] = 0xaaaa1111; r.cpu.r[3] = 0xbbbb2222;
    r.cpu.run(r.cpu.cycles + 2); // two pushes
    expect(r.cpu.r[4] >>> 0).toBe(0x1234fffe);
    expect(w16(r, 0)).toBe(0x1111);
    expect(w16(r, 0xfffe)).toBe(0x2222);
    runRig(r);
    expect(endedAtMarker(r, 4)).toBe(true);
    expect(r.cpu.r[4] >>> 0).toBe(0x12340002);
    expect(r.cpu.r[1] & 0xffff).toBe(0x2222);
    expect(r.cpu.r[2] & 0xffff).toBe(0x1111);
  });

  it('PUSHA/POPA wrap and POPA skips SP', () => {
    const r = realRig([0x60, 0x31, 0xc0, 0x61], 0x0008); // pusha; xor ax, ax; popa
    for (let k = 0; k < 8; k++) if (k !== 4) r.cpu.r[k] = 0xabcd0000 | ((k + 1) * 0x1111);
    runRig(r);
    expect(endedAtMarker(r, 4)).toBe(true);
    // AX CX DX BX at 6 4 2 0, then SP (8), BP, SI, DI at 0xfffe 0xfffc 0xfffa 0xfff8
    expect([6, 4, 2, 0, 0xfffe, 0xfffc, 0xfffa, 0xfff8].map((o) => w16(r, o))).toEqual([0x1111, 0x2222, 0x3333, 0x4444, 0x0008, 0x6666, 0x7777, 0x8888]);
    expect(r.cpu.r[0] >>> 0).toBe(0xabcd1111); // POPA restored AX (the XOR cleared it)
    expect(r.cpu.r[4] >>> 0).toBe(0x12340008);
  });

  it('ENTER with nesting and LEAVE use BP and SP, wrapping, and keep the upper halves', () => {
    // enter 6, 3; (check) leave
    const r = realRig([0xc8, 6, 0, 3, 0xc9], 0x0004);
    r.cpu.r[5] = 0x77770002; // BP = 2: the copied frame pointers come from SS:0 and SS:0xfffe
    r.mem.write(SS_BASE + 0, 2, 0xaaaa);
    r.mem.write(SS_BASE + 0xfffe, 2, 0xbbbb);
    r.cpu.run(r.cpu.cycles + 1);
    // push bp @2; bp-2 = 0 -> push [0] @0; bp-2 = 0xfffe -> push [0xfffe] @0xfffe; push frame (2) @0xfffc
    expect(w16(r, 2)).toBe(0x0002);
    expect(w16(r, 0)).toBe(0xaaaa);
    expect(w16(r, 0xfffe)).toBe(0xbbbb);
    expect(w16(r, 0xfffc)).toBe(0x0002);
    expect(r.cpu.r[5] >>> 0).toBe(0x77770002); // BP = frame temp 2, upper half kept
    expect(r.cpu.r[4] >>> 0).toBe(0x1234fff6); // 0xfffc - 6
    runRig(r);
    expect(endedAtMarker(r, 5)).toBe(true);
    expect(r.cpu.r[4] >>> 0).toBe(0x12340004); // SP = BP + 2
    expect(r.cpu.r[5] >>> 0).toBe(0x77770002); // BP popped from SS:2
  });
});

describe('POPF privilege rules', () => {
  const popf32 = (v: number) => [0x68, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24, 0x9d];
  const cases: [string, number, number, number, number][] = [
    // name, cpl, iopl, popped, expected (IF | IOPL | NT | AC | ID | CF)
    ['CPL 0 changes IOPL and IF', 0, 0, 0x00003001, 0x00003001],
    ['CPL 0 clears IF and IOPL', 0, 3, 0x00000000, 0x00000000],
    ['CPL 3, IOPL 3 changes IF, not IOPL', 3, 3, 0x00004001, 0x00007001],
    ['CPL 3, IOPL 0 changes neither IF nor IOPL', 3, 0, 0x00243001, 0x00240201],
    ['CPL 1, IOPL 1 changes IF, not IOPL', 1, 1, 0x00002000, 0x00001000],
    ['CPL 2, IOPL 1 keeps IF', 2, 1, 0x00000000, 0x00001200],
  ];
  for (const [name, cpl, iopl, v, want] of cases) {
    it(name, () => {
      const code = popf32(v);
      const r = makeRig(code, { mode: 'flat32', cpl, iopl });
      runRig(r);
      expect(endedAtMarker(r, code.length)).toBe(true);
      expect((r.cpu.getEflags() & 0x247ed5).toString(16)).toBe(want.toString(16));
    });
  }
  it('a 32-bit POPF clears RF and never sets VM; a 16-bit POPF leaves bits 16-31 alone', () => {
    const r = makeRig([...popf32(0x00030000)], { mode: 'flat32' });
    r.cpu.setEflags(0x10000 | 0x40000, 0x10000 | 0x40000); // RF, AC
    runRig(r);
    expect(r.cpu.getEflags() & 0x70000).toBe(0);
    const r16 = makeRig([0x66, 0x68, 0x00, 0x00, 0x66, 0x9d], { mode: 'flat32' });
    r16.cpu.setEflags(0x40000 | 0x200000, 0x40000 | 0x200000); // AC, ID
    runRig(r16);
    expect(r16.cpu.getEflags() & 0x240000).toBe(0x240000);
  });
  it('PUSHF stores EFLAGS with RF and VM clear', () => {
    const r = makeRig([0x9c], { mode: 'flat32' });
    r.cpu.setEflags(0x10000, 0x10000);
    runRig(r);
    expect(r.mem.read(0x8000 - 4, 4) & 0x30000).toBe(0);
    expect(r.mem.read(0x8000 - 4, 4) & 0x200).toBe(0x200);
  });
});

/** Raises vector 0x20 once, as soon as `when()` holds. */
class AlwaysIrq implements InterruptController {
  private fired = false;
  constructor(private readonly when: () => boolean) { }
  hasInterrupt(): boolean { return !this.fired && this.when(); }
  acknowledge(): number { this.fired = true; return 0x20; }
}

describe('interrupt timing', () => {
  it('POPF that sets IF lets a pending interrupt in right after it (real mode, through the IVT)', () => {
    // push 0x0200; popf; nop; nop; jmp $ -- the handler at 0:0x2000 is jmp $
    const code = [0x68, 0x00, 0x02, 0x9d, 0x90, 0x90, 0xeb, 0xfe];
    const r = makeRig(code, { mode: 'real' });
    const { cpu, mem } = r;
    cpu.host = null;
    cpu.setEflags(0, 0x200);
    mem.write(0x20 * 4, 4, 0x00002000); // IVT[0x20] = 0000:2000
    mem.writeBytes(0x2000, Uint8Array.from([0xeb, 0xfe]));
    cpu.intc = new AlwaysIrq(() => true);
    cpu.run(cpu.cycles + 1000);
    expect(cpu.eip).toBe(0x2000);
    expect(mem.read(0x8000 - 6, 2)).toBe(CODE + 4); // the IP pushed: the instruction after POPF
  });

  for (const [name, op, shadow] of [['POP SS delays a pending interrupt by one instruction', 0x17, true], ['POP DS does not', 0x1f, false]] as const) {
    it(name, () => {
      // push ss; pop ss|ds; nop; nop -- an interrupt becomes pending after the pop
      const code = [0x16, op, 0x90, 0x90];
      const r = makeRig(code, { mode: 'flat32' });
      const { cpu } = r;
      cpu.loadSegCache(SS, 0x10, 0, 0xffffffff, 0xc093); // same selector as loaded: a flat data segment at GDT index 2
      const gdt = 0x9000;
      r.mem.write(gdt + 0x10, 4, 0x0000ffff); r.mem.write(gdt + 0x14, 4, 0x00cf9300);
      cpu.gdtBase = gdt; cpu.gdtLimit = 0x1f;
      cpu.intc = new AlwaysIrq(() => cpu.icount >= 2);
      r.rec.onEvent = () => false;
      for (let k = 0; k < 6 && r.rec.events.length === 0; k++) cpu.run(cpu.cycles + 1); // one instruction at a time
      expect(r.rec.events[0]).toMatchObject({ vector: 0x20, eip: CODE + (shadow ? 3 : 2) });
    });
  }
});
