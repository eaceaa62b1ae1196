import { describe, expect, it } from 'vitest';
import { makeEmuMachine, runEmu } from '../../native/emu.ts';
import { CODE_BASE, DATA_BASE, DATA_SIZE } from '../../native/native.ts';

const m = makeEmuMachine();
function run(code: number[], regs: number[] = [0, 0, 0, 0, DATA_BASE + 0x1000, 0, 0, 0], eflags = 0) {
  return runEmu(m, { code: Uint8Array.from(code), regs, eflags, data: new Uint8Array(DATA_SIZE) });
}

describe('cpu smoke', () => {
  it('adds registers and ends at the marker', () => {
    const r = run([0x01, 0xd8], [5, 0, 0, 7, DATA_BASE + 0x1000, 0, 0, 0]); // add eax, ebx
    expect(r.signal).toBe(0);
    expect(r.regs[0]).toBe(12);
  });
  it('loops with jcc', () => {
    // mov ecx, 10; xor eax,eax; l: add eax, ecx; dec ecx; jnz l
    const r = run([0xb9, 10, 0, 0, 0, 0x31, 0xc0, 0x01, 0xc8, 0x49, 0x75, 0xfb]);
    expect(r.signal).toBe(0);
    expect(r.regs[0]).toBe(55);
  });
  it('stores into the data region and faults outside it', () => {
    const r = run([0x89, 0x06], [0x11223344, 0, 0, 0, DATA_BASE + 0x1000, 0, DATA_BASE + 16, 0]);
    expect(r.signal).toBe(0);
    expect(Array.from(r.data.subarray(16, 20))).toEqual([0x44, 0x33, 0x22, 0x11]);
    const f = run([0x89, 0x06], [1, 0, 0, 0, DATA_BASE + 0x1000, 0, DATA_BASE + DATA_SIZE, 0]);
    expect(f.signal).toBe(11);
    expect(f.trapno).toBe(14);
    expect(f.err).toBe(6);
    expect(f.faultEip).toBe(CODE_BASE);
  });
});
