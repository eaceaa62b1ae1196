/**
 * Instruction family: data movement (MOV in all forms including segment registers and moffs,
 * LEA, XCHG, MOVZX/MOVSX, CBW/CWDE/CWD/CDQ) and the NOPs (90, F3 90 = PAUSE, 0F 1F multi-byte).
 */
import type { Cpu } from '../cpu.ts';
import { CS, group, type Handler, SS, type OpTable } from '../insn.ts';
import { loadDataSeg } from '../segmentation.ts';
import { icpt3, svmExit } from '../svm.ts';
import { EXIT_PAUSE, IC3_PAUSE } from '../vmcb.ts';

const movEbGb: Handler = (cpu, i) => { cpu.writeE8(i, cpu.getReg8(i.reg)); };
const movEvGv: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    if (i.mod === 3) cpu.r[i.rm] = cpu.r[i.reg];
    else cpu.wr32(i.seg, cpu.ea(i), cpu.r[i.reg]);
  } else cpu.writeE16(i, cpu.r[i.reg]);
};
const movGbEb: Handler = (cpu, i) => { cpu.setReg8(i.reg, cpu.readE8(i)); };
const movGvEv: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    if (i.mod === 3) cpu.r[i.reg] = cpu.r[i.rm];
    else cpu.r[i.reg] = cpu.rd32(i.seg, cpu.ea(i));
  } else cpu.setReg16(i.reg, cpu.readE16(i));
};

/** MOV Ew, Sreg: a register destination gets the zero-extended selector at 32-bit operand size. */
const movEwSw: Handler = (cpu, i) => {
  if (i.reg > 5) cpu.raise(6);
  const v = cpu.segSel[i.reg];
  if (i.mod === 3) { if (i.opsz === 4) cpu.r[i.rm] = v; else cpu.setReg16(i.rm, v); }
  else cpu.wr16(i.seg, cpu.ea(i), v);
};
/** MOV Sreg, Ew: CS is #UD; a load of SS inhibits interrupts for one instruction. */
const movSwEw: Handler = (cpu, i) => {
  if (i.reg > 5 || i.reg === CS) cpu.raise(6);
  loadDataSeg(cpu, i.reg, cpu.readE16(i));
  if (i.reg === SS) { cpu.irqShadow = true; cpu.recheckEvents(); }
};

const lea: Handler = (cpu, i) => {
  const off = ((cpu.r[i.base] + (cpu.r[i.index] << i.scale) + i.disp) & i.adMask) | 0;
  if (i.opsz === 4) cpu.r[i.reg] = off; else cpu.setReg16(i.reg, off);
};

const movALOb: Handler = (cpu, i) => { cpu.setReg8(0, cpu.rd8(i.seg, cpu.ea(i))); };
const movAXOv: Handler = (cpu, i) => {
  if (i.opsz === 4) cpu.r[0] = cpu.rd32(i.seg, cpu.ea(i)); else cpu.setReg16(0, cpu.rd16(i.seg, cpu.ea(i)));
};
const movObAL: Handler = (cpu, i) => { cpu.wr8(i.seg, cpu.ea(i), cpu.r[0]); };
const movOvAX: Handler = (cpu, i) => {
  if (i.opsz === 4) cpu.wr32(i.seg, cpu.ea(i), cpu.r[0]); else cpu.wr16(i.seg, cpu.ea(i), cpu.r[0]);
};

const movRbIb: Handler = (cpu, i) => { cpu.setReg8(i.opcode & 7, i.imm); };
const movRvIz: Handler = (cpu, i) => {
  if (i.opsz === 4) cpu.r[i.opcode & 7] = i.imm; else cpu.setReg16(i.opcode & 7, i.imm);
};
const movEbIb: Handler = (cpu, i) => { cpu.writeE8(i, i.imm); };
const movEvIz: Handler = (cpu, i) => { cpu.writeEv(i, i.imm); };

/** XCHG with memory is implicitly locked; the class cost says so. */
const xchgEbGb: Handler = (cpu, i) => {
  if (i.mod === 3) {
    const a = cpu.getReg8(i.rm);
    cpu.setReg8(i.rm, cpu.getReg8(i.reg));
    cpu.setReg8(i.reg, a);
  } else {
    const off = cpu.ea(i);
    cpu.checkRmw(i.seg, off, 1);
    const a = cpu.rd8(i.seg, off);
    cpu.wr8(i.seg, off, cpu.getReg8(i.reg));
    cpu.setReg8(i.reg, a);
  }
};
const xchgEvGv: Handler = (cpu, i) => {
  if (i.mod === 3) {
    if (i.opsz === 4) { const a = cpu.r[i.rm]; cpu.r[i.rm] = cpu.r[i.reg]; cpu.r[i.reg] = a; }
    else { const a = cpu.r[i.rm] & 0xffff; cpu.setReg16(i.rm, cpu.r[i.reg]); cpu.setReg16(i.reg, a); }
  } else {
    const off = cpu.ea(i);
    cpu.checkRmw(i.seg, off, i.opsz);
    if (i.opsz === 4) { const a = cpu.rd32(i.seg, off); cpu.wr32(i.seg, off, cpu.r[i.reg]); cpu.r[i.reg] = a; }
    else { const a = cpu.rd16(i.seg, off); cpu.wr16(i.seg, off, cpu.r[i.reg]); cpu.setReg16(i.reg, a); }
  }
};
const xchgAX: Handler = (cpu, i) => {
  const n = i.opcode & 7;
  if (i.opsz === 4) { const a = cpu.r[0]; cpu.r[0] = cpu.r[n]; cpu.r[n] = a; }
  else { const a = cpu.r[0] & 0xffff; cpu.setReg16(0, cpu.r[n]); cpu.setReg16(n, a); }
};
const nop: Handler = () => { /* no operation */ };
/** PAUSE (F3 90): a NOP here; in a guest, the PAUSE intercept exits (0x77) on every PAUSE (no pause filter). */
const pause: Handler = (cpu) => { if (icpt3(cpu, IC3_PAUSE)) svmExit(cpu, EXIT_PAUSE); };

