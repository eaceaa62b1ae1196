/**
 * One emulated i686 core (P6 class, AMD flavour): architectural state, the memory path
 * (segmentation -> modelled TLB -> physical memory), the fetch-decode-execute loop, and event
 * delivery (DESIGN.md, "The hardware line and the execution model").
 *
 * How an instruction runs: the loop translates CS:EIP (a one-entry fetch cache in front of the
 * ITLB), finds the decoded Insn for that physical address in the shared code cache (decoding it
 * on a miss), sets EIP to the next instruction, and calls insn.exec. A faulting instruction calls
 * `raise()`, which records the exception and unwinds to the loop with a private sentinel; the
 * loop restores EIP and delivers the exception (through the IDT/IVT when bare, to the host
 * handler in host mode). The sentinel never leaves `run()`.
 *
 * Memory: data accesses go through `fast`, a per-page mirror of the data TLB's current contents
 * (entry = physical frame | permission bits). A hit is one array load, a mask and a typed-array
 * access. A miss, an unaligned or page-crossing access, MMIO, and writes to pages holding decoded
 * code take the slow path, which consults the modelled TLB (counting hits and misses), walks the
 * page tables on a miss (charging each reference), and refills the mirror. The mirror only ever
 * holds translations the modelled TLB holds, so TLB statistics are exact.
 */
import { extraCosts } from '../costs.ts';
import { ACC_EXEC, ACC_READ, ACC_WRITE } from './access.ts';
import type { PhysMem } from '../mem/physmem.ts';
import { CodeCache } from './codecache.ts';
import { defaultCpuid, type CpuidTable } from './cpuid.ts';
import { decode } from './decoder.ts';
import { deliverEvent, EV_EXCEPTION, EV_EXTERNAL, EV_NMI, isDoubleFault } from './exceptions.ts';
import { AC, ARITH, DF, FIXED1, getCF, getOF, getPF, getSF, getZF, ID, IF, IOPL, materialize, NT, RF, TF } from './flags.ts';
import { CS, type Insn, SS } from './insn.ts';
import { raiseNpf } from './npt.ts';
import { walk, type WalkResult } from './paging.ts';
import { guestDispatch, guestException, guestPending, guestShutdown, guestTakeEvent, guestWakeable, type SvmGuest, vmexitNow } from './svm.ts';
import { P6_TLBS, TE_D, TE_HIGH, TE_NX, TE_U, TE_W, Tlb, type TlbConfig } from './tlb.ts';

/** Port I/O as the core sees it. */
export interface IoBus {
  in(port: number, size: 1 | 2 | 4): number;
  out(port: number, size: 1 | 2 | 4, value: number): void;
}

/** An interrupt controller as the core sees it (the INTR pin and the INTA cycle). */
export interface InterruptController {
  hasInterrupt(): boolean;
  acknowledge(): number;
}

import { TRAP_EXCEPTION, TRAP_IDLE, TRAP_INTERRUPT, TRAP_SOFTINT, TRAP_SYSENTER, TRAP_VMEXIT } from './traps.ts';
export { TRAP_EXCEPTION, TRAP_IDLE, TRAP_INTERRUPT, TRAP_SOFTINT, TRAP_SYSENTER, TRAP_VMEXIT };

/** What a host trap carries (DESIGN.md, execution model). One record per core, reused. */
export interface TrapRecord {
  kind: number;
  vector: number;
  errorCode: number; // -1 when the event has none
  cr2: number;
  eip: number;
}

/** The host software's entry points on a core: the kernel's "IDT". */
export interface HostHandler {
  trap(cpu: Cpu, t: TrapRecord): void;
}

export const RUNNING = 0;
export const HALTED = 1;
export const SHUTDOWN = 2;
/** An application processor after INIT, waiting for a startup IPI. */
export const WAIT_SIPI = 3;

/** The local APIC's MSRs as WRMSR/RDMSR reach them (IA32_APIC_BASE, IA32_TSC_DEADLINE). */
export interface ApicMsrs {
  readApicBaseMsr(): number;
  writeApicBaseMsr(v: number): boolean;
  getTscDeadline(): number;
  setTscDeadline(cycles: number): void;
}

export { ACC_EXEC, ACC_READ, ACC_WRITE };

/** Fast-mirror permission bits. */
const M_RS = 1, M_WS = 2, M_RU = 4, M_WU = 8;
const MIRROR_CAP = 8192;

/** Thrown (and caught) only inside the core to unwind a faulting instruction. */
class Unwind { }
const FAULT = new Unwind();

export interface CpuOptions {
  mem: PhysMem;
  io?: IoBus;
  codeCache?: CodeCache;
  tlbs?: TlbConfig;
  cpuid?: CpuidTable;
  apicId?: number;
}

const NULL_IO: IoBus = {
  in: (_p, size) => (size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff),
  out: () => { /* nothing claims the port */ },
};

export class Cpu {
  // ---- general registers: eax ecx edx ebx esp ebp esi edi, and r[8] = 0 (absent base/index)
  readonly r = new Int32Array(9);
  /** EIP of the next instruction to run (unsigned). During exec: of the next instruction. */
  eip = 0;
  /** EIP of the instruction being executed. */
  insnEip = 0;

  // ---- EFLAGS (see flags.ts)
  flags = FIXED1;
  lazy = 0;
  lfOp = 0;
  lfSz = 0;
  lfA = 0;
  lfB = 0;
  lfRes = 0;

  // ---- segment registers (descriptor caches)
  readonly segSel = new Int32Array(6);
  readonly segBase = new Int32Array(6);
  readonly segLimit = new Float64Array(6);
  /** Attribute word: descriptor bits 40-47 in 0-7 and 52-55 in 12-15 (type, S, DPL, P, AVL, D/B, G). */
  readonly segAr = new Int32Array(6);
  /** Valid offset ranges for reads and writes (first byte), derived from the cache. */
  readonly rdMin = new Float64Array(6);
  readonly rdMax = new Float64Array(6);
  readonly wrMin = new Float64Array(6);
  readonly wrMax = new Float64Array(6);

  gdtBase = 0; gdtLimit = 0xffff;
  idtBase = 0; idtLimit = 0x3ff;
  ldtSel = 0; ldtBase = 0; ldtLimit = 0xffff; ldtAr = 0x82;
  trSel = 0; trBase = 0; trLimit = 0xffff; trAr = 0x8b;

  cpl = 0;
  /** 0: 16-bit code segment, 1: 32-bit. */
  codeMode = 0;
  ipMask = 0xffff;
  /** 0xffff for a 16-bit stack segment, -1 for 32-bit. */
  spMask = 0xffff;

