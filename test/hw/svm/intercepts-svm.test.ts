// The SVM instructions (0F 01 D8-DF) and the task-switch intercept.
//
// SVM instructions (APM vol. 2, 15.5 and the instruction pages of vol. 3): in a guest, VMRUN is
// always intercepted (exit 0x80; VMRUN refuses a VMCB without that bit), VMMCALL exits 0x81 when
// intercepted and is #UD otherwise (at any CPL, in any mode), VMLOAD/VMSAVE/STGI/CLGI/SKINIT
// (0x82-0x86) are #UD in real mode and #GP(0) at CPL > 0 before their intercept and #UD when not
// intercepted (no nested SVM here), INVLPGA is in intercepts.test.ts. Outside a guest every one
// of them is #UD: the host is TypeScript and CPUID does not advertise SVM.
//
// Task switch (exit 0x7d): EXITINFO1 = the target TSS selector; EXITINFO2 = the error code to be
// pushed (bits 31:0), bit 36 for IRET, bit 38 for a far JMP, bit 44 when an error code is pushed,
// bit 48 = EFLAGS.RF. The intercept comes after the new TSS descriptor's checks and before any
// state changes.
import { expect, it } from 'vitest';
import { Cpu, TRAP_EXCEPTION } from '../../../hw/cpu/cpu.ts';
import { cpuidLookup, defaultCpuid } from '../../../hw/cpu/cpuid.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import {
  expectExceptionAt, expectExitAt, GDT_BASE, IDT_BASE, runGuest, SEL, suite, TSS_A, TSS_B, type TestVmm, withExc,
} from './harness.ts';

const UD = 6, GP = 13, TS = 10;

// [mnemonic, encoding, intercept bit (vector 4), exit code]
const SVM_INSNS: [string, number, number, number][] = [
  ['vmrun', 0xd8, V.IC4_VMRUN, V.EXIT_VMRUN],
  ['vmmcall', 0xd9, V.IC4_VMMCALL, V.EXIT_VMMCALL],
  ['vmload', 0xda, V.IC4_VMLOAD, V.EXIT_VMLOAD],
  ['vmsave', 0xdb, V.IC4_VMSAVE, V.EXIT_VMSAVE],
  ['stgi', 0xdc, V.IC4_STGI, V.EXIT_STGI],
  ['clgi', 0xdd, V.IC4_CLGI, V.EXIT_CLGI],
  ['skinit', 0xde, V.IC4_SKINIT, V.EXIT_SKINIT],
];
const OPTIONAL = SVM_INSNS.filter(([n]) => n !== 'vmrun');
const PRIVILEGED = OPTIONAL.filter(([n]) => n !== 'vmmcall');

suite('SVM instructions in a guest', () => {
  it.each(SVM_INSNS)('%s exits when intercepted (RIP = it, nRIP = the next instruction)', (name, _b, bit, code) => {
    expectExitAt(runGuest(`.org AT, 0x90\n ${name}\n done 1`, { ic4: bit }), code, 3);
  });

  it('VMRUN is always intercepted: the harness sets nothing but the bit VMRUN requires', () => {
    const vmm = runGuest(`mov $0x50000, %eax\n .org AT, 0x90\n vmrun\n done 1`, {});
    expectExitAt(vmm, V.EXIT_VMRUN, 3);
    expect(vmm.reg(0)).toBe(0x50000);
  });

  it.each(OPTIONAL)('%s without its intercept (all the others set) is #UD in the guest', (name, _b, bit) => {
    const others = OPTIONAL.reduce((a, [, , b]) => a | b, 0) & ~bit;
    const vmm = runGuest(`.org AT, 0x90\n ${name}\n done 1`, { ic4: others });
    expect({ exits: vmm.exits, delivered: vmm.delivered }).toEqual({ exits: [], delivered: UD });
    expectExceptionAt(runGuest(`.org AT, 0x90\n ${name}\n done 1`, withExc({ ic4: others }, UD)), UD);
  });

  it.each(PRIVILEGED)('%s at CPL 3 is #GP(0) before its intercept', (name, _b, bit) => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n ${name}\n done 1`, withExc({ ic4: bit, cpl: 3 }, GP)), GP, 0);
  });

  it('VMRUN at CPL 3 is #GP(0) too', () => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n vmrun\n done 1`, withExc({ cpl: 3 }, GP)), GP, 0);
  });

  it.each([...PRIVILEGED, SVM_INSNS[0]])('%s in real mode is #UD before its intercept', (name, _b, bit) => {
    expectExceptionAt(runGuest(`.org AT, 0x90\n ${name}\n done 1`, withExc({ ic4: bit, mode: 'real' }, UD)), UD);
  });

  it('VMMCALL exits at CPL 3 and in real mode (a hypercall from anywhere)', () => {
    expectExitAt(runGuest(`.org AT, 0x90\n vmmcall\n done 1`, { ic4: V.IC4_VMMCALL, cpl: 3 }), V.EXIT_VMMCALL, 3);
    expectExitAt(runGuest(`.org AT, 0x90\n vmmcall\n done 1`, { ic4: V.IC4_VMMCALL, mode: 'real' }), V.EXIT_VMMCALL, 3);
  });

  it('a hypercall: the VMM reads EAX, answers in EBX and resumes at nRIP', () => {
    const vmm = runGuest(`mov $7, %eax\n vmmcall\n mov %ebx, %esi\n done 1`, {
      ic4: V.IC4_VMMCALL,
      onExit: (e, m) => { m.cpu.r[3] = m.v.u32(V.VMCB_RAX) * 6; return 'skip'; },
    });
    expect({ status: vmm.status, esi: vmm.reg(6), exits: vmm.exits.map((e) => e.code) }).toEqual({ status: 1, esi: 42, exits: [V.EXIT_VMMCALL] });
  });
});

