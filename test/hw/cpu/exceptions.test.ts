// Event delivery on a bare core (hw/cpu/exceptions.ts and the loop in cpu.ts): interrupt and
// trap gates, error codes (with the IDT and EXT bits), stack switches from ring 3, the
// contributory/benign/page-fault classes that make a double fault, the triple fault that shuts
// the core down, #UD for an unimplemented opcode (counted by opcode), real-mode IVT delivery,
// and external interrupts with the STI and MOV SS interrupt shadows.
import { describe, expect, it } from 'vitest';
import { type Cpu, type InterruptController, SHUTDOWN } from '../../../hw/cpu/cpu.ts';
import { CS, SS } from '../../../hw/cpu/insn.ts';
import { assemble, haveAssembler, runBare } from './bare.ts';
import {
  enablePaging, excFrame, halted, IDT, ORG, Paging32, r32, RING0_STACK, runSys, SEL_DATA0, setGate, USER_EXIT, USER_STACK,
} from './sysenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

const IF = 0x200;
/** #GP(0x1230): a GDT selector (RPL 3) beyond the GDT limit, at ORG + 0x100. */
const BAD_DS = 'mov $0x1233, %ax\n .org 0x100, 0x90\n mov %ax, %ds\n cli\n hlt';

/** An interrupt controller with one pending vector at a time. */
class FakeIntc implements InterruptController {
  pending = -1;
  acks = 0;
  hasInterrupt(): boolean { return this.pending >= 0; }
  acknowledge(): number { const v = this.pending; this.pending = -1; this.acks++; return v; }
  raise(cpu: Cpu, vec: number): void { this.pending = vec; cpu.interruptChanged(); }
}

run('delivery through IDT gates', () => {
  it('an interrupt gate pushes EFLAGS, CS, EIP and the error code, and clears IF', () => {
    const r = runSys(`sti\n${BAD_DS}`);
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip, f.cs]).toEqual([13, 0x1230, ORG + 0x100, 0x08]);
    expect(f.eflags & IF).toBe(IF);
    expect(r.cpu.getEflags() & IF).toBe(0);
    expect(r.cpu.r[4]).toBe(ORG - 16);
  });

  it('a trap gate leaves IF set', () => {
    const r = runSys(`sti\n${BAD_DS}`, { setup: (_c, mem) => setGate(mem, 13, { type: 'trap' }) });
    const f = excFrame(r);
    expect([f.vector, f.err]).toEqual([13, 0x1230]);
    expect(r.cpu.getEflags() & IF).toBe(IF);
  });

  it('INT n pushes no error code and the EIP of the next instruction', () => {
    const r = runSys('.org 0x100, 0x90\nint $0x30\ncli\nhlt');
    const h = halted(r);
    expect(h.vector).toBe(0x30);
    expect(h.stack.slice(0, 2)).toEqual([ORG + 0x102, 0x08]);
    expect(r.cpu.r[4]).toBe(ORG - 12);
  });

  it('INT n at CPL 3 through a DPL-0 gate is #GP(vector * 8 + 2); a DPL-3 gate switches to the ring-0 stack', () => {
    const a = runSys('.org 0x100, 0x90\nint $0x30', { user: true });
    const h = halted(a);
    expect(h.vector).toBe(13);
    expect(h.stack.slice(0, 6)).toEqual([0x30 * 8 + 2, ORG + 0x100, 0x1b, h.stack[3], USER_STACK, 0x23]);
    const b = runSys(`.org 0x100, 0x90\nint $${USER_EXIT}`, { user: true });
    const g = halted(b);
    expect(g.vector).toBe(USER_EXIT);
    expect(g.stack.slice(0, 5)).toEqual([ORG + 0x102, 0x1b, g.stack[2], USER_STACK, 0x23]);
    expect(b.cpu.r[4]).toBe(RING0_STACK - 20);
    expect([b.cpu.segSel[CS], b.cpu.segSel[SS], b.cpu.cpl]).toEqual([0x08, 0x10, 0]);
  });

  it('an exception at CPL 3 pushes SS:ESP and the error code on the TSS ring-0 stack', () => {
    const r = runSys('.org 0x100, 0x90\nmov %cr0, %eax', { user: true });
    const h = halted(r);
    expect(h.vector).toBe(13);
    expect(h.stack.slice(0, 6)).toEqual([0, ORG + 0x100, 0x1b, h.stack[3], USER_STACK, 0x23]);
    expect(r.cpu.r[4]).toBe(RING0_STACK - 24);
  });

  it('a #PF at CPL 3 has the user bit in its error code and CR2 set', () => {
    const r = runSys('.org 0x100, 0x90\nmovl $1, 0x400000', {
      user: true,
      setup: (cpu, mem) => {
        const p = new Paging32(mem, 0x100000);
        p.identity(0, 0x200000, 7);
        enablePaging(cpu, 0x100000);
      },
    });
    const h = halted(r);
    expect(h.vector).toBe(14);
    expect(h.stack.slice(0, 2)).toEqual([6, ORG + 0x100]);
    expect(r.cpu.cr2).toBe(0x400000);
  });
});

