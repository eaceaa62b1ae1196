/**
 * AMD SVM in the core (APM vol. 2, chapter 15), offered to host software as a core API: the
 * TypeScript VMM calls `vmrun(cpu, vmcb)` (DESIGN.md: its virtual-core thread requests a VMCB
 * run and the host carries it out), the guest then runs in the machine's quanta until an
 * intercepted event, and the core writes the guest state and EXITCODE, EXITINFO1/2,
 * EXITINTINFO and nRIP back into the VMCB, restores the host's state and raises the #VMEXIT to
 * the host's handler (a TrapRecord of kind TRAP_VMEXIT whose vector is the exit code).
 *
 * Guest general registers other than RAX and RSP are not in the VMCB: as on hardware, the VMM
 * puts them in cpu.r before vmrun() and finds them there after the exit.
 *
 * Not modelled: GIF (the host is TypeScript: CLGI/STGI only exit or #UD), SMI/INIT intercepts
 * (no such sources reach a guest), decode assists beyond nRIP and the EXITINFO1 forms the APM
 * gives for MOV CR/DR, INVLPG, INTn and IOIO, the VMCB clean bits (everything is reloaded).
 */
import { extraCosts } from '../costs.ts';
import type { Cpu } from './cpu.ts';
import { EV_EXCEPTION, EV_EXTERNAL, EV_ICEBP, EV_NMI, EV_SOFT, EV_SOFT_EXC, deliverEvent, hasErrorCode } from './exceptions.ts';
import { IF } from './flags.ts';
import { loadPdptes } from './paging.ts';
import {
  arToVmcb, EVT_EV, EVT_EXCEPTION, EVT_INTR, EVT_NMI, EVT_SOFT_INT, EVT_V, EXIT_EXCP_BASE, EXIT_INTR, EXIT_INVALID,
  EXIT_IOIO, EXIT_MSR, EXIT_NMI, EXIT_SHUTDOWN, EXIT_VINTR, IC3_INTR, IC3_IOIO, IC3_MSR, IC3_NMI, IC3_SHUTDOWN, IC3_VINTR, IC4_VMRUN, VMCB_ASID,
  VMCB_CPL, VMCB_CR0, VMCB_CR2, VMCB_CR3, VMCB_CR4, VMCB_CR_INTERCEPTS, VMCB_DR6, VMCB_DR7, VMCB_DR_INTERCEPTS,
  VMCB_EFER, VMCB_EVENTINJ, VMCB_EXC_INTERCEPTS, VMCB_EXITCODE, VMCB_EXITINFO1, VMCB_EXITINFO2,
  VMCB_EXITINTINFO, VMCB_G_PAT, VMCB_GDTR, VMCB_IDTR, VMCB_INT_STATE, VMCB_INTERCEPTS3, VMCB_INTERCEPTS4,
  VMCB_IOPM_BASE, VMCB_LDTR, VMCB_MSRPM_BASE, VMCB_N_CR3, VMCB_NP_CONTROL, VMCB_NRIP, VMCB_RAX, VMCB_RFLAGS,
  VMCB_RIP, VMCB_RSP, VMCB_SEGS, VMCB_SYSENTER_CS, VMCB_SYSENTER_EIP, VMCB_SYSENTER_ESP, VMCB_TLB_CONTROL,
  VMCB_TR, VMCB_TSC_OFFSET, VMCB_VINTR, VmcbView, vmcbToAr,
} from './vmcb.ts';

/** Where the nested-table format lives in the VMCB (see npt.ts); read at VMRUN. */
export let nptFormatOf: (v: VmcbView) => number = () => 2;
/** Lets npt.ts install the reader of its VMCB field. */
export function setNptFormatReader(f: (v: VmcbView) => number): void { nptFormatOf = f; }

