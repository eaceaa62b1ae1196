/**
 * Instruction family: near control transfers (JMP, Jcc, CALL, RET, LOOP/LOOPE/LOOPNE, JCXZ)
 * and software interrupts (INT n, INT3, INTO, INT1/ICEBP).
 *
 * SVM (svm.ts): INT n is the INTn intercept (exit 0x75, EXITINFO1 = the vector), checked before
 * the IDT is read; ICEBP has its own intercept (0x88) before the #DB it raises. INT3 and INTO
 * raise #BP and #OF, which the exception intercepts catch (svm.ts guestDispatch), not INTn.
 */
import type { Cpu } from '../cpu.ts';
import { EV_ICEBP, EV_SOFT, EV_SOFT_EXC } from '../exceptions.ts';
import { CC_NAMES as CC, getZF, OF, testCC } from '../flags.ts';
import type { Handler, OpDef, OpTable } from '../insn.ts';
import { icpt3, icpt4, svmExit } from '../svm.ts';
import { EXIT_ICEBP, EXIT_SWINT, IC3_INTN, IC4_ICEBP } from '../vmcb.ts';
import { jccFast } from './fast.ts';

const jmpRel: Handler = (cpu, i) => { cpu.jumpNear(cpu.eip + i.imm); };
const callRel: Handler = (cpu, i) => {
  const target = ((cpu.eip + i.imm) & (i.opsz === 4 ? -1 : 0xffff)) >>> 0;
  if (target > cpu.segLimit[1]) cpu.raise(13, 0);
  cpu.push(i, cpu.eip);
  cpu.eip = target;
};
const callEv: Handler = (cpu, i) => {
  const target = i.opsz === 4 ? cpu.readE32(i) >>> 0 : cpu.readE16(i);
  if (target > cpu.segLimit[1]) cpu.raise(13, 0);
  cpu.push(i, cpu.eip);
  cpu.eip = target;
};
const jmpEv: Handler = (cpu, i) => {
  const target = i.opsz === 4 ? cpu.readE32(i) >>> 0 : cpu.readE16(i);
  cpu.jumpNear(target);
};
/** RET and RET imm16: the pop happens only if the target is within CS's limit. */
const ret: Handler = (cpu, i) => {
  const target = i.opsz === 4 ? cpu.peek32(0) >>> 0 : cpu.peek16(0);
  if (target > cpu.segLimit[1]) cpu.raise(13, 0);
  cpu.adjustSp(i.opsz + (i.opcode === 0xc2 ? i.imm : 0));
  cpu.eip = target;
};

/** The count register of LOOP/JCXZ follows the address size. */
function loopCount(cpu: Cpu, adsz: number): number {
  if (adsz === 4) { cpu.r[1] = (cpu.r[1] - 1) | 0; return cpu.r[1]; }
  const c = (cpu.r[1] - 1) & 0xffff;
  cpu.setReg16(1, c);
  return c;
}
const loop: Handler = (cpu, i) => {
  const c = loopCount(cpu, i.adsz);
  let take = c !== 0;
  if (i.opcode === 0xe1) take = take && getZF(cpu);
  else if (i.opcode === 0xe0) take = take && !getZF(cpu);
  if (take) cpu.jumpNear(cpu.eip + i.imm);
};
const jcxz: Handler = (cpu, i) => {
  const c = i.adsz === 4 ? cpu.r[1] : cpu.r[1] & 0xffff;
  if (c === 0) cpu.jumpNear(cpu.eip + i.imm);
};

const intn: Handler = (cpu, i) => {
  if (icpt3(cpu, IC3_INTN)) svmExit(cpu, EXIT_SWINT, i.imm & 0xff);
  cpu.dispatch(i.imm & 0xff, EV_SOFT, -1);
};
const int3: Handler = (cpu) => { cpu.dispatch(3, EV_SOFT_EXC, -1); };
const into: Handler = (cpu) => { if (cpu.getEflags() & OF) cpu.dispatch(4, EV_SOFT_EXC, -1); };
const icebp: Handler = (cpu) => {
  if (icpt4(cpu, IC4_ICEBP)) svmExit(cpu, EXIT_ICEBP);
  cpu.dispatch(1, EV_ICEBP, -1);
};

/** FF /2 (CALL Ev) and FF /4 (JMP Ev); alu.ts assembles group 5. */
export const grp5Near: Record<number, OpDef> = {
  2: { name: 'call', ops: 'Ev', exec: callEv, cls: 'branch' },
  4: { name: 'jmp', ops: 'Ev', exec: jmpEv, cls: 'branch' },
};

export const table: OpTable = {
  0xe8: { name: 'call', ops: 'Jz', exec: callRel, cls: 'branch' },
  0xe9: { name: 'jmp', ops: 'Jz', exec: jmpRel, cls: 'branch' },
  0xeb: { name: 'jmp', ops: 'Jb', exec: jmpRel, cls: 'branch' },
  0xc2: { name: 'ret', ops: 'Iw', exec: ret, cls: 'branch' },
  0xc3: { name: 'ret', exec: ret, cls: 'branch' },
  0xe0: { name: 'loopne', ops: 'Jb', exec: loop, cls: 'branch' },
  0xe1: { name: 'loope', ops: 'Jb', exec: loop, cls: 'branch' },
  0xe2: { name: 'loop', ops: 'Jb', exec: loop, cls: 'branch' },
  0xe3: { name: 'jcxz', ops: 'Jb', exec: jcxz, cls: 'branch' },
  0xcc: { name: 'int3', exec: int3, cls: 'intn' },
  0xcd: { name: 'int', ops: 'Ib', exec: intn, cls: 'intn' },
  0xce: { name: 'into', exec: into, cls: 'intn' },
  0xf1: { name: 'icebp', exec: icebp, cls: 'intn' },
};
for (let cc = 0; cc < 16; cc++) {
  table[0x70 + cc] = { name: 'j' + CC[cc], ops: 'Jb', exec: jccFast(cc, 'j' + CC[cc]), cls: 'branch' };
  table[0x0f80 + cc] = { name: 'j' + CC[cc], ops: 'Jz', exec: jccFast(cc, 'j' + CC[cc]), cls: 'branch' };
}
