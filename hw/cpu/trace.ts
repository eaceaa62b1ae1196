/**
 * `--trace insn`: a log of every executed instruction, in a form close to QEMU's
 * `-d in_asm,cpu` (run QEMU with `-singlestep` so it logs every instruction too).
 *
 * `traceInsns(cpu)` installs `cpu.tracer`, which the run loop calls before each instruction
 * executes (EIP already advanced; `cpu.insnEip` is the instruction's). With no tracer installed
 * the loop pays one null test per instruction and nothing else.
 *
 * Two layouts:
 *
 * - `line` (the default): one line per instruction, QEMU's field syntax on one line:
 *
 *       0x10000007:  8b 54 8c 10              mov    edx,DWORD PTR [esp+ecx*4+0x10]  EAX=00000005 EBX=00000000 ECX=00000005 EDX=00000000 ESI=00000000 EDI=00000000 EBP=00000000 ESP=10400000 EIP=10000007 EFL=00000206 [-----P-] CPL=3
 *
 * - `qemu`: QEMU's own block layout (the `IN:` part, then the register dump QEMU prints before
 *   executing it), minus the segment and control registers:
 *
 *       ----------------
 *       IN:
 *       0x10000007:  8b 54 8c 10              mov    edx,DWORD PTR [esp+ecx*4+0x10]
 *
 *       EAX=00000005 EBX=00000000 ECX=00000005 EDX=00000000
 *       ESI=00000000 EDI=00000000 EBP=00000000 ESP=10400000
 *       EIP=10000007 EFL=00000206 [-----P-] CPL=3 II=0 A20=1 SMM=0 HLT=0
 *
 * The registers are the state before the instruction runs, as QEMU shows it. The address is
 * linear (CS base + EIP), as QEMU's is. The disassembly is Intel syntax in objdump's spelling
 * (disasm.ts; QEMU 7 prints AT&T through capstone, so compare addresses, bytes and registers).
 *
 * Tracing changes nothing the program can observe: the bytes are read through a side-effect-free
 * page-table lookup (no TLB fill, no accessed bits, no statistics, never an MMIO read) and EFLAGS
 * is computed from a copy of the lazy-flag state.
 */
import type { Cpu } from './cpu.ts';
import { disassemble } from './disasm.ts';
import { AF, CF, DF, type FlagState, materialize, OF, PF, SF, ZF } from './flags.ts';
import { CS, type Insn } from './insn.ts';

/** Where trace text goes: process.stderr, a file stream, or anything with write(string). */
export interface TraceSink {
  write(s: string): unknown;
}

export interface TraceOptions {
  /** Default: process.stderr. */
  out?: TraceSink;
  /** `line` (default): one line per instruction; `qemu`: QEMU's block layout. */
  format?: 'line' | 'qemu';
  /** Stop tracing (uninstall) after this many instructions. Default: no limit. */
  limit?: number;
}

export interface InsnTrace {
  /** Instructions traced so far. */
  readonly count: number;
  /** Writes out what is buffered. */
  flush(): void;
  /** Flushes and removes the tracer (cpu.tracer = null). */
  stop(): void;
}

const FLUSH_AT = 16 * 1024;

const h8 = (v: number): string => (v >>> 0).toString(16).padStart(8, '0');

/** The physical address of `lin` for a look at the code, or -1; touches nothing. */
export function peekPhys(cpu: Cpu, lin: number): number {
  lin >>>= 0;
  if (!cpu.pg) return lin;
  const mem = cpu.mem;
  const rd = (a: number): number => (mem.isRam(a) && mem.isRam(a + 3) ? mem.read(a >>> 0, 4) : 0);
  if (cpu.pae) {
    const k = lin >>> 30;
    const lo = cpu.pdpte[2 * k], hi = cpu.pdpte[2 * k + 1];
    if ((lo & 1) === 0 || (hi & 0xf) !== 0) return -1;
    const pdeAddr = ((lo & 0xfffff000) + (((lin >>> 21) & 0x1ff) << 3)) >>> 0;
    const pde = rd(pdeAddr), pdeHi = rd(pdeAddr + 4);
    if ((pde & 1) === 0 || (pdeHi & 0xf) !== 0) return -1;
    if (pde & 0x80) return ((pde & 0xffe00000) | (lin & 0x1fffff)) >>> 0;
    const pteAddr = ((pde & 0xfffff000) + (((lin >>> 12) & 0x1ff) << 3)) >>> 0;
    const pte = rd(pteAddr), pteHi = rd(pteAddr + 4);
    if ((pte & 1) === 0 || (pteHi & 0xf) !== 0) return -1;
    return ((pte & 0xfffff000) | (lin & 0xfff)) >>> 0;
  }
  const pde = rd(((cpu.cr3 & 0xfffff000) | ((lin >>> 22) << 2)) >>> 0);
  if ((pde & 1) === 0) return -1;
  if ((pde & 0x80) !== 0 && (cpu.cr4 & 0x10) !== 0) return ((pde & 0xffc00000) | (lin & 0x3fffff)) >>> 0;
  const pte = rd(((pde & 0xfffff000) | (((lin >>> 12) & 0x3ff) << 2)) >>> 0);
  if ((pte & 1) === 0) return -1;
  return ((pte & 0xfffff000) | (lin & 0xfff)) >>> 0;
}

