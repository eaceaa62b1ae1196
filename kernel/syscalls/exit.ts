/**
 * exit and exit_group. A process has one thread for now (clone comes later), so both end the
 * process with the status's low 8 bits.
 */
import { NORETURN, type SysCtx, type SyscallDef } from './types.ts';

function exitGroup(c: SysCtx): typeof NORETURN {
  c.k.exitProcess(c.cpu, c.proc, c.a[0] & 0xff, 0);
  return NORETURN;
}

export const exitCalls: Record<string, SyscallDef> = {
  exit: { name: 'exit', args: 'd', fn: exitGroup },
  exit_group: { name: 'exit_group', args: 'd', fn: exitGroup },
};
