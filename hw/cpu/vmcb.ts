/**
 * The VMCB (virtual machine control block) as AMD's APM vol. 2, appendix B lays it out: a 4 KiB
 * page of emulated physical memory with the control area at offset 0 and the state-save area at
 * 0x400. Tools and tests can read it as raw bytes; the core reads and writes it with these
 * offsets (svm.ts).
 */
import type { PhysMem } from '../mem/physmem.ts';

// ---- control area
export const VMCB_CR_INTERCEPTS = 0x000;     // bits 0-15 CR reads, 16-31 CR writes
export const VMCB_DR_INTERCEPTS = 0x004;     // bits 0-15 DR reads, 16-31 DR writes
export const VMCB_EXC_INTERCEPTS = 0x008;    // one bit per exception vector
export const VMCB_INTERCEPTS3 = 0x00c;       // INTR ... SHUTDOWN (IC3_*)
export const VMCB_INTERCEPTS4 = 0x010;       // VMRUN ... (IC4_*)
export const VMCB_PAUSE_THRESHOLD = 0x03c;
export const VMCB_PAUSE_COUNT = 0x03e;
export const VMCB_IOPM_BASE = 0x040;         // 64-bit physical address
export const VMCB_MSRPM_BASE = 0x048;        // 64-bit physical address
export const VMCB_TSC_OFFSET = 0x050;        // 64-bit, signed
export const VMCB_ASID = 0x058;              // 32 bits
export const VMCB_TLB_CONTROL = 0x05c;       // 8 bits (bits 39:32 of the quadword at 0x058)
export const VMCB_VINTR = 0x060;             // V_TPR 0-7, V_IRQ 8, V_INTR_PRIO 16-19, V_IGN_TPR 20, V_INTR_MASKING 24; V_INTR_VECTOR at +4 bits 0-7
export const VMCB_V_INTR_VECTOR = 0x064;     // bits 39:32 of the quadword at 0x060
export const VMCB_INT_STATE = 0x068;         // bit 0 INTERRUPT_SHADOW
export const VMCB_EXITCODE = 0x070;          // 64 bits
export const VMCB_EXITINFO1 = 0x078;
export const VMCB_EXITINFO2 = 0x080;
export const VMCB_EXITINTINFO = 0x088;
export const VMCB_NP_CONTROL = 0x090;        // bit 0 NP_ENABLE
export const VMCB_EVENTINJ = 0x0a8;
export const VMCB_N_CR3 = 0x0b0;
export const VMCB_CLEAN = 0x0c0;
export const VMCB_NRIP = 0x0c8;
export const VMCB_INSN_LEN = 0x0d0;          // number of bytes fetched (decode assists)
export const VMCB_INSN_BYTES = 0x0d1;        // up to 15 bytes

// ---- state-save area (each segment: selector u16, attrib u16, limit u32, base u64)
export const VMCB_ES = 0x400, VMCB_CS = 0x410, VMCB_SS = 0x420, VMCB_DS = 0x430, VMCB_FS = 0x440, VMCB_GS = 0x450;
export const VMCB_GDTR = 0x460, VMCB_LDTR = 0x470, VMCB_IDTR = 0x480, VMCB_TR = 0x490;
/** Segment registers in ISA order (ES CS SS DS FS GS). */
export const VMCB_SEGS = [VMCB_ES, VMCB_CS, VMCB_SS, VMCB_DS, VMCB_FS, VMCB_GS] as const;
export const VMCB_CPL = 0x4cb;
export const VMCB_EFER = 0x4d0;
export const VMCB_CR4 = 0x548;
export const VMCB_CR3 = 0x550;
export const VMCB_CR0 = 0x558;
export const VMCB_DR7 = 0x560;
export const VMCB_DR6 = 0x568;
export const VMCB_RFLAGS = 0x570;
export const VMCB_RIP = 0x578;
export const VMCB_RSP = 0x5d8;
export const VMCB_RAX = 0x5f8;
export const VMCB_STAR = 0x600;
export const VMCB_LSTAR = 0x608, VMCB_CSTAR = 0x610, VMCB_SFMASK = 0x618, VMCB_KERNEL_GS_BASE = 0x620; // long mode: not used by this core
export const VMCB_SYSENTER_CS = 0x628;
export const VMCB_SYSENTER_ESP = 0x630;
export const VMCB_SYSENTER_EIP = 0x638;
export const VMCB_CR2 = 0x640;
export const VMCB_G_PAT = 0x668;            // the guest's PAT, used only with nested paging
export const VMCB_DBGCTL = 0x670;            // LBR virtualization: not modelled

