// Bare-metal test programs for what user mode cannot reach (segmentation, paging, privilege
// changes, exceptions): GNU assembler source, assembled at test time into a flat image and run
// on a bare core (no host handler: every event goes through the program's own IDT).
//
// Ports seen by the program: 0xE9 (debug console: bytes collected as text, as Bochs/QEMU's
// debugcon) and 0xF4 (isa-debug-exit: ends the run with status (v << 1) | 1). A HLT with
// interrupts off also ends the run.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cpu, HALTED, type IoBus, RUNNING, SHUTDOWN } from '../../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';

const BUILD = join(dirname(fileURLToPath(import.meta.url)), 'build');

/** True if GNU as and ld for i386 are available (binutils; present with gcc-multilib). */
export function haveAssembler(): boolean {
  const r = spawnSync('as', ['--32', '--version'], { encoding: 'utf8' });
  return r.status === 0;
}

/**
 * Assembles `src` (GNU syntax; use `.code16` / `.code32` as needed; Intel syntax with
 * `.intel_syntax noprefix`) into a flat binary whose first byte is at `org`.
 */
export function assemble(src: string, org: number): Uint8Array {
  const hash = createHash('sha256').update(`${org}\n${src}`).digest('hex').slice(0, 16);
  const bin = join(BUILD, `${hash}.bin`);
  if (existsSync(bin)) return new Uint8Array(readFileSync(bin));
  mkdirSync(BUILD, { recursive: true });
  const s = join(BUILD, `${hash}.S`), o = join(BUILD, `${hash}.o`), tmp = `${bin}.${process.pid}`;
  writeFileSync(s, src);
  const a = spawnSync('as', ['--32', '-o', o, s], { encoding: 'utf8' });
  if (a.status !== 0) throw new Error(`as failed: ${a.stderr}`);
  const l = spawnSync('ld', ['-m', 'elf_i386', `-Ttext=0x${org.toString(16)}`, '--oformat', 'binary', '-o', tmp, o], { encoding: 'utf8' });
  if (l.status !== 0) throw new Error(`ld failed: ${l.stderr}`);
  const r = spawnSync('mv', [tmp, bin]);
  if (r.status !== 0) throw new Error('mv failed');
  return new Uint8Array(readFileSync(bin));
}

export interface BareOptions {
  /** Where the image is loaded and where execution starts. */
  org?: number;
  /** RAM size in bytes (default 4 MiB). */
  ram?: number;
  /** 'real': real mode with CS:IP = 0:org; 'flat32': 32-bit protected mode, flat segments, CPL 0, paging off (as Multiboot leaves it). */
  start?: 'real' | 'flat32';
  maxCycles?: number;
  /** Extra port handlers. */
  io?: (port: number, size: number, value: number | null) => number | undefined;
  /** Called after the core is set up, before it runs. */
  setup?: (cpu: Cpu, mem: PhysMem) => void;
}

export interface BareResult {
  cpu: Cpu;
  mem: PhysMem;
  /** isa-debug-exit status ((v << 1) | 1), or null. */
  exit: number | null;
  /** Text written to port 0xE9. */
  out: string;
  /** 'exit' | 'halt' | 'shutdown' | 'timeout' */
  end: string;
}

export function runBare(image: Uint8Array, o: BareOptions = {}): BareResult {
  const org = o.org ?? 0x10000;
  const mem = new PhysMem(o.ram ?? 4 << 20);
  let out = '';
  let exit: number | null = null;
  let cpu!: Cpu;
  const io: IoBus = {
    in(port, size) {
      const v = o.io?.(port, size, null);
      return v ?? (size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff);
    },
    out(port, size, value) {
      if (port === 0xe9) { out += String.fromCharCode(value & 0xff); return; }
      if (port === 0xf4) { exit = ((value & 0xff) << 1) | 1; cpu.requestStop(); return; }
      o.io?.(port, size, value);
    },
  };
  cpu = new Cpu({ mem, io });
  mem.writeBytes(org, image);
  if ((o.start ?? 'flat32') === 'real') {
    cpu.loadSegCache(CS, 0, 0, 0xffff, 0x9b);
    cpu.eip = org;
  } else {
    cpu.cr0 = 0x00000011;
    cpu.updateMode();
    cpu.setCpl(0);
    cpu.loadSegCache(CS, 0x08, 0, 0xffffffff, 0xc09b);
    for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0x10, 0, 0xffffffff, 0xc093);
    cpu.eip = org;
    cpu.r[4] = org; // a stack below the image
  }
  o.setup?.(cpu, mem);
  const max = o.maxCycles ?? 50_000_000;
  let end = 'timeout';
  while (cpu.cycles < max) {
    cpu.run(Math.min(max, cpu.cycles + 100_000));
    if (exit !== null) { end = 'exit'; break; }
    if (cpu.state === SHUTDOWN) { end = 'shutdown'; break; }
    if (cpu.state === HALTED) { end = 'halt'; break; }
    if (cpu.state !== RUNNING) break;
  }
  return { cpu, mem, exit, out, end };
}
