// SVM instruction intercepts (APM vol. 2, 15.9-15.14): RDTSC, RDTSCP, RDPMC, PUSHF, POPF, IRET,
// INTn, ICEBP (and INT3/INTO as the #BP/#OF exception intercepts), INVD, WBINVD, PAUSE, INVLPG,
// INVLPGA, MONITOR, MWAIT and the IDTR/GDTR/LDTR/TR reads and writes. Each tiny guest runs with
// the intercept (exit code, EXITINFO1/2, RIP = the instruction, nRIP = the next one) and, where
// the intercept is optional, without it (the instruction's native behaviour). Intercepts are
// checked after the instruction's simple exceptions (#UD, #GP for CPL) and before exceptions that
// come from memory accesses or operand values: the priority tests pin that down.
// The SVM instructions and the task-switch intercept: intercepts-svm.test.ts; CR/DR: intercepts-crdr.
import { expect, it } from 'vitest';
import * as V from '../../../hw/cpu/vmcb.ts';
import { TE_D, TE_W } from '../../../hw/cpu/tlb.ts';
import {
  expectDone, expectExceptionAt, expectExitAt, GDT_BASE, GUEST_RSP, IDT_BASE, LDT_BASE, runGuest, SEL, suite, TSS_B, type TestVmm, withExc,
} from './harness.ts';

const UD = 6, GP = 13, DB = 1, BP = 3, OF = 4;

/** Identity-maps the first 4 MiB with 4 KiB pages (PD at 0x200000, PT at 0x201000) and turns paging on. */
function paging(vmm: TestVmm): void {
  const pd = 0x200000, pt = 0x201000;
  vmm.mem.write(pd, 4, pt | 0x3);
  for (let k = 0; k < 1024; k++) vmm.mem.write(pt + 4 * k, 4, (k << 12) | 0x3);
  vmm.v.w64(V.VMCB_CR3, pd);
  vmm.v.w64(V.VMCB_CR0, 0x80000011);
}
/** The modelled DTLB's entry index for linear page `vpn` of `asid`, -1 if absent. */
const dtlbEntry = (vmm: TestVmm, vpn: number, asid: number) => vmm.cpu.dtlb.lookup(vpn | (asid << 20));

suite('SVM: RDTSC, RDTSCP, RDPMC', () => {
  it('RDTSC exits 0x6e', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n rdtsc\n done 1`, { ic3: V.IC3_RDTSC }), V.EXIT_RDTSC, 2);
  });

  it('without it, RDTSC reads the TSC with TSC_OFFSET applied', () => {
    const vmm = runGuest(`.org AT, 0x90\n rdtsc\n done 1`, { setup: (m) => { m.v.w64(V.VMCB_TSC_OFFSET, 0x100_0000_0000); } });
    expectDone(vmm, 1);
    expect(vmm.reg(2)).toBe(0x100);
  });

  it('at CPL 3 with CR4.TSD, RDTSC is #GP(0) before the intercept', () => {
    const vmm = runGuest(`.org AT, 0x90\n rdtsc\n done 1`, withExc({ ic3: V.IC3_RDTSC, cpl: 3, setup: (m) => { m.v.w64(V.VMCB_CR4, 0x4); } }, GP));
    expectExceptionAt(vmm, GP, 0);
  });

  it('RDTSCP (not a P6 instruction) exits 0x87 when intercepted', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n rdtscp\n done 1`, { ic4: V.IC4_RDTSCP }), V.EXIT_RDTSCP, 3);
  });

  it('without the intercept RDTSCP raises #UD in the guest (delivered through its IDT), counted as unimplemented', () => {
    const vmm = runGuest(`.org AT, 0x90\n rdtscp\n done 1`, { ic3: V.IC3_RDTSC });
    expect(vmm.delivered).toBe(UD);
    expect(vmm.cpu.unimplemented.get(0x0f01)).toBe(1);
    expectExceptionAt(runGuest(`.org AT, 0x90\n rdtscp\n done 1`, withExc({}, UD)), UD);
  });

  it('RDPMC exits 0x6f; without the intercept it is #GP(0) (no counters)', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n rdpmc\n done 1`, { ic3: V.IC3_RDPMC }), V.EXIT_RDPMC, 2);
    expectExceptionAt(runGuest(`.org AT, 0x90\n rdpmc\n done 1`, withExc({}, GP)), GP, 0);
  });

  it('at CPL 3, RDPMC is #GP(0) before the intercept unless CR4.PCE', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n rdpmc\n done 1`, withExc({ ic3: V.IC3_RDPMC, cpl: 3 }, GP)), GP, 0);
    const pce = runGuest(`.org AT, 0x90\n rdpmc\n done 1`, withExc({ ic3: V.IC3_RDPMC, cpl: 3, setup: (m) => { m.v.w64(V.VMCB_CR4, 0x100); } }, GP));
    expectExitAt(pce, V.EXIT_RDPMC, 2);
  });
});

