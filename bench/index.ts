// `npm run bench`: every benchmark in turn, each in its own Node process (so that one's JIT
// state, heap and warm-up do not colour another's figures), with the command line's options.
//
//   npm run bench                                  all of them
//   npm run bench -- --only syscall,busybox        some (names below)
//   npm run bench -- --runs 5                      options go to every benchmark; each reads its own
//
// Each benchmark also runs alone: `npx tsx bench/FILE.ts [OPTIONS]`. The exit status is the
// first non-zero one (a benchmark fails only on a wrong result, never on a slow figure).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './native.ts';

const BENCHES: readonly { name: string; file: string; what: string }[] = [
  { name: 'vmm-exits', file: 'vmm-exits.ts', what: 'the VMM: exits per second, a workload bare and as a guest' },
  { name: 'cpu', file: 'run.ts', what: 'the CPU: guest MIPS on the integer workload, against native' },
  { name: 'syscall', file: 'syscall.ts', what: 'the LWK: system-call round trip, against native' },
  { name: 'busybox', file: 'busybox.ts', what: 'the LWK: busybox sha256sum of 4 MiB, against qemu-i386 and native' },
];

function main(): number {
  const argv = process.argv.slice(2);
  const k = argv.indexOf('--only');
  let chosen = BENCHES;
  if (k >= 0) {
    const names = (argv[k + 1] ?? '').split(',').filter((n) => n !== '');
    const unknown = names.filter((n) => !BENCHES.some((b) => b.name === n));
    if (names.length === 0 || unknown.length > 0) {
      console.error(`--only ${unknown.join(',') || '(nothing)'}: name benchmarks among ${BENCHES.map((b) => b.name).join(', ')}`);
      return 2;
    }
    chosen = BENCHES.filter((b) => names.includes(b.name));
    argv.splice(k, 2);
  }
  let status = 0;
  for (const b of chosen) {
    console.log(`\n== ${b.name} (bench/${b.file}): ${b.what} ==`);
    // process.execArgv carries tsx's loader, so the child runs TypeScript as this process does
    const r = spawnSync(process.execPath, [...process.execArgv, join(ROOT, 'bench', b.file), ...argv], { stdio: 'inherit' });
    const s = r.error !== undefined ? 70 : r.status ?? 70;
    if (s !== 0) {
      console.error(`bench: ${b.name} ended with ${r.error?.message ?? (r.signal ?? `status ${s}`)}`);
      if (status === 0) status = s;
    }
  }
  return status;
}

process.exitCode = main();
