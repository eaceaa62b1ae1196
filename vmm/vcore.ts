/**
 * A virtual core: its VMCB (with its I/O and MSR permission maps), the guest's general
 * registers, its paging mode, and its run loop, a host thread (DESIGN.md's execution model):
 *
 *   loop:
 *     run the VM's device events that are due (guest time = this core's clock)
 *     inject a pending virtual interrupt, or ask for the interrupt window (intr/inject.ts)
 *     yield {vmrun, vmcb, deadline: the VM's next timer event, regs}   <- the host runs the guest
 *     resumed with {vmexit, exitCode}: re-inject an interrupted event, dispatch the exit
 *       (exits/dispatch.ts), record it (telemetry.ts)
 *     a HLT sleeps the thread until an interrupt is pending (the next timer event, or woken)
 *
 * Nothing runs in the background: all device work happens in the exit that caused it or at the
 * event that falls due. The thread ends when the VM stops (debug-exit, stop(), an error).
 */
import {
  EVT_EV, EVT_EXCEPTION, EVT_V, IC3_CPUID, IC3_HLT, IC3_INTR, IC3_INVLPGA, IC3_IOIO, IC3_MSR, IC3_NMI, IC3_SHUTDOWN,
  IC4_CLGI, IC4_SKINIT, IC4_STGI, IC4_VMLOAD, IC4_VMMCALL, IC4_VMRUN, IC4_VMSAVE, V_INTR_MASKING, VMCB_ASID, VMCB_CR0,
  VMCB_CPL, VMCB_CR2, VMCB_CR3, VMCB_CR4, VMCB_DR6, VMCB_DR7, VMCB_EFER, VMCB_EVENTINJ, VMCB_EXITINFO1, VMCB_EXITINFO2, VMCB_G_PAT, VMCB_GDTR, VMCB_IDTR,
  VMCB_INT_STATE, VMCB_INTERCEPTS3, VMCB_INTERCEPTS4, VMCB_IOPM_BASE, VMCB_LDTR, VMCB_MSRPM_BASE, VMCB_NRIP, VMCB_RFLAGS,
  VMCB_RIP, VMCB_RSP, VMCB_RAX, VMCB_SEGS, VMCB_TLB_CONTROL, VMCB_TR, VMCB_VINTR, VmcbView, EXIT_INVALID,
  VMCB_CLEAN, CLEAN_CACHED, CLEAN_CR2, CLEAN_CRX, CLEAN_DRX, CLEAN_DT, CLEAN_I, CLEAN_IOPM, CLEAN_NP, CLEAN_SEG, CLEAN_TPR,
  VMCB_CR_INTERCEPTS, VMCB_DR_INTERCEPTS, VMCB_EXC_INTERCEPTS, VMCB_PAUSE_THRESHOLD, VMCB_TSC_OFFSET, VMCB_NP_CONTROL, VMCB_N_CR3,
} from '../hw/cpu/vmcb.ts';
import type { PhysMem } from '../hw/mem/physmem.ts';
import type { Host, HostResume, HostThread } from '../hostif/hostif.ts';
import { vmmCosts } from './costs.ts';
import { FEATURE_TRACE_EXITS } from './features.ts';
import { ACT_HALT, ACT_STOP } from './exits/actions.ts';
import { buildExitTable, type ExitHandler } from './exits/dispatch.ts';
import { injectBeforeEntry, reinjectAfterExit } from './intr/inject.ts';
import type { PagingContext, PagingMode } from './paging/mode.ts';
import { traceLine } from './telemetry.ts';
import type { Vm } from './vm.ts';

export { ACT_CONTINUE, ACT_HALT, ACT_STOP } from './exits/actions.ts';

const PAGE = 4096;
const IOPM_PAGES = 3, MSRPM_PAGES = 2;

