/**
 * Shadow paging (no nested paging): the guest runs on page tables the VMM builds in host memory
 * (the shadow tables), derived on demand from the guest's own 2-level tables. Two strategies
 * share this engine:
 *
 * - 'shadow' (this file's factory, Palacios' default): a virtual TLB. Shadow entries are filled
 *   one at a time on #PF and thrown away on every CR3 write; INVLPG drops the one entry.
 * - 'shadow-cache' (shadow-cache.ts): shadow tables are kept across CR3 switches in a cache
 *   keyed by the guest page-table page they were derived from; those guest pages are
 *   write-protected in the shadow, so a guest write to one faults, and the shadow tables derived
 *   from it are then marked out of sync (the page is unprotected and the write goes ahead); an
 *   out-of-sync table is dropped at the next CR3 write, and INVLPG drops the one entry as above,
 *   so the guest's edit is seen exactly when x86 says it must be (after INVLPG or a CR3 reload).
 *
 * What the guest sees. The mode intercepts CR0/CR3/CR4 reads and writes (MOV CRn through the
 * decode assist; CLTS and the register forms of SMSW/LMSW by decoding the instruction), INVLPG,
 * #PF and task switches. The guest reads its own CR0/CR3/CR4 (guestCr); the VMCB holds the real
 * ones: CR0 | PG | WP (a paging-off guest runs on a passthrough table, identity gpa -> hpa), CR3 =
 * the shadow root, CR4 = the guest's TSD/DE/PGE/PCE | PSE (the shadow may use 4 MiB pages) | PAE
 * when the guest pages with PAE (the shadow tables then have the PAE format too).
 *
 * Filling (a #PF exit). The mode walks the guest's tables in software exactly as the core's
 * walk (hw/cpu/paging.ts walk32, walkPae) does: a not-present entry, a user access to a
 * supervisor page, a write to a read-only page (user, or supervisor with the guest's CR0.WP), a
 * fetch from an NX page or a reserved bit (PAE) is reflected into the guest as #PF with the
 * error code and CR2 the core would have given (combined with an event
 * being delivered by the double-fault rules); otherwise it sets the guest's accessed bits (and
 * dirty for a write) as the walk would, and writes one shadow entry: guest-physical g is
 * host-physical ramBase + g; a page outside RAM is not filled and the exit is 'mmio'. A clean
 * page (D = 0) is mapped read-only, so the first write faults and sets D. With the guest's
 * CR0.WP = 0 a supervisor write to a read-only page is allowed: the shadow maps that page
 * writable but supervisor-only, until a user access maps it back user-readable (as KVM does).
 * Global pages keep G in the shadow (with the guest's CR4.PGE), and a CR3 write then flushes only
 * the ASID's non-global TLB entries (TLB_CONTROL 7). A guest 4 MiB page (CR4.PSE) is mapped by a
 * 4 MiB shadow page when its host frame is 4 MiB aligned and wholly RAM (virtual TLB only), else
 * split into 4 KiB shadow entries filled one at a time.
 *
 * PAE guests. The guest's four PDPTEs are loaded when it writes CR3, enables paging with PAE or
 * changes CR4's paging bits with PAE on (#GP(0) on reserved bits, as the core's MOV CR does);
 * the shadow root is then a PDPT rebuilt at each CR3 write, pointing at shadow page directories
 * derived from the guest's (shared and, for 'shadow-cache', cached by the guest directory page);
 * 2 MiB guest pages become 2 MiB shadow pages where the host frame is 2 MiB aligned (virtual TLB
 * only), else split; with EFER.NXE (not intercepted: the core runs with the guest's EFER) bit 63
 * of the guest entries becomes NX in the shadow leaf; a guest entry with bit 63 and no NXE is a
 * reserved-bit fault, so no shadow entry disagrees with the guest's EFER after it changes.
 *
 * TLB. Shadow changes that remove or narrow a mapping the core may have cached (INVLPG, a root
 * switch, a dropped table, write protection) request a flush of this ASID through the VMCB's
 * TLB_CONTROL (mode.ts: the run loop clears it after each exit). Widening a mapping (filling a
 * not-present entry, granting write once D is set) needs none: the core re-walks before
 * faulting.
 *
 * Not supported (each a clean 'unhandled' exit or setup() = false, with a counter naming it):
 * real-mode guests ('shadow.unsupported.realMode'), hardware task switches
 * ('shadow.unsupported.taskSwitch': they would load the guest's CR3 into the core), SMSW/LMSW
 * with a memory operand
 * ('shadow.unsupported.msw'), and a #PF during delivery of a #DF (a triple fault,
 * 'shadow.tripleFault'). An event whose delivery a reflected #PF interrupts is dropped when it
 * is not an exception (an external interrupt acknowledged before the fault).
 *
 * Costs: shadow-costs.ts, plus one reference (chargeRefs) per guest entry read or written, per
 * shadow entry written and per word of a shadow page zeroed or scanned.
 */
import { isDoubleFault } from '../../hw/cpu/exceptions.ts';
import {
  EVT_EXCEPTION, EVT_V, EXIT_CR0_READ, EXIT_CR0_WRITE, EXIT_EXCP_BASE, EXIT_INVLPG, EXIT_TASK_SWITCH, IC3_INVLPG,
  IC3_TASK_SWITCH, VMCB_CR0, VMCB_CR3, VMCB_CR4, VMCB_CR_INTERCEPTS, VMCB_CS, VMCB_EXC_INTERCEPTS, VMCB_EXITINFO1,
  VMCB_EFER, VMCB_EXITINFO2, VMCB_EXITINTINFO, VMCB_INTERCEPTS3, VMCB_NP_CONTROL, VMCB_NRIP, VMCB_RIP, VMCB_TLB_CONTROL, VmcbView,
} from '../../hw/cpu/vmcb.ts';
import type { PagingContext, PagingMode, PagingModeFactory, PagingOutcome } from './mode.ts';
import { shadowCosts as K } from './shadow-costs.ts';

