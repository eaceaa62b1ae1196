/**
 * Instruction family: descriptor-table instructions.
 *
 * 0F 00 group: SLDT /0, STR /1, LLDT /2, LTR /3 (marks the TSS busy), VERR /4, VERW /5;
 * 0F 01 /0-/3: SGDT, SIDT, LGDT, LIDT (system.ts assembles group 7 with the other members);
 * LAR (0F 02), LSL (0F 03), ARPL (63).
 *
 * Privilege and mode rules (Intel SDM vol. 2, the 386/P6 behaviour):
 * - the 0F 00 group, LAR, LSL and ARPL are not recognised in real mode: #UD;
 * - LLDT, LTR, LGDT, LIDT need CPL 0 in protected mode: #GP(0); LGDT/LIDT work in real mode;
 * - SGDT, SIDT, SLDT, STR are unprivileged (a P6 has no UMIP);
 * - SLDT/STR to a 32-bit register zero-extend the selector (P6 and later); to memory they
 *   store 16 bits whatever the operand size;
 * - SGDT/SIDT store the 16-bit limit and the 32-bit base; with a 16-bit operand size the base's
 *   top byte is stored as 0 (the P6 behaviour the SDM's compatibility note gives); LGDT/LIDT
 *   with a 16-bit operand size use 24 bits of the base;
 * - LAR, LSL, VERR, VERW never fault on the selector: ZF says whether it passed. They do not
 *   look at the present bit. LAR accepts code/data segments and the system types 1, 2, 3, 4,
 *   5, 9, B, C (TSSs, LDT, call and task gates); LSL the code/data segments and types 1, 2, 3,
 *   9, B. Except for conforming code segments, the descriptor's DPL must be >= CPL and >= RPL.
 *   LAR stores the second descriptor dword masked with 00FFFF00h (32-bit; the SDM's 00FxFF00h,
 *   with the limit bits 19:16 as AMD and Bochs store them) or FF00h (16-bit). LSL stores the
 *   byte-granular limit. On failure the destination is unchanged.
 * Only ZF is affected by LAR/LSL/VERR/VERW/ARPL; the other flags keep their values.
 *
 * SVM (svm.ts): SIDT, SGDT, SLDT, STR are the IDTR/GDTR/LDTR/TR read intercepts and LIDT, LGDT,
 * LLDT, LTR the write intercepts (exits 0x66-0x6d, no exit information), checked after the #UD
 * (real mode) and #GP (CPL) checks and before the operand is read or written.
 */
import type { Cpu } from '../cpu.ts';
import { materialize, ZF } from '../flags.ts';
import { group, type Handler, type Insn, type OpDef, type OpTable } from '../insn.ts';
import { icpt3, svmExit } from '../svm.ts';
import {
  EXIT_GDTR_READ, EXIT_GDTR_WRITE, EXIT_IDTR_READ, EXIT_IDTR_WRITE, EXIT_LDTR_READ, EXIT_LDTR_WRITE, EXIT_TR_READ, EXIT_TR_WRITE,
  IC3_GDTR_READ, IC3_GDTR_WRITE, IC3_IDTR_READ, IC3_IDTR_WRITE, IC3_LDTR_READ, IC3_LDTR_WRITE, IC3_TR_READ, IC3_TR_WRITE,
} from '../vmcb.ts';
import {
  type Desc, descAr, descBase, descDpl, descIsCode, descIsSeg, descLimit, descPresent, GP, NP, readDesc,
} from '../segmentation.ts';

const d: Desc = { lo: 0, hi: 0, addr: 0 };

/** Sets ZF alone (eager), keeping the other flags. */
function setZF(cpu: Cpu, on: boolean): void {
  materialize(cpu);
  cpu.flags = on ? cpu.flags | ZF : cpu.flags & ~ZF;
  cpu.lazy = 0;
}

function needPe(cpu: Cpu): void { if (!cpu.pe) cpu.raise(6); }
function needCpl0(cpu: Cpu): void { if (cpu.pe && cpu.cpl !== 0) cpu.raise(GP, 0); }

/** SLDT/STR: a register destination takes the zero-extended selector; memory gets 16 bits. */
function storeSel(cpu: Cpu, i: Insn, v: number): void {
  if (i.mod === 3) { if (i.opsz === 4) cpu.r[i.rm] = v & 0xffff; else cpu.setReg16(i.rm, v); }
  else cpu.wr16(i.seg, cpu.ea(i), v);
}

