/**
 * The exit dispatch table: exit code -> handler, as Palacios' v3_handle_svm_exit switch, built
 * as data. The paging mode's codes (NPF, or the shadow modes' #PF/CR/INVLPG) are added per
 * virtual core from PagingMode.exitCodes. A code without a handler stops the VM in error
 * ("unhandled exit"), with the report.
 */
import {
  EXIT_CPUID, EXIT_CLGI, EXIT_HLT, EXIT_INTR, EXIT_INVLPGA, EXIT_IOIO, EXIT_MSR, EXIT_NMI, EXIT_SHUTDOWN, EXIT_SKINIT,
  EXIT_STGI, EXIT_VINTR, EXIT_VMLOAD, EXIT_VMMCALL, EXIT_VMRUN, EXIT_VMSAVE,
} from '../../hw/cpu/vmcb.ts';
import type { VCore } from '../vcore.ts';
import { handleCpuid } from './cpuid.ts';
import { handleHlt } from './hlt.ts';
import { handleIntr } from './intr.ts';
import { handleIoio } from './ioio.ts';
import { handleMsr } from './msr.ts';
import { handlePagingExit } from './npf.ts';
import { handleShutdown } from './shutdown.ts';
import { handleSvmInsn } from './svm-insn.ts';
import { handleVintr } from './vintr.ts';
import { handleVmmcall } from './vmmcall.ts';

/** A handler returns what the run loop does next (ACT_* in vcore.ts). */
export type ExitHandler = (vc: VCore, code: number) => number;

/** Table size: codes 0..0x400 (NPF is 0x400). */
export const EXIT_TABLE_SIZE = 0x401;

const BASE: readonly [number, ExitHandler][] = [
  [EXIT_IOIO, handleIoio],
  [EXIT_MSR, handleMsr],
  [EXIT_CPUID, handleCpuid],
  [EXIT_HLT, handleHlt],
  [EXIT_INTR, handleIntr],
  [EXIT_NMI, handleIntr],
  [EXIT_VINTR, handleVintr],
  [EXIT_VMMCALL, handleVmmcall],
  [EXIT_SHUTDOWN, handleShutdown],
  [EXIT_VMRUN, handleSvmInsn], [EXIT_VMLOAD, handleSvmInsn], [EXIT_VMSAVE, handleSvmInsn], [EXIT_STGI, handleSvmInsn],
  [EXIT_CLGI, handleSvmInsn], [EXIT_SKINIT, handleSvmInsn], [EXIT_INVLPGA, handleSvmInsn],
];

/** The table for one virtual core: the base handlers plus its paging mode's codes. */
export function buildExitTable(pagingCodes: readonly number[]): (ExitHandler | undefined)[] {
  const t: (ExitHandler | undefined)[] = new Array<ExitHandler | undefined>(EXIT_TABLE_SIZE).fill(undefined);
  for (const [code, h] of BASE) t[code] = h;
  for (const code of pagingCodes) t[code] = handlePagingExit;
  return t;
}
