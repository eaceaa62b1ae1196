// A small world for the SVM event, layout and ASID tests: one core with a TypeScript host handler
// (the "VMM"), a guest in flat 32-bit protected mode set up through the VMCB, and a step-wise
// way to run it: runToExit() runs the core until the next #VMEXIT and returns its code, so a
// test reads and edits the VMCB between exits as a VMM would.
//
// Guest memory (guest-physical = host-physical: no nested paging here):
//   0x401000 GDT: 0x08 ring-0 code, 0x10 ring-0 data, 0x18 ring-3 code, 0x20 ring-3 data, 0x28 TSS, 0x30 not-present data
//   0x402000 IDT: 256 DPL-0 interrupt gates, vector v -> STUB(v) = 0x403000 + 16v, whose first byte is HLT
//   0x405000 the guest's TSS (SS0:ESP0 = 0x10:RING0_STACK)
//   0x500000 guest code (GCODE); 0x5f0000 guest stack top; 0x5e0000 ring-0 stack top for ring-3 guests
//   0x600000 guest data (GDATA)
//   0x410000 / 0x411000 VMCBs; 0x412000 IOPM (12 KiB, all zero)
// With HLT intercepted (the default), an event delivered through a default gate ends in
// #VMEXIT(HLT) with RIP = STUB(vector) and RSP at the frame the CPU pushed.
import { Cpu, type InterruptController, RUNNING, TRAP_VMEXIT } from '../../../hw/cpu/cpu.ts';
import { vmrun } from '../../../hw/cpu/svm.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { assemble } from '../cpu/bare.ts';

export const GGDT = 0x401000, GIDT = 0x402000, GSTUBS = 0x403000, GTSS = 0x405000;
export const GCODE = 0x500000, GSTACK = 0x5f0000, RING0_STACK = 0x5e0000, GDATA = 0x600000;
export const VMCB = 0x410000, VMCB2 = 0x411000, IOPM = 0x412000;
export const SEL_CODE0 = 0x08, SEL_DATA0 = 0x10, SEL_CODE3 = 0x1b, SEL_DATA3 = 0x23, SEL_TSS = 0x28, SEL_NP = 0x30;
/** VMCB segment attributes (12-bit form: descriptor bits 47:40 and 55:52). */
export const VA_CODE0 = 0xc9b, VA_DATA0 = 0xc93, VA_CODE3 = 0xcfb, VA_DATA3 = 0xcf3, VA_TSS = 0x08b, VA_LDT = 0x082;

export const STUB = (vec: number): number => GSTUBS + vec * 16;

export function w32(mem: PhysMem, a: number, v: number): void { mem.write(a >>> 0, 4, v >>> 0); }
export function r32(mem: PhysMem, a: number): number { return mem.read(a >>> 0, 4); }

/** A GDT descriptor: base, byte-granular or page-granular limit (flags nibble G/D), access byte. */
export function gdtDesc(mem: PhysMem, sel: number, base: number, limit: number, access: number, flags: number): void {
  const a = GGDT + (sel & ~7);
  w32(mem, a, ((base & 0xffff) << 16) | (limit & 0xffff));
  w32(mem, a + 4, (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff));
}

export interface Gate { type?: 'int' | 'trap'; dpl?: number; present?: boolean; sel?: number; off?: number; raw?: number }

/** Writes guest IDT entry `vec` (default: present DPL-0 32-bit interrupt gate to STUB(vec)); `raw` sets the type byte. */
export function gate(mem: PhysMem, vec: number, o: Gate = {}): void {
  const off = o.off ?? STUB(vec);
  const sel = o.sel ?? SEL_CODE0;
  const type = o.raw ?? (((o.present ?? true) ? 0x80 : 0) | ((o.dpl ?? 0) << 5) | (o.type === 'trap' ? 0xf : 0xe));
  w32(mem, GIDT + vec * 8, (sel << 16) | (off & 0xffff));
  w32(mem, GIDT + vec * 8 + 4, (off & 0xffff0000) | (type << 8));
}

export interface Trap { kind: number; vector: number; eip: number; icount: number }

/** A fake interrupt controller: one pending vector at a time, counting INTA cycles. */
export class FakePic implements InterruptController {
  pending = -1;
  acks = 0;
  hasInterrupt(): boolean { return this.pending >= 0; }
  acknowledge(): number { const v = this.pending; this.pending = -1; this.acks++; return v; }
  raise(cpu: Cpu, vec: number): void { this.pending = vec; cpu.interruptChanged(); }
}

export interface Vm {
  mem: PhysMem;
  cpu: Cpu;
  /** The VMCB at VMCB. */
  v: V.VmcbView;
  pic: FakePic;
  /** Every host trap, in order. */
  traps: Trap[];
  /**
   * Called for each host trap after it is recorded. Default: a #VMEXIT stops the run (so
   * runToExit returns); anything else is an error.
   */
  onTrap: (t: Trap) => void;
  /** Assembles 32-bit guest code at `org` (default GCODE) and writes it; returns the image. */
  code(src: string, org?: number): Uint8Array;
  /** Runs the core until the next #VMEXIT (or `budget` cycles); returns the exit code (or null). */
  runToExit(budget?: number): number | null;
  /** vmrun() of the VMCB at `pa` (default VMCB); expects the guest to be entered. */
  enter(pa?: number): void;
}