/**
 * VMCB clean bits (APM 15.15.3; hw/cpu/vmcb.ts CLEAN_*). Before each entry the VMM sets the bit
 * of every group it has not changed since the last exit, so the core may keep its cached copy.
 * Groups only this file changes (SEG, DT, DRx: startup(); CR2: injectException()) are tracked
 * with markDirty(). The groups other parts of the VMM edit in place (intercepts and the
 * interrupt window in intr/inject.ts, CR0/CR3/CR4 and intercepts in paging/shadow.ts, the NPT
 * fields in paging/nested.ts, EFER/TSC_OFFSET/G_PAT in exits/msr.ts) are compared with their
 * contents at the last exit: TRACKED lists those dwords (VMCB offset, group). A first entry is
 * all dirty.
 */
const TRACKED: readonly (readonly [number, number])[] = [
  [VMCB_CR_INTERCEPTS, CLEAN_I], [VMCB_DR_INTERCEPTS, CLEAN_I], [VMCB_EXC_INTERCEPTS, CLEAN_I], [VMCB_INTERCEPTS3, CLEAN_I],
  [VMCB_INTERCEPTS4, CLEAN_I], [VMCB_PAUSE_THRESHOLD, CLEAN_I], [VMCB_TSC_OFFSET, CLEAN_I], [VMCB_TSC_OFFSET + 4, CLEAN_I],
  [VMCB_IOPM_BASE, CLEAN_IOPM], [VMCB_IOPM_BASE + 4, CLEAN_IOPM], [VMCB_MSRPM_BASE, CLEAN_IOPM], [VMCB_MSRPM_BASE + 4, CLEAN_IOPM],
  [VMCB_VINTR, CLEAN_TPR], [VMCB_VINTR + 4, CLEAN_TPR],
  [VMCB_NP_CONTROL, CLEAN_NP], [VMCB_NP_CONTROL + 4, CLEAN_NP], [VMCB_N_CR3, CLEAN_NP], [VMCB_N_CR3 + 4, CLEAN_NP],
  [VMCB_G_PAT, CLEAN_NP], [VMCB_G_PAT + 4, CLEAN_NP],
  [VMCB_CR0, CLEAN_CRX], [VMCB_CR0 + 4, CLEAN_CRX], [VMCB_CR3, CLEAN_CRX], [VMCB_CR3 + 4, CLEAN_CRX],
  [VMCB_CR4, CLEAN_CRX], [VMCB_CR4 + 4, CLEAN_CRX], [VMCB_EFER, CLEAN_CRX], [VMCB_EFER + 4, CLEAN_CRX],
  [VMCB_CR2, CLEAN_CR2], [VMCB_CR2 + 4, CLEAN_CR2],
];
const TRACKED_IDX = Int32Array.from(TRACKED, ([o]) => o >> 2);
const TRACKED_BIT = Int32Array.from(TRACKED, ([, b]) => b);
const N_TRACKED = TRACKED.length;
/** TRACKED's dword indices, as constants for cleanBits() and noteExit(). */
const T0 = (VMCB_CR_INTERCEPTS) >> 2;
const T1 = (VMCB_DR_INTERCEPTS) >> 2;
const T2 = (VMCB_EXC_INTERCEPTS) >> 2;
const T3 = (VMCB_INTERCEPTS3) >> 2;
const T4 = (VMCB_INTERCEPTS4) >> 2;
const T5 = (VMCB_PAUSE_THRESHOLD) >> 2;
const T6 = (VMCB_TSC_OFFSET) >> 2;
const T7 = (VMCB_TSC_OFFSET + 4) >> 2;
const T8 = (VMCB_IOPM_BASE) >> 2;
const T9 = (VMCB_IOPM_BASE + 4) >> 2;
const T10 = (VMCB_MSRPM_BASE) >> 2;
const T11 = (VMCB_MSRPM_BASE + 4) >> 2;
const T12 = (VMCB_VINTR) >> 2;
const T13 = (VMCB_VINTR + 4) >> 2;
const T14 = (VMCB_NP_CONTROL) >> 2;
const T15 = (VMCB_NP_CONTROL + 4) >> 2;
const T16 = (VMCB_N_CR3) >> 2;
const T17 = (VMCB_N_CR3 + 4) >> 2;
const T18 = (VMCB_G_PAT) >> 2;
const T19 = (VMCB_G_PAT + 4) >> 2;
const T20 = (VMCB_CR0) >> 2;
const T21 = (VMCB_CR0 + 4) >> 2;
const T22 = (VMCB_CR3) >> 2;
const T23 = (VMCB_CR3 + 4) >> 2;
const T24 = (VMCB_CR4) >> 2;
const T25 = (VMCB_CR4 + 4) >> 2;
const T26 = (VMCB_EFER) >> 2;
const T27 = (VMCB_EFER + 4) >> 2;
const T28 = (VMCB_CR2) >> 2;
const T29 = (VMCB_CR2 + 4) >> 2;
{
  const unrolled = [T0, T1, T2, T3, T4, T5, T6, T7, T8, T9, T10, T11, T12, T13, T14, T15, T16, T17, T18, T19, T20, T21, T22, T23, T24, T25, T26, T27, T28, T29];
  const groups = [CLEAN_I, 8, CLEAN_IOPM, 12, CLEAN_TPR, 14, CLEAN_NP, 20, CLEAN_CRX, 28, CLEAN_CR2, 30];
  let g = 0;
  for (let i = 0; i < N_TRACKED; i++) {
    while (i >= groups[g + 1]) g += 2;
    if (unrolled[i] !== TRACKED_IDX[i] || TRACKED_BIT[i] !== groups[g] || N_TRACKED !== 30) throw new Error('vcore.ts: cleanBits() does not match TRACKED');
  }
}
const I_CLEAN = VMCB_CLEAN >> 2, I_RIP = VMCB_RIP >> 2, I_EXITINFO1 = VMCB_EXITINFO1 >> 2, I_EXITINFO2 = VMCB_EXITINFO2 >> 2, I_INT_STATE = VMCB_INT_STATE >> 2;
const B_TLB_CONTROL = VMCB_TLB_CONTROL, ALL_CLEAN = CLEAN_CACHED;

