// A protected-mode environment for the system-level CPU tests (paging, TLB, exceptions, system
// instructions): a GDT, a TSS, an IDT whose every vector leads to a one-byte HLT stub, and page
// table builders, all written into memory by the test before the program runs on a bare core.
//
// A program ends by halting with interrupts off; an exception it raises ends in the stub of its
// vector, which halts too, so a test reads what happened from the core afterwards: `event()`
// tells which stub the core halted in and what the CPU pushed. Nothing here needs port I/O.
import { type Cpu, HALTED } from '../../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import { loadPdptes } from '../../../hw/cpu/paging.ts';
import type { PhysMem } from '../../../hw/mem/physmem.ts';
import { assemble, type BareResult, runBare } from './bare.ts';

export const GDT = 0x1000, TSS = 0x1800, IDT = 0x2000, STUBS = 0x3000;
/** Ring-0 stack top for transitions from ring 3 (TSS.ESP0). */
export const RING0_STACK = 0x9000;
/** Where programs are loaded; CPL-0 programs start with ESP here (the stack lies below). */
export const ORG = 0x10000;
/** A ring-3 stack top for programs started at CPL 3. */
export const USER_STACK = 0x70000;
/** Scratch data area (identity-mapped in the paging helpers' default maps). */
export const DATA = 0x80000;
/** Programs at CPL 3 end with `int $0x40` (a DPL-3 gate to its stub). */
export const USER_EXIT = 0x40;

export const SEL_CODE0 = 0x08, SEL_DATA0 = 0x10, SEL_CODE3 = 0x1b, SEL_DATA3 = 0x23, SEL_TSS = 0x28;
export const AR_CODE0 = 0xc09b, AR_DATA0 = 0xc093, AR_CODE3 = 0xc0fb, AR_DATA3 = 0xc0f3;

export function w32(mem: PhysMem, a: number, v: number): void { mem.write(a >>> 0, 4, v >>> 0); }
export function r32(mem: PhysMem, a: number): number { return mem.read(a >>> 0, 4); }

/** A code/data segment descriptor (access byte, flags nibble G/D). */
export function setDesc(mem: PhysMem, sel: number, base: number, limit: number, access: number, flags: number): void {
  const a = GDT + (sel & ~7);
  w32(mem, a, ((base & 0xffff) << 16) | (limit & 0xffff));
  w32(mem, a + 4, (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff));
}

export interface GateOpts { type?: 'int' | 'trap' | 'int16'; dpl?: number; present?: boolean; sel?: number; off?: number }

/** Writes IDT entry `vec`; by default a present DPL-0 32-bit interrupt gate to the vector's HLT stub. */
export function setGate(mem: PhysMem, vec: number, o: GateOpts = {}): void {
  const off = o.off ?? STUBS + vec * 4;
  const sel = o.sel ?? SEL_CODE0;
  const type = o.type === 'trap' ? 0xf : o.type === 'int16' ? 0x6 : 0xe;
  const p = (o.present ?? true) ? 0x80 : 0;
  w32(mem, IDT + vec * 8, (sel << 16) | (off & 0xffff));
  w32(mem, IDT + vec * 8 + 4, (off & 0xffff0000) | ((p | ((o.dpl ?? 0) << 5) | type) << 8));
}

/**
 * Sets up the descriptor tables and loads the core's registers for them (as LGDT/LIDT/LTR
 * would): flat ring-0 and ring-3 code and data, a 32-bit TSS with SS0:ESP0, and 256 gates.
 */
