/**
 * Instruction family: far transfers and far-pointer loads.
 *
 * JMP far (EA Ap, FF /5 Mp), CALL far (9A Ap, FF /3 Mp), RET far (CB, CA Iw), IRET (CF), and
 * LES/LDS (C4/C5), LSS/LFS/LGS (0F B2/B4/B5), in real mode and protected mode, following the
 * pseudo-code of the Intel SDM vol. 2 (JMP, CALL, RET, IRET) and the 386 rules:
 *
 * - to a code segment: a non-conforming one needs DPL = CPL and RPL <= CPL, a conforming one
 *   DPL <= CPL; CPL never changes and CS.RPL becomes CPL;
 * - through a call gate (16- or 32-bit): the gate's DPL must be >= CPL and >= RPL; CALL to a
 *   more privileged non-conforming segment switches to the stack of that ring from the TSS and
 *   copies the gate's parameter count of words (16-bit gate) or dwords (32-bit gate) from the
 *   caller's stack; JMP through a gate never changes privilege; the gate's size, not the
 *   operand size, decides the size of what is pushed;
 * - to a TSS descriptor or a task gate: a hardware task switch (taskswitch.ts);
 * - RET far / IRET to an outer ring pop SS:ESP too (RET's Iw is added to both stacks) and null
 *   the data segment registers the outer ring may not use (invalidateOuterSegs);
 * - IRET with EFLAGS.NT = 1 returns to the task named by the back link of the current TSS;
 *   IRET's EFLAGS rules: IOPL changes only at CPL 0, IF only when CPL <= IOPL, RF/AC/ID only
 *   with a 32-bit operand size, a 16-bit IRET leaves the upper half alone.
 *
 * Left out: virtual-8086 mode. An IRET at CPL 0 whose popped EFLAGS has VM = 1 raises #GP(0)
 * instead of entering VM86 (the issue does not ask for it; CPUID does not advertise VME).
 *
 * SVM (svm.ts): the IRET intercept (exit 0x74) is checked before IRET reads the stack, in every
 * mode; a task switch (IRET with NT, JMP/CALL to a TSS or task gate) may exit through the
 * task-switch intercept (taskswitch.ts).
 *
 * Faults leave the architectural state as it was: every check and every stack access happens
 * before the first register changes; the new stack of an inner call is written before CS, SS
 * and ESP are committed (a fault there leaves only bytes below the inner ring's stack pointer).
 */
import type { Cpu } from '../cpu.ts';
import { IF, IOPL, NT, VM } from '../flags.ts';
import { CS, DS, ES, FS, GS, type Handler, type Insn, type OpDef, type OpTable, SS } from '../insn.ts';
import {
  checkStackSeg, type Desc, descAr, descBase, descDpl, descIsCode, descIsSeg, descLimit, descPresent, descType, GP,
  invalidateOuterSegs, loadCs, loadDataSeg, NP, readDesc, setAccessed, SSF, tssStack,
} from '../segmentation.ts';
import { icpt3, svmExit } from '../svm.ts';
import { TS_CALL, TS_IRET, TS_JMP, taskSwitch } from '../taskswitch.ts';
import { EXIT_IRET, IC3_IRET } from '../vmcb.ts';

/** Scratch descriptors (no allocation per instruction). */
const tgt: Desc = { lo: 0, hi: 0, addr: 0 };   // the selector's descriptor (segment or gate)
const code: Desc = { lo: 0, hi: 0, addr: 0 };  // the code segment named by a call gate
const stk: Desc = { lo: 0, hi: 0, addr: 0 };   // a new stack segment
const tssSsEsp = [0, 0];

const CONFORMING = 0x400;

// =============================================================================== helpers

/** Real mode: CS gets sel << 4 as its base; limit and attributes stay as they are. */
function loadCsReal(cpu: Cpu, sel: number): void {
  cpu.loadSegCache(CS, sel & 0xffff, (sel & 0xffff) << 4, cpu.segLimit[CS], cpu.segAr[CS]);
}

