// Events in guest mode (APM vol. 2, 15.7.2-15.7.3, 15.12-15.13, 15.20-15.21): event injection
// through EVENTINJ of each type, EXITINTINFO for an event whose delivery was cut short by an
// intercepted exception and the VMM's re-injection of it, virtual interrupts (V_IRQ and its
// priority, IF, the interrupt shadow, the VINTR intercept), INTERRUPT_SHADOW saved and honoured,
// TSC_OFFSET, and physical interrupts (INTR and NMI) with and without their intercepts.
import { describe, expect, it } from 'vitest';
import { TRAP_INTERRUPT, TRAP_VMEXIT } from '../../../hw/cpu/cpu.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { haveAssembler } from '../cpu/bare.ts';
import { Paging32 } from '../cpu/sysenv.ts';
import {
  event, frame, gate, GCODE, GSTACK, newVm, RING0_STACK, ring3, SEL_CODE0, SEL_CODE3, SEL_DATA3, STUB, type Vm,
} from './vmenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

const ESI = 6, EDI = 7, EBX = 3;
const IF = 0x200;

function inject(vm: Vm, type: number, vec: number, err?: number): void {
  const e = event(type, vec, err);
  vm.v.w64hl(V.VMCB_EVENTINJ, e.lo, e.hi);
}
function exitIntInfo(vm: Vm): [number, number] { return [vm.v.u32(V.VMCB_EXITINTINFO), vm.v.hi32(V.VMCB_EXITINTINFO)]; }
function rip(vm: Vm): number { return vm.v.u32(V.VMCB_RIP); }
function icptExc(vm: Vm, ...vecs: number[]): void { vm.v.w32(V.VMCB_EXC_INTERCEPTS, vecs.reduce((a, b) => a | (1 << b), 0)); }
function icpt3(vm: Vm, bits: number): void { vm.v.w32(V.VMCB_INTERCEPTS3, vm.v.u32(V.VMCB_INTERCEPTS3) | bits); }
/** Re-injects the event EXITINTINFO reports (what a VMM does after repairing the cause of the exit). */
function reinject(vm: Vm): void { vm.v.w64hl(V.VMCB_EVENTINJ, vm.v.u32(V.VMCB_EXITINTINFO), vm.v.hi32(V.VMCB_EXITINTINFO)); }

