// A small exit loop for the shadow-paging tests: one core whose host handler enters a guest with
// vmrun() and hands the paging exits to a PagingMode through a PagingContext of its own (the
// run loop's job in vmm/vcore.ts, reduced to what these tests need), or runs the guest with NP
// off and its own paging directly on the core ('native', the reference: guest RAM at host 0).
//
// Guest-physical layout (RAM 4 MiB):
//   0x1000 GDT (0x08/0x10 ring-0 code/data, 0x1b/0x23 ring-3 code/data, 0x28 TSS), 0x2000 IDT,
//   0x3000 stubs for unexpected vectors (report the vector on port 0xE1), 0x4000 TSS,
//   0x10000 code (CODE; a #PF handler at PF_HANDLER when the source has one), ring-0 stack top
//   0x80000, ring-3 stack top 0x90000, page tables and data from 0x100000 (the tests choose).
// Ports: 0xE0 appends EAX to `log`; 0xF4 ends the run (status AL); 0xE1 is an unexpected vector.
import { describe } from 'vitest';
import { Cpu, TRAP_VMEXIT } from '../../hw/cpu/cpu.ts';
import { hasErrorCode } from '../../hw/cpu/exceptions.ts';
import { vmrun } from '../../hw/cpu/svm.ts';
import * as V from '../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../hw/mem/physmem.ts';
import type { PagingContext, PagingMode, PagingModeFactory } from '../../vmm/paging/mode.ts';
import { assemble, haveAssembler } from '../hw/cpu/bare.ts';

/** describe, or describe.skip when GNU as is missing (never under CI). */
export const suite = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

export const GDT = 0x1000, IDT = 0x2000, STUBS = 0x3000, TSS = 0x4000, CODE = 0x10000, PF_HANDLER = CODE + 0x800;
export const STACK0 = 0x80000, STACK3 = 0x90000;
export const RAM = 4 << 20;
const HOST_MEM = 16 << 20, VMCB_PA = 0xf00000, IOPM_PA = 0xf10000, POOL = 0xa00000, POOL_END = 0xf00000;
export const PORT_LOG = 0xe0, PORT_BAD = 0xe1, PORT_EXIT = 0xf4;

/**
 * Assembler prologue: `log` reports EAX; `done` ends the run (status AL), `finish` with status 0;
 * `readlog` logs the dword at (%ebx) (a 2-byte load, which PF_SKIP can skip); `loadcr3 v` sets CR3.
 */
const PROLOGUE = `
  .code32
  .macro log
  out %eax, $${PORT_LOG}
  .endm
  .macro done
  out %al, $${PORT_EXIT}
  .endm
  .macro finish
  xor %eax, %eax
  done
  .endm
  .macro readlog
  mov (%ebx), %eax
  log
  .endm
  .macro loadcr3 v
  mov $\\v, %eax
  mov %eax, %cr3
  .endm
`;

/**
 * The standard #PF handler (at PF_HANDLER, `.org 0x800` in the source): reports CR2 and the
 * error code, then skips the 2-byte faulting instruction (tests fault only on `mov (%ebx),%eax`
 * or `mov %eax,(%ebx)` forms).
 */
export const PF_SKIP = `
  .org 0x800, 0x90
pf:
  push %eax
  mov %cr2, %eax
  log
  mov 4(%esp), %eax
  log
  addl $2, 8(%esp)
  pop %eax
  add $4, %esp
  iret
`;

/**
 * Guest code from CPL 0 to CPL 3 (IOPL 3, so that it can still log) at the label `ring3`, with the
 * ring-3 data segments loaded and the stack at STACK3.
 */
export const TO_RING3 = `
  pushl $0x23
  pushl $${STACK3}
  pushl $0x3002
  pushl $0x1b
  pushl $ring3
  iret
ring3:
  mov $0x23, %ax
  mov %ax, %ds
  mov %ax, %es
`;

/** Log values as unsigned hex strings (a readable comparison). */
export const hexes = (a: number[]): string[] => a.map((x) => (x >>> 0).toString(16));

export type ModeSpec = 'native' | PagingModeFactory;

