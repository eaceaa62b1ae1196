// The v3vee CLI: parses the subcommand and dispatches. Exit statuses follow DESIGN.md: 2 for a
// job that could not start (bad option, missing file), 70 for an internal error.

export const HELP = `v3vee: the V3VEE stack (Kitten-like LWK + Palacios-like VMM) on an emulated x86 PC

usage: v3vee <command> [options]

commands (as they land; see README.md):
  help            this text

Run with no arguments to boot the combined image once it exists; until then this help is shown.
`;

export async function runCli(argv: string[]): Promise<number> {
  const cmd = argv[0];
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(HELP);
    return 0;
  }
  process.stderr.write(`v3vee: unknown command '${cmd}' (try 'v3vee help')\n`);
  return 2;
}
