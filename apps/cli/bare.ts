// `v3vee bare KERNEL`: boots a Multiboot kernel directly on the emulated machine, with no LWK
// and no VMM. COM1 is stdout (and stdin feeds COM1). Exit status per DESIGN.md's CLI
// conventions: the isa-debug-exit status; 0 when every core halts for good; 2 for a bad option
// or file; 124 at --max-cycles; 126 on a triple fault.
import { readFileSync, writeSync } from 'node:fs';
import { BootError, loadMultiboot } from '../../hw/boot/multiboot.ts';
import { Machine } from '../../hw/machine.ts';
import { type InsnTrace, traceInsns } from '../../hw/cpu/trace.ts';
import { one, parseArgs, parseIntOption, parseSize, UsageError } from './options.ts';
import { readStdinIfPiped, StdoutSink } from './streams.ts';

export const BARE_HELP = `usage: v3vee bare KERNEL [--mem SIZE] [--cores N] [--cmdline STR] [--module FILE]...
                  [--max-cycles N] [--stats] [--trace insn] [--seed N] [--verbose]
Boots a Multiboot v1 kernel on the emulated PC with no LWK and no VMM. The kernel's command
line is 'KERNEL CMDLINE', as QEMU's -kernel/-append build it. COM1 is stdout; stdin
(when not a terminal) is read in full and fed to COM1.`;

function readFile(path: string, what: string): Uint8Array {
  try { return new Uint8Array(readFileSync(path)); } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`cannot read ${what} '${path}' (${code})`);
  }
}

export async function bareCommand(argv: string[]): Promise<number> {
  const a = parseArgs(argv, {
    mem: 'value', cores: 'value', cmdline: 'value', module: 'multi', 'max-cycles': 'value',
    stats: 'flag', trace: 'value', seed: 'value', verbose: 'flag', help: 'flag',
  });
  if (a.flags.has('help')) { process.stdout.write(BARE_HELP + '\n'); return 0; }
  if (a.positional.length !== 1) throw new UsageError('bare needs exactly one KERNEL argument');
  const memArg = one(a, 'mem') ?? '128M';
  const mem = parseSize(memArg);
  if (mem < 2 * 2 ** 20 || mem > 3 * 2 ** 30 || mem % 4096 !== 0) throw new UsageError(`--mem ${memArg}: must be a multiple of 4K between 2M and 3G`);
  const cores = parseIntOption(one(a, 'cores') ?? '1', '--cores', 1, 64);
  const maxCycles = one(a, 'max-cycles') !== undefined ? parseIntOption(one(a, 'max-cycles')!, '--max-cycles', 1) : Infinity;
  if (one(a, 'seed') !== undefined) parseIntOption(one(a, 'seed')!, '--seed');
  const trace = one(a, 'trace');
  if (trace !== undefined && trace !== 'insn') throw new UsageError(`--trace ${trace}: bare supports only 'insn'`);
  const kernelPath = a.positional[0];
  const kernel = readFile(kernelPath, 'kernel');
  const modules = (a.opts.get('module') ?? []).map((m) => ({ name: m, data: readFile(m, 'module') }));

  const out = new StdoutSink();
  const machine = new Machine({ cores, ram: mem, com1: out });
  const stdin = readStdinIfPiped();
  if (stdin) machine.com1.receive(stdin);
  let entry;
  try {
    entry = loadMultiboot({ size: mem, write: (addr, bytes) => machine.mem.writeBytes(addr, bytes) }, kernel, { cmdline: `${kernelPath} ${one(a, 'cmdline') ?? ''}`, modules });
  } catch (e) {
    if (e instanceof BootError) throw new UsageError(`${kernelPath}: ${e.message}`);
    throw e;
  }
  machine.startFlat32(entry.entry, entry.eax, entry.ebx);
  const traces: InsnTrace[] = [];
  if (trace === 'insn') for (const c of machine.cores) traces.push(traceInsns(c, { out: { write: (t: string) => writeSync(2, t) } }));
  const t0 = performance.now();
  const reason = machine.run(maxCycles);
  const secs = (performance.now() - t0) / 1000;
  out.flush();
  for (const t of traces) t.stop();
  const st = machine.stats();
  if (a.flags.has('stats')) {
    const lines = [
      `instructions ${st.instructions}`, `cycles ${st.cycles}`, `tlb-misses ${st.tlbMisses}`, `walk-refs ${st.walkRefs}`,
      `exceptions ${st.exceptions}`, `interrupts ${st.interrupts}`, `host-seconds ${secs.toFixed(3)}`,
      `mips ${(st.instructions / Math.max(secs, 1e-9) / 1e6).toFixed(1)}`,
    ];
    process.stderr.write(lines.map((l) => `v3vee: ${l}\n`).join(''));
  }
  const bsp = machine.bsp;
  switch (reason) {
    case 'exit': return machine.exitStatus ?? 0;
    case 'idle':
      process.stderr.write(`v3vee: all cores halted and nothing can wake them (eip ${hex(bsp.eip)})\n`);
      return 0;
    case 'reset':
      process.stderr.write(`v3vee: machine reset: ${machine.stopDetail}\n`);
      return 0;
    case 'limit':
      process.stderr.write(`v3vee: --max-cycles ${maxCycles} reached (eip ${hex(bsp.eip)})\n`);
      return 124;
    case 'shutdown':
      process.stderr.write(`v3vee: ${machine.stopDetail}\n`);
      return 126;
  }
}

function hex(v: number): string { return (v >>> 0).toString(16).padStart(8, '0'); }
