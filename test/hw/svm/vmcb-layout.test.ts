// The VMCB as AMD's APM vol. 2 lays it out (appendix B, Tables B-1 and B-2; exit codes from
// appendix C), checked constant by constant; vmrun() loading every state-save field into the core
// and an immediate #VMEXIT writing them back byte for byte, with the host's state restored; and
// the VMRUN consistency checks (APM 15.5.1) that end in VMEXIT_INVALID with the core untouched.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu, TRAP_VMEXIT } from '../../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import { vmrun } from '../../../hw/cpu/svm.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { haveAssembler } from '../cpu/bare.ts';
import { defaultVmcb, FakePic, GCODE, IOPM, newVm, VMCB, w32 } from './vmenv.ts';

// ---- APM Table B-1 (control area) and Table B-2 (state-save area, at 0x400 + the table's offset)
const LAYOUT: Record<string, number> = {
  VMCB_CR_INTERCEPTS: 0x000, VMCB_DR_INTERCEPTS: 0x004, VMCB_EXC_INTERCEPTS: 0x008,
  VMCB_INTERCEPTS3: 0x00c, VMCB_INTERCEPTS4: 0x010,
  VMCB_PAUSE_THRESHOLD: 0x03c, VMCB_PAUSE_COUNT: 0x03e,
  VMCB_IOPM_BASE: 0x040, VMCB_MSRPM_BASE: 0x048, VMCB_TSC_OFFSET: 0x050,
  VMCB_ASID: 0x058, VMCB_TLB_CONTROL: 0x05c, // TLB_CONTROL: bits 39:32 of the quadword at 058h
  VMCB_VINTR: 0x060, VMCB_V_INTR_VECTOR: 0x064, // V_INTR_VECTOR: bits 39:32 of the quadword at 060h
  VMCB_INT_STATE: 0x068, VMCB_EXITCODE: 0x070, VMCB_EXITINFO1: 0x078, VMCB_EXITINFO2: 0x080,
  VMCB_EXITINTINFO: 0x088, VMCB_NP_CONTROL: 0x090, VMCB_EVENTINJ: 0x0a8, VMCB_N_CR3: 0x0b0,
  VMCB_CLEAN: 0x0c0, VMCB_NRIP: 0x0c8, VMCB_INSN_LEN: 0x0d0, VMCB_INSN_BYTES: 0x0d1,
  VMCB_ES: 0x400, VMCB_CS: 0x410, VMCB_SS: 0x420, VMCB_DS: 0x430, VMCB_FS: 0x440, VMCB_GS: 0x450,
  VMCB_GDTR: 0x460, VMCB_LDTR: 0x470, VMCB_IDTR: 0x480, VMCB_TR: 0x490,
  VMCB_CPL: 0x4cb, VMCB_EFER: 0x4d0, VMCB_CR4: 0x548, VMCB_CR3: 0x550, VMCB_CR0: 0x558,
  VMCB_DR7: 0x560, VMCB_DR6: 0x568, VMCB_RFLAGS: 0x570, VMCB_RIP: 0x578, VMCB_RSP: 0x5d8, VMCB_RAX: 0x5f8,
  VMCB_STAR: 0x600, VMCB_LSTAR: 0x608, VMCB_CSTAR: 0x610, VMCB_SFMASK: 0x618, VMCB_KERNEL_GS_BASE: 0x620,
  VMCB_SYSENTER_CS: 0x628, VMCB_SYSENTER_ESP: 0x630, VMCB_SYSENTER_EIP: 0x638, VMCB_CR2: 0x640,
  VMCB_G_PAT: 0x668, VMCB_DBGCTL: 0x670,
};

// ---- intercept vectors 3 and 4 (Table B-1, offsets 00Ch and 010h): bit numbers
const IC3: Record<string, number> = {
  IC3_INTR: 0, IC3_NMI: 1, IC3_SMI: 2, IC3_INIT: 3, IC3_VINTR: 4, IC3_CR0_SEL_WRITE: 5,
  IC3_IDTR_READ: 6, IC3_GDTR_READ: 7, IC3_LDTR_READ: 8, IC3_TR_READ: 9, IC3_IDTR_WRITE: 10, IC3_GDTR_WRITE: 11,
  IC3_LDTR_WRITE: 12, IC3_TR_WRITE: 13, IC3_RDTSC: 14, IC3_RDPMC: 15, IC3_PUSHF: 16, IC3_POPF: 17, IC3_CPUID: 18,
  IC3_RSM: 19, IC3_IRET: 20, IC3_INTN: 21, IC3_INVD: 22, IC3_PAUSE: 23, IC3_HLT: 24, IC3_INVLPG: 25,
  IC3_INVLPGA: 26, IC3_IOIO: 27, IC3_MSR: 28, IC3_TASK_SWITCH: 29, IC3_FERR_FREEZE: 30, IC3_SHUTDOWN: 31,
};
const IC4: Record<string, number> = {
  IC4_VMRUN: 0, IC4_VMMCALL: 1, IC4_VMLOAD: 2, IC4_VMSAVE: 3, IC4_STGI: 4, IC4_CLGI: 5, IC4_SKINIT: 6,
  IC4_RDTSCP: 7, IC4_ICEBP: 8, IC4_WBINVD: 9, IC4_MONITOR: 10, IC4_MWAIT: 11, IC4_MWAIT_COND: 12,
};