/** Runs `bytes` at CPL 0 in flat 32-bit protected mode on a core in host mode (no guest); returns the first host trap. */
function hostRun(bytes: number[]): { kind: number; vector: number; eip: number } {
  const mem = new PhysMem(1 << 20);
  const cpu = new Cpu({ mem });
  mem.writeBytes(0x1000, new Uint8Array(bytes));
  cpu.cr0 = 0x11;
  cpu.updateMode();
  cpu.setCpl(0);
  cpu.loadSegCache(CS, 0x08, 0, 0xffffffff, 0xc09b);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0x10, 0, 0xffffffff, 0xc093);
  cpu.eip = 0x1000;
  cpu.r[4] = 0x8000;
  let trap = { kind: -1, vector: -1, eip: -1 };
  cpu.host = { trap(c, t) { trap = { kind: t.kind, vector: t.vector, eip: t.eip }; c.idle(); } };
  cpu.run(100_000);
  return trap;
}

suite('SVM instructions outside a guest', () => {
  it('CPUID does not advertise SVM: 8000_0001 ECX.SVM (bit 2) clear, no leaf 8000_000A', () => {
    const t = defaultCpuid();
    expect(cpuidLookup(t, 0x80000001)[2] & 4).toBe(0);
    expect(cpuidLookup(t, 0x80000000)[0]).toBeLessThan(0x8000000a);
  });

  it.each([...SVM_INSNS.map(([n, b]) => [n, b] as const), ['invlpga', 0xdf] as const, ['monitor', 0xc8] as const, ['mwait', 0xc9] as const, ['rdtscp', 0xf9] as const])(
    '%s is #UD on a core that is not running a guest',
    (_n, b) => {
      expect(hostRun([0x0f, 0x01, b, 0xf4])).toEqual({ kind: TRAP_EXCEPTION, vector: UD, eip: 0x1000 });
    },
  );
});

// ------------------------------------------------------------------ task switch

/** Points TSS B's EIP at label `taskb` (every task-switch guest has one). */
const TASKB = `movl $taskb, TSS_B + 0x20\n`;
const JMP = `${TASKB} .org AT, 0x90\n ljmp $0x20, $0\n done 1\ntaskb: done 2`;
const CALL = `${TASKB} .org AT, 0x90\n lcall $0x20, $0\n done 1\ntaskb: done 2`;
const busy = (m: TestVmm, sel: number) => m.mem.read(GDT_BASE + sel + 5, 1) & 2;

