// The host-trap execution model (DESIGN.md, "The hardware line and the execution model"): with
// cpu.host set, a ring-3 program's INT n, SYSENTER, exceptions and external interrupts call the
// host handler with a TrapRecord instead of going through the IDT; the handler may change the
// registers (or the page tables) and the core continues from whatever state it leaves. An
// interrupt ends host idle (HLT at CPL 0, or cpu.idle() from the handler) with one TRAP_IDLE.
import { describe, expect, it } from 'vitest';
import {
  Cpu, HALTED, type InterruptController, TRAP_EXCEPTION, TRAP_IDLE, TRAP_INTERRUPT, TRAP_SOFTINT, TRAP_SYSENTER, type TrapRecord,
} from '../../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { assemble, haveAssembler } from './bare.ts';
import { AR_CODE0, AR_DATA0, enablePaging, enterUser, ORG, Paging32, r32, setupTables, USER_STACK, w32 } from './sysenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

/** The program's way to say it is done: INT 0x81, on which the test's handler idles the core. */
const DONE = 'int $0x81';
const PD = 0x100000;

class FakeIntc implements InterruptController {
  pending = -1;
  acks = 0;
  hasInterrupt(): boolean { return this.pending >= 0; }
  acknowledge(): number { const v = this.pending; this.pending = -1; this.acks++; return v; }
  raise(cpu: Cpu, vec: number): void { this.pending = vec; cpu.interruptChanged(); }
}

interface Seen extends TrapRecord { regs: number[]; cpl: number; esp: number }

interface HostRun {
  cpu: Cpu;
  mem: PhysMem;
  pt: Paging32;
  traps: Seen[];
  pic: FakeIntc;
  /** Runs until the core idles with nothing pending (or the budget ends). */
  go(): void;
}

/**
 * A ring-3 process under a host handler: identity-mapped user pages for the low 2 MiB (code at
 * ORG, stack below USER_STACK), paging on, no IDT in use. `onTrap` is the kernel's handler; it
 * sees each record after the test has copied it, and by default a DONE idles the core.
 */
function host(src: string, onTrap: (cpu: Cpu, t: TrapRecord, h: HostRun) => void = () => {}, user = true): HostRun {
  const mem = new PhysMem(16 << 20);
  const cpu = new Cpu({ mem });
  mem.writeBytes(ORG, assemble(`.code32\n${src}\n`, ORG));
  setupTables(cpu, mem);
  const pt = new Paging32(mem, PD);
  pt.identity(0, 0x200000, 7);
  enablePaging(cpu, PD);
  if (user) enterUser(cpu, ORG);
  else {
    cpu.setCpl(0);
    cpu.loadSegCache(CS, 0x08, 0, 0xffffffff, AR_CODE0);
    for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0x10, 0, 0xffffffff, AR_DATA0);
    cpu.eip = ORG; cpu.r[4] = ORG;
  }
  const pic = new FakeIntc();
  cpu.intc = pic;
  const h: HostRun = {
    cpu, mem, pt, pic, traps: [],
    go() {
      for (let k = 0; k < 20 && cpu.cycles < 1_000_000; k++) {
        cpu.run(cpu.cycles + 100_000);
        if (cpu.state === HALTED && !pic.hasInterrupt()) return;
      }
    },
  };
  cpu.host = {
    trap(c, t) {
      h.traps.push({ ...t, regs: Array.from(c.r.subarray(0, 8)), cpl: c.cpl, esp: c.r[4] >>> 0 });
      if (t.kind === TRAP_SOFTINT && t.vector === 0x81) { c.idle(); return; }
      onTrap(c, t, h);
    },
  };
  return h;
}

const rec = (s: Seen) => ({ kind: s.kind, vector: s.vector, errorCode: s.errorCode, eip: s.eip });

