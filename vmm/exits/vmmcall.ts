/**
 * #VMEXIT(VMMCALL): a hypercall, ID in EAX (Palacios' hypercall interface). A registry maps IDs
 * to handlers, which get the virtual core (arguments in EBX, ECX, EDX, ESI, EDI) and return the
 * value for EAX. An unknown ID returns -1 in EAX.
 */
import { VMCB_RAX } from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import { ACT_CONTINUE } from './actions.ts';
import type { VCore } from '../vcore.ts';

export type Hypercall = (vc: VCore) => number;

export class HypercallRegistry {
  private readonly calls = new Map<number, { name: string; fn: Hypercall }>();

  register(id: number, name: string, fn: Hypercall): void {
    if (this.calls.has(id >>> 0)) throw new RangeError(`hypercall 0x${(id >>> 0).toString(16)} is already registered (${this.calls.get(id >>> 0)!.name})`);
    this.calls.set(id >>> 0, { name, fn });
  }

  get(id: number): Hypercall | undefined {
    return this.calls.get(id >>> 0)?.fn;
  }
}

export function handleVmmcall(vc: VCore): number {
  vc.spend(vmmCosts.vmmcall.cycles);
  const id = vc.mem.read(vc.vmcb + VMCB_RAX, 4);
  const fn = vc.vm.hypercalls.get(id);
  let r = -1;
  if (fn === undefined) vc.vm.telemetry.bump('hypercall.unknown');
  else r = fn(vc);
  vc.mem.write(vc.vmcb + VMCB_RAX, 4, r >>> 0);
  vc.skipInsn(3);
  return ACT_CONTINUE;
}
