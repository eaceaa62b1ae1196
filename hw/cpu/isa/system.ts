/**
 * Instruction family: system instructions.
 *
 * - Group 7 (0F 01): /0-/3 SGDT SIDT LGDT LIDT come from descriptors.ts (`grp7Desc`); /4 SMSW,
 *   /6 LMSW and /7 INVLPG are here. The register forms (mod = 3) of a member are chosen by
 *   ModRM.rm through its `rm3` table; `GRP7_RM3` below is where the SVM instructions
 *   (0F 01 /3 mod=3: VMRUN VMMCALL VMLOAD VMSAVE STGI CLGI SKINIT INVLPGA) plug in.
 * - MOV to/from CR0 CR2 CR3 CR4 (0F 20/22) and DR0-DR7 (0F 21/23), CLTS, INVD, WBINVD, UD2, HLT,
 *   CLI/STI, CPUID, RDTSC, RDMSR/WRMSR, RDPMC, SYSENTER/SYSEXIT.
 *
 * Privileged instructions raise #GP(0) at CPL > 0 (CPL is 0 in real mode).
 *
 * What is not modelled, on purpose:
 * - Debug registers are storage only: hardware breakpoints (DR0-3 with DR7) never fire and
 *   DR7.GD (general detect) raises no #DB on a debug-register access.
 * - CR0.CD/NW, INVD and WBINVD: no caches are modelled; the bits are kept and checked.
 * - CR0 reserved bits are ignored on writes and read as 0 (a 32-bit P6 raises no #GP for them).
 *   CR0.ET is hardwired to 1.
 * - RDPMC: the core has no performance counters, so every counter index is invalid: #GP(0)
 *   (after the CPL/CR4.PCE check and the SVM intercept).
 * - RDTSCP (0F 01 F9), MONITOR and MWAIT (0F 01 C8/C9) are not P6 instructions: #UD, counted as
 *   unimplemented, unless a guest's VMM intercepts them (SVM, below).
 *
 * SVM (APM vol. 2, chapter 15; see svm.ts): in guest mode each instruction here checks its
 * intercept after its own simple exceptions (#UD, #GP for CPL) and before anything that reads
 * memory or depends on an operand's value. The SVM instructions (0F 01 D8-DF) raise #UD outside
 * a guest: the host software is TypeScript and uses the core API (svm.ts vmrun()), CPUID does not
 * advertise SVM and EFER.SVME cannot be set by code. In a guest (whose EFER.SVME is 1 on
 * hardware, where VMRUN requires it) they are #UD in real mode and #GP(0) at CPL > 0 (VMMCALL: neither), then exit if
 * intercepted (VMRUN always is); not intercepted, INVLPGA invalidates the page in rAX for the
 * ASID in ECX, and VMMCALL, VMLOAD, VMSAVE, STGI, CLGI and SKINIT raise #UD (no nested SVM, no
 * GIF).
 *
 * TLB flushes: a CR3 write flushes the current address space's non-global entries; a change of
 * CR0.PG or of CR4.PGE/PAE/PSE flushes every entry of the current address space, global ones
 * included. Only the current ASID is touched (cpu.flushTlb(false), not flushTlbAll()): under SVM a
 * guest's own mode changes must not flush the host's or other guests' entries.
 * A change of CR0.WP flushes nothing (translations do not depend on it) but resynchronises the
 * core's fast mirror, whose supervisor-write bits were derived with the old WP.
 */