run('event injection (EVENTINJ): delivered through the guest IDT before the first guest instruction', () => {
  it('an external interrupt, even with IF = 0; EVENTINJ is cleared at the next exit', () => {
    const vm = newVm();
    vm.code('inc %esi\nhlt');
    inject(vm, V.EVT_INTR, 0x30);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x30));
    expect(vm.v.u32(V.VMCB_RSP)).toBe(GSTACK - 12);
    expect(frame(vm, 3)).toEqual([GCODE, SEL_CODE0, 0x2]); // EIP, CS, EFLAGS
    expect(vm.cpu.r[ESI]).toBe(0); // the first guest instruction has not run
    expect(vm.v.u32(V.VMCB_EVENTINJ)).toBe(0);
    expect(exitIntInfo(vm)).toEqual([0, 0]);
  });

  it('an NMI uses vector 2 whatever VECTOR says', () => {
    const vm = newVm();
    vm.code('inc %esi\nhlt');
    vm.v.w64(V.VMCB_RFLAGS, 0x202);
    inject(vm, V.EVT_NMI, 0x55);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(2));
    expect(frame(vm, 3)).toEqual([GCODE, SEL_CODE0, 0x202]);
    expect(vm.v.u32(V.VMCB_RFLAGS) & IF).toBe(0); // an interrupt gate clears IF
  });

  it('an exception without an error code (#UD) and with one (#GP, EV = 1): the error code is pushed last', () => {
    let vm = newVm();
    vm.code('inc %esi\nhlt');
    inject(vm, V.EVT_EXCEPTION, 6);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect([rip(vm), vm.v.u32(V.VMCB_RSP)]).toEqual([STUB(6), GSTACK - 12]);
    expect(frame(vm, 3)).toEqual([GCODE, SEL_CODE0, 0x2]);

    vm = newVm();
    vm.code('inc %esi\nhlt');
    inject(vm, V.EVT_EXCEPTION, 13, 0x1234);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect([rip(vm), vm.v.u32(V.VMCB_RSP)]).toEqual([STUB(13), GSTACK - 16]);
    expect(frame(vm, 4)).toEqual([0x1234, GCODE, SEL_CODE0, 0x2]);
    expect(vm.cpu.r[ESI]).toBe(0);
  });

  it('an injected #PF pushes its error code and leaves CR2 to the VMM', () => {
    const vm = newVm();
    vm.code('hlt');
    vm.v.w64(V.VMCB_CR2, 0xcafe000);
    inject(vm, V.EVT_EXCEPTION, 14, 0x6);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(14));
    expect(frame(vm, 4)).toEqual([0x6, GCODE, SEL_CODE0, 0x2]);
    expect(vm.v.u32(V.VMCB_CR2)).toBe(0xcafe000);
  });

  it('a software interrupt pushes RIP (the VMM points it past the INT n) and checks the gate DPL; INTR does not', () => {
    let vm = newVm();
    vm.code('inc %esi\nhlt');
    inject(vm, V.EVT_SOFT_INT, 0x80);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x80));
    expect(frame(vm, 3)).toEqual([GCODE, SEL_CODE0, 0x2]);

    // at CPL 3 through a DPL-0 gate: #GP(vector * 8 + 2), delivered on the ring-0 stack
    vm = newVm();
    vm.code('inc %esi\nhlt');
    ring3(vm.v);
    inject(vm, V.EVT_SOFT_INT, 0x80);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(13));
    expect(vm.v.u32(V.VMCB_RSP)).toBe(RING0_STACK - 24);
    expect(frame(vm, 6)).toEqual([0x80 * 8 + 2, GCODE, SEL_CODE3, 0x2, GSTACK, SEL_DATA3]);

    // an external interrupt through the same gate: no DPL check
    vm = newVm();
    vm.code('inc %esi\nhlt');
    ring3(vm.v);
    inject(vm, V.EVT_INTR, 0x80);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x80));
    expect(frame(vm, 5)).toEqual([GCODE, SEL_CODE3, 0x2, GSTACK, SEL_DATA3]);
  });

  it('an exception 3 or 4 is injected like INT3/INTO (gate DPL checked), other exceptions are not', () => {
    for (const [vec, dpl, to] of [[3, 0, 13], [3, 3, 3], [4, 0, 13], [6, 0, 6]] as const) {
      const vm = newVm();
      vm.code('hlt');
      ring3(vm.v);
      gate(vm.mem, vec, { dpl });
      inject(vm, V.EVT_EXCEPTION, vec);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect([vec, dpl, rip(vm)]).toEqual([vec, dpl, STUB(to)]);
      if (to === 13) expect(frame(vm, 1)).toEqual([vec * 8 + 2]);
    }
  });

  it('injected events are not subject to intercepts', () => {
    const vm = newVm();
    vm.code('hlt');
    icptExc(vm, 13, 6);
    icpt3(vm, V.IC3_INTR | V.IC3_NMI | V.IC3_INTN);
    inject(vm, V.EVT_EXCEPTION, 13, 0);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(13));
  });

  it('an injected event is taken even when INTERRUPT_SHADOW is set, before the first instruction', () => {
    const vm = newVm();
    vm.code('inc %esi\nhlt');
    vm.v.w64(V.VMCB_RFLAGS, 0x202);
    vm.v.w32(V.VMCB_INT_STATE, V.INTERRUPT_SHADOW);
    inject(vm, V.EVT_INTR, 0x30);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x30));
    expect(vm.cpu.r[ESI]).toBe(0);
  });
});

// =============================================================================== EXITINTINFO

/** Guest paging: identity map of the low 8 MiB with `absent` pages not present. */
function paging(vm: Vm, ...absent: number[]): Paging32 {
  const pt = new Paging32(vm.mem, 0x700000);
  pt.identity(0, 0x800000, 3);
  for (const a of absent) pt.unmap(a);
  vm.v.w64(V.VMCB_CR3, 0x700000);
  vm.v.w64(V.VMCB_CR0, 0x80000011);
  return pt;
}

