/**
 * A decoded instruction and the shape of the opcode table's entries.
 *
 * The decoder turns the bytes at a physical address into one `Insn`, once; the CPU caches it per
 * physical page (see codecache.ts) and runs `insn.exec(cpu, insn)` every time the instruction
 * executes. Every Insn has the same fields in the same order, so the loop's property loads stay
 * monomorphic.
 */
import type { InsnClass } from '../costs.ts';
import type { Cpu } from './cpu.ts';

export type Handler = (cpu: Cpu, i: Insn) => void;

/** Segment register numbers as the ISA encodes them. */
export const ES = 0, CS = 1, SS = 2, DS = 3, FS = 4, GS = 5;
export const SEG_NAMES = ['es', 'cs', 'ss', 'ds', 'fs', 'gs'] as const;

/** The register file index that always holds zero (an absent base or index). */
export const ZERO_REG = 8;

export class Insn {
  exec: Handler;
  /** Length in bytes. */
  len = 0;
  /** Cycles charged per execution (from the instruction class). */
  cost = 1;
  /** One-byte opcode (0x00-0xff) or two-byte opcode (0x0f00-0x0fff). */
  opcode = 0;
  /** Operand size in bytes (2 or 4); byte forms are distinct opcodes. */
  opsz = 4;
  /** Address size in bytes (2 or 4). */
  adsz = 4;
  /** Segment of the memory operand (default or override). */
  seg = DS;
  /** The segment-override prefix, or -1. */
  segOverride = -1;
  /** 0: none, 1: REP/REPE (F3), 2: REPNE (F2). */
  rep = 0;
  lock = false;
  /** ModRM fields (0 when the instruction has none). */
  mod = 0;
  reg = 0;
  rm = 0;
  /** Memory operand: offset = (r[base] + (r[index] << scale) + disp) & adMask. */
  base = ZERO_REG;
  index = ZERO_REG;
  scale = 0;
  disp = 0;
  adMask = -1;
  /** Immediates (sign-extended where the encoding says so; see the operand spec). */
  imm = 0;
  imm2 = 0;
  /** Code size the bytes were decoded for (0: 16-bit, 1: 32-bit). */
  mode = 1;
  /** False for an instruction that straddles a page: it is decoded afresh each time. */
  cacheable = true;
  def: OpDef | null = null;
  /** Successor links kept by the run loop (Cpu.execute): fall-through and last other target. */
  next: Insn | null = null;
  nextEpoch = -1;
  jump: Insn | null = null;
  jumpEip = -1;
  jumpEpoch = -1;

  constructor(exec: Handler) {
    this.exec = exec;
  }

  /** True when the ModRM operand is a memory operand. */
  get isMem(): boolean { return this.mod !== 3; }
}

/**
 * An entry of the opcode table. `ops` is the operand specification in the Intel manual's
 * notation (comma separated), which drives decoding (ModRM, immediates) and disassembly:
 *
 *   Eb Ew Ed Ev  ModRM r/m operand (byte, word, dword, operand-size)
 *   Gb Gw Gd Gv  ModRM reg operand
 *   M Mp Ma Mq Ms  ModRM memory-only operand (pointer, bound pair, qword, descriptor-table)
 *   Rd Cd Dd Sw  ModRM register-only / control / debug / segment register
 *   Ib Ibs Iw Iz Id  immediate (byte, sign-extended byte, word, operand-size, dword)
 *   Jb Jz        relative branch displacement (sign-extended)
 *   Ap           far pointer (offset of operand size, then selector) in imm, imm2
 *   Ob Ov        memory offset of address size (moffs)
 *   anything else (AL, eAX, CL, 1, DX, ...) is a fixed operand and only shown.
 */
export interface OpDef {
  readonly name: string;
  readonly ops?: string;
  readonly cls?: InsnClass;
  /** Cost class of the memory form, when it differs (XCHG with memory is locked). */
  readonly clsM?: InsnClass;
  /** Handler for both forms, unless execR/execM say otherwise. */
  readonly exec?: Handler;
  /** Handler when ModRM.mod = 3 (register operand). */
  readonly execR?: Handler;
  /** Handler when ModRM.mod != 3 (memory operand). */
  readonly execM?: Handler;
  /** Specialised handlers for the 32-bit operand size (isa/fast.ts), register and memory forms. */
  readonly fast32?: { readonly r?: Handler; readonly m?: Handler };
  /** A ModRM group: members chosen by ModRM.reg. */
  readonly group?: readonly (OpDef | undefined)[];
  /** For a group member with mod = 3: members chosen by ModRM.rm (0F 01 /1, /3 ...). */
  readonly rm3?: readonly (OpDef | undefined)[];
  /** Variant when an F3 prefix is present (F3 90 = PAUSE). */
  readonly repVariant?: OpDef;
  /** LOCK is allowed (with a memory destination). */
  readonly lockable?: boolean;
  /** Memory-only (mod = 3 is #UD) or register-only (mod != 3 is #UD). */
  readonly memOnly?: boolean;
  readonly regOnly?: boolean;
  /** ModRM.mod is ignored and taken as 3: no displacement or SIB follows (MOV CRn/DRn). */
  readonly modIgnored?: boolean;
}

/** An opcode table fragment as each isa/ file exports it: opcode -> entry. */
export type OpTable = Record<number, OpDef>;

/** Makes a ModRM group (8 members by ModRM.reg) from a sparse record; merges several records. */
export function group(...parts: Record<number, OpDef>[]): (OpDef | undefined)[] {
  const g = new Array<OpDef | undefined>(8).fill(undefined);
  for (const members of parts) {
    for (const [k, v] of Object.entries(members)) {
      if (g[Number(k)] !== undefined) throw new Error(`group member /${k} defined twice (${v.name})`);
      g[Number(k)] = v;
    }
  }
  return g;
}