import type { Cpu } from '../cpu.ts';
import { TRAP_SYSENTER } from '../traps.ts';
import { cr0SelIntercept, crIntercept, drIntercept, icpt3, icpt4, msrIntercept, svmExit } from '../svm.ts';
import type { Tlb } from '../tlb.ts';
import {
  EXIT_CLGI, EXIT_CPUID, EXIT_HLT, EXIT_INVD, EXIT_INVLPG, EXIT_INVLPGA, EXIT_MONITOR, EXIT_MWAIT, EXIT_RDPMC, EXIT_RDTSC,
  EXIT_RDTSCP, EXIT_SKINIT, EXIT_STGI, EXIT_VMLOAD, EXIT_VMMCALL, EXIT_VMRUN, EXIT_VMSAVE, EXIT_WBINVD, IC3_CPUID, IC3_HLT,
  IC3_INVD, IC3_INVLPG, IC3_INVLPGA, IC3_RDPMC, IC3_RDTSC, IC4_CLGI, IC4_MONITOR, IC4_MWAIT, IC4_RDTSCP, IC4_SKINIT,
  IC4_STGI, IC4_VMLOAD, IC4_VMMCALL, IC4_VMRUN, IC4_VMSAVE, IC4_WBINVD,
} from '../vmcb.ts';
import { cpuidLookup } from '../cpuid.ts';
import { IF, IOPL, RF, VM } from '../flags.ts';
import { CS, group, type Handler, type OpDef, type OpTable, SS } from '../insn.ts';
import { loadPdptes } from '../paging.ts';
import { grp7Desc } from './descriptors.ts';

const GP = 13, UD = 6;

// ---- CR0 bits
export const CR0_PE = 1 << 0, CR0_MP = 1 << 1, CR0_EM = 1 << 2, CR0_TS = 1 << 3, CR0_ET = 1 << 4, CR0_NE = 1 << 5;
export const CR0_WP = 1 << 16, CR0_AM = 1 << 18, CR0_NW = 1 << 29, CR0_CD = 1 << 30, CR0_PG = 1 << 31;
/** The CR0 bits a P6 implements; the others are reserved (ignored, read as 0). */
const CR0_BITS = CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG;

// ---- CR4 bits
export const CR4_VME = 1 << 0, CR4_PVI = 1 << 1, CR4_TSD = 1 << 2, CR4_DE = 1 << 3, CR4_PSE = 1 << 4, CR4_PAE = 1 << 5;
export const CR4_MCE = 1 << 6, CR4_PGE = 1 << 7, CR4_PCE = 1 << 8;
/**
 * The CR4 bits this core implements. VME/PVI (no virtual-8086 mode), MCE (no machine-check
 * architecture advertised), OSFXSR/OSXMMEXCPT (no SSE yet) and everything above are reserved:
 * setting one is #GP(0). PCE is accepted (a P6 has it) but gives access to no counter.
 */
export const CR4_VALID = CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_PGE | CR4_PCE;

// ---- MSRs
export const MSR_TSC = 0x10, MSR_APIC_BASE = 0x1b, MSR_SYSENTER_CS = 0x174, MSR_SYSENTER_ESP = 0x175,
  MSR_SYSENTER_EIP = 0x176, MSR_PAT = 0x277, MSR_EFER = 0xc0000080, MSR_TSC_DEADLINE = 0x6e0;
export const EFER_SCE = 1 << 0, EFER_LME = 1 << 8, EFER_LMA = 1 << 10, EFER_NXE = 1 << 11;

function cpl0(cpu: Cpu): void {
  if (cpu.cpl !== 0) cpu.raise(GP, 0);
}

// =============================================================================== control registers

/** The value a CR0 write of `v` stores: reserved bits dropped, ET set. */
function cr0Value(v: number): number { return ((v & CR0_BITS) | CR0_ET) >>> 0; }

/**
 * Writes CR0 with the checks of MOV CR0 and LMSW: #GP(0) for PG without PE and for NW without
 * CD, and when paging is enabled under PAE with reserved bits in the PDPTEs. A change of PG
 * flushes the TLB; a change of PE or PG recomputes the mode; a change of WP resyncs the mirror.
 */