run('EXITINTINFO: an event cut short by an intercepted exception, and its re-injection', () => {
  it('injected INTR whose frame push faults (stack page not present, #PF intercepted); the VMM maps it and re-injects', () => {
    const vm = newVm();
    // the handler of vector 0x30 counts in EDI; the guest then counts in ESI and halts
    vm.code('inc %esi\nhlt\n.org 0x100\ninc %edi\niret');
    gate(vm.mem, 0x30, { off: GCODE + 0x100 });
    const pt = paging(vm, GSTACK - 0x1000);
    icptExc(vm, 14);
    vm.v.w64(V.VMCB_CR2, 0xabc000);
    inject(vm, V.EVT_INTR, 0x30);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 14);
    expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(0x2);            // write, not present, supervisor
    expect(vm.v.u32(V.VMCB_EXITINFO2)).toBe(GSTACK - 4);     // the faulting address
    expect(exitIntInfo(vm)).toEqual([(V.EVT_V | 0x30) >>> 0, 0]); // V, type INTR, vector 0x30, no EV
    expect(rip(vm)).toBe(GCODE);
    expect(vm.v.u32(V.VMCB_CR2)).toBe(0xabc000);             // an intercepted #PF does not write CR2
    expect(vm.v.u32(V.VMCB_NRIP)).toBe(0);
    expect(vm.v.u32(V.VMCB_EVENTINJ)).toBe(0);
    expect(vm.v.u32(V.VMCB_RSP)).toBe(GSTACK);               // nothing was pushed
    expect([vm.cpu.r[ESI], vm.cpu.r[EDI]]).toEqual([0, 0]);

    pt.map(GSTACK - 0x1000, GSTACK - 0x1000);
    reinject(vm);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(GCODE + 1);                         // the guest's own HLT
    expect([vm.cpu.r[ESI], vm.cpu.r[EDI]]).toEqual([1, 1]);  // the handler ran once, then the guest
    expect(vm.v.u32(V.VMCB_RSP)).toBe(GSTACK);
    expect(exitIntInfo(vm)).toEqual([0, 0]);
  });

  it('a #PF raised on the handler\'s first fetch comes after delivery completed: EXITINTINFO is empty', () => {
    const vm = newVm();
    vm.code('inc %esi\nhlt');
    gate(vm.mem, 0x30, { off: 0x7ff000 });
    paging(vm, 0x7ff000);
    icptExc(vm, 14);
    inject(vm, V.EVT_INTR, 0x30);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 14);
    expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(0); // a supervisor read (fetch) of a not-present page; no I/D bit without NX
    expect(vm.v.u32(V.VMCB_EXITINFO2)).toBe(0x7ff000);
    expect(exitIntInfo(vm)).toEqual([0, 0]);
    expect(rip(vm)).toBe(0x7ff000);
    expect(frame(vm, 3)).toEqual([GCODE, SEL_CODE0, 0x2]);
  });

  it('a guest #DE meets a bad gate: the #GP intercept reports the #DE in EXITINTINFO; the VMM fixes the gate and re-injects', () => {
    const vm = newVm();
    // #DE handler: make the divisor 1 and return to the DIV (a fault), which then completes
    vm.code('xor %edx, %edx\nxor %ecx, %ecx\ndiv %ecx\ninc %esi\nhlt\n.org 0x100\nmov $1, %ecx\niret');
    gate(vm.mem, 0, { raw: 0x8c }); // present, type 0xC: a call gate, not valid in the IDT
    icptExc(vm, 13);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 13);
    expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(0 * 8 + 2 + 1);  // IDT, EXT
    expect(exitIntInfo(vm)).toEqual([(V.EVT_V | (V.EVT_EXCEPTION << 8) | 0) >>> 0, 0]);
    expect(rip(vm)).toBe(GCODE + 4);                         // the DIV
    gate(vm.mem, 0, { off: GCODE + 0x100 });
    reinject(vm);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(GCODE + 7);
    expect(vm.cpu.r[ESI]).toBe(1);
  });

  it('a guest #GP with an error code meets a not-present gate: #NP intercepted, EXITINTINFO has EV and the error code', () => {
    const vm = newVm();
    // #GP handler: take the error code into EBX and skip the 2-byte MOV DS
    vm.code('mov $0x80, %eax\nmov %eax, %ds\ninc %esi\nhlt\n.org 0x100\npop %ebx\naddl $2, (%esp)\niret');
    gate(vm.mem, 13, { off: GCODE + 0x100, present: false });
    icptExc(vm, 11);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 11);
    expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(13 * 8 + 2 + 1);
    expect(exitIntInfo(vm)).toEqual([(V.EVT_V | V.EVT_EV | (V.EVT_EXCEPTION << 8) | 13) >>> 0, 0x80]);
    gate(vm.mem, 13, { off: GCODE + 0x100 });
    reinject(vm);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect([vm.cpu.r[EBX], vm.cpu.r[ESI]]).toEqual([0x80, 1]);
  });

  it('INT n through a bad gate: the #GP intercept reports the software interrupt; the VMM re-injects it past the INT', () => {
    const vm = newVm();
    vm.code('int $0x40\ninc %esi\nhlt\n.org 0x100\ninc %edi\niret');
    gate(vm.mem, 0x40, { raw: 0x81 }); // present, type 1 (a TSS type): not a gate
    icptExc(vm, 13);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 13);
    expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(0x40 * 8 + 2);   // IDT, not EXT
    expect(exitIntInfo(vm)).toEqual([(V.EVT_V | (V.EVT_SOFT_INT << 8) | 0x40) >>> 0, 0]);
    expect(rip(vm)).toBe(GCODE);                             // the INT (a fault restarts it)
    gate(vm.mem, 0x40, { off: GCODE + 0x100 });
    reinject(vm);
    vm.v.w64(V.VMCB_RIP, GCODE + 2);                         // the return address: past the INT
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect([vm.cpu.r[EDI], vm.cpu.r[ESI]]).toEqual([1, 1]);
  });

  describe('the APM example (15.7.2/15.12): a #NP during whose delivery a #GP arises (a double fault)', () => {
    const setup = (): Vm => {
      const vm = newVm();
      vm.code('mov $0x30, %eax\nmov %eax, %ds\nhlt'); // 0x30: a not-present data segment
      gate(vm.mem, 11, { raw: 0x8c });                // and the #NP gate is bad
      return vm;
    };
    it('with #GP intercepted: #VMEXIT(#GP), EXITINTINFO = the #NP', () => {
      const vm = setup();
      icptExc(vm, 13, 8);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 13);
      expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(11 * 8 + 3);
      expect(exitIntInfo(vm)).toEqual([(V.EVT_V | V.EVT_EV | (V.EVT_EXCEPTION << 8) | 11) >>> 0, 0x30]);
    });
    it('with only #DF intercepted: #VMEXIT(#DF), error code 0, EXITINTINFO still the #NP', () => {
      const vm = setup();
      icptExc(vm, 8);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 8);
      expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(0);
      expect(exitIntInfo(vm)).toEqual([(V.EVT_V | V.EVT_EV | (V.EVT_EXCEPTION << 8) | 11) >>> 0, 0x30]);
    });
    it('with neither: the #DF goes through gate 8 with error code 0', () => {
      const vm = setup();
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect(rip(vm)).toBe(STUB(8));
      expect(frame(vm, 1)).toEqual([0]); // the saved EIP of a #DF is undefined (APM 15.12.9)
    });
    it('a fault while delivering the #DF is a shutdown: #VMEXIT(SHUTDOWN) when intercepted, else the core shuts down', () => {
      let vm = setup();
      gate(vm.mem, 8, { present: false });
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_SHUTDOWN);
      expect(vm.v.u32(V.VMCB_NRIP)).toBe(0);
      vm = setup();
      gate(vm.mem, 8, { present: false });
      vm.v.w32(V.VMCB_INTERCEPTS3, V.IC3_HLT);
      vm.enter();
      expect(vm.runToExit()).toBe(null);
      expect(vm.cpu.state).toBe(2); // SHUTDOWN
    });
  });

  it('an injected #PF whose delivery raises #GP (bad gate 14) becomes a #DF; with #GP intercepted it is in EXITINTINFO', () => {
    let vm = newVm();
    vm.code('hlt');
    gate(vm.mem, 14, { raw: 0x8c });
    inject(vm, V.EVT_EXCEPTION, 14, 2);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(8));
    expect(frame(vm, 1)).toEqual([0]);

    vm = newVm();
    vm.code('hlt');
    gate(vm.mem, 14, { raw: 0x8c });
    icptExc(vm, 13);
    inject(vm, V.EVT_EXCEPTION, 14, 2);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_EXCP_BASE + 13);
    expect(exitIntInfo(vm)).toEqual([(V.EVT_V | V.EVT_EV | (V.EVT_EXCEPTION << 8) | 14) >>> 0, 2]);
    gate(vm.mem, 14);
    reinject(vm);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(14));
    expect(frame(vm, 2)).toEqual([2, GCODE]);
  });
});