suite('SVM: PUSHF, POPF, IRET', () => {
  const flags = (m: TestVmm) => { m.v.w64(V.VMCB_RFLAGS, 0x8d7); };

  it('PUSHF exits 0x70 before pushing (ESP unchanged); PUSHFW too, with its length', () => {
    const vmm = runGuest(`.org AT, 0x90\n pushf\n done 1`, { ic3: V.IC3_PUSHF });
    expectExitAt(vmm, V.EXIT_PUSHF, 1);
    expect(vmm.reg(4)).toBe(GUEST_RSP);
    expectExitAt(runGuest(`.org AT, 0x90\n pushfw\n done 1`, { ic3: V.IC3_PUSHF }), V.EXIT_PUSHF, 2);
  });

  it('without it, PUSHF pushes EFLAGS', () => {
    const vmm = runGuest(`.org AT, 0x90\n pushf\n pop %ebx\n done 1`, { ic3: V.IC3_POPF, setup: flags });
    expectDone(vmm, 1);
    expect(vmm.reg(3)).toBe(0x8d7);
  });

  it('POPF exits 0x71 before popping (ESP and EFLAGS unchanged)', () => {
    const vmm = runGuest(`push $0x8d5\n .org AT, 0x90\n popf\n done 1`, { ic3: V.IC3_POPF });
    expectExitAt(vmm, V.EXIT_POPF, 1);
    expect(vmm.reg(4)).toBe(GUEST_RSP - 4);
    expect(vmm.v.u32(V.VMCB_RFLAGS)).toBe(0x2);
  });

  it('without it, POPF loads EFLAGS', () => {
    const vmm = runGuest(`push $0x8d5\n .org AT, 0x90\n popf\n done 1`, { ic3: V.IC3_PUSHF });
    expectDone(vmm, 1);
    expect(vmm.v.u32(V.VMCB_RFLAGS) & 0xfff).toBe(0x8d7);
  });

  const IRET = `pushf\n push %cs\n push $back\n .org AT, 0x90\n iret\n done 1\nback: done 2`;

  it('IRET exits 0x74 before reading its frame', () => {
    const vmm = runGuest(IRET, { ic3: V.IC3_IRET });
    expectExitAt(vmm, V.EXIT_IRET, 1);
    expect(vmm.reg(4)).toBe(GUEST_RSP - 12);
  });

  it('without it, IRET returns', () => {
    const vmm = runGuest(IRET, {});
    expectDone(vmm, 2);
    expect(vmm.reg(4)).toBe(GUEST_RSP);
  });

  it('in real mode too: IRET exits with RIP and nRIP as offsets in CS', () => {
    const src = `pushf\n push %cs\n push $back\n .org AT, 0x90\n iret\n done 1\nback: done 2`;
    expectExitAt(runGuest(src, { mode: 'real', ic3: V.IC3_IRET }), V.EXIT_IRET, 1);
    expectDone(runGuest(src, { mode: 'real' }), 2);
  });
});