export function writeCr0(cpu: Cpu, v: number): void {
  v = cr0Value(v);
  if ((v & CR0_PG) !== 0 && (v & CR0_PE) === 0) cpu.raise(GP, 0);
  if ((v & CR0_NW) !== 0 && (v & CR0_CD) === 0) cpu.raise(GP, 0);
  const old = cpu.cr0 >>> 0;
  const changed = (old ^ v) >>> 0;
  if ((changed & CR0_PG) !== 0 && (v & CR0_PG) !== 0 && (cpu.cr4 & CR4_PAE) !== 0) {
    if (!loadPdptes(cpu)) cpu.raise(GP, 0);
  }
  cpu.cr0 = v;
  if ((changed & CR0_PE) !== 0 && (v & CR0_PE) === 0) {
    // back to real mode: every segment is readable and writable up to its cached limit
    for (let s = 0; s < 6; s++) cpu.deriveRanges(s);
  }
  if ((changed & CR0_PG) !== 0) cpu.flushTlb(false);
  else if ((changed & CR0_WP) !== 0) cpu.resyncMirror();
  if ((changed & (CR0_PE | CR0_PG)) !== 0) cpu.updateMode();
}

/** Writes CR3: loads the PDPTEs under PAE paging (#GP(0) on reserved bits), flushes non-global entries. */
export function writeCr3(cpu: Cpu, v: number): void {
  const old = cpu.cr3;
  cpu.cr3 = v >>> 0;
  if (cpu.pg && cpu.pae && !loadPdptes(cpu)) {
    cpu.cr3 = old;
    cpu.raise(GP, 0);
  }
  cpu.flushTlb(true);
}

/** Writes CR4: reserved bits are #GP(0); a change of PGE, PAE or PSE flushes the TLB. */
export function writeCr4(cpu: Cpu, v: number): void {
  v >>>= 0;
  if ((v & ~CR4_VALID) !== 0) cpu.raise(GP, 0);
  const old = cpu.cr4;
  const changed = old ^ v;
  const paging = CR4_PGE | CR4_PAE | CR4_PSE;
  // with paging on, a change that leaves PAE on reloads the PDPTEs (SDM vol. 3A, 4.4.1)
  if (cpu.pg && (v & CR4_PAE) !== 0 && (changed & paging) !== 0 && !loadPdptes(cpu)) cpu.raise(GP, 0);
  cpu.cr4 = v;
  if ((changed & paging) !== 0) {
    cpu.flushTlb(false);
    cpu.updateMode();
  }
}

function readCr(cpu: Cpu, n: number): number {
  switch (n) {
    case 0: return cpu.cr0;
    case 2: return cpu.cr2;
    case 3: return cpu.cr3;
    case 4: return cpu.cr4;
    default: return cpu.raise(UD);
  }
}

/** MOV r32, CRn (0F 20): CR1 and CR5-7 are #UD (checked before privilege, a decode-time fault). */
const movRdCd: Handler = (cpu, i) => {
  if (i.reg === 1 || i.reg > 4) cpu.raise(UD);
  cpl0(cpu);
  crIntercept(cpu, i.reg, false, i.rm);
  cpu.r[i.rm] = readCr(cpu, i.reg);
};

/** MOV CRn, r32 (0F 22). */
const movCdRd: Handler = (cpu, i) => {
  if (i.reg === 1 || i.reg > 4) cpu.raise(UD);
  cpl0(cpu);
  crIntercept(cpu, i.reg, true, i.rm);
  const v = cpu.r[i.rm];
  if (i.reg === 0) cr0SelIntercept(cpu, cr0Value(v), i.rm);
  switch (i.reg) {
    case 0: writeCr0(cpu, v); break;
    case 2: cpu.cr2 = v; break;
    case 3: writeCr3(cpu, v); break;
    default: writeCr4(cpu, v); break;
  }
};

// =============================================================================== debug registers

/** DR4/DR5 alias DR6/DR7 unless CR4.DE, which makes them #UD. */
function drIndex(cpu: Cpu, n: number): number {
  if (n === 4 || n === 5) {
    if ((cpu.cr4 & CR4_DE) !== 0) cpu.raise(UD);
    return n + 2;
  }
  return n;
}

const movRdDd: Handler = (cpu, i) => {
  const n = drIndex(cpu, i.reg);
  cpl0(cpu);
  drIntercept(cpu, i.reg, false, i.rm);
  cpu.r[i.rm] = cpu.dr[n];
};