let nextAsid = 1;

export class VCore {
  readonly mem: PhysMem;
  readonly host: Host;
  readonly v: VmcbView;
  /** Guest general registers as Cpu.r (EAX and ESP live in the VMCB; the host loads and saves the rest). */
  readonly regs = new Int32Array(8);
  readonly pctx: PagingContext;
  /** An interrupt-window request is up (V_IRQ + VINTR intercept). */
  windowOpen = false;
  /** An application processor waits for a start-up IPI (after INIT, at power-on, or parked by CLI; HLT). */
  waitingSipi: boolean;
  private readonly table: (ExitHandler | undefined)[];
  /** The host charges VMM work (Host.spend is optional). */
  private readonly canSpend: boolean;
  /** Clean-bit groups changed since the last exit (markDirty); every group before the first entry. */
  private dirty = ALL_CLEAN;
  /** The TRACKED dwords as the last exit left them. */
  private readonly atExit = new Int32Array(N_TRACKED);

  private constructor(readonly vm: Vm, readonly id: number, readonly vmcb: number, readonly iopm: number, readonly msrpm: number, readonly paging: PagingMode) {
    this.host = vm.host;
    this.mem = vm.host.mem;
    this.v = new VmcbView(this.mem, vmcb);
    this.waitingSipi = id !== 0;
    const host = this.host;
    this.canSpend = typeof host.spend === 'function';
    this.table = buildExitTable(paging.exitCodes);
    this.pctx = {
      mem: this.mem,
      vmcb,
      ramBase: vm.ramBase,
      ramSize: vm.ramSize,
      allocPages: (count) => host.allocPages(count),
      freePages: (base, count) => host.freePages(base, count),
      charge: (cycles) => this.spend(cycles),
      chargeRefs: (n) => this.spend(n * vmmCosts.memRef.cycles),
      injectException: (vector, errorCode, cr2) => this.injectException(vector, errorCode, cr2),
      count: (name, n = 1) => vm.telemetry.bump(name, n),
      readGpr: (n) => this.reg(n),
      writeGpr: (n, val) => this.setReg(n, val),
    };
  }