/** The host's architectural state, saved at VMRUN and restored at #VMEXIT. */
interface HostState {
  /** Only RAX and RSP are restored (APM: the other GPRs are the VMM's to save). */
  r: Int32Array; eip: number; eflags: number; segSel: Int32Array; segBase: Int32Array; segLimit: Float64Array; segAr: Int32Array;
  cpl: number; gdt: [number, number]; idt: [number, number]; ldt: [number, number, number, number]; tr: [number, number, number, number];
  cr0: number; cr2: number; cr3: number; cr4: number; efer: number; dr: Int32Array; pdpte: Int32Array;
  sysenter: [number, number, number]; tscOffset: number; pat: bigint;
}

/** The running guest's controls, read from its VMCB at VMRUN. */
export class SvmGuest {
  crIcpt = 0; drIcpt = 0; excIcpt = 0; ic3 = 0; ic4 = 0;
  iopm = 0; msrpm = 0; asid = 0;
  vTpr = 0; vIrq = false; vIntrPrio = 0; vIgnTpr = false; vIntrMasking = false; vIntrVector = 0;
  /** The event being delivered into the guest (EXITINTINFO form, low dword), 0 if none; and its error code. */
  delivering = 0; deliveringErr = 0;
  /** An event to inject before the first guest instruction (EVENTINJ), 0 if none. */
  inject = 0; injectErr = 0;
  exitCode = 0; info1 = 0; info1Hi = 0; info2 = 0; nrip = 0;
  host!: HostState;
  constructor(readonly vmcb: VmcbView) {}
}

function saveHost(cpu: Cpu): HostState {
  return {
    r: cpu.r.slice(), eip: cpu.eip, eflags: cpu.getEflags(), segSel: cpu.segSel.slice(), segBase: cpu.segBase.slice(),
    segLimit: cpu.segLimit.slice(), segAr: cpu.segAr.slice(), cpl: cpu.cpl,
    gdt: [cpu.gdtBase, cpu.gdtLimit], idt: [cpu.idtBase, cpu.idtLimit],
    ldt: [cpu.ldtSel, cpu.ldtBase, cpu.ldtLimit, cpu.ldtAr], tr: [cpu.trSel, cpu.trBase, cpu.trLimit, cpu.trAr],
    cr0: cpu.cr0, cr2: cpu.cr2, cr3: cpu.cr3, cr4: cpu.cr4, efer: cpu.efer, dr: cpu.dr.slice(), pdpte: cpu.pdpte.slice(),
    sysenter: [cpu.sysenterCs, cpu.sysenterEsp, cpu.sysenterEip], tscOffset: cpu.tscOffset, pat: cpu.pat,
  };
}

function restoreHost(cpu: Cpu, h: HostState): void {
  cpu.cr0 = h.cr0; cpu.cr2 = h.cr2; cpu.cr3 = h.cr3; cpu.cr4 = h.cr4; cpu.efer = h.efer;
  cpu.gdtBase = h.gdt[0]; cpu.gdtLimit = h.gdt[1]; cpu.idtBase = h.idt[0]; cpu.idtLimit = h.idt[1];
  [cpu.ldtSel, cpu.ldtBase, cpu.ldtLimit, cpu.ldtAr] = h.ldt; [cpu.trSel, cpu.trBase, cpu.trLimit, cpu.trAr] = h.tr;
  cpu.setCpl(h.cpl);
  for (let s = 0; s < 6; s++) cpu.loadSegCache(s, h.segSel[s], h.segBase[s], h.segLimit[s], h.segAr[s]);
  cpu.setCpl(h.cpl);
  cpu.r[0] = h.r[0]; cpu.r[4] = h.r[4]; // RAX and RSP come back; the other GPRs keep the guest's values
  cpu.eip = h.eip;
  cpu.setEflags(h.eflags);
  cpu.dr.set(h.dr); cpu.pdpte.set(h.pdpte);
  [cpu.sysenterCs, cpu.sysenterEsp, cpu.sysenterEip] = h.sysenter;
  cpu.tscOffset = h.tscOffset; cpu.pat = h.pat;
  cpu.updateMode();
}

const u32 = (v: number) => v >>> 0;

/**
 * VMRUN: checks the VMCB, saves the host state, loads the guest and enters guest mode.
 * Returns 0 when the guest was entered, or EXIT_INVALID (-1) after writing VMEXIT_INVALID into
 * the VMCB when the VMCB is inconsistent (the core stays in host mode).
 */