const movDdRd: Handler = (cpu, i) => {
  const n = drIndex(cpu, i.reg);
  cpl0(cpu);
  drIntercept(cpu, i.reg, true, i.rm);
  const v = cpu.r[i.rm];
  if (n === 6) cpu.dr[6] = (v & 0x0000e00f) | 0xffff0ff0;      // B0-B3, BD, BS, BT; the rest reads as 1 (bit 12: 0)
  else if (n === 7) cpu.dr[7] = (v & 0xffff23ff) | 0x400;    // bit 10 reads as 1; 11, 12, 14, 15 as 0
  else cpu.dr[n] = v;
};

// =============================================================================== group 7 members

/** SMSW: a register destination at 32-bit operand size gets all of CR0; memory gets 16 bits. A CR0 read for SVM. */
const smsw: Handler = (cpu, i) => {
  crIntercept(cpu, 0, false, -1);
  if (i.mod === 3) {
    if (i.opsz === 4) cpu.r[i.rm] = cpu.cr0;
    else cpu.setReg16(i.rm, cpu.cr0);
  } else cpu.wr16(i.seg, cpu.ea(i), cpu.cr0);
};

/**
 * LMSW: loads PE, MP, EM and TS; it can set PE but never clear it. A CR0 write for SVM: the CR0
 * write intercept comes before the operand is read, the selective one (which needs the new
 * value) after.
 */
const lmsw: Handler = (cpu, i) => {
  cpl0(cpu);
  crIntercept(cpu, 0, true, -1);
  const src = cpu.readE16(i);
  const v = (cpu.cr0 & ~(CR0_MP | CR0_EM | CR0_TS)) | (src & (CR0_PE | CR0_MP | CR0_EM | CR0_TS));
  cr0SelIntercept(cpu, cr0Value(v), -1);
  writeCr0(cpu, v);
};

/** INVLPG m: drops the translation of the page holding the operand's linear address (no segment checks). */
const invlpg: Handler = (cpu, i) => {
  cpl0(cpu);
  const lin = (cpu.segBase[i.seg] + cpu.ea(i)) | 0;
  if (icpt3(cpu, IC3_INVLPG)) svmExit(cpu, EXIT_INVLPG, lin >>> 0);
  cpu.invlpg(lin);
};

const grp7System: Record<number, OpDef> = {
  4: { name: 'smsw', ops: 'Ew', exec: smsw, cls: 'system' },
  6: { name: 'lmsw', ops: 'Ew', exec: lmsw, cls: 'system' },
  7: { name: 'invlpg', ops: 'M', exec: invlpg, cls: 'system', memOnly: true },
};

function buildGrp7(): (OpDef | undefined)[] {
  const g = group(grp7Desc, grp7System);
  for (const [k, members] of Object.entries(GRP7_RM3)) {
    const reg = Number(k);
    const rm3 = new Array<OpDef | undefined>(8).fill(undefined);
    for (const [rm, d] of Object.entries(members)) rm3[Number(rm)] = d;
    const base = g[reg];
    g[reg] = base !== undefined ? { ...base, rm3 } : { name: 'grp7', rm3 };
  }
  return g;
}

// =============================================================================== the rest

/** CLTS: a CR0 write for SVM (never a selective one: only TS changes). */
const clts: Handler = (cpu) => {
  cpl0(cpu);
  crIntercept(cpu, 0, true, -1);
  cpu.cr0 = (cpu.cr0 & ~CR0_TS) >>> 0;
};

/** INVD, WBINVD: no caches are modelled. */
const invd: Handler = (cpu) => {
  cpl0(cpu);
  if (icpt3(cpu, IC3_INVD)) svmExit(cpu, EXIT_INVD);
};
const wbinvd: Handler = (cpu) => {
  cpl0(cpu);
  if (icpt4(cpu, IC4_WBINVD)) svmExit(cpu, EXIT_WBINVD);
};

const ud2: Handler = (cpu) => { cpu.raise(UD); };

