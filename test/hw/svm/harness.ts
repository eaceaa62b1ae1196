// A small test VMM for SVM tests: the host handler of a bare core that enters a guest through
// vmrun(), handles the #VMEXITs a test does not care about, and hands the others to the test.
//
// The guest's world (all of it set up through the VMCB and guest memory, never by guest
// instructions, so that no intercept under test fires before the test's own code):
// - flat 32-bit protected mode at CPL 0 (or 3: `cpl: 3`, IOPL 3) or real mode (`mode: 'real'`),
//   paging off, ASID 1, the image at `base` (GUEST_BASE, or REAL_BASE = CS:0 in real mode);
// - a GDT at GDT_BASE: 0x08 code, 0x10 data (DPL 0), 0x18 TSS A (busy, loaded in TR), 0x20 TSS B
//   (available), 0x28 code and 0x30 data (DPL 3), 0x38 an LDT (LDT_BASE, three entries);
// - an IDT at IDT_BASE whose 256 interrupt gates (DPL 3) lead to stubs that report their vector
//   on port 0xE8 ("delivered in the guest"), which ends the run; `setgate vec, label` (a macro
//   every guest source gets) points a gate at the guest's own handler;
// - port 0xE9 is a console (bytes collected in `out`) and port 0xF4 isa-debug-exit (`done v`
//   ends the run with status v). Only these three ports are intercepted (IOPM), unless a test
//   sets more bits.
//
// Exits other than those three ports are recorded in `exits` and passed to `onExit`, which says
// what happens next: 'stop' (the default), 'skip' (resume at nRIP: the VMM emulated the
// instruction) or 'resume' (re-enter at RIP, after the test changed the VMCB, e.g. removed the
// intercept so the instruction now runs natively).
//
// The instruction under test sits at a fixed offset: sources write `.org AT, 0x90` before it (the
// gap is filled with NOPs), so its address is `vmm.t` = base + AT.
import { describe, expect } from 'vitest';
import { Cpu, TRAP_VMEXIT } from '../../../hw/cpu/cpu.ts';
import { vmrun } from '../../../hw/cpu/svm.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { assemble, haveAssembler } from '../cpu/bare.ts';

/** describe, or describe.skip when GNU as is missing (never under CI). */
export const suite = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

export const GUEST_BASE = 0x100000, REAL_BASE = 0x30000;
export const VMCB = 0x10000, IOPM = 0x20000, MSRPM = 0x24000;
export const GDT_BASE = 0x8000, IDT_BASE = 0x8800, TSS_A = 0x9000, TSS_B = 0x9100, LDT_BASE = 0x9200, STUBS = 0xa000;
export const GUEST_RSP = 0x90000, RING0_RSP = 0x80000;
/** Offset of the instruction under test in the image (`.org AT, 0x90`). */
export const AT = 0x200;
export const PORT_DELIVERED = 0xe8, PORT_CONSOLE = 0xe9, PORT_EXIT = 0xf4;

/** Selectors of the harness GDT. */
export const SEL = { code: 0x08, data: 0x10, tssA: 0x18, tssB: 0x20, code3: 0x2b, data3: 0x33, ldt: 0x38 } as const;

/** One #VMEXIT as the VMCB reports it. */
export interface Exit {
  code: number;
  info1: number; info1Hi: number;
  info2: number; info2Hi: number;
  rip: number; nrip: number;
  intInfo: number; intInfoErr: number;
}

export type ExitAction = 'stop' | 'skip' | 'resume';

export interface GuestOptions {
  /** Intercept vectors (IC4_VMRUN is always added, as VMRUN requires). */
  cr?: number; dr?: number; exc?: number; ic3?: number; ic4?: number;
  mode?: 'flat32' | 'real';
  cpl?: 0 | 3;
  /** Extra VMCB, memory or register setup before the first VMRUN. */
  setup?: (vmm: TestVmm) => void;
  /** What to do with an exit the harness does not handle itself (default: 'stop'). */
  onExit?: (e: Exit, vmm: TestVmm) => ExitAction;
  maxCycles?: number;
}

/** Descriptor (low, high dwords) of a segment or system descriptor. */
function desc(base: number, limit: number, access: number, flags: number): [number, number] {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const hi = (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8) | ((base >>> 16) & 0xff);
  return [lo >>> 0, hi >>> 0];
}

