// The SVM issue's "done when": a TypeScript test VMM of a few dozen lines runs a small guest
// kernel, intercepts its I/O and CPUID, injects timer interrupts into it, and runs it to
// completion. The VMM is the host handler of a bare core; the guest runs through vmrun().
import { expect, it } from 'vitest';
import { Cpu, TRAP_VMEXIT } from '../../../hw/cpu/cpu.ts';
import { vmrun } from '../../../hw/cpu/svm.ts';
import { NPT_HASHED, NPT_LONG, NptBuilder, VMCB_NPT_FORMAT } from '../../../hw/cpu/npt.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { assemble } from '../cpu/bare.ts';
import { flatGuest, GUEST_BASE, IOPM, suite as run, VMCB } from './harness.ts';

// The guest: flat 32-bit protected mode (set up by the VMM through the VMCB), an IDT whose
// vector 0x20 counts ticks; it asks CPUID leaf 0x40000000, reports on port 0xE9, halts for
// five ticks and ends with a write to isa-debug-exit.
const GUEST = `
  .code32
  lgdt gdtr
  mov $tick, %eax
  mov %ax, idt + 0x100
  movw $0x08, idt + 0x102
  movw $0x8e00, idt + 0x104
  shr $16, %eax
  mov %ax, idt + 0x106
  lidt idtr
  mov $0x40000000, %eax
  cpuid
  mov %ebx, %eax
  out %al, $0xe9            # 'V' from the VMM's CPUID
  xor %esi, %esi
  sti
1:hlt
  cmp $5, %esi
  jb 1b
  mov %esi, %eax
  out %al, $0xf4
  jmp .
tick:
  inc %esi
  iret
  .align 8
idt: .fill 0x21, 8, 0
idtr: .word 0x20 * 8 + 7
  .long idt
gdt: .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdtr: .word 23
  .long gdt
`;

function setupVmcb(mem: PhysMem): V.VmcbView {
  mem.writeBytes(VMCB, new Uint8Array(0x1000));
  const v = new V.VmcbView(mem, VMCB);
  v.w32(V.VMCB_INTERCEPTS3, V.IC3_IOIO | V.IC3_CPUID | V.IC3_HLT | V.IC3_SHUTDOWN);
  v.w32(V.VMCB_INTERCEPTS4, V.IC4_VMRUN);
  v.w64(V.VMCB_IOPM_BASE, IOPM);
  mem.writeBytes(IOPM, new Uint8Array(0x3000).fill(0xff)); // intercept every port (the IOPM is 12 KiB)
  v.w32(V.VMCB_ASID, 1);
  flatGuest(v, GUEST_BASE, 0x90000);
  return v;
}

/** Guest RAM (4 MiB of guest-physical space) lives at this host-physical address under nested paging. */
const HOST_GUEST_RAM = 0x400000;

run('a test VMM', () => {
  it.each([
    ['no nested paging', -1],
    ['nested paging (4-level radix)', NPT_LONG],
    ['nested paging (hashed)', NPT_HASHED],
  ])('runs a guest to completion with %s: I/O and CPUID intercepted, timer ticks injected at HLT', (_name, format) => {
    const mem = new PhysMem(8 << 20);
    const cpu = new Cpu({ mem });
    const v = setupVmcb(mem);
    let guestRamHost = 0;
    if (format >= 0) {
      // guest-physical [0, 4 MiB) -> host-physical [4 MiB, 8 MiB); tables from a bump allocator at 3 MiB
      let next = 0x300000;
      const npt = new NptBuilder(mem, format, () => { const a = next; next += 0x1000; return a; },
        format === NPT_HASHED ? { base: 0x200000, log2Slots: 12, largePages: true } : undefined);
      npt.map(0, HOST_GUEST_RAM, 4 << 20);
      v.w32(V.VMCB_NP_CONTROL, 1);
      v.w64(V.VMCB_N_CR3, npt.nCr3);
      v.w8(VMCB_NPT_FORMAT, format);
      guestRamHost = HOST_GUEST_RAM;
    }
    mem.writeBytes(guestRamHost + GUEST_BASE, assemble(GUEST, GUEST_BASE));
    const exits = new Map<number, number>();
    let out = '', status = -1, ticks = 0;
    cpu.host = {
      trap(c, t) {
        if (t.kind !== TRAP_VMEXIT) throw new Error(`unexpected host trap ${t.kind}`);
        const code = t.vector;
        exits.set(code, (exits.get(code) ?? 0) + 1);
        const rip = v.u32(V.VMCB_RIP), nrip = v.u32(V.VMCB_NRIP);
        if (code === V.EXIT_CPUID) {                 // our CPUID leaf: 'V' in EBX
          c.r[3] = 0x56; c.r[1] = 0; c.r[2] = 0; v.w64(V.VMCB_RAX, 0);
          v.w64(V.VMCB_RIP, nrip);
        } else if (code === V.EXIT_IOIO) {
          const info = v.u32(V.VMCB_EXITINFO1), port = info >>> 16;
          expect(info & 1).toBe(0);                   // OUT
          expect(v.u32(V.VMCB_EXITINFO2)).toBe(nrip);
          const al = v.u32(V.VMCB_RAX) & 0xff;
          if (port === 0xe9) out += String.fromCharCode(al);
          if (port === 0xf4) { status = al; c.idle(); return; }  // the VM is done
          v.w64(V.VMCB_RIP, nrip);
        } else if (code === V.EXIT_HLT) {            // the guest waits: inject the next tick
          ticks++;
          v.w64(V.VMCB_RIP, rip + 1);
          v.w32(V.VMCB_EVENTINJ, V.EVT_V | (V.EVT_INTR << 8) | 0x20);
        } else throw new Error(`unexpected exit 0x${code.toString(16)} at 0x${rip.toString(16)}`);
        expect(vmrun(c, VMCB)).toBe(0);
      },
    };
    expect(vmrun(cpu, VMCB)).toBe(0);
    cpu.run(50_000_000);
    expect(out).toBe('V');
    expect(status).toBe(5);
    expect(ticks).toBe(5);
    expect(exits.get(V.EXIT_CPUID)).toBe(1);
    expect(exits.get(V.EXIT_IOIO)).toBe(2);
    expect(cpu.guest).toBe(false);
    if (format >= 0) {
      expect(exits.get(V.EXIT_NPF)).toBeUndefined();
      expect(mem.read(GUEST_BASE, 1)).toBe(0); // nothing of the guest landed at its guest-physical address
    }
  });
});