/** HLT: the core idles until an interrupt (cpu.ts run()/wakeFromHalt); EIP is already past HLT. */
const hlt: Handler = (cpu) => {
  cpl0(cpu);
  if (icpt3(cpu, IC3_HLT)) svmExit(cpu, EXIT_HLT);
  cpu.idle();
};

/** CLI/STI may change IF in real mode, or when CPL <= IOPL (no PVI/VME). */
function ifAllowed(cpu: Cpu): void {
  if (cpu.pe && cpu.cpl > ((cpu.flags & IOPL) >>> 12)) cpu.raise(GP, 0);
}
const cli: Handler = (cpu) => {
  ifAllowed(cpu);
  cpu.flags = (cpu.flags & ~IF) >>> 0;
};
/** STI: setting IF inhibits interrupts until after the next instruction (the interrupt shadow). */
const sti: Handler = (cpu) => {
  ifAllowed(cpu);
  if ((cpu.flags & IF) === 0) {
    cpu.flags = (cpu.flags | IF) >>> 0;
    cpu.irqShadow = true;
    cpu.recheckEvents();
  }
};

/** CPUID from the core's table; leaf 1 EBX[31:24] is the core's initial APIC ID. */
const cpuid: Handler = (cpu) => {
  if (icpt3(cpu, IC3_CPUID)) svmExit(cpu, EXIT_CPUID);
  const leaf = cpu.r[0] >>> 0;
  const l = cpuidLookup(cpu.cpuid, leaf);
  let ebx = l[1];
  if (leaf === 1) ebx = (ebx & 0x00ffffff) | (cpu.apicId << 24);
  cpu.r[0] = l[0]; cpu.r[3] = ebx; cpu.r[1] = l[2]; cpu.r[2] = l[3];
};

/** The time-stamp counter: cycles plus the offset (WRMSR TSC, TSC_OFFSET), modulo 2^64. */
export function readTsc(cpu: Cpu): number {
  return cpu.cycles + cpu.tscOffset;
}
function setEdxEax(cpu: Cpu, v: number): void {
  cpu.r[0] = v >>> 0;                          // ToUint32: v mod 2^32, exact below 2^53
  cpu.r[2] = Math.floor(v / 4294967296) | 0;
}

const rdtsc: Handler = (cpu) => {
  if ((cpu.cr4 & CR4_TSD) !== 0 && cpu.cpl !== 0) cpu.raise(GP, 0);
  if (icpt3(cpu, IC3_RDTSC)) svmExit(cpu, EXIT_RDTSC);
  setEdxEax(cpu, readTsc(cpu));
};

/** RDPMC: CPL > 0 needs CR4.PCE; no counter exists, so the index in ECX is always invalid (#GP(0) either way). */
const rdpmc: Handler = (cpu) => {
  if (cpu.cpl !== 0 && (cpu.cr4 & CR4_PCE) === 0) cpu.raise(GP, 0);
  if (icpt3(cpu, IC3_RDPMC)) svmExit(cpu, EXIT_RDPMC);
  cpu.raise(GP, 0);
};

/** RDTSCP (0F 01 F9) is not a P6 instruction: #UD, unless a guest's VMM intercepts it (after RDTSC's CR4.TSD check). */
const rdtscp: Handler = (cpu) => {
  if (!icpt4(cpu, IC4_RDTSCP)) cpu.unimplementedOpcode(0x0f01);
  if ((cpu.cr4 & CR4_TSD) !== 0 && cpu.cpl !== 0) cpu.raise(GP, 0);
  svmExit(cpu, EXIT_RDTSCP);
};

/** MONITOR, MWAIT (0F 01 C8/C9): not on a P6: #UD (also at CPL > 0), unless a guest's VMM intercepts them. */
const monitor: Handler = (cpu) => {
  if (cpu.cpl === 0 && icpt4(cpu, IC4_MONITOR)) svmExit(cpu, EXIT_MONITOR);
  cpu.unimplementedOpcode(0x0f01);
};
const mwait: Handler = (cpu) => {
  if (cpu.cpl === 0 && icpt4(cpu, IC4_MWAIT)) svmExit(cpu, EXIT_MWAIT);
  cpu.unimplementedOpcode(0x0f01);
};

