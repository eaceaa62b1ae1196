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
 * State. vmrun() is VMLOAD + VMRUN and the #VMEXIT is #VMEXIT + VMSAVE (the host has no
 * instructions of its own): it loads every segment (with attributes, FS/GS/TR/LDTR included),
 * GDTR/IDTR, CPL (forced to 0 in real mode), EFER (SVME stays the host's), CR0/2/3/4, DR6/7,
 * RFLAGS, RIP, RSP, RAX and the SYSENTER MSRs; G_PAT only with nested paging (APM Table B-2);
 * the guest's TSC is the host's (cycles + its own WRMSR offset) plus TSC_OFFSET. The exit writes
 * the same fields back, then V_TPR, V_IRQ and INTERRUPT_SHADOW, and restores the host's state
 * exactly (RAX and RSP included; the other GPRs keep the guest's values). VMRUN and #VMEXIT
 * flush no TLB entry: only TLB_CONTROL does (1 every ASID, 3 this ASID, 7 its non-global ones).
 *
 * Events (APM 15.7.2-15.7.3, 15.20-15.21). EVENTINJ is taken before the first guest instruction,
 * unconditionally (IF, interrupt shadow) and without intercept checks; an exception of vector 3
 * or 4 is delivered like INT3/INTO (gate DPL checked), an NMI always through vector 2, an
 * exception pushes ERRORCODE when EV is set and its vector has an error code; a software
 * interrupt returns to RIP (as without NRIPS: the VMM points RIP past the INT n). Each event is
 * recorded in EXITINTINFO while it is delivered, so an intercepted exception during delivery
 * reports it; secondary exceptions follow the APM's pseudo-code: the intercept is checked
 * first, then the double-fault combination (a #DF may be intercepted in turn), then delivery.
 * Physical interrupts (INTR) are masked by the guest's IF, or with V_INTR_MASKING by the host's
 * IF at VMRUN (a TypeScript host handler counts as IF = 1); an intercepted one exits and stays
 * pending, so a host that stays in host mode takes it (TRAP_INTERRUPT) before any instruction.
 * A virtual interrupt needs IF = 1 and V_INTR_PRIO > V_TPR[3:0] (or V_IGN_TPR); the VINTR
 * intercept is checked before V_IRQ is cleared. Physical before virtual; nothing is taken in an
 * interrupt shadow except EVENTINJ. nRIP is 0 for exits that are not instruction intercepts.
 *
 * Intercepts and where they are checked (APM 15.8-15.14; an instruction intercept is checked
 * after the instruction's simple exceptions (#UD, #GP for CPL or mode) and before any exception
 * that depends on a memory access or on an operand's value; RIP in the VMCB is the intercepted
 * instruction, nRIP the next one):
 *
 * | intercept | where | EXITINFO1 / EXITINFO2 |
 * |---|---|---|
 * | CR0-15 read/write, CR0 selective write | isa/system.ts (MOV CRn, SMSW, LMSW, CLTS), crIntercept, cr0SelIntercept | bit 63 = MOV CRn, bits 3:0 its GPR; 0 for SMSW/LMSW/CLTS |
 * | DR0-15 read/write | isa/system.ts (MOV DRn), drIntercept | bits 3:0 = the GPR |
 * | exceptions by vector | guestException; INT3/INTO/ICEBP in guestDispatch | error code / CR2 for #PF |
 * | INTR, NMI, VINTR | guestTakeEvent | - |
 * | IDTR/GDTR/LDTR/TR read/write | isa/descriptors.ts | - |
 * | RDTSC RDTSCP RDPMC INVD WBINVD HLT CPUID MONITOR MWAIT, INVLPG, INVLPGA | isa/system.ts | INVLPG: linear address; INVLPGA: rAX |
 * | PUSHF POPF | isa/stack.ts; IRET: isa/far.ts; INTn, ICEBP: isa/control.ts; PAUSE: isa/mov.ts | INTn: the vector |
 * | IOIO, MSR | ioIntercept, msrIntercept | IOIO encoding, next RIP / 0 read, 1 write |
 * | task switch | taskswitch.ts, taskSwitchIntercept | target TSS selector / error code, bits 36 IRET, 38 JMP, 44 error code valid, 48 RF |
 * | SHUTDOWN | guestShutdown | - |
 * | VMRUN (always), VMMCALL, VMLOAD, VMSAVE, STGI, CLGI, SKINIT | isa/system.ts (0F 01 D8-DE) | - |
 *
 * Only CR0, CR2-CR4 and DR0-DR7 can be named on this 32-bit core: MOV to or from CR1 or CR5-CR7
 * is #UD before any intercept, and CR8-CR15/DR8-DR15 need a REX prefix (AMD's LOCK MOV CR0 alias
 * of CR8 is #UD here). DR4/DR5 exit as themselves (0x24/0x25...), not as the DR6/DR7 they alias.
 * INT3, INTO and ICEBP intercepted as #BP/#OF/#DB exit with RIP = the instruction, nRIP = the next.
 *
 * SMI and INIT: the SMI intercept has no source (no SMM is modelled). The machine's only INIT
 * source is an INIT IPI through a local APIC, which the LWK sends to start application
 * processors before they run anything; an INIT reaching a core in guest mode is not modelled
 * (the INIT intercept bit is never consulted). RSM and FERR_FREEZE have no source either (no
 * SMM, no x87). MWAIT_COND never fires: MONITOR cannot arm a monitor on this core.
 *
 * Not modelled: GIF (the host is TypeScript: CLGI/STGI only exit or #UD), nested SVM (VMLOAD,
 * VMSAVE, STGI, CLGI and SKINIT raise #UD in a guest that does not intercept them), the pause
 * filter (every intercepted PAUSE exits), decode assists beyond nRIP and the EXITINFO1 forms
 * above (no instruction bytes), the VMCB clean bits (everything is reloaded).
 */
import { extraCosts } from '../costs.ts';
import type { Cpu } from './cpu.ts';
import { EV_EXCEPTION, EV_EXTERNAL, EV_ICEBP, EV_NMI, EV_SOFT, EV_SOFT_EXC, deliverEvent, hasErrorCode, isDoubleFault } from './exceptions.ts';
import { IF, RF } from './flags.ts';
import { nptFormatOfView } from './npt.ts';
import { loadPdptes } from './paging.ts';
import {
  arToVmcb, EVT_EV, EVT_EXCEPTION, EVT_INTR, EVT_NMI, EVT_SOFT_INT, EVT_V, EXIT_CR0_READ, EXIT_CR0_SEL_WRITE, EXIT_CR0_WRITE,
  EXIT_DR0_READ, EXIT_DR0_WRITE, EXIT_EXCP_BASE, EXIT_INTR, EXIT_INVALID, EXIT_TASK_SWITCH, IC3_CR0_SEL_WRITE, IC3_TASK_SWITCH,
  EXIT_IOIO, EXIT_MSR, EXIT_NMI, EXIT_NPF, EXIT_SHUTDOWN, EXIT_VINTR, IC3_INTR, IC3_IOIO, IC3_MSR, IC3_NMI, IC3_SHUTDOWN, IC3_VINTR, IC4_VMRUN, VMCB_ASID,
  VMCB_CPL, VMCB_CR0, VMCB_CR2, VMCB_CR3, VMCB_CR4, VMCB_CR_INTERCEPTS, VMCB_DR6, VMCB_DR7, VMCB_DR_INTERCEPTS,
  VMCB_EFER, VMCB_EVENTINJ, VMCB_EXC_INTERCEPTS, VMCB_EXITCODE, VMCB_EXITINFO1, VMCB_EXITINFO2,
  VMCB_EXITINTINFO, VMCB_G_PAT, VMCB_GDTR, VMCB_IDTR, VMCB_INT_STATE, VMCB_INTERCEPTS3, VMCB_INTERCEPTS4,
  VMCB_IOPM_BASE, VMCB_LDTR, VMCB_MSRPM_BASE, VMCB_N_CR3, VMCB_NP_CONTROL, VMCB_NRIP, VMCB_RAX, VMCB_RFLAGS,
  VMCB_RIP, VMCB_RSP, VMCB_SEGS, VMCB_SYSENTER_CS, VMCB_SYSENTER_EIP, VMCB_SYSENTER_ESP, VMCB_TLB_CONTROL,
  VMCB_TR, VMCB_TSC_OFFSET, VMCB_VINTR, VmcbView, vmcbToAr,
} from './vmcb.ts';


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
  /** The host's IF at VMRUN: with V_INTR_MASKING it masks physical interrupts in the guest (APM 15.21.1). */
  hostIf = false;
  /** The event being delivered into the guest (EXITINTINFO form, low dword), 0 if none; and its error code. */
  delivering = 0; deliveringErr = 0;
  /** An event to inject before the first guest instruction (EVENTINJ), 0 if none. */
  inject = 0; injectErr = 0;
  exitCode = 0; info1 = 0; info1Hi = 0; info2 = 0; info2Hi = 0; nrip = 0;
  host!: HostState;
  constructor(readonly vmcb: VmcbView) {}
}

/** One host save area per core, reused by every VMRUN (a core runs one guest at a time): no allocation per entry. */
const hostAreas = new WeakMap<Cpu, HostState>();

function saveHost(cpu: Cpu): HostState {
  let h = hostAreas.get(cpu);
  if (h === undefined) {
    h = {
      r: cpu.r.slice(), eip: 0, eflags: 0, segSel: cpu.segSel.slice(), segBase: cpu.segBase.slice(),
      segLimit: cpu.segLimit.slice(), segAr: cpu.segAr.slice(), cpl: 0, gdt: [0, 0], idt: [0, 0], ldt: [0, 0, 0, 0], tr: [0, 0, 0, 0],
      cr0: 0, cr2: 0, cr3: 0, cr4: 0, efer: 0, dr: cpu.dr.slice(), pdpte: cpu.pdpte.slice(), sysenter: [0, 0, 0], tscOffset: 0, pat: 0n,
    };
    hostAreas.set(cpu, h);
  }
  h.r.set(cpu.r); h.eip = cpu.eip; h.eflags = cpu.getEflags();
  h.segSel.set(cpu.segSel); h.segBase.set(cpu.segBase); h.segLimit.set(cpu.segLimit); h.segAr.set(cpu.segAr); h.cpl = cpu.cpl;
  h.gdt[0] = cpu.gdtBase; h.gdt[1] = cpu.gdtLimit; h.idt[0] = cpu.idtBase; h.idt[1] = cpu.idtLimit;
  h.ldt[0] = cpu.ldtSel; h.ldt[1] = cpu.ldtBase; h.ldt[2] = cpu.ldtLimit; h.ldt[3] = cpu.ldtAr;
  h.tr[0] = cpu.trSel; h.tr[1] = cpu.trBase; h.tr[2] = cpu.trLimit; h.tr[3] = cpu.trAr;
  h.cr0 = cpu.cr0; h.cr2 = cpu.cr2; h.cr3 = cpu.cr3; h.cr4 = cpu.cr4; h.efer = cpu.efer;
  h.dr.set(cpu.dr); h.pdpte.set(cpu.pdpte);
  h.sysenter[0] = cpu.sysenterCs; h.sysenter[1] = cpu.sysenterEsp; h.sysenter[2] = cpu.sysenterEip;
  h.tscOffset = cpu.tscOffset; h.pat = cpu.pat;
  return h;
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

/** ASIDs the modelled TLB can tag (cpu.setAsid); a VMCB ASID above it is VMEXIT_INVALID, like 0. */
const MAX_ASID = 2047;
const CR0_NW = 0x20000000, CR0_CD = 0x40000000;
/** CR4 bits this core implements, as MOV CR4 accepts them (isa/system.ts CR4_VALID: TSD DE PSE PAE PGE PCE); the rest are MBZ. */
const GUEST_CR4_VALID = 0x1bc;
/**
 * EFER bits a guest may have: NXE and SVME. SCE (no SYSCALL advertised) and the reserved bits
 * are MBZ; LME and LMA name long mode, which this processor lacks: each is VMEXIT_INVALID.
 */
const GUEST_EFER_VALID = 0x800 | 0x1000;

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
  // the low 12 bits of IOPM_BASE_PA and MSRPM_BASE_PA are ignored (APM Table B-1, 15.10.1)
  g.iopm = (v.u32(VMCB_IOPM_BASE) & ~0xfff) >>> 0; g.msrpm = (v.u32(VMCB_MSRPM_BASE) & ~0xfff) >>> 0; g.asid = v.u32(VMCB_ASID);
  // Consistency checks (APM 15.5.1, "Canonicalization and Consistency Checks"), as they apply
  // to this 32-bit core without long mode. Each one leaves the core in host mode, untouched.
  const cr0 = v.u32(VMCB_CR0), efer = v.u32(VMCB_EFER);
  if ((g.ic4 & IC4_VMRUN) === 0) return invalid();
  if (g.asid === 0 || g.asid > MAX_ASID) return invalid();
  if (v.hi32(VMCB_CR0) !== 0 || ((cr0 & CR0_NW) !== 0 && (cr0 & CR0_CD) === 0)) return invalid();
  // MBZ: CR3 above the 32-bit physical base; CR4 bits this core does not implement
  if (v.hi32(VMCB_CR3) !== 0 || v.hi32(VMCB_CR4) !== 0 || (v.u32(VMCB_CR4) & ~GUEST_CR4_VALID) !== 0) return invalid();
  if (v.hi32(VMCB_DR6) !== 0 || v.hi32(VMCB_DR7) !== 0) return invalid();
  // MBZ EFER bits; LME or LMA set on a processor without long mode
  if ((efer & ~GUEST_EFER_VALID) !== 0 || v.hi32(VMCB_EFER) !== 0) return invalid();
  // the permission maps (12 and 8 KiB) must end below the top of the physical address space
  if (v.hi32(VMCB_IOPM_BASE) !== 0 || g.iopm + 0x2fff > 0xffffffff) return invalid();
  if (v.hi32(VMCB_MSRPM_BASE) !== 0 || g.msrpm + 0x1fff > 0xffffffff) return invalid();
  const inj = v.u32(VMCB_EVENTINJ);
  if (inj & EVT_V) {
    // illegal injection (APM 15.20): a reserved TYPE (1, 5-7), or TYPE 3 with a vector that is
    // not an exception (2 is the NMI; above 31 are interrupts)
    const type = (inj >>> 8) & 7, vec = inj & 0xff;
    if (type === 1 || type > 4 || (type === EVT_EXCEPTION && (vec === 2 || vec > 31))) return invalid();
    g.inject = inj; g.injectErr = v.hi32(VMCB_EVENTINJ);
  }
  const vi = v.u32(VMCB_VINTR);
  g.vTpr = vi & 0xff; g.vIrq = (vi & 0x100) !== 0; g.vIntrPrio = (vi >>> 16) & 0xf; g.vIgnTpr = (vi & 0x100000) !== 0;
  g.vIntrMasking = (vi & 0x1000000) !== 0; g.vIntrVector = v.u8(VMCB_VINTR + 4);

  g.host = saveHost(cpu);
  // V_INTR_MASKING: the host's IF at VMRUN masks physical interrupts while the guest runs; a
  // TypeScript host handler takes interrupts whatever its IF (Cpu.pendingEvent), so with one
  // installed the host's IF counts as set
  g.hostIf = (g.host.eflags & IF) !== 0 || cpu.host !== null;
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
  // the CPL field; real mode forces CPL 0 (APM 15.5.1, "Segment State in the VMCB")
  const cpl = (cr0 & 1) !== 0 ? v.u8(VMCB_CPL) & 3 : 0;
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
  // the guest's TSC is the host's plus TSC_OFFSET (APM Table B-1; #VMEXIT drops it, 15.6)
  cpu.tscOffset = g.host.tscOffset + v.s64(VMCB_TSC_OFFSET);
  // INTERRUPT_SHADOW: the first guest instruction takes no interrupt. An injected event is taken
  // unconditionally before that instruction (APM 15.20), and delivering it ends the shadow.
  cpu.irqShadow = (v.u32(VMCB_INT_STATE) & 1) !== 0 && g.inject === 0;
  cpu.npEnabled = (v.u32(VMCB_NP_CONTROL) & 1) !== 0;
  cpu.nCr3 = v.u32(VMCB_N_CR3);
  cpu.nptFormat = cpu.npEnabled ? nptFormatOfView(v) : 0; // the VMCB field npt.ts defines (reserved bits of 0x097)
  // G_PAT is the guest's PAT only with nested paging; without it the guest uses the host's PAT
  // (APM Table B-2). The host's PAT comes back at #VMEXIT either way.
  if (cpu.npEnabled) cpu.pat = (BigInt(v.hi32(VMCB_G_PAT)) << 32n) | BigInt(v.u32(VMCB_G_PAT));
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
 * cpu.raise). EXITINFO1 is info1Hi:info1, EXITINFO2 info2Hi:info2. nRIP is the next instruction's EIP.
 */
export function svmExit(cpu: Cpu, code: number, info1 = 0, info2 = 0, info1Hi = 0, info2Hi = 0): never {
  const g = cpu.svm!;
  g.exitCode = code; g.info1 = info1; g.info1Hi = info1Hi; g.info2 = info2; g.info2Hi = info2Hi;
  // nRIP is saved for instruction, IOIO and MSR intercepts; a nested page fault resets it (APM 15.7.1)
  g.nrip = code === EXIT_NPF ? 0 : cpu.eip;
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
  if (cpu.npEnabled) v.w64hl(VMCB_G_PAT, Number(cpu.pat & 0xffffffffn), Number(cpu.pat >> 32n));
  // INTERRUPT_SHADOW: the exit came from the instruction that ran in a shadow (STI; HLT), or
  // the shadow is still pending (APM 15.21.5)
  v.w32(VMCB_INT_STATE, cpu.inShadow || cpu.irqShadow ? 1 : 0);
  const vi = v.u32(VMCB_VINTR);
  v.w32(VMCB_VINTR, (vi & ~0x1ff) | (g.vTpr & 0xff) | (g.vIrq ? 0x100 : 0));
  v.w64(VMCB_EXITCODE, g.exitCode);
  v.w64hl(VMCB_EXITINFO1, g.info1, g.info1Hi);
  v.w64hl(VMCB_EXITINFO2, g.info2, g.info2Hi);
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


/**
 * An exception raised in the guest (from Cpu.fault, or an injected one): intercept it or
 * deliver it through the guest's IDT, as the APM's pseudo-code for delivering an event E does
 * (15.7.3): if E is intercepted, #VMEXIT(E) with EXITINTINFO = the event being delivered when E
 * arose; else combine E with that event by the double-fault rules, where a #DF may be
 * intercepted in turn and an exception while delivering #DF is a shutdown (intercepted or not);
 * then EXITINTINFO = E and deliver it, which may raise the next exception. `injected` skips the
 * intercept check of the first exception (APM 15.20: injected events are not intercepted, the
 * exceptions their delivery raises are); `errValid` says whether it pushes `err`.
 */
export function guestException(cpu: Cpu, vec: number, err: number, injected = false, errValid = hasErrorCode(vec)): void {
  const g = cpu.svm!;
  for (;;) {
    if (!injected && ((g.excIcpt >>> vec) & 1) !== 0) { exceptionExit(cpu, vec, err); return; }
    // #PF writes CR2 once it is not intercepted (the intercept is tested first, APM 15.12.15),
    // also when it then becomes a double fault; an injected #PF leaves CR2 to the VMM
    if (vec === 14 && !injected) cpu.cr2 = cpu.pfAddr;
    injected = false;
    const prior = g.delivering;
    if ((prior & EVT_V) !== 0 && ((prior >>> 8) & 7) === EVT_EXCEPTION) {
      const first = prior & 0xff;
      if (first === 8) {
        g.delivering = 0;
        cpu.shutdown(`triple fault in the guest (exception ${vec} while delivering a double fault)`);
        return;
      }
      if (isDoubleFault(first, vec)) {
        vec = 8; err = 0; errValid = true;
        if (((g.excIcpt >>> 8) & 1) !== 0) { exceptionExit(cpu, 8, 0); return; }
      }
    }
    g.delivering = EVT_V | (EVT_EXCEPTION << 8) | vec | (errValid ? EVT_EV : 0); g.deliveringErr = errValid ? err : 0;
    try {
      // INT3 and INTO (also injected as exceptions 3 and 4) are traps whose gate DPL is checked (APM 15.20)
      deliverEvent(cpu, vec, vec === 3 || vec === 4 ? EV_SOFT_EXC : EV_EXCEPTION, errValid ? err : -1);
      g.delivering = 0;
      return;
    } catch (e) {
      if (!cpu.isUnwind(e)) throw e;
      if (cpu.exitPending) { cpu.exitPending = false; vmexitNow(cpu, cpu.eip); return; }
      vec = cpu.excVec; err = cpu.excErr; errValid = hasErrorCode(vec);
    }
  }
}

/**
 * #VMEXIT for an intercepted exception: EXITINFO1 = its error code, EXITINFO2 = the faulting
 * address of a #PF (CR2 is not written); nRIP is 0 (APM 15.7.1: saved only for instruction
 * intercepts and the traps of INT3 and INTO, which guestDispatch exits for). EXITINTINFO keeps
 * the event being delivered, if any.
 */
function exceptionExit(cpu: Cpu, vec: number, err: number): void {
  const g = cpu.svm!;
  g.exitCode = EXIT_EXCP_BASE + vec;
  g.info1 = hasErrorCode(vec) && err >= 0 ? err >>> 0 : 0; g.info1Hi = 0;
  g.info2 = vec === 14 ? cpu.pfAddr >>> 0 : 0; g.info2Hi = 0;
  g.nrip = 0;
  vmexitNow(cpu, cpu.eip);
}

/** A shutdown condition in the guest: #VMEXIT(SHUTDOWN) when intercepted (returns true), else false (the core shuts down). */
export function guestShutdown(cpu: Cpu): boolean {
  const g = cpu.svm!;
  if ((g.ic3 & IC3_SHUTDOWN) === 0) return false;
  g.exitCode = EXIT_SHUTDOWN; g.info1 = 0; g.info1Hi = 0; g.info2 = 0; g.info2Hi = 0; g.nrip = 0; g.delivering = 0;
  vmexitNow(cpu, cpu.eip);
  return true;
}

/** Delivers a software interrupt, NMI or external interrupt into the guest (Cpu.dispatch in guest mode). */
export function guestDispatch(cpu: Cpu, vec: number, type: number, err: number): void {
  const g = cpu.svm!;
  // INT3 and INTO raise #BP and #OF, ICEBP #DB: exceptions, intercepted by vector before delivery
  // (RIP = the instruction, nRIP = the next one); INT n is the INTn intercept (isa/control.ts)
  if ((type === EV_SOFT_EXC || type === EV_ICEBP) && ((g.excIcpt >>> vec) & 1) !== 0) svmExit(cpu, EXIT_EXCP_BASE + vec);
  const t = type === EV_EXTERNAL ? EVT_INTR : type === EV_NMI ? EVT_NMI : type === EV_EXCEPTION ? EVT_EXCEPTION
    : type === EV_SOFT ? EVT_SOFT_INT : type === EV_ICEBP || type === EV_SOFT_EXC ? EVT_EXCEPTION : EVT_SOFT_INT;
  g.delivering = EVT_V | (t << 8) | (vec & 0xff); g.deliveringErr = 0;
  deliverEvent(cpu, vec, type, err);
  g.delivering = 0;
}

/**
 * A physical interrupt (INTR) the guest recognizes: one is pending and not masked. Guest IF
 * masks it, unless V_INTR_MASKING hands that to the host's IF at VMRUN (APM 15.21.1). A
 * recognized interrupt exits when INTR is intercepted, else it goes through the guest's IDT.
 */
function physicalReady(cpu: Cpu): boolean {
  const g = cpu.svm!;
  return cpu.intc !== null && (g.vIntrMasking ? g.hostIf : (cpu.flags & IF) !== 0) && cpu.intc.hasInterrupt();
}

/**
 * A virtual interrupt the guest takes (APM 15.21.4): V_IRQ with guest IF = 1 and V_INTR_PRIO
 * above the 4-bit V_TPR (bits 3:0; bits 7:4 are SBZ), unless V_IGN_TPR omits the comparison.
 */
function virtualPending(cpu: Cpu): boolean {
  const g = cpu.svm!;
  return g.vIrq && (cpu.flags & IF) !== 0 && (g.vIgnTpr || g.vIntrPrio > (g.vTpr & 0xf));
}

/** What the guest has pending at an instruction boundary outside an interrupt shadow; see Cpu.pendingEvent. */
export function guestPending(cpu: Cpu): boolean {
  return cpu.svm!.inject !== 0 || cpu.nmiPending || physicalReady(cpu) || virtualPending(cpu);
}

/**
 * Takes the guest's pending event (Cpu.takeEvent in guest mode), by priority: the injected
 * event (before the first guest instruction, unconditionally and without intercept checks,
 * APM 15.20), then NMI, then a physical interrupt, then the virtual one (physical interrupts
 * take priority over virtual ones, APM 15.21.4). An intercepted NMI or INTR exits and stays
 * pending (APM 15.13); the host takes it once it is back in host mode.
 */
export function guestTakeEvent(cpu: Cpu): void {
  const g = cpu.svm!;
  if (g.inject !== 0) {
    const inj = g.inject, err = g.injectErr;
    g.inject = 0;
    const type = (inj >>> 8) & 7, vec = inj & 0xff;
    if (type === EVT_EXCEPTION) { guestException(cpu, vec, err, true, (inj & EVT_EV) !== 0); return; }
    // an injected NMI uses vector 2 whatever VECTOR says (APM 15.20)
    const v = type === EVT_NMI ? 2 : vec;
    g.delivering = EVT_V | (type << 8) | v | (inj & EVT_EV); g.deliveringErr = (inj & EVT_EV) !== 0 ? err : 0;
    deliverEvent(cpu, v, type === EVT_INTR ? EV_EXTERNAL : type === EVT_NMI ? EV_NMI : EV_SOFT, -1);
    g.delivering = 0;
    return;
  }
  if (cpu.nmiPending) {
    if ((g.ic3 & IC3_NMI) !== 0) { svmExitAt(cpu, EXIT_NMI); return; }
    cpu.nmiPending = false;
    guestDispatch(cpu, 2, EV_NMI, -1);
    return;
  }
  if (physicalReady(cpu)) {
    if ((g.ic3 & IC3_INTR) !== 0) { svmExitAt(cpu, EXIT_INTR); return; }
    const vec = cpu.intc!.acknowledge();
    cpu.stats.interrupts++;
    guestDispatch(cpu, vec, EV_EXTERNAL, -1);
    return;
  }
  if (virtualPending(cpu)) {
    // the VINTR intercept is checked first; V_IRQ is cleared before the IDT is accessed
    if ((g.ic3 & IC3_VINTR) !== 0) { svmExitAt(cpu, EXIT_VINTR); return; }
    g.vIrq = false;
    guestDispatch(cpu, g.vIntrVector, EV_EXTERNAL, -1);
  }
}

/** An exit between instructions (INTR, NMI, VINTR): RIP is the next instruction to run, nRIP 0. */
function svmExitAt(cpu: Cpu, code: number): void {
  const g = cpu.svm!;
  g.exitCode = code; g.info1 = 0; g.info1Hi = 0; g.info2 = 0; g.info2Hi = 0; g.nrip = 0;
  vmexitNow(cpu, cpu.eip);
}

/** True if a halted guest has something that ends the halt (the same events as guestPending). */
export function guestWakeable(cpu: Cpu): boolean {
  return guestPending(cpu);
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

/** EXITINFO1 bit 63 (in the high dword) for the decode assist of MOV CRn: the GPR is in bits 3:0. */
const MOV_CR = 0x80000000 | 0;

/**
 * The CRn read (write) intercept, CR_INTERCEPTS bit n (16 + n): exit 0x00 + n (0x10 + n). `gpr`
 * is the general register of MOV CRn (EXITINFO1 = bit 63 | gpr, the decode assist), or -1 for
 * SMSW, LMSW and CLTS (EXITINFO1 = 0).
 */
export function crIntercept(cpu: Cpu, n: number, write: boolean, gpr: number): void {
  const g = cpu.svm;
  if (g === null || ((g.crIcpt >>> (write ? 16 + n : n)) & 1) === 0) return;
  const code = (write ? EXIT_CR0_WRITE : EXIT_CR0_READ) + n;
  if (gpr < 0) svmExit(cpu, code);
  svmExit(cpu, code, gpr, 0, MOV_CR);
}

/** CR0 bits a write may change without the selective CR0 write intercept: TS and MP. */
const CR0_SEL_IGNORED = 0x8 | 0x2;

/**
 * The selective CR0 write intercept (IC3_CR0_SEL_WRITE, exit 0x65): a CR0 write (MOV CR0, LMSW;
 * checked after the plain CR0 write intercept, which takes priority) whose new value `v` differs
 * from CR0 in a bit other than TS and MP. `gpr` as for crIntercept.
 */
export function cr0SelIntercept(cpu: Cpu, v: number, gpr: number): void {
  const g = cpu.svm;
  if (g === null || (g.ic3 & IC3_CR0_SEL_WRITE) === 0) return;
  if (((cpu.cr0 ^ v) & ~CR0_SEL_IGNORED) === 0) return;
  if (gpr < 0) svmExit(cpu, EXIT_CR0_SEL_WRITE);
  svmExit(cpu, EXIT_CR0_SEL_WRITE, gpr, 0, MOV_CR);
}

/** The DRn read (write) intercept, DR_INTERCEPTS bit n (16 + n): exit 0x20 + n (0x30 + n), EXITINFO1 = the GPR. */
export function drIntercept(cpu: Cpu, n: number, write: boolean, gpr: number): void {
  const g = cpu.svm;
  if (g === null || ((g.drIcpt >>> (write ? 16 + n : n)) & 1) === 0) return;
  svmExit(cpu, (write ? EXIT_DR0_WRITE : EXIT_DR0_READ) + n, gpr);
}

/**
 * The task-switch intercept (exit 0x7d), checked by taskswitch.ts once the new TSS descriptor
 * passed its checks and before any state changes. EXITINFO1 = the target TSS selector;
 * EXITINFO2 = the error code the switch would push (bits 31:0), bit 36 for IRET, bit 38 for a
 * far JMP, bit 44 when an error code is to be pushed, bit 48 the RF the old TSS would receive.
 * CALL, INT n, exceptions and interrupts through task gates set neither 36 nor 38 (an event
 * being delivered is in EXITINTINFO).
 */
export function taskSwitchIntercept(cpu: Cpu, sel: number, iret: boolean, jmp: boolean, err: number): void {
  const g = cpu.svm;
  if (g === null || (g.ic3 & IC3_TASK_SWITCH) === 0) return;
  const hi = (iret ? 1 << 4 : 0) | (jmp ? 1 << 6 : 0) | (err >= 0 ? 1 << 12 : 0) | ((cpu.getEflags() & RF) !== 0 ? 1 << 16 : 0);
  svmExit(cpu, EXIT_TASK_SWITCH, sel & 0xffff, err >= 0 ? err >>> 0 : 0, 0, hi);
}
