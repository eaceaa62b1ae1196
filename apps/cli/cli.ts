import { bareCommand } from './bare.ts';
import { UsageError } from './options.ts';
import { runCommand } from './run.ts';

// The v3vee CLI: parses the subcommand and dispatches. Exit statuses follow DESIGN.md: 2 for a
// job that could not start (bad option, missing file), 70 for an internal error.

export const HELP = `v3vee: the V3VEE stack (Kitten-like LWK + Palacios-like VMM) on an emulated x86 PC

usage: v3vee <command> [options]

commands (as they land; see README.md):
  bare KERNEL     boot a Multiboot kernel on the bare emulated PC (no LWK, no VMM)
  run ELF [ARGS]  boot the LWK and run a static i386 Linux program as its first process
  help            this text

Run with no arguments to boot the combined image once it exists; until then this help is shown.
`;

export async function runCli(argv: string[]): Promise<number> {
  const cmd = argv[0];
  try {
    if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
      process.stdout.write(HELP);
      return 0;
    }
    if (cmd === 'bare') return await bareCommand(argv.slice(1));
    if (cmd === 'run') return await runCommand(argv.slice(1));
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
