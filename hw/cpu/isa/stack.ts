/** Instruction family: stack (PUSH/POP forms, PUSHA/POPA, PUSHF/POPF, ENTER/LEAVE) (see optable.ts). */
import type { OpDef, OpTable } from '../insn.ts';

/** FF /6 (PUSH Ev); alu.ts assembles group 5. */
export const grp5Stack: Record<number, OpDef> = {};

export const table: OpTable = {};