export function vmrun(cpu: Cpu, vmcbPa: number): number {
  if (cpu.guest) throw new Error('vmrun: the core is already running a guest');
  if ((vmcbPa & 0xfff) !== 0 || !cpu.mem.isRam(vmcbPa)) throw new RangeError(`vmrun: VMCB at 0x${u32(vmcbPa).toString(16)} must be a page of RAM`);
  const v = new VmcbView(cpu.mem, vmcbPa);
  const invalid = (): number => { v.w64(VMCB_EXITCODE, EXIT_INVALID); return EXIT_INVALID; };
  const g = new SvmGuest(v);
  g.crIcpt = v.u32(VMCB_CR_INTERCEPTS); g.drIcpt = v.u32(VMCB_DR_INTERCEPTS); g.excIcpt = v.u32(VMCB_EXC_INTERCEPTS);
  g.ic3 = v.u32(VMCB_INTERCEPTS3); g.ic4 = v.u32(VMCB_INTERCEPTS4);
  g.iopm = v.u32(VMCB_IOPM_BASE); g.msrpm = v.u32(VMCB_MSRPM_BASE); g.asid = v.u32(VMCB_ASID);
  // consistency checks (APM 15.5.1) that apply to a 32-bit core
  const cr0 = v.u32(VMCB_CR0), efer = v.u32(VMCB_EFER);
  if ((g.ic4 & IC4_VMRUN) === 0) return invalid();
  if (g.asid === 0 || g.asid > 2047) return invalid();
  if (v.hi32(VMCB_CR0) !== 0 || ((cr0 & 0x20000000) !== 0 && (cr0 & 0x40000000) === 0)) return invalid(); // NW without CD
  if (v.hi32(VMCB_CR3) !== 0 || v.hi32(VMCB_CR4) !== 0 || (v.u32(VMCB_CR4) & ~0x0000_00ff & ~0x600) !== 0) return invalid();
  if (v.hi32(VMCB_DR6) !== 0 || v.hi32(VMCB_DR7) !== 0) return invalid();
  if ((efer & ~0x0000_1d01) !== 0 || v.hi32(VMCB_EFER) !== 0 || (efer & 0x100) !== 0) return invalid(); // no long mode
  if (v.hi32(VMCB_IOPM_BASE) !== 0 || v.hi32(VMCB_MSRPM_BASE) !== 0) return invalid();
  const inj = v.u32(VMCB_EVENTINJ);
  if (inj & EVT_V) {
    const type = (inj >>> 8) & 7, vec = inj & 0xff;
    if (type === 1 || type > 4 || (type === EVT_EXCEPTION && (vec === 2 || vec > 31))) return invalid();
    g.inject = inj; g.injectErr = v.hi32(VMCB_EVENTINJ);
  }
  const vi = v.u32(VMCB_VINTR);
  g.vTpr = vi & 0xff; g.vIrq = (vi & 0x100) !== 0; g.vIntrPrio = (vi >>> 16) & 0xf; g.vIgnTpr = (vi & 0x100000) !== 0;
  g.vIntrMasking = (vi & 0x1000000) !== 0; g.vIntrVector = v.u8(VMCB_VINTR + 4);

  g.host = saveHost(cpu);
  cpu.cycles += extraCosts.vmrun.cycles;
  // guest state
  cpu.cr0 = cr0; cpu.cr3 = v.u32(VMCB_CR3); cpu.cr4 = v.u32(VMCB_CR4); cpu.efer = efer & ~0x1000; // SVME is the host's
  cpu.cr2 = v.u32(VMCB_CR2);
  cpu.dr[6] = v.u32(VMCB_DR6); cpu.dr[7] = v.u32(VMCB_DR7);
  cpu.gdtBase = v.u32(VMCB_GDTR + 8); cpu.gdtLimit = v.u32(VMCB_GDTR + 4) & 0xffff;
  cpu.idtBase = v.u32(VMCB_IDTR + 8); cpu.idtLimit = v.u32(VMCB_IDTR + 4) & 0xffff;
  cpu.ldtSel = v.u16(VMCB_LDTR); cpu.ldtAr = vmcbToAr(v.u16(VMCB_LDTR + 2)); cpu.ldtLimit = v.u32(VMCB_LDTR + 4); cpu.ldtBase = v.u32(VMCB_LDTR + 8);
  cpu.trSel = v.u16(VMCB_TR); cpu.trAr = vmcbToAr(v.u16(VMCB_TR + 2)); cpu.trLimit = v.u32(VMCB_TR + 4); cpu.trBase = v.u32(VMCB_TR + 8);
  cpu.updateMode();
  const cpl = v.u8(VMCB_CPL) & 3;
  cpu.setCpl(cpl);
  for (let s = 0; s < 6; s++) {
    const o = VMCB_SEGS[s];
    cpu.loadSegCache(s, v.u16(o), v.u32(o + 8), v.u32(o + 4), vmcbToAr(v.u16(o + 2)));
  }
  cpu.setCpl(cpl);
  cpu.setEflags(v.u32(VMCB_RFLAGS) | 2);
  cpu.eip = v.u32(VMCB_RIP);
  cpu.r[4] = v.u32(VMCB_RSP); cpu.r[0] = v.u32(VMCB_RAX);
  cpu.sysenterCs = v.u32(VMCB_SYSENTER_CS); cpu.sysenterEsp = v.u32(VMCB_SYSENTER_ESP); cpu.sysenterEip = v.u32(VMCB_SYSENTER_EIP);
  cpu.pat = (BigInt(v.hi32(VMCB_G_PAT)) << 32n) | BigInt(v.u32(VMCB_G_PAT));
  cpu.tscOffset = v.s64(VMCB_TSC_OFFSET);
  cpu.irqShadow = (v.u32(VMCB_INT_STATE) & 1) !== 0;
  cpu.npEnabled = (v.u32(VMCB_NP_CONTROL) & 1) !== 0;
  cpu.nCr3 = v.u32(VMCB_N_CR3);
  cpu.nptFormat = cpu.npEnabled ? nptFormatOf(v) : 0;
  cpu.svm = g;
  cpu.guest = true;
  cpu.state = 0; // RUNNING
  cpu.setAsid(g.asid);
  const tlbc = v.u8(VMCB_TLB_CONTROL);
  if (tlbc === 1) cpu.flushTlbAll();
  else if (tlbc === 3) cpu.flushTlb(false);
  else if (tlbc === 7) cpu.flushTlb(true);
  if (cpu.pae && cpu.pg && !loadPdptes(cpu)) { /* bad PDPTEs: the first access faults through the walk */ }
  cpu.recheckEvents();
  return 0;
}

