/**
 * Instruction family: port I/O. IN/OUT with an immediate port (E4-E7) or DX (EC-EF), and the
 * string forms INS/OUTS (6C-6F) with REP, through the core's IoBus (cpu.io).
 *
 * Protected-mode I/O permission (SDM vol. 1, 19.5; virtual-8086 mode is not modelled): when
 * CPL > IOPL, every port of the access (port .. port+size-1) must have its bit clear in the I/O
 * permission bitmap of the current 32-bit TSS, whose offset is the word at TSS+0x66. As the
 * hardware does, the check always reads two bytes of the bitmap (the byte holding the first
 * port's bit and the next one), and both must lie within the TSS limit; otherwise, or with a
 * 16-bit TSS, or a TSS limit below 0x67, the access is denied. Denied: #GP(0). In real mode and
 * when CPL <= IOPL every port is allowed. The check comes before anything else, also for a REP
 * INS/OUTS whose count is zero (the host CPU faults there too), and is repeated per element.
 *
 * INS checks that the destination ES:[EDI] is writable (segment and page) before it reads the
 * port, so a faulting INS does not consume device data (as Bochs and the hardware do). OUTS reads
 * the source (DS:[ESI], overridable) first. REP INS/OUTS follow the REP rules of string.ts
 * (interruptible at a quantum boundary, registers updated per element, F2 acts as F3). The class
 * cost ('io') pays for one port access; every further element of a REP form in the same
 * execution charges the same again, since each one is its own bus cycle.
 *
 * No flags are affected.
 *
 * In a guest, the IOIO intercept (svm.ts ioIntercept) is checked after the permission check and
 * before the port is touched; an intercepted access returns at once and the core performs the
 * #VMEXIT after the instruction (cpu.exitAfterInsn), without unwinding.
 */
import { insnCosts } from '../../costs.ts';
import { ACC_WRITE } from '../access.ts';
import type { Cpu } from '../cpu.ts';
import { ioIntercept } from '../svm.ts';
import { DF, IOPL } from '../flags.ts';
import { ES, type Handler, type OpTable } from '../insn.ts';
import { count, idx, rdElem, setCount, step, wrElem } from './string.ts';

const IO_CYCLES = insnCosts.io.cycles;

/** True if the current privilege may access ports port..port+size-1 (see the header). */
export function ioAllowed(cpu: Cpu, port: number, size: number): boolean {
  if (!cpu.pe || cpu.cpl <= ((cpu.flags & IOPL) >>> 12)) return true;
  const type = cpu.trAr & 0xf;
  if ((type !== 0x9 && type !== 0xb) || cpu.trLimit < 0x67) return false;
  const base = cpu.srd16((cpu.trBase + 0x66) >>> 0);
  const off = base + (port >>> 3);
  if (off + 1 > cpu.trLimit) return false;
  const bits = cpu.srd16((cpu.trBase + off) >>> 0);
  const mask = ((1 << size) - 1) << (port & 7);
  return (bits & mask) === 0;
}

/** Raises #GP(0) unless the access is permitted. */
export function checkIo(cpu: Cpu, port: number, size: number): void {
  if (!ioAllowed(cpu, port, size)) cpu.raise(13, 0);
}

function portIn(cpu: Cpu, port: number, size: number): number {
  return cpu.io.in(port, size === 1 ? 1 : size === 2 ? 2 : 4);
}
function portOut(cpu: Cpu, port: number, size: number, v: number): void {
  const sz = size === 1 ? 1 : size === 2 ? 2 : 4;
  cpu.io.out(port, sz, size === 4 ? v >>> 0 : v & (size === 1 ? 0xff : 0xffff));
}
function setAcc(cpu: Cpu, size: number, v: number): void {
  if (size === 1) cpu.setReg8(0, v); else if (size === 2) cpu.setReg16(0, v); else cpu.r[0] = v;
}

// ---- IN / OUT

/** E4/E5 (port = imm8) and EC/ED (port = DX): byte forms are even opcodes. */
const inAcc: Handler = (cpu, i) => {
  const size = (i.opcode & 1) === 0 ? 1 : i.opsz;
  const port = i.opcode >= 0xec ? cpu.r[2] & 0xffff : i.imm & 0xff;
  checkIo(cpu, port, size);
  if (cpu.guest && ioIntercept(cpu, port, size, true, false, false, i.adsz === 2, 3)) return;
  setAcc(cpu, size, portIn(cpu, port, size));
};
const outAcc: Handler = (cpu, i) => {
  const size = (i.opcode & 1) === 0 ? 1 : i.opsz;
  const port = i.opcode >= 0xec ? cpu.r[2] & 0xffff : i.imm & 0xff;
  checkIo(cpu, port, size);
  if (cpu.guest && ioIntercept(cpu, port, size, false, false, false, i.adsz === 2, 3)) return;
  portOut(cpu, port, size, cpu.r[0]);
};