run('exception classes and the double fault', () => {
  it('benign first: #UD through a not-present gate becomes #NP(IDT, EXT) and is delivered normally', () => {
    const r = runSys('.org 0x100, 0x90\nud2', { setup: (_c, mem) => setGate(mem, 6, { present: false }) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([11, 6 * 8 + 2 + 1, ORG + 0x100]);
  });

  it('benign first: #UD whose gate selects a data segment becomes #GP(selector, EXT)', () => {
    const r = runSys('.org 0x100, 0x90\nud2', { setup: (_c, mem) => setGate(mem, 6, { sel: SEL_DATA0 }) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([13, SEL_DATA0 | 1, ORG + 0x100]);
  });

  it('INT n through a not-present gate is #NP(vector * 8 + 2) without EXT', () => {
    const r = runSys('.org 0x100, 0x90\nint $0x30', { setup: (_c, mem) => setGate(mem, 0x30, { present: false }) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([11, 0x30 * 8 + 2, ORG + 0x100]);
  });

  it('contributory + contributory: #GP whose gate is not present (#NP) is a double fault with error code 0', () => {
    const r = runSys(BAD_DS, { setup: (_c, mem) => setGate(mem, 13, { present: false }) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip, f.cs]).toEqual([8, 0, ORG + 0x100, 0x08]);
    expect(r.cpu.r[4]).toBe(ORG - 16); // one frame: nothing of the failed deliveries stays pushed
  });

  it('contributory + contributory: #GP while delivering #GP (the gate selects a data segment) is a double fault', () => {
    const r = runSys(BAD_DS, { setup: (_c, mem) => setGate(mem, 13, { sel: SEL_DATA0 }) });
    expect(excFrame(r).vector).toBe(8);
    expect(excFrame(r).eip).toBe(ORG + 0x100);
  });

  // IDT base moved so that entries 0-13 lie on the page at 0x4000 and 14.. on the page at 0x5000
  const IDT2 = 0x4ff8 - 13 * 8;
  const splitIdt = (unmap: number) => (cpu: Cpu, mem: import('../../../hw/mem/physmem.ts').PhysMem) => {
    mem.u8.copyWithin(IDT2, IDT, IDT + 0x800);
    cpu.idtBase = IDT2;
    const p = new Paging32(mem, 0x100000);
    p.identity(0, 0x200000);
    p.unmap(unmap);
    enablePaging(cpu, 0x100000);
  };

  it('page fault + page fault: a #PF while reading the #PF gate is a double fault (CR2 of the second)', () => {
    const r = runSys('.org 0x100, 0x90\nmovl $1, 0x400000\ncli\nhlt', { setup: splitIdt(0x5000) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([8, 0, ORG + 0x100]);
    expect(r.cpu.cr2).toBe(0x5000);
  });

  it('page fault + contributory: #GP while delivering #PF is a double fault', () => {
    const r = runSys('.org 0x100, 0x90\nmovl $1, 0x400000\ncli\nhlt', {
      setup: (cpu, mem) => {
        new Paging32(mem, 0x100000).identity(0, 0x200000);
        enablePaging(cpu, 0x100000);
        setGate(mem, 14, { sel: SEL_DATA0 });
      },
    });
    expect(excFrame(r).vector).toBe(8);
    expect(r.cpu.cr2).toBe(0x400000);
  });

  it('contributory + page fault: handled serially, the #PF is delivered (no double fault)', () => {
    const r = runSys(BAD_DS, { setup: splitIdt(0x4000) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([14, 0, ORG + 0x100]);
    expect(r.cpu.cr2).toBe(0x4ff8);
  });

  it('a fault while delivering the double fault is a triple fault: the core shuts down and says why', () => {
    let reported = '';
    const r = runSys(BAD_DS, {
      setup: (cpu, mem) => {
        setGate(mem, 13, { present: false });
        setGate(mem, 8, { present: false });
        cpu.onShutdown = (_c, why) => { reported = why; };
      },
    });
    expect(r.end).toBe('shutdown');
    expect(r.cpu.state).toBe(SHUTDOWN);
    expect(r.cpu.shutdownReason).toMatch(/triple fault/);
    expect(r.cpu.shutdownReason).toContain((ORG + 0x100).toString(16));
    expect(reported).toBe(r.cpu.shutdownReason);
  });

  it('a frame that cannot be pushed (its lower part on a not-present page): #PF, #PF (#DF), #PF: shutdown, ESP intact', () => {
    // EFLAGS and CS fit on the page at 0x200000, EIP would go to the unmapped page below it
    const r = runSys('mov $0x200008, %esp\n .org 0x100, 0x90\nmovl $1, 0x400000\ncli\nhlt', {
      setup: (cpu, mem) => {
        const p = new Paging32(mem, 0x100000);
        p.identity(0, 0x1ff000);
        p.map(0x200000, 0x200000);
        enablePaging(cpu, 0x100000);
      },
    });
    expect(r.end).toBe('shutdown');
    expect(r.cpu.shutdownReason).toMatch(/triple fault/);
    expect(r.cpu.r[4]).toBe(0x200008);
    expect(r.cpu.cr2).toBe(0x1ffffc);
  });
});

run('#UD for unimplemented opcodes', () => {
  it('raises #UD at the opcode and counts it by opcode', () => {
    const r = runSys('.org 0x100, 0x90\n.byte 0x0f, 0x04');
    const h = halted(r);
    expect(h.vector).toBe(6);
    expect(h.stack[0]).toBe(ORG + 0x100);
    expect([...r.cpu.unimplemented]).toEqual([[0x0f04, 1]]);
  });
});

run('real mode: the IVT', () => {
  const realProg = (body: string) => assemble(`
    .code16
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7000, %sp
    movw $0x7e00, 0x21*4
    movw $0, 0x21*4+2
    movw $0x7e10, 6*4
    movw $0, 6*4+2
    sti
    .org 0x100, 0x90
    ${body}
    .org 0x200, 0x90
    hlt
    .org 0x210, 0x90
    hlt
  `, 0x7c00);
  const frame16 = (r: ReturnType<typeof runBare>) => {
    const sp = r.cpu.r[4] & 0xffff;
    return [0, 2, 4].map((o) => r.mem.read(sp + o, 2));
  };

  it('INT n takes CS:IP from the IVT, pushes FLAGS, CS, IP (of the next instruction) and clears IF', () => {
    const r = runBare(realProg('int $0x21\nhlt'), { org: 0x7c00, start: 'real' });
    expect(r.cpu.eip).toBe(0x7e01);
    expect(r.cpu.r[4] & 0xffff).toBe(0x7000 - 6);
    const [ip, cs, flags] = frame16(r);
    expect([ip, cs]).toEqual([0x7d02, 0]);
    expect(flags & IF).toBe(IF);
    expect(r.cpu.getEflags() & IF).toBe(0);
  });

  it('an exception pushes the IP of the faulting instruction', () => {
    const r = runBare(realProg('ud2'), { org: 0x7c00, start: 'real' });
    expect(r.cpu.eip).toBe(0x7e11);
    expect(frame16(r)[0]).toBe(0x7d00);
  });

  it('the IVT is where the IDTR points', () => {
    const r = runBare(realProg('int $0x21\nhlt'), {
      org: 0x7c00, start: 'real',
      setup: (cpu, mem) => { cpu.idtBase = 0x800; mem.write(0x800 + 0x21 * 4, 2, 0x7e10); },
    });
    expect(r.cpu.eip).toBe(0x7e11);
  });
});

run('external interrupts and the interrupt shadow', () => {
  const prog = `
    mov $1, %ebx
    .org 0x100, 0x90
    sti
    mov $2, %ebx
    mov $3, %ebx
    cli
    hlt
  `;
  it('an interrupt pending at STI is taken after the next instruction, not before; EIP is the next to run', () => {
    const pic = new FakeIntc();
    const r = runSys(prog, { setup: (cpu) => { cpu.intc = pic; pic.pending = 0x20; } });
    const h = halted(r);
    expect(h.vector).toBe(0x20);
    expect(r.cpu.r[3]).toBe(2);
    expect(h.stack.slice(0, 2)).toEqual([ORG + 0x101 + 5, 0x08]); // sti (1) + mov (5)
    expect(pic.acks).toBe(1);
  });

  it('while IF = 0 a pending interrupt waits', () => {
    const pic = new FakeIntc();
    const r = runSys('mov $3, %ebx\ncli\nhlt', { setup: (cpu) => { cpu.intc = pic; pic.pending = 0x20; } });
    expect(halted(r).vector).toBe(-1);
    expect(pic.acks).toBe(0);
  });

  it('STI; HLT: the interrupt wakes the core, with EIP after the HLT', () => {
    const pic = new FakeIntc();
    const r = runSys('.org 0x100, 0x90\nsti\nhlt\ncli\nhlt', { setup: (cpu) => { cpu.intc = pic; pic.pending = 0x21; } });
    const h = halted(r);
    expect(h.vector).toBe(0x21);
    expect(h.stack[0]).toBe(ORG + 0x102);
  });

  it('an interrupt arriving during MOV SS is taken after the next instruction', () => {
    const pic = new FakeIntc();
    const r = runSys(`
      sti
      mov %ss, %ax
      mov $1, %ebx
      .org 0x100, 0x90
      mov %ax, %ss
      mov $2, %ebx
      mov $3, %ebx
      cli
      hlt
    `, {
      setup: (cpu) => {
        cpu.intc = pic;
        cpu.tracer = (c) => { if (c.insnEip === ORG + 0x100 && pic.acks === 0) pic.raise(c, 0x22); };
      },
    });
    const h = halted(r);
    expect(h.vector).toBe(0x22);
    expect(r.cpu.r[3]).toBe(2);
    expect(h.stack[0]).toBe(ORG + 0x102 + 5);
  });

  it('an external interrupt whose gate is not present is #NP with EXT, at the interrupted instruction', () => {
    const pic = new FakeIntc();
    const r = runSys(prog, {
      setup: (cpu, mem) => { cpu.intc = pic; pic.pending = 0x20; setGate(mem, 0x20, { present: false }); },
    });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([11, 0x20 * 8 + 2 + 1, ORG + 0x106]);
  });

  it('an interrupt at CPL 3 switches to the ring-0 stack', () => {
    const pic = new FakeIntc();
    const r = runSys(`.org 0x100, 0x90\nmov $2, %ebx\nmov $3, %ebx\nint $${USER_EXIT}`, {
      user: true,
      setup: (cpu) => {
        cpu.intc = pic;
        cpu.setEflags(IF, IF);
        cpu.tracer = (c) => { if (c.insnEip === ORG + 0x100 && pic.acks === 0) pic.raise(c, 0x23); };
      },
    });
    const h = halted(r);
    expect(h.vector).toBe(0x23);
    expect(h.stack.slice(0, 5)).toEqual([ORG + 0x105, 0x1b, h.stack[2], USER_STACK, 0x23]);
    expect(r32(r.mem, RING0_STACK - 20)).toBe(ORG + 0x105);
  });
});

