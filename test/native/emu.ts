// The emulator side of the differential CPU tests: runs a NativeCase on our CPU in the same
// situation the harness gives it natively (flat 32-bit user mode at CPL 3, paging on, the code
// region at CODE_BASE and the data region at DATA_BASE with unmapped guard pages around them)
// and reports a NativeResult, mapping the exception that ended the run to the Linux signal the
// host kernel would send (see README.md's table).
import { Cpu, type HostHandler, type TrapRecord, TRAP_SOFTINT } from '../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../hw/cpu/insn.ts';
import { PhysMem } from '../../hw/mem/physmem.ts';
import { CODE_BASE, CODE_SIZE, DATA_BASE, DATA_SIZE, type NativeCase, type NativeResult } from './native.ts';

const PD = 0x1000, PT_CODE = 0x2000, PT_DATA = 0x3000, PT_SYS = 0x5000;
const CODE_PHYS = 0x10000, DATA_PHYS = 0x30000, SYS_PHYS = 0x4000;
const RAM = 0x40000;

/**
 * The system page (supervisor-only, at the top of the linear space): a GDT laid out like the one
 * Linux x86-64 gives a 32-bit process (so segment loads fault or succeed as natively), and a TSS
 * without an I/O permission bitmap (so IN/OUT at CPL 3 with IOPL 0 is #GP(0), as natively).
 * Entries: 1-3 kernel code/code/data (DPL 0), 4 user code 0x23, 5 user data 0x2b, 6 user code
 * 0x33 (64-bit natively; a readable code segment here), 8 the TSS (system), 10 an LDT (system),
 * 12 a TLS data segment (glibc's GS 0x63; its base differs from the host's), 15 data (Linux's
 * per-CPU segment 0x7b; its limit differs from the host's); the rest are empty.
 */
export const SYS_LIN = 0xfffff000;
export const GDT_LIMIT = 16 * 8 - 1;
export const TSS_OFF = 0x800;
const GDT: readonly (readonly [number, number])[] = [
  [0, 0],
  [0x0000ffff, 0x00cf9b00], [0x0000ffff, 0x00af9b00], [0x0000ffff, 0x00cf9300],
  [0x0000ffff, 0x00cffb00], [0x0000ffff, 0x00cff300], [0x0000ffff, 0x00affb00],
  [0, 0],
  [(((SYS_LIN + TSS_OFF) & 0xffff) << 16) | 0x67, ((SYS_LIN + TSS_OFF) & 0xff000000) | 0x8b00 | (((SYS_LIN + TSS_OFF) >>> 16) & 0xff)], [0, 0],
  [0x0000ffff, 0x00008200], [0, 0],
  [0x0000ffff, 0x00cff300], [0, 0], [0, 0],
  [0x00000000, 0x0040f500],
];

/** Linux's signal for each vector a user-mode program can take. */
export function signalFor(vector: number, soft: boolean): number {
  if (soft && vector === 0x80) return 31;
  switch (vector) {
    case 0: case 16: return 8;
    case 1: case 3: return 5;
    case 6: return 4;
    case 17: return 7;
    default: return 11;
  }
}

class Recorder implements HostHandler {
  done = false;
  rec: TrapRecord = { kind: 0, vector: 0, errorCode: 0, cr2: 0, eip: 0 };
  trap(cpu: Cpu, t: TrapRecord): void {
    this.done = true;
    this.rec = { ...t };
    cpu.idle();
  }
}

export interface EmuMachine { cpu: Cpu; mem: PhysMem }

/** Builds the user-mode environment once; `runEmu` reloads it per case. */
export function makeEmuMachine(): EmuMachine {
  const mem = new PhysMem(RAM);
  const cpu = new Cpu({ mem });
  return { cpu, mem };
}

function w32(mem: PhysMem, a: number, v: number): void { mem.write(a, 4, v >>> 0); }

