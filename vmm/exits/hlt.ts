/**
 * #VMEXIT(HLT): the guest waits for an interrupt. The run loop puts the virtual core's host
 * thread to sleep until the VM's next timer event (or until woken by input), runs the events
 * that fall due meanwhile, and resumes the guest after the HLT once an interrupt is pending:
 * guest time advances with the host core's clock while nothing runs. A HLT with IF clear can
 * never end (no NMI source is wired): on the boot processor the VM stops, as a halted PC does;
 * an application processor parks until INIT and a start-up IPI (as an OS parks its APs).
 */
import { VMCB_RFLAGS } from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import { ACT_CONTINUE, ACT_HALT, ACT_STOP } from './actions.ts';
import type { VCore } from '../vcore.ts';

const IF = 0x200;

export function handleHlt(vc: VCore): number {
  vc.spend(vmmCosts.hlt.cycles);
  if ((vc.mem.read(vc.vmcb + VMCB_RFLAGS, 4) & IF) === 0 && !vc.vm.intr.pending(vc.id)) {
    if (vc.id !== 0) { // an application processor parks until INIT and SIPI
      vc.waitingSipi = true;
      vc.vm.telemetry.bump('ap.parked');
      return ACT_CONTINUE;
    }
    vc.vm.requestStop('stopped', null, 'the guest halted with interrupts disabled');
    return ACT_STOP;
  }
  return ACT_HALT;
}