export function setupTables(cpu: Cpu, mem: PhysMem): void {
  setDesc(mem, SEL_CODE0, 0, 0xfffff, 0x9b, 0xc);
  setDesc(mem, SEL_DATA0, 0, 0xfffff, 0x93, 0xc);
  setDesc(mem, SEL_CODE3, 0, 0xfffff, 0xfb, 0xc);
  setDesc(mem, SEL_DATA3, 0, 0xfffff, 0xf3, 0xc);
  setDesc(mem, SEL_TSS, TSS, 0x67, 0x8b, 0);
  w32(mem, TSS + 4, RING0_STACK);
  w32(mem, TSS + 8, SEL_DATA0);
  for (let v = 0; v < 256; v++) {
    mem.write(STUBS + v * 4, 1, 0xf4);
    setGate(mem, v);
  }
  cpu.gdtBase = GDT; cpu.gdtLimit = 0x3f;
  cpu.idtBase = IDT; cpu.idtLimit = 0x7ff;
  cpu.trSel = SEL_TSS; cpu.trBase = TSS; cpu.trLimit = 0x67; cpu.trAr = 0x8b;
}

/** Puts the core at CPL 3 with flat user segments (as an IRET to ring 3 would). */
export function enterUser(cpu: Cpu, eip: number, esp = USER_STACK): void {
  cpu.setCpl(3);
  cpu.loadSegCache(CS, SEL_CODE3, 0, 0xffffffff, AR_CODE3);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, SEL_DATA3, 0, 0xffffffff, AR_DATA3);
  cpu.eip = eip;
  cpu.r[4] = esp;
}

/** Two-level page tables (4 KiB pages and, with CR4.PSE, 4 MiB pages). */
export class Paging32 {
  private next: number;
  constructor(readonly mem: PhysMem, readonly pd = 0x100000) {
    this.next = pd + 0x1000;
    mem.u8.fill(0, pd, pd + 0x1000);
  }
  pdeAddr(lin: number): number { return this.pd + ((lin >>> 22) << 2); }
  /** The PTE's physical address for `lin`, creating its page table (PDE flags `pdeFlags`) if needed. */
  pteAddr(lin: number, pdeFlags = 7): number {
    const pa = this.pdeAddr(lin);
    let pde = r32(this.mem, pa);
    if ((pde & 1) === 0 || (pde & 0x80) !== 0) {
      const pt = this.next;
      this.next += 0x1000;
      this.mem.u8.fill(0, pt, pt + 0x1000);
      pde = pt | pdeFlags;
      w32(this.mem, pa, pde);
    }
    return (pde & 0xfffff000) + (((lin >>> 12) & 0x3ff) << 2);
  }
  map(lin: number, phys: number, flags = 3): void { w32(this.mem, this.pteAddr(lin), (phys & 0xfffff000) | flags); }
  unmap(lin: number): void { w32(this.mem, this.pteAddr(lin), 0); }
  map4m(lin: number, phys: number, flags = 3): void { w32(this.mem, this.pdeAddr(lin), (phys & 0xffc00000) | 0x80 | flags); }
  identity(start: number, end: number, flags = 3): void {
    for (let a = start; a < end; a += 0x1000) this.map(a, a, flags);
  }
  pte(lin: number): number { return r32(this.mem, this.pteAddr(lin)); }
  pde(lin: number): number { return r32(this.mem, this.pdeAddr(lin)); }
}

/** PAE page tables: a PDPT, page directories of 512 8-byte entries, 4 KiB and 2 MiB pages, NX. */
export class PagingPae {
  private next: number;
  constructor(readonly mem: PhysMem, readonly pdpt = 0x100000) {
    this.next = pdpt + 0x1000;
    mem.u8.fill(0, pdpt, pdpt + 0x1000);
  }
  private alloc(): number {
    const a = this.next;
    this.next += 0x1000;
    this.mem.u8.fill(0, a, a + 0x1000);
    return a;
  }
  pdeAddr(lin: number): number {
    const pa = this.pdpt + (lin >>> 30) * 8;
    let e = r32(this.mem, pa);
    if ((e & 1) === 0) { e = this.alloc() | 1; w32(this.mem, pa, e); }
    return (e & 0xfffff000) + (((lin >>> 21) & 0x1ff) << 3);
  }
  pteAddr(lin: number): number {
    const pa = this.pdeAddr(lin);
    let e = r32(this.mem, pa);
    if ((e & 1) === 0 || (e & 0x80) !== 0) { e = this.alloc() | 7; w32(this.mem, pa, e); w32(this.mem, pa + 4, 0); }
    return (e & 0xfffff000) + (((lin >>> 12) & 0x1ff) << 3);
  }
  map(lin: number, phys: number, flags = 3, nx = false): void {
    const a = this.pteAddr(lin);
    w32(this.mem, a, (phys & 0xfffff000) | flags);
    w32(this.mem, a + 4, nx ? 0x80000000 : 0);
  }
  map2m(lin: number, phys: number, flags = 3, nx = false): void {
    const a = this.pdeAddr(lin);
    w32(this.mem, a, (phys & 0xffe00000) | 0x80 | flags);
    w32(this.mem, a + 4, nx ? 0x80000000 : 0);
  }
  identity(start: number, end: number, flags = 3): void {
    for (let a = start; a < end; a += 0x1000) this.map(a, a, flags);
  }
}