/** Stack offset sp + delta in the current SS, as an unsigned offset. */
function spOff(cpu: Cpu, delta: number): number {
  return ((cpu.r[4] + delta) & cpu.spMask) >>> 0;
}

/** Reads the stack at sp + delta with the given size (2 or 4), unsigned. */
function peek(cpu: Cpu, delta: number, size: number): number {
  return size === 4 ? cpu.rd32(SS, spOff(cpu, delta)) >>> 0 : cpu.rd16(SS, spOff(cpu, delta));
}

/**
 * Pushes `hi` then `lo` (CS then EIP) on the current stack with the given size; ESP changes
 * only when both writes have succeeded.
 */
function push2(cpu: Cpu, hi: number, lo: number, size: number): void {
  if (size === 4) {
    cpu.wr32(SS, spOff(cpu, -4), hi & 0xffff);
    cpu.wr32(SS, spOff(cpu, -8), lo);
  } else {
    cpu.wr16(SS, spOff(cpu, -2), hi);
    cpu.wr16(SS, spOff(cpu, -4), lo);
  }
  cpu.adjustSp(-2 * size);
}

// ---- the inner ring's new stack (CALL through a gate): base, limit, expand-down, size

let nsBase = 0, nsLimit = 0, nsUpper = 0, nsDown = false, nsSp = 0, nsErr = 0;

function newStack(d: Desc, sel: number, esp: number): void {
  nsBase = descBase(d);
  nsLimit = descLimit(d);
  nsUpper = (d.hi & 0x00400000) !== 0 ? 0xffffffff : 0xffff;
  nsDown = (d.hi & 0x400) !== 0;
  nsSp = (esp & nsUpper) >>> 0;
  nsErr = sel & 0xfffc;
}

/** Pushes on the new stack with the segment checks of that stack (#SS(new SS)). */
function nsPush(cpu: Cpu, v: number, size: number): void {
  const sp = ((nsSp - size) & nsUpper) >>> 0;
  const ok = nsDown ? sp > nsLimit && sp + size - 1 <= nsUpper : sp + size - 1 <= nsLimit;
  if (!ok) cpu.raise(SSF, nsErr);
  const lin = (nsBase + sp) | 0;
  if (size === 4) cpu.swr32(lin, v); else cpu.swr16(lin, v);
  nsSp = sp;
}

/** Sets ESP after a stack switch: all of it for a 32-bit stack segment, SP for a 16-bit one. */
function setEspFor(cpu: Cpu, d: Desc, v: number): void {
  if ((d.hi & 0x00400000) !== 0) cpu.r[4] = v;
  else cpu.setReg16(4, v);
}

/**
 * The checks on a code segment reached directly by JMP/CALL far (not through a gate):
 * conforming: DPL <= CPL; non-conforming: RPL <= CPL and DPL = CPL; then present.
 */
function checkDirectCode(cpu: Cpu, sel: number, d: Desc): void {
  const dpl = descDpl(d), cpl = cpu.cpl;
  if ((d.hi & CONFORMING) !== 0) { if (dpl > cpl) cpu.raise(GP, sel & 0xfffc); }
  else if ((sel & 3) > cpl || dpl !== cpl) cpu.raise(GP, sel & 0xfffc);
  if (!descPresent(d)) cpu.raise(NP, sel & 0xfffc);
}

/** The gate or TSS privilege check of JMP/CALL: DPL >= CPL and DPL >= RPL, then present. */
function checkGate(cpu: Cpu, sel: number, d: Desc): void {
  const dpl = descDpl(d);
  if (dpl < cpu.cpl || dpl < (sel & 3)) cpu.raise(GP, sel & 0xfffc);
  if (!descPresent(d)) cpu.raise(NP, sel & 0xfffc);
}