/** Intercept checks for handlers: true if the guest intercepts that event. */
export function icpt3(cpu: Cpu, bit: number): boolean { return cpu.guest && (cpu.svm!.ic3 & bit) !== 0; }
export function icpt4(cpu: Cpu, bit: number): boolean { return cpu.guest && (cpu.svm!.ic4 & bit) !== 0; }

/**
 * Raises a #VMEXIT from inside an instruction or event: records the exit and unwinds (like
 * cpu.raise). EXITINFO1 is info1Hi:info1. nRIP is the next instruction's EIP.
 */
export function svmExit(cpu: Cpu, code: number, info1 = 0, info2 = 0, info1Hi = 0): never {
  const g = cpu.svm!;
  g.exitCode = code; g.info1 = info1; g.info1Hi = info1Hi; g.info2 = info2; g.nrip = cpu.eip;
  return cpu.exitNow();
}

/** Writes the guest state and exit information into the VMCB, restores the host and reports the exit. */
export function vmexitNow(cpu: Cpu, rip: number): void {
  const g = cpu.svm!;
  const v = g.vmcb;
  cpu.cycles += extraCosts.vmexit.cycles;
  for (let s = 0; s < 6; s++) {
    const o = VMCB_SEGS[s];
    v.w16(o, cpu.segSel[s]); v.w16(o + 2, arToVmcb(cpu.segAr[s])); v.w32(o + 4, cpu.segLimit[s]); v.w64hl(o + 8, cpu.segBase[s], 0);
  }
  v.w32(VMCB_GDTR + 4, cpu.gdtLimit); v.w64hl(VMCB_GDTR + 8, cpu.gdtBase, 0);
  v.w32(VMCB_IDTR + 4, cpu.idtLimit); v.w64hl(VMCB_IDTR + 8, cpu.idtBase, 0);
  v.w16(VMCB_LDTR, cpu.ldtSel); v.w16(VMCB_LDTR + 2, arToVmcb(cpu.ldtAr)); v.w32(VMCB_LDTR + 4, cpu.ldtLimit); v.w64hl(VMCB_LDTR + 8, cpu.ldtBase, 0);
  v.w16(VMCB_TR, cpu.trSel); v.w16(VMCB_TR + 2, arToVmcb(cpu.trAr)); v.w32(VMCB_TR + 4, cpu.trLimit); v.w64hl(VMCB_TR + 8, cpu.trBase, 0);
  v.w8(VMCB_CPL, cpu.cpl);
  v.w64hl(VMCB_EFER, cpu.efer | 0x1000, 0);
  v.w64hl(VMCB_CR0, cpu.cr0, 0); v.w64hl(VMCB_CR2, cpu.cr2, 0); v.w64hl(VMCB_CR3, cpu.cr3, 0); v.w64hl(VMCB_CR4, cpu.cr4, 0);
  v.w64hl(VMCB_DR6, cpu.dr[6], 0); v.w64hl(VMCB_DR7, cpu.dr[7], 0);
  v.w64hl(VMCB_RFLAGS, cpu.getEflags(), 0);
  v.w64hl(VMCB_RIP, rip, 0);
  v.w64hl(VMCB_RSP, cpu.r[4], 0); v.w64hl(VMCB_RAX, cpu.r[0], 0);
  v.w64hl(VMCB_SYSENTER_CS, cpu.sysenterCs, 0); v.w64hl(VMCB_SYSENTER_ESP, cpu.sysenterEsp, 0); v.w64hl(VMCB_SYSENTER_EIP, cpu.sysenterEip, 0);
  v.w32(VMCB_INT_STATE, cpu.irqShadow ? 1 : 0);
  const vi = v.u32(VMCB_VINTR);
  v.w32(VMCB_VINTR, (vi & ~0x1ff) | (g.vTpr & 0xff) | (g.vIrq ? 0x100 : 0));
  v.w64(VMCB_EXITCODE, g.exitCode);
  v.w64hl(VMCB_EXITINFO1, g.info1, g.info1Hi);
  v.w64hl(VMCB_EXITINFO2, g.info2, 0);
  v.w64hl(VMCB_EXITINTINFO, g.delivering, g.delivering & EVT_EV ? g.deliveringErr : 0);
  v.w64hl(VMCB_NRIP, g.nrip, 0);
  v.w32(VMCB_EVENTINJ, 0); // the injected event was taken (or is in EXITINTINFO)
  // back to the host
  cpu.guest = false; cpu.npEnabled = false; cpu.svm = null;
  restoreHost(cpu, g.host);
  cpu.irqShadow = false;
  cpu.setAsid(0);
  cpu.state = 0; // RUNNING: the host's handler decides what the core does next
  cpu.stats.vmexits++;
  cpu.vmexitToHost(g.exitCode);
}

