/**
 * #VMEXIT(SHUTDOWN): the guest triple-faulted (or otherwise shut its core down). The VM stops in
 * the error state with a report (the reason, the guest EIP, the last exits); the host and any
 * other VM keep running.
 */
import { VMCB_RIP } from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import { ACT_STOP } from './actions.ts';
import type { VCore } from '../vcore.ts';

export function handleShutdown(vc: VCore): number {
  vc.spend(vmmCosts.shutdownReport.cycles);
  const eip = vc.mem.read(vc.vmcb + VMCB_RIP, 4);
  vc.vm.requestStop('error', null, `the guest shut down (triple fault) at eip 0x${eip.toString(16)}`);
  return ACT_STOP;
}