/** Reads the code segment named by the call gate in `tgt` into `code`; returns its selector. */
function gateCode(cpu: Cpu): number {
  const csel = tgt.lo >>> 16;
  if ((csel & 0xfffc) === 0) cpu.raise(GP, 0);
  if (!readDesc(cpu, csel, code) || !descIsCode(code) || descDpl(code) > cpu.cpl) cpu.raise(GP, csel & 0xfffc);
  return csel;
}

function gateOffset(d: Desc): number {
  return (d.hi & 0x800) !== 0 ? ((d.hi & 0xffff0000) | (d.lo & 0xffff)) >>> 0 : d.lo & 0xffff;
}

// =============================================================================== JMP far

/** JMP far to sel:off (off already truncated to the operand size). */
export function jmpFar(cpu: Cpu, sel: number, off: number): void {
  sel &= 0xffff;
  if (!cpu.pe) {
    if (off > cpu.segLimit[CS]) cpu.raise(GP, 0);
    loadCsReal(cpu, sel);
    cpu.eip = off;
    return;
  }
  if ((sel & 0xfffc) === 0) cpu.raise(GP, 0);
  if (!readDesc(cpu, sel, tgt)) cpu.raise(GP, sel & 0xfffc);
  if (descIsSeg(tgt)) {
    if (!descIsCode(tgt)) cpu.raise(GP, sel & 0xfffc);
    checkDirectCode(cpu, sel, tgt);
    if (off > descLimit(tgt)) cpu.raise(GP, 0);
    loadCs(cpu, sel, tgt, cpu.cpl);
    cpu.eip = off;
    return;
  }
  switch (descType(tgt)) {
    case 0x4: case 0xc: { // call gate: no privilege change for JMP
      checkGate(cpu, sel, tgt);
      const csel = gateCode(cpu);
      const dpl = descDpl(code);
      if ((code.hi & CONFORMING) === 0 && dpl !== cpu.cpl) cpu.raise(GP, csel & 0xfffc);
      if (!descPresent(code)) cpu.raise(NP, csel & 0xfffc);
      const target = gateOffset(tgt);
      if (target > descLimit(code)) cpu.raise(GP, 0);
      loadCs(cpu, csel, code, cpu.cpl);
      cpu.eip = target;
      return;
    }
    case 0x5: // task gate
      checkGate(cpu, sel, tgt);
      taskSwitch(cpu, tgt.lo >>> 16, TS_JMP, -1, 0);
      return;
    case 0x1: case 0x9: // available TSS
      checkGate(cpu, sel, tgt);
      taskSwitch(cpu, sel, TS_JMP, -1, 0);
      return;
    default: // busy TSS, LDT, interrupt/trap gates, reserved types
      cpu.raise(GP, sel & 0xfffc);
  }
}

// =============================================================================== CALL far

/** CALL far to sel:off with the instruction's operand size (2 or 4) for a direct call. */
export function callFar(cpu: Cpu, sel: number, off: number, opsz: number): void {
  sel &= 0xffff;
  if (!cpu.pe) {
    if (off > cpu.segLimit[CS]) cpu.raise(GP, 0);
    push2(cpu, cpu.segSel[CS], cpu.eip, opsz);
    loadCsReal(cpu, sel);
    cpu.eip = off;
    return;
  }
  if ((sel & 0xfffc) === 0) cpu.raise(GP, 0);
  if (!readDesc(cpu, sel, tgt)) cpu.raise(GP, sel & 0xfffc);
  if (descIsSeg(tgt)) {
    if (!descIsCode(tgt)) cpu.raise(GP, sel & 0xfffc);
    checkDirectCode(cpu, sel, tgt);
    if (off > descLimit(tgt)) cpu.raise(GP, 0);
    push2(cpu, cpu.segSel[CS], cpu.eip, opsz);
    loadCs(cpu, sel, tgt, cpu.cpl);
    cpu.eip = off;
    return;
  }
  switch (descType(tgt)) {
    case 0x4: case 0xc:
      checkGate(cpu, sel, tgt);
      callGate(cpu);
      return;
    case 0x5:
      checkGate(cpu, sel, tgt);
      taskSwitch(cpu, tgt.lo >>> 16, TS_CALL, -1, 0);
      return;
    case 0x1: case 0x9:
      checkGate(cpu, sel, tgt);
      taskSwitch(cpu, sel, TS_CALL, -1, 0);
      return;
    default:
      cpu.raise(GP, sel & 0xfffc);
  }
}

