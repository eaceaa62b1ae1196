/**
 * Instruction family: the atomic read-modify-write instructions of the i486/P6, all lockable
 * with a memory destination (LOCK on a register form is #UD, as the decoder enforces).
 *
 * - XADD Eb,Gb / Ev,Gv (0F C0/C1): TEMP <- SRC + DEST; SRC <- DEST; DEST <- TEMP. Flags as ADD.
 *   With the same register as both operands the sum wins (it is written last).
 * - CMPXCHG Eb,Gb / Ev,Gv (0F B0/B1): flags as CMP accumulator, DEST. Equal: DEST <- SRC.
 *   Not equal: the accumulator gets DEST, and DEST is written with its own value, as on
 *   hardware (the locked bus cycle always ends with a write: a read-only page faults either way).
 * - CMPXCHG8B Mq (0F C7 /1, memory only, else #UD): EDX:EAX against the qword. Equal: ZF = 1 and
 *   the qword <- ECX:EBX; else ZF = 0, EDX:EAX <- the qword and the qword is written back. Only
 *   ZF changes.
 *
 * Memory operands are read with write intent (Cpu.checkRmw: a fault on them is a write fault,
 * error code W = 1, as on hardware), and memory is written before any register or flag, so a
 * fault leaves the state as it was.
 * Costs: 'simple' (the decoder charges 'locked' when a LOCK prefix is present).
 */
import type { Cpu } from '../cpu.ts';
import { materialize, OP_ADD, OP_SUB, ZF } from '../flags.ts';
import { group, type Handler, type OpTable } from '../insn.ts';

const xaddEbGb: Handler = (cpu, i) => {
  const s = cpu.getReg8(i.reg);
  if (i.mod === 3) {
    const d = cpu.getReg8(i.rm);
    const t = d + s;
    cpu.setReg8(i.reg, d);
    cpu.setReg8(i.rm, t);
    cpu.setLazy(OP_ADD, 0, d, s, t);
  } else {
    const off = cpu.ea(i);
    cpu.checkRmw(i.seg, off, 1);
    const d = cpu.rd8(i.seg, off);
    const t = d + s;
    cpu.wr8(i.seg, off, t);
    cpu.setReg8(i.reg, d);
    cpu.setLazy(OP_ADD, 0, d, s, t);
  }
};

const xaddEvGv: Handler = (cpu, i) => {
  if (i.opsz === 4) {
    const s = cpu.r[i.reg];
    if (i.mod === 3) {
      const d = cpu.r[i.rm];
      const t = (d + s) | 0;
      cpu.r[i.reg] = d;
      cpu.r[i.rm] = t;
      cpu.setLazy(OP_ADD, 2, d, s, t);
    } else {
      const off = cpu.ea(i);
      cpu.checkRmw(i.seg, off, 4);
      const d = cpu.rd32(i.seg, off);
      const t = (d + s) | 0;
      cpu.wr32(i.seg, off, t);
      cpu.r[i.reg] = d;
      cpu.setLazy(OP_ADD, 2, d, s, t);
    }
  } else {
    const s = cpu.r[i.reg] & 0xffff;
    if (i.mod === 3) {
      const d = cpu.r[i.rm] & 0xffff;
      const t = d + s;
      cpu.setReg16(i.reg, d);
      cpu.setReg16(i.rm, t);
      cpu.setLazy(OP_ADD, 1, d, s, t);
    } else {
      const off = cpu.ea(i);
      cpu.checkRmw(i.seg, off, 2);
      const d = cpu.rd16(i.seg, off);
      const t = d + s;
      cpu.wr16(i.seg, off, t);
      cpu.setReg16(i.reg, d);
      cpu.setLazy(OP_ADD, 1, d, s, t);
    }
  }
};

const cmpxchgEbGb: Handler = (cpu, i) => {
  const acc = cpu.r[0] & 0xff;
  const mem = i.mod !== 3;
  const off = mem ? cpu.ea(i) : 0;
  if (mem) cpu.checkRmw(i.seg, off, 1);
  const d = mem ? cpu.rd8(i.seg, off) : cpu.getReg8(i.rm);
  const eq = acc === d;
  const nv = eq ? cpu.getReg8(i.reg) : d;
  if (mem) cpu.wr8(i.seg, off, nv); else cpu.setReg8(i.rm, nv);
  if (!eq) cpu.setReg8(0, d);
  cpu.setLazy(OP_SUB, 0, acc, d, acc - d);
};

const cmpxchgEvGv: Handler = (cpu, i) => {
  const mem = i.mod !== 3;
  const off = mem ? cpu.ea(i) : 0;
  if (i.opsz === 4) {
    const acc = cpu.r[0];
    if (mem) cpu.checkRmw(i.seg, off, 4);
    const d = mem ? cpu.rd32(i.seg, off) : cpu.r[i.rm];
    const eq = acc === d;
    const nv = eq ? cpu.r[i.reg] : d;
    if (mem) cpu.wr32(i.seg, off, nv); else cpu.r[i.rm] = nv;
    if (!eq) cpu.r[0] = d;
    cpu.setLazy(OP_SUB, 2, acc, d, (acc - d) | 0);
  } else {
    const acc = cpu.r[0] & 0xffff;
    if (mem) cpu.checkRmw(i.seg, off, 2);
    const d = mem ? cpu.rd16(i.seg, off) : cpu.r[i.rm] & 0xffff;
    const eq = acc === d;
    const nv = eq ? cpu.r[i.reg] & 0xffff : d;
    if (mem) cpu.wr16(i.seg, off, nv); else cpu.setReg16(i.rm, nv);
    if (!eq) cpu.setReg16(0, d);
    cpu.setLazy(OP_SUB, 1, acc, d, acc - d);
  }
};

const cmpxchg8b: Handler = (cpu, i) => {
  const off = cpu.ea(i);
  const off4 = ((off + 4) & i.adMask) >>> 0;
  // Read with write intent; both dwords are then known writable, so the two stores below cannot
  // fault halfway (the qword may straddle two pages).
  cpu.checkRmw(i.seg, off, 4);
  cpu.checkRmw(i.seg, off4, 4);
  const lo = cpu.rd32(i.seg, off), hi = cpu.rd32(i.seg, off4);
  const eq = lo === cpu.r[0] && hi === cpu.r[2];
  if (eq) {
    cpu.wr32(i.seg, off, cpu.r[3]);
    cpu.wr32(i.seg, off4, cpu.r[1]);
  } else {
    cpu.wr32(i.seg, off, lo);
    cpu.wr32(i.seg, off4, hi);
    cpu.r[0] = lo; cpu.r[2] = hi;
  }
  materialize(cpu);
  cpu.flags = eq ? cpu.flags | ZF : cpu.flags & ~ZF;
};

export const table: OpTable = {
  0x0fc0: { name: 'xadd', ops: 'Eb,Gb', exec: xaddEbGb, lockable: true },
  0x0fc1: { name: 'xadd', ops: 'Ev,Gv', exec: xaddEvGv, lockable: true },
  0x0fb0: { name: 'cmpxchg', ops: 'Eb,Gb', exec: cmpxchgEbGb, lockable: true },
  0x0fb1: { name: 'cmpxchg', ops: 'Ev,Gv', exec: cmpxchgEvGv, lockable: true },
  0x0fc7: {
    name: 'grp9',
    group: group({ 1: { name: 'cmpxchg8b', ops: 'Mq', exec: cmpxchg8b, memOnly: true, lockable: true } }),
  },
};
