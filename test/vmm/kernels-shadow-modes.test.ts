// The test kernels as guests under each shadow paging strategy the build offers ('shadow', the
// virtual TLB; 'shadow-cache'), with QEMU's serial output and exit status (kernel-runs.ts).
import { describe, expect, it } from 'vitest';
import { pagingModeNames } from '../../vmm/index.ts';
import { kernelRuns } from './kernel-runs.ts';

const SHADOW = pagingModeNames().filter((m) => m.startsWith('shadow'));

describe('test kernels as guests of the VMM, shadow paging', () => {
  it('the build offers both shadow strategies', () => {
    expect(SHADOW).toEqual(['shadow', 'shadow-cache']);
  });
  for (const mode of SHADOW) describe(mode, () => kernelRuns(mode));
});
