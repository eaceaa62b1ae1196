// SVM intercepts of control- and debug-register accesses (APM vol. 2, 15.9 and 15.33 "decode
// assists"): MOV CRn reads and writes (exits 0x00 + n, 0x10 + n; EXITINFO1 bit 63 set and the
// GPR in bits 3:0), SMSW (a CR0 read), LMSW and CLTS (CR0 writes, EXITINFO1 = 0), the selective
// CR0 write intercept (0x65: only a change of a CR0 bit other than TS and MP; the plain CR0 write
// intercept takes priority), and MOV DRn (0x20 + n, 0x30 + n; EXITINFO1 = the GPR). Each guest is
// run with the intercept (exit, state unchanged) and without it (the instruction runs natively).
import { describe, expect, it } from 'vitest';
import * as V from '../../../hw/cpu/vmcb.ts';
import { expectDone, expectExceptionAt, expectExitAt, runGuest, suite, withExc } from './harness.ts';

const MOV_CR = 0x80000000; // EXITINFO1 bit 63 (in the high dword, unsigned)
const GP = 13, UD = 6;
const CR_OFF: Record<number, number> = { 0: V.VMCB_CR0, 2: V.VMCB_CR2, 3: V.VMCB_CR3, 4: V.VMCB_CR4 };
/** The guest's CRn at VMRUN. */
const CR_INIT: Record<number, number> = { 0: 0x11, 2: 0x12345678, 3: 0x5000, 4: 0x10 };
const setCrs = (vmm: { v: V.VmcbView }) => { for (const n of [2, 3, 4]) vmm.v.w64(CR_OFF[n], CR_INIT[n]); };

// [CR, GPR name, GPR number]: each CR with a different register (none is EAX, which `done` clobbers)
const READS: [number, string, number][] = [[0, 'ebx', 3], [2, 'esi', 6], [3, 'ebp', 5], [4, 'edi', 7]];
// [CR, value written, what CRn reads afterwards]
const WRITES: [number, number, number][] = [[0, 0x19, 0x19], [2, 0xdeadbeef, 0xdeadbeef], [3, 0x7000, 0x7000], [4, 0x90, 0x90]];

