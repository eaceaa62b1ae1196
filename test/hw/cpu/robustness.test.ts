// Nothing a program does may escape as a JavaScript exception (issue 2): random code, run in
// user mode (host mode, CPL 3) and bare at CPL 0 in real and protected mode, always ends in a
// trap, a halt, a shutdown or the cycle limit, never in a thrown error.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Cpu } from '../../../hw/cpu/cpu.ts';
import { makeEmuMachine, runEmu } from '../../native/emu.ts';
import { DATA_BASE, DATA_SIZE } from '../../native/native.ts';
import { SEED } from '../../native/diff.ts';
import { runBare } from './bare.ts';

const code = fc.uint8Array({ minLength: 1, maxLength: 48 });
const regs = fc.array(fc.nat({ max: 0xffffffff }), { minLength: 8, maxLength: 8 });

describe('robustness', () => {
  it('random code at CPL 3 never throws out of the core', () => {
    const m = makeEmuMachine();
    fc.assert(fc.property(code, regs, (c, r) => {
      r[4] = DATA_BASE + 0x1000;
      runEmu(m, { code: c, regs: r, eflags: 0, data: new Uint8Array(DATA_SIZE) }, 20_000);
    }), { seed: SEED, numRuns: 3000 });
  });

  it('random code bare at CPL 0 (real and protected mode) never throws out of the core', () => {
    fc.assert(fc.property(code, fc.boolean(), (c, real) => {
      const r = runBare(c, { start: real ? 'real' : 'flat32', org: 0x7c00, ram: 1 << 20, maxCycles: 20_000 });
      expect(['exit', 'halt', 'shutdown', 'timeout']).toContain(r.end);
    }), { seed: SEED, numRuns: 400 });
  });

  it('a triple fault is a shutdown with a reason, and the core stays stopped', () => {
    // lidt with a zero limit, then INT3: #GP, #GP while delivering it -> #DF, then triple fault
    const r = runBare(Uint8Array.from([0x0f, 0x01, 0x1d, 0x00, 0x00, 0x00, 0x00, 0xcc]), { org: 0x7c00, ram: 1 << 20 });
    expect(r.end).toBe('shutdown');
    expect(r.cpu.shutdownReason).toMatch(/triple fault/);
    expect(Cpu.isFault(new Error('x'))).toBe(false);
  });
});
