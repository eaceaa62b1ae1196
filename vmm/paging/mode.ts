/**
 * The contract between a virtual core's run loop (vmm/vcore.ts) and a paging mode (nested radix,
 * nested hashed, shadow with a virtual TLB, shadow with cached tables). The run loop owns the
 * VMCB and the exit dispatch; a paging mode owns everything about translating guest-virtual and
 * guest-physical addresses: the VMCB's paging fields (NP_ENABLE, N_CR3, the NPT format byte,
 * CR3, the CR/INVLPG/#PF intercept bits it needs) and the exits that follow from them.
 *
 * One mode object per virtual core (`PagingModeFactory.create`), so per-core state (a shadow
 * root, a virtual TLB) lives in it. Guest RAM is one contiguous host-physical block
 * (`PagingContext.ramBase`, `ramSize`): guest-physical address g < ramSize lives at host-physical
 * ramBase + g. Nothing else is RAM (device memory is the run loop's business: an access there
 * is an NPF the run loop emulates, or, under shadow paging, a #PF the mode hands back with
 * 'mmio').
 */
import type { PhysMem } from '../../hw/mem/physmem.ts';

/** What a paging mode may use of its virtual core. */
export interface PagingContext {
  readonly mem: PhysMem;
  /** Host-physical address of this core's VMCB page. */
  readonly vmcb: number;
  /** Guest RAM: host-physical base and size in bytes (both 4 KiB aligned; base 4 MiB aligned when the host could). */
  readonly ramBase: number;
  readonly ramSize: number;
  /** Pages for the mode's own tables, from the VMM's host (Host.allocPages); null when none are free. */
  allocPages(count: number): number | null;
  freePages(base: number, count: number): void;
  /** Charges the current exit's handler `cycles` (host software's work, the cost table). */
  charge(cycles: number): void;
  /** Charges `n` word references to emulated memory (reading guest tables, writing shadow ones). */
  chargeRefs(n: number): void;
  /**
   * Injects an exception into the guest at the next VMRUN (EVENTINJ); for #PF also sets the
   * guest's CR2 (VMCB CR2) to `cr2`.
   */
  injectException(vector: number, errorCode?: number, cr2?: number): void;
  /** Counters the mode bumps (shown with the VM's statistics): name -> count. */
  count(name: string, n?: number): void;
  /**
   * (Extension, optional.) The guest's general register n (x86 order: 0 EAX ... 7 EDI) at this
   * exit: EAX and ESP from the VMCB, the others from the core's registers (svm.ts: the VMM finds
   * them in cpu.r). Shadow paging needs both to emulate MOV CRn; without them such an exit is
   * 'unhandled'.
   */
  readGpr?(n: number): number;
  writeGpr?(n: number, v: number): void;
}

/** The outcome of a paging exit. */
export type PagingOutcome =
  /** Handled: re-enter the guest (the mode has fixed RIP if the instruction was emulated or skipped). */
  | 'handled'
  /** Not the mode's business (the run loop handles or reports it as unhandled). */
  | 'unhandled'
  /** An access to guest-physical memory that is not RAM: the run loop emulates it (device memory or unbacked). */
  | 'mmio';

export interface PagingMode {
  /** 'nested' | 'hashed' | 'shadow' | 'shadow-cache' (config names). */
  readonly name: string;
  /**
   * Called once before the first VMRUN, after the loader wrote the guest's initial state into the
   * VMCB: set NP_ENABLE / N_CR3 / the NPT format, or the shadow CR3 and the intercepts the mode
   * needs (CR0/CR3/CR4 reads and writes, INVLPG, #PF), and take over the guest-visible CR0/CR3/CR4
   * the loader wrote. Returns false when the host has no memory for the mode's tables (or,
   * extension, when the mode cannot run this guest: shadow paging with a real-mode guest or
   * reserved bits in a PAE guest's PDPTEs; a counter names the reason).
   */
  setup(ctx: PagingContext): boolean;
  /**
   * Handles a #VMEXIT whose code is one of `exitCodes` (the run loop dispatches those here).
   * EXITINFO1/2 and nRIP are in the VMCB.
   *
   * Conventions (extension, shadow paging): a mode requests a TLB flush at the next VMRUN by
   * writing VMCB TLB_CONTROL (3: this ASID, 7: its non-global entries); the run loop writes it
   * back to 0 after each #VMEXIT, before dispatching, as Palacios does. After 'handled', the run
   * loop re-injects a valid EXITINTINFO event (an event whose delivery the exit interrupted, e.g.
   * a shadow fill for the stack an exception frame is pushed on) unless the mode called
   * injectException during this exit (it then combined the two itself, as the double-fault
   * rules say).
   */
  handleExit(ctx: PagingContext, exitCode: number): PagingOutcome;
  /** The exit codes the mode wants (e.g. NPF; or #PF, CR0/3/4 reads and writes, INVLPG, task switch). */
  readonly exitCodes: readonly number[];
  /** The guest-visible value of CR0, CR3 or CR4 (what the guest last wrote), for reports and MMIO emulation. */
  guestCr(n: 0 | 3 | 4): number;
  /**
   * Translates a guest-virtual address as the guest's own page tables would (for emulating an
   * instruction at an MMIO exit and for reports): host-physical address, or -1 when not mapped.
   */
  translate(ctx: PagingContext, gva: number, write: boolean): number;
  /**
   * (Extension, optional.) The guest-physical address the guest's tables give `gva`, or -1: for
   * emulating an access that came back as 'mmio' (the address is outside RAM, so translate()
   * cannot name a host-physical one). No accessed/dirty bit is written.
   */
  guestPhys?(ctx: PagingContext, gva: number, write: boolean): number;
  /** Frees the mode's tables (VM free). */
  release(ctx: PagingContext): void;
}

export interface PagingModeFactory {
  readonly name: string;
  create(options: Readonly<Record<string, unknown>>): PagingMode;
}
