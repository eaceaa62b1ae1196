// More than one virtual core: one host thread per virtual core, each on its own host core, a
// local APIC each (the APIC page shows each core its own), application processors started by
// INIT and a start-up IPI in real mode, and IPIs between them.
import { describe, expect, it } from 'vitest';
import { assemblerMissing, GUEST_BASE, guestImage } from './guests.ts';
import { bootVm, tryVm } from './harness.ts';

// The boot processor copies a real-mode trampoline to 0x8000, enables its LAPIC and sends
// INIT and SIPI (vector 8) to APIC 1. The AP switches to protected mode, reports its APIC ID
// (from its own APIC page) and its CPUID initial APIC ID, sends a fixed IPI (vector 0x50) to
// APIC 0 and parks (CLI; HLT). The boot processor waits in HLT for that IPI, then exits with
// the AP's report.
const SMP = `
  setgate 0x50, ipi
  mov $tramp, %esi
  mov $0x8000, %edi
  mov $(tramp_end - tramp), %ecx
  rep movsb
  movl $0x1ff, 0xfee000f0
  movl $0x01000000, 0xfee00310
  movl $0x00004500, 0xfee00300      # INIT to APIC 1
  movl $0x01000000, 0xfee00310
  movl $0x00004608, 0xfee00300      # SIPI, vector 8: 0x8000
  sti
1:hlt
  cmpl $0, got_ipi
  je 1b
  mov ap_report, %eax
  exit %eax
ipi:
  movl $1, got_ipi
  movl $0, 0xfee000b0
  iret
got_ipi: .long 0
ap_report: .long 0

  .code16
tramp:
  cli
  xor %ax, %ax
  mov %ax, %ds
  lgdtl 0x8000 + (tgdtr - tramp)
  mov %cr0, %eax
  or $1, %eax
  mov %eax, %cr0
  ljmpl $0x08, $ap32
  .align 4
tgdtr: .word 23
  .long gdt
tramp_end:
  .code32
ap32:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $0x70000, %esp
  movl $0x1ff, 0xfee000f0
  mov $1, %eax
  cpuid
  shr $24, %ebx                     # CPUID.1 EBX[31:24]: the initial APIC ID
  mov 0xfee00020, %eax              # the APIC ID register of this core's own APIC page
  shr $24, %eax
  shl $8, %eax
  or %ebx, %eax                     # (APIC page ID << 8) | CPUID initial APIC ID
  or $0x10000, %eax
  mov %eax, ap_report
  movl $0, 0xfee00310
  movl $0x00004050, 0xfee00300      # fixed IPI, vector 0x50, to APIC 0
  cli
  hlt
`;

const status = (v: number) => (((v >>> 0) << 1) | 1) >>> 0;

describe.skipIf(assemblerMissing && process.env.CI !== 'true')('virtual SMP', () => {
  it('two virtual cores: the AP starts by INIT/SIPI in real mode, sees its own APIC, and IPIs the BSP', () => {
    const rig = bootVm({ memory: '16M', cores: 2, kernel: { path: 'g', format: 'flat', load: GUEST_BASE } }, { g: guestImage(SMP) }, { cores: 2 });
    rig.run(2e9);
    const r = rig.vm.report();
    expect(r.reason).toBe('isa-debug-exit: value 65793, status 131587');
    expect(r.exitStatus).toBe(status(0x10101));
    const s = rig.vm.stats();
    expect(s.counters.sipi).toBe(1);
    expect(s.counters['ap.parked']).toBe(1);
    expect(rig.host.errors).toEqual([]);
  });

  it('more virtual cores than host cores are refused', () => {
    const r = tryVm({ memory: '16M', cores: 2, kernel: { path: 'g', format: 'flat' } }, { g: new Uint8Array(4) });
    expect(!r.ok && r.error).toBe('config: cores: 2 virtual cores but the host has 1 (one host core per virtual core)');
  });

  it('shadow paging runs one virtual core', () => {
    const r = tryVm({ memory: '16M', cores: 2, paging: 'shadow', kernel: { path: 'g', format: 'flat' } }, { g: new Uint8Array(4) }, { cores: 2 });
    expect(!r.ok && r.error).toMatch(/^config: cores: shadow paging runs one virtual core/);
  });
});
