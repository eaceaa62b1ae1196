import { bareCommand } from './bare.ts';
import { noiseCommand } from './noise.ts';
import { pagingCommand } from './paging.ts';
import { UsageError } from './options.ts';
import { runCommand } from './run.ts';

// The v3vee CLI: parses the subcommand and dispatches. Exit statuses follow DESIGN.md: 2 for a
// job that could not start (bad option, missing file), 70 for an internal error.

export const HELP = `v3vee: the V3VEE stack (Kitten-like LWK + Palacios-like VMM) on an emulated x86 PC

usage: v3vee <command> [options]

commands (as they land; see README.md):
  bare KERNEL     boot a Multiboot kernel on the bare emulated PC (no LWK, no VMM)
  run ELF [ARGS]  boot the LWK and run a static i386 Linux program as its first process
  vm KERNEL|CONFIG.json
                  boot the LWK, which runs the kernel (or the configured VM) under the VMM
                  [--paging nested|hashed|shadow|shadow-cache] [--mem SIZE] [--stats] ...
  boot            boot the combined image (dist/, built first if missing or stale): the LWK
                  launches its default VM with the bundled guest; what no arguments run
  noise           OS-noise experiment: selfish, FWQ, FTQ natively on the LWK and gp profile
                  (and in a guest under the VMM) [--quick] [--json] [--out DIR]
  paging          paging study: both guest kernels native and under nested, hashed, shadow
                  and shadow-cache paging [--quick] [--json] [--out DIR]
  help            this text

Run with no arguments to boot the combined image ('boot'). '<command> --help' for a command's options.
`;

export async function runCli(argv: string[]): Promise<number> {
  const cmd = argv[0];
  try {
    // no arguments: boot the combined image (vm.ts and boot.ts load on demand: boot uses the built image)
    if (cmd === undefined) return await (await import('./boot.ts')).bootCommand([]);
    if (cmd === 'help' || cmd === '--help' || cmd === '-h') {
      process.stdout.write(HELP);
      return 0;
    }
    if (cmd === 'bare') return await bareCommand(argv.slice(1));
    if (cmd === 'run') return await runCommand(argv.slice(1));
    if (cmd === 'vm') return await (await import('./vm.ts')).vmCommand(argv.slice(1));
    if (cmd === 'boot') return await (await import('./boot.ts')).bootCommand(argv.slice(1));
    if (cmd === 'noise') return await noiseCommand(argv.slice(1));
    if (cmd === 'paging') return await pagingCommand(argv.slice(1));
    throw new UsageError(`unknown command '${cmd}' (try 'v3vee help')`);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`v3vee: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`v3vee: internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
    return 70;
  }
}