/** The SVM intercept `bit` of vector 3: exit `code` (no exit information). */
function intercept(cpu: Cpu, bit: number, code: number): void {
  if (icpt3(cpu, bit)) svmExit(cpu, code);
}

const sldt: Handler = (cpu, i) => { needPe(cpu); intercept(cpu, IC3_LDTR_READ, EXIT_LDTR_READ); storeSel(cpu, i, cpu.ldtSel); };
const str: Handler = (cpu, i) => { needPe(cpu); intercept(cpu, IC3_TR_READ, EXIT_TR_READ); storeSel(cpu, i, cpu.trSel); };

const lldt: Handler = (cpu, i) => {
  needPe(cpu); needCpl0(cpu);
  intercept(cpu, IC3_LDTR_WRITE, EXIT_LDTR_WRITE);
  const sel = cpu.readE16(i);
  if ((sel & 0xfffc) === 0) { // a null selector makes the LDT unusable
    cpu.ldtSel = sel; cpu.ldtBase = 0; cpu.ldtLimit = 0; cpu.ldtAr = 0;
    return;
  }
  if ((sel & 4) !== 0 || !readDesc(cpu, sel, d) || descIsSeg(d) || (d.hi & 0xf00) !== 0x200) cpu.raise(GP, sel & 0xfffc);
  if (!descPresent(d)) cpu.raise(NP, sel & 0xfffc);
  cpu.ldtSel = sel; cpu.ldtBase = descBase(d); cpu.ldtLimit = descLimit(d); cpu.ldtAr = descAr(d);
};

const ltr: Handler = (cpu, i) => {
  needPe(cpu); needCpl0(cpu);
  intercept(cpu, IC3_TR_WRITE, EXIT_TR_WRITE);
  const sel = cpu.readE16(i);
  if ((sel & 0xfffc) === 0) cpu.raise(GP, 0);
  if ((sel & 4) !== 0 || !readDesc(cpu, sel, d)) cpu.raise(GP, sel & 0xfffc);
  const type = (d.hi >>> 8) & 0x1f; // with S
  if (type !== 0x01 && type !== 0x09) cpu.raise(GP, sel & 0xfffc); // an available TSS
  if (!descPresent(d)) cpu.raise(NP, sel & 0xfffc);
  d.hi |= 0x200; // busy
  cpu.swr8(d.addr + 5, (d.hi >>> 8) & 0xff);
  cpu.trSel = sel; cpu.trBase = descBase(d); cpu.trLimit = descLimit(d); cpu.trAr = descAr(d);
};

/** The DPL rule of LAR/LSL/VERR/VERW: DPL >= CPL and DPL >= RPL. */
function visible(cpu: Cpu, sel: number): boolean {
  const dpl = descDpl(d);
  return dpl >= cpu.cpl && dpl >= (sel & 3);
}
const isConformingCode = (): boolean => (d.hi & 0x1c00) === 0x1c00;

/** VERR (write = false) and VERW (write = true). */
function verify(write: boolean): Handler {
  return (cpu, i) => {
    needPe(cpu);
    const sel = cpu.readE16(i);
    let ok = false;
    if ((sel & 0xfffc) !== 0 && readDesc(cpu, sel, d) && descIsSeg(d)) {
      const readable = (d.hi & 0x200) !== 0;
      if (descIsCode(d)) ok = !write && readable && (isConformingCode() || visible(cpu, sel));
      else ok = (!write || (d.hi & 0x200) !== 0) && visible(cpu, sel);
    }
    setZF(cpu, ok);
  };
}

/** System descriptor types LAR accepts (bit per type) and those LSL accepts. */
const LAR_SYS = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 9) | (1 << 0xb) | (1 << 0xc);
const LSL_SYS = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 9) | (1 << 0xb);

/** Reads the selector operand and checks it for LAR (types = LAR_SYS) or LSL; true if it passes. */
function accessible(cpu: Cpu, i: Insn, types: number): boolean {
  const sel = cpu.readE16(i);
  if ((sel & 0xfffc) === 0 || !readDesc(cpu, sel, d)) return false;
  if (descIsSeg(d)) return isConformingCode() || visible(cpu, sel);
  return ((types >>> ((d.hi >>> 8) & 0xf)) & 1) !== 0 && visible(cpu, sel);
}

const lar: Handler = (cpu, i) => {
  needPe(cpu);
  const ok = accessible(cpu, i, LAR_SYS);
  if (ok) { if (i.opsz === 4) cpu.r[i.reg] = d.hi & 0x00ffff00; else cpu.setReg16(i.reg, d.hi & 0xff00); }
  setZF(cpu, ok);
};