// ---- exit codes (APM appendix C, Table C-1)
const EXITS: Record<string, number> = {
  EXIT_CR0_READ: 0x00, EXIT_CR0_WRITE: 0x10, EXIT_DR0_READ: 0x20, EXIT_DR0_WRITE: 0x30, EXIT_EXCP_BASE: 0x40,
  EXIT_INTR: 0x60, EXIT_NMI: 0x61, EXIT_SMI: 0x62, EXIT_INIT: 0x63, EXIT_VINTR: 0x64, EXIT_CR0_SEL_WRITE: 0x65,
  EXIT_IDTR_READ: 0x66, EXIT_GDTR_READ: 0x67, EXIT_LDTR_READ: 0x68, EXIT_TR_READ: 0x69, EXIT_IDTR_WRITE: 0x6a,
  EXIT_GDTR_WRITE: 0x6b, EXIT_LDTR_WRITE: 0x6c, EXIT_TR_WRITE: 0x6d, EXIT_RDTSC: 0x6e, EXIT_RDPMC: 0x6f,
  EXIT_PUSHF: 0x70, EXIT_POPF: 0x71, EXIT_CPUID: 0x72, EXIT_RSM: 0x73, EXIT_IRET: 0x74, EXIT_SWINT: 0x75,
  EXIT_INVD: 0x76, EXIT_PAUSE: 0x77, EXIT_HLT: 0x78, EXIT_INVLPG: 0x79, EXIT_INVLPGA: 0x7a, EXIT_IOIO: 0x7b,
  EXIT_MSR: 0x7c, EXIT_TASK_SWITCH: 0x7d, EXIT_FERR_FREEZE: 0x7e, EXIT_SHUTDOWN: 0x7f, EXIT_VMRUN: 0x80,
  EXIT_VMMCALL: 0x81, EXIT_VMLOAD: 0x82, EXIT_VMSAVE: 0x83, EXIT_STGI: 0x84, EXIT_CLGI: 0x85, EXIT_SKINIT: 0x86,
  EXIT_RDTSCP: 0x87, EXIT_ICEBP: 0x88, EXIT_WBINVD: 0x89, EXIT_MONITOR: 0x8a, EXIT_MWAIT: 0x8b,
  EXIT_MWAIT_COND: 0x8c, EXIT_NPF: 0x400, EXIT_INVALID: -1,
};

// ---- other bit constants (Table B-1; EVENTINJ/EXITINTINFO: APM Figures 15-1 and 15-5, Tables 15-1 and 15-11)
const BITS: Record<string, number> = {
  EVT_INTR: 0, EVT_NMI: 2, EVT_EXCEPTION: 3, EVT_SOFT_INT: 4, EVT_EV: 1 << 11, EVT_V: 1 << 31,
  V_TPR_MASK: 0x0f, V_IRQ: 1 << 8, V_INTR_PRIO_SHIFT: 16, V_IGN_TPR: 1 << 20, V_INTR_MASKING: 1 << 24,
  INTERRUPT_SHADOW: 1, NP_ENABLE: 1,
  TLB_CONTROL_NOTHING: 0, TLB_CONTROL_FLUSH_ALL: 1, TLB_CONTROL_FLUSH_ASID: 3, TLB_CONTROL_FLUSH_ASID_NONGLOBAL: 7,
};

const exported = V as unknown as Record<string, unknown>;
const names = (prefix: RegExp): string[] => Object.keys(exported).filter((k) => prefix.test(k) && typeof exported[k] === 'number');