// =============================================================================== SVM instructions

/** The checks every SVM instruction but VMMCALL makes before its intercept: a guest (EFER.SVME), protected mode, CPL 0. */
function svmChecks(cpu: Cpu): void {
  if (!cpu.guest || !cpu.pe) cpu.raise(UD);
  cpl0(cpu);
}

/** VMRUN (always intercepted in a guest), VMLOAD, VMSAVE, STGI, CLGI, SKINIT: exit if intercepted, else #UD (no nested SVM, no GIF). */
function svmInsn(bit: number, code: number): Handler {
  return (cpu) => {
    svmChecks(cpu);
    if ((cpu.svm!.ic4 & bit) !== 0) svmExit(cpu, code);
    cpu.raise(UD);
  };
}

/** VMMCALL: at any CPL and in any mode; exits if intercepted, else #UD. */
const vmmcall: Handler = (cpu) => {
  if (icpt4(cpu, IC4_VMMCALL)) svmExit(cpu, EXIT_VMMCALL);
  cpu.raise(UD);
};

/**
 * INVLPGA: invalidates the translation of the page holding the linear address in rAX (EAX, or AX
 * with a 16-bit address size) for the ASID in ECX, global or not. The intercept's EXITINFO1 is
 * that address. For another ASID than the current one the fast mirror holds nothing to drop; a
 * large-page entry is looked up under both large-page sizes (that ASID's paging mode is unknown
 * here; dropping more than asked is allowed of a TLB).
 */
const invlpga: Handler = (cpu, i) => {
  svmChecks(cpu);
  const lin = (i.adsz === 4 ? cpu.r[0] : cpu.r[0] & 0xffff) >>> 0;
  if (icpt3(cpu, IC3_INVLPGA)) svmExit(cpu, EXIT_INVLPGA, lin);
  const asid = cpu.r[1] >>> 0;
  if (asid === cpu.asid) { cpu.invlpg(lin | 0); return; }
  if (asid > 2047) return;
  const a = asid << 20, vpn = lin >>> 12;
  dropKey(cpu.itlb, vpn | a); dropKey(cpu.dtlb, vpn | a);
  dropKey(cpu.itlbLarge, (vpn >>> 9) | a); dropKey(cpu.dtlbLarge, (vpn >>> 9) | a);
  dropKey(cpu.itlbLarge, (vpn >>> 10) | a); dropKey(cpu.dtlbLarge, (vpn >>> 10) | a);
};
function dropKey(t: Tlb, key: number): void {
  const idx = t.lookup(key);
  if (idx >= 0) t.invalidateIndex(idx);
}

/** A PAT entry must be UC, WC, WT, WP, WB or UC- (0, 1, 4, 5, 6, 7). */
function patValid(lo: number, hi: number): boolean {
  for (let k = 0; k < 4; k++) {
    const a = (lo >>> (8 * k)) & 0xff, b = (hi >>> (8 * k)) & 0xff;
    if (a > 7 || a === 2 || a === 3 || b > 7 || b === 2 || b === 3) return false;
  }
  return true;
}

const rdmsr: Handler = (cpu) => {
  cpl0(cpu);
  const msr = cpu.r[1] >>> 0;
  msrIntercept(cpu, msr, false);
  let lo = 0, hi = 0;
  switch (msr) {
    case MSR_TSC: setEdxEax(cpu, readTsc(cpu)); return;
    case MSR_APIC_BASE: lo = cpu.apic !== null ? cpu.apic.readApicBaseMsr() : cpu.apicBase; break;
    case MSR_TSC_DEADLINE: {
      const apic = cpu.apic;
      if (apic === null) return cpu.raise(GP, 0);
      const d = apic.getTscDeadline();
      lo = d >>> 0; hi = Math.floor(d / 4294967296) >>> 0;
      break;
    }
    case MSR_SYSENTER_CS: lo = cpu.sysenterCs; break;
    case MSR_SYSENTER_ESP: lo = cpu.sysenterEsp; break;
    case MSR_SYSENTER_EIP: lo = cpu.sysenterEip; break;
    case MSR_PAT: lo = Number(cpu.pat & 0xffffffffn); hi = Number(cpu.pat >> 32n); break;
    case MSR_EFER: lo = cpu.efer; break;
    default: cpu.raise(GP, 0);
  }
  cpu.r[0] = lo; cpu.r[2] = hi;
};

