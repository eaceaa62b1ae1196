// Self-modifying code and code written behind the core's back: the decoded-instruction cache
// (hw/cpu/codecache.ts) and the successor links of the loop must never run stale instructions.
import { describe, expect, it } from 'vitest';
import { RUNNING } from '../../../hw/cpu/cpu.ts';
import { assemble, haveAssembler } from './bare.ts';
import { DATA, enablePaging, halted, hex, ORG, Paging32, runSys } from './sysenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

run('self-modifying code', () => {
  it('patching the very next instruction, on each pass of a loop, runs the patched bytes', () => {
    const r = runSys(`
      xor %ecx, %ecx
    1:
      mov %cl, 2f+1           # the immediate of the next instruction
    2:
      mov $0xff, %al
      mov %al, ${DATA}(%ecx)
      inc %ecx
      cmp $3, %ecx
      jne 1b
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    expect(Array.from(r.mem.u8.subarray(DATA, DATA + 3))).toEqual([0, 1, 2]);
    expect(r.cpu.code.invalidations).toBeGreaterThanOrEqual(3);
  });

  it('patching an instruction further ahead in the same page, after it ran once', () => {
    const r = runSys(`
      xor %ecx, %ecx
      xor %ebx, %ebx
    1:
      mov $1, %eax
      add %eax, %ebx
      movl $2, 1b+1
      inc %ecx
      cmp $2, %ecx
      jne 1b
      cli
      hlt
    `);
    expect(r.cpu.r[3]).toBe(1 + 2);
  });

  it('patching code in another page, then jumping there', () => {
    const r = runSys(`
      xor %ecx, %ecx
    1:
      mov %cl, ${hex(ORG + 0x1000 + 1)}
      jmp far_code
    back:
      mov %al, ${DATA}(%ecx)
      inc %ecx
      cmp $3, %ecx
      jne 1b
      cli
      hlt
      .org 0x1000, 0x90
    far_code:
      mov $0xff, %al
      jmp back
    `);
    expect(halted(r).vector).toBe(-1);
    expect(Array.from(r.mem.u8.subarray(DATA, DATA + 3))).toEqual([0, 1, 2]);
  });

  it('writing the code through another linear alias of its physical page (paging on)', () => {
    // 0x400000 maps the physical page of ORG: the store goes through the alias
    const r = runSys(`
      xor %ecx, %ecx
    1:
      mov %cl, 0x400000 + (2f - ${hex(ORG)}) + 1
    2:
      mov $0xff, %al
      mov %al, ${DATA}(%ecx)
      inc %ecx
      cmp $3, %ecx
      jne 1b
      cli
      hlt
    `, {
      setup: (cpu, mem) => {
        const p = new Paging32(mem, 0x100000);
        p.identity(0, 0x200000);
        p.map(0x400000, ORG);
        enablePaging(cpu, 0x100000);
      },
    });
    expect(halted(r).vector).toBe(-1);
    expect(Array.from(r.mem.u8.subarray(DATA, DATA + 3))).toEqual([0, 1, 2]);
  });

  it('code rewritten by the host (PhysMem.writeBytes, as a loader or DMA) after it ran runs as written', () => {
    const r = runSys('mov $1, %ebx\ncli\nhlt');
    expect(r.cpu.r[3]).toBe(1);
    const before = r.cpu.code.invalidations;
    r.mem.writeBytes(ORG, assemble('.code32\nmov $2, %ebx\ncli\nhlt\n', ORG));
    expect(r.cpu.code.invalidations).toBe(before + 1);
    r.cpu.eip = ORG;
    r.cpu.state = RUNNING;
    r.cpu.run(r.cpu.cycles + 1000);
    expect(r.cpu.r[3]).toBe(2);
    r.mem.write(ORG + 1, 1, 3);                        // a single byte, as a device's DMA would
    r.cpu.eip = ORG;
    r.cpu.state = RUNNING;
    r.cpu.run(r.cpu.cycles + 1000);
    expect(r.cpu.r[3]).toBe(3);
  });
});
