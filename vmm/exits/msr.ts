/**
 * #VMEXIT(MSR): RDMSR (EXITINFO1 = 0) and WRMSR (1), ECX = the MSR, EDX:EAX the value. Every MSR
 * is intercepted; a hook (registered by a device or the VMM) serves it, and an MSR nobody
 * hooks raises #GP(0) in the guest, as on a CPU without it. Built in: the TSC (guest TSC =
 * host TSC + TSC_OFFSET; a write moves the offset), EFER (only NXE may change; SVME stays
 * hidden), the SYSENTER MSRs and PAT (VMCB fields).
 */
import {
  VMCB_EFER, VMCB_EXITINFO1, VMCB_G_PAT, VMCB_RAX, VMCB_SYSENTER_CS, VMCB_SYSENTER_EIP, VMCB_SYSENTER_ESP, VMCB_TSC_OFFSET,
} from '../../hw/cpu/vmcb.ts';
import { vmmCosts } from '../costs.ts';
import { ACT_CONTINUE } from './actions.ts';
import type { VCore } from '../vcore.ts';

export const MSR_TSC = 0x10, MSR_APIC_BASE = 0x1b, MSR_SYSENTER_CS = 0x174, MSR_SYSENTER_ESP = 0x175, MSR_SYSENTER_EIP = 0x176,
  MSR_PAT = 0x277, MSR_TSC_DEADLINE = 0x6e0, MSR_EFER = 0xc0000080;

export interface MsrHook {
  /** [low, high] dwords. */
  read(vc: VCore): readonly [number, number];
  /** false: the value is refused (#GP). */
  write(lo: number, hi: number, vc: VCore): boolean;
}

const EFER_NXE = 0x800, EFER_SVME = 0x1000;

function vmcbField(off: number): MsrHook {
  return {
    read: (vc) => [vc.mem.read(vc.vmcb + off, 4), vc.mem.read(vc.vmcb + off + 4, 4)],
    write: (lo, hi, vc) => { vc.mem.write(vc.vmcb + off, 4, lo >>> 0); vc.mem.write(vc.vmcb + off + 4, 4, hi >>> 0); return true; },
  };
}

/** The MSRs every VM has. */
export function builtinMsrs(): Map<number, MsrHook> {
  const m = new Map<number, MsrHook>();
  m.set(MSR_TSC, {
    read: (vc) => { const t = vc.host.cycles() + vc.v.s64(VMCB_TSC_OFFSET); return [t % 0x100000000, Math.floor(t / 0x100000000)]; },
    write: (lo, hi, vc) => { vc.v.w64(VMCB_TSC_OFFSET, hi * 0x100000000 + lo - vc.host.cycles()); return true; },
  });
  m.set(MSR_EFER, {
    read: (vc) => [vc.mem.read(vc.vmcb + VMCB_EFER, 4) & ~EFER_SVME, 0],
    write: (lo, hi, vc) => {
      if (hi !== 0 || (lo & ~EFER_NXE) !== 0) return false;
      vc.mem.write(vc.vmcb + VMCB_EFER, 4, (lo | EFER_SVME) >>> 0);
      return true;
    },
  });
  m.set(MSR_SYSENTER_CS, vmcbField(VMCB_SYSENTER_CS));
  m.set(MSR_SYSENTER_ESP, vmcbField(VMCB_SYSENTER_ESP));
  m.set(MSR_SYSENTER_EIP, vmcbField(VMCB_SYSENTER_EIP));
  m.set(MSR_PAT, vmcbField(VMCB_G_PAT));
  return m;
}

export function handleMsr(vc: VCore): number {
  vc.spend(vmmCosts.msrHook.cycles);
  const write = (vc.mem.read(vc.vmcb + VMCB_EXITINFO1, 4) & 1) !== 0;
  const msr = vc.reg(1) >>> 0;
  const hook = vc.vm.msrs.get(msr);
  if (hook === undefined) {
    vc.vm.telemetry.bump('msr.unknown');
    vc.injectException(13, 0);
    return ACT_CONTINUE;
  }
  if (write) {
    if (!hook.write(vc.mem.read(vc.vmcb + VMCB_RAX, 4), vc.reg(2) >>> 0, vc)) { vc.injectException(13, 0); return ACT_CONTINUE; }
  } else {
    const [lo, hi] = hook.read(vc);
    vc.mem.write(vc.vmcb + VMCB_RAX, 4, lo >>> 0);
    vc.setReg(2, hi);
  }
  vc.skipInsn(2);
  return ACT_CONTINUE;
}