/** An exception raised in the guest (from Cpu.fault): intercept it or deliver it through the guest's IDT. */
export function guestException(cpu: Cpu, vec: number, err: number): void {
  const g = cpu.svm!;
  for (;;) {
    if ((g.excIcpt >>> vec) & 1) {
      g.exitCode = EXIT_EXCP_BASE + vec;
      g.info1 = hasErrorCode(vec) ? err >>> 0 : 0; g.info1Hi = 0;
      g.info2 = vec === 14 ? cpu.pfAddr >>> 0 : 0;
      g.nrip = cpu.eip;
      vmexitNow(cpu, cpu.eip);
      return;
    }
    if (vec === 14) cpu.cr2 = cpu.pfAddr;
    g.delivering = EVT_V | (EVT_EXCEPTION << 8) | vec | (hasErrorCode(vec) ? EVT_EV : 0); g.deliveringErr = err;
    try {
      deliverEvent(cpu, vec, EV_EXCEPTION, err);
      g.delivering = 0;
      return;
    } catch (e) {
      if (!cpu.isUnwind(e)) throw e;
      if (cpu.exitPending) { cpu.exitPending = false; vmexitNow(cpu, cpu.eip); return; }
      const second = cpu.excVec;
      if (second === 14 && ((g.excIcpt >>> 14) & 1) === 0) cpu.cr2 = cpu.pfAddr;
      if (vec === 8) { cpu.shutdown(`triple fault in the guest (exception ${second} while delivering a double fault)`); return; }
      const contributory = (x: number) => x === 0 || (x >= 10 && x <= 13);
      if ((contributory(vec) && contributory(second)) || (vec === 14 && (contributory(second) || second === 14))) { vec = 8; err = 0; }
      else { vec = second; err = cpu.excErr; }
    }
  }
}