describe('VMCB layout (APM appendix B)', () => {
  it('every exported field offset is the APM offset', () => {
    for (const [name, off] of Object.entries(LAYOUT)) expect([name, exported[name]]).toEqual([name, off]);
    // and nothing exported is left unchecked
    expect(names(/^VMCB_/).sort()).toEqual(Object.keys(LAYOUT).sort());
    expect(V.VMCB_SEGS).toEqual([0x400, 0x410, 0x420, 0x430, 0x440, 0x450]);
  });

  it('the segment, descriptor-table, CPL and 64-bit fields sit where Table B-2 puts them', () => {
    // each segment is selector (word), attrib (word), limit (dword), base (qword): 16 bytes, 16-aligned
    const segs = [V.VMCB_ES, V.VMCB_CS, V.VMCB_SS, V.VMCB_DS, V.VMCB_FS, V.VMCB_GS, V.VMCB_GDTR, V.VMCB_LDTR, V.VMCB_IDTR, V.VMCB_TR];
    segs.forEach((o, k) => expect(o).toBe(0x400 + 16 * k));
    // every qword register is 8-aligned and none overlaps another
    const q = [V.VMCB_EFER, V.VMCB_CR4, V.VMCB_CR3, V.VMCB_CR0, V.VMCB_DR7, V.VMCB_DR6, V.VMCB_RFLAGS, V.VMCB_RIP, V.VMCB_RSP,
      V.VMCB_RAX, V.VMCB_STAR, V.VMCB_SYSENTER_CS, V.VMCB_SYSENTER_ESP, V.VMCB_SYSENTER_EIP, V.VMCB_CR2, V.VMCB_G_PAT];
    for (const o of q) expect(o % 8).toBe(0);
    expect(new Set(q).size).toBe(q.length);
  });

  it('intercept vector 3 and 4 bits are the APM bit numbers', () => {
    for (const [name, bit] of Object.entries(IC3)) expect([name, exported[name]]).toEqual([name, (1 << bit)]);
    for (const [name, bit] of Object.entries(IC4)) expect([name, exported[name]]).toEqual([name, 1 << bit]);
    expect(names(/^IC3_/).sort()).toEqual(Object.keys(IC3).sort());
    expect(names(/^IC4_/).sort()).toEqual(Object.keys(IC4).sort());
  });

  it('exit codes are the APM appendix C codes', () => {
    for (const [name, code] of Object.entries(EXITS)) expect([name, exported[name]]).toEqual([name, code]);
    expect(names(/^EXIT_/).sort()).toEqual(Object.keys(EXITS).sort());
  });

  it('EVENTINJ/EXITINTINFO, V_* interrupt-control, INTERRUPT_SHADOW, NP_ENABLE and TLB_CONTROL constants', () => {
    for (const [name, v] of Object.entries(BITS)) expect([name, exported[name]]).toEqual([name, v]);
  });

  it('VmcbView reads and writes little-endian fields; 64-bit fields as two dwords (EXITCODE -1 = all ones)', () => {
    const mem = new PhysMem(1 << 20);
    const v = new V.VmcbView(mem, 0x10000);
    v.w64(V.VMCB_EXITCODE, V.EXIT_INVALID);
    expect([v.u32(V.VMCB_EXITCODE), v.hi32(V.VMCB_EXITCODE)]).toEqual([0xffffffff, 0xffffffff]);
    v.w64(V.VMCB_TSC_OFFSET, -5);
    expect(v.s64(V.VMCB_TSC_OFFSET)).toBe(-5);
    expect([v.u32(V.VMCB_TSC_OFFSET), v.hi32(V.VMCB_TSC_OFFSET)]).toEqual([0xfffffffb, 0xffffffff]);
    v.w64(V.VMCB_N_CR3, 0x1_2345_6000);
    expect(Array.from(mem.readBytes(0x10000 + V.VMCB_N_CR3, 8))).toEqual([0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0]);
    v.w16(V.VMCB_CS + 2, 0xc9b);
    expect(Array.from(mem.readBytes(0x10000 + V.VMCB_CS + 2, 2))).toEqual([0x9b, 0x0c]);
  });

  it('segment attributes: VMCB bits 11:8 are descriptor bits 55:52, bits 7:0 are 47:40 (the core keeps 55:52 in 15:12)', () => {
    expect(V.arToVmcb(0xc09b)).toBe(0xc9b);
    expect(V.vmcbToAr(0xc9b)).toBe(0xc09b);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xfff }), (a) => V.arToVmcb(V.vmcbToAr(a)) === a));
  });
});

// =============================================================================== round trip

