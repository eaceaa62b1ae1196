/**
 * The VMM's cost table: what each piece of VMM work charges to the core its virtual core runs
 * on (DESIGN.md, "Time and determinism"). The hardware's part of an exit (VMRUN and #VMEXIT,
 * ~1,350 cycles together) is charged by the core itself (hw/costs.ts extraCosts.vmrun/vmexit);
 * these figures are the host software around it. Every entry says where its number comes from.
 */
import { type CostEntry, extraCosts, insnCosts } from '../hw/costs.ts';

function assumed(cycles: number, source: string): CostEntry {
  return { cycles, kind: 'assumed', source };
}

export const vmmCosts = {
  exitDispatch: assumed(150, "Palacios' v3_handle_svm_exit: read EXITCODE/EXITINFO from the VMCB, a switch, telemetry bookkeeping: ~100-200 instructions"),
  entryPrep: assumed(100, "Palacios' pre-entry work (v3_svm_enter): update the guest's interrupt state, check pending events, ~100 instructions"),
  ioHook: assumed(120, "a hooked port's dispatch (Palacios v3_handle_svm_io_in/out): decode EXITINFO1, look up the hook, call it, advance RIP"),
  msrHook: assumed(120, 'an MSR hook dispatch: like a port hook'),
  cpuid: assumed(100, 'the VMM-defined CPUID table lookup and the register write-back'),
  hlt: assumed(150, 'HLT: check for pending interrupts and put the virtual core to sleep'),
  inject: assumed(80, 'writing EVENTINJ or V_IRQ and the interrupt window intercept for one virtual interrupt'),
  mmioDecode: assumed(600, "decoding the faulting instruction at an MMIO exit (Palacios' v3_decode, after a guest page walk for its bytes): several hundred instructions"),
  vmmcall: assumed(120, 'a hypercall registry lookup and call'),
  shutdownReport: assumed(500, 'building the error report of a stopped VM'),
  /** Charged per word of emulated memory VMM software reads or writes (guest tables, the VMCB, nested tables). */
  memRef: extraCosts.walkRef,
  /** A port access of VMM software to a device of the machine (none in this VMM: its devices are models in host memory). */
  io: insnCosts.io,
} as const satisfies Record<string, CostEntry>;

export type VmmCostName = keyof typeof vmmCosts;

export function vmmCostRows(): { name: string; cycles: number; kind: string; source: string }[] {
  return Object.entries(vmmCosts).map(([name, v]) => ({ name: `vmm.${name}`, ...v }));
}