/** Builds the guest's tables and a VMCB for flat ring-0 protected mode at GCODE, HLT and SHUTDOWN intercepted. */
export function newVm(): Vm {
  const mem = new PhysMem(16 << 20);
  const cpu = new Cpu({ mem });
  const pic = new FakePic();
  cpu.intc = pic;
  gdtDesc(mem, SEL_CODE0, 0, 0xfffff, 0x9b, 0xc);
  gdtDesc(mem, SEL_DATA0, 0, 0xfffff, 0x93, 0xc);
  gdtDesc(mem, SEL_CODE3, 0, 0xfffff, 0xfb, 0xc);
  gdtDesc(mem, SEL_DATA3, 0, 0xfffff, 0xf3, 0xc);
  gdtDesc(mem, SEL_TSS, GTSS, 0x67, 0x8b, 0);
  gdtDesc(mem, SEL_NP, 0, 0xfffff, 0x13, 0xc); // data, not present
  w32(mem, GTSS + 4, RING0_STACK); w32(mem, GTSS + 8, SEL_DATA0);
  for (let vec = 0; vec < 256; vec++) {
    mem.write(STUB(vec), 1, 0xf4); // hlt
    mem.write(STUB(vec) + 1, 1, 0xcf); // iret
    gate(mem, vec);
  }
  const v = new V.VmcbView(mem, VMCB);
  defaultVmcb(v);
  const traps: Trap[] = [];
  const vm: Vm = {
    mem, cpu, v, pic, traps,
    onTrap(t) {
      if (t.kind !== TRAP_VMEXIT) throw new Error(`unexpected host trap kind ${t.kind} vector 0x${t.vector.toString(16)}`);
      cpu.requestStop();
    },
    code(src, org = GCODE) {
      const img = assemble(`.code32\n${src}\n`, org);
      mem.writeBytes(org, img);
      return img;
    },
    runToExit(budget = 2_000_000) {
      const exits = (): Trap[] => traps.filter((t) => t.kind === TRAP_VMEXIT);
      const n = exits().length;
      const end = cpu.cycles + budget;
      while (cpu.cycles < end && exits().length === n && cpu.guest) {
        const before = cpu.cycles;
        cpu.run(Math.min(end, cpu.cycles + 100_000));
        if (cpu.state !== RUNNING && cpu.cycles === before) break; // halted with nothing to wake it, or shut down
      }
      const all = exits();
      return all.length > n ? all[all.length - 1].vector : null;
    },
    enter(pa = VMCB) {
      const r = vmrun(cpu, pa);
      if (r !== 0) throw new Error(`vmrun failed: ${r}`);
    },
  };
  cpu.host = {
    trap(_c, t) {
      const rec = { kind: t.kind, vector: t.vector, eip: t.eip, icount: cpu.icount };
      traps.push(rec);
      vm.onTrap(rec);
    },
  };
  return vm;
}

/** The default VMCB: flat ring-0 32-bit protected mode at GCODE, paging off, ASID 1, VMRUN/HLT/SHUTDOWN intercepted. */
export function defaultVmcb(v: V.VmcbView): void {
  v.mem.u8.fill(0, v.base, v.base + 0x1000);
  v.w32(V.VMCB_INTERCEPTS3, V.IC3_HLT | V.IC3_SHUTDOWN);
  v.w32(V.VMCB_INTERCEPTS4, V.IC4_VMRUN);
  v.w64(V.VMCB_IOPM_BASE, IOPM);
  v.w32(V.VMCB_ASID, 1);
  for (const [k, o] of V.VMCB_SEGS.entries()) {
    const code = k === 1;
    v.w16(o, code ? SEL_CODE0 : SEL_DATA0); v.w16(o + 2, code ? VA_CODE0 : VA_DATA0); v.w32(o + 4, 0xffffffff); v.w64(o + 8, 0);
  }
  v.w32(V.VMCB_GDTR + 4, 0x37); v.w64(V.VMCB_GDTR + 8, GGDT);
  v.w32(V.VMCB_IDTR + 4, 0x7ff); v.w64(V.VMCB_IDTR + 8, GIDT);
  v.w16(V.VMCB_TR, SEL_TSS); v.w16(V.VMCB_TR + 2, VA_TSS); v.w32(V.VMCB_TR + 4, 0x67); v.w64(V.VMCB_TR + 8, GTSS);
  v.w16(V.VMCB_LDTR, 0); v.w16(V.VMCB_LDTR + 2, VA_LDT); v.w32(V.VMCB_LDTR + 4, 0xffff);
  v.w8(V.VMCB_CPL, 0);
  v.w64(V.VMCB_EFER, 0x1000); // SVME
  v.w64(V.VMCB_CR0, 0x11);    // PE, ET
  v.w64(V.VMCB_DR6, 0xffff0ff0); v.w64(V.VMCB_DR7, 0x400);
  v.w64(V.VMCB_RFLAGS, 2);
  v.w64(V.VMCB_RIP, GCODE);
  v.w64(V.VMCB_RSP, GSTACK);
  v.w64hl(V.VMCB_G_PAT, 0x00070406, 0x00070406);
}

/** Puts the guest at CPL 3 (ring-3 CS/SS/DS/ES/FS/GS) through the VMCB. */
export function ring3(v: V.VmcbView): void {
  for (const [k, o] of V.VMCB_SEGS.entries()) {
    const code = k === 1;
    v.w16(o, code ? SEL_CODE3 : SEL_DATA3); v.w16(o + 2, code ? VA_CODE3 : VA_DATA3);
  }
  v.w8(V.VMCB_CPL, 3);
}

/** EVENTINJ / EXITINTINFO value: V, type, vector, and EV when `err` is given. */
export function event(type: number, vec: number, err?: number): { lo: number; hi: number } {
  return { lo: (V.EVT_V | (type << 8) | (err !== undefined ? V.EVT_EV : 0) | vec) >>> 0, hi: err ?? 0 };
}

/** The guest stack at RSP after an exit: `n` dwords. */
export function frame(vm: Vm, n: number): number[] {
  const sp = vm.v.u32(V.VMCB_RSP);
  return Array.from({ length: n }, (_, k) => r32(vm.mem, sp + 4 * k));
}
