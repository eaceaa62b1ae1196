// The project's own Multiboot test kernels (apps/kernels/): where they are, how each is run and
// what it must print. Shared by the QEMU reference test here and by tests that run the same
// kernels bare on the emulated machine or as guests of the VMM: all compare the serial output
// from the kernel's first line (`== name ==`) with apps/kernels/expected/<run>.txt.

import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KERNELS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../apps/kernels');
export const PREBUILT_DIR = join(KERNELS_DIR, 'prebuilt');
export const EXPECTED_DIR = join(KERNELS_DIR, 'expected');

export const KERNEL_NAMES = ['hello', 'interrupts', 'paging', 'apic', 'serial', 'mmu'] as const;
export type KernelName = (typeof KERNEL_NAMES)[number];

export interface KernelRun {
  /** names apps/kernels/expected/<id>.txt */
  id: string;
  kernel: KernelName;
  /** QEMU's -append; undefined = no -append */
  append?: string;
  /** the isa-debug-exit status: (0 << 1) | 1 when every test passed */
  status: number;
}

export const KERNEL_RUNS: readonly KernelRun[] = [
  ...KERNEL_NAMES.map((kernel) => ({ id: kernel, kernel, status: 1 })),
  { id: 'hello-append', kernel: 'hello', append: 'console=ttyS0 greeting=hi', status: 1 },
];

/**
 * The Multiboot command line QEMU gives a kernel run as `-kernel FILE [-append ARGS]`: the file
 * name as given, a space, then ARGS (empty without -append), as GRUB puts the kernel's path
 * first. The QEMU test runs from prebuilt/ with FILE = `<name>.elf`, so hello prints
 * `cmdline: "hello.elf "`; a run elsewhere must pass the same string to match.
 */
export function qemuCmdline(run: KernelRun): string {
  return `${run.kernel}.elf ${run.append ?? ''}`;
}

export function kernelPath(name: KernelName): string {
  return join(PREBUILT_DIR, `${name}.elf`);
}

export function expectedOutput(run: KernelRun): string {
  return readFileSync(join(EXPECTED_DIR, `${run.id}.txt`), 'latin1');
}

/** The output from the kernel's first line on (firmware such as SeaBIOS may print before it). */
export function fromMarker(output: string, name: KernelName): string | undefined {
  const marker = `== ${name} ==\n`;
  const at = output.indexOf(marker);
  return at < 0 ? undefined : output.slice(at);
}

export const QEMU = 'qemu-system-i386';

export function qemuAvailable(): boolean {
  const r = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  return r.error === undefined && r.status === 0;
}

export interface QemuResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a prebuilt kernel under QEMU as issue 3 specifies (from prebuilt/, stdin empty). */
export function runQemu(run: KernelRun, timeoutMs = 15_000): QemuResult {
  const args = [
    '-kernel', `${run.kernel}.elf`,
    ...(run.append === undefined ? [] : ['-append', run.append]),
    '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-no-reboot',
    '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04', '-m', '128',
  ];
  const r = spawnSync(QEMU, args, {
    cwd: PREBUILT_DIR,
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
    encoding: 'latin1',
  });
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