const lsl: Handler = (cpu, i) => {
  needPe(cpu);
  const ok = accessible(cpu, i, LSL_SYS);
  if (ok) { const lim = descLimit(d); if (i.opsz === 4) cpu.r[i.reg] = lim; else cpu.setReg16(i.reg, lim); }
  setZF(cpu, ok);
};

/** ARPL Ew, Gw: raises the destination's RPL to the source's; always 16-bit. */
const arpl: Handler = (cpu, i) => {
  needPe(cpu);
  const src = cpu.r[i.reg] & 3;
  let dst: number, off = 0;
  if (i.mod === 3) dst = cpu.r[i.rm] & 0xffff;
  else { off = cpu.ea(i); dst = cpu.rd16(i.seg, off); }
  const adjust = (dst & 3) < src;
  if (adjust) {
    const v = (dst & ~3) | src;
    if (i.mod === 3) cpu.setReg16(i.rm, v); else cpu.wr16(i.seg, off, v);
  }
  setZF(cpu, adjust);
};

// ---- SGDT/SIDT/LGDT/LIDT: a 6-byte operand, 16-bit limit then 32-bit base

function storeTable(cpu: Cpu, i: Insn, limit: number, base: number): void {
  const off = cpu.ea(i);
  const off2 = ((off + 2) & i.adMask) >>> 0;
  if (off2 > off) cpu.checkWrite(i.seg, off, 6);
  cpu.wr16(i.seg, off, limit);
  cpu.wr32(i.seg, off2, i.opsz === 4 ? base : base & 0x00ffffff);
}

let tblBase = 0;
function loadTable(cpu: Cpu, i: Insn, bit: number, code: number): number {
  needCpl0(cpu);
  intercept(cpu, bit, code);
  const off = cpu.ea(i);
  const limit = cpu.rd16(i.seg, off);
  const base = cpu.rd32(i.seg, ((off + 2) & i.adMask) >>> 0);
  tblBase = i.opsz === 4 ? base : base & 0x00ffffff;
  return limit;
}

const sgdt: Handler = (cpu, i) => { intercept(cpu, IC3_GDTR_READ, EXIT_GDTR_READ); storeTable(cpu, i, cpu.gdtLimit, cpu.gdtBase); };
const sidt: Handler = (cpu, i) => { intercept(cpu, IC3_IDTR_READ, EXIT_IDTR_READ); storeTable(cpu, i, cpu.idtLimit, cpu.idtBase); };
const lgdt: Handler = (cpu, i) => {
  const l = loadTable(cpu, i, IC3_GDTR_WRITE, EXIT_GDTR_WRITE); cpu.gdtLimit = l; cpu.gdtBase = tblBase;
};
const lidt: Handler = (cpu, i) => {
  const l = loadTable(cpu, i, IC3_IDTR_WRITE, EXIT_IDTR_WRITE); cpu.idtLimit = l; cpu.idtBase = tblBase;
};

/** 0F 01 /0-/3 (SGDT, SIDT, LGDT, LIDT); system.ts assembles group 7. */
export const grp7Desc: Record<number, OpDef> = {
  0: { name: 'sgdt', ops: 'Ms', exec: sgdt, cls: 'system', memOnly: true },
  1: { name: 'sidt', ops: 'Ms', exec: sidt, cls: 'system', memOnly: true },
  2: { name: 'lgdt', ops: 'Ms', exec: lgdt, cls: 'system', memOnly: true },
  3: { name: 'lidt', ops: 'Ms', exec: lidt, cls: 'system', memOnly: true },
};

export const table: OpTable = {
  0x0f00: {
    name: 'grp6',
    group: group({
      0: { name: 'sldt', ops: 'Ew', exec: sldt },
      1: { name: 'str', ops: 'Ew', exec: str },
      2: { name: 'lldt', ops: 'Ew', exec: lldt, cls: 'system' },
      3: { name: 'ltr', ops: 'Ew', exec: ltr, cls: 'system' },
      4: { name: 'verr', ops: 'Ew', exec: verify(false), cls: 'segLoad' },
      5: { name: 'verw', ops: 'Ew', exec: verify(true), cls: 'segLoad' },
    }),
  },
  0x0f02: { name: 'lar', ops: 'Gv,Ew', exec: lar, cls: 'segLoad' },
  0x0f03: { name: 'lsl', ops: 'Gv,Ew', exec: lsl, cls: 'segLoad' },
  0x63: { name: 'arpl', ops: 'Ew,Gw', exec: arpl },
};