/** CALL through the call gate in `tgt` (gate checks done). */
function callGate(cpu: Cpu): void {
  const csel = gateCode(cpu);
  if (!descPresent(code)) cpu.raise(NP, csel & 0xfffc);
  const size = (tgt.hi & 0x800) !== 0 ? 4 : 2;
  const target = gateOffset(tgt);
  const dpl = descDpl(code), cpl = cpu.cpl;
  if ((code.hi & CONFORMING) === 0 && dpl < cpl) {
    // more privilege: the ring-dpl stack from the TSS, with the parameters copied
    tssStack(cpu, dpl, 0, tssSsEsp);
    const nss = tssSsEsp[0], nesp = tssSsEsp[1];
    checkStackSeg(cpu, nss, dpl, 0, stk);
    if (target > descLimit(code)) cpu.raise(GP, 0);
    newStack(stk, nss, nesp);
    nsPush(cpu, cpu.segSel[SS], size);
    nsPush(cpu, cpu.r[4], size);
    for (let k = (tgt.hi & 0x1f) - 1; k >= 0; k--) nsPush(cpu, peek(cpu, k * size, size), size);
    nsPush(cpu, cpu.segSel[CS], size);
    nsPush(cpu, cpu.eip, size);
    // commit
    setAccessed(cpu, stk);
    loadCs(cpu, csel, code, dpl);
    cpu.loadSegCache(SS, (nss & 0xfffc) | dpl, descBase(stk), descLimit(stk), descAr(stk));
    setEspFor(cpu, stk, nsSp);
    cpu.eip = target;
    return;
  }
  // same privilege (conforming, or DPL = CPL)
  if (target > descLimit(code)) cpu.raise(GP, 0);
  push2(cpu, cpu.segSel[CS], cpu.eip, size);
  loadCs(cpu, csel, code, cpl);
  cpu.eip = target;
}

// =============================================================================== RET far / IRET

/**
 * The checks on the CS popped by RET far or IRET (protected mode): RPL >= CPL; conforming:
 * DPL <= RPL; non-conforming: DPL = RPL; present. Reads the descriptor into `tgt`.
 */
function checkReturnCs(cpu: Cpu, sel: number): void {
  if ((sel & 0xfffc) === 0) cpu.raise(GP, 0);
  if (!readDesc(cpu, sel, tgt) || !descIsCode(tgt)) cpu.raise(GP, sel & 0xfffc);
  const rpl = sel & 3, dpl = descDpl(tgt);
  if (rpl < cpu.cpl) cpu.raise(GP, sel & 0xfffc);
  if ((tgt.hi & CONFORMING) !== 0 ? dpl > rpl : dpl !== rpl) cpu.raise(GP, sel & 0xfffc);
  if (!descPresent(tgt)) cpu.raise(NP, sel & 0xfffc);
}

/** The checks on the SS popped by a return to ring `rpl`: reads it into `stk`. */
function checkReturnSs(cpu: Cpu, ss: number, rpl: number): void {
  if ((ss & 0xfffc) === 0) cpu.raise(GP, 0);
  if (!readDesc(cpu, ss, stk)) cpu.raise(GP, ss & 0xfffc);
  if ((ss & 3) !== rpl || !descIsSeg(stk) || descIsCode(stk) || (stk.hi & 0x200) === 0 || descDpl(stk) !== rpl) {
    cpu.raise(GP, ss & 0xfffc);
  }
  if (!descPresent(stk)) cpu.raise(SSF, ss & 0xfffc);
}

