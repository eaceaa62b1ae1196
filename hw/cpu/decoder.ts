/**
 * The decoder: prefixes, opcode (one or two bytes), ModRM/SIB/displacement and immediates, driven
 * by the operand specifications of the opcode table (optable.ts). Produces one Insn; the CPU
 * caches it per physical address.
 *
 * Bytes are read through the CPU's instruction fetch (ITLB, #PF); an instruction that crosses a
 * page boundary is marked non-cacheable. More than 15 bytes is #GP(0). An opcode with no table
 * entry becomes an Insn whose handler raises #UD and counts the opcode (Cpu.unimplemented).
 */
import { insnCosts } from '../costs.ts';
import type { Cpu } from './cpu.ts';
import { ACC_EXEC } from './access.ts';
import { CS, DS, ES, FS, GS, Insn, type OpDef, SS, ZERO_REG } from './insn.ts';
import { prepared, type PreparedDef, ONE_BYTE, TWO_BYTE } from './optable.ts';

/** Immediate kinds derived from operand specs (see PreparedDef). */
export const IMM_NONE = 0, IMM_B = 1, IMM_BS = 2, IMM_W = 3, IMM_Z = 4, IMM_D = 5, IMM_JB = 6, IMM_JZ = 7, IMM_AP = 8, IMM_O = 9;

class Reader {
  cpu!: Cpu;
  start = 0;
  pos = 0;
  page = -1;
  base = 0;
  crossed = false;

  reset(cpu: Cpu, lin: number): void {
    this.cpu = cpu; this.start = lin; this.pos = lin; this.page = -1; this.crossed = false;
  }

  byte(): number {
    if (this.pos - this.start >= 15) this.cpu.raise(13, 0);
    const lin = this.pos >>> 0;
    const vpn = lin >>> 12;
    if (vpn !== this.page) {
      if (this.page !== -1) this.crossed = true;
      this.base = this.cpu.translate(lin, ACC_EXEC, this.cpu.cpl === 3) & ~0xfff;
      this.page = vpn;
    }
    this.pos++;
    return this.cpu.mem.read((this.base | (lin & 0xfff)) >>> 0, 1);
  }
  word(): number { const a = this.byte(); return a | (this.byte() << 8); }
  dword(): number { const a = this.word(); return (a | (this.word() << 16)) | 0; }
}

const rd = new Reader();

function udHandler(cpu: Cpu, i: Insn): void { cpu.unimplementedOpcode(i.opcode); }
function ud(cpu: Cpu): void { cpu.raise(6); }

export function decode(cpu: Cpu, lin: number): Insn {
  rd.reset(cpu, lin);
  const i = new Insn(udHandler);
  const mode = cpu.codeMode;
  i.mode = mode;
  let opsz = mode ? 4 : 2, adsz = mode ? 4 : 2;
  let b: number;
  for (;;) {
    b = rd.byte();
    switch (b) {
      case 0x66: opsz = mode ? 2 : 4; continue;
      case 0x67: adsz = mode ? 2 : 4; continue;
      case 0xf0: i.lock = true; continue;
      case 0xf2: i.rep = 2; continue;
      case 0xf3: i.rep = 1; continue;
      case 0x26: i.segOverride = ES; continue;
      case 0x2e: i.segOverride = CS; continue;
      case 0x36: i.segOverride = SS; continue;
      case 0x3e: i.segOverride = DS; continue;
      case 0x64: i.segOverride = FS; continue;
      case 0x65: i.segOverride = GS; continue;
    }
    break;
  }
  i.opsz = opsz; i.adsz = adsz;
  i.adMask = adsz === 4 ? -1 : 0xffff;
  let op = b;
  let table = ONE_BYTE;
  if (b === 0x0f) { op = rd.byte(); table = TWO_BYTE; }
  i.opcode = table === TWO_BYTE ? 0x0f00 | op : op;
  let def: PreparedDef | undefined = table[op];
  i.seg = i.segOverride >= 0 ? i.segOverride : DS;
  if (def === undefined) return finish(i, undefined);

  if (def.modrm) {
    const m = rd.byte();
    i.mod = m >>> 6; i.reg = (m >>> 3) & 7; i.rm = m & 7;
    if (def.src.modIgnored) i.mod = 3; // MOV CR/DR: the mod bits are ignored (a register operand)
    if (i.mod !== 3) decodeEa(i, adsz);
    if (def.group) {
      def = def.group[i.reg];
      if (def === undefined) return finish(i, undefined);
      if (i.mod === 3 && def.rm3) {
        def = def.rm3[i.rm];
        if (def === undefined) return finish(i, undefined);
      }
    }
  }
  if (i.rep === 1 && def.repVariant) def = def.repVariant;
  for (let k = 0; k < def.imms.length; k++) readImm(i, def.imms[k], k, adsz);
  return finish(i, def);
}