suite('SVM: INT n, INT3, INTO, ICEBP', () => {
  it('INT n exits 0x75 with the vector in EXITINFO1, before anything is pushed', () => {
    const vmm = runGuest(`.org AT, 0x90\n int $0x41\n done 1`, { ic3: V.IC3_INTN });
    expectExitAt(vmm, V.EXIT_SWINT, 2, { info1: 0x41 });
    expect(vmm.reg(4)).toBe(GUEST_RSP);
  });

  it('without it, INT n runs the guest handler, which returns', () => {
    const vmm = runGuest(`setgate 0x41, h\n .org AT, 0x90\n int $0x41\n done 1\nh: mov $0x99, %ebx\n iret`, {});
    expectDone(vmm, 1);
    expect(vmm.reg(3)).toBe(0x99);
  });

  it('CD 03 (INT n with vector 3) is an INTn exit; CC (INT3) is not: it raises #BP', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n .byte 0xcd, 3\n done 1`, { ic3: V.IC3_INTN }), V.EXIT_SWINT, 2, { info1: 3 });
    const int3 = runGuest(`.org AT, 0x90\n int3\n done 1`, { ic3: V.IC3_INTN });
    expect(int3.exits).toEqual([]);
    expect(int3.delivered).toBe(BP);
  });

  it('INT3 and INTO (with OF) exit through the #BP and #OF exception intercepts: RIP = the instruction, nRIP the next', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n int3\n done 1`, withExc({}, BP)), V.EXIT_EXCP_BASE + BP, 1);
    const src = `mov $0x7f, %al\n add $1, %al\n .org AT, 0x90\n into\n done 1`;
    expectExitAt(runGuest(src, withExc({}, OF)), V.EXIT_EXCP_BASE + OF, 1);
    expectDone(runGuest(`.org AT, 0x90\n into\n done 1`, withExc({}, OF)), 1); // OF clear: nothing
  });

  it('the gate check of INT n comes after the intercept: a DPL 0 gate at CPL 3 exits, or is #GP without it', () => {
    const setup = (m: TestVmm) => { m.mem.write(IDT_BASE + 0x41 * 8 + 4, 2, 0x8e00); };
    expectExitAt(runGuest(`.org AT, 0x90\n int $0x41\n done 1`, withExc({ ic3: V.IC3_INTN, cpl: 3, setup }, GP)), V.EXIT_SWINT, 2, { info1: 0x41 });
    expectExceptionAt(runGuest(`.org AT, 0x90\n int $0x41\n done 1`, withExc({ cpl: 3, setup }, GP)), GP, 0x41 * 8 + 2);
  });

  it('in real mode, INT n exits with the vector; without the intercept it goes through the IVT', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n int $0x10\n done 1`, { mode: 'real', ic3: V.IC3_INTN }), V.EXIT_SWINT, 2, { info1: 0x10 });
    const src = `xor %ax, %ax\n mov %ax, %es\n movw $h, %es:0x40\n movw %cs, %es:0x42\n .org AT, 0x90\n int $0x10\n done 1\nh: mov $0x77, %bx\n iret`;
    const ivt = runGuest(src, { mode: 'real' });
    expectDone(ivt, 1);
    expect(ivt.reg(3) & 0xffff).toBe(0x77);
  });

  it('ICEBP exits 0x88; without it the #DB intercept sees it; without both the guest gets #DB', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n int1\n done 1`, withExc({ ic4: V.IC4_ICEBP }, DB)), V.EXIT_ICEBP, 1);
    expectExitAt(runGuest(`.org AT, 0x90\n int1\n done 1`, withExc({}, DB)), V.EXIT_EXCP_BASE + DB, 1);
    expect(runGuest(`.org AT, 0x90\n int1\n done 1`, {}).delivered).toBe(DB);
  });
});