/** A fake interrupt pending from the start: with INTR intercepted the guest exits before its first instruction. */
function machine(): { mem: PhysMem; cpu: Cpu; v: V.VmcbView; exits: number[] } {
  const mem = new PhysMem(16 << 20);
  const cpu = new Cpu({ mem });
  const pic = new FakePic();
  pic.pending = 0x30;
  cpu.intc = pic;
  const exits: number[] = [];
  cpu.host = { trap(c, t) { if (t.kind !== TRAP_VMEXIT) throw new Error(`trap ${t.kind}`); exits.push(t.vector); c.requestStop(); } };
  const v = new V.VmcbView(mem, VMCB);
  defaultVmcb(v);
  return { mem, cpu, v, exits };
}

/** A host state unlike the guest's: flat protected mode at CPL 0, paging off. */
function hostState(cpu: Cpu): void {
  cpu.cr0 = 0x60000011; cpu.cr3 = 0x123000; cpu.cr4 = 0x10; cpu.cr2 = 0xdead0000; cpu.efer = 0x800;
  cpu.gdtBase = 0x1000; cpu.gdtLimit = 0x3f; cpu.idtBase = 0x2000; cpu.idtLimit = 0x7ff;
  cpu.ldtSel = 0; cpu.ldtBase = 0; cpu.ldtLimit = 0xffff; cpu.ldtAr = 0x82;
  cpu.trSel = 0x28; cpu.trBase = 0x3000; cpu.trLimit = 0x67; cpu.trAr = 0x8b;
  cpu.updateMode();
  cpu.setCpl(0);
  cpu.loadSegCache(CS, 0x08, 0, 0xffffffff, 0xc09b);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0x10, 0, 0xffffffff, 0xc093);
  cpu.setEflags(0x246);
  cpu.eip = 0x12345;
  for (let k = 0; k < 8; k++) cpu.r[k] = 0x1000 * (k + 1);
  cpu.dr[6] = 0xffff0ff0 | 0; cpu.dr[7] = 0x401;
  cpu.sysenterCs = 0x08; cpu.sysenterEsp = 0x9000; cpu.sysenterEip = 0x4000;
  cpu.tscOffset = 777;
  cpu.pat = 0x0007040600070406n;
}

/** Everything of the core's state a #VMEXIT restores (or must leave alone). */
function snapshot(cpu: Cpu): unknown {
  return {
    r: Array.from(cpu.r), eip: cpu.eip, eflags: cpu.getEflags(), cpl: cpu.cpl,
    sel: Array.from(cpu.segSel), base: Array.from(cpu.segBase), limit: Array.from(cpu.segLimit), ar: Array.from(cpu.segAr),
    gdt: [cpu.gdtBase, cpu.gdtLimit], idt: [cpu.idtBase, cpu.idtLimit],
    ldt: [cpu.ldtSel, cpu.ldtBase, cpu.ldtLimit, cpu.ldtAr], tr: [cpu.trSel, cpu.trBase, cpu.trLimit, cpu.trAr],
    cr: [cpu.cr0, cpu.cr2, cpu.cr3, cpu.cr4, cpu.efer], dr: Array.from(cpu.dr), pdpte: Array.from(cpu.pdpte),
    sysenter: [cpu.sysenterCs, cpu.sysenterEsp, cpu.sysenterEip], tsc: cpu.tscOffset, pat: cpu.pat,
    asid: cpu.asid, guest: cpu.guest, state: cpu.state, shadow: cpu.irqShadow, np: cpu.npEnabled,
  };
}

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const seg = fc.record({ sel: u16, attr: fc.integer({ min: 0, max: 0xfff }), limit: u32, base: u32 });
/** Writable EFLAGS bits of this core (no VM: no virtual-8086 mode), bit 1 always set. */
const FLAGS = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x200 | 0x400 | 0x800 | 0x3000 | 0x4000 | 0x10000 | 0x40000 | 0x200000;
const guestState = fc.record({
  segs: fc.array(seg, { minLength: 6, maxLength: 6 }),
  gdtr: fc.record({ limit: u16, base: u32 }), idtr: fc.record({ limit: u16, base: u32 }),
  ldtr: seg, tr: seg,
  pe: fc.boolean(), cpl: fc.integer({ min: 0, max: 3 }),
  cr0: u32, cr2: u32, cr3: u32, cr4: fc.subarray([0x4, 0x8, 0x10, 0x20, 0x80, 0x100]),
  nxe: fc.boolean(), dr6: u32, dr7: u32, rflags: u32, rip: u32, rsp: u32, rax: u32,
  sysenter: fc.tuple(u32, u32, u32), gpat: fc.tuple(u32, u32), tsc: fc.tuple(u32, u32), np: fc.boolean(),
  gprs: fc.array(u32, { minLength: 8, maxLength: 8 }),
});
type GuestState = typeof guestState extends fc.Arbitrary<infer T> ? T : never;