// page-table entry bits (2-level)
const P = 1, W = 2, U = 4, A = 0x20, D = 0x40, PS = 0x80, G = 0x100;
// control-register bits
const CR0_PE = 1, CR0_MP = 2, CR0_EM = 4, CR0_TS = 8, CR0_ET = 0x10, CR0_NE = 0x20, CR0_WP = 0x10000, CR0_AM = 0x40000;
const CR0_NW = 0x20000000, CR0_CD = 0x40000000, CR0_PG = 0x80000000;
const CR0_BITS = CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | CR0_AM | CR0_NW | CR0_CD | CR0_PG;
const CR4_TSD = 1 << 2, CR4_DE = 1 << 3, CR4_PSE = 1 << 4, CR4_PAE = 1 << 5, CR4_PGE = 1 << 7, CR4_PCE = 1 << 8;
const CR4_VALID = CR4_TSD | CR4_DE | CR4_PSE | CR4_PAE | CR4_PGE | CR4_PCE;
// #PF error code
const PF_P = 1, PF_W = 2, PF_U = 4, PF_RSVD = 8, PF_ID = 16;
const EXIT_PF = EXIT_EXCP_BASE + 14;
const FLUSH_ASID = 3, FLUSH_NONGLOBAL = 7;
const LARGE = 0x400000, LARGE_PAE = 0x200000;
const EFER_NXE = 0x800;
const MIN_TABLES = 24;
const ZERO_PAGE = new Uint8Array(4096);

export interface ShadowOptions {
  /** Keep shadow tables across CR3 switches, write-protecting the guest's page tables ('shadow-cache'). */
  readonly cache: boolean;
  /** Map guest 4 MiB pages with 4 MiB shadow pages where the host allows (virtual TLB only). Default true. */
  readonly largePages?: boolean;
  /** Cache mode: at most this many shadow tables (at least 24); beyond it the whole cache is dropped. Default 256. */
  readonly maxTables?: number;
}

/** A shadow page table (or directory) in host memory, and what it was derived from. */
interface ShadowTable {
  readonly hpa: number;
  readonly key: string;
  /** Guest-physical page number of the guest table it was derived from, or -1 (passthrough). */
  readonly src: number;
  /** Cache mode: the source page is write-protected and the table is current. Else it is dropped at the next CR3 write. */
  synced: boolean;
  /** A directory (a root, or a PAE page directory) rather than a page table. */
  readonly dir: boolean;
  /** PAE format: 8-byte entries (512 of them; 4 in a PAE root, the shadow PDPT). */
  readonly pae: boolean;
  readonly entries: number;
  /** Host-physical addresses of the shadow directory entries that point at this table. */
  readonly parents: Set<number>;
}

/** The guest's translation of one address (guestWalk). */
interface GuestWalk {
  /** -1, or the #PF error code the guest would get. */
  fault: number;
  /** Guest-physical page (4 KiB aligned) of the address. */
  gpa: number;
  w: boolean; u: boolean; g: boolean;
  /** The final entry's D bit (after this walk's update). */
  dirty: boolean;
  /** Mapped by a guest 4 MiB page (or paging is off): `largeGpa` is its base. */
  large: boolean; largeGpa: number;
  /** Guest-physical addresses of the directory and of the page table (-1 when none). */
  pdGpa: number; ptGpa: number;
  /** The directory entry's W and U bits, and 8 for its NX (part of a shadow table's identity). */
  pdePerm: number;
  /** PAE with EFER.NXE: not executable. */
  nx: boolean;
}

const u32 = (v: number): number => v >>> 0;
const hex = (v: number): string => `0x${u32(v).toString(16)}`;

export class ShadowPaging implements PagingMode {
  readonly name: string;
  readonly exitCodes: readonly number[] = [
    EXIT_CR0_READ, EXIT_CR0_READ + 3, EXIT_CR0_READ + 4, EXIT_CR0_WRITE, EXIT_CR0_WRITE + 3, EXIT_CR0_WRITE + 4,
    EXIT_INVLPG, EXIT_PF, EXIT_TASK_SWITCH,
  ];
  private readonly cache: boolean;
  private readonly largePages: boolean;
  private readonly maxTables: number;
  private gcr0 = 0; private gcr3 = 0; private gcr4 = 0;
  private root: ShadowTable | null = null;
  private readonly tables = new Map<string, ShadowTable>();
  private readonly byHpa = new Map<number, ShadowTable>();
  private readonly bySrc = new Map<number, Set<ShadowTable>>();
  /** Cache mode: guest pages with synced shadow tables derived from them (write-protected). */
  private readonly protectedPages = new Set<number>();
  /** Cache mode: guest pages whose derived tables are out of sync (until the next CR3 write). */
  private readonly unsyncPages = new Set<number>();
  /** Cache mode: writable 4 KiB shadow entries by the guest page they map (to write-protect it). */
  private readonly rmap = new Map<number, Set<number>>();
  private readonly free: number[] = [];
  private readonly owned: number[] = [];
  private flushReq = 0;
  private refs = 0;
  private readonly gw: GuestWalk = { fault: -1, gpa: 0, w: false, u: false, g: false, dirty: false, large: false, largeGpa: 0, pdGpa: -1, ptGpa: -1, pdePerm: 0, nx: false };
  /** The guest's PDPTEs (lo, hi pairs), loaded when the guest writes CR3 or enables PAE paging, as the core does. */
  private readonly gpdpte = new Int32Array(8);
  /** The guest's EFER (NXE) as of this exit (EFER is not intercepted: the VMCB holds the guest's). */
  private nxe = false;

  constructor(name: string, o: ShadowOptions) {
    this.name = name;
    this.cache = o.cache;
    this.largePages = o.largePages ?? true;
    // one instruction may need a dozen tables (code, data and stack pages, descriptor tables, each
    // with a directory under PAE): below that, evicting the whole cache could livelock
    this.maxTables = Math.max(MIN_TABLES, o.maxTables ?? 256);
  }

  guestCr(n: 0 | 3 | 4): number { return n === 0 ? this.gcr0 : n === 3 ? this.gcr3 : this.gcr4; }

  /** Number of shadow tables in use (tests, statistics). */
  get tableCount(): number { return this.tables.size; }