  // ---- control, debug and model-specific registers
  cr0 = 0x60000010;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  efer = 0;
  readonly dr = new Int32Array(8);
  /** PAE page-directory-pointer entries, loaded on CR3 writes in PAE mode (lo, hi pairs). */
  readonly pdpte = new Int32Array(8);
  sysenterCs = 0; sysenterEsp = 0; sysenterEip = 0;
  apicBase = 0xfee00900;
  /** IA32_PAT: eight type bytes (64 bits). */
  pat = 0x0007040600070406n;
  tscOffset = 0;
  readonly msrStore = new Map<number, bigint>();

  // ---- time and counters
  cycles = 0;
  icount = 0;
  /** The loop stops after the instruction that reaches this cycle (lowered to force a stop). */
  stopAt = 0;
  readonly stats = {
    tlbMisses: 0, itlbMisses: 0, dtlbMisses: 0, walkRefs: 0, tlbFlushes: 0,
    exceptions: 0, interrupts: 0, pageFaults: 0, decoded: 0, vmexits: 0,
  };
  /** #UD raised for opcodes we do not implement, by opcode. */
  readonly unimplemented = new Map<number, number>();

  // ---- memory path
  readonly mem: PhysMem;
  io: IoBus;
  readonly code: CodeCache;
  readonly fast = new Int32Array(1 << 20);
  private readonly fastList = new Int32Array(MIRROR_CAP);
  private fastCount = 0;
  rdNeed = M_RS;
  wrNeed = M_WS;
  readonly itlb: Tlb; readonly dtlb: Tlb; readonly itlbLarge: Tlb; readonly dtlbLarge: Tlb;
  asid = 0;
  private fetchVpn = -1;
  private fetchBase = 0;
  /** Bumped whenever cached fetches or successor links may be stale (see execute()). */
  epoch = 0;
  /** CS base and limit, cached for the fetch loop. */
  csBase = 0;
  csLimit = 0xffff;
  readonly walkOut: WalkResult = { phys: 0, flags: 0, large: false, refs: 0 };

  // ---- run state and events
  state = RUNNING;
  shutdownReason = '';
  intc: InterruptController | null = null;
  nmiPending = false;
  irqShadow = false;
  /**
   * True while the one instruction that runs in an interrupt shadow executes (a #VMEXIT from it
   * records INTERRUPT_SHADOW in the VMCB, svm.ts).
   */
  inShadow = false;
  host: HostHandler | null = null;
  readonly trapRec: TrapRecord = { kind: 0, vector: 0, errorCode: -1, cr2: 0, eip: 0 };
  readonly cpuid: CpuidTable;
  readonly apicId: number;
  // ---- guest mode (AMD SVM; see svm.ts): set between VMRUN and #VMEXIT
  /** True while the core runs a guest. */
  guest = false;
  /** Nested paging for the running guest (VMCB NP_ENABLE), its root and table format (npt.ts). */
  npEnabled = false;
  nCr3 = 0;
  nptFormat = 0;
  /** The running guest's controls and exit state (svm.ts), null in host mode. */
  svm: SvmGuest | null = null;
  /** A #VMEXIT was raised inside the current instruction (svmExit) and is being unwound. */
  exitPending = false;
  /** The linear address of the last page fault (CR2 is written only when the #PF is delivered). */
  pfAddr = 0;

  /** The core's local APIC (its MSRs), when the machine has one. */
  apic: ApicMsrs | null = null;
  /** Called when the core shuts down (triple fault). */
  onShutdown: ((cpu: Cpu, reason: string) => void) | null = null;
  /** Per-instruction trace hook (--trace insn); null keeps the loop untouched. */
  tracer: ((cpu: Cpu, i: Insn) => void) | null = null;

  // ---- the exception being raised (set by raise())
  excVec = -1;
  excErr = -1;
  /** Nesting of event delivery, for double/triple fault detection. */
  delivering = -1;

  constructor(o: CpuOptions) {
    this.mem = o.mem;
    this.io = o.io ?? NULL_IO;
    this.code = o.codeCache ?? new CodeCache(o.mem);
    this.code.attach(this);
    const t = o.tlbs ?? P6_TLBS;
    this.itlb = new Tlb(t.itlb); this.dtlb = new Tlb(t.dtlb);
    this.itlbLarge = new Tlb(t.itlbLarge); this.dtlbLarge = new Tlb(t.dtlbLarge);
    this.cpuid = o.cpuid ?? defaultCpuid();
    this.apicId = o.apicId ?? 0;
    o.mem.onMmioChange(() => this.flushTlb(false));
    this.reset();
  }

  /** Power-on/INIT state: real mode at F000:FFF0. */
  reset(): void {
    this.r.fill(0);
    this.r[2] = 0x663; // EDX = CPU signature after reset
    this.flags = FIXED1; this.lazy = 0;
    for (let s = 0; s < 6; s++) this.loadSegCache(s, 0, 0, 0xffff, 0x93);
    this.loadSegCache(CS, 0xf000, 0xffff0000, 0xffff, 0x9b);
    this.eip = 0xfff0;
    this.gdtBase = 0; this.gdtLimit = 0xffff; this.idtBase = 0; this.idtLimit = 0x3ff;
    this.ldtSel = 0; this.ldtBase = 0; this.ldtLimit = 0xffff; this.ldtAr = 0x82;
    this.trSel = 0; this.trBase = 0; this.trLimit = 0xffff; this.trAr = 0x8b;
    this.cr0 = 0x60000010; this.cr2 = 0; this.cr3 = 0; this.cr4 = 0; this.efer = 0;
    this.dr.fill(0); this.dr[6] = 0xffff0ff0 | 0; this.dr[7] = 0x400;
    this.state = RUNNING; this.irqShadow = false; this.nmiPending = false; this.delivering = -1;
    this.updateMode();
    this.flushTlb(false);
  }

  // =============================================================================== registers

  get eax(): number { return this.r[0] >>> 0; }
  get esp(): number { return this.r[4] >>> 0; }

  getReg8(n: number): number {
    return n < 4 ? this.r[n] & 0xff : (this.r[n - 4] >> 8) & 0xff;
  }
  setReg8(n: number, v: number): void {
    if (n < 4) this.r[n] = (this.r[n] & ~0xff) | (v & 0xff);
    else this.r[n - 4] = (this.r[n - 4] & ~0xff00) | ((v & 0xff) << 8);
  }
  getReg16(n: number): number { return this.r[n] & 0xffff; }
  setReg16(n: number, v: number): void { this.r[n] = (this.r[n] & ~0xffff) | (v & 0xffff); }