suite('SVM: the task-switch intercept', () => {
  it('JMP to a TSS exits 0x7d: EXITINFO1 = the selector, EXITINFO2 bit 38; nothing switched', () => {
    const vmm = runGuest(JMP, { ic3: V.IC3_TASK_SWITCH });
    expectExitAt(vmm, V.EXIT_TASK_SWITCH, 7, { info1: SEL.tssB, info2Hi: 1 << (38 - 32) });
    expect([vmm.v.u16(V.VMCB_TR), busy(vmm, SEL.tssA), busy(vmm, SEL.tssB)]).toEqual([SEL.tssA, 2, 0]);
  });

  it('without it, JMP switches: TR = TSS B, TSS A no longer busy', () => {
    const vmm = runGuest(JMP, {});
    expect(vmm.status).toBe(2);
    expect([vmm.v.u16(V.VMCB_TR), busy(vmm, SEL.tssA), busy(vmm, SEL.tssB)]).toEqual([SEL.tssB, 0, 2]);
  });

  it('CALL to a TSS exits with neither bit 36 nor 38', () => {
    expectExitAt(runGuest(CALL, { ic3: V.IC3_TASK_SWITCH }), V.EXIT_TASK_SWITCH, 7, { info1: SEL.tssB });
  });

  it('without it, CALL switches and links back (NT set, back link = TSS A)', () => {
    const vmm = runGuest(CALL, {});
    expect(vmm.status).toBe(2);
    expect([vmm.mem.read(TSS_B, 2), vmm.v.u32(V.VMCB_RFLAGS) & 0x4000]).toEqual([SEL.tssA, 0x4000]);
  });

  it('IRET from a nested task exits with the back link and bit 36 (enabled by a hypercall inside task B)', () => {
    const src = `${TASKB} lcall $0x20, $0\n done 1\ntaskb: vmmcall\n .org AT, 0x90\n iret\n done 2`;
    const vmm = runGuest(src, {
      ic4: V.IC4_VMMCALL,
      onExit: (e, m) => {
        if (e.code !== V.EXIT_VMMCALL) return 'stop';
        m.v.w32(V.VMCB_INTERCEPTS3, m.v.u32(V.VMCB_INTERCEPTS3) | V.IC3_TASK_SWITCH);
        return 'skip';
      },
    });
    expectExitAt(vmm, V.EXIT_TASK_SWITCH, 1, { info1: SEL.tssA, info2Hi: 1 << (36 - 32) });
    expect(vmm.v.u16(V.VMCB_TR)).toBe(SEL.tssB);
  });

  it('the IRET intercept takes priority over the task switch', () => {
    const src = `${TASKB} lcall $0x20, $0\n done 1\ntaskb: vmmcall\n .org AT, 0x90\n iret\n done 2`;
    const vmm = runGuest(src, {
      ic4: V.IC4_VMMCALL,
      onExit: (e, m) => {
        if (e.code !== V.EXIT_VMMCALL) return 'stop';
        m.v.w32(V.VMCB_INTERCEPTS3, m.v.u32(V.VMCB_INTERCEPTS3) | V.IC3_TASK_SWITCH | V.IC3_IRET);
        return 'skip';
      },
    });
    expectExitAt(vmm, V.EXIT_IRET, 1);
  });

  it('an exception through a task gate: bit 44 and the error code in EXITINFO2, the exception in EXITINTINFO', () => {
    const gate = (m: TestVmm) => { m.mem.write(IDT_BASE + GP * 8, 4, SEL.tssB << 16); m.mem.write(IDT_BASE + GP * 8 + 4, 4, 0x8500); };
    const src = `${TASKB} mov $0x1238, %eax\n .org AT, 0x90\n mov %ax, %ds\n done 1\ntaskb: done 2`;
    const vmm = runGuest(src, { ic3: V.IC3_TASK_SWITCH, setup: gate });
    const e = vmm.last;
    expect({ code: e.code, info1: e.info1, info2: e.info2, info2Hi: e.info2Hi, rip: e.rip, intInfo: e.intInfo >>> 0, intInfoErr: e.intInfoErr })
      .toEqual({
        code: V.EXIT_TASK_SWITCH, info1: SEL.tssB, info2: 0x1238, info2Hi: 1 << (44 - 32), rip: vmm.t,
        intInfo: (V.EVT_V | V.EVT_EV | (V.EVT_EXCEPTION << 8) | GP) >>> 0, intInfoErr: 0x1238,
      });
    // without the intercept the #GP switches to task B, which finds the error code on its stack
    const native = runGuest(src, { setup: gate });
    expect([native.status, native.mem.read(0x70000 - 4, 4)]).toEqual([2, 0x1238]);
  });

  it('INT n through a task gate: no error code, the software interrupt in EXITINTINFO', () => {
    const gate = (m: TestVmm) => { m.mem.write(IDT_BASE + 0x42 * 8, 4, SEL.tssB << 16); m.mem.write(IDT_BASE + 0x42 * 8 + 4, 4, 0xe500); };
    const vmm = runGuest(`${TASKB} .org AT, 0x90\n int $0x42\n done 1\ntaskb: done 2`, { ic3: V.IC3_TASK_SWITCH, setup: gate });
    const e = vmm.last;
    expect({ code: e.code, info1: e.info1, info2: e.info2, info2Hi: e.info2Hi, rip: e.rip, intInfo: e.intInfo >>> 0 })
      .toEqual({ code: V.EXIT_TASK_SWITCH, info1: SEL.tssB, info2: 0, info2Hi: 0, rip: vmm.t, intInfo: (V.EVT_V | (V.EVT_SOFT_INT << 8) | 0x42) >>> 0 });
  });

  it('EXITINFO2 bit 48 is EFLAGS.RF', () => {
    const vmm = runGuest(`ljmp $0x20, $0`, { ic3: V.IC3_TASK_SWITCH, setup: (m) => { m.v.w64(V.VMCB_RFLAGS, 0x10002); } });
    expect([vmm.last.code, vmm.last.info2Hi]).toEqual([V.EXIT_TASK_SWITCH, (1 << 16) | (1 << 6)]);
  });

  it('priority: the new TSS descriptor is checked first (#TS for a short TSS, #GP for a busy one)', () => {
    const short = (m: TestVmm) => { m.mem.write(GDT_BASE + SEL.tssB, 2, 0x60); };
    expectExceptionAt(runGuest(JMP, withExc({ ic3: V.IC3_TASK_SWITCH, setup: short }, TS)), TS, SEL.tssB);
    const toBusy = `.org AT, 0x90\n ljmp $0x18, $0\n done 1`;
    expectExceptionAt(runGuest(toBusy, withExc({ ic3: V.IC3_TASK_SWITCH }, GP)), GP, SEL.tssA);
  });
});
