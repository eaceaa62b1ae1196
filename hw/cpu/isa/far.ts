/** Instruction family: far transfers and segment loads (see optable.ts). */
import type { OpDef, OpTable } from '../insn.ts';

/** FF /3 (CALL Mp) and FF /5 (JMP Mp); alu.ts assembles group 5. */
export const grp5Far: Record<number, OpDef> = {};

export const table: OpTable = {};