export interface RunResult {
  log: number[];
  status: number | null;
  failure: string | null;
  counts: Map<string, number>;
  exits: Map<number, number>;
  /** Cycles the paging handlers charged (fixed costs) and the word references they charged. */
  charged: number; refs: number;
  /** Guest memory after the run (a copy of RAM). */
  ram: Uint8Array;
  cycles: number;
  mode: PagingMode | null;
  /** The host's memory (shadow tables, VMCB) after the run. */
  host: PhysMem;
  /** The VMCB's CR3 after the run (the shadow root under a paging mode). */
  realCr3: number;
  /** A paging exit that came back 'mmio' (ends the run): the guest-virtual and guest-physical address. */
  mmio: { gva: number; gpa: number } | null;
  /** The outcome of the paging exit that ended the run, if one did ('unhandled' or 'mmio'). */
  outcome: string | null;
}

export interface RigOptions {
  /** Host-physical base of guest RAM under a paging mode (default 4 MiB; native always uses 0). */
  ramBase?: number;
  /** Guest memory setup before the run (page tables, data), in guest-physical addresses. */
  setup?: (g: GuestMem) => void;
  options?: Record<string, unknown>;
  maxCycles?: number;
  /** Host pages the mode may allocate (default: the whole pool). */
  poolPages?: number;
}

/** Guest-physical memory access for test setup. */
export class GuestMem {
  constructor(readonly mem: PhysMem, readonly base: number) {}
  w32(gpa: number, v: number): void { this.mem.write(this.base + gpa, 4, v >>> 0); }
  r32(gpa: number): number { return this.mem.read(this.base + gpa, 4); }
  bytes(gpa: number, b: Uint8Array): void { this.mem.writeBytes(this.base + gpa, b); }
}