  setup(ctx: PagingContext): boolean {
    const v = new VmcbView(ctx.mem, ctx.vmcb);
    this.gcr0 = v.u32(VMCB_CR0); this.gcr3 = v.u32(VMCB_CR3); this.gcr4 = v.u32(VMCB_CR4);
    if ((this.gcr0 & CR0_PE) === 0) { ctx.count('shadow.unsupported.realMode'); return false; }
    this.nxe = (v.u32(VMCB_EFER) & EFER_NXE) !== 0;
    if (this.pae && !this.loadPdptes(ctx)) { ctx.count('shadow.badPdpte'); return false; }
    v.w32(VMCB_CR_INTERCEPTS, v.u32(VMCB_CR_INTERCEPTS) | 0x19 | (0x19 << 16)); // CR0, CR3, CR4 reads and writes
    v.w32(VMCB_INTERCEPTS3, v.u32(VMCB_INTERCEPTS3) | IC3_INVLPG | IC3_TASK_SWITCH);
    v.w32(VMCB_EXC_INTERCEPTS, v.u32(VMCB_EXC_INTERCEPTS) | (1 << 14));
    v.w32(VMCB_NP_CONTROL, v.u32(VMCB_NP_CONTROL) & ~1);
    this.refs = 0;
    if (!this.switchRoot(ctx)) return false;
    this.writeRealCrs(v);
    if (v.u8(VMCB_TLB_CONTROL) === 0) v.w8(VMCB_TLB_CONTROL, FLUSH_ASID); // keep a stronger flush the run loop asked for
    ctx.chargeRefs(this.refs); this.refs = 0;
    return true;
  }

  release(ctx: PagingContext): void {
    this.dropAll();
    for (const hpa of this.owned) ctx.freePages(hpa, 1);
    this.owned.length = 0; this.free.length = 0;
    this.root = null;
  }

  translate(ctx: PagingContext, gva: number, write: boolean): number {
    const g = this.guestPhys(ctx, gva, write);
    return g < 0 || g >= ctx.ramSize ? -1 : ctx.ramBase + g;
  }

  guestPhys(ctx: PagingContext, gva: number, write: boolean): number {
    const gw = this.guestWalk(ctx, u32(gva), write, false, false);
    return gw.fault >= 0 ? -1 : gw.gpa + (gva & 0xfff);
  }

  handleExit(ctx: PagingContext, exitCode: number): PagingOutcome {
    const v = new VmcbView(ctx.mem, ctx.vmcb);
    this.flushReq = 0;
    this.refs = 0;
    this.nxe = (v.u32(VMCB_EFER) & EFER_NXE) !== 0;
    v.w8(VMCB_TLB_CONTROL, 0);
    let out: PagingOutcome;
    if (exitCode === EXIT_PF) out = this.pageFault(ctx, v);
    else if (exitCode === EXIT_INVLPG) out = this.invlpg(ctx, v);
    else if (exitCode === EXIT_TASK_SWITCH) { ctx.count('shadow.unsupported.taskSwitch'); out = 'unhandled'; }
    else if (exitCode >= EXIT_CR0_READ && exitCode <= EXIT_CR0_READ + 4) out = this.crRead(ctx, v, exitCode - EXIT_CR0_READ);
    else if (exitCode >= EXIT_CR0_WRITE && exitCode <= EXIT_CR0_WRITE + 4) out = this.crWrite(ctx, v, exitCode - EXIT_CR0_WRITE);
    else out = 'unhandled';
    if (this.flushReq !== 0) {
      v.w8(VMCB_TLB_CONTROL, this.flushReq);
      ctx.count('shadow.tlbFlush');
    }
    if (this.refs > 0) ctx.chargeRefs(this.refs);
    return out;
  }

  // ------------------------------------------------------------------ control registers

  private writeRealCrs(v: VmcbView): void {
    v.w64hl(VMCB_CR0, u32(this.gcr0 | CR0_PG | CR0_WP | CR0_PE), 0);
    v.w64hl(VMCB_CR4, u32((this.gcr4 & (CR4_TSD | CR4_DE | CR4_PGE | CR4_PCE)) | CR4_PSE | (this.pae ? CR4_PAE : 0)), 0);
    v.w64hl(VMCB_CR3, this.root!.hpa, 0);
  }

  private get paging(): boolean { return (this.gcr0 & CR0_PG) !== 0; }
  /** The guest uses PAE paging (and so does the shadow). */
  private get pae(): boolean { return (this.gcr0 & CR0_PG) !== 0 && (this.gcr4 & CR4_PAE) !== 0; }

  private crRead(ctx: PagingContext, v: VmcbView, n: number): PagingOutcome {
    ctx.charge(K.crAccess.cycles);
    ctx.count('shadow.crRead');
    const val = n === 0 ? this.gcr0 : n === 3 ? this.gcr3 : this.gcr4;
    if ((v.hi32(VMCB_EXITINFO1) & 0x80000000) !== 0) {
      if (!ctx.writeGpr) { ctx.count('shadow.noGprAccess'); return 'unhandled'; }
      ctx.writeGpr(v.u32(VMCB_EXITINFO1) & 7, val);
    } else {
      // SMSW (the only other CR0 read)
      const ins = this.decodeMsw(ctx, v);
      if (ins === null || ins.op !== 'smsw' || !ctx.readGpr || !ctx.writeGpr) { ctx.count('shadow.unsupported.msw'); return 'unhandled'; }
      ctx.writeGpr(ins.rm, ins.op16 ? (ctx.readGpr(ins.rm) & 0xffff0000) | (val & 0xffff) : val);
    }
    v.w64hl(VMCB_RIP, v.u32(VMCB_NRIP), 0);
    return 'handled';
  }

  private crWrite(ctx: PagingContext, v: VmcbView, n: number): PagingOutcome {
    ctx.charge(K.crAccess.cycles);
    ctx.count('shadow.crWrite');
    let val: number;
    if ((v.hi32(VMCB_EXITINFO1) & 0x80000000) !== 0) {
      if (!ctx.readGpr) { ctx.count('shadow.noGprAccess'); return 'unhandled'; }
      val = u32(ctx.readGpr(v.u32(VMCB_EXITINFO1) & 7));
    } else {
      // CLTS or LMSW (CR0 only)
      const ins = this.decodeMsw(ctx, v);
      if (ins === null || ins.op === 'smsw' || (ins.op === 'lmsw' && !ctx.readGpr)) { ctx.count('shadow.unsupported.msw'); return 'unhandled'; }
      if (ins.op === 'clts') val = this.gcr0 & ~CR0_TS;
      else {
        const src = ctx.readGpr!(ins.rm) & 0xffff;
        val = (this.gcr0 & ~(CR0_MP | CR0_EM | CR0_TS)) | (src & (CR0_PE | CR0_MP | CR0_EM | CR0_TS));
      }
    }
    const r = n === 0 ? this.writeCr0(ctx, v, val) : n === 3 ? this.writeCr3(ctx, v, val) : this.writeCr4(ctx, v, val);
    if (r === 'gp') { ctx.injectException(13, 0); return 'handled'; }
    if (r !== 'handled') return r;
    v.w64hl(VMCB_RIP, v.u32(VMCB_NRIP), 0);
    return 'handled';
  }