  /** EFLAGS as software sees it. */
  getEflags(): number { return (materialize(this) | FIXED1) >>> 0; }
  /** Sets EFLAGS bits in `mask` from `v` (no privilege checks; callers apply them). */
  setEflags(v: number, mask = -1): void {
    materialize(this);
    const writable = ARITH | TF | IF | DF | IOPL | NT | RF | AC | ID; // VM: virtual-8086 mode is not modelled
    const m = mask & writable;
    this.flags = ((this.flags & ~m) | (v & m) | FIXED1) >>> 0;
    this.lazy = 0;
  }

  getCF(): number { return getCF(this); }
  /** Flag reads for generated handlers (isa/fast.ts), which cannot import flags.ts. */
  zf(): boolean { return getZF(this); }
  sf(): boolean { return getSF(this); }
  of(): boolean { return getOF(this); }
  pf(): boolean { return getPF(this); }

  /** Records a lazily evaluated arithmetic result (see flags.ts). */
  setLazy(op: number, sz: number, a: number, b: number, res: number): void {
    this.lfOp = op; this.lfSz = sz; this.lfA = a; this.lfB = b; this.lfRes = res;
    this.lazy = ARITH;
  }

  // =============================================================================== segments

  /** Protected mode (CR0.PE). */
  get pe(): boolean { return (this.cr0 & 1) !== 0; }
  /** Paging (CR0.PG, with PE). */
  get pg(): boolean { return (this.cr0 & 0x80000001) === (0x80000001 | 0); }
  get pae(): boolean { return (this.cr4 & 0x20) !== 0; }

  /**
   * Loads a descriptor cache and derives the access ranges from it. In real mode every segment
   * is readable and writable up to its cached limit; in protected mode the type decides.
   */
  loadSegCache(s: number, sel: number, base: number, limit: number, ar: number): void {
    this.segSel[s] = sel & 0xffff;
    this.segBase[s] = base | 0;
    this.segLimit[s] = limit >>> 0;
    this.segAr[s] = ar;
    this.deriveRanges(s);
    if (s === CS) { this.csBase = base | 0; this.csLimit = limit >>> 0; this.invalidateFetch(); }
    if (s === CS || s === SS) this.updateMode();
  }

  /**
   * Loads all six descriptor caches (ES CS SS DS FS GS) at once, for world switches (VMRUN,
   * #VMEXIT): the same state as six loadSegCache calls, with the mode derived once.
   */
  loadSegCaches(sel: Int32Array, base: Int32Array, limit: Float64Array, ar: Int32Array): void {
    const pe = (this.cr0 & 1) !== 0;
    const sSel = this.segSel, sBase = this.segBase, sLimit = this.segLimit, sAr = this.segAr;
    for (let s = 0; s < 6; s++) {
      sSel[s] = sel[s] & 0xffff;
      sBase[s] = base[s] | 0;
      sLimit[s] = limit[s] >>> 0;
      sAr[s] = ar[s];
    }
    for (let s = 0; s < 6; s++) this.deriveRangesIn(s, pe);
    this.csBase = base[CS] | 0; this.csLimit = limit[CS] >>> 0;
    this.updateMode();
  }

  /**
   * loadSegCaches with the access ranges given (rdMin, rdMax, wrMin, wrMax per segment): for
   * world switches that restore caches whose ranges were derived (by loadSegCaches, under the
   * same CR0.PE) from exactly these caches, so the state is the one loadSegCaches would give.
   */
  loadSegCachesDerived(sel: Int32Array, base: Int32Array, limit: Float64Array, ar: Int32Array,
    rdMin: Float64Array, rdMax: Float64Array, wrMin: Float64Array, wrMax: Float64Array): void {
    const sSel = this.segSel, sBase = this.segBase, sLimit = this.segLimit, sAr = this.segAr;
    const dRdMin = this.rdMin, dRdMax = this.rdMax, dWrMin = this.wrMin, dWrMax = this.wrMax;
    for (let s = 0; s < 6; s++) {
      sSel[s] = sel[s]; sBase[s] = base[s]; sLimit[s] = limit[s]; sAr[s] = ar[s];
      dRdMin[s] = rdMin[s]; dRdMax[s] = rdMax[s]; dWrMin[s] = wrMin[s]; dWrMax[s] = wrMax[s];
    }
    this.csBase = base[CS] | 0; this.csLimit = limit[CS] >>> 0;
    this.updateMode();
  }

  deriveRanges(s: number): void {
    this.deriveRangesIn(s, this.pe);
  }

  /** deriveRanges with CR0.PE given. */
  private deriveRangesIn(s: number, pe: boolean): void {
    const ar = this.segAr[s], limit = this.segLimit[s];
    let lo = 0, hi = limit, readable = true, writable = true;
    if (pe) {
      const nullSel = (this.segSel[s] & 0xfffc) === 0 && s !== CS;
      if (nullSel || (ar & 0x80) === 0) { readable = false; writable = false; }
      else if (ar & 0x08) { // code
        readable = (ar & 0x02) !== 0; writable = false;
      } else {
        writable = (ar & 0x02) !== 0;
        if (ar & 0x04) { lo = limit + 1; hi = (ar & 0x4000) ? 0xffffffff : 0xffff; }
      }
    }
    this.rdMin[s] = readable ? lo : 1; this.rdMax[s] = readable ? hi : -1;
    this.wrMin[s] = writable ? lo : 1; this.wrMax[s] = writable ? hi : -1;
  }

  /** Recomputes everything derived from CS, SS, CR0 and CR4. */
  updateMode(): void {
    this.codeMode = this.pe && (this.segAr[CS] & 0x4000) !== 0 ? 1 : 0;
    this.ipMask = this.codeMode ? -1 : 0xffff;
    this.spMask = this.pe && (this.segAr[SS] & 0x4000) !== 0 ? -1 : 0xffff;
    if (!this.pe) this.cpl = 0; // in protected mode CPL changes only through setCpl (transfers)
    this.invalidateFetch();
    const user = this.cpl === 3;
    this.rdNeed = user ? M_RU : M_RS;
    this.wrNeed = user ? M_WU : M_WS;
  }

  /** Sets CPL explicitly (protected-mode transfers; CS.RPL normally equals it). */
  setCpl(cpl: number): void {
    this.cpl = cpl;
    this.invalidateFetch();
    this.rdNeed = cpl === 3 ? M_RU : M_RS;
    this.wrNeed = cpl === 3 ? M_WU : M_WS;
  }

  /** Reports a segment-limit or access-rights violation of seg:off (size bytes). */
  segFault(s: number, _off: number, _size: number): never {
    return this.raise(s === SS ? 12 : 13, 0);
  }

