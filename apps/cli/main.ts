// The v3vee command-line interface (DESIGN.md, CLI conventions).
import { runCli } from './cli.ts';

process.exitCode = await runCli(process.argv.slice(2));
