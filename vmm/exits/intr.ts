/**
 * #VMEXIT(INTR) and #VMEXIT(NMI): a physical interrupt for the host (its timer at the run's
 * deadline, an IPI, a device). The host has taken it by the time the thread is resumed; the run
 * loop just runs the VM's due events and re-enters, as Palacios' loop does.
 */
import { ACT_CONTINUE } from './actions.ts';
import type { VCore } from '../vcore.ts';

export function handleIntr(_vc: VCore): number {
  return ACT_CONTINUE;
}