  // =============================================================================== exceptions

  /** Raises an exception in the current instruction. Never returns. */
  raise(vec: number, err = -1): never {
    this.excVec = vec;
    this.excErr = err;
    throw FAULT;
  }

  /** True if `e` is the core's private unwind sentinel (for code that must catch and rethrow). */
  static isFault(e: unknown): boolean { return e === FAULT; }
  isUnwind(e: unknown): boolean { return e === FAULT; }

  /** Unwinds the current instruction for a #VMEXIT recorded by svm.ts. Never returns. */
  exitNow(): never {
    this.exitPending = true;
    throw FAULT;
  }

  /**
   * Ends the current instruction for a #VMEXIT recorded by svm.ts without unwinding: for an
   * intercept checked before the instruction changed any state (IOIO), whose handler returns at
   * once after this. The loop stops after the instruction, takes back its cycle and count (an
   * intercepted instruction does not retire) and performs the exit as fault() would.
   */
  exitAfterInsn(): void {
    this.exitPending = true;
    this.exitCycles = this.cycles;
    this.exitIcount = this.icount;
    this.stopAt = 0;
  }
  private exitCycles = 0;
  private exitIcount = 0;

  /** Reports a #VMEXIT to the host's handler (svm.ts calls this once the host state is back). */
  vmexitToHost(exitCode: number): void {
    if (this.host === null) return;
    this.hostTrap(TRAP_VMEXIT, exitCode, -1, this.eip);
  }

  // =============================================================================== linear memory

  /** Linear read of a byte with the current privilege. */
  lrd8(lin: number): number {
    const e = this.fast[lin >>> 12];
    if ((e & this.rdNeed) !== 0) return this.mem.u8[((e & -4096) | (lin & 0xfff)) >>> 0];
    return this.readSlow(lin, 1, this.cpl === 3);
  }
  lrd16(lin: number): number {
    const e = this.fast[lin >>> 12];
    if ((e & this.rdNeed) !== 0 && (lin & 0xfff) !== 0xfff) {
      const p = ((e & -4096) | (lin & 0xfff)) >>> 0;
      const u8 = this.mem.u8;
      return u8[p] | (u8[p + 1] << 8);
    }
    return this.readSlow(lin, 2, this.cpl === 3);
  }
  lrd32(lin: number): number {
    const e = this.fast[lin >>> 12];
    if ((e & this.rdNeed) !== 0) {
      if ((lin & 3) === 0) return this.mem.i32[((e & -4096) | (lin & 0xfff)) >>> 2];
      if ((lin & 0xfff) <= 0xffc) {
        const p = ((e & -4096) | (lin & 0xfff)) >>> 0;
        const u8 = this.mem.u8;
        return u8[p] | (u8[p + 1] << 8) | (u8[p + 2] << 16) | (u8[p + 3] << 24);
      }
    }
    return this.readSlow(lin, 4, this.cpl === 3) | 0;
  }
  lwr8(lin: number, v: number): void {
    const e = this.fast[lin >>> 12];
    if ((e & this.wrNeed) !== 0) { this.mem.u8[((e & -4096) | (lin & 0xfff)) >>> 0] = v; return; }
    this.writeSlow(lin, 1, v, this.cpl === 3);
  }
  lwr16(lin: number, v: number): void {
    const e = this.fast[lin >>> 12];
    if ((e & this.wrNeed) !== 0 && (lin & 0xfff) !== 0xfff) {
      const p = ((e & -4096) | (lin & 0xfff)) >>> 0;
      const u8 = this.mem.u8;
      u8[p] = v; u8[p + 1] = v >> 8;
      return;
    }
    this.writeSlow(lin, 2, v, this.cpl === 3);
  }
  lwr32(lin: number, v: number): void {
    const e = this.fast[lin >>> 12];
    if ((e & this.wrNeed) !== 0) {
      if ((lin & 3) === 0) { this.mem.i32[((e & -4096) | (lin & 0xfff)) >>> 2] = v; return; }
      if ((lin & 0xfff) <= 0xffc) {
        const p = ((e & -4096) | (lin & 0xfff)) >>> 0;
        const u8 = this.mem.u8;
        u8[p] = v; u8[p + 1] = v >> 8; u8[p + 2] = v >> 16; u8[p + 3] = v >> 24;
        return;
      }
    }
    this.writeSlow(lin, 4, v, this.cpl === 3);
  }

  /** Supervisor-privilege linear accesses (descriptor tables, TSS, IDT: implicit accesses). */
  srd8(lin: number): number { return this.readSlow(lin, 1, false); }
  srd16(lin: number): number { return this.readSlow(lin, 2, false); }
  srd32(lin: number): number { return this.readSlow(lin, 4, false) | 0; }
  swr8(lin: number, v: number): void { this.writeSlow(lin, 1, v, false); }
  swr16(lin: number, v: number): void { this.writeSlow(lin, 2, v, false); }
  swr32(lin: number, v: number): void { this.writeSlow(lin, 4, v, false); }

  /** The general read path: any alignment, page crossings, MMIO. Unsigned result. */
  readSlow(lin: number, size: 1 | 2 | 4, user: boolean): number {
    lin >>>= 0;
    const off = lin & 0xfff;
    if (off + size > 0x1000) {
      const n1 = 0x1000 - off;
      const p1 = this.translate(lin, ACC_READ, user);
      const p2 = this.translate((lin + n1) >>> 0, ACC_READ, user);
      let v = 0;
      for (let i = 0; i < size; i++) {
        const b = i < n1 ? this.mem.read(p1 + i, 1) : this.mem.read(p2 + i - n1, 1);
        v |= b << (8 * i);
      }
      return v >>> 0;
    }
    const phys = this.translate(lin, ACC_READ, user);
    return this.mem.read(phys, size);
  }

  /** The general write path: checks every page first, so a fault leaves memory untouched. */
  writeSlow(lin: number, size: 1 | 2 | 4, v: number, user: boolean): void {
    lin >>>= 0;
    const off = lin & 0xfff;
    if (off + size > 0x1000) {
      const n1 = 0x1000 - off;
      const p1 = this.translate(lin, ACC_WRITE, user);
      const p2 = this.translate((lin + n1) >>> 0, ACC_WRITE, user);
      for (let i = 0; i < size; i++) {
        const b = (v >>> (8 * i)) & 0xff;
        if (i < n1) this.mem.write(p1 + i, 1, b); else this.mem.write(p2 + i - n1, 1, b);
      }
      return;
    }
    const phys = this.translate(lin, ACC_WRITE, user);
    this.mem.write(phys, size, v);
  }