function desc(base: number, limit: number, access: number, flags: number): [number, number] {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const hi = (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | ((access & 0xff) << 8) | ((base >>> 16) & 0xff);
  return [lo >>> 0, hi >>> 0];
}

/** Assembles guest code (the prologue's macros available) for CODE. */
export function guestCode(src: string): Uint8Array {
  return assemble(`${PROLOGUE}\n${src}\n`, CODE);
}

/** Runs `image` (at CODE, flat ring 0, paging off) under `spec` until it ends. */
export function runGuest(spec: ModeSpec, image: Uint8Array, o: RigOptions = {}): RunResult {
  const native = spec === 'native';
  const ramBase = native ? 0 : o.ramBase ?? 0x400000;
  if (ramBase + RAM > POOL) throw new RangeError('guest RAM would overlap the host page pool');
  const mem = new PhysMem(HOST_MEM);
  const cpu = new Cpu({ mem });
  const g = new GuestMem(mem, ramBase);
  // descriptor tables, TSS, stubs
  const gdt: [number, number][] = [[0, 0], desc(0, 0xfffff, 0x9b, 0xc), desc(0, 0xfffff, 0x93, 0xc),
    desc(0, 0xfffff, 0xfb, 0xc), desc(0, 0xfffff, 0xf3, 0xc), desc(TSS, 0x67, 0x89, 0)];
  gdt.forEach(([lo, hi], k) => { g.w32(GDT + 8 * k, lo); g.w32(GDT + 8 * k + 4, hi); });
  g.w32(TSS + 4, STACK0); g.w32(TSS + 8, 0x10);
  for (let vec = 0; vec < 256; vec++) {
    const stub = STUBS + vec * 16;
    // mov $vec, %eax; out %eax, $0xe1; hlt
    g.bytes(stub, new Uint8Array([0xb8, vec, 0, 0, 0, 0xe7, PORT_BAD, 0xf4]));
    const off = vec === 14 ? PF_HANDLER : stub;
    g.w32(IDT + vec * 8, (0x08 << 16) | (off & 0xffff));
    g.w32(IDT + vec * 8 + 4, (off & 0xffff0000) | 0x8e00);
  }
  g.bytes(CODE, image);
  o.setup?.(g);
  // the VMCB
  mem.writeBytes(IOPM_PA, new Uint8Array(0x3000).fill(0xff));
  mem.writeBytes(VMCB_PA, new Uint8Array(0x1000));
  const v = new V.VmcbView(mem, VMCB_PA);
  v.w32(V.VMCB_INTERCEPTS3, V.IC3_IOIO | V.IC3_HLT | V.IC3_SHUTDOWN);
  v.w32(V.VMCB_INTERCEPTS4, V.IC4_VMRUN);
  v.w64(V.VMCB_IOPM_BASE, IOPM_PA);
  v.w32(V.VMCB_ASID, 1);
  for (const [k, off] of V.VMCB_SEGS.entries()) {
    v.w16(off, k === 1 ? 0x08 : 0x10); v.w16(off + 2, k === 1 ? 0xc9b : 0xc93); v.w32(off + 4, 0xffffffff); v.w64(off + 8, 0);
  }
  v.w32(V.VMCB_GDTR + 4, gdt.length * 8 - 1); v.w64(V.VMCB_GDTR + 8, GDT);
  v.w32(V.VMCB_IDTR + 4, 0x7ff); v.w64(V.VMCB_IDTR + 8, IDT);
  v.w16(V.VMCB_TR, 0x28); v.w16(V.VMCB_TR + 2, 0x08b); v.w32(V.VMCB_TR + 4, 0x67); v.w64(V.VMCB_TR + 8, TSS);
  v.w16(V.VMCB_LDTR + 2, 0x082);
  v.w64(V.VMCB_EFER, 0x1000);
  v.w64(V.VMCB_CR0, 0x11);
  v.w64(V.VMCB_DR6, 0xffff0ff0); v.w64(V.VMCB_DR7, 0x400);
  v.w64(V.VMCB_RFLAGS, 2);
  v.w64(V.VMCB_RIP, CODE);
  v.w64(V.VMCB_RSP, STACK0);

  const r: RunResult = {
    log: [], status: null, failure: null, counts: new Map(), exits: new Map(), charged: 0, refs: 0,
    ram: new Uint8Array(0), cycles: 0, mode: null, host: mem, realCr3: 0, mmio: null, outcome: null,
  };
  // the host's page pool for the mode's tables
  let next = POOL;
  const limit = POOL + (o.poolPages ?? (POOL_END - POOL) / 0x1000) * 0x1000;
  const freed: number[] = [];
  let injected = false;
  const ctx: PagingContext = {
    mem, vmcb: VMCB_PA, ramBase, ramSize: RAM,
    allocPages(n) {
      if (n === 1 && freed.length > 0) return freed.pop()!;
      if (next + n * 0x1000 > limit) return null;
      const a = next; next += n * 0x1000; return a;
    },
    freePages(base, n) { for (let k = 0; k < n; k++) freed.push(base + k * 0x1000); },
    charge(c) { r.charged += c; cpu.cycles += c; },
    chargeRefs(n) { r.refs += n; cpu.cycles += n; },
    injectException(vec, err, cr2) {
      injected = true;
      const ev = err !== undefined && hasErrorCode(vec);
      v.w32(V.VMCB_EVENTINJ, (V.EVT_V | (V.EVT_EXCEPTION << 8) | (ev ? V.EVT_EV : 0) | vec) >>> 0);
      v.w32(V.VMCB_EVENTINJ + 4, ev ? err! : 0);
      if (vec === 14 && cr2 !== undefined) v.w64hl(V.VMCB_CR2, cr2 >>> 0, 0);
    },
    count(name, n = 1) { r.counts.set(name, (r.counts.get(name) ?? 0) + n); },
    readGpr(n) { return n === 0 ? v.u32(V.VMCB_RAX) : n === 4 ? v.u32(V.VMCB_RSP) : cpu.r[n] >>> 0; },
    writeGpr(n, val) {
      if (n === 0) v.w64hl(V.VMCB_RAX, val >>> 0, 0);
      else if (n === 4) v.w64hl(V.VMCB_RSP, val >>> 0, 0);
      else cpu.r[n] = val | 0;
    },
  };
  const mode = native ? null : spec.create(o.options ?? {});
  r.mode = mode;
  if (mode && !mode.setup(ctx)) throw new Error('mode setup failed');
  const codes = new Set(mode?.exitCodes ?? []);
  let stop = false;
  const fail = (msg: string): void => { if (r.failure === null) r.failure = msg; stop = true; };
  cpu.host = {
    trap(c, t) {
      if (t.kind !== TRAP_VMEXIT) { fail(`unexpected host trap ${t.kind}`); c.idle(); return; }
      const code = t.vector;
      r.exits.set(code, (r.exits.get(code) ?? 0) + 1);
      v.w8(V.VMCB_TLB_CONTROL, 0);
      injected = false;
      const rip = v.u32(V.VMCB_RIP);
      if (code === V.EXIT_IOIO) {
        const port = v.u32(V.VMCB_EXITINFO1) >>> 16;
        const eax = v.u32(V.VMCB_RAX);
        if (port === PORT_LOG) r.log.push(eax);
        else if (port === PORT_EXIT) { r.status = eax & 0xff; stop = true; }
        else if (port === PORT_BAD) fail(`unexpected vector ${eax} in the guest (cr2 0x${c.cr2.toString(16)})`);
        else fail(`unexpected port 0x${port.toString(16)}`);
        v.w64hl(V.VMCB_RIP, v.u32(V.VMCB_NRIP), 0);
      } else if (mode !== null && codes.has(code)) {
        const out = mode.handleExit(ctx, code);
        if (out !== 'handled') r.outcome = out;
        if (out === 'mmio') {
          const gva = v.u32(V.VMCB_EXITINFO2);
          r.mmio = { gva, gpa: mode.guestPhys!(ctx, gva, false) };
          stop = true;
        } else if (out !== 'handled') {
          fail(`exit 0x${code.toString(16)} at 0x${rip.toString(16)}: ${out} (info1 0x${v.u32(V.VMCB_EXITINFO1).toString(16)} info2 0x${v.u32(V.VMCB_EXITINFO2).toString(16)})`);
        } else if (!injected) {
          const ii = v.u32(V.VMCB_EXITINTINFO);
          if ((ii & V.EVT_V) !== 0) { v.w32(V.VMCB_EVENTINJ, ii); v.w32(V.VMCB_EVENTINJ + 4, v.hi32(V.VMCB_EXITINTINFO)); }
        }
      } else fail(`unexpected exit 0x${code.toString(16)} at 0x${rip.toString(16)}`);
      if (stop) { c.idle(); return; }
      if (vmrun(c, VMCB_PA) !== 0) { fail('vmrun failed'); c.idle(); }
    },
  };
  if (vmrun(cpu, VMCB_PA) !== 0) throw new Error('vmrun failed');
  const max = o.maxCycles ?? 20_000_000;
  while (!stop && cpu.cycles < max) {
    const before = cpu.cycles;
    cpu.run(Math.min(max, cpu.cycles + 200_000));
    if (cpu.cycles === before) break;
  }
  if (!stop) fail(`guest did not finish (eip 0x${cpu.eip.toString(16)}, guest ${cpu.guest})`);
  r.ram = mem.u8.slice(ramBase, ramBase + RAM);
  r.cycles = cpu.cycles;
  r.realCr3 = v.u32(V.VMCB_CR3);
  return r;
}

/** Points guest IDT entry `vec` at `off` (a ring-0 interrupt gate). */
export function gate(g: GuestMem, vec: number, off: number): void {
  g.w32(IDT + vec * 8, (0x08 << 16) | (off & 0xffff));
  g.w32(IDT + vec * 8 + 4, (off & 0xffff0000) | 0x8e00);
}

// ---- page-table helpers (guest-physical)

export const PT_P = 1, PT_W = 2, PT_U = 4, PT_A = 0x20, PT_D = 0x40, PT_PS = 0x80, PT_G = 0x100;

/** Identity-maps [0, 4 MiB) through page table `pt` in directory `pd`: below 1 MiB user RW, the rest supervisor RW. */
export function identity(g: GuestMem, pd: number, pt: number): void {
  g.w32(pd, pt | PT_P | PT_W | PT_U);
  for (let i = 0; i < 1024; i++) g.w32(pt + i * 4, (i << 12) | PT_P | PT_W | (i < 256 ? PT_U : 0));
}

/** Enables paging with CR3 = pd (and CR4 = cr4), as guest code. */
export const enablePaging = (pd: number, cr4 = 0x10): string => `
  mov $${cr4}, %eax
  mov %eax, %cr4
  mov $${pd}, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $0x80010000, %eax
  mov %eax, %cr0
`;