suite('SVM: MOV CRn intercepts', () => {
  describe('reads', () => {
    it.each(READS)('MOV from CR%i into %s exits 0x0n with bit 63 and the GPR in EXITINFO1', (n, reg, gpr) => {
      const vmm = runGuest(`.org AT, 0x90\n mov %cr${n}, %${reg}\n done 1`, { cr: 1 << n, setup: setCrs });
      expectExitAt(vmm, V.EXIT_CR0_READ + n, 3, { info1: gpr, info1Hi: MOV_CR });
      expect(vmm.reg(gpr)).toBe(0);
    });

    it.each(READS)('without its bit (every other CR bit set), MOV from CR%i into %s runs natively', (n, reg, gpr) => {
      const vmm = runGuest(`.org AT, 0x90\n mov %cr${n}, %${reg}\n done 1`, { cr: ~(1 << n), setup: setCrs });
      expectDone(vmm, 1);
      expect(vmm.reg(gpr)).toBe(CR_INIT[n]);
    });
  });

  describe('writes', () => {
    it.each(WRITES)('MOV to CR%i exits 0x1n with bit 63 and the GPR; CRn keeps its value', (n, value) => {
      const vmm = runGuest(`.org AT, 0x90\n mov %ebx, %cr${n}\n done 1`, {
        cr: 1 << (16 + n), setup: (m) => { setCrs(m); m.cpu.r[3] = value; },
      });
      expectExitAt(vmm, V.EXIT_CR0_WRITE + n, 3, { info1: 3, info1Hi: MOV_CR });
      expect(vmm.v.u32(CR_OFF[n])).toBe(CR_INIT[n]);
    });

    it.each(WRITES)('without its bit (every other CR bit set), MOV to CR%i runs natively', (n, value, after) => {
      const vmm = runGuest(`.org AT, 0x90\n mov %ebx, %cr${n}\n done 1`, {
        cr: ~(1 << (16 + n)), setup: (m) => { setCrs(m); m.cpu.r[3] = value; },
      });
      expectDone(vmm, 1);
      expect(vmm.v.u32(CR_OFF[n])).toBe(after);
    });

    it('a VMM that emulates the intercepted CR3 write and resumes at nRIP: the guest reads the new CR3', () => {
      const vmm = runGuest(`.org AT, 0x90\n mov %ecx, %cr3\n mov %cr3, %edx\n done 1`, {
        cr: 1 << (16 + 3),
        setup: (m) => { m.cpu.r[1] = 0x9000; },
        onExit: (e, m) => {
          expect(e.code).toBe(V.EXIT_CR0_WRITE + 3);
          m.v.w64(V.VMCB_CR3, m.cpu.r[e.info1 & 0xf]);
          return 'skip';
        },
      });
      expect({ status: vmm.status, exits: vmm.exits.map((e) => e.code) }).toEqual({ status: 1, exits: [V.EXIT_CR0_WRITE + 3] });
      expect(vmm.reg(2)).toBe(0x9000);
    });
  });

  describe('priority: the simple exceptions first, the operand value after', () => {
    it('MOV from CR1 (and CR5) is #UD even with every CR intercept set', () => {
      for (const bytes of ['0x0f, 0x20, 0xc8', '0x0f, 0x20, 0xe8']) { // mov eax, cr1 / cr5
        const vmm = runGuest(`.org AT, 0x90\n .byte ${bytes}\n done 1`, withExc({ cr: -1 }, UD));
        expectExceptionAt(vmm, UD);
      }
    });

    it('at CPL 3, MOV from CR0 is #GP(0) before the CR0 read intercept', () => {
      const vmm = runGuest(`.org AT, 0x90\n mov %cr0, %ebx\n done 1`, withExc({ cr: 1, cpl: 3 }, GP));
      expectExceptionAt(vmm, GP, 0);
    });

    it('a CR4 write of a reserved bit exits when intercepted, and is #GP(0) when not', () => {
      const setup = (m: { cpu: { r: Int32Array } }) => { m.cpu.r[3] = 0x1; }; // VME: not implemented
      const src = `.org AT, 0x90\n mov %ebx, %cr4\n done 1`;
      expectExitAt(runGuest(src, withExc({ cr: 1 << 20, setup }, GP)), V.EXIT_CR0_WRITE + 4, 3, { info1: 3, info1Hi: MOV_CR });
      expectExceptionAt(runGuest(src, withExc({ setup }, GP)), GP, 0);
    });

    it('a CR0 write of PG without PE exits when intercepted (before its #GP)', () => {
      const vmm = runGuest(`.org AT, 0x90\n mov %ebx, %cr0\n done 1`, withExc({ cr: 1 << 16, setup: (m) => { m.cpu.r[3] = 0x80000010 | 0; } }, GP));
      expectExitAt(vmm, V.EXIT_CR0_WRITE, 3, { info1: 3, info1Hi: MOV_CR });
    });
  });
});