// ---- bits of the fields above (APM Table B-1)
/** VMCB_VINTR: V_TPR (bits 3:0 used, 7:4 SBZ), V_IRQ, V_INTR_PRIO (19:16), V_IGN_TPR, V_INTR_MASKING. */
export const V_TPR_MASK = 0x0f, V_IRQ = 1 << 8, V_INTR_PRIO_SHIFT = 16, V_IGN_TPR = 1 << 20, V_INTR_MASKING = 1 << 24;
/**
 * VMCB_CLEAN bits (APM 15.15.3, "VMCB Clean Field"): a set bit tells the core that the VMM has
 * not changed that group since this VMCB last ran on this core, so the core may use its cached
 * copy instead of reading the VMCB. The core here caches the groups in CLEAN_CACHED (svm.ts);
 * a different VMCB address, ASID or core than at the last run makes every group dirty.
 */
export const CLEAN_I = 1 << 0,    // intercept vectors, TSC_OFFSET (pause filter: not modelled)
  CLEAN_IOPM = 1 << 1,             // IOPM_BASE_PA, MSRPM_BASE_PA
  CLEAN_ASID = 1 << 2,             // ASID (always compared: a changed ASID dirties everything)
  CLEAN_TPR = 1 << 3,              // V_TPR, V_IRQ, V_INTR_PRIO, V_IGN_TPR, V_INTR_MASKING, V_INTR_VECTOR (0x60-0x67)
  CLEAN_NP = 1 << 4,               // NP_ENABLE (with the NPT format byte), N_CR3, G_PAT
  CLEAN_CRX = 1 << 5,              // CR0, CR3, CR4, EFER
  CLEAN_DRX = 1 << 6,              // DR6, DR7
  CLEAN_DT = 1 << 7,               // GDTR, IDTR
  CLEAN_SEG = 1 << 8,              // ES, CS, SS, DS (selector, attributes, limit, base), CPL
  CLEAN_CR2 = 1 << 9,              // CR2
  CLEAN_LBR = 1 << 10,             // LBR virtualization: not modelled
  CLEAN_AVIC = 1 << 11;            // AVIC: not modelled
/** The clean bits this core honours. */
export const CLEAN_CACHED = 0x3ff;

/** VMCB_INT_STATE bit 0. */
export const INTERRUPT_SHADOW = 1;
/** VMCB_NP_CONTROL bit 0. */
export const NP_ENABLE = 1;
/** VMCB_TLB_CONTROL encodings (APM Table 15-9); all others are reserved. */
export const TLB_CONTROL_NOTHING = 0x00, TLB_CONTROL_FLUSH_ALL = 0x01, TLB_CONTROL_FLUSH_ASID = 0x03,
  TLB_CONTROL_FLUSH_ASID_NONGLOBAL = 0x07;

// ---- intercept vector 3 (offset 0x00c)
export const IC3_INTR = 1 << 0, IC3_NMI = 1 << 1, IC3_SMI = 1 << 2, IC3_INIT = 1 << 3, IC3_VINTR = 1 << 4,
  IC3_CR0_SEL_WRITE = 1 << 5, IC3_IDTR_READ = 1 << 6, IC3_GDTR_READ = 1 << 7, IC3_LDTR_READ = 1 << 8,
  IC3_TR_READ = 1 << 9, IC3_IDTR_WRITE = 1 << 10, IC3_GDTR_WRITE = 1 << 11, IC3_LDTR_WRITE = 1 << 12,
  IC3_TR_WRITE = 1 << 13, IC3_RDTSC = 1 << 14, IC3_RDPMC = 1 << 15, IC3_PUSHF = 1 << 16, IC3_POPF = 1 << 17,
  IC3_CPUID = 1 << 18, IC3_RSM = 1 << 19, IC3_IRET = 1 << 20, IC3_INTN = 1 << 21, IC3_INVD = 1 << 22,
  IC3_PAUSE = 1 << 23, IC3_HLT = 1 << 24, IC3_INVLPG = 1 << 25, IC3_INVLPGA = 1 << 26, IC3_IOIO = 1 << 27,
  IC3_MSR = 1 << 28, IC3_TASK_SWITCH = 1 << 29, IC3_FERR_FREEZE = 1 << 30, IC3_SHUTDOWN = 1 << 31;
// ---- intercept vector 4 (offset 0x010)
export const IC4_VMRUN = 1 << 0, IC4_VMMCALL = 1 << 1, IC4_VMLOAD = 1 << 2, IC4_VMSAVE = 1 << 3,
  IC4_STGI = 1 << 4, IC4_CLGI = 1 << 5, IC4_SKINIT = 1 << 6, IC4_RDTSCP = 1 << 7, IC4_ICEBP = 1 << 8,
  IC4_WBINVD = 1 << 9, IC4_MONITOR = 1 << 10, IC4_MWAIT = 1 << 11, IC4_MWAIT_COND = 1 << 12;

