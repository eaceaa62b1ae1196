/**
 * Instruction family: the stack. PUSH/POP of registers, immediates, memory (8F /0, FF /6) and
 * segment registers; PUSHA/POPA; PUSHF/POPF with the protected-mode IOPL rules; ENTER/LEAVE.
 *
 * Stack pointer updates follow the stack size (SS.B: ESP or SP) and address the stack through SS;
 * the operand size (0x66) decides how many bytes move. Instructions that make several stack
 * accesses compute with a local stack pointer and commit ESP only at the end, so a fault leaves
 * ESP as it was (as the host CPU does; see test/hw/cpu/stack.diff.test.ts):
 *
 * - PUSHA: the stores happen in order; a fault midway leaves the stores already made in memory
 *   and ESP unchanged.
 * - POPA: registers are written as they are popped (EDI first); a fault midway leaves the ones
 *   already popped changed and ESP unchanged. This is what the AMD host does; it is invisible to
 *   a program that does not catch the fault.
 * - ENTER: EBP and the nesting-level copies are stored in order; after the last store the new
 *   stack top (ESP - size) is checked for a write of the operand size without writing it (AMD and
 *   Bochs do this "probe"), so an allocation that runs off the stack faults inside ENTER. ESP and
 *   EBP change only when everything succeeded.
 * - POP Ev: the value is read, ESP is incremented, and then the destination address is computed
 *   (so POP [ESP+d] uses the incremented ESP, SDM); if the store faults, ESP is restored.
 * - PUSH ESP pushes the value before the decrement; POP ESP loads ESP with the popped value.
 *
 * Segment registers: a 32-bit PUSH Sreg stores the selector zero-extended to 32 bits. This is
 * what AMD processors (the host, and the vendor our CPUID names) do; Intel's recent cores write
 * only the low word and leave the upper word of the slot unchanged (SDM, PUSH). A 32-bit POP
 * Sreg reads a dword and uses its low word. POP SS inhibits interrupts until the next
 * instruction has completed, like MOV SS.
 *
 * POPF (SDM, POPF; virtual-8086 mode is not modelled): real mode and CPL 0 may change every
 * flag but VM (and VIF/VIP); CPL > 0 cannot change IOPL; CPL > IOPL cannot change IF (no
 * fault, the bit is kept). A 32-bit POPF clears RF; the 16-bit form changes only bits 0-15.
 * PUSHF stores EFLAGS with VM and RF cleared.
 *
 * SVM (svm.ts): PUSHF and POPF are intercepted (exits 0x70, 0x71) before they touch the stack.
 *
 * No flags are undefined in this family.
 */
import { extraCosts } from '../../costs.ts';
import type { Cpu } from '../cpu.ts';
import { AC, ARITH, DF, ID, IF, IOPL, NT, RF, TF, VM } from '../flags.ts';
import { CS, DS, ES, FS, GS, group, type Handler, type OpDef, type OpTable, SS } from '../insn.ts';
import { loadDataSeg } from '../segmentation.ts';
import { icpt3, svmExit } from '../svm.ts';
import { EXIT_POPF, EXIT_PUSHF, IC3_POPF, IC3_PUSHF } from '../vmcb.ts';
import { ACC_WRITE } from '../access.ts';

const STACK_ACCESS = extraCosts.stackAccess.cycles;

/** Sets ESP (32-bit stack, mask -1) or SP (16-bit stack, mask 0xffff) to `sp`. */
function commitSp(cpu: Cpu, sp: number, mask: number): void {
  if (mask === -1) cpu.r[4] = sp;
  else cpu.r[4] = (cpu.r[4] & ~0xffff) | (sp & 0xffff);
}

function rdStack(cpu: Cpu, sp: number, size: number): number {
  return size === 4 ? cpu.rd32(SS, sp) : cpu.rd16(SS, sp);
}
function wrStack(cpu: Cpu, sp: number, size: number, v: number): void {
  if (size === 4) cpu.wr32(SS, sp, v); else cpu.wr16(SS, sp, v);
}

/**
 * Checks that seg:off..off+size-1 could be written (segment limit and rights, then paging with
 * the current privilege, setting A/D as a write would) without writing it.
 */
function probeWrite(cpu: Cpu, s: number, off: number, size: number): void {
  cpu.checkWrite(s, off, size);
  const lin = (cpu.segBase[s] + off) >>> 0;
  const user = cpu.cpl === 3;
  cpu.translate(lin, ACC_WRITE, user);
  const last = (lin + size - 1) >>> 0;
  if ((last >>> 12) !== (lin >>> 12)) cpu.translate((last & ~0xfff) >>> 0, ACC_WRITE, user);
}

// ---- registers, immediates, memory

