// The machine as a whole: booting a Multiboot kernel, PIT interrupts through the 8259 into the
// kernel's IDT, idle time jumped over with HLT, isa-debug-exit, determinism.
import { describe, expect, it } from 'vitest';
import { loadMultiboot } from '../../../hw/boot/multiboot.ts';
import { Machine } from '../../../hw/machine.ts';
import { assemble, haveAssembler } from '../cpu/bare.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

/** A flat image linked at 1 MiB with a Multiboot header using the a.out kludge (flag 16). */
function kernel(body: string): Uint8Array {
  return assemble(`
    .code32
    .globl _start
  _start:
    jmp entry
    .align 4
  mbh:
    .long 0x1BADB002, 0x00010003, -(0x1BADB002 + 0x00010003)
    .long mbh, _start, 0, 0, entry
  entry:
    ${body}
  `, 0x100000);
}

function boot(img: Uint8Array, out: number[] = []) {
  const m = new Machine({ ram: 16 << 20, com1: { write: (b) => out.push(...b) } });
  const e = loadMultiboot({ size: 16 << 20, write: (a, b) => m.mem.writeBytes(a, b) }, img);
  m.startFlat32(e.entry, e.eax, e.ebx);
  return m;
}

// An IDT at 0x8000 whose 256 gates point at `isr` (interrupt gates, selector 0x08), a GDT with
// flat code/data, the PIC remapped to 0x20/0x28 with only IRQ0 unmasked, the PIT in mode 2.
const SETUP = `
    lgdt gdtr
    ljmp $0x08, $1f
  1:mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x90000, %esp
    mov $0x8000, %edi
    mov $256, %ecx
  2:mov $isr, %eax
    mov %ax, (%edi)
    movw $0x08, 2(%edi)
    movw $0x8e00, 4(%edi)
    shr $16, %eax
    mov %ax, 6(%edi)
    add $8, %edi
    loop 2b
    lidt idtr
    mov $0x11, %al; out %al, $0x20; out %al, $0xa0
    mov $0x20, %al; out %al, $0x21
    mov $0x28, %al; out %al, $0xa1
    mov $0x04, %al; out %al, $0x21
    mov $0x02, %al; out %al, $0xa1
    mov $0x01, %al; out %al, $0x21; out %al, $0xa1
    mov $0xfe, %al; out %al, $0x21
    mov $0xff, %al; out %al, $0xa1
    mov $0x34, %al; out %al, $0x43      # channel 0, lobyte/hibyte, mode 2
    mov $1193, %ax                      # 1 ms
    out %al, $0x40
    mov %ah, %al
    out %al, $0x40
`;
const DATA = `
    .align 8
  gdt: .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
  gdtr: .word 23
    .long gdt
  idtr: .word 2047
    .long 0x8000
`;

run('machine', () => {
  it('boots a Multiboot kernel, prints on COM1, exits through 0xF4', () => {
    const out: number[] = [];
    const m = boot(kernel(`
      cmp $0x2badb002, %eax
      jne 1f
      mov $0x3f8, %dx
      mov $'o', %al
      out %al, %dx
      mov $'k', %al
      out %al, %dx
    1:mov $7, %al
      out %al, $0xf4
    `), out);
    expect(m.run(10_000_000)).toBe('exit');
    expect(m.exitStatus).toBe(15);
    expect(String.fromCharCode(...out)).toBe('ok');
  });

  it('counts PIT ticks through the PIC with HLT, jumping over idle time', () => {
    const m = boot(kernel(`
      ${SETUP}
      xor %ebx, %ebx
      sti
    3:hlt
      cmp $10, %ebx
      jb 3b
      mov %ebx, %eax
      out %al, $0xf4
    isr:
      inc %ebx
      push %eax
      mov $0x20, %al
      out %al, $0x20
      pop %eax
      iret
    ${DATA}
    `));
    expect(m.run(1e9)).toBe('exit');
    expect(m.exitStatus).toBe((10 << 1) | 1);
    const st = m.stats();
    // ten 1 ms periods at 2.2 GHz: the clock went past 10 ms while few instructions ran
    expect(st.cycles).toBeGreaterThanOrEqual(10 * 2_200_000 * 0.99);
    expect(st.cycles).toBeLessThan(11 * 2_200_000);
    expect(st.instructions).toBeLessThan(5000); // the IDT fill loop runs 2,048 instructions
    expect(st.interrupts).toBe(10);
  });

  it('is deterministic: two runs give the same cycles and instruction counts', () => {
    const img = kernel(`
      ${SETUP}
      xor %ebx, %ebx
      sti
    3:inc %esi
      cmp $5, %ebx
      jb 3b
      mov %esi, %eax
      and $0x7f, %eax
      out %al, $0xf4
    isr:
      inc %ebx
      push %eax
      mov $0x20, %al
      out %al, $0x20
      pop %eax
      iret
    ${DATA}
    `);
    const a = boot(img), b = boot(img);
    a.run(1e9); b.run(1e9);
    expect(a.stopReason).toBe('exit');
    expect(a.stats()).toEqual(b.stats());
    expect(a.exitStatus).toBe(b.exitStatus);
  });

  it('stops as idle when every core halts with interrupts off', () => {
    const m = boot(kernel('cli\n hlt'));
    expect(m.run(1e9)).toBe('idle');
  });

  it('reports a triple fault as shutdown', () => {
    const m = boot(kernel('lidt bad\n int $3\n bad: .word 0\n .long 0'));
    expect(m.run(1e9)).toBe('shutdown');
    expect(m.stopDetail).toMatch(/triple fault/);
  });

  it('stops at the cycle limit', () => {
    const m = boot(kernel('1: jmp 1b'));
    expect(m.run(100_000)).toBe('limit');
    expect(m.bsp.cycles).toBeGreaterThanOrEqual(100_000);
  });
});
