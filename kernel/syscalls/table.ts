/**
 * The system-call table, in one place: number -> handler, for the Linux i386 ABI. Each family
 * lives in its own file; a call missing here is answered -ENOSYS and counted (dispatch.ts).
 */
import { cloneCalls } from './clone.ts';
import { execCalls } from './exec.ts';
import { exitCalls } from './exit.ts';
import { forkCalls } from './fork.ts';
import { fsCalls } from './fs.ts';
import { futexCalls } from './futex.ts';
import { idCalls } from './ids.ts';
import { ioCalls } from './io.ts';
import { memCalls } from './mem.ts';
import { miscCalls } from './misc.ts';
import { SYSCALL_NAMES } from './numbers.ts';
import { pipeCalls } from './pipe.ts';
import { signalCalls } from './signal.ts';
import { statCalls } from './stat.ts';
import { timeCalls } from './time.ts';
import { waitCalls } from './wait.ts';
import { tlsCalls } from './tls.ts';
import type { SyscallDef } from './types.ts';

const FAMILIES: readonly Record<string, SyscallDef>[] = [
  ioCalls, memCalls, exitCalls, idCalls, tlsCalls, timeCalls, miscCalls, statCalls, signalCalls, fsCalls, pipeCalls,
  cloneCalls, forkCalls, execCalls, waitCalls, futexCalls,
];

function build(): (SyscallDef | undefined)[] {
  const byName = new Map<string, number>();
  SYSCALL_NAMES.forEach((n, nr) => { if (n !== undefined) byName.set(n, nr); });
  const table: (SyscallDef | undefined)[] = [];
  for (const fam of FAMILIES) {
    for (const def of Object.values(fam)) {
      const nr = byName.get(def.name);
      if (nr === undefined) throw new Error(`system call ${def.name} has no i386 number`);
      if (table[nr] !== undefined) throw new Error(`system call ${nr} (${def.name}) defined twice`);
      table[nr] = def;
    }
  }
  return table;
}

/** The table: SYSCALLS[nr] is the handler of call nr, or undefined (ENOSYS). */
export const SYSCALLS: readonly (SyscallDef | undefined)[] = build();

/** The name of call `nr` for logs (its i386 name, or syscall_NR). */
export function syscallName(nr: number): string {
  return SYSCALL_NAMES[nr] ?? `syscall_${nr}`;
}