const wrmsr: Handler = (cpu) => {
  cpl0(cpu);
  const msr = cpu.r[1] >>> 0;
  msrIntercept(cpu, msr, true);
  const lo = cpu.r[0] >>> 0, hi = cpu.r[2] >>> 0;
  switch (msr) {
    case MSR_TSC:
      cpu.tscOffset = hi * 4294967296 + lo - cpu.cycles;
      return;
    case MSR_APIC_BASE:
      // bits 0-7, 9, 10 and 32-63 reserved (no memory above 4 GiB); BSP (8) is read-only
      if (cpu.apic !== null) {
        if (hi !== 0 || !cpu.apic.writeApicBaseMsr(lo)) cpu.raise(GP, 0);
        return;
      }
      if ((lo & 0x6ff) !== 0 || hi !== 0) cpu.raise(GP, 0);
      cpu.apicBase = ((lo & 0xfffff800) | (cpu.apicBase & 0x100)) >>> 0;
      return;
    case MSR_TSC_DEADLINE:
      if (cpu.apic === null) return cpu.raise(GP, 0);
      cpu.apic.setTscDeadline(hi * 4294967296 + lo);
      return;
    case MSR_SYSENTER_CS: cpu.sysenterCs = lo; return;
    case MSR_SYSENTER_ESP: cpu.sysenterEsp = lo; return;
    case MSR_SYSENTER_EIP: cpu.sysenterEip = lo; return;
    case MSR_PAT:
      if (!patValid(lo, hi)) cpu.raise(GP, 0);
      cpu.pat = (BigInt(hi) << 32n) | BigInt(lo);
      return;
    case MSR_EFER:
      // only NXE is implemented: SCE (no SYSCALL advertised), LME (no long mode), LMA and the rest are reserved
      if ((lo & ~EFER_NXE) !== 0 || hi !== 0) cpu.raise(GP, 0);
      cpu.efer = lo;
      return;
    default: cpu.raise(GP, 0);
  }
};

// ---- SYSENTER / SYSEXIT (flat segments from SYSENTER_CS, SDM vol. 2B)
const AR_CODE0 = 0xc09b, AR_DATA0 = 0xc093, AR_CODE3 = 0xc0fb, AR_DATA3 = 0xc0f3;

/**
 * SYSENTER: to CPL 0 at SYSENTER_EIP with ESP = SYSENTER_ESP, CS = SYSENTER_CS and SS = CS + 8
 * (flat 4 GiB segments, no descriptors read), clearing VM, IF and RF. In host user mode the
 * kernel's handler gets a TRAP_SYSENTER instead (eip = the next instruction) and the core state
 * is left as the program had it.
 */
const sysenter: Handler = (cpu) => {
  if (cpu.host !== null) { cpu.hostTrap(TRAP_SYSENTER, -1, -1, cpu.eip); return; }
  if (!cpu.pe) cpu.raise(GP, 0);
  const sel = cpu.sysenterCs & 0xfffc;
  if (sel === 0) cpu.raise(GP, 0);
  cpu.setEflags(0, VM | IF | RF);
  cpu.setCpl(0);
  cpu.loadSegCache(CS, sel, 0, 0xffffffff, AR_CODE0);
  cpu.loadSegCache(SS, sel + 8, 0, 0xffffffff, AR_DATA0);
  cpu.r[4] = cpu.sysenterEsp;
  cpu.eip = cpu.sysenterEip >>> 0;
};

