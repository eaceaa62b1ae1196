// A tiny guest for the host-interface contract: it spins, so only a host interrupt ends its run.
import * as V from '../../hw/cpu/vmcb.ts';
import { type Host, PAGE_SIZE } from '../../hostif/hostif.ts';

/** VMCB_VINTR bit 24 (APM 15.21.1): physical interrupts follow the host's IF, not the guest's. */
export const V_INTR_MASKING = 1 << 24;

/**
 * A guest that spins (`jmp .`, or `code` when given) in flat 32-bit protected mode with IF
 * clear, INTR intercepted and V_INTR_MASKING set (and VMRUN intercepted, which the APM
 * requires): only a host interrupt ends its run.
 */
export function spinGuest(host: Host, opts: { code?: number[]; intercepts3?: number; asid?: number; vintr?: number } = {}): { vmcb: number; code: number; release(): void } {
  const base = host.allocPages(2);
  if (base === null) throw new Error('spinGuest: no memory for a VMCB and a code page');
  const vmcb = base, code = base + PAGE_SIZE;
  host.mem.writeBytes(vmcb, new Uint8Array(PAGE_SIZE));
  host.mem.writeBytes(code, Uint8Array.from(opts.code ?? [0xeb, 0xfe]));
  const v = new V.VmcbView(host.mem, vmcb);
  v.w32(V.VMCB_INTERCEPTS3, opts.intercepts3 ?? V.IC3_INTR);
  v.w32(V.VMCB_INTERCEPTS4, V.IC4_VMRUN);
  v.w32(V.VMCB_ASID, opts.asid ?? 1);
  v.w32(V.VMCB_VINTR, opts.vintr ?? V_INTR_MASKING);
  for (const [k, o] of V.VMCB_SEGS.entries()) {
    const cs = k === 1;
    v.w16(o, cs ? 0x08 : 0x10); v.w16(o + 2, cs ? 0xc9b : 0xc93); v.w32(o + 4, 0xffffffff); v.w64(o + 8, 0);
  }
  v.w32(V.VMCB_CR0, 0x11); v.w64(V.VMCB_RFLAGS, 2); v.w64(V.VMCB_RIP, code); v.w64(V.VMCB_RSP, code + PAGE_SIZE);
  return { vmcb, code, release: () => host.freePages(base, 2) };
}

