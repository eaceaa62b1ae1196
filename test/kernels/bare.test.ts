// The project's test kernels boot bare on our emulated PC with the same serial output and exit
// status as under QEMU (issue 3's "done when"), deterministically.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadMultiboot } from '../../hw/boot/multiboot.ts';
import { Machine } from '../../hw/machine.ts';
import { expectedOutput, fromMarker, KERNEL_RUNS, kernelPath, type KernelRun, qemuCmdline } from './kernels.ts';

export function bootBare(run: KernelRun, maxCycles = 20e9) {
  const out: number[] = [];
  const m = new Machine({ ram: 128 << 20, com1: { write: (b) => { for (const x of b) out.push(x); } } });
  const img = new Uint8Array(readFileSync(kernelPath(run.kernel)));
  const e = loadMultiboot({ size: m.mem.ramSize, write: (a, b) => m.mem.writeBytes(a, b) }, img, { cmdline: qemuCmdline(run) });
  m.startFlat32(e.entry, e.eax, e.ebx);
  const reason = m.run(maxCycles);
  return { m, reason, text: Buffer.from(out).toString('latin1') };
}

describe('test kernels, bare on the emulated PC', () => {
  for (const run of KERNEL_RUNS) {
    it(`${run.id}: same serial output and exit status as under QEMU`, () => {
      const r = bootBare(run);
      expect(fromMarker(r.text, run.kernel) ?? r.text).toBe(expectedOutput(run));
      expect(r.reason).toBe('exit');
      expect(r.m.exitStatus).toBe(run.status);
    });
  }
  it('two runs give identical output and cycle counts', () => {
    const a = bootBare(KERNEL_RUNS.find((r) => r.id === 'interrupts')!);
    const b = bootBare(KERNEL_RUNS.find((r) => r.id === 'interrupts')!);
    expect(a.text).toBe(b.text);
    expect(a.m.stats()).toEqual(b.m.stats());
  });
});
