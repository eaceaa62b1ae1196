/**
 * The opcode table: the instruction set as data (DESIGN.md, style models: v86 and Bochs).
 *
 * Each file in isa/ exports an OpTable fragment for one family of instructions (opcode ->
 * OpDef with name, operand spec, cost class and handler). This module merges them into the
 * one-byte and two-byte (0F xx) tables the decoder indexes, derives from each operand spec
 * whether the instruction has a ModRM byte and which immediates follow, and refuses two
 * families defining the same opcode.
 *
 * Opcode keys: 0x00-0xff for one-byte opcodes, 0x0f00-0x0fff for 0F-prefixed ones.
 */
import type { OpDef, OpTable } from './insn.ts';
import { table as alu } from './isa/alu.ts';
import { table as atomic } from './isa/atomic.ts';
import { table as bcd } from './isa/bcd.ts';
import { table as bits } from './isa/bits.ts';
import { table as control } from './isa/control.ts';
import { table as descriptors } from './isa/descriptors.ts';
import { table as far } from './isa/far.ts';
import { table as io } from './isa/io.ts';
import { table as misc } from './isa/misc.ts';
import { table as mov } from './isa/mov.ts';
import { table as muldiv } from './isa/muldiv.ts';
import { table as shift } from './isa/shift.ts';
import { table as stack } from './isa/stack.ts';
import { table as string } from './isa/string.ts';
import { table as system } from './isa/system.ts';

export interface PreparedDef {
  readonly src: OpDef;
  readonly modrm: boolean;
  readonly imms: readonly number[];
  readonly group?: readonly (PreparedDef | undefined)[];
  readonly rm3?: readonly (PreparedDef | undefined)[];
  readonly repVariant?: PreparedDef;
}

const IMM: Record<string, number> = { Ib: 1, Ibs: 2, Iw: 3, Iz: 4, Iv: 4, Id: 5, Jb: 6, Jz: 7, Jv: 7, Ap: 8, Ob: 9, Ov: 9, Ow: 9, Od: 9 };
const MODRM_OPERAND = /^(E|G|M|R|C|D|S)[a-z]?$/;

function prepare(def: OpDef, inGroup: boolean): PreparedDef {
  const tokens = def.ops ? def.ops.split(',').map((t) => t.trim()) : [];
  const imms: number[] = [];
  let modrm = inGroup || !!def.group;
  for (const t of tokens) {
    if (t in IMM) imms.push(IMM[t]);
    else if (MODRM_OPERAND.test(t)) modrm = true;
  }
  return {
    src: def,
    modrm,
    imms,
    group: def.group?.map((g) => (g ? prepare(g, true) : undefined)),
    rm3: def.rm3?.map((g) => (g ? prepare(g, true) : undefined)),
    repVariant: def.repVariant ? prepare(def.repVariant, inGroup) : undefined,
  };
}

export const FAMILIES: Record<string, OpTable> = {
  alu, atomic, bcd, bits, control, descriptors, far, io, misc, mov, muldiv, shift, stack, string, system,
};

function build(): { one: (PreparedDef | undefined)[]; two: (PreparedDef | undefined)[] } {
  const one = new Array<PreparedDef | undefined>(256).fill(undefined);
  const two = new Array<PreparedDef | undefined>(256).fill(undefined);
  const owner = new Map<number, string>();
  for (const [family, t] of Object.entries(FAMILIES)) {
    for (const [k, def] of Object.entries(t)) {
      const op = Number(k);
      const prev = owner.get(op);
      if (prev !== undefined) throw new Error(`opcode ${op.toString(16)} defined by both isa/${prev} and isa/${family}`);
      owner.set(op, family);
      const p = prepare(def, false);
      if (op >= 0x0f00) two[op & 0xff] = p; else one[op] = p;
    }
  }
  return { one, two };
}

const built = build();
export const ONE_BYTE: readonly (PreparedDef | undefined)[] = built.one;
export const TWO_BYTE: readonly (PreparedDef | undefined)[] = built.two;

/** The prepared entry for an opcode key, for tests and the disassembler. */
export function prepared(op: number): PreparedDef | undefined {
  return op >= 0x0f00 ? TWO_BYTE[op & 0xff] : ONE_BYTE[op];
}