  /** Allocates and initialises the VMCB and permission maps; null when the host has no memory. */
  static create(vm: Vm, id: number, paging: PagingMode): VCore | null {
    const h = vm.host;
    const vmcb = h.allocPages(1);
    if (vmcb === null) return null;
    const iopm = h.allocPages(IOPM_PAGES);
    if (iopm === null) { h.freePages(vmcb, 1); return null; }
    const msrpm = h.allocPages(MSRPM_PAGES);
    if (msrpm === null) { h.freePages(vmcb, 1); h.freePages(iopm, IOPM_PAGES); return null; }
    const mem = h.mem;
    mem.writeBytes(vmcb, new Uint8Array(PAGE));
    mem.writeBytes(iopm, new Uint8Array(IOPM_PAGES * PAGE).fill(0xff)); // every port exits
    mem.writeBytes(msrpm, new Uint8Array(MSRPM_PAGES * PAGE).fill(0xff)); // every MSR exits
    const vc = new VCore(vm, id, vmcb, iopm, msrpm, paging);
    vc.initVmcb();
    return vc;
  }

  /** The VMCB a Multiboot loader leaves: flat 32-bit protected mode, paging and interrupts off. */
  private initVmcb(): void {
    const v = this.v;
    v.w32(VMCB_INTERCEPTS3, IC3_INTR | IC3_NMI | IC3_CPUID | IC3_HLT | IC3_IOIO | IC3_MSR | IC3_SHUTDOWN | IC3_INVLPGA);
    v.w32(VMCB_INTERCEPTS4, IC4_VMRUN | IC4_VMMCALL | IC4_VMLOAD | IC4_VMSAVE | IC4_STGI | IC4_CLGI | IC4_SKINIT);
    v.w64(VMCB_IOPM_BASE, this.iopm);
    v.w64(VMCB_MSRPM_BASE, this.msrpm);
    v.w32(VMCB_ASID, nextAsid);
    nextAsid = nextAsid >= 2047 ? 1 : nextAsid + 1;
    v.w8(VMCB_TLB_CONTROL, 1); // first entry: flush every ASID's entries (the ASID may have been used before)
    v.w32(VMCB_VINTR, V_INTR_MASKING);
    for (let s = 0; s < 6; s++) {
      const o = VMCB_SEGS[s];
      const cs = s === 1;
      v.w16(o, cs ? 0x08 : 0x10); v.w16(o + 2, cs ? 0xc9b : 0xc93); v.w32(o + 4, 0xffffffff); v.w64(o + 8, 0);
    }
    v.w32(VMCB_GDTR + 4, 0xffff); v.w64(VMCB_GDTR + 8, 0);
    v.w32(VMCB_IDTR + 4, 0x3ff); v.w64(VMCB_IDTR + 8, 0);
    v.w16(VMCB_LDTR, 0); v.w16(VMCB_LDTR + 2, 0x82); v.w32(VMCB_LDTR + 4, 0xffff);
    v.w16(VMCB_TR, 0); v.w16(VMCB_TR + 2, 0x8b); v.w32(VMCB_TR + 4, 0xffff);
    v.w32(VMCB_CR0, 0x11);
    v.w64(VMCB_EFER, 0x1000);
    v.w64(VMCB_RFLAGS, 2);
    v.w64(VMCB_DR6, 0xffff0ff0); v.w64(VMCB_DR7, 0x400);
    v.w32(VMCB_G_PAT, 0x00070406); v.w32(VMCB_G_PAT + 4, 0x00070406);
  }

  // ---- INIT and SIPI (application processors)

  /** An INIT IPI: an application processor waits for a start-up IPI again (the boot processor ignores it). */
  init(): void {
    if (this.id !== 0) this.waitingSipi = true;
  }