  private writeCr0(ctx: PagingContext, v: VmcbView, val: number): PagingOutcome | 'gp' {
    val = u32((val & CR0_BITS) | CR0_ET);
    if ((val & CR0_PG) !== 0 && (val & CR0_PE) === 0) return 'gp';
    if ((val & CR0_NW) !== 0 && (val & CR0_CD) === 0) return 'gp';
    if ((val & CR0_PE) === 0) { ctx.count('shadow.unsupported.realMode'); return 'unhandled'; }
    const changed = this.gcr0 ^ val;
    const old = this.gcr0;
    this.gcr0 = val;
    // enabling paging under PAE loads the PDPTEs (#GP(0) on reserved bits, CR0 unchanged)
    if ((changed & CR0_PG) !== 0 && this.pae && !this.loadPdptes(ctx)) { this.gcr0 = old; return 'gp'; }
    if ((changed & (CR0_PG | CR0_WP)) !== 0 && !this.reset(ctx)) return this.noMemory(ctx);
    this.writeRealCrs(v);
    return 'handled';
  }

  private writeCr3(ctx: PagingContext, v: VmcbView, val: number): PagingOutcome | 'gp' {
    const old = this.gcr3;
    this.gcr3 = val;
    if (this.pae && !this.loadPdptes(ctx)) { this.gcr3 = old; return 'gp'; }
    if (this.paging) {
      if (!this.switchRoot(ctx)) return this.noMemory(ctx);
      this.flush((this.gcr4 & CR4_PGE) !== 0 ? FLUSH_NONGLOBAL : FLUSH_ASID);
    }
    this.writeRealCrs(v);
    return 'handled';
  }

  private writeCr4(ctx: PagingContext, v: VmcbView, val: number): PagingOutcome | 'gp' {
    val = u32(val);
    if ((val & ~CR4_VALID) !== 0) return 'gp';
    const changed = this.gcr4 ^ val;
    const old = this.gcr4;
    this.gcr4 = val;
    // with paging on, a change that leaves PAE on reloads the PDPTEs (as the core's MOV CR4)
    if (this.pae && (changed & (CR4_PGE | CR4_PAE | CR4_PSE)) !== 0 && !this.loadPdptes(ctx)) { this.gcr4 = old; return 'gp'; }
    if ((changed & (CR4_PSE | CR4_PGE | CR4_PAE)) !== 0 && !this.reset(ctx)) return this.noMemory(ctx);
    this.writeRealCrs(v);
    return 'handled';
  }

  /** CLTS, SMSW or LMSW at the guest's RIP (register forms only), or null. */
  private decodeMsw(ctx: PagingContext, v: VmcbView): { op: 'clts' | 'smsw' | 'lmsw'; rm: number; op16: boolean } | null {
    const csBase = v.u32(VMCB_CS + 8);
    const code32 = (v.u16(VMCB_CS + 2) & 0x400) !== 0;
    let eip = v.u32(VMCB_RIP);
    let opsz = false;
    const byte = (): number => {
      const hpa = this.translate(ctx, u32(csBase + eip), false);
      eip++;
      return hpa < 0 ? -1 : ctx.mem.read(hpa, 1);
    };
    let b = byte();
    for (let k = 0; k < 14 && [0x66, 0x67, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0xf0, 0xf2, 0xf3].includes(b); k++) {
      if (b === 0x66) opsz = true;
      b = byte();
    }
    if (b !== 0x0f) return null;
    b = byte();
    if (b === 0x06) return { op: 'clts', rm: 0, op16: false };
    if (b !== 0x01) return null;
    const m = byte();
    if (m < 0 || (m >>> 6) !== 3) return null;
    const reg = (m >>> 3) & 7;
    if (reg !== 4 && reg !== 6) return null;
    return { op: reg === 4 ? 'smsw' : 'lmsw', rm: m & 7, op16: code32 === opsz };
  }

  // ------------------------------------------------------------------ INVLPG and #PF

  private invlpg(ctx: PagingContext, v: VmcbView): PagingOutcome {
    ctx.charge(K.invlpg.cycles);
    ctx.count('shadow.invlpg');
    const gva = v.u32(VMCB_EXITINFO1);
    const root = this.root!;
    let pdeAddr: number;
    if (this.pae) {
      const pdpte = ctx.mem.read(root.hpa + (gva >>> 30) * 8, 4);
      this.refs++;
      pdeAddr = (pdpte & P) !== 0 ? u32(pdpte & 0xfffff000) + ((gva >>> 21) & 0x1ff) * 8 : -1;
    } else pdeAddr = root.hpa + (gva >>> 22) * 4;
    const pde = pdeAddr < 0 ? 0 : ctx.mem.read(pdeAddr, 4);
    this.refs++;
    if ((pde & P) !== 0) {
      if ((pde & PS) !== 0) this.setPde(ctx, pdeAddr, 0);
      else if (this.pae) this.setPte(ctx, u32(pde & 0xfffff000) + ((gva >>> 12) & 0x1ff) * 8, 0);
      else this.setPte(ctx, u32(pde & 0xfffff000) + ((gva >>> 12) & 0x3ff) * 4, 0);
    }
    // the core may hold the page (also a global one the shadow no longer has): flush
    this.flush(FLUSH_ASID);
    v.w64hl(VMCB_RIP, v.u32(VMCB_NRIP), 0);
    return 'handled';
  }

  private pageFault(ctx: PagingContext, v: VmcbView): PagingOutcome {
    ctx.charge(K.pageFault.cycles);
    const err = v.u32(VMCB_EXITINFO1), gva = v.u32(VMCB_EXITINFO2);
    const write = (err & PF_W) !== 0, user = (err & PF_U) !== 0, fetch = (err & PF_ID) !== 0;
    const gw = this.guestWalk(ctx, gva, write, user, true, fetch);
    if (gw.fault >= 0) return this.reflect(ctx, v, gw.fault, gva);
    if (gw.gpa >= ctx.ramSize) { ctx.count('shadow.mmio'); return 'mmio'; }
    if ((err & PF_P) !== 0) ctx.count('shadow.wpFault'); // present in the shadow: dirty tracking, protection or WP = 0
    if (this.cache && write && this.protectedPages.has(gw.gpa >>> 12)) this.unsync(ctx, gw.gpa >>> 12);
    if (!this.fill(ctx, gva, gw, write, user)) return this.noMemory(ctx);
    ctx.count('shadow.fill');
    return 'handled';
  }