/** Commits a return to an outer ring: CS from `tgt`, SS from `stk`, ESP, and the data segments. */
function commitOuter(cpu: Cpu, sel: number, ss: number, esp: number, rpl: number): void {
  loadCs(cpu, sel, tgt, rpl);
  setAccessed(cpu, stk);
  cpu.loadSegCache(SS, ss, descBase(stk), descLimit(stk), descAr(stk));
  setEspFor(cpu, stk, esp);
  invalidateOuterSegs(cpu);
}

/** RET far (CB) and RET far imm16 (CA): `imm` bytes are released from both stacks. */
export function retFar(cpu: Cpu, opsz: number, imm: number): void {
  const ip = peek(cpu, 0, opsz);
  const sel = peek(cpu, opsz, opsz) & 0xffff;
  if (!cpu.pe) {
    if (ip > cpu.segLimit[CS]) cpu.raise(GP, 0);
    cpu.adjustSp(2 * opsz + imm);
    loadCsReal(cpu, sel);
    cpu.eip = ip;
    return;
  }
  checkReturnCs(cpu, sel);
  const rpl = sel & 3;
  if (rpl === cpu.cpl) {
    if (ip > descLimit(tgt)) cpu.raise(GP, 0);
    cpu.adjustSp(2 * opsz + imm);
    loadCs(cpu, sel, tgt, rpl);
    cpu.eip = ip;
    return;
  }
  // to an outer ring: SS:ESP follow the parameters
  const esp = peek(cpu, 2 * opsz + imm, opsz);
  const ss = peek(cpu, 3 * opsz + imm, opsz) & 0xffff;
  checkReturnSs(cpu, ss, rpl);
  if (ip > descLimit(tgt)) cpu.raise(GP, 0);
  commitOuter(cpu, sel, ss, (esp + imm) | 0, rpl);
  cpu.eip = ip;
}

/** EFLAGS bits IRET may change in protected mode at the current CPL and IOPL. */
function iretMask(cpu: Cpu, opsz: number): number {
  let m = 0x4dd5; // CF PF AF ZF SF TF DF OF NT
  const cpl = cpu.cpl;
  if (cpl <= ((cpu.flags & IOPL) >>> 12)) m |= IF;
  if (cpl === 0) m |= IOPL;
  if (opsz === 4) m |= 0x250000; // RF AC ID
  return m;
}

export function iret(cpu: Cpu, opsz: number): void {
  if (!cpu.pe) { iretReal(cpu, opsz); return; }
  if ((cpu.flags & NT) !== 0) {
    // return from a nested task: the back link of the current TSS
    taskSwitch(cpu, cpu.srd16(cpu.trBase), TS_IRET, -1, 0);
    return;
  }
  const ip = peek(cpu, 0, opsz);
  const sel = peek(cpu, opsz, opsz) & 0xffff;
  const fl = peek(cpu, 2 * opsz, opsz);
  if (opsz === 4 && (fl & VM) !== 0 && cpu.cpl === 0) cpu.raise(GP, 0); // VM86 is not modelled
  checkReturnCs(cpu, sel);
  const rpl = sel & 3;
  const mask = iretMask(cpu, opsz);
  if (rpl === cpu.cpl) {
    if (ip > descLimit(tgt)) cpu.raise(GP, 0);
    cpu.adjustSp(3 * opsz);
    loadCs(cpu, sel, tgt, rpl);
  } else {
    const esp = peek(cpu, 3 * opsz, opsz);
    const ss = peek(cpu, 4 * opsz, opsz) & 0xffff;
    checkReturnSs(cpu, ss, rpl);
    if (ip > descLimit(tgt)) cpu.raise(GP, 0);
    commitOuter(cpu, sel, ss, esp, rpl);
  }
  cpu.eip = ip;
  cpu.setEflags(fl, mask);
  if ((fl & IF) !== 0) cpu.recheckEvents();
}