suite('SVM: INVD, WBINVD, PAUSE', () => {
  it.each([
    ['invd', V.IC3_INVD, 0, V.EXIT_INVD],
    ['wbinvd', 0, V.IC4_WBINVD, V.EXIT_WBINVD],
  ] as const)('%s exits; without the intercept it runs; at CPL 3 it is #GP first', (insn, ic3, ic4, code) => {
    expectExitAt(runGuest(`.org AT, 0x90\n ${insn}\n done 1`, { ic3, ic4 }), code, 2);
    expectDone(runGuest(`.org AT, 0x90\n ${insn}\n done 1`, {}), 1);
    expectExceptionAt(runGuest(`.org AT, 0x90\n ${insn}\n done 1`, withExc({ ic3, ic4, cpl: 3 }, GP)), GP, 0);
  });

  it('PAUSE (F3 90) exits 0x77 on every execution; a plain NOP does not', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n pause\n done 1`, { ic3: V.IC3_PAUSE }), V.EXIT_PAUSE, 2);
    let n = 0;
    const vmm = runGuest(`pause\n nop\n pause\n done 1`, { ic3: V.IC3_PAUSE, onExit: () => { n++; return 'skip'; } });
    expect({ n, status: vmm.status }).toEqual({ n: 2, status: 1 });
    expectDone(runGuest(`.org AT, 0x90\n pause\n done 1`, {}), 1);
  });
});

suite('SVM: INVLPG, INVLPGA', () => {
  it('INVLPG exits 0x79 with the linear address (segment base + offset) in EXITINFO1', () => {
    expectExitAt(runGuest(`mov $0x2000, %ebx\n .org AT, 0x90\n invlpg 0x10(%ebx)\n done 1`, { ic3: V.IC3_INVLPG }), V.EXIT_INVLPG, 4, { info1: 0x2010 });
    const fs = runGuest(`.org AT, 0x90\n invlpg %fs:0x10\n done 1`, { ic3: V.IC3_INVLPG, setup: (m) => { m.v.w64(V.VMCB_FS + 8, 0x300000); } });
    expectExitAt(fs, V.EXIT_INVLPG, 8, { info1: 0x300010 });
  });

  it('with paging: the intercepted INVLPG leaves the TLB entry, the native one drops it', () => {
    const src = `mov 0x2000, %eax\n .org AT, 0x90\n invlpg 0x2000\n done 1`;
    const icpt = runGuest(src, { ic3: V.IC3_INVLPG, setup: paging });
    expectExitAt(icpt, V.EXIT_INVLPG, 7, { info1: 0x2000 });
    expect(dtlbEntry(icpt, 2, 1)).toBeGreaterThanOrEqual(0);
    const native = runGuest(src, { setup: paging });
    expectDone(native, 1);
    expect(dtlbEntry(native, 2, 1)).toBe(-1);
  });

  it('at CPL 3, INVLPG is #GP(0) before the intercept', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n invlpg 0x2000\n done 1`, withExc({ ic3: V.IC3_INVLPG, cpl: 3 }, GP)), GP, 0);
  });

  const regs = (eax: number, ecx: number) => (m: TestVmm) => { m.v.w64(V.VMCB_RAX, eax); m.cpu.r[1] = ecx; };

  it('INVLPGA exits 0x7a with rAX in EXITINFO1 (AX with a 16-bit address size)', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n invlpga\n done 1`, { ic3: V.IC3_INVLPGA, setup: regs(0x12345678, 5) }), V.EXIT_INVLPGA, 3, { info1: 0x12345678 });
    expectExitAt(runGuest(`.org AT, 0x90\n addr16 invlpga\n done 1`, { ic3: V.IC3_INVLPGA, setup: regs(0x12345678, 5) }), V.EXIT_INVLPGA, 4, { info1: 0x5678 });
  });

  it('without it, INVLPGA drops the page of the ASID in ECX only, small and large entries', () => {
    const vpn = 0x12345;
    const vmm = runGuest(`.org AT, 0x90\n invlpga\n done 1`, {
      setup: (m) => {
        regs(0x12345678, 5)(m);
        for (const asid of [5, 6]) m.cpu.dtlb.insert(vpn | (asid << 20), 0x7000 | TE_W | TE_D);
        m.cpu.itlb.insert(vpn | (5 << 20), 0x7000);
        m.cpu.dtlbLarge.insert((vpn >>> 10) | (5 << 20), 0x400000 | TE_W | TE_D);
      },
    });
    expectDone(vmm, 1);
    expect({
      d5: dtlbEntry(vmm, vpn, 5), i5: vmm.cpu.itlb.lookup(vpn | (5 << 20)), l5: vmm.cpu.dtlbLarge.lookup((vpn >>> 10) | (5 << 20)),
      d6: dtlbEntry(vmm, vpn, 6) >= 0,
    }).toEqual({ d5: -1, i5: -1, l5: -1, d6: true });
  });

  it('without it, INVLPGA for the guest\'s own ASID drops the page it uses', () => {
    const vmm = runGuest(`mov 0x2000, %eax\n mov $0x2000, %eax\n .org AT, 0x90\n invlpga\n done 1`, { setup: (m) => { paging(m); m.cpu.r[1] = 1; } });
    expectDone(vmm, 1);
    expect(dtlbEntry(vmm, 2, 1)).toBe(-1);
  });

  it('INVLPGA is #GP(0) at CPL 3 and #UD in real mode, before the intercept', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n invlpga\n done 1`, withExc({ ic3: V.IC3_INVLPGA, cpl: 3 }, GP)), GP, 0);
    expectExceptionAt(runGuest(`.org AT, 0x90\n invlpga\n done 1`, withExc({ ic3: V.IC3_INVLPGA, mode: 'real' }, UD)), UD);
  });
});

