// Shared pieces of the kernel/mm tests: a machine with pmem, a page-table walker that reads the
// tables from emulated memory as the CPU would, a tiny i386 encoder for the test programs (no
// assembler needed), and a ring-3 runner under a host handler that serves a few system calls
// from an address space (brk, mmap2, munmap, mprotect, exit), as the kernel will.
import { Cpu, TRAP_EXCEPTION, TRAP_SOFTINT, type TrapRecord } from '../../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import { pcMemoryMap } from '../../../hw/boot/multiboot.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { AddressSpace, type AspaceOptions, coreInvalidator, CR4_PSE, KernelSpace } from '../../../kernel/mm/aspace.ts';
import { Pmem } from '../../../kernel/mm/pmem.ts';

export const MiB = 1 << 20;
export const meter = (): { cycles: number } => ({ cycles: 0 });

export interface Env { mem: PhysMem; pmem: Pmem; cpu: Cpu; kernel: KernelSpace }

export function makeEnv(ram = 64 * MiB): Env {
  const mem = new PhysMem(ram);
  const pmem = new Pmem(pcMemoryMap(ram), { ramSize: ram });
  const cpu = new Cpu({ mem });
  return { mem, pmem, cpu, kernel: new KernelSpace(pmem, mem) };
}

export function newSpace(e: Env, o: Partial<AspaceOptions> = {}): AddressSpace {
  const r = AddressSpace.create(e.cpu, { pmem: e.pmem, mem: e.mem, kernel: e.kernel, invalidate: coreInvalidator(e.cpu), ...o });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

export interface Walk { phys: number; writable: boolean; user: boolean; large: boolean }

/** Walks the 2-level tables at `cr3` for `va` (PSE on); null if not present. */
export function walk(mem: PhysMem, cr3: number, va: number): Walk | null {
  const pde = mem.read(cr3 + Math.floor(va / 0x400000) * 4, 4);
  if ((pde & 1) === 0) return null;
  if (pde & 0x80) {
    return { phys: (pde & 0xffc00000) + (va % 0x400000), writable: (pde & 2) !== 0, user: (pde & 4) !== 0, large: true };
  }
  const pte = mem.read((pde & 0xfffff000) + (Math.floor(va / 4096) % 1024) * 4, 4);
  if ((pte & 1) === 0) return null;
  return {
    phys: (pte & 0xfffff000) + (va % 4096), writable: (pde & pte & 2) !== 0, user: (pde & pte & 4) !== 0, large: false,
  };
}

/** The raw page-directory entry for `va`. */
export const pdeOf = (mem: PhysMem, cr3: number, va: number): number => mem.read(cr3 + Math.floor(va / 0x400000) * 4, 4);

// ------------------------------------------------------------------------------ a tiny encoder

export const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4, EBP = 5, ESI = 6, EDI = 7;

export class Asm {
  readonly bytes: number[] = [];
  private labels = new Map<string, number>();
  private fix: { at: number; label: string }[] = [];
  private b(...xs: number[]): this { this.bytes.push(...xs.map((x) => x & 0xff)); return this; }
  private d(x: number): this { return this.b(x, x >>> 8, x >>> 16, x >>> 24); }
  label(n: string): this { this.labels.set(n, this.bytes.length); return this; }
  movImm(r: number, v: number): this { return this.b(0xb8 + r).d(v); }
  movRR(dst: number, src: number): this { return this.b(0x89, 0xc0 | (src << 3) | dst); }
  /** mov dst, [base + disp32] */
  load(dst: number, base: number, disp = 0): this { return this.b(0x8b, 0x80 | (dst << 3) | base).d(disp); }
  /** mov [base + disp32], src */
  store(base: number, src: number, disp = 0): this { return this.b(0x89, 0x80 | (src << 3) | base).d(disp); }
  addImm(r: number, v: number): this { return this.b(0x81, 0xc0 | r).d(v); }
  push(r: number): this { return this.b(0x50 + r); }
  pop(r: number): this { return this.b(0x58 + r); }
  dec(r: number): this { return this.b(0x48 + r); }
  jnz(l: string): this { this.b(0x75, 0); this.fix.push({ at: this.bytes.length - 1, label: l }); return this; }
  int80(): this { return this.b(0xcd, 0x80); }
  /** mov gs, ax */
  movGsAx(): this { return this.b(0x8e, 0xe8); }
  /** mov eax, gs:[disp32] */
  loadGs(disp: number): this { return this.b(0x65, 0xa1).d(disp); }
  /** A system call: eax = nr, ebx/ecx/edx/esi = args. */
  sys(nr: number, ...args: number[]): this {
    [EBX, ECX, EDX, ESI].forEach((r, k) => { if (k < args.length) this.movImm(r, args[k]); });
    return this.movImm(EAX, nr).int80();
  }
  exit(code = 0): this { return this.sys(1, code); }
  build(): Uint8Array {
    for (const f of this.fix) {
      const rel = this.labels.get(f.label)! - (f.at + 1);
      if (rel < -128 || rel > 127) throw new Error('jump too far');
      this.bytes[f.at] = rel & 0xff;
    }
    return Uint8Array.from(this.bytes);
  }
}

// ------------------------------------------------------------------------------ running at CPL 3

export const SYS_EXIT = 1, SYS_BRK = 45, SYS_MUNMAP = 91, SYS_MPROTECT = 125, SYS_MMAP2 = 192;
export const MAP_FIXED = 0x10;

export interface Run {
  traps: TrapRecord[];
  /** The exception that ended the run, if one did. */
  fault: TrapRecord | null;
  exitCode: number | null;
}

/** Loads the core for a ring-3 program in `as` (flat segments, paging with PSE and WP on). */
export function enterUser(cpu: Cpu, as: AddressSpace, eip: number, esp: number): void {
  cpu.reset();
  cpu.cr0 = 0x80010033;
  cpu.cr3 = as.cr3;
  cpu.cr4 = CR4_PSE;
  cpu.updateMode();
  cpu.flushTlbAll();
  cpu.setCpl(3);
  cpu.loadSegCache(CS, 0x23, 0, 0xffffffff, 0xc0fb);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0x2b, 0, 0xffffffff, 0xc0f3);
  cpu.eip = eip;
  cpu.r[4] = esp;
}