function setup(m: EmuMachine, c: NativeCase): void {
  const { cpu, mem } = m;
  mem.u8.fill(0);
  // page directory: one table for the code region, one for the data region (user, writable)
  w32(mem, PD + ((CODE_BASE >>> 22) << 2), PT_CODE | 7);
  w32(mem, PD + ((DATA_BASE >>> 22) << 2), PT_DATA | 7);
  for (let p = 0; p < CODE_SIZE / 4096; p++) {
    w32(mem, PT_CODE + (((CODE_BASE >>> 12) & 0x3ff) + p) * 4, (CODE_PHYS + p * 4096) | 7);
  }
  for (let p = 0; p < DATA_SIZE / 4096; p++) {
    w32(mem, PT_DATA + (((DATA_BASE >>> 12) & 0x3ff) + p) * 4, (DATA_PHYS + p * 4096) | 7);
  }
  // the system page: present, writable, supervisor only
  w32(mem, PD + ((SYS_LIN >>> 22) << 2), PT_SYS | 3);
  w32(mem, PT_SYS + ((SYS_LIN >>> 12) & 0x3ff) * 4, SYS_PHYS | 3);
  GDT.forEach(([lo, hi], k) => { w32(mem, SYS_PHYS + k * 8, lo); w32(mem, SYS_PHYS + k * 8 + 4, hi); });
  mem.write(SYS_PHYS + TSS_OFF + 0x66, 2, 0x68); // I/O bitmap offset past the TSS limit: no bitmap
  const code = new Uint8Array(CODE_SIZE).fill(0xf4);
  code.set(c.code, 0);
  code[c.code.length] = 0x0f; code[c.code.length + 1] = 0x0b;
  mem.writeBytes(CODE_PHYS, code);
  mem.writeBytes(DATA_PHYS, c.data);

  cpu.reset();
  cpu.cr0 = 0x80010033; // PG WP NE ET MP PE
  cpu.cr3 = PD;
  cpu.cr4 = 0;
  cpu.updateMode();
  cpu.flushTlbAll();
  cpu.gdtBase = SYS_LIN; cpu.gdtLimit = GDT_LIMIT;
  cpu.trSel = 0x40; cpu.trBase = SYS_LIN + TSS_OFF; cpu.trLimit = 0x67; cpu.trAr = 0x8b;
  const code32 = 0xcffb, data32 = 0xcff3; // G D/B P DPL3 S type
  cpu.setCpl(3);
  cpu.loadSegCache(CS, 0x23, 0, 0xffffffff, code32 & 0xf0ff);
  for (const s of [SS, DS, ES, GS]) cpu.loadSegCache(s, 0x2b, 0, 0xffffffff, data32 & 0xf0ff);
  cpu.loadSegCache(FS, 0, 0, 0, 0);
  cpu.setCpl(3);
  for (let k = 0; k < 8; k++) cpu.r[k] = c.regs[k] | 0;
  cpu.setEflags((c.eflags & 0xcd5) | 0x200, -1);
  cpu.eip = CODE_BASE;
}

/** Runs one case on the emulator; `maxCycles` plays the harness's timeout. */
export function runEmu(m: EmuMachine, c: NativeCase, maxCycles = 2_000_000): NativeResult {
  setup(m, c);
  const { cpu, mem } = m;
  const rec = new Recorder();
  cpu.host = rec;
  cpu.cycles = 0;
  cpu.run(maxCycles);
  cpu.host = null;
  const regs = Array.from(cpu.r.subarray(0, 8), (v) => v >>> 0);
  const data = mem.readBytes(DATA_PHYS, DATA_SIZE);
  const eflags = cpu.getEflags() & ~0x10000;
  if (!rec.done) return { signal: 14, faultEip: cpu.eip >>> 0, trapno: 0xffffffff, err: 0, regs, eflags, data };
  const t = rec.rec;
  const end = CODE_BASE + c.code.length;
  if (t.vector === 6 && t.eip === end) return { signal: 0, faultEip: 0, trapno: 0xffffffff, err: 0, regs, eflags, data };
  const soft = t.kind === TRAP_SOFTINT;
  const signal = signalFor(t.vector, soft);
  // a software INT n whose gate the kernel does not allow is a #GP at the INT instruction natively
  if (soft && t.vector !== 3 && t.vector !== 4 && t.vector !== 0x80) {
    return { signal: 11, faultEip: cpu.insnEip >>> 0, trapno: 13, err: (t.vector * 8 + 2) >>> 0, regs, eflags, data };
  }
  if (signal === 31) return { signal, faultEip: t.eip, trapno: 0xffffffff, err: 0, regs, eflags, data };
  return { signal, faultEip: t.eip, trapno: t.vector, err: t.errorCode < 0 ? 0 : t.errorCode >>> 0, regs, eflags, data };
}