  /** Reflects a guest #PF, combined with an exception whose delivery it interrupted. */
  private reflect(ctx: PagingContext, v: VmcbView, err: number, gva: number): PagingOutcome {
    ctx.charge(K.reflect.cycles);
    const ii = v.u32(VMCB_EXITINTINFO);
    if ((ii & EVT_V) !== 0 && ((ii >>> 8) & 7) === EVT_EXCEPTION) {
      const first = ii & 0xff;
      if (first === 8) { ctx.count('shadow.tripleFault'); return 'unhandled'; }
      if (isDoubleFault(first, 14)) { ctx.count('shadow.guestDf'); ctx.injectException(8, 0); return 'handled'; }
    }
    ctx.count('shadow.guestPf');
    ctx.injectException(14, err, gva);
    return 'handled';
  }

  private noMemory(ctx: PagingContext): PagingOutcome {
    ctx.count('shadow.noMemory');
    return 'unhandled';
  }

  /** Reads a guest-physical dword (outside RAM: all ones, as unbacked memory reads). */
  private gread(ctx: PagingContext, gpa: number): number {
    this.refs++;
    return gpa + 4 <= ctx.ramSize ? ctx.mem.read(ctx.ramBase + gpa, 4) : 0xffffffff;
  }

  private gwrite(ctx: PagingContext, gpa: number, val: number): void {
    this.refs++;
    if (gpa + 4 <= ctx.ramSize) ctx.mem.write(ctx.ramBase + gpa, 4, u32(val));
  }

  /** The guest's walk for `gva` (hw/cpu/paging.ts walk32's order and checks); `update` writes A/D. */
  private guestWalk(ctx: PagingContext, gva: number, write: boolean, user: boolean, update: boolean, fetch = false): GuestWalk {
    const r = this.gw;
    r.fault = -1; r.pdGpa = -1; r.ptGpa = -1; r.nx = false;
    if (!this.paging) {
      r.gpa = u32(gva & 0xfffff000); r.w = true; r.u = true; r.g = false; r.dirty = true;
      r.large = true; r.largeGpa = u32(gva & 0xffc00000); r.pdePerm = W | U;
      return r;
    }
    if (this.pae) return this.guestWalkPae(ctx, gva, write, user, update, fetch);
    const base = (write ? PF_W : 0) | (user ? PF_U : 0);
    const wp = (this.gcr0 & CR0_WP) !== 0, pge = (this.gcr4 & CR4_PGE) !== 0;
    const allowed = (w: boolean, u: boolean): boolean => !(user && !u) && !(write && !w && (user || wp));
    r.pdGpa = u32(this.gcr3 & 0xfffff000);
    const pdeG = r.pdGpa + (gva >>> 22) * 4;
    const pde = this.gread(ctx, pdeG);
    if ((pde & P) === 0) { r.fault = base; return r; }
    r.pdePerm = pde & (W | U);
    if ((pde & PS) !== 0 && (this.gcr4 & CR4_PSE) !== 0) {
      const w = (pde & W) !== 0, u = (pde & U) !== 0;
      if (!allowed(w, u)) { r.fault = base | PF_P; return r; }
      let upd = pde | A;
      if (write) upd |= D;
      if (update && upd !== pde) this.gwrite(ctx, pdeG, upd);
      r.w = w; r.u = u; r.g = pge && (pde & G) !== 0; r.dirty = (upd & D) !== 0;
      r.large = true; r.largeGpa = u32(pde & 0xffc00000);
      r.gpa = u32(r.largeGpa | (gva & 0x003ff000));
      return r;
    }
    r.ptGpa = u32(pde & 0xfffff000);
    const pteG = r.ptGpa + ((gva >>> 12) & 0x3ff) * 4;
    const pte = this.gread(ctx, pteG);
    if ((pte & P) === 0) { r.fault = base; return r; }
    const w = (pde & pte & W) !== 0, u = (pde & pte & U) !== 0;
    if (!allowed(w, u)) { r.fault = base | PF_P; return r; }
    if (update && (pde & A) === 0) this.gwrite(ctx, pdeG, pde | A);
    let upd = pte | A;
    if (write) upd |= D;
    if (update && upd !== pte) this.gwrite(ctx, pteG, upd);
    r.w = w; r.u = u; r.g = pge && (pte & G) !== 0; r.dirty = (upd & D) !== 0;
    r.large = false; r.largeGpa = 0;
    r.gpa = u32(pte & 0xfffff000);
    return r;
  }

