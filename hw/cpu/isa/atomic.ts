/** Instruction family: atomic (see optable.ts). */
import type { OpTable } from '../insn.ts';

export const table: OpTable = {};
