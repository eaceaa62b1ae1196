// Small guests for the VMM's tests: GNU assembler source assembled into a flat image loaded at
// 0x100000 and entered in flat 32-bit protected mode (kernel format "flat"). The prelude gives
// the guest its own GDT, a stack, and an IDT whose gates `setgate` fills at run time; `exit`
// writes a 32-bit status to isa-debug-exit (port 0xF4).
import { assemble, haveAssembler } from '../hw/cpu/bare.ts';
import { bootVm, type VmRig } from './harness.ts';

export const GUEST_BASE = 0x100000;

const PRELUDE = `
  .code32
  .macro setgate vec, h
    mov $\\h, %eax
    mov %ax, idt + \\vec * 8
    movw $0x08, idt + \\vec * 8 + 2
    movw $0x8e00, idt + \\vec * 8 + 4
    shr $16, %eax
    mov %ax, idt + \\vec * 8 + 6
  .endm
  .macro exit v
    mov \\v, %eax
    out %eax, $0xf4
  .endm
  lgdt gdtr
  ljmp $0x08, $1f
1:mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x90000, %esp
  lidt idtr
  jmp main
  .align 8
gdt: .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdtr: .word 23
  .long gdt
  .align 8
idt: .fill 256, 8, 0
idtr: .word 256 * 8 - 1
  .long idt
main:
`;

export const assemblerMissing = !haveAssembler();

/** The guest image for `body` (which starts at label main). */
export function guestImage(body: string): Uint8Array {
  return assemble(PRELUDE + body, GUEST_BASE);
}

/** Boots `body` as a flat guest with `config` fields added; `before` runs before start(). */
export function runGuest(body: string, config: Record<string, unknown> = {}, maxCycles = 2e9, before?: (rig: VmRig) => void): VmRig {
  const rig = bootVm({ memory: '16M', kernel: { path: 'guest', format: 'flat', load: GUEST_BASE }, ...config }, { guest: guestImage(body) }, {}, before);
  rig.run(maxCycles);
  return rig;
}
