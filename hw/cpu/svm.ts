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
 * above (no instruction bytes).
 *
 * VMCB clean bits (APM 15.15.3): the core keeps a copy of the groups vmcb.ts CLEAN_* names
 * (VmcbCache: what it last loaded from or wrote back into the VMCB) and takes a group whose bit
 * is set from it, when the VMCB address, the ASID and the core are those of the last run (else,
 * and after VMEXIT_INVALID, everything is reloaded). The exit path: vmrun() and vmexitNow() read
 * and write the VMCB as dwords of PhysMem's Int32Array (a VMCB is a page of RAM), reuse one
 * SvmGuest, host save area and cache per core, and allocate nothing; an intercepted IN/OUT/
 * INS/OUTS leaves the instruction loop by cpu.exitAfterInsn() instead of an exception.
 */
import { extraCosts } from '../costs.ts';
import type { PhysMem } from '../mem/physmem.ts';
import type { Cpu } from './cpu.ts';
import { EV_EXCEPTION, EV_EXTERNAL, EV_ICEBP, EV_NMI, EV_SOFT, EV_SOFT_EXC, deliverEvent, hasErrorCode, isDoubleFault } from './exceptions.ts';
import { IF, RF } from './flags.ts';
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
  VMCB_TR, VMCB_TSC_OFFSET, VMCB_VINTR, VmcbView, vmcbToAr, VMCB_CLEAN, CLEAN_I, CLEAN_IOPM, CLEAN_TPR, CLEAN_NP, CLEAN_CRX,
  CLEAN_DRX, CLEAN_DT, CLEAN_SEG, CLEAN_CR2, CLEAN_CACHED,
} from './vmcb.ts';


/** The host's architectural state, saved at VMRUN and restored at #VMEXIT (one area per core, reused). */
class HostState {
  /** Only RAX and RSP are restored (APM: the other GPRs are the VMM's to save). */
  rax = 0; rsp = 0; eip = 0; eflags = 0;
  readonly segSel = new Int32Array(6); readonly segBase = new Int32Array(6);
  readonly segLimit = new Float64Array(6); readonly segAr = new Int32Array(6);
  /**
   * The access ranges the core derived from segSel..segAr under CR0.PE = segPe at the last
   * #VMEXIT's restore; valid (segDerived) while the host's caches and PE are those again at
   * VMRUN, so the next restore copies them instead of deriving them anew (same result).
   */
  readonly rdMin = new Float64Array(6); readonly rdMax = new Float64Array(6);
  readonly wrMin = new Float64Array(6); readonly wrMax = new Float64Array(6);
  segDerived = false; segPe = 0;
  cpl = 0; gdtBase = 0; gdtLimit = 0; idtBase = 0; idtLimit = 0;
  ldtSel = 0; ldtBase = 0; ldtLimit = 0; ldtAr = 0; trSel = 0; trBase = 0; trLimit = 0; trAr = 0;
  cr0 = 0; cr2 = 0; cr3 = 0; cr4 = 0; efer = 0;
  readonly dr = new Int32Array(8); readonly pdpte = new Int32Array(8);
  sysenterCs = 0; sysenterEsp = 0; sysenterEip = 0; tscOffset = 0; pat = 0n;
}

/** The running guest's controls, read from its VMCB at VMRUN (one object per core, reused by every VMRUN). */
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
  /** The core's VMCB cache (clean bits), when VMRUN made this object; null for one installed by hand. */
  cache: VmcbCache | null = null;
  constructor(public vmcb: VmcbView) {}
}

/**
 * The core's copy of the VMCB state groups that the clean bits cover (APM 15.15.3, "VMCB
 * Clean Field"): what the core last loaded from, or wrote back into, the VMCB at `pa`
 * with ASID `asid`. A VMRUN of the same VMCB with the same ASID on the same core may take a
 * group whose clean bit is set from here instead of the VMCB. Anything else (another VMCB,
 * another ASID, the VMCB having run on another core since, a VMEXIT_INVALID) makes every
 * group dirty: at most one core's cache is valid for a VMCB address (see claimCache).
 */
class VmcbCache {
  valid = false; pa = -1; asid = 0;
  // I: intercept vectors, TSC_OFFSET
  crIcpt = 0; drIcpt = 0; excIcpt = 0; ic3 = 0; ic4 = 0; tscOffset = 0;
  // IOPM: IOPM_BASE_PA, MSRPM_BASE_PA (with their high dwords, for the consistency checks)
  iopm = 0; iopmHi = 0; msrpm = 0; msrpmHi = 0;
  // TPR: the VINTR dword (V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING) and V_INTR_VECTOR
  vi = 0; vIntrVector = 0;
  // NP: NP_ENABLE (and the format byte), N_CR3, G_PAT
  np = 0; nCr3 = 0; nptFormat = 0; patLo = 0; patHi = 0; pat = 0n;
  // CRx: CR0, CR3, CR4, EFER (low and high dwords)
  cr0 = 0; cr0Hi = 0; cr3 = 0; cr3Hi = 0; cr4 = 0; cr4Hi = 0; efer = 0; eferHi = 0;
  // DRx
  dr6 = 0; dr6Hi = 0; dr7 = 0; dr7Hi = 0;
  // DT
  gdtBase = 0; gdtLimit = 0; idtBase = 0; idtLimit = 0;
  // SEG: ES, CS, SS, DS (selector, attribute in VMCB form, limit, base) and CPL
  readonly segSel = new Int32Array(4); readonly segAr = new Int32Array(4);
  readonly segLimit = new Float64Array(4); readonly segBase = new Int32Array(4);
  cpl = 0;
  // CR2
  cr2 = 0;
}