  /** A start-up IPI: a waiting processor starts in real mode at vector * 4096 (CS = vector << 8, IP = 0). */
  startup(vector: number): void {
    if (!this.waitingSipi) return;
    const v = this.v;
    for (let s = 0; s < 6; s++) {
      const o = VMCB_SEGS[s];
      const cs = s === 1;
      v.w16(o, cs ? (vector & 0xff) << 8 : 0); v.w16(o + 2, cs ? 0x9b : 0x93); v.w32(o + 4, 0xffff); v.w64(o + 8, cs ? (vector & 0xff) << 12 : 0);
    }
    v.w32(VMCB_GDTR + 4, 0xffff); v.w64(VMCB_GDTR + 8, 0);
    v.w32(VMCB_IDTR + 4, 0x3ff); v.w64(VMCB_IDTR + 8, 0);
    v.w64(VMCB_CR0, 0x10); v.w64(VMCB_CR3, 0); v.w64(VMCB_CR4, 0); v.w64(VMCB_EFER, 0x1000);
    v.w8(VMCB_CPL, 0);
    v.w64(VMCB_RFLAGS, 2); v.w64(VMCB_RIP, 0); v.w64(VMCB_RSP, 0); v.w64(VMCB_RAX, 0);
    v.w32(VMCB_EVENTINJ, 0); v.w32(VMCB_INT_STATE, 0);
    this.regs.fill(0);
    this.markDirty(CLEAN_SEG | CLEAN_DT | CLEAN_CRX);
    this.waitingSipi = false;
    this.vm.telemetry.bump('sipi');
  }

  // ---- guest state, for handlers

  reg(i: number): number {
    if (i === 0) return this.mem.read(this.vmcb + VMCB_RAX, 4) | 0;
    if (i === 4) return this.mem.read(this.vmcb + VMCB_RSP, 4) | 0;
    return this.regs[i];
  }

  setReg(i: number, val: number): void {
    if (i === 0) this.mem.write(this.vmcb + VMCB_RAX, 4, val >>> 0);
    else if (i === 4) this.mem.write(this.vmcb + VMCB_RSP, 4, val >>> 0);
    else this.regs[i] = val | 0;
  }

  rip(): number { return this.mem.read(this.vmcb + VMCB_RIP, 4); }

  /** Moves RIP (the instruction was emulated) and ends an interrupt shadow, as retiring it would. */
  setRip(rip: number): void {
    const mem = this.mem, b = this.vmcb;
    if (mem.codePage[b >>> 12] !== 0) { // a VMCB page that holds decoded code: through PhysMem, which drops it
      mem.write(b + VMCB_RIP, 4, rip >>> 0);
      mem.write(b + VMCB_RIP + 4, 4, 0);
      if (mem.read(b + VMCB_INT_STATE, 4) !== 0) mem.write(b + VMCB_INT_STATE, 4, 0);
      return;
    }
    // the VMCB is a page of RAM: its dwords are aligned words of PhysMem's Int32Array
    const m = mem.i32, b4 = b >>> 2;
    m[b4 + I_RIP] = rip; m[b4 + I_RIP + 1] = 0;
    if (m[b4 + I_INT_STATE] !== 0) m[b4 + I_INT_STATE] = 0;
  }

  /** RIP to nRIP (or past an instruction of `len` bytes when the exit saved none). */
  skipInsn(len: number): void {
    const n = this.mem.read(this.vmcb + VMCB_NRIP, 4);
    this.setRip(n !== 0 ? n : this.rip() + len);
  }

  /**
   * Records that the VMM changed VMCB state of the clean-bit groups `bits` (hw/cpu/vmcb.ts
   * CLEAN_*): the next entry reloads them. Edits of the TRACKED fields are found without it.
   */
  markDirty(bits: number): void {
    this.dirty |= bits;
  }