  /**
   * The PAE walk (hw/cpu/paging.ts walkPae without nested paging): the PDPTEs are the registers
   * loaded at the guest's CR3 write; reserved bits (62:36, 63 without EFER.NXE, 20:13 of a 2 MiB
   * entry) fault with RSVD; a table above 4 GiB reads all ones (a reserved-bit fault); a page
   * above 4 GiB is outside RAM (gpa = 2^32: 'mmio').
   */
  private guestWalkPae(ctx: PagingContext, gva: number, write: boolean, user: boolean, update: boolean, fetch: boolean): GuestWalk {
    const r = this.gw;
    const nxe = this.nxe;
    const base = (write ? PF_W : 0) | (user ? PF_U : 0) | (fetch && nxe ? PF_ID : 0);
    const wp = (this.gcr0 & CR0_WP) !== 0, pge = (this.gcr4 & CR4_PGE) !== 0;
    const allowed = (w: boolean, u: boolean, nx: boolean): boolean =>
      !(user && !u) && !(write && !w && (user || wp)) && !(fetch && nx);
    const rsvd = nxe ? 0x7ffffff0 : 0xfffffff0;
    const i = gva >>> 30;
    const lo = this.gpdpte[2 * i], hi = this.gpdpte[2 * i + 1];
    if ((lo & P) === 0) { r.fault = base; return r; }
    if ((hi & 0xf) !== 0) { r.fault = base | PF_P | PF_RSVD; return r; }
    r.pdGpa = u32(lo & 0xfffff000);
    const pdeG = r.pdGpa + ((gva >>> 21) & 0x1ff) * 8;
    const pde = this.gread(ctx, pdeG), pdeHi = this.gread(ctx, pdeG + 4);
    this.refs--; // one reference per 8-byte entry
    if ((pde & P) === 0) { r.fault = base; return r; }
    if ((pdeHi & rsvd) !== 0) { r.fault = base | PF_P | PF_RSVD; return r; }
    const nx1 = nxe && (pdeHi & 0x80000000) !== 0;
    r.pdePerm = (pde & (W | U)) | (nx1 ? 8 : 0);
    if ((pde & PS) !== 0) {
      if ((pde & 0x001fe000) !== 0) { r.fault = base | PF_P | PF_RSVD; return r; }
      const w = (pde & W) !== 0, u = (pde & U) !== 0;
      if (!allowed(w, u, nx1)) { r.fault = base | PF_P; return r; }
      let upd = pde | A;
      if (write) upd |= D;
      if (update && upd !== pde) this.gwrite(ctx, pdeG, upd);
      r.w = w; r.u = u; r.g = pge && (pde & G) !== 0; r.dirty = (upd & D) !== 0; r.nx = nx1;
      r.large = true; r.largeGpa = (pdeHi & 0xf) !== 0 ? 0x100000000 : u32(pde & 0xffe00000);
      r.gpa = r.largeGpa + (gva & 0x001ff000);
      return r;
    }
    if ((pdeHi & 0xf) !== 0) { r.fault = base | PF_P | PF_RSVD; return r; }
    r.ptGpa = u32(pde & 0xfffff000);
    const pteG = r.ptGpa + ((gva >>> 12) & 0x1ff) * 8;
    const pte = this.gread(ctx, pteG), pteHi = this.gread(ctx, pteG + 4);
    this.refs--;
    if ((pte & P) === 0) { r.fault = base; return r; }
    if ((pteHi & rsvd) !== 0) { r.fault = base | PF_P | PF_RSVD; return r; }
    const nx = nx1 || (nxe && (pteHi & 0x80000000) !== 0);
    const w = (pde & pte & W) !== 0, u = (pde & pte & U) !== 0;
    if (!allowed(w, u, nx)) { r.fault = base | PF_P; return r; }
    if (update && (pde & A) === 0) this.gwrite(ctx, pdeG, pde | A);
    let upd = pte | A;
    if (write) upd |= D;
    if (update && upd !== pte) this.gwrite(ctx, pteG, upd);
    r.w = w; r.u = u; r.g = pge && (pte & G) !== 0; r.dirty = (upd & D) !== 0; r.nx = nx;
    r.large = false; r.largeGpa = 0;
    r.gpa = (pteHi & 0xf) !== 0 ? 0x100000000 : u32(pte & 0xfffff000);
    return r;
  }

  /** Loads the guest's PDPTEs from its CR3 (a guest-physical table); false on reserved bits (#GP). */
  private loadPdptes(ctx: PagingContext): boolean {
    const base = u32(this.gcr3 & 0xffffffe0);
    const t = new Int32Array(8);
    for (let i = 0; i < 4; i++) {
      const lo = this.gread(ctx, base + i * 8), hi = this.gread(ctx, base + i * 8 + 4);
      if ((lo & P) !== 0 && ((lo & 0x1e6) !== 0 || (hi & 0xfffffff0) !== 0)) return false;
      t[2 * i] = lo; t[2 * i + 1] = hi;
    }
    this.gpdpte.set(t);
    return true;
  }

  // ------------------------------------------------------------------ the shadow tables

  private flush(kind: number): void {
    if (this.flushReq !== FLUSH_ASID) this.flushReq = kind;
  }

  /** Writes one shadow entry for `gva` from the guest's translation. False: no host memory. */
  private fill(ctx: PagingContext, gva: number, gw: GuestWalk, write: boolean, user: boolean): boolean {
    ctx.charge(K.fill.cycles);
    if (this.cache && this.tables.size + 3 > this.maxTables) {
      ctx.count('shadow.cacheEvict');
      if (!this.reset(ctx)) return false;
    }
    const root = this.root!;
    let w = gw.w && gw.dirty, u = gw.u;
    if (!gw.w && write && !user && (this.gcr0 & CR0_WP) === 0) { w = true; u = false; } // CR0.WP = 0
    if (this.cache && w && this.protectedPages.has(gw.gpa >>> 12)) w = false;
    const flags = P | A | D | (w ? W : 0) | (u ? U : 0) | (gw.g ? G : 0);
    if (this.pae) return this.fillPae(ctx, gva, gw, write, user, w, flags);
    const pdeAddr = root.hpa + (gva >>> 22) * 4;
    const largeHpa = ctx.ramBase + gw.largeGpa;
    if (gw.large && this.largePages && (!this.cache || !this.paging) && largeHpa % LARGE === 0 && gw.largeGpa + LARGE <= ctx.ramSize) {
      this.setPde(ctx, pdeAddr, u32(largeHpa | flags | PS));
      return true;
    }
    const key = !this.paging ? `P${gw.largeGpa >>> 22}`
      : gw.large ? `L${gw.largeGpa >>> 22}:${gw.pdePerm}:${gw.g ? 1 : 0}:${gw.pdGpa >>> 12}`
        : `T${gw.ptGpa >>> 12}:${gw.pdePerm}`;
    let spt = this.tables.get(key);
    if (spt === undefined) {
      if (this.cache) { ctx.charge(K.cacheLookup.cycles); ctx.count('shadow.cacheMiss'); }
      const src = !this.paging ? -1 : gw.large ? gw.pdGpa >>> 12 : gw.ptGpa >>> 12;
      const t = this.newTable(ctx, key, src, false);
      if (t === null) return false;
      spt = t;
      // creating it may have write-protected the page we are about to map
      if (this.cache && w && this.protectedPages.has(gw.gpa >>> 12)) return this.fill(ctx, gva, gw, write, user);
    } else if (this.cache) { ctx.charge(K.cacheLookup.cycles); ctx.count('shadow.cacheHit'); }
    const want = u32(spt.hpa | P | W | U | A);
    if (ctx.mem.read(pdeAddr, 4) !== want) {
      this.setPde(ctx, pdeAddr, want);
      spt.parents.add(pdeAddr);
    }
    this.setPte(ctx, spt.hpa + ((gva >>> 12) & 0x3ff) * 4, u32((ctx.ramBase + gw.gpa) | flags));
    return true;
  }