/** What a core keeps for SVM across VMRUNs: no allocation per entry or exit. */
class CoreSvm {
  readonly host = new HostState();
  readonly cache = new VmcbCache();
  readonly g: SvmGuest;
  /** Scratch descriptor caches for VMRUN's segment load. */
  readonly segs = { sel: new Int32Array(6), base: new Int32Array(6), limit: new Float64Array(6), ar: new Int32Array(6) };
  constructor(readonly mem: PhysMem, vmcbPa: number) {
    this.g = new SvmGuest(new VmcbView(mem, vmcbPa));
    this.g.host = this.host;
    this.g.cache = this.cache;
  }
}

const coreAreas = new WeakMap<Cpu, CoreSvm>();
/** The VMCB caches of the cores sharing one physical memory (to keep one valid cache per VMCB). */
const cachesByMem = new WeakMap<PhysMem, VmcbCache[]>();

let lastCpu: Cpu | null = null, lastArea: CoreSvm | null = null;

function coreSvm(cpu: Cpu, vmcbPa: number): CoreSvm {
  if (cpu === lastCpu) return lastArea!;
  let c = coreAreas.get(cpu);
  if (c === undefined) {
    c = new CoreSvm(cpu.mem, vmcbPa);
    coreAreas.set(cpu, c);
    let list = cachesByMem.get(cpu.mem);
    if (list === undefined) { list = []; cachesByMem.set(cpu.mem, list); }
    list.push(c.cache);
  }
  lastCpu = cpu; lastArea = c;
  return c;
}

/** This core's cache now holds the VMCB at `pa`: any other core's copy of it is stale (the core changed). */
function claimCache(mem: PhysMem, mine: VmcbCache, pa: number): void {
  const list = cachesByMem.get(mem)!;
  for (let i = 0; i < list.length; i++) if (list[i] !== mine && list[i].pa === pa) list[i].valid = false;
}

function saveHost(cpu: Cpu, h: HostState): void {
  h.rax = cpu.r[0]; h.rsp = cpu.r[4]; h.eip = cpu.eip; h.eflags = cpu.getEflags();
  const sSel = cpu.segSel, sBase = cpu.segBase, sLim = cpu.segLimit, sAr = cpu.segAr;
  const hSel = h.segSel, hBase = h.segBase, hLim = h.segLimit, hAr = h.segAr;
  let same = h.segDerived && h.segPe === (cpu.cr0 & 1);
  for (let s = 0; s < 6; s++) {
    const sel = sSel[s], base = sBase[s], lim = sLim[s], ar = sAr[s];
    if (hSel[s] !== sel || hBase[s] !== base || hLim[s] !== lim || hAr[s] !== ar) {
      same = false; hSel[s] = sel; hBase[s] = base; hLim[s] = lim; hAr[s] = ar;
    }
  }
  h.segDerived = same;
  h.cpl = cpu.cpl;
  h.gdtBase = cpu.gdtBase; h.gdtLimit = cpu.gdtLimit; h.idtBase = cpu.idtBase; h.idtLimit = cpu.idtLimit;
  h.ldtSel = cpu.ldtSel; h.ldtBase = cpu.ldtBase; h.ldtLimit = cpu.ldtLimit; h.ldtAr = cpu.ldtAr;
  h.trSel = cpu.trSel; h.trBase = cpu.trBase; h.trLimit = cpu.trLimit; h.trAr = cpu.trAr;
  h.cr0 = cpu.cr0; h.cr2 = cpu.cr2; h.cr3 = cpu.cr3; h.cr4 = cpu.cr4; h.efer = cpu.efer;
  copy8(h.dr, cpu.dr); copy8(h.pdpte, cpu.pdpte);
  h.sysenterCs = cpu.sysenterCs; h.sysenterEsp = cpu.sysenterEsp; h.sysenterEip = cpu.sysenterEip;
  h.tscOffset = cpu.tscOffset; h.pat = cpu.pat;
}

