// A minimal core for unit tests that need state user mode cannot reach (CPL, IOPL, a TSS, real
// mode, paging set up by hand): machine code is placed in RAM, the descriptor caches are loaded
// directly, and the core runs in host mode so that every event (exception, interrupt) ends up in
// a recorder instead of an IDT. The code ends with UD2; reaching it is the normal end.
import { Cpu, type HostHandler, type InterruptController, type IoBus, type TrapRecord } from '../../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';

export const CODE = 0x1000;
export const UD2 = [0x0f, 0x0b];

export interface RigOptions {
  /** 'real': real mode, CS:IP = 0:CODE; 'flat32': protected mode, flat 4 GiB segments. */
  mode: 'real' | 'flat32';
  cpl?: number;
  iopl?: number;
  io?: IoBus;
  ram?: number;
}

/** Events the host handler saw, and what the core looked like at each. */
export class Recorder implements HostHandler {
  readonly events: { kind: number; vector: number; errorCode: number; eip: number; ecx: number }[] = [];
  /** Called for each event; return true to let the core continue (else it idles, ending the run). */
  onEvent: ((cpu: Cpu, t: TrapRecord) => boolean) | null = null;
  trap(cpu: Cpu, t: TrapRecord): void {
    this.events.push({ kind: t.kind, vector: t.vector, errorCode: t.errorCode, eip: t.eip, ecx: cpu.r[1] >>> 0 });
    if (this.onEvent !== null && this.onEvent(cpu, t)) return;
    cpu.idle();
  }
  get last() { return this.events[this.events.length - 1]; }
}

export interface Rig { cpu: Cpu; mem: PhysMem; rec: Recorder }

/** Builds a core with `code` (followed by UD2) at CODE, in the given mode, CPL and IOPL. */
export function makeRig(code: number[], o: RigOptions): Rig {
  const mem = new PhysMem(o.ram ?? 0x100000);
  const cpu = new Cpu({ mem, io: o.io });
  mem.writeBytes(CODE, Uint8Array.from([...code, ...UD2]));
  const rec = new Recorder();
  cpu.host = rec;
  const cpl = o.cpl ?? 0;
  if (o.mode === 'real') {
    cpu.loadSegCache(CS, 0, 0, 0xffff, 0x9b);
    for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0, 0, 0xffff, 0x93);
  } else {
    cpu.cr0 |= 1;
    cpu.updateMode();
    cpu.setCpl(cpl);
    const dpl = cpl << 5;
    cpu.loadSegCache(CS, 0x08 | cpl, 0, 0xffffffff, 0xc09b | dpl);
    for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0x10 | cpl, 0, 0xffffffff, 0xc093 | dpl);
    cpu.setCpl(cpl);
  }
  cpu.setEflags(((o.iopl ?? 0) << 12) | 0x200, -1);
  cpu.eip = CODE;
  cpu.r[4] = 0x8000;
  return { cpu, mem, rec };
}

/** Runs until the core idles (an event the recorder does not continue from) or `cycles` pass. */
export function runRig(r: Rig, cycles = 10_000_000): void {
  r.cpu.run(r.cpu.cycles + cycles);
}

/** True if the run ended at the UD2 after the code. */
export function endedAtMarker(r: Rig, codeLen: number): boolean {
  const e = r.rec.last;
  return e !== undefined && e.vector === 6 && e.eip === CODE + codeLen;
}

/** An interrupt controller that raises `vector` once, when the core's cycle count reaches `at`. */
export class OneShotIrq implements InterruptController {
  private fired = false;
  constructor(private readonly cpu: Cpu, private readonly at: number, private readonly vector = 0x20) { }
  hasInterrupt(): boolean { return !this.fired && this.cpu.cycles >= this.at; }
  acknowledge(): number { this.fired = true; return this.vector; }
}