/** A shutdown condition in the guest: #VMEXIT(SHUTDOWN) when intercepted (returns true), else false (the core shuts down). */
export function guestShutdown(cpu: Cpu): boolean {
  const g = cpu.svm!;
  if ((g.ic3 & IC3_SHUTDOWN) === 0) return false;
  g.exitCode = EXIT_SHUTDOWN; g.info1 = 0; g.info1Hi = 0; g.info2 = 0; g.nrip = cpu.eip; g.delivering = 0;
  vmexitNow(cpu, cpu.eip);
  return true;
}

/** Delivers a software interrupt, NMI or external interrupt into the guest (Cpu.dispatch in guest mode). */
export function guestDispatch(cpu: Cpu, vec: number, type: number, err: number): void {
  const g = cpu.svm!;
  const t = type === EV_EXTERNAL ? EVT_INTR : type === EV_NMI ? EVT_NMI : type === EV_EXCEPTION ? EVT_EXCEPTION
    : type === EV_SOFT ? EVT_SOFT_INT : type === EV_ICEBP || type === EV_SOFT_EXC ? EVT_EXCEPTION : EVT_SOFT_INT;
  g.delivering = EVT_V | (t << 8) | (vec & 0xff); g.deliveringErr = 0;
  deliverEvent(cpu, vec, type, err);
  g.delivering = 0;
}

/** What the guest has pending at an instruction boundary; see Cpu.pendingEvent. */
export function guestPending(cpu: Cpu): boolean {
  const g = cpu.svm!;
  if (g.inject !== 0) return true;
  if (cpu.nmiPending && (g.ic3 & IC3_NMI)) return true;
  if (cpu.intc !== null && cpu.intc.hasInterrupt() && ((g.ic3 & IC3_INTR) !== 0 || (cpu.flags & IF) !== 0)) return true;
  return virtualPending(cpu);
}

function virtualPending(cpu: Cpu): boolean {
  const g = cpu.svm!;
  return g.vIrq && (cpu.flags & IF) !== 0 && (g.vIgnTpr || g.vIntrPrio > (g.vTpr >>> 4));
}