/** SYSEXIT: from CPL 0 to CPL 3 at EDX with ESP = ECX; CS = SYSENTER_CS + 16, SS = + 24, RPL 3. */
const sysexit: Handler = (cpu) => {
  const base = cpu.sysenterCs & 0xfffc;
  if (!cpu.pe || base === 0) cpu.raise(GP, 0);
  cpl0(cpu);
  cpu.setCpl(3);
  cpu.loadSegCache(CS, (base + 16) | 3, 0, 0xffffffff, AR_CODE3);
  cpu.loadSegCache(SS, (base + 24) | 3, 0, 0xffffffff, AR_DATA3);
  cpu.r[4] = cpu.r[1];
  cpu.eip = cpu.r[2] >>> 0;
};

/**
 * Register forms of group 7 (mod = 3), by ModRM.reg, each a record by ModRM.rm: /1 MONITOR
 * MWAIT (0F 01 C8/C9), /3 the SVM instructions VMRUN VMMCALL VMLOAD VMSAVE STGI CLGI SKINIT
 * INVLPGA (0F 01 D8-DF), /7 RDTSCP (0F 01 F9). Encodings without an entry are #UD.
 */
const GRP7_RM3: Record<number, Record<number, OpDef>> = {
  1: {
    0: { name: 'monitor', exec: monitor, cls: 'system' },
    1: { name: 'mwait', exec: mwait, cls: 'system' },
  },
  3: {
    0: { name: 'vmrun', exec: svmInsn(IC4_VMRUN, EXIT_VMRUN), cls: 'system' },
    1: { name: 'vmmcall', exec: vmmcall, cls: 'system' },
    2: { name: 'vmload', exec: svmInsn(IC4_VMLOAD, EXIT_VMLOAD), cls: 'system' },
    3: { name: 'vmsave', exec: svmInsn(IC4_VMSAVE, EXIT_VMSAVE), cls: 'system' },
    4: { name: 'stgi', exec: svmInsn(IC4_STGI, EXIT_STGI), cls: 'system' },
    5: { name: 'clgi', exec: svmInsn(IC4_CLGI, EXIT_CLGI), cls: 'system' },
    6: { name: 'skinit', exec: svmInsn(IC4_SKINIT, EXIT_SKINIT), cls: 'system' },
    7: { name: 'invlpga', exec: invlpga, cls: 'system' },
  },
  7: {
    1: { name: 'rdtscp', exec: rdtscp, cls: 'rdtsc' },
  },
};

export const table: OpTable = {
  0x0f01: { name: 'grp7', group: buildGrp7() },
  0x0f06: { name: 'clts', exec: clts, cls: 'system' },
  0x0f08: { name: 'invd', exec: invd, cls: 'system' },
  0x0f09: { name: 'wbinvd', exec: wbinvd, cls: 'system' },
  0x0f0b: { name: 'ud2', exec: ud2 },
  0x0f20: { name: 'mov', ops: 'Rd,Cd', exec: movRdCd, cls: 'system', modIgnored: true },
  0x0f21: { name: 'mov', ops: 'Rd,Dd', exec: movRdDd, cls: 'system', modIgnored: true },
  0x0f22: { name: 'mov', ops: 'Cd,Rd', exec: movCdRd, cls: 'system', modIgnored: true },
  0x0f23: { name: 'mov', ops: 'Dd,Rd', exec: movDdRd, cls: 'system', modIgnored: true },
  0x0f30: { name: 'wrmsr', exec: wrmsr, cls: 'msr' },
  0x0f31: { name: 'rdtsc', exec: rdtsc, cls: 'rdtsc' },
  0x0f32: { name: 'rdmsr', exec: rdmsr, cls: 'msr' },
  0x0f33: { name: 'rdpmc', exec: rdpmc, cls: 'msr' },
  0x0f34: { name: 'sysenter', exec: sysenter, cls: 'farTransfer' },
  0x0f35: { name: 'sysexit', exec: sysexit, cls: 'farTransfer' },
  0x0fa2: { name: 'cpuid', exec: cpuid, cls: 'serializing' },
  0xf4: { name: 'hlt', exec: hlt, cls: 'halt' },
  0xfa: { name: 'cli', exec: cli },
  0xfb: { name: 'sti', exec: sti },
};