const pushReg: Handler = (cpu, i) => {
  const n = i.opcode & 7;
  if (i.opsz === 4) cpu.push32(cpu.r[n]); else cpu.push16(cpu.r[n]);
};
const popReg: Handler = (cpu, i) => {
  const n = i.opcode & 7;
  if (i.opsz === 4) { const v = cpu.pop32(); cpu.r[n] = v; } else { const v = cpu.pop16(); cpu.setReg16(n, v); }
};
const pushImm: Handler = (cpu, i) => {
  if (i.opsz === 4) cpu.push32(i.imm); else cpu.push16(i.imm);
};
/** FF /6: the operand is read (with the old ESP) before the push. */
const pushEv: Handler = (cpu, i) => {
  if (i.opsz === 4) cpu.push32(cpu.readE32(i)); else cpu.push16(cpu.readE16(i));
};
/** 8F /0. */
const popEv: Handler = (cpu, i) => {
  const size = i.opsz, mask = cpu.spMask;
  const sp = cpu.sp;
  const v = rdStack(cpu, sp, size);
  const newSp = ((sp + size) & mask) >>> 0;
  if (i.mod === 3) {
    commitSp(cpu, newSp, mask);
    if (size === 4) cpu.r[i.rm] = v; else cpu.setReg16(i.rm, v);
    return;
  }
  const oldEsp = cpu.r[4];
  commitSp(cpu, newSp, mask);
  const off = cpu.ea(i); // with the incremented ESP
  cpu.r[4] = oldEsp;
  if (size === 4) cpu.wr32(i.seg, off, v); else cpu.wr16(i.seg, off, v);
  commitSp(cpu, newSp, mask);
};

// ---- PUSHA / POPA

const pusha: Handler = (cpu, i) => {
  const size = i.opsz, mask = cpu.spMask, esp = cpu.r[4];
  let sp = cpu.sp;
  for (let n = 0; n < 8; n++) {
    sp = ((sp - size) & mask) >>> 0;
    wrStack(cpu, sp, size, n === 4 ? esp : cpu.r[n]);
  }
  commitSp(cpu, sp, mask);
  cpu.cycles += 7 * STACK_ACCESS;
};
const popa: Handler = (cpu, i) => {
  const size = i.opsz, mask = cpu.spMask;
  let sp = cpu.sp;
  for (let n = 7; n >= 0; n--) {
    if (n !== 4) {
      const v = rdStack(cpu, sp, size);
      if (size === 4) cpu.r[n] = v; else cpu.setReg16(n, v);
    }
    sp = ((sp + size) & mask) >>> 0;
  }
  commitSp(cpu, sp, mask);
  cpu.cycles += 7 * STACK_ACCESS;
};

// ---- PUSHF / POPF

const pushf: Handler = (cpu, i) => {
  if (icpt3(cpu, IC3_PUSHF)) svmExit(cpu, EXIT_PUSHF);
  const f = cpu.getEflags() & ~(RF | VM);
  if (i.opsz === 4) cpu.push32(f); else cpu.push16(f);
};

/** Flags a 32-bit POPF may change at CPL 0 (and in real mode): all but RF, VM, VIF, VIP. */
const POPF_ALL = ARITH | TF | IF | DF | IOPL | NT | AC | ID;

const popf: Handler = (cpu, i) => {
  if (icpt3(cpu, IC3_POPF)) svmExit(cpu, EXIT_POPF);
  const v = i.opsz === 4 ? cpu.pop32() : cpu.pop16();
  let mask = i.opsz === 4 ? POPF_ALL : POPF_ALL & 0xffff;
  if (cpu.pe) {
    if (cpu.cpl > 0) mask &= ~IOPL;
    if (cpu.cpl > ((cpu.flags & IOPL) >>> 12)) mask &= ~IF;
  }
  const wasIf = cpu.flags & IF;
  if (i.opsz === 4) mask |= RF; // RF is cleared: v's RF bit is replaced by 0 below
  cpu.setEflags(i.opsz === 4 ? v & ~RF : v, mask);
  // setting IF lets a pending interrupt in after this instruction: end the run of instructions
  if (wasIf === 0 && (cpu.flags & IF) !== 0) cpu.recheckEvents();
};

// ---- ENTER / LEAVE