function finish(i: Insn, def: PreparedDef | undefined): Insn {
  i.len = rd.pos - rd.start;
  i.cacheable = !rd.crossed;
  if (def === undefined) { i.exec = udHandler; i.cost = 1; return i; }
  i.def = def.src;
  const mem = def.modrm && i.mod !== 3;
  i.cost = insnCosts[(mem ? def.src.clsM : undefined) ?? def.src.cls ?? 'simple'].cycles;
  if (i.lock) i.cost = Math.max(i.cost, insnCosts.locked.cycles);
  if ((def.src.memOnly && !mem) || (def.src.regOnly && def.modrm && mem)) { i.exec = ud; return i; }
  if (i.lock && !(def.src.lockable && mem)) { i.exec = ud; return i; }
  const f = i.opsz === 4 ? def.src.fast32 : undefined;
  const h = (f !== undefined ? (mem ? f.m : f.r) : undefined) ?? (mem ? (def.src.execM ?? def.src.exec) : (def.src.execR ?? def.src.exec));
  i.exec = h ?? udHandler;
  return i;
}

function decodeEa(i: Insn, adsz: number): void {
  if (adsz === 2) {
    // 16-bit forms: [bx+si] [bx+di] [bp+si] [bp+di] [si] [di] [bp] [bx]
    const B = [3, 3, 5, 5, 6, 7, 5, 3], X = [6, 7, 6, 7, ZERO_REG, ZERO_REG, ZERO_REG, ZERO_REG];
    i.base = B[i.rm]; i.index = X[i.rm];
    if (i.mod === 0 && i.rm === 6) { i.base = ZERO_REG; i.disp = rd.word(); }
    else if (i.mod === 1) i.disp = (rd.byte() << 24) >> 24;
    else if (i.mod === 2) i.disp = rd.word();
    if (i.segOverride < 0 && (i.base === 5)) i.seg = SS;
    return;
  }
  if (i.rm === 4) {
    const sib = rd.byte();
    const ss = sib >>> 6, idx = (sib >>> 3) & 7, base = sib & 7;
    i.scale = ss;
    i.index = idx === 4 ? ZERO_REG : idx;
    if (base === 5 && i.mod === 0) { i.base = ZERO_REG; i.disp = rd.dword(); }
    else i.base = base;
  } else if (i.rm === 5 && i.mod === 0) {
    i.base = ZERO_REG; i.disp = rd.dword();
  } else i.base = i.rm;
  if (i.mod === 1) i.disp = (rd.byte() << 24) >> 24;
  else if (i.mod === 2) i.disp = rd.dword();
  if (i.segOverride < 0 && (i.base === 4 || i.base === 5)) i.seg = SS;
}

function readImm(i: Insn, kind: number, k: number, adsz: number): void {
  let v: number;
  switch (kind) {
    case IMM_B: v = rd.byte(); break;
    case IMM_BS: case IMM_JB: v = (rd.byte() << 24) >> 24; break;
    case IMM_W: v = rd.word(); break;
    case IMM_Z: v = i.opsz === 4 ? rd.dword() : rd.word(); break;
    case IMM_JZ: v = i.opsz === 4 ? rd.dword() : (rd.word() << 16) >> 16; break;
    case IMM_D: v = rd.dword(); break;
    case IMM_AP: i.imm = i.opsz === 4 ? rd.dword() >>> 0 : rd.word(); i.imm2 = rd.word(); return;
    case IMM_O:
      i.base = ZERO_REG; i.index = ZERO_REG; i.scale = 0;
      i.disp = adsz === 4 ? rd.dword() : rd.word();
      return;
    default: return;
  }
  if (k === 0) i.imm = v; else i.imm2 = v;
}

export type { OpDef };
export { prepared };