run('host traps', () => {
  it('INT 0x80: TRAP_SOFTINT, EIP of the next instruction; the handler returns a value in EAX', () => {
    const h = host(`
      mov $1, %eax
      .org 0x100, 0x90
      int $0x80
      mov %eax, %ebx
      ${DONE}
    `, (cpu, t) => { if (t.vector === 0x80) cpu.r[0] = 42; });
    h.go();
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_SOFTINT, vector: 0x80, errorCode: -1, eip: ORG + 0x102 });
    expect(h.traps[0].cpl).toBe(3);
    expect(h.traps[0].esp).toBe(USER_STACK);        // nothing was pushed
    expect(r32(h.mem, USER_STACK - 4)).toBe(0);
    expect(h.cpu.r[3]).toBe(42);
    expect(h.traps).toHaveLength(2);
  });

  it('INT3 is a software interrupt too, with the next EIP', () => {
    const h = host(`.org 0x100, 0x90\nint3\n${DONE}`);
    h.go();
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_SOFTINT, vector: 3, errorCode: -1, eip: ORG + 0x101 });
  });

  it('SYSENTER: TRAP_SYSENTER with the next EIP and the program\'s registers, whatever the MSRs hold', () => {
    const h = host(`
      mov $0x1234, %ebp
      .org 0x100, 0x90
      sysenter
      mov %eax, %ebx
      ${DONE}
    `, (cpu, t) => { if (t.kind === TRAP_SYSENTER) cpu.r[0] = 7; });
    h.go();
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_SYSENTER, vector: -1, errorCode: -1, eip: ORG + 0x102 });
    expect(h.traps[0].regs[5]).toBe(0x1234);
    expect([h.traps[0].cpl, h.traps[0].esp]).toEqual([3, USER_STACK]);
    expect(h.cpu.r[3]).toBe(7);
  });

  it('#PF: TRAP_EXCEPTION with the error code, CR2 and the faulting EIP; the handler maps the page and the access restarts', () => {
    const h = host(`
      .org 0x100, 0x90
      mov 0x400010, %ebx
      ${DONE}
    `, (_cpu, t, hr) => {
      if (t.kind === TRAP_EXCEPTION && t.vector === 14) { hr.pt.map(0x400000, 0x300000, 7); w32(hr.mem, 0x300010, 0xfeed); }
    });
    h.go();
    expect(h.traps[0]).toMatchObject({ kind: TRAP_EXCEPTION, vector: 14, errorCode: 4, cr2: 0x400010, eip: ORG + 0x100 });
    expect(h.cpu.r[3]).toBe(0xfeed);
    expect(h.traps).toHaveLength(2);
  });

  it('#GP: TRAP_EXCEPTION with error code 0 at the faulting instruction; the handler skips it', () => {
    const h = host(`
      .org 0x100, 0x90
      mov %cr0, %eax
      mov $5, %ebx
      ${DONE}
    `, (cpu, t) => { if (t.vector === 13) cpu.eip = t.eip + 3; });
    h.go();
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_EXCEPTION, vector: 13, errorCode: 0, eip: ORG + 0x100 });
    expect(h.cpu.r[3]).toBe(5);
  });

  it('a #PF on an instruction fetch reports the fetched EIP', () => {
    const h = host('mov $0x500000, %eax\njmp *%eax', (cpu) => cpu.idle());
    h.go();
    expect(h.traps[0]).toMatchObject({ kind: TRAP_EXCEPTION, vector: 14, errorCode: 4, cr2: 0x500000, eip: 0x500000 });
  });

  it('an external interrupt: TRAP_INTERRUPT with the EIP of the next instruction to run, even with IF = 0', () => {
    const h = host(`
      .org 0x100, 0x90
      inc %ebx
      inc %ebx
      inc %ebx
      ${DONE}
    `);
    h.cpu.tracer = (c) => { if (c.insnEip === ORG + 0x100 && h.pic.acks === 0) h.pic.raise(c, 0x20); };
    h.go();
    expect(h.cpu.getEflags() & 0x200).toBe(0);
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_INTERRUPT, vector: 0x20, errorCode: -1, eip: ORG + 0x101 });
    expect(h.traps[0].regs[3]).toBe(1);
    expect(h.cpu.r[3]).toBe(3);                      // nothing skipped, nothing repeated
  });

  it('MOV SS: an interrupt arriving with it is taken after the next instruction', () => {
    const h = host(`
      mov %ss, %ax
      .org 0x100, 0x90
      mov %ax, %ss
      inc %ebx
      inc %ebx
      ${DONE}
    `);
    h.cpu.tracer = (c) => { if (c.insnEip === ORG + 0x100 && h.pic.acks === 0) h.pic.raise(c, 0x20); };
    h.go();
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_INTERRUPT, vector: 0x20, errorCode: -1, eip: ORG + 0x103 });
    expect(h.traps[0].regs[3]).toBe(1);
  });

  it('HLT at CPL 0 idles; an interrupt wakes it with one TRAP_IDLE carrying the vector', () => {
    const h = host(`
      mov $1, %ebx
      hlt
      mov $2, %ebx
      ${DONE}
    `, () => {}, false);
    h.go();
    expect(h.cpu.state).toBe(HALTED);
    expect(h.traps).toHaveLength(0);
    expect(h.cpu.r[3]).toBe(1);
    h.pic.raise(h.cpu, 0x31);
    h.go();
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_IDLE, vector: 0x31, errorCode: -1, eip: ORG + 6 });
    expect(h.pic.acks).toBe(1);
    expect(h.traps[1].vector).toBe(0x81);            // no TRAP_INTERRUPT in between
    expect(h.cpu.r[3]).toBe(2);
  });

  it('the handler idles the core from a trap (a blocked process): the next interrupt is a TRAP_IDLE, then the process resumes', () => {
    const h = host(`
      .org 0x100, 0x90
      int $0x80
      mov $9, %ebx
      ${DONE}
    `, (cpu, t) => { if (t.vector === 0x80) cpu.idle(); });
    h.go();
    expect(h.traps).toHaveLength(1);
    h.pic.raise(h.cpu, 0x22);
    h.go();
    expect(rec(h.traps[1])).toEqual({ kind: TRAP_IDLE, vector: 0x22, errorCode: -1, eip: ORG + 0x102 });
    expect(h.cpu.r[3]).toBe(9);
  });

  it('HLT at CPL 3 is a #GP trap, not idle', () => {
    const h = host('.org 0x100, 0x90\nhlt', (cpu) => cpu.idle());
    h.go();
    expect(rec(h.traps[0])).toEqual({ kind: TRAP_EXCEPTION, vector: 13, errorCode: 0, eip: ORG + 0x100 });
  });
});