// =============================================================================== virtual interrupts

/** V_IRQ pending with vector `vec`, priority `prio`, V_TPR `tpr`, V_IGN_TPR `ign`. */
function virq(vm: Vm, vec: number, prio: number, tpr: number, ign = false, masking = false): void {
  vm.v.w32(V.VMCB_VINTR, V.V_IRQ | (prio << V.V_INTR_PRIO_SHIFT) | tpr | (ign ? V.V_IGN_TPR : 0) | (masking ? V.V_INTR_MASKING : 0));
  vm.v.w8(V.VMCB_V_INTR_VECTOR, vec);
}

run('virtual interrupts (V_IRQ, V_INTR_VECTOR, V_INTR_PRIO, V_TPR, V_IGN_TPR)', () => {
  it('taken before the first instruction with IF = 1 and V_INTR_PRIO > V_TPR; V_IRQ is written back clear', () => {
    const vm = newVm();
    vm.code('inc %esi\nhlt');
    vm.v.w64(V.VMCB_RFLAGS, 0x202);
    virq(vm, 0x41, 2, 1);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x41));
    expect(frame(vm, 3)).toEqual([GCODE, SEL_CODE0, 0x202]);
    expect(vm.cpu.r[ESI]).toBe(0);
    expect(vm.v.u32(V.VMCB_VINTR)).toBe((2 << V.V_INTR_PRIO_SHIFT) | 1); // V_IRQ clear, V_TPR kept
    expect(exitIntInfo(vm)).toEqual([0, 0]);
  });

  it('the priority rule: taken only if V_INTR_PRIO > V_TPR[3:0], or with V_IGN_TPR', () => {
    const cases: [number, number, boolean, boolean][] = [
      [2, 1, false, true], [1, 1, false, false], [0, 0, false, false], [15, 14, false, true], [14, 15, false, false],
      [0, 5, true, true], [1, 15, true, true],
    ];
    for (const [prio, tpr, ign, taken] of cases) {
      const vm = newVm();
      vm.code('inc %esi\nhlt');
      vm.v.w64(V.VMCB_RFLAGS, 0x202);
      virq(vm, 0x41, prio, tpr, ign);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect([prio, tpr, ign, rip(vm)]).toEqual([prio, tpr, ign, taken ? STUB(0x41) : GCODE + 1]);
      expect((vm.v.u32(V.VMCB_VINTR) & V.V_IRQ) !== 0).toBe(!taken); // still pending when not taken
    }
  });

  it('held while IF = 0; STI opens the window after the next instruction (the STI shadow)', () => {
    const vm = newVm();
    // 0 inc esi, 1 inc esi, 2 sti, 3 inc edi, 4 inc edi, 5 hlt
    vm.code('inc %esi\ninc %esi\nsti\ninc %edi\ninc %edi\nhlt');
    virq(vm, 0x41, 0, 0, true);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x41));
    expect(frame(vm, 1)).toEqual([GCODE + 4]);
    expect([vm.cpu.r[ESI], vm.cpu.r[EDI]]).toEqual([2, 1]);
  });

  it('POPF that sets IF opens no shadow: taken right after it', () => {
    const vm = newVm();
    // 0 inc esi, 1 push $0x202 (5 bytes), 6 popf, 7 inc edi, 8 hlt
    vm.code('inc %esi\npush $0x202\npopf\ninc %edi\nhlt');
    virq(vm, 0x41, 0, 0, true);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x41));
    expect(frame(vm, 1)).toEqual([GCODE + 7]);
    expect(vm.cpu.r[EDI]).toBe(0);
  });

  it('the VINTR intercept as an interrupt window: exit when the guest could take it, V_IRQ still pending; the VMM injects', () => {
    const vm = newVm();
    // 0 inc esi, 1 sti, 2 inc edi, 3 inc edi, 4 hlt
    vm.code('inc %esi\nsti\ninc %edi\ninc %edi\nhlt');
    icpt3(vm, V.IC3_VINTR);
    virq(vm, 0x41, 0, 0, true);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_VINTR);
    expect(rip(vm)).toBe(GCODE + 3);
    expect(vm.cpu.r[EDI]).toBe(1);
    expect(vm.v.u32(V.VMCB_VINTR) & V.V_IRQ).toBe(V.V_IRQ);
    expect(vm.v.u32(V.VMCB_NRIP)).toBe(0);
    expect(exitIntInfo(vm)).toEqual([0, 0]);
    expect(vm.v.u32(V.VMCB_INT_STATE)).toBe(0);
    // the VMM closes the window and injects the interrupt itself
    vm.v.w32(V.VMCB_INTERCEPTS3, vm.v.u32(V.VMCB_INTERCEPTS3) & ~V.IC3_VINTR);
    vm.v.w32(V.VMCB_VINTR, 0);
    inject(vm, V.EVT_INTR, 0x41);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x41));
    expect(frame(vm, 1)).toEqual([GCODE + 3]);
  });

  it('a physical interrupt is taken before a pending virtual one', () => {
    const vm = newVm();
    vm.code('hlt');
    vm.v.w64(V.VMCB_RFLAGS, 0x202);
    virq(vm, 0x41, 0, 0, true);
    vm.pic.pending = 0x31;
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(STUB(0x31));
    expect(vm.v.u32(V.VMCB_VINTR) & V.V_IRQ).toBe(V.V_IRQ);
  });
});