  /**
   * The clean bits for the next entry: every cached group neither marked dirty nor changed since
   * the last exit. Written out per TRACKED dword (T0..T29, checked against TRACKED at load): a
   * loop over the table cost ~5% of an exit.
   */
  private cleanBits(): number {
    const m = this.mem.i32, b = this.vmcb >>> 2, s = this.atExit;
    let dirty = this.dirty;
    if (((m[b + T0] ^ s[0]) | (m[b + T1] ^ s[1]) | (m[b + T2] ^ s[2]) | (m[b + T3] ^ s[3]) | (m[b + T4] ^ s[4]) | (m[b + T5] ^ s[5]) | (m[b + T6] ^ s[6]) | (m[b + T7] ^ s[7])) !== 0) dirty |= CLEAN_I;
    if (((m[b + T8] ^ s[8]) | (m[b + T9] ^ s[9]) | (m[b + T10] ^ s[10]) | (m[b + T11] ^ s[11])) !== 0) dirty |= CLEAN_IOPM;
    if (((m[b + T12] ^ s[12]) | (m[b + T13] ^ s[13])) !== 0) dirty |= CLEAN_TPR;
    if (((m[b + T14] ^ s[14]) | (m[b + T15] ^ s[15]) | (m[b + T16] ^ s[16]) | (m[b + T17] ^ s[17]) | (m[b + T18] ^ s[18]) | (m[b + T19] ^ s[19])) !== 0) dirty |= CLEAN_NP;
    if (((m[b + T20] ^ s[20]) | (m[b + T21] ^ s[21]) | (m[b + T22] ^ s[22]) | (m[b + T23] ^ s[23]) | (m[b + T24] ^ s[24]) | (m[b + T25] ^ s[25]) | (m[b + T26] ^ s[26]) | (m[b + T27] ^ s[27])) !== 0) dirty |= CLEAN_CRX;
    if (((m[b + T28] ^ s[28]) | (m[b + T29] ^ s[29])) !== 0) dirty |= CLEAN_CR2;
    return ALL_CLEAN & ~dirty;
  }

  /** After an exit: what the core left in the VMCB is what it caches. */
  private noteExit(): void {
    const m = this.mem.i32, b = this.vmcb >>> 2, s = this.atExit;
    s[0] = m[b + T0]; s[1] = m[b + T1]; s[2] = m[b + T2];
    s[3] = m[b + T3]; s[4] = m[b + T4]; s[5] = m[b + T5];
    s[6] = m[b + T6]; s[7] = m[b + T7]; s[8] = m[b + T8];
    s[9] = m[b + T9]; s[10] = m[b + T10]; s[11] = m[b + T11];
    s[12] = m[b + T12]; s[13] = m[b + T13]; s[14] = m[b + T14];
    s[15] = m[b + T15]; s[16] = m[b + T16]; s[17] = m[b + T17];
    s[18] = m[b + T18]; s[19] = m[b + T19]; s[20] = m[b + T20];
    s[21] = m[b + T21]; s[22] = m[b + T22]; s[23] = m[b + T23];
    s[24] = m[b + T24]; s[25] = m[b + T25]; s[26] = m[b + T26];
    s[27] = m[b + T27]; s[28] = m[b + T28]; s[29] = m[b + T29];
    this.dirty = 0;
  }

  /** Charges VMM work to the core (Host.spend). */
  spend(cycles: number): void {
    if (this.canSpend) this.host.spend!(cycles);
  }

  /** An exception for the guest at the next entry (EVENTINJ); for #PF, CR2 = cr2. */
  injectException(vector: number, errorCode?: number, cr2?: number): void {
    const ev = errorCode !== undefined;
    this.mem.write(this.vmcb + VMCB_EVENTINJ, 4, (EVT_V | (EVT_EXCEPTION << 8) | (vector & 0xff) | (ev ? EVT_EV : 0)) >>> 0);
    this.mem.write(this.vmcb + VMCB_EVENTINJ + 4, 4, ev ? errorCode >>> 0 : 0);
    if (vector === 14 && cr2 !== undefined) { this.v.w64(VMCB_CR2, cr2 >>> 0); this.markDirty(CLEAN_CR2); }
    this.vm.telemetry.bump(`inject.exception${vector}`);
  }

