/**
 * The paging mode's exits (NPF under nested paging; #PF, CR and INVLPG exits under shadow
 * paging): the mode handles them (vmm/paging/mode.ts); an access it reports as outside RAM is
 * emulated here (vmm/exits/mmio.ts). For an NPF the guest-physical address is EXITINFO2; for a
 * #PF it is the guest's own translation of the faulting linear address (EXITINFO2).
 */
import { EXIT_NPF, VMCB_EXITINFO2 } from '../../hw/cpu/vmcb.ts';
import { guestVirtToPhys } from '../paging/guest-walk.ts';
import { ACT_CONTINUE } from './actions.ts';
import type { VCore } from '../vcore.ts';
import { emulateMmio } from './mmio.ts';
import { exitName } from '../telemetry.ts';

export function handlePagingExit(vc: VCore, code: number): number {
  const out = vc.paging.handleExit(vc.pctx, code);
  if (out === 'handled') return ACT_CONTINUE;
  if (out === 'unhandled') return vc.fail(`the ${vc.paging.name} paging mode did not handle exit ${exitName(code)}`);
  let gpa: number;
  if (code === EXIT_NPF) gpa = vc.v.u64(VMCB_EXITINFO2);
  else {
    const p = vc.paging;
    gpa = guestVirtToPhys({ mem: vc.mem, gpaToHpa: (g) => vc.vm.gpaToHpa(g) }, p.guestCr(0), p.guestCr(3), p.guestCr(4), vc.mem.read(vc.vmcb + VMCB_EXITINFO2, 4));
    if (gpa < 0) return vc.fail(`an MMIO access at an unmapped linear address 0x${vc.mem.read(vc.vmcb + VMCB_EXITINFO2, 4).toString(16)}`);
  }
  return emulateMmio(vc, gpa);
}
