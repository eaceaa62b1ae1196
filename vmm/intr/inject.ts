/**
 * Getting virtual interrupts into the guest (Palacios' v3_intr_pending / KVM's inject_pending
 * event), done before every entry:
 *
 * 1. Re-injection (after every exit): an event the core was delivering when the exit came
 *    (EXITINTINFO.V: an interrupt, NMI or exception whose delivery touched something the VMM
 *    had to handle) goes back into EVENTINJ, so it is delivered as if nothing happened.
 *    Software interrupts are not re-injected: RIP still points at the INT n, which runs again.
 * 2. Injection: when the virtual interrupt controllers (vmm/intr/router.ts) raise INTR and the
 *    guest can take an interrupt now (RFLAGS.IF set, no interrupt shadow, no event already
 *    queued), the VMM does the INTA cycle and injects the vector with EVENTINJ.
 * 3. The interrupt window: otherwise it sets V_IRQ (priority ignored) and intercepts VINTR, so
 *    the core exits as soon as the guest can take an interrupt (STI, POPF, IRET); the exit
 *    withdraws the request (closeWindow) and step 2 injects.
 */
import {
  EVT_SOFT_INT, EVT_V, IC3_VINTR, V_IGN_TPR, V_IRQ, VMCB_EVENTINJ, VMCB_EXITINTINFO, VMCB_INT_STATE, VMCB_INTERCEPTS3,
  VMCB_RFLAGS, VMCB_VINTR,
} from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import type { VCore } from '../vcore.ts';

const IF = 0x200;

/** Step 1, right after an exit. */
export function reinjectAfterExit(vc: VCore): void {
  const mem = vc.mem, b = vc.vmcb;
  const ii = mem.read(b + VMCB_EXITINTINFO, 4);
  if ((ii & EVT_V) === 0) return;
  if (((ii >>> 8) & 7) === EVT_SOFT_INT) return;
  mem.write(b + VMCB_EVENTINJ, 4, ii);
  mem.write(b + VMCB_EVENTINJ + 4, 4, mem.read(b + VMCB_EXITINTINFO + 4, 4));
  vc.vm.telemetry.bump('intr.reinjected');
}

/** Steps 2 and 3, right before an entry. */
export function injectBeforeEntry(vc: VCore): void {
  const router = vc.vm.intr;
  if (!router.pending(vc.id)) {
    if (vc.windowOpen) closeWindow(vc);
    return;
  }
  const mem = vc.mem, b = vc.vmcb;
  const canTake = (mem.read(b + VMCB_EVENTINJ, 4) & EVT_V) === 0 && (mem.read(b + VMCB_RFLAGS, 4) & IF) !== 0
    && (mem.read(b + VMCB_INT_STATE, 4) & 1) === 0;
  vc.spend(vmmCosts.inject.cycles);
  if (canTake) {
    const vec = router.acknowledge(vc.id) & 0xff;
    mem.write(b + VMCB_EVENTINJ, 4, (EVT_V | vec) >>> 0);
    mem.write(b + VMCB_EVENTINJ + 4, 4, 0);
    vc.vm.telemetry.bump('intr.injected');
    if (vc.windowOpen) closeWindow(vc);
  } else if (!vc.windowOpen) {
    mem.write(b + VMCB_VINTR, 4, mem.read(b + VMCB_VINTR, 4) | V_IRQ | V_IGN_TPR);
    mem.write(b + VMCB_INTERCEPTS3, 4, (mem.read(b + VMCB_INTERCEPTS3, 4) | IC3_VINTR) >>> 0);
    vc.windowOpen = true;
    vc.vm.telemetry.bump('intr.window');
  }
}

/** Withdraws the interrupt-window request. */
export function closeWindow(vc: VCore): void {
  const mem = vc.mem, b = vc.vmcb;
  mem.write(b + VMCB_VINTR, 4, (mem.read(b + VMCB_VINTR, 4) & ~(V_IRQ | V_IGN_TPR)) >>> 0);
  mem.write(b + VMCB_INTERCEPTS3, 4, (mem.read(b + VMCB_INTERCEPTS3, 4) & ~IC3_VINTR) >>> 0);
  vc.windowOpen = false;
}
