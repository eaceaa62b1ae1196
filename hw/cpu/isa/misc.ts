/**
 * Instruction family: flag moves and small odds and ends.
 *
 * - LAHF (9F): AH <- SF:ZF:0:AF:0:PF:1:CF. SAHF (9E): SF ZF AF PF CF <- AH (OF unchanged).
 * - CLC STC CMC (F8 F9 F5) and CLD STD (FC FD).
 * - XLAT (D7): AL <- [seg:(E)BX + AL] (AL unsigned, the sum wrapped to the address size, DS
 *   unless overridden).
 * - BOUND Gv,Ma (62, memory only, else #UD): the signed index is checked against the bound pair
 *   at the operand (lower, then upper, each of the operand size); outside it raises #BR
 *   (vector 5, a fault; Linux reports it as SIGSEGV with trapno 5).
 * - SALC (D6): AL <- CF ? FF : 00, flags unchanged. Undocumented by Intel, present on the P6
 *   (and on AMD parts outside 64-bit mode).
 */
import type { Cpu } from '../cpu.ts';
import { AF, CF, DF, getCF, materialize, PF, SF, ZF } from '../flags.ts';
import type { Handler, OpTable } from '../insn.ts';

const LAHF_BITS = SF | ZF | AF | PF | CF;

/** Sets CF to `cf` (0/1) without computing the other lazy flags. */
function putCF(cpu: Cpu, cf: number): void {
  cpu.flags = (cpu.flags & ~CF) | cf;
  cpu.lazy &= ~CF;
}

const lahf: Handler = (cpu) => { cpu.setReg8(4, (materialize(cpu) & LAHF_BITS) | 2); };
const sahf: Handler = (cpu) => {
  const f = materialize(cpu);
  cpu.flags = (f & ~LAHF_BITS) | ((cpu.r[0] >>> 8) & LAHF_BITS);
};
const clc: Handler = (cpu) => { putCF(cpu, 0); };
const stc: Handler = (cpu) => { putCF(cpu, 1); };
const cmc: Handler = (cpu) => { putCF(cpu, getCF(cpu) ^ 1); };
const cld: Handler = (cpu) => { cpu.flags &= ~DF; };
const std: Handler = (cpu) => { cpu.flags |= DF; };

const xlat: Handler = (cpu, i) => {
  const off = ((cpu.r[3] + (cpu.r[0] & 0xff)) & i.adMask) >>> 0;
  cpu.setReg8(0, cpu.rd8(i.seg, off));
};

const bound: Handler = (cpu, i) => {
  const off = cpu.ea(i);
  if (i.opsz === 4) {
    const lo = cpu.rd32(i.seg, off), hi = cpu.rd32(i.seg, ((off + 4) & i.adMask) >>> 0);
    const v = cpu.r[i.reg];
    if (v < lo || v > hi) cpu.raise(5);
  } else {
    const lo = (cpu.rd16(i.seg, off) << 16) >> 16, hi = (cpu.rd16(i.seg, ((off + 2) & i.adMask) >>> 0) << 16) >> 16;
    const v = (cpu.r[i.reg] << 16) >> 16;
    if (v < lo || v > hi) cpu.raise(5);
  }
};

const salc: Handler = (cpu) => { cpu.setReg8(0, getCF(cpu) ? 0xff : 0); };

export const table: OpTable = {
  0x9f: { name: 'lahf', exec: lahf },
  0x9e: { name: 'sahf', exec: sahf },
  0xf8: { name: 'clc', exec: clc },
  0xf9: { name: 'stc', exec: stc },
  0xf5: { name: 'cmc', exec: cmc },
  0xfc: { name: 'cld', exec: cld },
  0xfd: { name: 'std', exec: std },
  0xd7: { name: 'xlat', exec: xlat, cls: 'load' },
  0x62: { name: 'bound', ops: 'Gv,Ma', exec: bound, memOnly: true },
  0xd6: { name: 'salc', exec: salc },
};
