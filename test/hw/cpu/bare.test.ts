import { describe, expect, it } from 'vitest';
import { assemble, haveAssembler, runBare } from './bare.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

run('bare runner', () => {
  it('prints on 0xE9 and exits through 0xF4', () => {
    const img = assemble(`
      .code32
      mov $0xe9, %dx
      mov $'o', %al
      out %al, %dx
      mov $'k', %al
      out %al, %dx
      mov $0x21, %al
      out %al, $0xf4
      hlt
    `, 0x10000);
    const r = runBare(img);
    expect(r.out).toBe('ok');
    expect(r.end).toBe('exit');
    expect(r.exit).toBe((0x21 << 1) | 1);
  });
  it('real-mode start and a divide error through the IVT', () => {
    const img = assemble(`
      .code16
      movw $handler, 0          # IVT[0] = 0000:handler
      movw $0, 2
      xor %ax, %ax
      mov %ax, %ss
      mov $0x7000, %sp
      mov $1, %ax
      xor %bl, %bl
      div %bl                   # #DE
      hlt
    handler:
      mov $0x5, %al
      out %al, $0xf4
    `, 0x7c00);
    const r = runBare(img, { org: 0x7c00, start: 'real' });
    expect(r.exit).toBe(11);
  });
});