  /**
   * fill() for a PAE guest, on PAE shadow tables: the root is a shadow PDPT built from the
   * guest's PDPTE registers (rebuilt at every CR3 write), pointing at shadow page directories
   * derived from the guest's (cached by the guest directory page), then page tables as above;
   * NX (EFER.NXE) is kept in the leaf; 2 MiB guest pages map 2 MiB shadow pages where the host
   * frame is aligned (virtual TLB only), else split.
   */
  private fillPae(ctx: PagingContext, gva: number, gw: GuestWalk, write: boolean, user: boolean, w: boolean, flags: number): boolean {
    const root = this.root!;
    const hi = gw.nx ? 0x80000000 : 0;
    const pdKey = `E${gw.pdGpa >>> 12}`;
    let spd = this.tables.get(pdKey);
    if (spd === undefined) {
      if (this.cache) { ctx.charge(K.cacheLookup.cycles); ctx.count('shadow.cacheMiss'); }
      const t = this.newTable(ctx, pdKey, gw.pdGpa >>> 12, true, 512);
      if (t === null) return false;
      spd = t;
      if (this.cache && w && this.protectedPages.has(gw.gpa >>> 12)) return this.fill(ctx, gva, gw, write, user);
    } else if (this.cache) { ctx.charge(K.cacheLookup.cycles); ctx.count('shadow.cacheHit'); }
    const pdpteAddr = root.hpa + (gva >>> 30) * 8;
    const wantPdpte = u32(spd.hpa | P);
    if (ctx.mem.read(pdpteAddr, 4) !== wantPdpte) {
      this.setPde(ctx, pdpteAddr, wantPdpte, 0);
      spd.parents.add(pdpteAddr);
    }
    const pdeAddr = spd.hpa + ((gva >>> 21) & 0x1ff) * 8;
    const largeHpa = ctx.ramBase + gw.largeGpa;
    if (gw.large && this.largePages && !this.cache && largeHpa % LARGE_PAE === 0 && gw.largeGpa + LARGE_PAE <= ctx.ramSize) {
      this.setPde(ctx, pdeAddr, u32(largeHpa | flags | PS), hi);
      return true;
    }
    const key = gw.large ? `M${gw.largeGpa / LARGE_PAE}:${gw.pdePerm}:${gw.g ? 1 : 0}:${gw.pdGpa >>> 12}` : `S${gw.ptGpa >>> 12}:${gw.pdePerm}`;
    let spt = this.tables.get(key);
    if (spt === undefined) {
      if (this.cache) { ctx.charge(K.cacheLookup.cycles); ctx.count('shadow.cacheMiss'); }
      const t = this.newTable(ctx, key, gw.large ? gw.pdGpa >>> 12 : gw.ptGpa >>> 12, false, 512);
      if (t === null) return false;
      spt = t;
      if (this.cache && w && this.protectedPages.has(gw.gpa >>> 12)) return this.fill(ctx, gva, gw, write, user);
    } else if (this.cache) { ctx.charge(K.cacheLookup.cycles); ctx.count('shadow.cacheHit'); }
    const want = u32(spt.hpa | P | W | U | A);
    if (ctx.mem.read(pdeAddr, 4) !== want || ctx.mem.read(pdeAddr + 4, 4) !== 0) {
      this.setPde(ctx, pdeAddr, want, 0);
      spt.parents.add(pdeAddr);
    }
    this.setPte(ctx, spt.hpa + ((gva >>> 12) & 0x1ff) * 8, u32((ctx.ramBase + gw.gpa) | flags), hi);
    return true;
  }

  /** Writes a shadow directory entry, unlinking the table the old one pointed at. */
  private setPde(ctx: PagingContext, addr: number, val: number, hi?: number): void {
    const old = ctx.mem.read(addr, 4);
    if ((old & P) !== 0) {
      if ((old & PS) === 0) this.byHpa.get(u32(old & 0xfffff000))?.parents.delete(addr);
      if (old !== val || (hi !== undefined && ctx.mem.read(addr + 4, 4) !== hi)) this.flush(FLUSH_ASID);
    }
    ctx.mem.write(addr, 4, val);
    if (hi !== undefined) ctx.mem.write(addr + 4, 4, hi);
    this.refs++;
  }

  /** Writes a shadow page-table entry, keeping the reverse map of writable entries. */
  private setPte(ctx: PagingContext, addr: number, val: number, hi?: number): void {
    const old = ctx.mem.read(addr, 4);
    if ((old & P) !== 0) {
      if (this.cache && (old & W) !== 0) this.rmap.get((u32(old & 0xfffff000) - ctx.ramBase) >>> 12)?.delete(addr);
      // narrower or different than what the core may have cached: flush
      if (u32(old & 0xfffff000) !== u32(val & 0xfffff000) || (old & ~val & (W | U | P)) !== 0) this.flush(FLUSH_ASID);
      else if (hi !== undefined && (hi & ~ctx.mem.read(addr + 4, 4) & 0x80000000) !== 0) this.flush(FLUSH_ASID); // NX added
    }
    if (hi !== undefined) ctx.mem.write(addr + 4, 4, hi);
    if (this.cache && (val & (P | W)) === (P | W)) {
      const page = (u32(val & 0xfffff000) - ctx.ramBase) >>> 12;
      let s = this.rmap.get(page);
      if (s === undefined) { s = new Set(); this.rmap.set(page, s); }
      s.add(addr);
    }
    ctx.mem.write(addr, 4, val);
    this.refs++;
  }

  private allocPage(ctx: PagingContext): number | null {
    const f = this.free.pop();
    if (f !== undefined) return f;
    const p = ctx.allocPages(1);
    if (p === null) return null;
    this.owned.push(p);
    return p;
  }