/**
 * Runs the loaded program until it exits or takes an exception, serving brk, mmap2 (anonymous),
 * munmap and mprotect from `as` with Linux's return conventions, and charging the work to the core.
 */
export function runUser(cpu: Cpu, as: AddressSpace, maxCycles = 20_000_000): Run {
  const run: Run = { traps: [], fault: null, exitCode: null };
  let done = false;
  cpu.host = {
    trap(c, t) {
      run.traps.push({ ...t });
      if (t.kind === TRAP_SOFTINT && t.vector === 0x80) {
        const [a, b, d, s] = [c.r[3] >>> 0, c.r[1] >>> 0, c.r[2] >>> 0, c.r[6] >>> 0];
        const nr = c.r[0];
        let ret = -38;
        const res = (r: { ok: true; value?: number } | { ok: false; error: string }, okv: number): number =>
          r.ok ? okv : -({ ENOMEM: 12, EINVAL: 22, EFAULT: 14, EPERM: 1, EEXIST: 17 } as Record<string, number>)[r.error];
        if (nr === SYS_EXIT) { run.exitCode = a; done = true; c.idle(); return; }
        if (nr === SYS_BRK) ret = as.brk(c, a);
        if (nr === SYS_MMAP2) {
          const r = as.mmap(c, { addr: a, len: b, prot: d, fixed: (s & MAP_FIXED) !== 0 });
          ret = res(r, r.ok ? r.value : 0);
        }
        if (nr === SYS_MUNMAP) ret = res(as.munmap(c, a, b), 0);
        if (nr === SYS_MPROTECT) ret = res(as.mprotect(c, a, b, d), 0);
        c.r[0] = ret;
        return;
      }
      if (t.kind === TRAP_EXCEPTION) run.fault = { ...t, cr2: t.cr2 >>> 0 };
      done = true;
      c.idle();
    },
  };
  const stop = cpu.cycles + maxCycles;
  while (!done && cpu.cycles < stop) cpu.run(Math.min(stop, cpu.cycles + 1_000_000));
  cpu.host = null;
  return run;
}
