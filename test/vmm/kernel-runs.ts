// Running the test kernels (apps/kernels/prebuilt) as guests of the VMM on the hosted host, for
// kernels.test.ts (nested modes) and kernels-shadow-modes.test.ts (shadow modes).
import { expect, it } from 'vitest';
import { expectedOutput, fromMarker, KERNEL_RUNS, kernelPath, type KernelRun } from '../kernels/kernels.ts';
import { bootVm, readImage, type VmRig } from './harness.ts';

/** Runs known not to pass yet, with the reason (reported in the test name, not hidden). */
export const PENDING: Readonly<Record<string, string>> = {};

export function bootKernel(run: KernelRun, paging: unknown): VmRig {
  const file = `${run.kernel}.elf`;
  const rig = bootVm({ memory: '128M', paging, kernel: { path: file }, cmdline: run.append ?? '' }, { [file]: readImage(kernelPath(run.kernel)) });
  rig.run(20e9);
  return rig;
}

/** One test per kernel run under paging mode `mode`. */
export function kernelRuns(mode: string): void {
  for (const run of KERNEL_RUNS) {
    const pending = PENDING[`${run.kernel}/${mode}`];
    const t = pending !== undefined ? it.skip : it;
    t(`${run.id} under ${mode} paging: QEMU's serial output and exit status${pending ? ` (pending: ${pending})` : ''}`, () => {
      const rig = bootKernel(run, mode);
      const r = rig.vm.report();
      expect(fromMarker(rig.out.text(), run.kernel) ?? rig.out.text()).toBe(expectedOutput(run));
      expect(r.state).toBe('stopped');
      expect(r.exitStatus).toBe(run.status);
      expect(rig.host.errors).toEqual([]);
    });
  }
}