suite('SVM: SMSW, LMSW and CLTS as CR0 accesses', () => {
  it('SMSW to a register and to memory is a CR0 read with EXITINFO1 = 0 (not a MOV CR)', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n smsw %ebx\n done 1`, { cr: 1 }), V.EXIT_CR0_READ, 3);
    const mem = runGuest(`mov $0x3000, %ebx\n movw $0xaaaa, (%ebx)\n .org AT, 0x90\n smsw (%ebx)\n done 1`, { cr: 1 });
    expectExitAt(mem, V.EXIT_CR0_READ, 3);
    expect(mem.mem.read(0x3000, 2)).toBe(0xaaaa); // nothing stored
  });

  it('SMSW without the intercept (the CR0 write intercept set) stores CR0', () => {
    const vmm = runGuest(`.org AT, 0x90\n smsw %ebx\n done 1`, { cr: 1 << 16 });
    expectDone(vmm, 1);
    expect(vmm.reg(3)).toBe(0x11);
  });

  it('LMSW is a CR0 write with EXITINFO1 = 0, from a register or memory, before the operand is read', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n lmsw %bx\n done 1`, { cr: 1 << 16 }), V.EXIT_CR0_WRITE, 3);
    // the operand lies beyond DS's limit: the intercept comes before that #GP
    const vmm = runGuest(`mov $0x5000, %ebx\n .org AT, 0x90\n lmsw (%ebx)\n done 1`, withExc({
      cr: 1 << 16, setup: (m) => { m.v.w32(V.VMCB_DS + 4, 0xfff); },
    }, GP));
    expectExitAt(vmm, V.EXIT_CR0_WRITE, 3);
  });

  it('LMSW without the intercept loads MP, EM, TS (the CR0 read intercept set)', () => {
    const vmm = runGuest(`mov $0xe, %ebx\n .org AT, 0x90\n lmsw %bx\n done 1`, { cr: 1 });
    expectDone(vmm, 1);
    expect(vmm.v.u32(V.VMCB_CR0)).toBe(0x1f);
  });

  it('at CPL 3, LMSW and CLTS are #GP(0) before the CR0 write intercept', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n lmsw %bx\n done 1`, withExc({ cr: 1 << 16, cpl: 3 }, GP)), GP, 0);
    expectExceptionAt(runGuest(`.org AT, 0x90\n clts\n done 1`, withExc({ cr: 1 << 16, cpl: 3 }, GP)), GP, 0);
  });

  it('CLTS is a CR0 write with EXITINFO1 = 0; CR0.TS stays set', () => {
    const vmm = runGuest(`.org AT, 0x90\n clts\n done 1`, { cr: 1 << 16, setup: (m) => { m.v.w64(V.VMCB_CR0, 0x19); } });
    expectExitAt(vmm, V.EXIT_CR0_WRITE, 2);
    expect(vmm.v.u32(V.VMCB_CR0)).toBe(0x19);
  });

  it('CLTS without the intercept clears TS', () => {
    const vmm = runGuest(`.org AT, 0x90\n clts\n done 1`, { cr: 1, setup: (m) => { m.v.w64(V.VMCB_CR0, 0x19); } });
    expectDone(vmm, 1);
    expect(vmm.v.u32(V.VMCB_CR0)).toBe(0x11);
  });
});

suite('SVM: the selective CR0 write intercept', () => {
  const SEL = V.IC3_CR0_SEL_WRITE;

  it('MOV CR0 changing only TS and MP does not exit; changing EM exits 0x65 with the decode assist', () => {
    const src = `
      mov %cr0, %eax
      or $0x8, %eax          # TS
      mov %eax, %cr0
      or $0x2, %eax          # MP
      mov %eax, %cr0
      and $~0xa, %eax        # both back
      mov %eax, %cr0
      mov %eax, %cr0         # no change at all
      mov %eax, %esi
      or $0x4, %esi          # EM
      .org AT, 0x90
      mov %esi, %cr0
      done 1`;
    const vmm = runGuest(src, { ic3: SEL });
    expectExitAt(vmm, V.EXIT_CR0_SEL_WRITE, 3, { info1: 6, info1Hi: MOV_CR });
    expect(vmm.v.u32(V.VMCB_CR0)).toBe(0x11);
    expect(vmm.exits.length).toBe(1);
  });

  it('without it, the same guest runs to completion and sets EM', () => {
    const vmm = runGuest(`mov %cr0, %esi\n or $0x4, %esi\n .org AT, 0x90\n mov %esi, %cr0\n done 1`, {});
    expectDone(vmm, 1);
    expect(vmm.v.u32(V.VMCB_CR0)).toBe(0x15);
  });

  it('LMSW: TS and MP pass, EM exits 0x65 with EXITINFO1 = 0', () => {
    const vmm = runGuest(`mov $0xb, %ebx\n lmsw %bx\n mov $0xf, %ebx\n .org AT, 0x90\n lmsw %bx\n done 1`, { ic3: SEL });
    expectExitAt(vmm, V.EXIT_CR0_SEL_WRITE, 3);
    expect(vmm.v.u32(V.VMCB_CR0)).toBe(0x1b);
  });

  it('CLTS never triggers it (only TS changes)', () => {
    const vmm = runGuest(`.org AT, 0x90\n clts\n done 1`, { ic3: SEL, setup: (m) => { m.v.w64(V.VMCB_CR0, 0x19); } });
    expectDone(vmm, 1);
    expect(vmm.v.u32(V.VMCB_CR0)).toBe(0x11);
  });

  it('the plain CR0 write intercept takes priority', () => {
    const vmm = runGuest(`mov %cr0, %esi\n or $0x4, %esi\n .org AT, 0x90\n mov %esi, %cr0\n done 1`, { ic3: SEL, cr: 1 << 16 });
    expectExitAt(vmm, V.EXIT_CR0_WRITE, 3, { info1: 6, info1Hi: MOV_CR });
  });

  it('a write that only changes TS exits with the plain CR0 write intercept', () => {
    const vmm = runGuest(`mov %cr0, %esi\n or $0x8, %esi\n .org AT, 0x90\n mov %esi, %cr0\n done 1`, { ic3: SEL, cr: 1 << 16 });
    expectExitAt(vmm, V.EXIT_CR0_WRITE, 3, { info1: 6, info1Hi: MOV_CR });
  });
});

suite('SVM: MOV DRn intercepts', () => {
  it('MOV from DR0 into ECX exits 0x20 with EXITINFO1 = 1 (no bit 63)', () => {
    const vmm = runGuest(`.org AT, 0x90\n mov %dr0, %ecx\n done 1`, { dr: 1 });
    expectExitAt(vmm, V.EXIT_DR0_READ, 3, { info1: 1 });
  });

  it('MOV to DR7 from EDX exits 0x37 with EXITINFO1 = 2; DR7 unchanged', () => {
    const vmm = runGuest(`mov $0x3, %edx\n .org AT, 0x90\n mov %edx, %dr7\n done 1`, { dr: 1 << (16 + 7) });
    expectExitAt(vmm, V.EXIT_DR0_WRITE + 7, 3, { info1: 2 });
    expect(vmm.v.u32(V.VMCB_DR7)).toBe(0x400);
  });

  it('each DR has its own bit: every bit but DR3 read and DR3 write set, DR3 moves natively', () => {
    const vmm = runGuest(`mov $0x1234, %edx\n mov %edx, %dr3\n .org AT, 0x90\n mov %dr3, %esi\n done 1`, { dr: ~((1 << 3) | (1 << 19)) });
    expectDone(vmm, 1);
    expect(vmm.reg(6)).toBe(0x1234);
  });

  it('without intercepts a DR7 write reaches the VMCB at the exit', () => {
    const vmm = runGuest(`mov $0x3, %edx\n mov %edx, %dr7\n done 1`, {});
    expectDone(vmm, 1);
    expect(vmm.v.u32(V.VMCB_DR7)).toBe(0x403);
  });

  it('DR4 (an alias of DR6 without CR4.DE) exits as DR4: 0x24', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n mov %dr4, %esi\n done 1`, { dr: 1 << 4 }), V.EXIT_DR0_READ + 4, 3, { info1: 6 });
    const alias = runGuest(`.org AT, 0x90\n mov %dr4, %esi\n done 1`, { dr: 1 << 6 });
    expectDone(alias, 1);
    expect(alias.reg(6)).toBe(0xffff0ff0);
  });

  it('with CR4.DE, DR4 is #UD before the intercept', () => {
    const vmm = runGuest(`.org AT, 0x90\n mov %dr4, %esi\n done 1`, withExc({ dr: 1 << 4, setup: (m) => { m.v.w64(V.VMCB_CR4, 0x8); } }, UD));
    expectExceptionAt(vmm, UD);
  });

  it('at CPL 3, MOV DR is #GP(0) before the intercept', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n mov %dr0, %ecx\n done 1`, withExc({ dr: -1, cpl: 3 }, GP)), GP, 0);
  });
});