run('the interrupt shadow in the VMCB (INTERRUPT_SHADOW)', () => {
  it('saved on an exit from the instruction after STI or MOV SS, clear one instruction later', () => {
    const cases: [string, number, number, number][] = [
      ['sti\nhlt', 0x2, GCODE + 1, 1],
      ['sti\nnop\nhlt', 0x2, GCODE + 2, 0],
      ['mov %ss, %eax\nmov %eax, %ss\nhlt', 0x202, GCODE + 4, 1],
      ['mov %ss, %eax\nmov %eax, %ss\nnop\nhlt', 0x202, GCODE + 5, 0],
      ['sti\nhlt', 0x202, GCODE + 1, 0], // STI with IF already set: no shadow
    ];
    for (const [src, flags, at, shadow] of cases) {
      const vm = newVm();
      vm.code(src);
      vm.v.w64(V.VMCB_RFLAGS, flags);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect([src, rip(vm), vm.v.u32(V.VMCB_INT_STATE)]).toEqual([src, at, shadow]);
    }
  });

  it('STI; HLT with a virtual interrupt pending: the HLT exit comes first, shadow set, V_IRQ still pending', () => {
    const vm = newVm();
    vm.code('sti\nhlt');
    virq(vm, 0x41, 0, 0, true);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect([rip(vm), vm.v.u32(V.VMCB_INT_STATE), vm.v.u32(V.VMCB_VINTR) & V.V_IRQ]).toEqual([GCODE + 1, 1, V.V_IRQ]);
    // the VMM skips the HLT and clears the shadow as it does so: the interrupt comes at once
    vm.v.w64(V.VMCB_RIP, GCODE + 2);
    vm.v.w32(V.VMCB_INT_STATE, 0);
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect([rip(vm), frame(vm, 1)[0]]).toEqual([STUB(0x41), GCODE + 2]);
  });

  it('honoured at VMRUN: the first guest instruction runs before a pending interrupt', () => {
    for (const shadow of [0, 1]) {
      const vm = newVm();
      vm.code('inc %esi\nhlt');
      vm.v.w64(V.VMCB_RFLAGS, 0x202);
      vm.v.w32(V.VMCB_INT_STATE, shadow);
      virq(vm, 0x41, 0, 0, true);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect([shadow, rip(vm), vm.cpu.r[ESI], frame(vm, 1)[0]]).toEqual([shadow, STUB(0x41), shadow, GCODE + shadow]);
    }
  });

  it('MOV SS delays a physical interrupt that arrives during it by one instruction', () => {
    // 0 mov %ss,%eax (2), 2 inc esi, 3 mov %eax,%ss (2), 5 inc edi, 6 inc edi, 7 hlt
    for (const [raiseAt, pushed] of [[GCODE + 3, GCODE + 6], [GCODE + 2, GCODE + 3]]) {
      const vm = newVm();
      vm.code('mov %ss, %eax\ninc %esi\nmov %eax, %ss\ninc %edi\ninc %edi\nhlt');
      vm.v.w64(V.VMCB_RFLAGS, 0x202);
      vm.cpu.tracer = (c) => { if (c.insnEip === raiseAt) vm.pic.raise(c, 0x31); };
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect([raiseAt, rip(vm), frame(vm, 1)[0]]).toEqual([raiseAt, STUB(0x31), pushed]);
      expect(vm.pic.acks).toBe(1);
    }
  });
});