  /** Stops the VM in error with `reason` (a handler that cannot go on). */
  fail(reason: string): number {
    this.vm.requestStop('error', null, reason);
    return ACT_STOP;
  }

  // ---- the run loop

  *run(): HostThread {
    const vm = this.vm, host = this.host, mem = this.mem, b = this.vmcb, tel = vm.telemetry;
    const i32 = mem.i32, b4 = b >>> 2; // the VMCB is a page of RAM: its dwords are aligned
    const trace = FEATURE_TRACE_EXITS && vm.config.traceExits;
    const req = { kind: 'vmrun' as const, vmcb: b, deadline: Infinity, regs: this.regs };
    try {
      for (;;) {
        if (vm.stopRequested) break;
        if (this.waitingSipi) { yield { kind: 'wait' }; continue; }
        if (vm.pauseRequested) {
          vm.notePaused(true);
          while (vm.pauseRequested && !vm.stopRequested) yield { kind: 'wait' };
          vm.notePaused(false);
          continue;
        }
        vm.runEvents();
        if (vm.stopRequested) break;
        injectBeforeEntry(this);
        this.spend(vmmCosts.entryPrep.cycles);
        req.deadline = vm.nextEventAt();
        // the VMCB is a page of RAM: a word store, through PhysMem only if the page holds decoded code
        if (mem.codePage[b4 >>> 10] !== 0) mem.write(b + VMCB_CLEAN, 4, this.cleanBits());
        else i32[b4 + I_CLEAN] = this.cleanBits();
        const r: HostResume = yield req;
        if (r.kind !== 'vmexit') continue;
        const t0 = host.cycles();
        const code = r.exitCode;
        if (mem.u8[b + B_TLB_CONTROL] !== 0) mem.write(b + B_TLB_CONTROL, 1, 0);
        if (code === EXIT_INVALID) { vm.requestStop('error', null, 'VMRUN refused the VMCB (VMEXIT_INVALID)'); break; }
        this.noteExit();
        const rip = i32[b4 + I_RIP] >>> 0;
        vm.currentCore = this.id;
        this.spend(vmmCosts.exitDispatch.cycles);
        reinjectAfterExit(this);
        const h = code >= 0 && code < this.table.length ? this.table[code] : undefined;
        let act: number;
        if (h === undefined) act = this.fail(`unhandled exit ${code === 0x400 ? 'NPF' : `0x${code.toString(16)}`}`);
        else act = h(this, code);
        const info1 = i32[b4 + I_EXITINFO1] >>> 0, info2 = i32[b4 + I_EXITINFO2] >>> 0;
        tel.record(code, host.cycles() - t0, rip, info1, info2, t0);
        if (trace) host.print(traceLine(tel.exits, this.id, t0, code, rip, info1, info2));
        if (act === ACT_STOP) break;
        if (act === ACT_HALT) {
          // sleep until an interrupt is pending: guest time runs on with the core's clock
          let woke = false;
          for (;;) {
            vm.runEvents();
            if (vm.stopRequested || vm.pauseRequested) break;
            if (vm.intr.pending(this.id)) { woke = true; break; }
            if (this.waitingSipi) break;
            const next = vm.nextEventAt();
            tel.bump('hlt.sleeps');
            yield next === Infinity ? { kind: 'wait' } : { kind: 'sleep', until: next };
          }
          if (woke) this.skipInsn(1);
        }
      }
    } catch (e) {
      vm.requestStop('error', null, `internal error in the VMM: ${e instanceof Error ? e.message : String(e)}`);
      vm.internalError = e;
    }
    vm.vcoreEnded(this);
  }

  /** Frees the VMCB and maps (VM free). */
  release(): void {
    this.host.freePages(this.vmcb, 1);
    this.host.freePages(this.iopm, IOPM_PAGES);
    this.host.freePages(this.msrpm, MSRPM_PAGES);
  }
}