/** The instruction's bytes as they are in memory now (-1 for a byte that cannot be read). */
export function insnBytes(cpu: Cpu, lin: number, len: number): number[] {
  const out: number[] = [];
  for (let k = 0; k < len; k++) {
    const p = peekPhys(cpu, (lin + k) >>> 0);
    out.push(p >= 0 && cpu.mem.isRam(p) ? cpu.mem.u8[p] : -1);
  }
  return out;
}

const scratch: FlagState = { flags: 0, lazy: 0, lfOp: 0, lfSz: 0, lfA: 0, lfB: 0, lfRes: 0 };

/** EFLAGS as software would read it, computed without materialising the CPU's lazy flags. */
export function peekEflags(cpu: Cpu): number {
  scratch.flags = cpu.flags; scratch.lazy = cpu.lazy; scratch.lfOp = cpu.lfOp; scratch.lfSz = cpu.lfSz;
  scratch.lfA = cpu.lfA; scratch.lfB = cpu.lfB; scratch.lfRes = cpu.lfRes;
  return (materialize(scratch) | 2) >>> 0;
}

/** QEMU's flag letters: D O S Z A P C. */
export function flagLetters(f: number): string {
  return (f & DF ? 'D' : '-') + (f & OF ? 'O' : '-') + (f & SF ? 'S' : '-') + (f & ZF ? 'Z' : '-')
    + (f & AF ? 'A' : '-') + (f & PF ? 'P' : '-') + (f & CF ? 'C' : '-');
}

/** The `0x10000007:  8b 54 8c 10              mov ...` part (QEMU pads the bytes to 24 columns). */
export function formatInsn(cpu: Cpu, i: Insn, eip: number): string {
  const lin = (cpu.segBase[CS] + eip) >>> 0;
  const bytes = insnBytes(cpu, lin, i.len);
  let hex = '';
  for (let k = 0; k < bytes.length; k++) hex += (k ? ' ' : '') + (bytes[k] < 0 ? '??' : bytes[k].toString(16).padStart(2, '0'));
  const text = bytes.includes(-1) ? disassemble(i, undefined, eip) : disassemble(i, bytes, eip);
  return `0x${h8(lin)}:  ${hex.padEnd(24)} ${text}`;
}

/** The register part; `sep` separates QEMU's three lines (' ' for the one-line layout). */
export function formatRegs(cpu: Cpu, eip: number, sep: string, qemuExtras: boolean): string {
  const r = cpu.r;
  const f = peekEflags(cpu);
  let s = `EAX=${h8(r[0])} EBX=${h8(r[3])} ECX=${h8(r[1])} EDX=${h8(r[2])}${sep}`
    + `ESI=${h8(r[6])} EDI=${h8(r[7])} EBP=${h8(r[5])} ESP=${h8(r[4])}${sep}`
    + `EIP=${h8(eip)} EFL=${h8(f)} [${flagLetters(f)}] CPL=${cpu.cpl}`;
  if (qemuExtras) s += ` II=${cpu.irqShadow ? 1 : 0} A20=1 SMM=0 HLT=${cpu.state === 1 ? 1 : 0}`;
  return s;
}

/** One traced instruction in the given layout, ending with a newline. */
export function formatTrace(cpu: Cpu, i: Insn, format: 'line' | 'qemu'): string {
  const eip = cpu.insnEip >>> 0;
  if (format === 'qemu') {
    return `----------------\nIN: \n${formatInsn(cpu, i, eip)}\n\n${formatRegs(cpu, eip, '\n', true)}\n`;
  }
  return `${formatInsn(cpu, i, eip)}  ${formatRegs(cpu, eip, ' ', false)}\n`;
}

/** Installs the instruction tracer on `cpu` (replacing any other). */
export function traceInsns(cpu: Cpu, opts: TraceOptions = {}): InsnTrace {
  const out: TraceSink = opts.out ?? (globalThis as { process?: { stderr: TraceSink } }).process!.stderr;
  const format = opts.format ?? 'line';
  const limit = opts.limit ?? Infinity;
  let buf = '';
  let count = 0;
  const flush = (): void => { if (buf.length) { out.write(buf); buf = ''; } };
  const stop = (): void => { flush(); if (cpu.tracer === tracer) cpu.tracer = null; };
  const tracer = (c: Cpu, i: Insn): void => {
    buf += formatTrace(c, i, format);
    if (++count >= limit) { stop(); return; }
    if (buf.length >= FLUSH_AT) flush();
  };
  cpu.tracer = tracer;
  return { get count() { return count; }, flush, stop };
}
