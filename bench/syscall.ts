// `npm run bench` (system calls): the round trip of a null system call (getpid) on the LWK,
// through INT 0x80 and through SYSENTER (called directly, no vDSO) and through the C library,
// in simulated cycles and in host time, against the same program natively on this host.
//
//   tsx bench/syscall.ts [--calls N] [--native-calls N] [--runs N]
//
// The program is apps/native/prebuilt/sysbench (see its source): it times N calls per path with
// RDTSC (simulated cycles under the LWK) and the monotonic and CPU clocks (simulated time), and prints a
// `begin` line before each loop and the result after it. The LWK boots as `v3vee run` boots it
// (apps/cli/run.ts runLwk); the console sink here stamps host time (wall and this process's CPU
// time) as each line reaches it, so the host time per call covers the loop alone, not the boot.
// Each path runs --runs times in one boot (the first includes V8's warm-up); the best is
// reported. Natively, INT 0x80 and the C library (the vDSO) only: AMD CPUs have no SYSENTER in
// compatibility mode, and Linux returns from SYSENTER into its vDSO, not to the caller.
// A benchmark, not a test: it fails only on a wrong result (a call that does not return the pid).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runLwk } from '../apps/cli/run.ts';
import type { ByteSink } from '../hw/devices/types.ts';
import { intArg } from './args.ts';
import { ROOT } from './native.ts';

const PROGRAM = join(ROOT, 'apps', 'native', 'prebuilt', 'sysbench');
const SYS_GETPID = 20;
const LWK_MODES = ['int80', 'sysenter', 'libc'] as const;
const NATIVE_MODES = ['int80', 'libc'] as const;

const ratio = (x: number) => `${x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toFixed(2)}x`;
const fmt = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** A host moment: wall-clock milliseconds and this process's CPU microseconds. */
interface Stamp { wall: number; cpu: number }
const stamp = (): Stamp => { const c = process.cpuUsage(); return { wall: performance.now(), cpu: c.user + c.system }; };

/** The program's stdout, with the host moment each line started and ended reaching the console. */
class StampedSink implements ByteSink {
  text = '';
  readonly starts: Stamp[] = [];
  readonly ends: Stamp[] = [];
  write(bytes: Uint8Array): void {
    const s = stamp();
    for (const b of bytes) {
      if (this.text.length === 0 || this.text.endsWith('\n')) this.starts.push(s);
      this.text += String.fromCharCode(b);
      if (b === 0x0a) this.ends.push(s);
    }
  }
}

/**
 * One timed loop of the program: `calls` calls; the program's own figures (TSC cycles,
 * monotonic and process-CPU nanoseconds: simulated under the LWK) and, under the LWK, host
 * nanoseconds per call (wall, and this process's CPU time).
 */
interface Loop { mode: string; calls: number; cycles: number; ns: number; progCpuNs: number; hostNs?: number; cpuNs?: number }

const RESULT = /^(\w+) calls (\d+) cycles (\d+) ns (\d+) cpu_ns (\d+)$/;

/** Parses the program's output; with stamps, the host time of each loop (`begin` line end to result line start). */
function parseLoops(text: string, sink?: StampedSink): Loop[] | string {
  const lines = text.split('\n');
  const loops: Loop[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = RESULT.exec(lines[i]);
    if (m === null) {
      if (lines[i] === '' || lines[i].startsWith('begin ')) continue;
      return `the program printed '${lines[i]}'`;
    }
    if (lines[i - 1] !== `begin ${m[1]}`) return `no 'begin ${m[1]}' line before '${lines[i]}'`;
    const l: Loop = { mode: m[1], calls: Number(m[2]), cycles: Number(m[3]), ns: Number(m[4]), progCpuNs: Number(m[5]) };
    if (sink !== undefined) {
      const a = sink.ends[i - 1], b = sink.starts[i];
      l.hostNs = (b.wall - a.wall) * 1e6 / l.calls;
      l.cpuNs = (b.cpu - a.cpu) * 1e3 / l.calls;
    }
    loops.push(l);
  }
  return loops;
}

/** Per mode, in the order given: the least of each figure over its runs (wall and CPU time apart, as the machine is shared). */
function best(loops: Loop[], modes: readonly string[]): Loop[] {
  const min = (ls: Loop[], f: (l: Loop) => number | undefined) => Math.min(...ls.map((l) => f(l) ?? Infinity));
  return modes.map((mode) => {
    const ls = loops.filter((l) => l.mode === mode);
    return { mode, calls: ls[0].calls, cycles: min(ls, (l) => l.cycles), ns: min(ls, (l) => l.ns), progCpuNs: min(ls, (l) => l.progCpuNs), hostNs: min(ls, (l) => l.hostNs), cpuNs: min(ls, (l) => l.cpuNs) };
  });
}