function writeGuest(v: V.VmcbView, g: GuestState): void {
  const segAt = (o: number, s: { sel: number; attr: number; limit: number; base: number }) => {
    v.w16(o, s.sel); v.w16(o + 2, s.attr); v.w32(o + 4, s.limit); v.w64hl(o + 8, s.base, 0);
  };
  g.segs.forEach((s, k) => segAt(V.VMCB_SEGS[k], s));
  v.w32(V.VMCB_GDTR + 4, g.gdtr.limit); v.w64hl(V.VMCB_GDTR + 8, g.gdtr.base, 0);
  v.w32(V.VMCB_IDTR + 4, g.idtr.limit); v.w64hl(V.VMCB_IDTR + 8, g.idtr.base, 0);
  segAt(V.VMCB_LDTR, g.ldtr); segAt(V.VMCB_TR, g.tr);
  let cr0 = g.pe ? (g.cr0 | 1) >>> 0 : (g.cr0 & ~1) >>> 0;
  if (cr0 & 0x20000000) cr0 = (cr0 | 0x40000000) >>> 0; // NW only with CD
  v.w64hl(V.VMCB_CR0, cr0, 0);
  v.w8(V.VMCB_CPL, g.pe ? g.cpl : 0); // real mode: CPL 0 (the core forces it)
  v.w64hl(V.VMCB_CR2, g.cr2, 0); v.w64hl(V.VMCB_CR3, g.cr3, 0);
  v.w64hl(V.VMCB_CR4, g.cr4.reduce((a, b) => a | b, 0), 0);
  v.w64hl(V.VMCB_EFER, 0x1000 | (g.nxe ? 0x800 : 0), 0);
  v.w64hl(V.VMCB_DR6, g.dr6, 0); v.w64hl(V.VMCB_DR7, g.dr7, 0);
  v.w64hl(V.VMCB_RFLAGS, ((g.rflags & FLAGS) | 2) >>> 0, 0);
  v.w64hl(V.VMCB_RIP, g.rip, 0); v.w64hl(V.VMCB_RSP, g.rsp, 0); v.w64hl(V.VMCB_RAX, g.rax, 0);
  v.w64hl(V.VMCB_SYSENTER_CS, g.sysenter[0], 0); v.w64hl(V.VMCB_SYSENTER_ESP, g.sysenter[1], 0); v.w64hl(V.VMCB_SYSENTER_EIP, g.sysenter[2], 0);
  v.w64hl(V.VMCB_G_PAT, g.gpat[0], g.gpat[1]);
  v.w64hl(V.VMCB_TSC_OFFSET, g.tsc[0], g.tsc[1]);
  v.w32(V.VMCB_NP_CONTROL, g.np ? V.NP_ENABLE : 0);
  v.w64(V.VMCB_N_CR3, 0x200000);
  // an immediate exit: INTR intercepted, and V_INTR_MASKING so the guest's IF does not matter
  v.w32(V.VMCB_INTERCEPTS3, V.IC3_INTR | V.IC3_HLT);
  v.w32(V.VMCB_VINTR, V.V_INTR_MASKING | 0x5 | (7 << V.V_INTR_PRIO_SHIFT));
  v.w8(V.VMCB_V_INTR_VECTOR, 0x99);
}

