/**
 * #VMEXIT(CPUID): a VMM-defined CPUID. The table starts from what the core implements
 * (hw/cpu/cpuid.ts: a guest must not be told of features the core lacks), adds the local APIC
 * bit when the VM has one, the hypervisor-present bit (leaf 1 ECX bit 31) and the hypervisor
 * leaf 0x40000000 (max leaf, signature "V3VEE-TS-VMM" in EBX ECX EDX). Hooks override a leaf.
 */
import { type CpuidLeaf, defaultCpuid, FEAT_APIC } from '../../hw/cpu/cpuid.ts';
import { VMCB_RAX } from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import { ACT_CONTINUE } from './actions.ts';
import type { VCore } from '../vcore.ts';

export type CpuidHook = (leaf: number, subleaf: number, vc: VCore) => CpuidLeaf;

export const HYPERVISOR_LEAF = 0x40000000;
export const HYPERVISOR_SIGNATURE = 'V3VEE-TS-VMM';

function str4(s: string, i: number): number {
  return (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24)) >>> 0;
}

export class VmCpuid {
  readonly table = defaultCpuid();
  private readonly hooks = new Map<number, CpuidHook>();

  constructor(apic: boolean) {
    const l1 = this.table.get(1)!;
    this.table.set(1, [l1[0], l1[1], (l1[2] | 0x80000000) >>> 0, ((l1[3] | (apic ? FEAT_APIC : 0)) >>> 0)]);
    const s = HYPERVISOR_SIGNATURE;
    this.table.set(HYPERVISOR_LEAF, [HYPERVISOR_LEAF, str4(s, 0), str4(s, 4), str4(s, 8)]);
  }

  hook(leaf: number, fn: CpuidHook): void {
    this.hooks.set(leaf >>> 0, fn);
  }

  lookup(leaf: number, subleaf: number, vc: VCore): CpuidLeaf {
    const h = this.hooks.get(leaf >>> 0);
    if (h !== undefined) return h(leaf, subleaf, vc);
    return this.table.get(leaf >>> 0) ?? [0, 0, 0, 0];
  }
}

export function handleCpuid(vc: VCore): number {
  vc.spend(vmmCosts.cpuid.cycles);
  const leaf = vc.mem.read(vc.vmcb + VMCB_RAX, 4);
  const [a, b0, c, d] = vc.vm.cpuid.lookup(leaf, vc.reg(1) >>> 0, vc);
  const b = leaf === 1 ? ((b0 & 0x00ffffff) | (vc.id << 24)) >>> 0 : b0; // the initial APIC ID
  vc.mem.write(vc.vmcb + VMCB_RAX, 4, a >>> 0);
  vc.setReg(3, b); vc.setReg(1, c); vc.setReg(2, d);
  vc.skipInsn(2);
  return ACT_CONTINUE;
}