  /**
   * Translates a linear address for an access, through the modelled TLB and the page tables.
   * Raises #PF on a violation. Refills the fast mirror for data accesses. In guest mode with
   * nested paging the TLB holds combined guest-linear -> host-physical translations, also with
   * guest paging off, and a nested fault exits with #VMEXIT(NPF) (paging.ts, npt.ts).
   */
  translate(lin: number, acc: number, user: boolean): number {
    lin >>>= 0;
    const vpn = lin >>> 12;
    if (!this.pg && !(this.npEnabled && this.guest)) {
      if (acc !== ACC_EXEC) this.mirror(vpn, vpn, TE_W | TE_U | TE_D);
      return lin;
    }
    const data = this.lookupTlb(lin, acc, user);
    if ((data & TE_HIGH) !== 0) return 0xfffff000 | (lin & 0xfff); // above 4 GiB: unbacked
    const phys = ((data & -4096) | (lin & 0xfff)) >>> 0;
    if (acc !== ACC_EXEC) this.mirror(vpn, phys >>> 12, data);
    return phys;
  }

  /** TLB lookup (and walk on a miss) with the permission checks; returns the entry data for lin's page. */
  private lookupTlb(lin: number, acc: number, user: boolean): number {
    const vpn = lin >>> 12;
    const small = acc === ACC_EXEC ? this.itlb : this.dtlb;
    const large = acc === ACC_EXEC ? this.itlbLarge : this.dtlbLarge;
    const lshift = this.pae ? 9 : 10;
    const asidBits = this.asid << 20;
    let idx = small.lookup(vpn | asidBits);
    let data = 0;
    let t = small;
    if (idx >= 0) data = small.data[idx];
    else {
      idx = large.lookup((vpn >>> lshift) | asidBits);
      if (idx >= 0) {
        t = large;
        data = large.data[idx] + (((vpn & ((1 << lshift) - 1)) << 12));
      }
    }
    if (idx >= 0 && this.permits(data, acc, user)) return data;
    // A write to a page whose entry has D clear re-walks to set D (a hardware assist, not a miss).
    const dirtyAssist = idx >= 0 && acc === ACC_WRITE && (data & TE_D) === 0 && this.permits(data | TE_D, acc, user);
    if (idx >= 0) this.dropEntry(t, idx); // stale or insufficient: re-walk before faulting (SDM 4.10.4.1)
    if (!dirtyAssist) {
      this.stats.tlbMisses++;
      if (acc === ACC_EXEC) this.stats.itlbMisses++; else this.stats.dtlbMisses++;
      this.cycles += extraCosts.tlbMissBase.cycles;
    }
    const w = this.walkOut;
    const fault = walk(this, lin, acc, user, w);
    this.stats.walkRefs += w.refs;
    this.cycles += w.refs * extraCosts.walkRef.cycles;
    if (fault >= 0) {
      this.pfAddr = lin | 0;
      this.stats.pageFaults++;
      this.raise(14, fault);
    }
    if (fault !== -1) raiseNpf(this); // WALK_NPF: #VMEXIT(NPF)
    if (w.large) {
      const base = ((w.phys >>> 12) & ~((1 << lshift) - 1)) << 12;
      const ev = large.insert((vpn >>> lshift) | asidBits, base | w.flags);
      if (ev !== -1) this.evicted(ev, lshift, acc === ACC_EXEC);
      return ((w.phys & -4096) | w.flags) | 0;
    }
    const ev = small.insert(vpn | asidBits, (w.phys & -4096) | w.flags);
    if (ev !== -1) this.evicted(ev, 0, acc === ACC_EXEC);
    return ((w.phys & -4096) | w.flags) | 0;
  }

  private permits(data: number, acc: number, user: boolean): boolean {
    if (user && (data & TE_U) === 0) return false;
    if (acc === ACC_WRITE) {
      if ((data & TE_D) === 0) return false; // the walk must set the dirty bit
      if ((data & TE_W) === 0 && (user || (this.cr0 & 0x10000) !== 0)) return false;
    } else if (acc === ACC_EXEC && (data & TE_NX) !== 0) return false;
    return true;
  }

  private dropEntry(t: Tlb, idx: number): void {
    const key = t.tag[idx];
    t.invalidateIndex(idx);
    this.evicted(key, t === this.dtlbLarge || t === this.itlbLarge ? (this.pae ? 9 : 10) : 0, t === this.itlb || t === this.itlbLarge);
  }

  /** A TLB entry went away: drop what the mirror and the fetch cache derived from it. */
  private evicted(key: number, shift: number, itlb: boolean): void {
    if (itlb) { this.invalidateFetch(); return; }
    if ((key >>> 20) !== this.asid) return;
    const vpn = (key & 0xfffff) << shift;
    if (shift === 0) this.fast[vpn] = 0;
    else this.fast.fill(0, vpn, vpn + (1 << shift));
  }

  /** Installs a translation in the fast mirror if the page is RAM. */
  private mirror(vpn: number, ppn: number, data: number): void {
    const mem = this.mem;
    if ((data & TE_HIGH) !== 0 || ppn >= mem.ramPages || mem.ramPage[ppn] !== 1) return;
    let m = M_RS;
    if (data & TE_U) m |= M_RU;
    if ((data & TE_D) !== 0 && mem.codePage[ppn] === 0) {
      if ((data & TE_W) !== 0 || (this.cr0 & 0x10000) === 0) m |= M_WS;
      if ((data & TE_U) !== 0 && (data & TE_W) !== 0) m |= M_WU;
    }
    if (this.fast[vpn] === 0) {
      if (this.fastCount === MIRROR_CAP) this.clearMirror();
      this.fastList[this.fastCount++] = vpn;
    }
    this.fast[vpn] = (ppn << 12) | m;
  }

  private clearMirror(): void {
    if (this.fastCount === MIRROR_CAP) this.fast.fill(0);
    else for (let i = 0; i < this.fastCount; i++) this.fast[this.fastList[i]] = 0;
    this.fastCount = 0;
  }

  /** A physical page now holds decoded code: its writes must take the slow path. */
  protectCodePage(ppn: number): void {
    const f = this.fast;
    for (let i = 0; i < this.fastCount; i++) {
      const v = this.fastList[i];
      const e = f[v];
      if (e !== 0 && (e >>> 12) === ppn) f[v] = e & ~(M_WS | M_WU);
    }
  }

