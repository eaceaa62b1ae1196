/**
 * VMRUN, VMLOAD, VMSAVE, STGI, CLGI, SKINIT and INVLPGA in the guest: this VMM offers no nested
 * virtualization, so each raises #UD in the guest, as on a CPU without SVM (the hypervisor
 * leaf of CPUID does not advertise SVM either).
 */
import { ACT_CONTINUE } from './actions.ts';
import type { VCore } from '../vcore.ts';

export function handleSvmInsn(vc: VCore): number {
  vc.vm.telemetry.bump('svm.ud');
  vc.injectException(6);
  return ACT_CONTINUE;
}