// =============================================================================== TSC_OFFSET

run('TSC_OFFSET', () => {
  it("the guest's RDTSC reads the host's TSC (cycles + the host's own offset) plus TSC_OFFSET; the host's offset comes back", () => {
    for (const [lo, hi] of [[0, 0x1234], [0, 0xffffff00], [0x89abcdef, 0]]) {
      const vm = newVm();
      vm.code('rdtsc\nhlt');
      vm.cpu.tscOffset = 1_000_000_000; // as after the host's WRMSR to the TSC
      vm.v.w64hl(V.VMCB_TSC_OFFSET, lo, hi);
      const off = (BigInt(hi) << 32n) | BigInt(lo);
      const t0 = BigInt(vm.cpu.cycles + vm.cpu.tscOffset);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      const t1 = BigInt(vm.cpu.cycles + vm.cpu.tscOffset);
      const guest = (BigInt(vm.cpu.r[2] >>> 0) << 32n) | BigInt(vm.v.u32(V.VMCB_RAX));
      const host = (guest - off) & 0xffffffffffffffffn; // modulo 2^64
      expect(host >= t0 && host <= t1).toBe(true);
      expect(vm.cpu.tscOffset).toBe(1_000_000_000);
    }
  });
});

// =============================================================================== physical interrupts

