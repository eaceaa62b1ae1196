/** Instruction family: descriptor-table instructions (0F 00 group, LGDT/LIDT/SGDT/SIDT, LAR, LSL, ARPL). */
import type { OpDef, OpTable } from '../insn.ts';

/** 0F 01 /0-/3 (SGDT, SIDT, LGDT, LIDT); system.ts assembles group 7. */
export const grp7Desc: Record<number, OpDef> = {};

export const table: OpTable = {};
