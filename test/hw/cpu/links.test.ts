// The run loop's successor links (Cpu.execute) must never skip a translation that could differ:
// one physical code page mapped at two linear addresses, whose next linear pages map to
// different frames, must run the code of each alias's own next page.
import { describe, expect, it } from 'vitest';
import { assemble, haveAssembler, runBare } from './bare.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

run('successor links', () => {
  it('a fall-through into the next page follows the current mapping, not the first one', () => {
    const X = 0x20000, Y1 = 0x21000, Y2 = 0x22000, PD = 0x30000, PT = 0x31000;
    const A = 0x400000, B = 0x800000;
    const img = assemble(`
      .code32
      mov $${PD}, %eax
      mov %eax, %cr3
      mov %cr4, %eax
      or $0x10, %eax          # PSE
      mov %eax, %cr4
      mov %cr0, %eax
      or $0x80000000, %eax
      mov %eax, %cr0
      xor %ebx, %ebx
      xor %ecx, %ecx
      mov $${A + 0xffe}, %eax
      jmp *%eax
    `, 0x10000);
    const r = runBare(img, {
      setup: (_cpu, mem) => {
        const w = (a: number, v: number) => mem.write(a, 4, v >>> 0);
        w(PD + 0, 0x00000083);                 // 0-4 MiB identity, 4 MiB page
        w(PD + (A >>> 22) * 4, PT | 3);        // A's table
        w(PD + (B >>> 22) * 4, (PT + 0x1000) | 3);
        w(PT + 0, X | 3); w(PT + 4, Y1 | 3);                  // A -> X, A+4K -> Y1
        w(PT + 0x1000, X | 3); w(PT + 0x1000 + 4, Y2 | 3);    // B -> X, B+4K -> Y2
        mem.write(X + 0xffe, 1, 0x90); mem.write(X + 0xfff, 1, 0x90);     // nop; nop
        // Y1: inc %ebx; mov $B+0xffe, %eax; jmp *%eax
        mem.writeBytes(Y1, Uint8Array.from([0x43, 0xb8, ...le32(B + 0xffe), 0xff, 0xe0]));
        // Y2: mov $2, %ecx; hlt
        mem.writeBytes(Y2, Uint8Array.from([0xb9, 2, 0, 0, 0, 0xf4]));
      },
      maxCycles: 100_000,
    });
    expect(r.end).toBe('halt');
    expect(r.cpu.r[3]).toBe(1); // Y1 ran once
    expect(r.cpu.r[1]).toBe(2); // then Y2, through B's mapping
  });
});

function le32(v: number): number[] { return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24]; }