/**
 * Turns paging on from outside the program (for programs that start at CPL 3): as if CPL-0 code
 * had written CR3, CR4 and CR0.
 */
export function enablePaging(cpu: Cpu, cr3: number, o: { cr4?: number; wp?: boolean } = {}): void {
  cpu.cr3 = cr3;
  cpu.cr4 = o.cr4 ?? 0;
  cpu.cr0 = (cpu.cr0 | 0x80000001 | (o.wp ? 0x10000 : 0)) >>> 0;
  if (cpu.pae && !loadPdptes(cpu)) throw new Error('bad PDPTEs');
  cpu.updateMode();
  cpu.flushTlbAll();
}

export interface SysOptions {
  ram?: number;
  /** Start at CPL 3 at ORG (ring-3 segments) with ESP = USER_STACK. */
  user?: boolean;
  /** Extra set-up after the tables (page tables, gates, registers). */
  setup?: (cpu: Cpu, mem: PhysMem) => void;
  maxCycles?: number;
}

/** Assembles a 32-bit GNU-syntax program at ORG and runs it bare in protected mode with the tables above. */
export function runSys(src: string, o: SysOptions = {}): BareResult {
  const img = assemble(`.code32\n${src}\n`, ORG);
  return runBare(img, {
    org: ORG,
    ram: o.ram ?? 16 << 20,
    maxCycles: o.maxCycles ?? 2_000_000,
    setup: (cpu, mem) => {
      setupTables(cpu, mem);
      if (o.user) { enterUser(cpu, ORG); setGate(mem, USER_EXIT, { dpl: 3 }); }
      o.setup?.(cpu, mem);
    },
  });
}

/** What the core halted in: the HLT stub of an exception/interrupt vector, or the program's own HLT. */
export interface Halt {
  /** The vector whose stub the core halted in, or -1 (the program halted by itself). */
  vector: number;
  /** Dwords at the top of the stack (the frame the CPU pushed), read through linear = physical. */
  stack: number[];
}

export function halted(r: BareResult, words = 6): Halt {
  const { cpu, mem } = r;
  if (cpu.state !== HALTED) throw new Error(`core did not halt: ${r.end} ${cpu.shutdownReason} eip=${cpu.eip.toString(16)}`);
  const at = cpu.eip - 1 - STUBS;
  const vector = cpu.segBase[CS] === 0 && at >= 0 && at < 1024 && at % 4 === 0 ? at / 4 : -1;
  const stack: number[] = [];
  const esp = (cpu.segBase[SS] + cpu.r[4]) >>> 0;
  for (let k = 0; k < words; k++) stack.push(esp + 4 * k + 3 < mem.ramSize ? r32(mem, esp + 4 * k) : -1);
  return { vector, stack };
}

/** The frame of an exception with an error code taken at the same privilege: err, eip, cs, eflags. */
export function excFrame(r: BareResult): { vector: number; err: number; eip: number; cs: number; eflags: number } {
  const h = halted(r);
  return { vector: h.vector, err: h.stack[0], eip: h.stack[1], cs: h.stack[2] & 0xffff, eflags: h.stack[3] };
}

export const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;