  /** A new zeroed shadow table of `entries` entries (1024: 2-level; 512 or 4: PAE). `volatile`: never cached. */
  private newTable(ctx: PagingContext, key: string, src: number, dir: boolean, entries = 1024, volatile = false): ShadowTable | null {
    const hpa = this.allocPage(ctx);
    if (hpa === null) return null;
    ctx.mem.writeBytes(hpa, ZERO_PAGE);
    this.refs += 1024;
    const synced = this.cache && !volatile && (src < 0 || !this.unsyncPages.has(src));
    const t: ShadowTable = { hpa, key, src, synced, dir, pae: entries !== 1024, entries, parents: new Set() };
    this.tables.set(key, t);
    this.byHpa.set(hpa, t);
    if (src >= 0) {
      let s = this.bySrc.get(src);
      if (s === undefined) { s = new Set(); this.bySrc.set(src, s); }
      s.add(t);
      if (synced) this.protect(ctx, src);
    }
    return t;
  }

  /** Drops a shadow table: clears the entries pointing at it, unlinks its children, frees its page. */
  private dropTable(ctx: PagingContext, t: ShadowTable): void {
    for (const a of t.parents) {
      ctx.mem.write(a, 4, 0);
      this.refs++;
    }
    if (t.parents.size > 0) this.flush(FLUSH_ASID);
    t.parents.clear();
    this.refs += t.entries; // scan
    const stride = t.pae ? 8 : 4;
    for (let i = 0; i < t.entries; i++) {
      const addr = t.hpa + i * stride;
      const e = ctx.mem.read(addr, 4);
      if ((e & P) === 0) continue;
      if (t.dir) { if ((e & PS) === 0) this.byHpa.get(u32(e & 0xfffff000))?.parents.delete(addr); }
      else if (this.cache && (e & W) !== 0) this.rmap.get((u32(e & 0xfffff000) - ctx.ramBase) >>> 12)?.delete(addr);
    }
    this.tables.delete(t.key);
    this.byHpa.delete(t.hpa);
    if (t.src >= 0) {
      const s = this.bySrc.get(t.src);
      if (s !== undefined) {
        s.delete(t);
        if (s.size === 0) { this.bySrc.delete(t.src); this.protectedPages.delete(t.src); }
      }
    }
    if (this.root === t) this.root = null;
    this.free.push(t.hpa);
  }

  /**
   * Drops every table at once: no entry needs unlinking (every table goes) and no reverse map
   * survives, so nothing is scanned; the pages go back to the free list (zeroed when reused).
   */
  private dropAll(): void {
    for (const t of this.tables.values()) this.free.push(t.hpa);
    this.tables.clear(); this.byHpa.clear(); this.bySrc.clear();
    this.protectedPages.clear(); this.unsyncPages.clear(); this.rmap.clear();
    this.root = null;
  }

  /** Cache mode: write-protects guest page `page` in every shadow entry that maps it writable. */
  private protect(ctx: PagingContext, page: number): void {
    if (this.protectedPages.has(page)) return;
    this.protectedPages.add(page);
    ctx.charge(K.protect.cycles);
    const s = this.rmap.get(page);
    if (s === undefined) return;
    for (const a of s) {
      ctx.mem.write(a, 4, ctx.mem.read(a, 4) & ~W);
      this.refs += 2;
    }
    if (s.size > 0) this.flush(FLUSH_ASID);
    this.rmap.delete(page);
  }

  /** Cache mode: the guest writes page-table page `page`: its shadow tables go out of sync, the page is unprotected. */
  private unsync(ctx: PagingContext, page: number): void {
    ctx.charge(K.protect.cycles);
    ctx.count('shadow.unsync');
    this.protectedPages.delete(page);
    this.unsyncPages.add(page);
    for (const t of this.bySrc.get(page) ?? []) t.synced = false;
  }

  /** Drops the out-of-sync tables (all of them for the virtual TLB) and installs the root for the guest's CR3. */
  private switchRoot(ctx: PagingContext): boolean {
    ctx.charge(K.flush.cycles);
    ctx.count('shadow.flush');
    // the caller chooses the TLB flush (a CR3 write keeps global entries, as on the core)
    const req = this.flushReq;
    if (!this.cache) this.dropAll();
    else for (const t of [...this.tables.values()]) if (!t.synced) this.dropTable(ctx, t);
    this.flushReq = req;
    this.unsyncPages.clear();
    // a PAE root (the shadow PDPT) comes from the PDPTE registers: rebuilt at every CR3 write
    const key = this.pae ? `Q${this.gcr3}` : this.paging ? `D${this.gcr3 >>> 12}` : 'PASS';
    let root = this.tables.get(key);
    if (root !== undefined) ctx.count('shadow.cacheHit');
    else {
      if (this.cache && !this.pae) ctx.count('shadow.cacheMiss');
      const t = this.pae ? this.newTable(ctx, key, -1, true, 4, true)
        : this.newTable(ctx, key, this.paging ? this.gcr3 >>> 12 : -1, true);
      if (t === null) return false;
      root = t;
      // cache mode: link the cached shadow directories of the guest's PDPTEs at once
      if (this.pae && this.cache) {
        for (let i = 0; i < 4; i++) {
          const lo = this.gpdpte[2 * i], hi = this.gpdpte[2 * i + 1];
          if ((lo & P) === 0 || (hi & 0xf) !== 0) continue;
          const spd = this.tables.get(`E${u32(lo & 0xfffff000) >>> 12}`);
          if (spd === undefined) continue;
          ctx.mem.write(root.hpa + i * 8, 4, u32(spd.hpa | P));
          spd.parents.add(root.hpa + i * 8);
          this.refs++;
          ctx.count('shadow.cacheHit');
        }
      }
    }
    this.root = root;
    new VmcbView(ctx.mem, ctx.vmcb).w64hl(VMCB_CR3, root.hpa, 0);
    return true;
  }

  /** Drops every shadow table (a paging-mode change, or the cache is full) and installs a fresh root. */
  private reset(ctx: PagingContext): boolean {
    this.dropAll();
    this.flush(FLUSH_ASID);
    const ok = this.switchRoot(ctx);
    this.flush(FLUSH_ASID);
    return ok;
  }

  /** Debug description of the shadow state (tests). */
  describe(): string {
    return `${this.name}: root ${this.root ? hex(this.root.hpa) : '-'}, ${this.tables.size} tables, ${this.protectedPages.size} protected`;
  }
}

/** The virtual-TLB strategy (Palacios' default): config name 'shadow'. */
export const shadowFactory: PagingModeFactory = {
  name: 'shadow',
  create(options: Readonly<Record<string, unknown>>): PagingMode {
    return new ShadowPaging('shadow', { cache: false, largePages: options.largePages !== false });
  },
};
