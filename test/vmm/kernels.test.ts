// The VMM's "done when": every test kernel in apps/kernels/prebuilt gives exactly its expected
// serial output (apps/kernels/expected/, QEMU's) and exit status as a guest on the hosted host,
// under nested paging (4-level radix, hashed; the PAE and legacy formats for `paging`). The
// shadow strategies are in kernels-shadow-modes.test.ts.
import { describe, expect, it } from 'vitest';
import { pagingModeNames } from '../../vmm/index.ts';
import { expectedOutput, fromMarker, KERNEL_RUNS } from '../kernels/kernels.ts';
import { bootKernel, kernelRuns } from './kernel-runs.ts';

describe('test kernels as guests of the VMM, nested paging', () => {
  it('the build offers nested and hashed nested paging', () => {
    expect(pagingModeNames()).toEqual(expect.arrayContaining(['nested', 'hashed']));
  });
  describe('4-level radix', () => kernelRuns('nested'));
  describe('hashed', () => kernelRuns('hashed'));
  it.each(['pae', 'legacy'])('paging under nested paging with the %s table format', (format) => {
    const run = KERNEL_RUNS.find((r) => r.id === 'paging')!;
    const rig = bootKernel(run, { mode: 'nested', format });
    expect(fromMarker(rig.out.text(), run.kernel)).toBe(expectedOutput(run));
    expect(rig.vm.report().exitStatus).toBe(1);
  });
  it('two runs give identical output, exits and cycle counts', () => {
    const run = KERNEL_RUNS.find((r) => r.id === 'interrupts')!;
    const a = bootKernel(run, 'nested'), b = bootKernel(run, 'nested');
    expect(a.out.text()).toBe(b.out.text());
    expect({ ...a.vm.stats(), hostSeconds: 0 }).toEqual({ ...b.vm.stats(), hostSeconds: 0 });
    expect(a.machine.cores[0].cycles).toBe(b.machine.cores[0].cycles);
  });
});