/** Assembler prologue every guest gets: the layout constants and the `setgate` and `done` macros. */
function prologue(real: boolean): string {
  return `
  ${real ? '.code16' : '.code32'}
  .set AT, ${AT}
  .set IDT, ${IDT_BASE}
  .set GDT, ${GDT_BASE}
  .set TSS_A, ${TSS_A}
  .set TSS_B, ${TSS_B}
  .macro setgate vec, handler
    movl $\\handler, %eax
    movw %ax, IDT + \\vec * 8
    shrl $16, %eax
    movw %ax, IDT + \\vec * 8 + 6
  .endm
  .macro done v
    movb $\\v, %al
    outb %al, $${PORT_EXIT}
    jmp .
  .endm
`;
}

export class TestVmm {
  readonly mem = new PhysMem(4 << 20);
  readonly cpu = new Cpu({ mem: this.mem });
  readonly v = new V.VmcbView(this.mem, VMCB);
  readonly base: number;
  /** Exits handed to the test, in order. */
  readonly exits: Exit[] = [];
  /** Bytes the guest wrote to the console port. */
  out = '';
  /** isa-debug-exit value, or null. */
  status: number | null = null;
  /** Vector a default IDT stub reported (an event delivered in the guest), or null. */
  delivered: number | null = null;
  /** True once the run ended by the guest or the test (not by running out of cycles). */
  stopped = false;
  image: Uint8Array = new Uint8Array(0);

  constructor(readonly o: GuestOptions = {}) {
    this.base = o.mode === 'real' ? REAL_BASE : GUEST_BASE;
  }

  /** The address of the instruction under test (`.org AT`). */
  get t(): number { return (this.o.mode === 'real' ? 0 : this.base) + AT; }

  /** A guest general register now: RAX and RSP from the VMCB, the others from the core. */
  reg(n: number): number {
    if (n === 0) return this.v.u32(V.VMCB_RAX);
    if (n === 4) return this.v.u32(V.VMCB_RSP);
    return this.cpu.r[n] >>> 0;
  }

  /** The last exit handed to the test. */
  get last(): Exit {
    const e = this.exits[this.exits.length - 1];
    if (e === undefined) throw new Error('no exit');
    return e;
  }

  /** Assembles and runs the guest until it stops; returns this. */
  run(src: string): this {
    const real = this.o.mode === 'real';
    this.image = assemble(prologue(real) + src, real ? 0 : this.base);
    this.mem.writeBytes(this.base, this.image);
    this.installTables();
    this.setupVmcb();
    this.o.setup?.(this);
    this.cpu.host = { trap: (c, t) => { if (t.kind !== TRAP_VMEXIT) throw new Error(`unexpected host trap ${t.kind}`); this.onVmexit(c); } };
    expect(vmrun(this.cpu, VMCB)).toBe(0);
    this.cpu.run(this.o.maxCycles ?? 5_000_000);
    return this;
  }

  private readExit(): Exit {
    const v = this.v;
    return {
      code: v.u32(V.VMCB_EXITCODE) | 0,
      info1: v.u32(V.VMCB_EXITINFO1), info1Hi: v.hi32(V.VMCB_EXITINFO1),
      info2: v.u32(V.VMCB_EXITINFO2), info2Hi: v.hi32(V.VMCB_EXITINFO2),
      rip: v.u32(V.VMCB_RIP), nrip: v.u32(V.VMCB_NRIP),
      intInfo: v.u32(V.VMCB_EXITINTINFO), intInfoErr: v.hi32(V.VMCB_EXITINTINFO),
    };
  }

  private onVmexit(c: Cpu): void {
    const e = this.readExit();
    let action: ExitAction;
    if (e.code === V.EXIT_IOIO && [PORT_DELIVERED, PORT_CONSOLE, PORT_EXIT].includes(e.info1 >>> 16)) {
      const port = e.info1 >>> 16, al = this.v.u32(V.VMCB_RAX) & 0xff;
      if (port === PORT_CONSOLE) { this.out += String.fromCharCode(al); action = 'skip'; }
      else if (port === PORT_EXIT) { this.status = al; action = 'stop'; }
      else { this.delivered = al; action = 'stop'; }
    } else {
      this.exits.push(e);
      action = this.o.onExit ? this.o.onExit(e, this) : 'stop';
    }
    if (action === 'stop') { this.stopped = true; c.idle(); return; }
    if (action === 'skip') this.v.w64(V.VMCB_RIP, e.nrip);
    expect(vmrun(c, VMCB)).toBe(0);
  }