/** Takes the guest's pending event (Cpu.takeEvent in guest mode). */
export function guestTakeEvent(cpu: Cpu): void {
  const g = cpu.svm!;
  if (g.inject !== 0) {
    const inj = g.inject, err = g.injectErr;
    g.inject = 0;
    const type = (inj >>> 8) & 7, vec = inj & 0xff;
    g.delivering = inj; g.deliveringErr = err;
    const evType = type === EVT_INTR ? EV_EXTERNAL : type === EVT_NMI ? EV_NMI : type === EVT_SOFT_INT ? EV_SOFT : EV_EXCEPTION;
    deliverEvent(cpu, vec, evType, (inj & EVT_EV) ? err : -1);
    g.delivering = 0;
    return;
  }
  if (cpu.nmiPending && (g.ic3 & IC3_NMI)) svmExitAt(cpu, EXIT_NMI);
  if (cpu.intc !== null && cpu.intc.hasInterrupt() && (g.ic3 & IC3_INTR)) { svmExitAt(cpu, EXIT_INTR); return; }
  if (virtualPending(cpu)) {
    if (g.ic3 & IC3_VINTR) { svmExitAt(cpu, EXIT_VINTR); return; }
    g.vIrq = false;
    guestDispatch(cpu, g.vIntrVector, EV_EXTERNAL, -1);
    return;
  }
  if (cpu.intc !== null && cpu.intc.hasInterrupt() && (cpu.flags & IF) !== 0) {
    const vec = cpu.intc.acknowledge();
    cpu.stats.interrupts++;
    guestDispatch(cpu, vec, EV_EXTERNAL, -1);
  }
}

/** An exit between instructions (INTR, NMI, VINTR): RIP is the next instruction to run. */
function svmExitAt(cpu: Cpu, code: number): void {
  const g = cpu.svm!;
  g.exitCode = code; g.info1 = 0; g.info1Hi = 0; g.info2 = 0; g.nrip = cpu.eip;
  vmexitNow(cpu, cpu.eip);
}

/** True if a halted guest has something that ends the halt. */
export function guestWakeable(cpu: Cpu): boolean {
  const g = cpu.svm!;
  return g.inject !== 0 || cpu.nmiPending || virtualPending(cpu) ||
    (cpu.intc !== null && cpu.intc.hasInterrupt() && ((g.ic3 & IC3_INTR) !== 0 || (cpu.flags & IF) !== 0));
}


/**
 * The IOIO intercept (IOPM bitmap, one bit per port; every byte of the access is checked),
 * with the APM's EXITINFO1 encoding: TYPE (1 = IN) bit 0, STR 2, REP 3, SZ8/16/32 4-6,
 * A16/A32 7-8, SEG 10-12, PORT 16-31; EXITINFO2 = the next instruction's RIP.
 */
export function ioIntercept(cpu: Cpu, port: number, size: number, isIn: boolean, str: boolean, rep: boolean, a16: boolean, seg: number): void {
  const g = cpu.svm;
  if (g === null || (g.ic3 & IC3_IOIO) === 0) return;
  let hit = false;
  for (let k = 0; k < size && !hit; k++) {
    const p = port + k;
    hit = ((cpu.mem.read((g.iopm + (p >>> 3)) >>> 0, 1) >>> (p & 7)) & 1) !== 0;
  }
  if (!hit) return;
  const info1 = (port << 16) | ((seg & 7) << 10) | (a16 ? 1 << 7 : 1 << 8) | (size === 1 ? 1 << 4 : size === 2 ? 1 << 5 : 1 << 6)
    | (rep ? 8 : 0) | (str ? 4 : 0) | (isIn ? 1 : 0);
  svmExit(cpu, EXIT_IOIO, info1 >>> 0, cpu.eip);
}

/** The MSR intercept (MSRPM: two bits per MSR, read then write, for three ranges; others always exit). EXITINFO1 = 0 read, 1 write. */
export function msrIntercept(cpu: Cpu, msr: number, write: boolean): void {
  const g = cpu.svm;
  if (g === null || (g.ic3 & IC3_MSR) === 0) return;
  msr >>>= 0;
  let base: number;
  if (msr <= 0x1fff) base = 0;
  else if (msr >= 0xc0000000 && msr <= 0xc0001fff) base = 0x800 * 8;
  else if (msr >= 0xc0010000 && msr <= 0xc0011fff) base = 0x1000 * 8;
  else { svmExit(cpu, EXIT_MSR, write ? 1 : 0); }
  const bit = base + (msr & 0x1fff) * 2 + (write ? 1 : 0);
  if ((cpu.mem.read((g.msrpm + (bit >>> 3)) >>> 0, 1) >>> (bit & 7)) & 1) svmExit(cpu, EXIT_MSR, write ? 1 : 0);
}