const movzxB: Handler = (cpu, i) => { const v = cpu.readE8(i); if (i.opsz === 4) cpu.r[i.reg] = v; else cpu.setReg16(i.reg, v); };
const movzxW: Handler = (cpu, i) => { const v = cpu.readE16(i); if (i.opsz === 4) cpu.r[i.reg] = v; else cpu.setReg16(i.reg, v); };
const movsxB: Handler = (cpu, i) => { const v = (cpu.readE8(i) << 24) >> 24; if (i.opsz === 4) cpu.r[i.reg] = v; else cpu.setReg16(i.reg, v); };
const movsxW: Handler = (cpu, i) => { const v = (cpu.readE16(i) << 16) >> 16; if (i.opsz === 4) cpu.r[i.reg] = v; else cpu.setReg16(i.reg, v); };

const cbw: Handler = (cpu, i) => {
  if (i.opsz === 4) cpu.r[0] = (cpu.r[0] << 16) >> 16; // CWDE
  else cpu.setReg16(0, (cpu.r[0] << 24) >> 24);      // CBW
};
const cwd: Handler = (cpu, i) => {
  if (i.opsz === 4) cpu.r[2] = cpu.r[0] >> 31;           // CDQ
  else cpu.setReg16(2, (cpu.r[0] << 16) >> 31);          // CWD
};

export const table: OpTable = {
  0x88: { name: 'mov', ops: 'Eb,Gb', exec: movEbGb, cls: 'store' },
  0x89: { name: 'mov', ops: 'Ev,Gv', exec: movEvGv, cls: 'store' },
  0x8a: { name: 'mov', ops: 'Gb,Eb', exec: movGbEb, cls: 'load' },
  0x8b: { name: 'mov', ops: 'Gv,Ev', exec: movGvEv, cls: 'load' },
  0x8c: { name: 'mov', ops: 'Ew,Sw', exec: movEwSw },
  0x8d: { name: 'lea', ops: 'Gv,M', exec: lea, memOnly: true },
  0x8e: { name: 'mov', ops: 'Sw,Ew', exec: movSwEw, cls: 'segLoad' },
  0x86: { name: 'xchg', ops: 'Eb,Gb', exec: xchgEbGb, lockable: true, clsM: 'locked' },
  0x87: { name: 'xchg', ops: 'Ev,Gv', exec: xchgEvGv, lockable: true, clsM: 'locked' },
  0x90: { name: 'nop', exec: nop, repVariant: { name: 'pause', exec: pause } },
  0x98: { name: 'cbw', exec: cbw },
  0x99: { name: 'cwd', exec: cwd },
  0xa0: { name: 'mov', ops: 'AL,Ob', exec: movALOb, cls: 'load' },
  0xa1: { name: 'mov', ops: 'eAX,Ov', exec: movAXOv, cls: 'load' },
  0xa2: { name: 'mov', ops: 'Ob,AL', exec: movObAL, cls: 'store' },
  0xa3: { name: 'mov', ops: 'Ov,eAX', exec: movOvAX, cls: 'store' },
  0xc6: { name: 'grp11', group: group({ 0: { name: 'mov', ops: 'Eb,Ib', exec: movEbIb, cls: 'store' } }) },
  0xc7: { name: 'grp11', group: group({ 0: { name: 'mov', ops: 'Ev,Iz', exec: movEvIz, cls: 'store' } }) },
  0x0fb6: { name: 'movzx', ops: 'Gv,Eb', exec: movzxB },
  0x0fb7: { name: 'movzx', ops: 'Gv,Ew', exec: movzxW },
  0x0fbe: { name: 'movsx', ops: 'Gv,Eb', exec: movsxB },
  0x0fbf: { name: 'movsx', ops: 'Gv,Ew', exec: movsxW },
  0x0f1f: { name: 'nop', ops: 'Ev', exec: nop },
};
// 0F 19 and 0F 1C-0F 1E: reserved hint NOPs on P6 and later, like 0F 1F (Intel SDM vol. 2B, "NOP";
// Bochs decodes them so for CPU level 6). Static glibc's ENDBR32 (F3 0F 1E FB) is one. 0F 1A/1B are
// hint NOPs too on a P6, but objdump (our disassembler's reference) decodes them as MPX: left out.
for (const op of [0x0f19, 0x0f1c, 0x0f1d, 0x0f1e]) table[op] = { name: 'nop', ops: 'Ev', exec: nop };
for (let n = 1; n < 8; n++) table[0x90 + n] = { name: 'xchg', ops: 'Zv,eAX', exec: xchgAX };
for (let n = 0; n < 8; n++) {
  table[0xb0 + n] = { name: 'mov', ops: 'Zb,Ib', exec: movRbIb };
  table[0xb8 + n] = { name: 'mov', ops: 'Zv,Iz', exec: movRvIz };
}

export type { Cpu };