  /** GDT, IDT with its stubs, the two TSSs and the LDT in guest memory. */
  private installTables(): void {
    const m = this.mem;
    const gdt: [number, number][] = [
      [0, 0],
      desc(0, 0xfffff, 0x9a, 0xc), desc(0, 0xfffff, 0x92, 0xc),
      desc(TSS_A, 0x67, 0x8b, 0), desc(TSS_B, 0x67, 0x89, 0),
      desc(0, 0xfffff, 0xfa, 0xc), desc(0, 0xfffff, 0xf2, 0xc),
      desc(LDT_BASE, 0x17, 0x82, 0),
    ];
    gdt.forEach(([lo, hi], k) => { m.write(GDT_BASE + 8 * k, 4, lo); m.write(GDT_BASE + 8 * k + 4, 4, hi); });
    for (let vec = 0; vec < 256; vec++) {
      const stub = STUBS + 8 * vec;
      m.writeBytes(stub, new Uint8Array([0xb0, vec, 0xe6, PORT_DELIVERED, 0xeb, 0xfe, 0x90, 0x90])); // mov al, vec; out 0xe8, al; jmp $
      m.write(IDT_BASE + 8 * vec, 4, ((SEL.code << 16) | (stub & 0xffff)) >>> 0);
      m.write(IDT_BASE + 8 * vec + 4, 4, ((stub & 0xffff0000) | 0xee00) >>> 0); // 32-bit interrupt gate, DPL 3
    }
    // TSS A (the running task): the ring-0 stack for CPL 3 guests; no I/O bitmap
    m.write(TSS_A + 4, 4, RING0_RSP); m.write(TSS_A + 8, 4, SEL.data); m.write(TSS_A + 0x66, 2, 0x68);
    // TSS B: a flat ring-0 task (a test stores its EIP at TSS_B + 0x20)
    m.write(TSS_B + 0x24, 4, 0x2); m.write(TSS_B + 0x38, 4, 0x70000);
    for (const [s, sel] of [[0, SEL.data], [1, SEL.code], [2, SEL.data], [3, SEL.data], [4, SEL.data], [5, SEL.data]]) {
      m.write(TSS_B + 0x48 + 4 * s, 2, sel);
    }
    m.write(TSS_B + 0x66, 2, 0x68);
    const [llo, lhi] = desc(0, 0xfffff, 0x92, 0xc);
    m.write(LDT_BASE + 8, 4, llo); m.write(LDT_BASE + 12, 4, lhi);
  }

  private setupVmcb(): void {
    const v = this.v, o = this.o, m = this.mem;
    v.w32(V.VMCB_CR_INTERCEPTS, o.cr ?? 0);
    v.w32(V.VMCB_DR_INTERCEPTS, o.dr ?? 0);
    v.w32(V.VMCB_EXC_INTERCEPTS, o.exc ?? 0);
    v.w32(V.VMCB_INTERCEPTS3, (o.ic3 ?? 0) | V.IC3_IOIO);
    v.w32(V.VMCB_INTERCEPTS4, (o.ic4 ?? 0) | V.IC4_VMRUN);
    v.w64(V.VMCB_IOPM_BASE, IOPM);
    v.w64(V.VMCB_MSRPM_BASE, MSRPM);
    for (const p of [PORT_DELIVERED, PORT_CONSOLE, PORT_EXIT]) m.write(IOPM + (p >>> 3), 1, m.read(IOPM + (p >>> 3), 1) | (1 << (p & 7)));
    v.w32(V.VMCB_ASID, 1);
    if (o.mode === 'real') {
      const seg = REAL_BASE >>> 4;
      for (const [k, s] of V.VMCB_SEGS.entries()) {
        v.w16(s, seg); v.w16(s + 2, k === 1 ? 0x9b : 0x93); v.w32(s + 4, 0xffff); v.w64(s + 8, REAL_BASE);
      }
      v.w32(V.VMCB_CR0, 0x10);
      v.w64(V.VMCB_EFER, 0x1000);
      v.w32(V.VMCB_IDTR + 4, 0x3ff); v.w64(V.VMCB_IDTR + 8, 0);
      v.w64(V.VMCB_RIP, 0); v.w64(V.VMCB_RSP, 0xfff0);
      v.w64(V.VMCB_RFLAGS, 0x2);
    } else {
      flatGuest(v, this.base, GUEST_RSP, o.cpl ?? 0);
      v.w32(V.VMCB_IDTR + 4, 0x7ff); v.w64(V.VMCB_IDTR + 8, IDT_BASE);
    }
    v.w32(V.VMCB_GDTR + 4, 8 * 8 - 1); v.w64(V.VMCB_GDTR + 8, GDT_BASE);
    v.w16(V.VMCB_TR, SEL.tssA); v.w16(V.VMCB_TR + 2, 0x8b); v.w32(V.VMCB_TR + 4, 0x67); v.w64(V.VMCB_TR + 8, TSS_A);
    v.w64(V.VMCB_DR6, 0xffff0ff0); v.w64(V.VMCB_DR7, 0x400);
  }
}