// ---- exit codes
export const EXIT_CR0_READ = 0x00, EXIT_CR0_WRITE = 0x10, EXIT_DR0_READ = 0x20, EXIT_DR0_WRITE = 0x30,
  EXIT_EXCP_BASE = 0x40, EXIT_INTR = 0x60, EXIT_NMI = 0x61, EXIT_SMI = 0x62, EXIT_INIT = 0x63,
  EXIT_VINTR = 0x64, EXIT_CR0_SEL_WRITE = 0x65, EXIT_IDTR_READ = 0x66, EXIT_GDTR_READ = 0x67,
  EXIT_LDTR_READ = 0x68, EXIT_TR_READ = 0x69, EXIT_IDTR_WRITE = 0x6a, EXIT_GDTR_WRITE = 0x6b,
  EXIT_LDTR_WRITE = 0x6c, EXIT_TR_WRITE = 0x6d, EXIT_RDTSC = 0x6e, EXIT_RDPMC = 0x6f, EXIT_PUSHF = 0x70,
  EXIT_POPF = 0x71, EXIT_CPUID = 0x72, EXIT_RSM = 0x73, EXIT_IRET = 0x74, EXIT_SWINT = 0x75,
  EXIT_INVD = 0x76, EXIT_PAUSE = 0x77, EXIT_HLT = 0x78, EXIT_INVLPG = 0x79, EXIT_INVLPGA = 0x7a,
  EXIT_IOIO = 0x7b, EXIT_MSR = 0x7c, EXIT_TASK_SWITCH = 0x7d, EXIT_FERR_FREEZE = 0x7e, EXIT_SHUTDOWN = 0x7f,
  EXIT_VMRUN = 0x80, EXIT_VMMCALL = 0x81, EXIT_VMLOAD = 0x82, EXIT_VMSAVE = 0x83, EXIT_STGI = 0x84,
  EXIT_CLGI = 0x85, EXIT_SKINIT = 0x86, EXIT_RDTSCP = 0x87, EXIT_ICEBP = 0x88, EXIT_WBINVD = 0x89,
  EXIT_MONITOR = 0x8a, EXIT_MWAIT = 0x8b, EXIT_MWAIT_COND = 0x8c, EXIT_NPF = 0x400, EXIT_INVALID = -1;

/** EVENTINJ / EXITINTINFO: vector 0-7, type 8-10, EV (error code valid) 11, V 31, error code in the high dword. */
export const EVT_INTR = 0, EVT_NMI = 2, EVT_EXCEPTION = 3, EVT_SOFT_INT = 4;
export const EVT_EV = 1 << 11, EVT_V = 1 << 31;

/** 32-bit little-endian access to a VMCB in physical memory (the VMCB must be RAM). */
export class VmcbView {
  constructor(readonly mem: PhysMem, readonly base: number) {}
  u8(off: number): number { return this.mem.read(this.base + off, 1); }
  u16(off: number): number { return this.mem.read(this.base + off, 2); }
  u32(off: number): number { return this.mem.read(this.base + off, 4); }
  /** A 64-bit field as a number (exact below 2^53). */
  u64(off: number): number { return this.u32(off + 4) * 4294967296 + this.u32(off); }
  hi32(off: number): number { return this.u32(off + 4); }
  w8(off: number, v: number): void { this.mem.write(this.base + off, 1, v & 0xff); }
  w16(off: number, v: number): void { this.mem.write(this.base + off, 2, v & 0xffff); }
  w32(off: number, v: number): void { this.mem.write(this.base + off, 4, v >>> 0); }
  /** Writes a 64-bit field from a number (negative numbers as two's complement, e.g. -1). */
  w64(off: number, v: number): void {
    const hi = Math.floor(v / 4294967296);
    this.w32(off, v - hi * 4294967296);
    this.w32(off + 4, hi >>> 0);
  }
  /** A 64-bit signed field (TSC_OFFSET) as a number. */
  s64(off: number): number { return (this.u32(off + 4) | 0) * 4294967296 + this.u32(off); }
  w64hl(off: number, lo: number, hi: number): void { this.w32(off, lo); this.w32(off + 4, hi); }
}

/** The segment attribute as the VMCB stores it (12 bits) from the core's attribute word, and back. */
export function arToVmcb(ar: number): number { return (ar & 0xff) | ((ar >>> 4) & 0xf00); }
export function vmcbToAr(a: number): number { return (a & 0xff) | ((a & 0xf00) << 4); }