describe('vmrun() loads the state-save area; an immediate #VMEXIT writes it back unchanged', () => {
  it('round trip for random guest states (fast-check)', () => {
    fc.assert(fc.property(guestState, (g) => {
      const { mem, cpu, v, exits } = machine();
      hostState(cpu);
      writeGuest(v, g);
      v.w64(V.VMCB_NRIP, 0x1234); v.w64(V.VMCB_EXITINTINFO, 0x5555); // stale values the exit must overwrite
      const host = snapshot(cpu);
      const before = mem.readBytes(VMCB + 0x400, 0xc00).slice();
      const cyc = cpu.cycles;
      expect(vmrun(cpu, VMCB)).toBe(0);

      // ---- the core holds the guest's state
      expect(cpu.guest).toBe(true);
      for (let k = 0; k < 6; k++) {
        const s = g.segs[k];
        expect([cpu.segSel[k], cpu.segBase[k] >>> 0, cpu.segLimit[k], V.arToVmcb(cpu.segAr[k])]).toEqual([s.sel, s.base, s.limit, s.attr]);
      }
      expect([cpu.gdtBase >>> 0, cpu.gdtLimit, cpu.idtBase >>> 0, cpu.idtLimit]).toEqual([g.gdtr.base, g.gdtr.limit, g.idtr.base, g.idtr.limit]);
      expect([cpu.ldtSel, V.arToVmcb(cpu.ldtAr), cpu.ldtLimit >>> 0, cpu.ldtBase >>> 0]).toEqual([g.ldtr.sel, g.ldtr.attr, g.ldtr.limit, g.ldtr.base]);
      expect([cpu.trSel, V.arToVmcb(cpu.trAr), cpu.trLimit >>> 0, cpu.trBase >>> 0]).toEqual([g.tr.sel, g.tr.attr, g.tr.limit, g.tr.base]);
      expect(cpu.cpl).toBe(v.u8(V.VMCB_CPL));
      expect([cpu.cr0 >>> 0, cpu.cr2 >>> 0, cpu.cr3 >>> 0, cpu.cr4 >>> 0]).toEqual(
        [v.u32(V.VMCB_CR0), g.cr2, g.cr3, v.u32(V.VMCB_CR4)]);
      expect(cpu.efer).toBe(g.nxe ? 0x800 : 0); // SVME stays the host's
      expect([cpu.dr[6] >>> 0, cpu.dr[7] >>> 0]).toEqual([g.dr6, g.dr7]);
      expect(cpu.getEflags()).toBe(v.u32(V.VMCB_RFLAGS));
      expect([cpu.eip, cpu.r[4] >>> 0, cpu.r[0] >>> 0]).toEqual([g.rip, g.rsp, g.rax]);
      expect([cpu.sysenterCs >>> 0, cpu.sysenterEsp >>> 0, cpu.sysenterEip >>> 0]).toEqual(g.sysenter);
      // G_PAT is the guest's PAT only with nested paging (APM Table B-2)
      expect(cpu.pat).toBe(g.np ? (BigInt(g.gpat[1]) << 32n) | BigInt(g.gpat[0]) : 0x0007040600070406n);
      // the guest's TSC = the host's (offset 777 from its WRMSR) + TSC_OFFSET
      expect(cpu.tscOffset).toBe(777 + v.s64(V.VMCB_TSC_OFFSET));
      expect(cpu.asid).toBe(1);
      expect(cpu.npEnabled).toBe(g.np);
      // the other GPRs are the VMM's business: give the guest its own
      for (const k of [1, 2, 3, 5, 6, 7]) cpu.r[k] = g.gprs[k];

      cpu.run(cpu.cycles + 100_000);
      expect(exits).toEqual([V.EXIT_INTR]);
      expect(cpu.icount).toBe(0); // not one guest instruction ran
      expect(cpu.cycles).toBeGreaterThan(cyc);

      // ---- the state-save area is written back byte for byte (G_PAT too)
      expect(mem.readBytes(VMCB + 0x400, 0xc00)).toEqual(before);
      // ---- the exit information
      expect([v.u32(V.VMCB_EXITCODE), v.hi32(V.VMCB_EXITCODE)]).toEqual([V.EXIT_INTR, 0]);
      expect([v.u32(V.VMCB_EXITINTINFO), v.hi32(V.VMCB_EXITINTINFO)]).toEqual([0, 0]);
      expect([v.u32(V.VMCB_NRIP), v.hi32(V.VMCB_NRIP)]).toEqual([0, 0]); // nRIP only for instruction intercepts
      expect(v.u32(V.VMCB_INT_STATE)).toBe(0);
      expect(v.u32(V.VMCB_VINTR)).toBe(V.V_INTR_MASKING | 0x5 | (7 << V.V_INTR_PRIO_SHIFT));

      // ---- the host's state is back exactly, except the GPRs other than RAX and RSP (the guest's)
      const expected = host as { r: number[] };
      const r = [...expected.r];
      for (const k of [1, 2, 3, 5, 6, 7]) r[k] = g.gprs[k] | 0;
      expect(snapshot(cpu)).toEqual({ ...expected, r });
    }), { numRuns: 150 });
  });

  (haveAssembler() || process.env.CI === 'true' ? it : it.skip)(
    "G_PAT is the guest's PAT only with nested paging: a guest WRMSR to PAT lands in G_PAT, and the host's PAT comes back", () => {
      const PAT = [0x00060106, 0x00070407]; // a valid PAT (types 0, 1, 4, 5, 6, 7 only)
      for (const np of [false, true]) {
        const vm = newVm();
        vm.code(`mov $0x277, %ecx\nmov $0x${PAT[0].toString(16)}, %eax\nmov $0x${PAT[1].toString(16)}, %edx\nwrmsr\nhlt`);
        vm.cpu.pat = 0x0007040600070406n;
        vm.v.w64hl(V.VMCB_G_PAT, 0x04040404, 0x04040404);
        if (np) {
          // long-mode nested tables (the format byte at 0x097 = 2) mapping the first GiB 1:1 with one 1-GiB page
          vm.v.w32(V.VMCB_NP_CONTROL, V.NP_ENABLE);
          vm.v.w8(0x097, 2);
          vm.v.w64(V.VMCB_N_CR3, 0x720000);
          w32(vm.mem, 0x720000, 0x721000 | 7); w32(vm.mem, 0x721000, 0x87);
        }
        vm.enter();
        if (np) expect(vm.cpu.pat).toBe(0x0404040404040404n);
        expect(vm.runToExit()).toBe(V.EXIT_HLT);
        expect(vm.v.u32(V.VMCB_RIP)).toBe(GCODE + 0x11); // the HLT
        expect([np, vm.v.u32(V.VMCB_G_PAT), vm.v.hi32(V.VMCB_G_PAT)]).toEqual(np ? [true, ...PAT] : [false, 0x04040404, 0x04040404]);
        expect(vm.cpu.pat).toBe(0x0007040600070406n);
      }
    });

  (haveAssembler() || process.env.CI === 'true' ? it : it.skip)('VMRUN ignores bits 11:0 of IOPM_BASE_PA (Table B-1)', () => {
    for (const low of [0, 0xabc]) {
      const vm = newVm();
      vm.code('out %al, $0x80\nhlt');
      vm.v.w32(V.VMCB_INTERCEPTS3, V.IC3_IOIO | V.IC3_HLT);
      vm.v.w64(V.VMCB_IOPM_BASE, IOPM | low);
      vm.mem.write(IOPM + (0x80 >>> 3), 1, 1); // port 0x80 only
      vm.enter();
      expect([low, vm.runToExit()]).toEqual([low, V.EXIT_IOIO]);
    }
  });

  it('a real-mode guest runs at CPL 0 whatever the CPL field says', () => {
    const { cpu, v } = machine();
    v.w64(V.VMCB_CR0, 0x10);
    v.w8(V.VMCB_CPL, 3);
    v.w32(V.VMCB_INTERCEPTS3, V.IC3_INTR);
    v.w32(V.VMCB_VINTR, V.V_INTR_MASKING);
    expect(vmrun(cpu, VMCB)).toBe(0);
    expect(cpu.cpl).toBe(0);
    cpu.run(cpu.cycles + 1000);
    expect(v.u8(V.VMCB_CPL)).toBe(0);
  });
});

