/**
 * exit and exit_group. exit ends the calling thread only (its CLONE_CHILD_CLEARTID word is
 * zeroed and a futex waiter woken: pthread_join); the last thread's exit ends the process with
 * that status. exit_group ends every thread of the process (threads running on other cores
 * leave at their core's next trap) with the status's low 8 bits.
 */
import { NORETURN, type SysCtx, type SyscallDef } from './types.ts';

function exit(c: SysCtx): typeof NORETURN {
  c.k.exitThread(c.cpu, c.thread, c.a[0] & 0xff);
  return NORETURN;
}

function exitGroup(c: SysCtx): typeof NORETURN {
  c.k.exitProcess(c.cpu, c.proc, c.a[0] & 0xff, 0);
  return NORETURN;
}

export const exitCalls: Record<string, SyscallDef> = {
  exit: { name: 'exit', args: 'd', fn: exit },
  exit_group: { name: 'exit_group', args: 'd', fn: exitGroup },
};
