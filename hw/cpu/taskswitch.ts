/**
 * Hardware task switching as the 386 defines it (JMP/CALL to a TSS or task gate, IRET with NT,
 * task gates in the IDT).
 */
import type { Cpu } from './cpu.ts';

export const TS_JMP = 0;
export const TS_CALL = 1;
export const TS_IRET = 2;
export const TS_INT = 3;

/** Switches to the task named by `sel` (a TSS descriptor or task gate already resolved by the caller). */
export function taskSwitch(cpu: Cpu, sel: number, _reason: number, _err: number, ext: number): void {
  // implemented by the task-switching work item; until then a switch is a #GP
  cpu.raise(13, (sel & 0xfffc) | ext);
}