  /** Flushes the TLBs (CR3 write: keepGlobal when CR4.PGE) for the current ASID. */
  flushTlb(keepGlobal: boolean): void {
    const pge = keepGlobal && (this.cr4 & 0x80) !== 0;
    this.itlb.flush(pge, this.asid); this.dtlb.flush(pge, this.asid);
    this.itlbLarge.flush(pge, this.asid); this.dtlbLarge.flush(pge, this.asid);
    this.clearMirror();
    this.invalidateFetch();
    this.stats.tlbFlushes++;
  }

  /** Flushes every ASID's entries (TLB_CONTROL = 1, CR0/CR4 paging-mode changes). */
  flushTlbAll(): void {
    this.itlb.flush(false, -1); this.dtlb.flush(false, -1);
    this.itlbLarge.flush(false, -1); this.dtlbLarge.flush(false, -1);
    this.clearMirror();
    this.invalidateFetch();
    this.stats.tlbFlushes++;
  }

  /** INVLPG: drops the translation of one page (small or large) for the current ASID. */
  invlpg(lin: number): void {
    const vpn = (lin >>> 12);
    const a = this.asid << 20;
    let i = this.itlb.lookup(vpn | a);
    if (i >= 0) this.dropEntry(this.itlb, i);
    i = this.dtlb.lookup(vpn | a);
    if (i >= 0) this.dropEntry(this.dtlb, i);
    const ls = this.pae ? 9 : 10;
    i = this.itlbLarge.lookup((vpn >>> ls) | a);
    if (i >= 0) this.dropEntry(this.itlbLarge, i);
    i = this.dtlbLarge.lookup((vpn >>> ls) | a);
    if (i >= 0) this.dropEntry(this.dtlbLarge, i);
    this.fast[vpn] = 0;
    this.invalidateFetch();
  }

  /**
   * Drops the fast mirror and the fetch cache without touching the modelled TLB: for changes
   * that alter what the mirror derived from TLB entries (CR0.WP), not the translations.
   */
  resyncMirror(): void {
    this.clearMirror();
    this.invalidateFetch();
  }

  /** Switches the current ASID (world switches): the mirror holds only the current ASID's entries. */
  setAsid(asid: number): void {
    if (asid === this.asid) return;
    if (asid < 0 || asid > 2047) throw new RangeError(`ASID ${asid} out of range`);
    this.asid = asid;
    this.clearMirror();
    this.invalidateFetch();
  }

  // =============================================================================== segmented memory

  rd8(s: number, off: number): number {
    if (off < this.rdMin[s] || off > this.rdMax[s]) this.segFault(s, off, 1);
    return this.lrd8((this.segBase[s] + off) | 0);
  }
  rd16(s: number, off: number): number {
    if (off < this.rdMin[s] || off + 1 > this.rdMax[s]) this.segFault(s, off, 2);
    return this.lrd16((this.segBase[s] + off) | 0);
  }
  rd32(s: number, off: number): number {
    if (off < this.rdMin[s] || off + 3 > this.rdMax[s]) this.segFault(s, off, 4);
    return this.lrd32((this.segBase[s] + off) | 0);
  }
  wr8(s: number, off: number, v: number): void {
    if (off < this.wrMin[s] || off > this.wrMax[s]) this.segFault(s, off, 1);
    this.lwr8((this.segBase[s] + off) | 0, v);
  }
  wr16(s: number, off: number, v: number): void {
    if (off < this.wrMin[s] || off + 1 > this.wrMax[s]) this.segFault(s, off, 2);
    this.lwr16((this.segBase[s] + off) | 0, v);
  }
  wr32(s: number, off: number, v: number): void {
    if (off < this.wrMin[s] || off + 3 > this.wrMax[s]) this.segFault(s, off, 4);
    this.lwr32((this.segBase[s] + off) | 0, v);
  }
  /** Checks that seg:off..off+size-1 is writable, without writing (RMW instructions, multi-part stores). */
  checkWrite(s: number, off: number, size: number): void {
    if (off < this.wrMin[s] || off + size - 1 > this.wrMax[s]) this.segFault(s, off, size);
  }
  /**
   * Before reading a read-modify-write operand: hardware reads it with write intent, so a fault
   * on it is a write fault (#PF error code W = 1, a read-only segment #GP) even though the read
   * comes first. One mirror test when the page is already writable.
   */
  checkRmw(s: number, off: number, size: number): void {
    if (off < this.wrMin[s] || off + size - 1 > this.wrMax[s]) this.segFault(s, off, size);
    const lin = (this.segBase[s] + off) | 0;
    if ((this.fast[lin >>> 12] & this.wrNeed) !== 0 && (lin & 0xfff) <= 0x1000 - size) return;
    this.translate(lin, ACC_WRITE, this.cpl === 3);
    const last = (lin + size - 1) | 0;
    if ((last >>> 12) !== (lin >>> 12)) this.translate(last, ACC_WRITE, this.cpl === 3);
  }

  /** The memory operand's offset (unsigned). */
  ea(i: Insn): number {
    const r = this.r;
    return ((r[i.base] + (r[i.index] << i.scale) + i.disp) & i.adMask) >>> 0;
  }

  // ---- operand helpers for ModRM instructions
  readE8(i: Insn): number { return i.mod === 3 ? this.getReg8(i.rm) : this.rd8(i.seg, this.ea(i)); }
  readE16(i: Insn): number { return i.mod === 3 ? this.r[i.rm] & 0xffff : this.rd16(i.seg, this.ea(i)); }
  readE32(i: Insn): number { return i.mod === 3 ? this.r[i.rm] : this.rd32(i.seg, this.ea(i)); }
  writeE8(i: Insn, v: number): void { if (i.mod === 3) this.setReg8(i.rm, v); else this.wr8(i.seg, this.ea(i), v); }
  writeE16(i: Insn, v: number): void { if (i.mod === 3) this.setReg16(i.rm, v); else this.wr16(i.seg, this.ea(i), v); }
  writeE32(i: Insn, v: number): void { if (i.mod === 3) this.r[i.rm] = v; else this.wr32(i.seg, this.ea(i), v); }
  /** Operand-size read/write of the E operand (2 or 4 bytes by i.opsz). */
  readEv(i: Insn): number { return i.opsz === 4 ? this.readE32(i) : this.readE16(i); }
  writeEv(i: Insn, v: number): void { if (i.opsz === 4) this.writeE32(i, v); else this.writeE16(i, v); }

  // =============================================================================== stack

  /** The current stack pointer as an offset in SS. */
  get sp(): number { return (this.r[4] & this.spMask) >>> 0; }

  private setSp(v: number): void {
    if (this.spMask === -1) this.r[4] = v;
    else this.r[4] = (this.r[4] & ~0xffff) | (v & 0xffff);
  }

