/**
 * #VMEXIT(VINTR): the interrupt window opened (the guest set IF outside an interrupt shadow
 * while the VMM held V_IRQ up for a pending interrupt it could not inject). The window request
 * is withdrawn and the next entry injects the interrupt through EVENTINJ (vmm/intr/inject.ts).
 */
import { closeWindow } from '../intr/inject.ts';
import { ACT_CONTINUE } from './actions.ts';
import type { VCore } from '../vcore.ts';

export function handleVintr(vc: VCore): number {
  closeWindow(vc);
  return ACT_CONTINUE;
}