function iretReal(cpu: Cpu, opsz: number): void {
  const ip = peek(cpu, 0, opsz);
  const sel = peek(cpu, opsz, opsz) & 0xffff;
  const fl = peek(cpu, 2 * opsz, opsz);
  if (ip > cpu.segLimit[CS]) cpu.raise(GP, 0);
  cpu.adjustSp(3 * opsz);
  loadCsReal(cpu, sel);
  cpu.eip = ip;
  // 32-bit: everything but VM, VIF, VIP (SDM IRET, real-address mode); 16-bit: the low word
  cpu.setEflags(fl, opsz === 4 ? 0x257fd5 : 0x7fd5);
  if ((fl & IF) !== 0) cpu.recheckEvents();
}

// =============================================================================== handlers

const jmpAp: Handler = (cpu, i) => { jmpFar(cpu, i.imm2, i.imm >>> 0); };
const callAp: Handler = (cpu, i) => { callFar(cpu, i.imm2, i.imm >>> 0, i.opsz); };

/** Reads the far pointer (offset of operand size, then selector) at the memory operand. */
function readFarPtr(cpu: Cpu, i: Insn): number {
  const off = cpu.ea(i);
  const selOff = ((off + i.opsz) & i.adMask) >>> 0;
  farOff = i.opsz === 4 ? cpu.rd32(i.seg, off) >>> 0 : cpu.rd16(i.seg, off);
  return cpu.rd16(i.seg, selOff);
}
let farOff = 0;

const jmpMp: Handler = (cpu, i) => { const sel = readFarPtr(cpu, i); jmpFar(cpu, sel, farOff); };
const callMp: Handler = (cpu, i) => { const sel = readFarPtr(cpu, i); callFar(cpu, sel, farOff, i.opsz); };
const retf: Handler = (cpu, i) => { retFar(cpu, i.opsz, i.opcode === 0xca ? i.imm & 0xffff : 0); };
const iretH: Handler = (cpu, i) => {
  if (icpt3(cpu, IC3_IRET)) svmExit(cpu, EXIT_IRET);
  iret(cpu, i.opsz);
};

/** LES/LDS/LSS/LFS/LGS: the segment register is loaded (with its checks) before the GPR. */
function loadFar(s: number): Handler {
  return (cpu, i) => {
    const sel = readFarPtr(cpu, i);
    const off = farOff;
    loadDataSeg(cpu, s, sel);
    if (i.opsz === 4) cpu.r[i.reg] = off; else cpu.setReg16(i.reg, off);
  };
}

/** FF /3 (CALL Mp) and FF /5 (JMP Mp); alu.ts assembles group 5. */
export const grp5Far: Record<number, OpDef> = {
  3: { name: 'callf', ops: 'Mp', exec: callMp, cls: 'farTransfer', memOnly: true },
  5: { name: 'jmpf', ops: 'Mp', exec: jmpMp, cls: 'farTransfer', memOnly: true },
};

export const table: OpTable = {
  0x9a: { name: 'callf', ops: 'Ap', exec: callAp, cls: 'farTransfer' },
  0xea: { name: 'jmpf', ops: 'Ap', exec: jmpAp, cls: 'farTransfer' },
  0xca: { name: 'retf', ops: 'Iw', exec: retf, cls: 'farTransfer' },
  0xcb: { name: 'retf', exec: retf, cls: 'farTransfer' },
  0xcf: { name: 'iret', exec: iretH, cls: 'farTransfer' },
  0xc4: { name: 'les', ops: 'Gv,Mp', exec: loadFar(ES), cls: 'segLoad', memOnly: true },
  0xc5: { name: 'lds', ops: 'Gv,Mp', exec: loadFar(DS), cls: 'segLoad', memOnly: true },
  0x0fb2: { name: 'lss', ops: 'Gv,Mp', exec: loadFar(SS), cls: 'segLoad', memOnly: true },
  0x0fb4: { name: 'lfs', ops: 'Gv,Mp', exec: loadFar(FS), cls: 'segLoad', memOnly: true },
  0x0fb5: { name: 'lgs', ops: 'Gv,Mp', exec: loadFar(GS), cls: 'segLoad', memOnly: true },
};
