// `npm run bench`: guest MIPS of the CPU on an integer workload (CRC-32, quicksort, sieve: the
// freestanding i386 program apps/bench/workload.c, prebuilt as apps/bench/workload.bin), run in
// host user mode on one core, against the very same machine code run natively.
//
//   npm run bench [-- --runs N] [-- --native-runs N] [-- --mix]
//
// Prints the guest instructions executed, the simulated cycles, host seconds, MIPS, TLB misses,
// the native time of the same image and the slowdown ratio. Each emulated run starts from a
// fresh machine; the best is reported (the first includes V8's warm-up). Host CPU seconds are
// printed next to wall-clock seconds: on a busy machine the wall clock also counts the time
// other processes had the core. `--mix` adds the executed-instruction mix (an extra, slower run
// with a counting tracer). A benchmark, not a test: nothing fails on a slow figure, only on a
// wrong result.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cpu } from '../hw/cpu/cpu.ts';
import type { Insn } from '../hw/cpu/insn.ts';
import { intArg } from './args.ts';
import { buildNativeRunner, ROOT, runNativeImage } from './native.ts';
import { endedAtUd2, loadFlat, runFlat } from './usermode.ts';

/** The workload's result (EAX at its UD2); the native run must print the same. */
export const EXPECTED_CHECKSUM = 0xb36bdc02;

const IMAGE = join(ROOT, 'apps', 'bench', 'workload.bin');
const BASE = 0x10000000;
/** The image's entry is `call workload; ud2`: the run ends at the UD2. */
const END_EIP = BASE + 5;
const STACK = 0x10000;
const MAX_CYCLES = 50e9;

const fmt = (n: number) => n.toLocaleString('en-US');

interface EmuRun { icount: number; cycles: number; seconds: number; cpuSeconds: number; tlb: number; itlb: number; dtlb: number; walkRefs: number; decoded: number }

function emulate(image: Uint8Array, memSize: number, tracer: ((cpu: Cpu, i: Insn) => void) | null): EmuRun | string {
  const m = loadFlat({ image, base: BASE, memSize });
  const cpu = m.cpu;
  cpu.tracer = tracer;
  const res = runFlat(m, MAX_CYCLES);
  cpu.tracer = null;
  if (!endedAtUd2(res, END_EIP)) {
    const t = res.trap;
    let why = res.shutdown ?? (t ? `trap kind ${t.kind} vector ${t.vector} error ${t.errorCode} at eip 0x${t.eip.toString(16)}` : `no end after ${fmt(cpu.cycles)} cycles`);
    if (cpu.unimplemented.size) why += `; unimplemented opcodes (#UD): ${[...cpu.unimplemented].map(([op, n]) => `${op.toString(16)} x${n}`).join(', ')}`;
    return `the workload did not reach its end marker: ${why}`;
  }
  if (cpu.eax !== EXPECTED_CHECKSUM) return `wrong checksum 0x${cpu.eax.toString(16)}, expected 0x${EXPECTED_CHECKSUM.toString(16)}`;
  const s = cpu.stats;
  return { icount: cpu.icount, cycles: cpu.cycles, seconds: res.seconds, cpuSeconds: res.cpuSeconds, tlb: s.tlbMisses, itlb: s.itlbMisses, dtlb: s.dtlbMisses, walkRefs: s.walkRefs, decoded: s.decoded };
}

/** The executed-instruction mix: a tracer that counts mnemonics (and the memory forms apart). */
function mix(image: Uint8Array, memSize: number): void {
  const counts = new Map<string, number>();
  const tracer = (_cpu: Cpu, i: Insn): void => {
    const k = `${i.def?.name ?? '(bad)'} ${i.def?.ops ?? ''}${i.def?.ops && /E/.test(i.def.ops) ? (i.mod === 3 ? ' (reg)' : ' (mem)') : ''}`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  };
  const r = emulate(image, memSize, tracer);
  if (typeof r === 'string') { console.error(`bench: ${r}`); return; }
  console.log('instruction mix (top 25):');
  for (const [k, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`  ${(100 * n / r.icount).toFixed(1).padStart(5)}%  ${k}`);
  }
}

function main(): number {
  const runs = intArg('--runs', 3);
  const nativeRuns = intArg('--native-runs', 20);
  const image = new Uint8Array(readFileSync(IMAGE));
  const end = new DataView(image.buffer, image.byteOffset, image.byteLength).getUint32(12, true);
  const memSize = Math.ceil((end - BASE + STACK) / 4096) * 4096;

  console.log(`workload: apps/bench/workload.bin (${image.length} bytes; ${(memSize / 1048576).toFixed(2)} MiB mapped at 0x${BASE.toString(16)}, 4 KiB pages, CPL 3)`);
  let best: EmuRun | null = null;
  for (let r = 0; r < runs; r++) {
    const e = emulate(image, memSize, null);
    if (typeof e === 'string') { console.error(`bench: ${e}`); return 1; }
    if (runs > 1) console.log(`  run ${r + 1}: ${e.seconds.toFixed(3)} s (CPU ${e.cpuSeconds.toFixed(3)} s), ${(e.icount / e.seconds / 1e6).toFixed(1)} MIPS`);
    if (best === null || e.seconds < best.seconds) best = e;
  }
  const e = best!;
  console.log(`instructions:     ${fmt(e.icount)}`);
  console.log(`cycles (sim):     ${fmt(e.cycles)} (${(e.cycles / e.icount).toFixed(3)} per instruction)`);
  console.log(`host seconds:     ${e.seconds.toFixed(3)}${runs > 1 ? ` (best of ${runs})` : ''}; CPU ${e.cpuSeconds.toFixed(3)}`);
  console.log(`guest MIPS:       ${(e.icount / e.seconds / 1e6).toFixed(1)} (by CPU time ${(e.icount / e.cpuSeconds / 1e6).toFixed(1)})`);
  console.log(`TLB misses:       ${fmt(e.tlb)} (ITLB ${fmt(e.itlb)}, DTLB ${fmt(e.dtlb)}); ${fmt(e.walkRefs)} page-walk references`);
  console.log(`decoded:          ${fmt(e.decoded)} instructions`);

  const runner = buildNativeRunner();
  if ('error' in runner) {
    console.log(`native:           unavailable (${runner.error})`);
  } else {
    const n = runNativeImage(runner.path, IMAGE, BASE, nativeRuns);
    if (n.checksum !== EXPECTED_CHECKSUM) {
      console.error(`bench: the native run's checksum 0x${n.checksum.toString(16)} differs from 0x${EXPECTED_CHECKSUM.toString(16)}`);
      return 1;
    }
    const wall = Math.min(...n.runs), cpu = Math.min(...n.cpuRuns);
    console.log(`native seconds:   ${wall.toFixed(6)} (best of ${nativeRuns}); CPU ${cpu.toFixed(6)}; ${(e.icount / wall / 1e6).toFixed(0)} MIPS`);
    console.log(`slowdown:         ${(e.seconds / wall).toFixed(0)}x native (by CPU time ${(e.cpuSeconds / cpu).toFixed(0)}x)`);
  }
  if (process.argv.includes('--mix')) mix(image, memSize);
  return 0;
}

process.exitCode = main();