function restoreHost(cpu: Cpu, h: HostState): void {
  cpu.cr0 = h.cr0; cpu.cr2 = h.cr2; cpu.cr3 = h.cr3; cpu.cr4 = h.cr4; cpu.efer = h.efer;
  cpu.gdtBase = h.gdtBase; cpu.gdtLimit = h.gdtLimit; cpu.idtBase = h.idtBase; cpu.idtLimit = h.idtLimit;
  cpu.ldtSel = h.ldtSel; cpu.ldtBase = h.ldtBase; cpu.ldtLimit = h.ldtLimit; cpu.ldtAr = h.ldtAr;
  cpu.trSel = h.trSel; cpu.trBase = h.trBase; cpu.trLimit = h.trLimit; cpu.trAr = h.trAr;
  // CPL, then the caches: their mode update forces CPL 0 outside protected mode and derives
  // everything that depends on CR0, CS, SS and CPL (what setCpl + loadSegCaches + setCpl +
  // updateMode did, in fewer steps)
  cpu.setCpl(h.cpl);
  if (h.segDerived) cpu.loadSegCachesDerived(h.segSel, h.segBase, h.segLimit, h.segAr, h.rdMin, h.rdMax, h.wrMin, h.wrMax);
  else {
    cpu.loadSegCaches(h.segSel, h.segBase, h.segLimit, h.segAr);
    const rdMin = cpu.rdMin, rdMax = cpu.rdMax, wrMin = cpu.wrMin, wrMax = cpu.wrMax;
    for (let s = 0; s < 6; s++) { h.rdMin[s] = rdMin[s]; h.rdMax[s] = rdMax[s]; h.wrMin[s] = wrMin[s]; h.wrMax[s] = wrMax[s]; }
    // the caches as the core now holds them (normalised), so the next save compares like with like
    copySegs(h, cpu);
    h.segPe = cpu.cr0 & 1; h.segDerived = true;
  }
  cpu.r[0] = h.rax; cpu.r[4] = h.rsp; // RAX and RSP come back; the other GPRs keep the guest's values
  cpu.eip = h.eip;
  cpu.setEflags(h.eflags);
  copy8(cpu.dr, h.dr); copy8(cpu.pdpte, h.pdpte);
  cpu.sysenterCs = h.sysenterCs; cpu.sysenterEsp = h.sysenterEsp; cpu.sysenterEip = h.sysenterEip;
  cpu.tscOffset = h.tscOffset; cpu.pat = h.pat;
}

function copySegs(h: HostState, cpu: Cpu): void {
  for (let s = 0; s < 6; s++) { h.segSel[s] = cpu.segSel[s]; h.segBase[s] = cpu.segBase[s]; h.segLimit[s] = cpu.segLimit[s]; h.segAr[s] = cpu.segAr[s]; }
}