suite('SVM: MONITOR, MWAIT (not on this core)', () => {
  it.each([
    ['monitor', V.IC4_MONITOR, V.EXIT_MONITOR],
    ['mwait', V.IC4_MWAIT, V.EXIT_MWAIT],
  ] as const)('%s exits when intercepted; otherwise, and at CPL 3, it is #UD', (insn, ic4, code) => {
    expectExitAt(runGuest(`.org AT, 0x90\n ${insn}\n done 1`, { ic4 }), code, 3);
    const native = runGuest(`.org AT, 0x90\n ${insn}\n done 1`, {});
    expect(native.delivered).toBe(UD);
    expect(native.cpu.unimplemented.get(0x0f01)).toBe(1);
    expectExceptionAt(runGuest(`.org AT, 0x90\n ${insn}\n done 1`, withExc({ ic4, cpl: 3 }, UD)), UD);
  });

  it('MWAIT with only the conditional intercept is #UD (MONITOR can arm nothing here)', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n mwait\n done 1`, withExc({ ic4: V.IC4_MWAIT_COND }, UD)), UD);
  });
});

// [name, instruction, intercept bit, exit code, length, the native effect]
type TableCase = [string, string, number, number, number, (vmm: TestVmm) => void];
const TABLES: TableCase[] = [
  ['SIDT', 'sidt (%ebx)', V.IC3_IDTR_READ, V.EXIT_IDTR_READ, 3, (m) => {
    expect([m.mem.read(0x3100, 2), m.mem.read(0x3102, 4)]).toEqual([0x7ff, IDT_BASE]);
  }],
  ['SGDT', 'sgdt (%ebx)', V.IC3_GDTR_READ, V.EXIT_GDTR_READ, 3, (m) => {
    expect([m.mem.read(0x3100, 2), m.mem.read(0x3102, 4)]).toEqual([0x3f, GDT_BASE]);
  }],
  ['SLDT', 'sldt %edi', V.IC3_LDTR_READ, V.EXIT_LDTR_READ, 3, (m) => { expect(m.reg(7)).toBe(0); }],
  ['STR', 'str %edi', V.IC3_TR_READ, V.EXIT_TR_READ, 3, (m) => { expect(m.reg(7)).toBe(SEL.tssA); }],
  ['LIDT', 'lidt (%esi)', V.IC3_IDTR_WRITE, V.EXIT_IDTR_WRITE, 3, (m) => {
    expect([m.v.u32(V.VMCB_IDTR + 4), m.v.u32(V.VMCB_IDTR + 8)]).toEqual([0x37, GDT_BASE]);
  }],
  ['LGDT', 'lgdt (%esi)', V.IC3_GDTR_WRITE, V.EXIT_GDTR_WRITE, 3, (m) => {
    expect([m.v.u32(V.VMCB_GDTR + 4), m.v.u32(V.VMCB_GDTR + 8)]).toEqual([0x37, GDT_BASE]);
  }],
  ['LLDT', 'lldt %cx', V.IC3_LDTR_WRITE, V.EXIT_LDTR_WRITE, 3, (m) => {
    expect([m.v.u16(V.VMCB_LDTR), m.v.u32(V.VMCB_LDTR + 4), m.v.u32(V.VMCB_LDTR + 8)]).toEqual([SEL.ldt, 0x17, LDT_BASE]);
  }],
  ['LTR', 'ltr %dx', V.IC3_TR_WRITE, V.EXIT_TR_WRITE, 3, (m) => {
    expect([m.v.u16(V.VMCB_TR), m.v.u32(V.VMCB_TR + 8), m.mem.read(GDT_BASE + SEL.tssB + 5, 1)]).toEqual([SEL.tssB, TSS_B, 0x8b]);
  }],
];
const ALL_TABLE_BITS = TABLES.reduce((a, t) => a | t[2], 0);
/** EBX -> a store buffer (0x3100), ESI -> a pseudo-descriptor (limit 0x37, base GDT_BASE), CX = the LDT, DX = TSS B. */
const TABLE_SRC = (insn: string) => `
  mov $0x3100, %ebx
  mov $0x3000, %esi
  movw $0x37, (%esi)
  movl $${GDT_BASE}, 2(%esi)
  mov $${SEL.ldt}, %ecx
  mov $${SEL.tssB}, %edx
  .org AT, 0x90
  ${insn}
  done 1`;

suite('SVM: IDTR, GDTR, LDTR, TR reads and writes', () => {
  it.each(TABLES)('%s (%s) exits with its own bit; nothing is stored or loaded', (_n, insn, bit, code, len) => {
    const vmm = runGuest(TABLE_SRC(insn), { ic3: bit });
    expectExitAt(vmm, code, len);
    expect([vmm.mem.read(0x3100, 4), vmm.v.u16(V.VMCB_LDTR), vmm.v.u16(V.VMCB_TR), vmm.v.u32(V.VMCB_GDTR + 4)]).toEqual([0, 0, SEL.tssA, 0x3f]);
  });

  it.each(TABLES)('%s (%s) runs natively with every other table intercept set', (_n, insn, bit, _code, _len, check) => {
    const vmm = runGuest(TABLE_SRC(insn), { ic3: ALL_TABLE_BITS & ~bit });
    expectDone(vmm, 1);
    check(vmm);
  });

  it('priority: SLDT in real mode is #UD and LGDT at CPL 3 #GP(0), even when intercepted', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n sldt %di\n done 1`, withExc({ mode: 'real', ic3: V.IC3_LDTR_READ }, UD)), UD);
    expectExceptionAt(runGuest(TABLE_SRC('lgdt (%esi)'), withExc({ cpl: 3, ic3: V.IC3_GDTR_WRITE }, GP)), GP, 0);
  });

  it('priority: SIDT to an offset beyond DS\'s limit exits when intercepted, and is #GP(0) when not', () => {
    const setup = (m: TestVmm) => { m.v.w32(V.VMCB_DS + 4, 0x30ff); };
    const src = `mov $0x3100, %ebx\n .org AT, 0x90\n sidt (%ebx)\n done 1`;
    expectExitAt(runGuest(src, withExc({ ic3: V.IC3_IDTR_READ, setup }, GP)), V.EXIT_IDTR_READ, 3);
    expectExceptionAt(runGuest(src, withExc({ setup }, GP)), GP, 0);
  });
});