run('physical interrupts while the guest runs', () => {
  const LOOP = '1: inc %esi\njmp 1b';

  it('INTR intercepted: #VMEXIT(INTR) at an instruction boundary, still pending; the host takes it right after the exit', () => {
    const vm = newVm();
    vm.code(LOOP);
    vm.v.w64(V.VMCB_RFLAGS, 0x202);
    icpt3(vm, V.IC3_INTR);
    let reentered = 0;
    vm.onTrap = (t) => {
      if (t.kind === TRAP_VMEXIT) {
        // at the exit the interrupt has not been acknowledged: it is still the PIC's
        expect(vm.pic.acks).toBe(0);
        expect(vm.pic.hasInterrupt()).toBe(true);
        return; // the host stays in host mode: the core delivers the interrupt to it
      }
      expect(t.kind).toBe(TRAP_INTERRUPT);
      reentered++;
      vm.enter();
      vm.cpu.requestStop();
    };
    vm.enter();
    vm.cpu.run(vm.cpu.cycles + 20_000);
    const spun = vm.cpu.r[ESI];
    expect(spun).toBeGreaterThan(10);
    vm.pic.raise(vm.cpu, 0x31);
    vm.cpu.run(vm.cpu.cycles + 20_000);
    expect(vm.traps.map((t) => [t.kind, t.vector])).toEqual([[TRAP_VMEXIT, V.EXIT_INTR], [TRAP_INTERRUPT, 0x31]]);
    expect(vm.traps[1].icount).toBe(vm.traps[0].icount); // no instruction between the exit and the host's interrupt
    expect(vm.pic.acks).toBe(1);
    expect([GCODE, GCODE + 1]).toContain(rip(vm));
    expect(exitIntInfo(vm)).toEqual([0, 0]);
    expect(vm.v.u32(V.VMCB_NRIP)).toBe(0);
    expect(reentered).toBe(1);
    // the guest goes on where it was
    expect(vm.cpu.guest).toBe(true);
    vm.cpu.run(vm.cpu.cycles + 20_000);
    expect(vm.cpu.r[ESI]).toBeGreaterThan(spun + 10);
  });

  it('with V_INTR_MASKING = 0 the guest\'s IF = 0 masks it (no exit until STI + one instruction); with V_INTR_MASKING = 1 it does not', () => {
    const src = '1: inc %esi\ncmp $100, %esi\njb 1b\nsti\nnop\nnop\nhlt';
    // offsets: 0 inc, 1 cmp (3), 4 jb (2), 6 sti, 7 nop, 8 nop, 9 hlt
    for (const masking of [false, true]) {
      const vm = newVm();
      vm.code(src);
      icpt3(vm, V.IC3_INTR);
      if (masking) vm.v.w32(V.VMCB_VINTR, V.V_INTR_MASKING);
      vm.pic.pending = 0x31;
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_INTR);
      expect([masking, vm.cpu.r[ESI], rip(vm)]).toEqual(masking ? [true, 0, GCODE] : [false, 100, GCODE + 8]);
      expect(vm.pic.acks).toBe(0);
    }
  });

  it('not intercepted: through the guest IDT (acknowledged there) once IF = 1; the guest completes', () => {
    const vm = newVm();
    vm.code('inc %esi\ninc %esi\nsti\nnop\nhlt\n.org 0x100\ninc %edi\niret');
    gate(vm.mem, 0x31, { off: GCODE + 0x100 });
    vm.pic.pending = 0x31;
    const ints = vm.cpu.stats.interrupts;
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect(rip(vm)).toBe(GCODE + 4);
    expect([vm.cpu.r[ESI], vm.cpu.r[EDI], vm.pic.acks]).toEqual([2, 1, 1]);
    expect(vm.cpu.stats.interrupts).toBe(ints + 1);
    expect(vm.traps.map((t) => t.vector)).toEqual([V.EXIT_HLT]);
  });

  it('NMI: intercepted, #VMEXIT(NMI) with the NMI still pending; not intercepted, through the guest\'s vector 2', () => {
    let vm = newVm();
    vm.code('inc %esi\nhlt');
    icpt3(vm, V.IC3_NMI);
    vm.cpu.nmiPending = true;
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_NMI);
    expect([rip(vm), vm.cpu.nmiPending, vm.v.u32(V.VMCB_NRIP)]).toEqual([GCODE, true, 0]);

    vm = newVm();
    vm.code('inc %esi\nhlt');
    vm.cpu.nmiPending = true;
    vm.enter();
    expect(vm.runToExit()).toBe(V.EXIT_HLT);
    expect([rip(vm), vm.cpu.nmiPending]).toEqual([STUB(2), false]);
    expect(frame(vm, 1)).toEqual([GCODE]);
  });

  it('a halted guest (HLT not intercepted) wakes for an interrupt it takes, and for an intercepted one', () => {
    for (const intercept of [false, true]) {
      const vm = newVm();
      vm.code('sti\nhlt\ninc %esi\n1: jmp 1b\n.org 0x100\niret');
      gate(vm.mem, 0x31, { off: GCODE + 0x100 });
      vm.v.w32(V.VMCB_INTERCEPTS3, V.IC3_SHUTDOWN | (intercept ? V.IC3_INTR : 0));
      vm.enter();
      vm.cpu.run(vm.cpu.cycles + 10_000);
      expect(vm.cpu.state).toBe(1); // HALTED in the guest
      vm.pic.raise(vm.cpu, 0x31);
      if (intercept) {
        expect(vm.runToExit()).toBe(V.EXIT_INTR);
        expect(rip(vm)).toBe(GCODE + 2); // after the HLT
      } else {
        vm.cpu.run(vm.cpu.cycles + 10_000);
        expect([vm.pic.acks, vm.cpu.r[ESI]]).toEqual([1, 1]);
      }
    }
  });
});