function main(): number {
  const calls = intArg('--calls', 50_000);
  const nativeCalls = intArg('--native-calls', 100_000);
  const runs = intArg('--runs', 3);
  if (!existsSync(PROGRAM)) { console.error(`bench: ${PROGRAM} is missing (sh apps/native/build.sh --prebuilt)`); return 1; }
  const image = new Uint8Array(readFileSync(PROGRAM));
  const modes = Array.from({ length: runs }, () => LWK_MODES).flat();

  console.log(`system calls: getpid round trip, apps/native/prebuilt/sysbench (${fmt(calls)} calls per path, best of ${runs})`);
  const sink = new StampedSink();
  const c0 = stamp();
  const r = runLwk({ path: 'sysbench', image, args: [String(calls), ...modes], stdout: sink, stderr: { write: (b) => process.stderr.write(b) } });
  const c1 = stamp();
  if (r.status !== 0) { console.error(`bench: sysbench on the LWK ended with status ${r.status}${r.message ? `: ${r.message}` : ''}\n${sink.text}`); return 1; }
  const loops = parseLoops(sink.text, sink);
  if (typeof loops === 'string') { console.error(`bench: sysbench on the LWK: ${loops}`); return 1; }
  if (loops.length !== modes.length) { console.error(`bench: sysbench on the LWK printed ${loops.length} results, expected ${modes.length}`); return 1; }
  const hz = r.machine.hz;
  const getpid = r.kernel.percpu[0].noise.syscalls.get(SYS_GETPID);
  console.log(`LWK boot and run:  ${((c1.wall - c0.wall) / 1000).toFixed(3)} s (CPU ${((c1.cpu - c0.cpu) / 1e6).toFixed(3)} s), ${fmt(r.machine.stats().instructions)} instructions, ${fmt(r.machine.stats().cycles)} cycles`);
  if (getpid !== undefined) console.log(`LWK getpid:        ${fmt(getpid.count)} calls, ${fmt(getpid.cycles / getpid.count, 1)} cycles each on average in the kernel's trap handler (both entries; kernel/costs.ts)`);
  const lwk = best(loops, LWK_MODES);
  for (const l of lwk) {
    const label = `LWK ${l.mode}:`.padEnd(19);
    console.log(`${label}${fmt(l.cycles / l.calls, 1)} cycles (sim, ${fmt(l.ns / l.calls, 1)} ns at ${(hz / 1e9).toFixed(1)} GHz); host ${fmt(l.hostNs!)} ns per call (CPU ${fmt(l.cpuNs!)} ns)`);
  }
  for (const l of lwk) {
    const most = Math.max(...loops.filter((x) => x.mode === l.mode).map((x) => x.cycles));
    if (most > l.cycles * 1.01) console.log(`note:              LWK ${l.mode}: the simulated cycles vary between runs (${fmt(l.cycles)} to ${fmt(most)})`);
  }

  const nat = spawnSync(PROGRAM, [String(nativeCalls), ...Array.from({ length: runs }, () => NATIVE_MODES).flat()], { encoding: 'utf8' });
  if (nat.error !== undefined || nat.status !== 0) {
    console.log(`native:            unavailable (${nat.error?.message ?? `status ${nat.status ?? nat.signal}: ${nat.stderr.trim()}`})`);
    return 0;
  }
  const nloops = parseLoops(nat.stdout);
  if (typeof nloops === 'string') { console.error(`bench: sysbench natively: ${nloops}`); return 1; }
  const native = best(nloops, NATIVE_MODES);
  for (const l of native) {
    const label = `native ${l.mode}:`.padEnd(19);
    console.log(`${label}${fmt(l.ns / l.calls)} ns per call (CPU ${fmt(l.progCpuNs / l.calls)} ns; ${fmt(l.cycles / l.calls)} TSC cycles; ${fmt(nativeCalls)} calls, best of ${runs})`);
  }
  const cpuinfo = existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'latin1') : '';
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown CPU';
  console.log(`native host:       ${model}${/^flags\s*:.*\bhypervisor\b/m.test(cpuinfo) ? ', a virtual machine (cpuinfo: hypervisor): INT 0x80 may cost far more than on bare metal' : ''}`);
  console.log(`native sysenter:   not measured (AMD CPUs have no SYSENTER in compatibility mode; Linux returns from it into its vDSO)`);
  for (const l of native) {
    const e = lwk.find((x) => x.mode === l.mode)!;
    const n = l.ns / l.calls, nc = l.progCpuNs / l.calls;
    console.log(`${`LWK/native ${l.mode}:`.padEnd(19)}host ${ratio(e.hostNs! / n)} (by CPU time ${ratio(e.cpuNs! / nc)}); simulated time ${ratio(e.ns / e.calls / n)}`);
  }
  return 0;
}

process.exitCode = main();