/** Eight dwords, written out (DR0-7, the PDPTEs). */
function copy8(d: Int32Array, s: Int32Array): void {
  d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; d[3] = s[3]; d[4] = s[4]; d[5] = s[5]; d[6] = s[6]; d[7] = s[7];
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

// Dword indices of VMCB fields (the VMCB is a page of RAM, so every field below is 4-aligned):
// module-local copies, so the hot paths read no imported binding.
const I_CR_ICPT = VMCB_CR_INTERCEPTS >> 2, I_DR_ICPT = VMCB_DR_INTERCEPTS >> 2, I_EXC_ICPT = VMCB_EXC_INTERCEPTS >> 2;
const I_IC3 = VMCB_INTERCEPTS3 >> 2, I_IC4 = VMCB_INTERCEPTS4 >> 2, I_IOPM = VMCB_IOPM_BASE >> 2, I_MSRPM = VMCB_MSRPM_BASE >> 2;
const I_TSC_OFFSET = VMCB_TSC_OFFSET >> 2, I_ASID = VMCB_ASID >> 2, I_VINTR = VMCB_VINTR >> 2, I_INT_STATE = VMCB_INT_STATE >> 2;
const I_EXITCODE = VMCB_EXITCODE >> 2, I_EXITINFO1 = VMCB_EXITINFO1 >> 2, I_EXITINFO2 = VMCB_EXITINFO2 >> 2;
const I_EXITINTINFO = VMCB_EXITINTINFO >> 2, I_NP = VMCB_NP_CONTROL >> 2, I_EVENTINJ = VMCB_EVENTINJ >> 2;
const I_N_CR3 = VMCB_N_CR3 >> 2, I_CLEAN = VMCB_CLEAN >> 2, I_NRIP = VMCB_NRIP >> 2;
const I_GDTR = VMCB_GDTR >> 2, I_IDTR = VMCB_IDTR >> 2, I_LDTR = VMCB_LDTR >> 2, I_TR = VMCB_TR >> 2;
const I_EFER = VMCB_EFER >> 2, I_CR4 = VMCB_CR4 >> 2, I_CR3 = VMCB_CR3 >> 2, I_CR0 = VMCB_CR0 >> 2, I_DR7 = VMCB_DR7 >> 2;
const I_DR6 = VMCB_DR6 >> 2, I_RFLAGS = VMCB_RFLAGS >> 2, I_RIP = VMCB_RIP >> 2, I_RSP = VMCB_RSP >> 2, I_RAX = VMCB_RAX >> 2;
const I_SYSENTER_CS = VMCB_SYSENTER_CS >> 2, I_SYSENTER_ESP = VMCB_SYSENTER_ESP >> 2, I_SYSENTER_EIP = VMCB_SYSENTER_EIP >> 2;
const I_CR2 = VMCB_CR2 >> 2, I_G_PAT = VMCB_G_PAT >> 2;
/** npt.ts's VMCB_NPT_FORMAT byte and mask (not imported: npt.ts imports this module). */
const B_NPT_FORMAT = 0x097, NPT_FORMAT_MASK = 3;
const B_TLB_CONTROL = VMCB_TLB_CONTROL, B_V_INTR_VECTOR = VMCB_VINTR + 4, B_CPL = VMCB_CPL;
/** Dword index of each segment in ISA order (ES CS SS DS FS GS). */
const I_SEGS = Int32Array.from(VMCB_SEGS, (o) => o >> 2);
const K_I = CLEAN_I, K_IOPM = CLEAN_IOPM, K_TPR = CLEAN_TPR, K_NP = CLEAN_NP, K_CRX = CLEAN_CRX, K_DRX = CLEAN_DRX;
const K_DT = CLEAN_DT, K_SEG = CLEAN_SEG, K_CR2 = CLEAN_CR2, K_CACHED = CLEAN_CACHED;
const C_EVT_V = EVT_V, C_EVT_EV = EVT_EV, C_EVT_EXCEPTION = EVT_EXCEPTION, C_IC4_VMRUN = IC4_VMRUN, C_IF = IF;
const C_EXIT_INVALID = EXIT_INVALID, C_EXIT_NPF = EXIT_NPF, C_EXIT_IOIO = EXIT_IOIO, C_IC3_IOIO = IC3_IOIO;
const VMRUN_COST = extraCosts.vmrun, VMEXIT_COST = extraCosts.vmexit;

/**
 * Loads the groups whose clean bit is clear from the VMCB (dword base `b` of `m`) into the cache.
 * The ASID is always read (a changed ASID made every group dirty before this).
 */
function loadGroups(c: VmcbCache, m: Int32Array, u8: Uint8Array, pa: number, b: number, clean: number): void {
  if ((clean & K_I) === 0) {
    c.crIcpt = m[b + I_CR_ICPT] >>> 0; c.drIcpt = m[b + I_DR_ICPT] >>> 0; c.excIcpt = m[b + I_EXC_ICPT] >>> 0;
    c.ic3 = m[b + I_IC3] >>> 0; c.ic4 = m[b + I_IC4] >>> 0;
    c.tscOffset = m[b + I_TSC_OFFSET + 1] * 4294967296 + (m[b + I_TSC_OFFSET] >>> 0);
  }
  if ((clean & K_IOPM) === 0) {
    c.iopm = m[b + I_IOPM] >>> 0; c.iopmHi = m[b + I_IOPM + 1]; c.msrpm = m[b + I_MSRPM] >>> 0; c.msrpmHi = m[b + I_MSRPM + 1];
  }
  if ((clean & K_TPR) === 0) { c.vi = m[b + I_VINTR] >>> 0; c.vIntrVector = u8[pa + B_V_INTR_VECTOR]; }
  if ((clean & K_NP) === 0) {
    c.np = m[b + I_NP] & 1; c.nCr3 = m[b + I_N_CR3] >>> 0; c.nptFormat = u8[pa + B_NPT_FORMAT] & NPT_FORMAT_MASK;
    c.patLo = m[b + I_G_PAT] >>> 0; c.patHi = m[b + I_G_PAT + 1] >>> 0;
    c.pat = (BigInt(c.patHi) << 32n) | BigInt(c.patLo);
  }
  if ((clean & K_CRX) === 0) {
    c.cr0 = m[b + I_CR0] >>> 0; c.cr0Hi = m[b + I_CR0 + 1]; c.cr3 = m[b + I_CR3] >>> 0; c.cr3Hi = m[b + I_CR3 + 1];
    c.cr4 = m[b + I_CR4] >>> 0; c.cr4Hi = m[b + I_CR4 + 1]; c.efer = m[b + I_EFER] >>> 0; c.eferHi = m[b + I_EFER + 1];
  }
  if ((clean & K_DRX) === 0) { c.dr6 = m[b + I_DR6] >>> 0; c.dr6Hi = m[b + I_DR6 + 1]; c.dr7 = m[b + I_DR7] >>> 0; c.dr7Hi = m[b + I_DR7 + 1]; }
  if ((clean & K_DT) === 0) {
    c.gdtBase = m[b + I_GDTR + 2] >>> 0; c.gdtLimit = m[b + I_GDTR + 1] & 0xffff;
    c.idtBase = m[b + I_IDTR + 2] >>> 0; c.idtLimit = m[b + I_IDTR + 1] & 0xffff;
  }
  if ((clean & K_SEG) === 0) {
    for (let s = 0; s < 4; s++) {
      const o = b + I_SEGS[s], w = m[o];
      c.segSel[s] = w & 0xffff; c.segAr[s] = (w >>> 16) & 0xffff; c.segLimit[s] = m[o + 1] >>> 0; c.segBase[s] = m[o + 2];
    }
    c.cpl = u8[pa + B_CPL];
  }
  if ((clean & K_CR2) === 0) c.cr2 = m[b + I_CR2] >>> 0;
}

/** The consistency checks of VMRUN (APM 15.5.1) on the state it is about to load: true if consistent. */
function consistent(c: VmcbCache): boolean {
  const cr0 = c.cr0;
  if ((c.ic4 & C_IC4_VMRUN) === 0) return false;
  if (c.asid === 0 || c.asid > MAX_ASID) return false;
  if (c.cr0Hi !== 0 || ((cr0 & CR0_NW) !== 0 && (cr0 & CR0_CD) === 0)) return false;
  // MBZ: CR3 above the 32-bit physical base; CR4 bits this core does not implement
  if (c.cr3Hi !== 0 || c.cr4Hi !== 0 || (c.cr4 & ~GUEST_CR4_VALID) !== 0) return false;
  if (c.dr6Hi !== 0 || c.dr7Hi !== 0) return false;
  // MBZ EFER bits; LME or LMA set on a processor without long mode
  if ((c.efer & ~GUEST_EFER_VALID) !== 0 || c.eferHi !== 0) return false;
  // the permission maps (12 and 8 KiB) must end below the top of the physical address space
  // (the low 12 bits of IOPM_BASE_PA and MSRPM_BASE_PA are ignored, APM Table B-1, 15.10.1)
  if (c.iopmHi !== 0 || ((c.iopm & ~0xfff) >>> 0) + 0x2fff > 0xffffffff) return false;
  if (c.msrpmHi !== 0 || ((c.msrpm & ~0xfff) >>> 0) + 0x1fff > 0xffffffff) return false;
  return true;
}

/**
 * VMRUN: checks the VMCB, saves the host state, loads the guest and enters guest mode.
 * Returns 0 when the guest was entered, or EXIT_INVALID (-1) after writing VMEXIT_INVALID into
 * the VMCB when the VMCB is inconsistent (the core stays in host mode).
 *
 * VMCB clean bits (offset 0xC0, APM 15.15.3): a group whose bit is set is taken from the core's
 * cached copy (VmcbCache) when this core last ran this VMCB with this ASID; otherwise, and for
 * every group whose bit is clear, from the VMCB. Groups cached: see vmcb.ts CLEAN_*.
 */
export function vmrun(cpu: Cpu, vmcbPa: number): number {
  if (cpu.guest) throw new Error('vmrun: the core is already running a guest');
  const mem = cpu.mem;
  if ((vmcbPa & 0xfff) !== 0 || !mem.isRam(vmcbPa)) throw new RangeError(`vmrun: VMCB at 0x${u32(vmcbPa).toString(16)} must be a page of RAM`);
  const m = mem.i32, u8 = mem.u8, b = vmcbPa >>> 2;
  const area = coreSvm(cpu, vmcbPa);
  const c = area.cache, g = area.g;
  if (g.vmcb.base !== vmcbPa) g.vmcb = new VmcbView(mem, vmcbPa);
  const asid = m[b + I_ASID] >>> 0;
  const hit = c.valid && c.pa === vmcbPa && c.asid === asid;
  const clean = hit ? m[b + I_CLEAN] & K_CACHED : 0;
  c.valid = false;
  loadGroups(c, m, u8, vmcbPa, b, clean);
  c.asid = asid;
  if (!consistent(c)) {
    // VMEXIT_INVALID: the core stays in host mode, untouched; its cached copy is dropped
    m[b + I_EXITCODE] = C_EXIT_INVALID; m[b + I_EXITCODE + 1] = -1;
    return C_EXIT_INVALID;
  }
  const inj = m[b + I_EVENTINJ];
  let inject = 0, injectErr = 0;
  if ((inj & C_EVT_V) !== 0) {
    // illegal injection (APM 15.20): a reserved TYPE (1, 5-7), or TYPE 3 with a vector that is
    // not an exception (2 is the NMI; above 31 are interrupts)
    const type = (inj >>> 8) & 7, vec = inj & 0xff;
    if (type === 1 || type > 4 || (type === C_EVT_EXCEPTION && (vec === 2 || vec > 31))) {
      m[b + I_EXITCODE] = C_EXIT_INVALID; m[b + I_EXITCODE + 1] = -1;
      return C_EXIT_INVALID;
    }
    inject = inj >>> 0; injectErr = m[b + I_EVENTINJ + 1] >>> 0;
  }
  if (!hit || c.pa !== vmcbPa) { c.pa = vmcbPa; claimCache(mem, c, vmcbPa); }
  c.valid = true;

  g.crIcpt = c.crIcpt; g.drIcpt = c.drIcpt; g.excIcpt = c.excIcpt; g.ic3 = c.ic3; g.ic4 = c.ic4;
  g.iopm = (c.iopm & ~0xfff) >>> 0; g.msrpm = (c.msrpm & ~0xfff) >>> 0; g.asid = asid;
  g.inject = inject; g.injectErr = injectErr;
  g.delivering = 0; g.deliveringErr = 0;
  g.exitCode = 0; g.info1 = 0; g.info1Hi = 0; g.info2 = 0; g.info2Hi = 0; g.nrip = 0;
  const vi = c.vi;
  g.vTpr = vi & 0xff; g.vIrq = (vi & 0x100) !== 0; g.vIntrPrio = (vi >>> 16) & 0xf; g.vIgnTpr = (vi & 0x100000) !== 0;
  g.vIntrMasking = (vi & 0x1000000) !== 0; g.vIntrVector = c.vIntrVector;

  const h = area.host;
  saveHost(cpu, h);
  // V_INTR_MASKING: the host's IF at VMRUN masks physical interrupts while the guest runs; a
  // TypeScript host handler takes interrupts whatever its IF (Cpu.pendingEvent), so with one
  // installed the host's IF counts as set
  g.hostIf = (h.eflags & C_IF) !== 0 || cpu.host !== null;
  cpu.cycles += VMRUN_COST.cycles;
  // guest state
  const cr0 = c.cr0;
  cpu.cr0 = cr0; cpu.cr3 = c.cr3; cpu.cr4 = c.cr4; cpu.efer = c.efer & ~0x1000; // SVME is the host's
  cpu.cr2 = c.cr2;
  cpu.dr[6] = c.dr6; cpu.dr[7] = c.dr7;
  cpu.gdtBase = c.gdtBase; cpu.gdtLimit = c.gdtLimit; cpu.idtBase = c.idtBase; cpu.idtLimit = c.idtLimit;
  // LDTR and TR (VMLOAD state: always from the VMCB)
  let w = m[b + I_LDTR];
  cpu.ldtSel = w & 0xffff; cpu.ldtAr = vmcbToAr((w >>> 16) & 0xffff); cpu.ldtLimit = m[b + I_LDTR + 1] >>> 0; cpu.ldtBase = m[b + I_LDTR + 2] >>> 0;
  w = m[b + I_TR];
  cpu.trSel = w & 0xffff; cpu.trAr = vmcbToAr((w >>> 16) & 0xffff); cpu.trLimit = m[b + I_TR + 1] >>> 0; cpu.trBase = m[b + I_TR + 2] >>> 0;
  // the CPL field; real mode forces CPL 0 (APM 15.5.1, "Segment State in the VMCB")
  const cpl = (cr0 & 1) !== 0 ? c.cpl & 3 : 0;
  cpu.setCpl(cpl);
  const sc = area.segs;
  for (let s = 0; s < 4; s++) { sc.sel[s] = c.segSel[s]; sc.base[s] = c.segBase[s]; sc.limit[s] = c.segLimit[s]; sc.ar[s] = vmcbToAr(c.segAr[s]); }
  for (let s = 4; s < 6; s++) { // FS and GS (VMLOAD state)
    const o = b + I_SEGS[s];
    w = m[o];
    sc.sel[s] = w & 0xffff; sc.base[s] = m[o + 2]; sc.limit[s] = m[o + 1] >>> 0; sc.ar[s] = vmcbToAr((w >>> 16) & 0xffff);
  }
  cpu.loadSegCaches(sc.sel, sc.base, sc.limit, sc.ar); // CPL stays `cpl` (0 outside protected mode either way)
  cpu.setEflags((m[b + I_RFLAGS] >>> 0) | 2);
  cpu.eip = m[b + I_RIP] >>> 0;
  cpu.r[4] = m[b + I_RSP]; cpu.r[0] = m[b + I_RAX];
  cpu.sysenterCs = m[b + I_SYSENTER_CS] >>> 0; cpu.sysenterEsp = m[b + I_SYSENTER_ESP] >>> 0; cpu.sysenterEip = m[b + I_SYSENTER_EIP] >>> 0;
  // the guest's TSC is the host's plus TSC_OFFSET (APM Table B-1; #VMEXIT drops it, 15.6)
  cpu.tscOffset = h.tscOffset + c.tscOffset;
  // INTERRUPT_SHADOW: the first guest instruction takes no interrupt. An injected event is taken
  // unconditionally before that instruction (APM 15.20), and delivering it ends the shadow.
  cpu.irqShadow = (m[b + I_INT_STATE] & 1) !== 0 && inject === 0;
  cpu.npEnabled = c.np !== 0;
  cpu.nCr3 = c.nCr3;
  cpu.nptFormat = cpu.npEnabled ? c.nptFormat : 0; // the VMCB field npt.ts defines (reserved bits of 0x097)
  // G_PAT is the guest's PAT only with nested paging; without it the guest uses the host's PAT
  // (APM Table B-2). The host's PAT comes back at #VMEXIT either way.
  if (cpu.npEnabled) cpu.pat = c.pat;
  cpu.svm = g;
  cpu.guest = true;
  cpu.state = 0; // RUNNING
  cpu.setAsid(asid);
  const tlbc = u8[vmcbPa + B_TLB_CONTROL];
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
  g.nrip = code === C_EXIT_NPF ? 0 : cpu.eip;
  return cpu.exitNow();
}

/** Writes the guest state and exit information into the VMCB, restores the host and reports the exit. */
export function vmexitNow(cpu: Cpu, rip: number): void {
  const g = cpu.svm!;
  const mem = cpu.mem, pa = g.vmcb.base;
  cpu.cycles += VMEXIT_COST.cycles;
  // the VMCB is a page of RAM (VMRUN checked it); a page that holds decoded code is written
  // through PhysMem once so the code cache drops it
  if (mem.codePage[pa >>> 12] !== 0) mem.write(pa, 4, mem.read(pa, 4));
  const m = mem.i32, u8 = mem.u8, b = pa >>> 2;
  // the core's cached copy follows what it writes back (tests may install an SvmGuest by hand: no cache then)
  const gc = g.cache;
  const c = gc !== null && gc.valid && gc.pa === pa ? gc : null;
  const sSel = cpu.segSel, sBase = cpu.segBase, sLim = cpu.segLimit, sAr = cpu.segAr;
  for (let s = 0; s < 6; s++) {
    const o = b + I_SEGS[s];
    m[o] = (sSel[s] & 0xffff) | (arToVmcb(sAr[s]) << 16); m[o + 1] = sLim[s]; m[o + 2] = sBase[s]; m[o + 3] = 0;
  }
  if (c !== null) { // ES CS SS DS: the SEG group (the core keeps limits as uint32: no conversion)
    const cSel = c.segSel, cAr = c.segAr, cLim = c.segLimit, cBase = c.segBase;
    for (let s = 0; s < 4; s++) { cSel[s] = sSel[s] & 0xffff; cAr[s] = arToVmcb(sAr[s]); cLim[s] = sLim[s]; cBase[s] = sBase[s]; }
  }
  m[b + I_GDTR + 1] = cpu.gdtLimit; m[b + I_GDTR + 2] = cpu.gdtBase; m[b + I_GDTR + 3] = 0;
  m[b + I_IDTR + 1] = cpu.idtLimit; m[b + I_IDTR + 2] = cpu.idtBase; m[b + I_IDTR + 3] = 0;
  m[b + I_LDTR] = (cpu.ldtSel & 0xffff) | (arToVmcb(cpu.ldtAr) << 16); m[b + I_LDTR + 1] = cpu.ldtLimit; m[b + I_LDTR + 2] = cpu.ldtBase; m[b + I_LDTR + 3] = 0;
  m[b + I_TR] = (cpu.trSel & 0xffff) | (arToVmcb(cpu.trAr) << 16); m[b + I_TR + 1] = cpu.trLimit; m[b + I_TR + 2] = cpu.trBase; m[b + I_TR + 3] = 0;
  u8[pa + B_CPL] = cpu.cpl;
  m[b + I_EFER] = cpu.efer | 0x1000; m[b + I_EFER + 1] = 0;
  m[b + I_CR0] = cpu.cr0; m[b + I_CR0 + 1] = 0; m[b + I_CR2] = cpu.cr2; m[b + I_CR2 + 1] = 0;
  m[b + I_CR3] = cpu.cr3; m[b + I_CR3 + 1] = 0; m[b + I_CR4] = cpu.cr4; m[b + I_CR4 + 1] = 0;
  m[b + I_DR6] = cpu.dr[6]; m[b + I_DR6 + 1] = 0; m[b + I_DR7] = cpu.dr[7]; m[b + I_DR7 + 1] = 0;
  m[b + I_RFLAGS] = cpu.getEflags(); m[b + I_RFLAGS + 1] = 0;
  m[b + I_RIP] = rip; m[b + I_RIP + 1] = 0;
  m[b + I_RSP] = cpu.r[4]; m[b + I_RSP + 1] = 0; m[b + I_RAX] = cpu.r[0]; m[b + I_RAX + 1] = 0;
  m[b + I_SYSENTER_CS] = cpu.sysenterCs; m[b + I_SYSENTER_CS + 1] = 0; m[b + I_SYSENTER_ESP] = cpu.sysenterEsp; m[b + I_SYSENTER_ESP + 1] = 0;
  m[b + I_SYSENTER_EIP] = cpu.sysenterEip; m[b + I_SYSENTER_EIP + 1] = 0;
  if (cpu.npEnabled) {
    const pat = cpu.pat;
    if (c !== null && pat === c.pat) { m[b + I_G_PAT] = c.patLo; m[b + I_G_PAT + 1] = c.patHi; }
    else {
      const lo = Number(pat & 0xffffffffn) >>> 0, hi = Number(pat >> 32n) >>> 0;
      m[b + I_G_PAT] = lo; m[b + I_G_PAT + 1] = hi;
      if (c !== null) { c.patLo = lo; c.patHi = hi; c.pat = pat; }
    }
  }
  // INTERRUPT_SHADOW: the exit came from the instruction that ran in a shadow (STI; HLT), or
  // the shadow is still pending (APM 15.21.5)
  m[b + I_INT_STATE] = cpu.inShadow || cpu.irqShadow ? 1 : 0;
  const vi = ((m[b + I_VINTR] & ~0x1ff) | (g.vTpr & 0xff) | (g.vIrq ? 0x100 : 0)) >>> 0;
  m[b + I_VINTR] = vi;
  const code = g.exitCode;
  m[b + I_EXITCODE] = code; m[b + I_EXITCODE + 1] = code < 0 ? -1 : Math.floor(code / 4294967296);
  m[b + I_EXITINFO1] = g.info1; m[b + I_EXITINFO1 + 1] = g.info1Hi;
  m[b + I_EXITINFO2] = g.info2; m[b + I_EXITINFO2 + 1] = g.info2Hi;
  m[b + I_EXITINTINFO] = g.delivering; m[b + I_EXITINTINFO + 1] = g.delivering & C_EVT_EV ? g.deliveringErr : 0;
  m[b + I_NRIP] = g.nrip; m[b + I_NRIP + 1] = 0;
  m[b + I_EVENTINJ] = 0; // the injected event was taken (or is in EXITINTINFO)
  if (c !== null) {
    c.cr0 = cpu.cr0 >>> 0; c.cr0Hi = 0; c.cr3 = cpu.cr3 >>> 0; c.cr3Hi = 0; c.cr4 = cpu.cr4 >>> 0; c.cr4Hi = 0;
    c.efer = (cpu.efer | 0x1000) >>> 0; c.eferHi = 0; c.cr2 = cpu.cr2 >>> 0;
    c.dr6 = cpu.dr[6] >>> 0; c.dr6Hi = 0; c.dr7 = cpu.dr[7] >>> 0; c.dr7Hi = 0;
    c.gdtBase = cpu.gdtBase >>> 0; c.gdtLimit = cpu.gdtLimit & 0xffff; c.idtBase = cpu.idtBase >>> 0; c.idtLimit = cpu.idtLimit & 0xffff;
    c.cpl = cpu.cpl & 0xff; c.vi = vi;
  }
  // back to the host
  cpu.guest = false; cpu.npEnabled = false; cpu.svm = null;
  restoreHost(cpu, g.host);
  cpu.irqShadow = false;
  cpu.setAsid(0);
  cpu.state = 0; // RUNNING: the host's handler decides what the core does next
  cpu.stats.vmexits++;
  cpu.vmexitToHost(code);
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
 * A16/A32 7-8, SEG 10-12, PORT 16-31; EXITINFO2 = the next instruction's RIP. Returns true when
 * the access exits: the #VMEXIT is then recorded with cpu.exitAfterInsn() (no unwinding), and
 * the instruction's handler must return at once, having changed nothing.
 */
export function ioIntercept(cpu: Cpu, port: number, size: number, isIn: boolean, str: boolean, rep: boolean, a16: boolean, seg: number): boolean {
  const g = cpu.svm;
  if (g === null || (g.ic3 & C_IC3_IOIO) === 0) return false;
  const mem = cpu.mem;
  let hit = false;
  for (let k = 0; k < size && !hit; k++) {
    const p = port + k;
    hit = ((mem.read((g.iopm + (p >>> 3)) >>> 0, 1) >>> (p & 7)) & 1) !== 0;
  }
  if (!hit) return false;
  const info1 = (port << 16) | ((seg & 7) << 10) | (a16 ? 1 << 7 : 1 << 8) | (size === 1 ? 1 << 4 : size === 2 ? 1 << 5 : 1 << 6)
    | (rep ? 8 : 0) | (str ? 4 : 0) | (isIn ? 1 : 0);
  g.exitCode = C_EXIT_IOIO; g.info1 = info1 >>> 0; g.info1Hi = 0; g.info2 = cpu.eip; g.info2Hi = 0;
  g.nrip = cpu.eip; // nRIP is saved for IOIO intercepts (APM 15.7.1)
  cpu.exitAfterInsn();
  return true;
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