/** ENTER Iw, Ib (SDM, ENTER): nesting level = imm8 mod 32. */
const enter: Handler = (cpu, i) => {
  const size = i.opsz, mask = cpu.spMask;
  const alloc = i.imm & 0xffff, level = i.imm2 & 0x1f;
  let sp = cpu.sp;
  sp = ((sp - size) & mask) >>> 0;
  wrStack(cpu, sp, size, cpu.r[5]);
  const frameTemp = sp;
  if (level > 0) {
    let bp = (cpu.r[5] & mask) >>> 0;
    for (let k = 1; k < level; k++) {
      bp = ((bp - size) & mask) >>> 0;
      const v = rdStack(cpu, bp, size);
      sp = ((sp - size) & mask) >>> 0;
      wrStack(cpu, sp, size, v);
    }
    sp = ((sp - size) & mask) >>> 0;
    wrStack(cpu, sp, size, frameTemp);
    cpu.cycles += (2 * level - 1) * STACK_ACCESS;
  }
  sp = ((sp - alloc) & mask) >>> 0;
  probeWrite(cpu, SS, sp, size);
  if (mask === -1) cpu.r[5] = frameTemp; else cpu.setReg16(5, frameTemp);
  commitSp(cpu, sp, mask);
};

/** LEAVE: ESP (SP) <- EBP (BP), then pop EBP (BP); nothing changes if the pop faults. */
const leave: Handler = (cpu, i) => {
  const mask = cpu.spMask;
  const bp = (cpu.r[5] & mask) >>> 0;
  const v = rdStack(cpu, bp, i.opsz);
  commitSp(cpu, ((bp + i.opsz) & mask) >>> 0, mask);
  if (i.opsz === 4) cpu.r[5] = v; else cpu.setReg16(5, v);
};

// ---- segment registers

function pushSeg(s: number): Handler {
  return (cpu, i) => {
    const sel = cpu.segSel[s];
    if (i.opsz === 4) cpu.push32(sel); else cpu.push16(sel);
  };
}

/** POP Sreg: the load's checks come before ESP moves (by the old stack size). */
function popSeg(s: number): Handler {
  return (cpu, i) => {
    const mask = cpu.spMask, sp = cpu.sp;
    const v = rdStack(cpu, sp, i.opsz);
    loadDataSeg(cpu, s, v & 0xffff);
    commitSp(cpu, ((sp + i.opsz) & mask) >>> 0, mask);
    if (s === SS) {
      // interrupts (and the run's end) wait until the next instruction has completed
      cpu.irqShadow = true;
      cpu.recheckEvents();
    }
  };
}

/** FF /6 (PUSH Ev); alu.ts assembles group 5. */
export const grp5Stack: Record<number, OpDef> = {
  6: { name: 'push', ops: 'Ev', exec: pushEv, cls: 'stack' },
};

export const table: OpTable = {
  0x68: { name: 'push', ops: 'Iz', exec: pushImm, cls: 'stack' },
  0x6a: { name: 'push', ops: 'Ibs', exec: pushImm, cls: 'stack' },
  0x8f: { name: 'grp1a', group: group({ 0: { name: 'pop', ops: 'Ev', exec: popEv, cls: 'stack' } }) },
  0x60: { name: 'pusha', exec: pusha, cls: 'stack' },
  0x61: { name: 'popa', exec: popa, cls: 'stack' },
  0x9c: { name: 'pushf', exec: pushf, cls: 'stack' },
  0x9d: { name: 'popf', exec: popf, cls: 'stack' },
  0xc8: { name: 'enter', ops: 'Iw,Ib', exec: enter, cls: 'stack' },
  0xc9: { name: 'leave', exec: leave, cls: 'stack' },
  0x06: { name: 'push', ops: 'ES', exec: pushSeg(ES), cls: 'stack' },
  0x07: { name: 'pop', ops: 'ES', exec: popSeg(ES), cls: 'segLoad' },
  0x0e: { name: 'push', ops: 'CS', exec: pushSeg(CS), cls: 'stack' },
  0x16: { name: 'push', ops: 'SS', exec: pushSeg(SS), cls: 'stack' },
  0x17: { name: 'pop', ops: 'SS', exec: popSeg(SS), cls: 'segLoad' },
  0x1e: { name: 'push', ops: 'DS', exec: pushSeg(DS), cls: 'stack' },
  0x1f: { name: 'pop', ops: 'DS', exec: popSeg(DS), cls: 'segLoad' },
  0x0fa0: { name: 'push', ops: 'FS', exec: pushSeg(FS), cls: 'stack' },
  0x0fa1: { name: 'pop', ops: 'FS', exec: popSeg(FS), cls: 'segLoad' },
  0x0fa8: { name: 'push', ops: 'GS', exec: pushSeg(GS), cls: 'stack' },
  0x0fa9: { name: 'pop', ops: 'GS', exec: popSeg(GS), cls: 'segLoad' },
};
for (let n = 0; n < 8; n++) {
  table[0x50 + n] = { name: 'push', ops: 'Zv', exec: pushReg, cls: 'stack' };
  table[0x58 + n] = { name: 'pop', ops: 'Zv', exec: popReg, cls: 'stack' };
}