/**
 * The guest state of a flat 32-bit protected-mode guest, paging off, at `rip` with ESP = `rsp`:
 * segments 0x08 (code) and 0x10 (data) at CPL 0, or 0x2b and 0x33 at CPL 3 (with IOPL 3), base 0,
 * limit 4 GiB, as the harness GDT describes them; ASID and intercepts are the caller's.
 */
export function flatGuest(v: V.VmcbView, rip: number, rsp: number, cpl: 0 | 3 = 0): void {
  const user = cpl === 3;
  for (const [k, s] of V.VMCB_SEGS.entries()) {
    const code = k === 1;
    const sel = code ? (user ? SEL.code3 : SEL.code) : (user ? SEL.data3 : SEL.data);
    v.w16(s, sel); v.w16(s + 2, code ? (user ? 0xcfb : 0xc9b) : (user ? 0xcf3 : 0xc93)); v.w32(s + 4, 0xffffffff); v.w64(s + 8, 0);
  }
  v.w8(V.VMCB_CPL, cpl);
  v.w32(V.VMCB_CR0, 0x11);
  v.w64(V.VMCB_EFER, 0x1000); // SVME, as a guest's EFER has it
  v.w64(V.VMCB_RIP, rip); v.w64(V.VMCB_RSP, rsp);
  v.w64(V.VMCB_RFLAGS, user ? 0x3002 : 0x2);
}

/** Runs `src` as a guest with options `o`. */
export function runGuest(src: string, o: GuestOptions = {}): TestVmm {
  return new TestVmm(o).run(src);
}

/** The fields of an exit a test usually checks. */
export function exitFields(e: Exit): { code: number; info1: number; info1Hi: number; info2: number; info2Hi: number; rip: number; nrip: number } {
  return { code: e.code, info1: e.info1, info1Hi: e.info1Hi, info2: e.info2, info2Hi: e.info2Hi, rip: e.rip, nrip: e.nrip };
}

/**
 * Expects the run to have stopped at an exit with `code` at the instruction under test (RIP =
 * vmm.t, nRIP = vmm.t + len) with the given exit information (0 where not given).
 */
export function expectExitAt(vmm: TestVmm, code: number, len: number, info: Partial<Pick<Exit, 'info1' | 'info1Hi' | 'info2' | 'info2Hi'>> = {}): void {
  expect(vmm.stopped).toBe(true);
  expect(exitFields(vmm.last)).toEqual({
    code, info1: info.info1 ?? 0, info1Hi: info.info1Hi ?? 0, info2: info.info2 ?? 0, info2Hi: info.info2Hi ?? 0,
    rip: vmm.t, nrip: vmm.t + len,
  });
}

/** Expects the guest to have run to `done status` with no exit handed to the test. */
export function expectDone(vmm: TestVmm, status: number): void {
  expect({ exits: vmm.exits.map((e) => e.code.toString(16)), delivered: vmm.delivered, status: vmm.status })
    .toEqual({ exits: [], delivered: null, status });
}

/** Options `o` with an additional exception intercept of `vec` (to see a guest exception as exit 0x40 + vec). */
export function withExc(o: GuestOptions, vec: number): GuestOptions {
  return { ...o, exc: (o.exc ?? 0) | (1 << vec) };
}

/** Expects exception `vec` (error code `err`, none if undefined) to have exited at the instruction under test. */
export function expectExceptionAt(vmm: TestVmm, vec: number, err?: number): void {
  expect(vmm.stopped).toBe(true);
  const e = vmm.last;
  expect({ code: e.code, info1: e.info1, rip: e.rip }).toEqual({ code: V.EXIT_EXCP_BASE + vec, info1: err ?? 0, rip: vmm.t });
}