  push32(v: number): void {
    const sp = ((this.r[4] - 4) & this.spMask) >>> 0;
    this.wr32(SS, sp, v);
    this.setSp(sp);
  }
  push16(v: number): void {
    const sp = ((this.r[4] - 2) & this.spMask) >>> 0;
    this.wr16(SS, sp, v);
    this.setSp(sp);
  }
  pop32(): number {
    const sp = (this.r[4] & this.spMask) >>> 0;
    const v = this.rd32(SS, sp);
    this.setSp(sp + 4);
    return v;
  }
  pop16(): number {
    const sp = (this.r[4] & this.spMask) >>> 0;
    const v = this.rd16(SS, sp);
    this.setSp(sp + 2);
    return v;
  }
  /** Push/pop of the operand size. */
  push(i: Insn, v: number): void { if (i.opsz === 4) this.push32(v); else this.push16(v); }
  pop(i: Insn): number { return i.opsz === 4 ? this.pop32() : this.pop16(); }
  /** Reads the stack at sp + delta without popping. */
  peek32(delta: number): number { return this.rd32(SS, ((this.r[4] + delta) & this.spMask) >>> 0); }
  peek16(delta: number): number { return this.rd16(SS, ((this.r[4] + delta) & this.spMask) >>> 0); }
  adjustSp(delta: number): void { this.setSp(((this.r[4] + delta) & this.spMask) >>> 0); }

  // =============================================================================== control transfer

  /** Near jump to an offset in CS (limit-checked). */
  jumpNear(target: number): void {
    target = (target & this.ipMask) >>> 0;
    if (target > this.csLimit) this.raise(13, 0);
    this.eip = target;
  }

  // =============================================================================== the loop

  /**
   * Runs until `cycles` reaches `until`, the core halts, or it shuts down. The quantum's end is
   * invisible to software (DESIGN.md): the core stops between two instructions.
   */
  run(until: number): void {
    this.stopRun = false;
    this.runLimit = until;
    while (this.cycles < this.runLimit) {
      if (this.stopRun) { this.stopRun = false; return; }
      if (this.state !== RUNNING) {
        if (this.state === HALTED && this.wakeFromHalt()) continue;
        return;
      }
      if (!this.irqShadow && this.pendingEvent()) {
        this.takeEvent();
        continue;
      }
      this.stopAt = this.irqShadow ? 0 : this.runLimit;
      this.inShadow = this.irqShadow;
      this.irqShadow = false;
      try {
        this.execute();
      } catch (e) {
        if (e !== FAULT) throw e;
        this.fault();
      }
      if (this.exitPending) this.exitAfter();
      this.inShadow = false;
    }
  }

  /**
   * Executes instructions until cycles >= stopAt (at least one).
   *
   * Each Insn remembers the Insn that followed it last time, both on the fall-through path
   * (`next`) and on the last other path taken (`jump`, for `jumpEip`), stamped with the fetch
   * epoch. Following a link skips the fetch translation and the cache lookup. The epoch changes
   * whenever a link could go stale: an ITLB eviction or flush, a CS load, a CPL or mode change,
   * or a write to a page holding decoded code. So a link is followed only when the fetch it
   * skips would have hit the ITLB and found the same instruction: TLB statistics stay exact.
   */
  private execute(): void {
    this.insnEip = this.eip;
    let insn = this.fetchInsn();
    for (;;) {
      const eip = this.eip;
      const fall = ((eip + insn.len) & this.ipMask) >>> 0;
      if (eip + insn.len - 1 > this.csLimit) this.raise(13, 0);
      this.eip = fall;
      if (this.tracer !== null) this.tracer(this, insn);
      insn.exec(this, insn);
      this.cycles += insn.cost;
      this.icount++;
      if (this.cycles >= this.stopAt) return;
      const e = this.eip;
      this.insnEip = e;
      const epoch = this.epoch;
      let nx: Insn | null;
      if (e === fall) {
        nx = insn.next;
        if (nx === null || insn.nextEpoch !== epoch) {
          nx = this.fetchInsn();
          // Only within one page: the same instruction reached through another linear alias
          // must not follow a link into a page that alias maps elsewhere.
          if (nx.cacheable && (e >>> 12) === (eip >>> 12)) { insn.next = nx; insn.nextEpoch = this.epoch; }
        }
      } else {
        nx = insn.jump;
        if (nx === null || insn.jumpEip !== e || insn.jumpEpoch !== epoch) {
          nx = this.fetchInsn();
          if (nx.cacheable) { insn.jump = nx; insn.jumpEip = e; insn.jumpEpoch = this.epoch; }
        }
      }
      insn = nx;
    }
  }

  /** The full fetch path: translate CS:EIP (one-entry cache before the ITLB), find or decode the Insn. */
  private fetchInsn(): Insn {
    const lin = (this.csBase + this.eip) | 0;
    let phys: number;
    if ((lin >>> 12) === this.fetchVpn) phys = this.fetchBase | (lin & 0xfff);
    else phys = this.fetchTranslate(lin);
    const page = this.code.pages[phys >>> 12];
    const insn = page !== undefined ? page[phys & 0xfff] : undefined;
    if (insn === undefined || insn.mode !== this.codeMode) return this.decodeAt(lin, phys);
    return insn;
  }

  private fetchTranslate(lin: number): number {
    const phys = this.translate(lin, ACC_EXEC, this.cpl === 3);
    const ppn = phys >>> 12;
    if (ppn < this.mem.ramPages && this.mem.ramPage[ppn] === 1) {
      this.fetchVpn = lin >>> 12;
      this.fetchBase = ppn << 12;
    } else this.fetchVpn = -1;
    return phys >>> 0;
  }

  /** Something a cached fetch or a successor link relied on changed (see execute()). */
  invalidateFetch(): void {
    this.fetchVpn = -1;
    this.epoch++;
  }

  private decodeAt(lin: number, phys: number): Insn {
    const insn = decode(this, lin >>> 0);
    this.stats.decoded++;
    if (insn.cacheable) this.code.store(phys >>> 0, insn);
    return insn;
  }

  /**
   * Ends the current run() after the instruction being executed (a device that stops the
   * machine, a host that wants control back). The core resumes exactly there on the next run().
   */
  requestStop(): void { this.stopAt = 0; this.stopRun = true; }
  /**
   * Lowers the end of the current run() to `cycle` (a device scheduled an event sooner than the
   * quantum's end). Harmless when not running.
   */
  limitRun(cycle: number): void {
    if (cycle < this.runLimit) this.runLimit = cycle;
    if (cycle < this.stopAt) this.stopAt = cycle;
  }
  private runLimit = 0;
  /** Ends the current batch of instructions so the loop re-checks events (STI, MOV SS, EOI). */
  recheckEvents(): void { this.stopAt = 0; }
  private stopRun = false;