// ---- INS / OUTS

/** Checks ES:off..off+size-1 for a write (segment, then paging) without writing. */
function probeWrite(cpu: Cpu, off: number, size: number): void {
  cpu.checkWrite(ES, off, size);
  const lin = (cpu.segBase[ES] + off) >>> 0;
  const user = cpu.cpl === 3;
  cpu.translate(lin, ACC_WRITE, user);
  const last = (lin + size - 1) >>> 0;
  if ((last >>> 12) !== (lin >>> 12)) cpu.translate((last & ~0xfff) >>> 0, ACC_WRITE, user);
}

function insOne(cpu: Cpu, port: number, size: number, delta: number, a16: boolean): void {
  checkIo(cpu, port, size);
  const off = idx(cpu, 7, a16);
  probeWrite(cpu, off, size);
  wrElem(cpu, ES, off, size, portIn(cpu, port, size));
  step(cpu, 7, delta, a16);
}
function outsOne(cpu: Cpu, seg: number, port: number, size: number, delta: number, a16: boolean): void {
  checkIo(cpu, port, size);
  const v = rdElem(cpu, seg, idx(cpu, 6, a16), size);
  portOut(cpu, port, size, v);
  step(cpu, 6, delta, a16);
}

const ins: Handler = (cpu, i) => {
  const size = (i.opcode & 1) === 0 ? 1 : i.opsz;
  const delta = (cpu.flags & DF) !== 0 ? -size : size;
  const a16 = i.adsz === 2, port = cpu.r[2] & 0xffff;
  if (cpu.guest) { checkIo(cpu, port, size); if (ioIntercept(cpu, port, size, true, true, i.rep !== 0, a16, 0)) return; }
  if (i.rep === 0) { insOne(cpu, port, size, delta, a16); return; }
  checkIo(cpu, port, size);
  let n = count(cpu, a16);
  if (n === 0) return;
  for (let first = true; ; first = false) {
    if (!first) cpu.cycles += IO_CYCLES;
    insOne(cpu, port, size, delta, a16);
    setCount(cpu, --n, a16);
    if (n === 0) return;
    if (cpu.cycles >= cpu.stopAt) break;
  }
  cpu.eip = cpu.insnEip;
};

const outs: Handler = (cpu, i) => {
  const size = (i.opcode & 1) === 0 ? 1 : i.opsz;
  const delta = (cpu.flags & DF) !== 0 ? -size : size;
  const a16 = i.adsz === 2, port = cpu.r[2] & 0xffff, seg = i.seg;
  if (cpu.guest) { checkIo(cpu, port, size); if (ioIntercept(cpu, port, size, false, true, i.rep !== 0, a16, seg)) return; }
  if (i.rep === 0) { outsOne(cpu, seg, port, size, delta, a16); return; }
  checkIo(cpu, port, size);
  let n = count(cpu, a16);
  if (n === 0) return;
  for (let first = true; ; first = false) {
    if (!first) cpu.cycles += IO_CYCLES;
    outsOne(cpu, seg, port, size, delta, a16);
    setCount(cpu, --n, a16);
    if (n === 0) return;
    if (cpu.cycles >= cpu.stopAt) break;
  }
  cpu.eip = cpu.insnEip;
};

export const table: OpTable = {
  0xe4: { name: 'in', ops: 'AL,Ib', exec: inAcc, cls: 'io' },
  0xe5: { name: 'in', ops: 'eAX,Ib', exec: inAcc, cls: 'io' },
  0xe6: { name: 'out', ops: 'Ib,AL', exec: outAcc, cls: 'io' },
  0xe7: { name: 'out', ops: 'Ib,eAX', exec: outAcc, cls: 'io' },
  0xec: { name: 'in', ops: 'AL,DX', exec: inAcc, cls: 'io' },
  0xed: { name: 'in', ops: 'eAX,DX', exec: inAcc, cls: 'io' },
  0xee: { name: 'out', ops: 'DX,AL', exec: outAcc, cls: 'io' },
  0xef: { name: 'out', ops: 'DX,eAX', exec: outAcc, cls: 'io' },
  0x6c: { name: 'ins', exec: ins, cls: 'io' },
  0x6d: { name: 'ins', exec: ins, cls: 'io' },
  0x6e: { name: 'outs', exec: outs, cls: 'io' },
  0x6f: { name: 'outs', exec: outs, cls: 'io' },
};
