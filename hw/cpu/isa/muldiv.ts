/** Instruction family: MUL, IMUL (all forms), DIV, IDIV (see optable.ts). */
import type { OpDef, OpTable } from '../insn.ts';

/** Group 3 members /4-/7 for F6 (byte) and F7 (word/dword); alu.ts assembles the groups. */
export const grp3b: Record<number, OpDef> = {};
export const grp3v: Record<number, OpDef> = {};

export const table: OpTable = {};
