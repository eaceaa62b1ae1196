// A flat i386 image run in host user mode on one core: the situation of test/native/emu.ts
// (flat 32-bit segments at CPL 3, paging on with 4 KiB user pages, events to a host handler),
// generalised to any image, base address and memory size. The bench uses it; anything that
// needs "run this flat program on the CPU and tell me how it ended" can.
import { Cpu, HALTED, SHUTDOWN, type HostHandler, type TrapRecord, TRAP_EXCEPTION } from '../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../hw/cpu/insn.ts';
import { PhysMem } from '../hw/mem/physmem.ts';

export interface FlatProgram {
  /** The image, loaded at `base`. */
  image: Uint8Array;
  /** Linear load address: 4 MiB aligned. */
  base: number;
  /** Bytes mapped from `base` (image, .bss, stack), a multiple of 4 KiB. The stack starts at the top. */
  memSize: number;
  /** Entry point (default: base). */
  entry?: number;
}

export interface UserMachine {
  cpu: Cpu;
  mem: PhysMem;
  /** Physical address where `base` is mapped. */
  physBase: number;
}

/** How a run ended: the first host trap (the program's exit), or a limit. */
export interface UserRunResult {
  /** The trap that ended the run, or null when `maxCycles` ran out (or the core shut down). */
  trap: TrapRecord | null;
  shutdown: string | null;
  /** Host (wall-clock) seconds spent in cpu.run. */
  seconds: number;
  /** CPU seconds of this process meanwhile (user + system; all its threads, GC included). */
  cpuSeconds: number;
}

const PD = 0x1000;
const PT0 = 0x2000;

function w32(mem: PhysMem, a: number, v: number): void { mem.write(a, 4, v >>> 0); }

/** Builds the machine and loads the program: paging maps [base, base+memSize) to RAM, user RW. */
export function loadFlat(p: FlatProgram): UserMachine {
  if (p.base % 0x400000 !== 0) throw new RangeError(`base ${p.base.toString(16)} must be 4 MiB aligned`);
  if (p.memSize % 4096 !== 0 || p.memSize < p.image.length) throw new RangeError(`memSize ${p.memSize} must be a multiple of 4 KiB holding the image`);
  const tables = Math.ceil(p.memSize / 0x400000);
  const physBase = Math.ceil((PT0 + tables * 4096) / 0x10000) * 0x10000;
  const mem = new PhysMem(physBase + p.memSize);
  const cpu = new Cpu({ mem });
  for (let t = 0; t < tables; t++) w32(mem, PD + (((p.base >>> 22) + t) << 2), (PT0 + t * 4096) | 7);
  for (let pg = 0; pg < p.memSize / 4096; pg++) w32(mem, PT0 + pg * 4, (physBase + pg * 4096) | 7);
  mem.writeBytes(physBase, p.image);

  cpu.reset();
  cpu.cr0 = 0x80010033; // PG WP NE ET MP PE
  cpu.cr3 = PD;
  cpu.updateMode();
  cpu.flushTlbAll();
  cpu.setCpl(3);
  cpu.loadSegCache(CS, 0x23, 0, 0xffffffff, 0xc0fb);
  for (const s of [SS, DS, ES, GS]) cpu.loadSegCache(s, 0x2b, 0, 0xffffffff, 0xc0f3);
  cpu.loadSegCache(FS, 0, 0, 0, 0);
  cpu.setCpl(3);
  cpu.r.fill(0);
  cpu.r[4] = (p.base + p.memSize) | 0;
  cpu.setEflags(0x202, -1);
  cpu.eip = (p.entry ?? p.base) >>> 0;
  return { cpu, mem, physBase };
}

class FirstTrap implements HostHandler {
  rec: TrapRecord | null = null;
  trap(cpu: Cpu, t: TrapRecord): void {
    this.rec = { ...t };
    cpu.idle();
  }
}

/**
 * Runs until the program's first host trap (an exception, INT n, SYSENTER) or `maxCycles`, in
 * quanta of `quantum` cycles as the machine would (DESIGN.md: default 10,000).
 */
export function runFlat(m: UserMachine, maxCycles: number, quantum = 10_000): UserRunResult {
  const { cpu } = m;
  const h = new FirstTrap();
  cpu.host = h;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  while (h.rec === null && cpu.state !== SHUTDOWN && cpu.cycles < maxCycles) {
    cpu.run(Math.min(cpu.cycles + quantum, maxCycles));
    if (cpu.state === HALTED && h.rec === null) break;
  }
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  cpu.host = null;
  return { trap: h.rec, shutdown: cpu.state === SHUTDOWN ? cpu.shutdownReason : null, seconds, cpuSeconds: (c.user + c.system) / 1e6 };
}

/** True when the run ended at a #UD raised by the instruction at `eip` (the program's UD2). */
export function endedAtUd2(r: UserRunResult, eip: number): boolean {
  return r.trap !== null && r.trap.kind === TRAP_EXCEPTION && r.trap.vector === 6 && r.trap.eip === eip >>> 0;
}