  // =============================================================================== events

  private pendingEvent(): boolean {
    if (this.guest) return guestPending(this);
    if (this.nmiPending) return true;
    if (this.intc !== null && this.intc.hasInterrupt()) return (this.flags & IF) !== 0 || this.host !== null;
    return false;
  }

  /** Called by the interrupt controller when INTR or NMI changes: stop at the next boundary. */
  interruptChanged(): void {
    this.stopAt = 0;
  }

  private takeEvent(): void {
    this.insnEip = this.eip; // a fault during delivery restores EIP to the interrupted instruction
    try {
      if (this.guest) guestTakeEvent(this);
      else if (this.nmiPending) {
        this.nmiPending = false;
        this.dispatch(2, EV_NMI, -1);
      } else {
        const vec = this.intc!.acknowledge();
        this.stats.interrupts++;
        this.dispatch(vec, EV_EXTERNAL, -1);
      }
    } catch (e) {
      if (e !== FAULT) throw e;
      this.fault();
    }
  }

  private wakeFromHalt(): boolean {
    if (this.guest) {
      if (!guestWakeable(this)) return false;
      this.state = RUNNING;
      return true;
    }
    if (this.nmiPending || (this.intc !== null && this.intc.hasInterrupt() && ((this.flags & IF) !== 0 || this.host !== null))) {
      this.state = RUNNING;
      if (this.host !== null) {
        // host idle (HLT at CPL 0, or cpu.idle() from the kernel's handler): the interrupt is
        // acknowledged and handed to the kernel as one TRAP_IDLE carrying its vector
        let vec: number;
        if (this.nmiPending) { this.nmiPending = false; vec = 2; }
        else { vec = this.intc!.acknowledge(); this.stats.interrupts++; }
        this.insnEip = this.eip;
        this.hostTrap(TRAP_IDLE, vec, -1, this.eip);
      }
      return true;
    }
    return false;
  }

  /** INIT: the core resets and (unless it is the boot processor) waits for a startup IPI. */
  init(waitForSipi: boolean): void {
    const cycles = this.cycles, icount = this.icount;
    this.reset();
    this.cycles = cycles; this.icount = icount;
    if (waitForSipi) this.state = WAIT_SIPI;
    this.stopAt = 0;
  }

  /** A startup IPI: a waiting core starts in real mode at vector * 4096. Ignored otherwise. */
  startup(vector: number): void {
    if (this.state !== WAIT_SIPI) return;
    this.loadSegCache(CS, (vector & 0xff) << 8, (vector & 0xff) << 12, 0xffff, 0x9b);
    this.eip = 0;
    this.state = RUNNING;
  }

  /** Enters the idle state until an interrupt (host HLT). */
  idle(): void { this.state = HALTED; this.stopAt = 0; }

  /** The #VMEXIT of exitAfterInsn(): as fault() does for one raised by exitNow(), with the instruction's cycles and count taken back. */
  private exitAfter(): void {
    this.exitPending = false;
    this.cycles = this.exitCycles;
    this.icount = this.exitIcount;
    this.eip = this.insnEip;
    vmexitNow(this, this.insnEip);
  }

  /** The instruction raised excVec/excErr: restore EIP to it and deliver. */
  private fault(): void {
    if (this.exitPending) {
      // a #VMEXIT raised inside an instruction or an event delivery: RIP is that instruction
      this.exitPending = false;
      this.eip = this.insnEip;
      vmexitNow(this, this.insnEip);
      return;
    }
    const vec = this.excVec, err = this.excErr;
    this.eip = this.insnEip;
    this.stats.exceptions++;
    this.cycles += extraCosts.exception.cycles;
    if (this.guest) { guestException(this, vec, err); return; }
    if (vec === 14) this.cr2 = this.pfAddr;
    if (this.host !== null) {
      this.delivering = -1;
      this.hostTrap(TRAP_EXCEPTION, vec, err, this.insnEip);
      return;
    }
    this.deliverWithDoubleFault(vec, err);
  }

  /**
   * Delivers an event to software: to the host handler in host mode, else through the IDT/IVT.
   * `nextEip` is the EIP pushed for traps and software interrupts.
   */
  dispatch(vec: number, type: number, err: number): void {
    if (this.guest) { guestDispatch(this, vec, type, err); return; }
    if (this.host !== null) {
      this.hostTrap(type === EV_EXCEPTION ? TRAP_EXCEPTION : type === EV_EXTERNAL || type === EV_NMI ? TRAP_INTERRUPT : TRAP_SOFTINT, vec, err, this.eip);
      return;
    }
    deliverEvent(this, vec, type, err);
  }

  /** Calls the host's handler with the trap record. */
  hostTrap(kind: number, vec: number, err: number, eip: number): void {
    const t = this.trapRec;
    t.kind = kind; t.vector = vec; t.errorCode = err; t.cr2 = this.cr2; t.eip = eip >>> 0;
    this.host!.trap(this, t);
    this.stopAt = 0;
  }

  /** Exception delivery with the double-fault and triple-fault rules of the 386. */
  private deliverWithDoubleFault(vec: number, err: number): void {
    this.delivering = vec;
    for (;;) {
      try {
        deliverEvent(this, vec, EV_EXCEPTION, err);
        this.delivering = -1;
        return;
      } catch (e) {
        if (e !== FAULT) throw e;
        const second = this.excVec, first = vec;
        if (second === 14) this.cr2 = this.pfAddr; // CR2 is written when a #PF is detected, even one that becomes #DF
        if (first === 8) { this.shutdown(`triple fault (exception ${second} while delivering a double fault)`); return; }
        if (isDoubleFault(first, second)) { vec = 8; err = 0; }
        else { vec = second; err = this.excErr; }
        this.delivering = vec;
      }
    }
  }

  /** Enters the shutdown state (triple fault). */
  shutdown(reason: string): void {
    if (this.guest && guestShutdown(this)) return; // #VMEXIT(SHUTDOWN) when the VMM intercepts it
    this.state = SHUTDOWN;
    this.shutdownReason = `${reason} at eip ${this.insnEip.toString(16).padStart(8, '0')}`;
    this.stopAt = 0;
    this.delivering = -1;
    if (this.onShutdown) this.onShutdown(this, this.shutdownReason);
  }

  /** Counts an opcode we do not implement and raises #UD. */
  unimplementedOpcode(opcode: number): never {
    this.unimplemented.set(opcode, (this.unimplemented.get(opcode) ?? 0) + 1);
    return this.raise(6);
  }

}

export { isDoubleFault };