// =============================================================================== consistency checks

describe('VMRUN consistency checks (APM 15.5.1) give VMEXIT_INVALID and leave the core in host mode, untouched', () => {
  const cases: [string, (v: V.VmcbView) => void][] = [
    ['the VMRUN intercept is clear', (v) => v.w32(V.VMCB_INTERCEPTS4, 0)],
    ['ASID 0', (v) => v.w32(V.VMCB_ASID, 0)],
    ['ASID beyond what the TLB tags (2048)', (v) => v.w32(V.VMCB_ASID, 2048)],
    ['CR0.NW set with CR0.CD clear', (v) => v.w64(V.VMCB_CR0, 0x20000011)],
    ['CR0[63:32] not zero', (v) => v.w64hl(V.VMCB_CR0, 0x11, 1)],
    ['CR3[63:32] not zero (MBZ above the physical address)', (v) => v.w64hl(V.VMCB_CR3, 0x1000, 0x10)],
    ['CR4.VME (not implemented: MBZ)', (v) => v.w64(V.VMCB_CR4, 0x1)],
    ['CR4.OSFXSR (not implemented: MBZ)', (v) => v.w64(V.VMCB_CR4, 0x200)],
    ['CR4 bit 31', (v) => v.w64(V.VMCB_CR4, 0x80000000)],
    ['CR4[63:32] not zero', (v) => v.w64hl(V.VMCB_CR4, 0, 1)],
    ['DR6[63:32] not zero', (v) => v.w64hl(V.VMCB_DR6, 0xffff0ff0, 1)],
    ['DR7[63:32] not zero', (v) => v.w64hl(V.VMCB_DR7, 0x400, 0x80000000)],
    ['EFER reserved bit 1', (v) => v.w64(V.VMCB_EFER, 0x1002)],
    ['EFER.SCE (no SYSCALL on this core)', (v) => v.w64(V.VMCB_EFER, 0x1001)],
    ['EFER.LME without long mode', (v) => v.w64(V.VMCB_EFER, 0x1100)],
    ['EFER.LMA without long mode', (v) => v.w64(V.VMCB_EFER, 0x1400)],
    ['EFER[63:32] not zero', (v) => v.w64hl(V.VMCB_EFER, 0x1000, 2)],
    ['the IOPM reaches past 4 GiB', (v) => v.w64(V.VMCB_IOPM_BASE, 0xffffe000)],
    ['the IOPM above 4 GiB', (v) => v.w64hl(V.VMCB_IOPM_BASE, 0, 1)],
    ['the MSRPM reaches past 4 GiB', (v) => v.w64(V.VMCB_MSRPM_BASE, 0xfffff000)],
    ['EVENTINJ type 1 (reserved)', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (1 << 8) | 0x20)],
    ['EVENTINJ type 5 (reserved)', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (5 << 8) | 0x20)],
    ['EVENTINJ type 6 (reserved)', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (6 << 8) | 3)],
    ['EVENTINJ type 7 (reserved)', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (7 << 8))],
    ['EVENTINJ exception with vector 2 (the NMI is not an exception)', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (V.EVT_EXCEPTION << 8) | 2)],
    ['EVENTINJ exception with vector 32', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (V.EVT_EXCEPTION << 8) | 32)],
    ['EVENTINJ exception with vector 255 and an error code', (v) => v.w64hl(V.VMCB_EVENTINJ, V.EVT_V | V.EVT_EV | (V.EVT_EXCEPTION << 8) | 255, 0)],
  ];

  for (const [what, bad] of cases) {
    it(what, () => {
      const { mem, cpu, v, exits } = machine();
      hostState(cpu);
      v.w64(V.VMCB_EXITCODE, 0x1234);
      bad(v);
      const host = snapshot(cpu);
      const vmcb = mem.readBytes(VMCB, 0x1000).slice();
      const cyc = cpu.cycles;
      expect(vmrun(cpu, VMCB)).toBe(V.EXIT_INVALID);
      // EXITCODE = VMEXIT_INVALID, -1 as a 64-bit value; nothing else in the VMCB changes
      expect([v.u32(V.VMCB_EXITCODE), v.hi32(V.VMCB_EXITCODE)]).toEqual([0xffffffff, 0xffffffff]);
      const after = mem.readBytes(VMCB, 0x1000);
      for (let k = 0; k < 8; k++) after[V.VMCB_EXITCODE + k] = vmcb[V.VMCB_EXITCODE + k];
      expect(after).toEqual(vmcb);
      expect(snapshot(cpu)).toEqual(host);
      expect(cpu.svm).toBe(null);
      expect(cpu.cycles).toBe(cyc);
      expect(exits).toEqual([]);
    });
  }

  it('the same VMCB without the defect enters the guest (each case above fails only by its defect)', () => {
    const valid: [string, (v: V.VmcbView) => void][] = [
      ['defaults', () => {}],
      ['ASID 2047', (v) => v.w32(V.VMCB_ASID, 2047)],
      ['CR0.NW with CR0.CD', (v) => v.w64(V.VMCB_CR0, 0x60000011)],
      ['every implemented CR4 bit', (v) => v.w64(V.VMCB_CR4, 0x1bc)],
      ['EFER.NXE', (v) => v.w64(V.VMCB_EFER, 0x1800)],
      ['IOPM ending at 4 GiB', (v) => v.w64(V.VMCB_IOPM_BASE, 0xffffd000)],
      ['IOPM_BASE low 12 bits (ignored)', (v) => v.w64(V.VMCB_IOPM_BASE, 0x412fff)],
      ['MSRPM ending at 4 GiB', (v) => v.w64(V.VMCB_MSRPM_BASE, 0xffffe000)],
      ['EVENTINJ INTR vector 32', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | 32)],
      ['EVENTINJ NMI (vector ignored)', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (V.EVT_NMI << 8) | 0x77)],
      ['EVENTINJ exception 31', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (V.EVT_EXCEPTION << 8) | 31)],
      ['EVENTINJ #PF with an error code', (v) => v.w64hl(V.VMCB_EVENTINJ, V.EVT_V | V.EVT_EV | (V.EVT_EXCEPTION << 8) | 14, 2)],
      ['EVENTINJ software interrupt 0x80', (v) => v.w32(V.VMCB_EVENTINJ, V.EVT_V | (V.EVT_SOFT_INT << 8) | 0x80)],
      ['EVENTINJ with V clear and a reserved type', (v) => v.w32(V.VMCB_EVENTINJ, (7 << 8) | 2)],
    ];
    for (const [what, ok] of valid) {
      const { cpu, v } = machine();
      ok(v);
      expect([what, vmrun(cpu, VMCB)]).toEqual([what, 0]);
      expect(cpu.guest).toBe(true);
    }
  });
});
