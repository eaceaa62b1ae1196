// Each exit handler of the VMM, with a small guest that provokes it, run on the hosted host.
import { describe, expect, it } from 'vitest';
import { EVT_EXCEPTION, EVT_INTR, EVT_SOFT_INT, EVT_V, VMCB_EVENTINJ, VMCB_EXITINTINFO } from '../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../hw/mem/physmem.ts';
import { decodeMmio } from '../../vmm/exits/mmio.ts';
import { reinjectAfterExit } from '../../vmm/intr/inject.ts';
import { Telemetry } from '../../vmm/telemetry.ts';
import type { VCore } from '../../vmm/vcore.ts';
import { assemblerMissing, GUEST_BASE, runGuest } from './guests.ts';

const status = (v: number) => (((v >>> 0) << 1) | 1) >>> 0;
const exits = (rig: ReturnType<typeof runGuest>, name: string) => rig.vm.stats().byReason.find((r) => r.name === name)?.count ?? 0;
const counter = (rig: ReturnType<typeof runGuest>, name: string) => rig.vm.stats().counters[name] ?? 0;

const LAPIC_ON = `
  movl $0x1ff, 0xfee000f0
  movl $0xb, 0xfee003e0
  movl $0x40, 0xfee00320
`;

/** The LAPIC timer's handler (`setgate 0x40, tick`): sets `ticked` to 1 and ends the interrupt (EOI). */
const TICKED = `
tick:
  movl $1, ticked
  movl $0, 0xfee000b0
  iret
ticked: .long 0
`;

describe.skipIf(assemblerMissing && process.env.CI !== 'true')('exit handlers', () => {
  it('IOIO: OUT reaches a hooked device, IN merges into AL/AX, an unclaimed port reads all ones', () => {
    const rig = runGuest(`
      mov $0x3f8, %dx
      mov $'A', %al
      out %al, %dx
      mov $0x3ff, %dx
      mov $0x5a, %al
      out %al, %dx
      xor %eax, %eax
      in %dx, %al
      mov %eax, %ebx
      mov $0x1234, %dx
      mov $0x12345678, %eax
      in %dx, %ax
      add %ebx, %eax
      exit %eax
    `);
    expect(rig.out.text()).toBe('A');
    expect(rig.vm.report().exitStatus).toBe(status(0x1234ffff + 0x5a));
    expect(counter(rig, 'ports.unclaimed')).toBe(1);
    expect(exits(rig, 'IOIO')).toBe(5);
  });

  it('IOIO: string forms: REP OUTSB sends a buffer, INSB reads into memory, DF counts down', () => {
    const rig = runGuest(`
      mov $msg, %esi
      mov $5, %ecx
      mov $0x3f8, %dx
      rep outsb
      mov $0x3ff, %dx        # the scratch register
      mov $0x77, %al
      out %al, %dx
      mov $buf + 1, %edi
      std
      insb
      insb
      cld
      mov buf, %eax
      add %ecx, %eax         # ECX is 0 after the REP
      shl $8, %eax
      add %edi, %eax         # EDI = buf - 1
      sub $buf, %eax
      exit %eax
    msg: .ascii "hello"
    buf: .long 0
    `);
    expect(rig.out.text()).toBe('hello');
    expect(rig.vm.report().exitStatus).toBe(status(((0x7777 << 8) - 1) >>> 0));
    expect(counter(rig, 'io.string')).toBe(7);
  });

  it('IOIO: COM1 input from the host stream reaches the guest (polled), its output goes back', () => {
    const rig = runGuest(`
    1:mov $0x3fd, %dx        # LSR
      in %dx, %al
      test $1, %al
      jz 1b
      mov $0x3f8, %dx
      in %dx, %al
      cmp $'.', %al
      je 2f
      add $1, %al
      out %al, %dx
      jmp 1b
    2:exit $0
    `, {}, 2e9, (r) => r.machine.console.input(0, Uint8Array.from(Buffer.from('HAL.'))));
    expect(rig.out.text()).toBe('IBM');
    expect(rig.vm.report().exitStatus).toBe(1);
  });

  it('CPUID: the VMM-defined table, with the hypervisor leaf and the hypervisor and APIC bits', () => {
    const out = [0, 1, 2, 3].map(() => `mov %bl, %al\n out %al, %dx\n shr $8, %ebx\n`).join('');
    const rig = runGuest(`
      mov $0x40000000, %eax
      cpuid
      mov %ecx, %esi
      mov %edx, %edi
      mov $0x3f8, %dx
      ${out}
      mov %esi, %ebx
      ${out}
      mov %edi, %ebx
      ${out}
      mov $1, %eax
      cpuid
      shr $31, %ecx
      shr $9, %edx
      and $1, %edx
      lea (%ecx,%edx,2), %eax
      exit %eax
    `);
    expect(rig.out.text()).toBe('V3VEE-TS-VMM');
    expect(rig.vm.report().exitStatus).toBe(status(3));
    expect(exits(rig, 'CPUID')).toBe(2);
  });

  it('CPUID without a local APIC device clears the APIC bit', () => {
    const rig = runGuest(`
      mov $1, %eax
      cpuid
      shr $9, %edx
      and $1, %edx
      exit %edx
    `, { devices: ['pic8259', 'debug-exit'] });
    expect(rig.vm.report().exitStatus).toBe(status(0));
  });

  it('MSR: IA32_APIC_BASE from the virtual LAPIC; an MSR nobody hooks raises #GP(0)', () => {
    const rig = runGuest(`
      setgate 13, gp
      mov $0x1b, %ecx
      rdmsr
      mov %eax, %esi
      mov $0x12345, %ecx
      rdmsr
      exit $1
    gp:
      pop %eax          # the error code
      add %esi, %eax
      exit %eax
    `);
    expect(rig.vm.report().exitStatus).toBe(status(0xfee00900));
    expect(exits(rig, 'MSR')).toBe(2);
    expect(counter(rig, 'msr.unknown')).toBe(1);
  });

  it('MSR: the TSC write moves the guest TSC (TSC_OFFSET)', () => {
    const rig = runGuest(`
      mov $0x10, %ecx
      xor %eax, %eax
      mov $1, %edx
      wrmsr
      rdtsc
      exit %edx
    `);
    expect(rig.vm.report().exitStatus).toBe(status(1));
  });

  it('HLT: the virtual core sleeps until the LAPIC timer interrupt, guest time advancing', () => {
    const rig = runGuest(`
      setgate 0x40, tick
      ${LAPIC_ON}
      rdtsc
      mov %eax, %esi
      movl $100000, 0xfee00380     # 100,000 bus ticks at 100 MHz: 1 ms, 2.2 M cycles
      sti
    1:hlt
      cmpl $0, ticked
      je 1b
      rdtsc
      sub %esi, %eax
      exit %eax
      ${TICKED}
    `);
    const r = rig.vm.report();
    expect(r.state).toBe('stopped');
    const elapsed = (r.exitStatus! >>> 1);
    expect(elapsed).toBeGreaterThanOrEqual(2_200_000);
    expect(elapsed).toBeLessThan(2_400_000);
    expect(exits(rig, 'HLT')).toBeGreaterThanOrEqual(1);
    expect(counter(rig, 'hlt.sleeps')).toBeGreaterThanOrEqual(1);
    expect(counter(rig, 'intr.injected')).toBe(1);
  });

  it('HLT: a virtual core asleep with no timer armed is woken by input from the host stream (UART IRQ 4 through the 8259)', () => {
    const body = `
      mov $0x11, %al
      out %al, $0x20
      out %al, $0xa0
      mov $0x20, %al
      out %al, $0x21
      mov $0x28, %al
      out %al, $0xa1
      mov $4, %al
      out %al, $0x21
      mov $2, %al
      out %al, $0xa1
      mov $1, %al
      out %al, $0x21
      out %al, $0xa1
      mov $0xef, %al
      out %al, $0x21
      mov $0xff, %al
      out %al, $0xa1
      setgate 0x24, rx
      mov $0x3fc, %dx
      mov $0x08, %al
      out %al, %dx
      mov $0x3f9, %dx
      mov $0x01, %al
      out %al, %dx
      sti
    1:hlt
      cmpl $0, got
      je 1b
      exit got
    rx:
      push %eax
      push %edx
      mov $0x3f8, %dx
      in %dx, %al
      movzbl %al, %eax
      mov %eax, got
      mov $0x20, %al
      out %al, $0x20
      pop %edx
      pop %eax
      iret
    got: .long 0
    `;
    const rig = runGuest(body, {}, 50e6);
    expect(rig.vm.state()).toBe('running');
    expect(exits(rig, 'HLT')).toBe(1);
    expect(counter(rig, 'hlt.sleeps')).toBe(1);
    rig.machine.console.input(0, Uint8Array.of(0x5a));
    rig.run(100e6);
    expect(rig.vm.report().exitStatus).toBe(status(0x5a));
    expect(counter(rig, 'intr.injected')).toBe(1);
  });

  it('HLT with interrupts disabled stops the VM (a halted PC)', () => {
    const rig = runGuest('cli\n hlt\n exit $1\n');
    const r = rig.vm.report();
    expect(r.state).toBe('stopped');
    expect(r.exitStatus).toBeNull();
    expect(r.reason).toMatch(/halted with interrupts disabled/);
  });

  it('VINTR: an interrupt pending while IF=0 waits for the window, then is injected', () => {
    const rig = runGuest(`
      setgate 0x40, tick
      ${LAPIC_ON}
      movl $1000, 0xfee00380
    1:mov 0xfee00220, %eax        # IRR bit of vector 0x40
      test $1, %eax
      jz 1b
      sti
      nop
      nop
      exit ticked
      ${TICKED}
    `);
    expect(rig.vm.report().exitStatus).toBe(status(1));
    expect(exits(rig, 'VINTR')).toBe(1);
    expect(counter(rig, 'intr.window')).toBe(1);
  });

  it('VMMCALL: a registered hypercall returns its value in EAX, an unknown ID returns -1', () => {
    const rig = runGuest(`
      mov $0x5000, %eax
      mov $21, %ebx
      vmmcall
      mov %eax, %esi
      mov $0x5001, %eax
      vmmcall
      add %esi, %eax
      exit %eax
    `, {}, 2e9, (r) => r.vm.registerHypercall(0x5000, 'double', (regs) => regs.get(3) * 2));
    expect(rig.vm.report().exitStatus).toBe(status(41));
    expect(exits(rig, 'VMMCALL')).toBe(2);
    expect(counter(rig, 'hypercall.unknown')).toBe(1);
  });

  it('VMRUN and the other SVM instructions raise #UD in the guest', () => {
    const rig = runGuest(`
      setgate 6, ud
      vmrun
      stgi
      clgi
      exit count
    ud:
      incl count
      addl $3, (%esp)    # past the 3-byte instruction
      iret
    count: .long 0
    `);
    expect(rig.vm.report().exitStatus).toBe(status(3));
    expect(exits(rig, 'VMRUN') + exits(rig, 'STGI') + exits(rig, 'CLGI')).toBe(3);
    expect(counter(rig, 'svm.ud')).toBe(3);
  });

  it('SHUTDOWN: a triple fault stops the VM in the error state with a report', () => {
    const rig = runGuest(`
      lidt bad
      int3
      exit $1
    bad: .word 0
      .long 0
    `);
    const r = rig.vm.report();
    expect(r.state).toBe('error');
    expect(r.reason).toMatch(/triple fault/);
    expect(r.lastExits[r.lastExits.length - 1].code).toBe(0x7f);
    expect(r.eip).toBeGreaterThan(GUEST_BASE);
    expect(rig.host.errors).toEqual([]);
  });

  it('NPF: guest-physical memory nothing backs reads all ones, drops writes, and is counted', () => {
    const rig = runGuest(`
      mov 0xe0000000, %eax
      movl $0x12345678, 0xe0000000
      mov $0xe0000010, %ebx
      movzbl (%ebx), %ecx
      add %ecx, %eax
      mov 0xe0000000, %edx
      add %edx, %eax
      exit %eax
    `);
    expect(rig.vm.report().exitStatus).toBe(status((0xffffffff + 0xff + 0xffffffff) % 2 ** 32));
    expect(exits(rig, 'NPF')).toBe(4);
    expect(counter(rig, 'unbacked')).toBe(4);
  });

  it('NPF: an instruction the MMIO emulator does not know stops the VM in error, naming it', () => {
    const rig = runGuest('addl $1, 0xe0000000\n exit $1\n');
    const r = rig.vm.report();
    expect(r.state).toBe('error');
    expect(r.reason).toMatch(/cannot emulate the instruction at eip 0x[0-9a-f]+ \(bytes 83 05/);
  });

  it('--trace exits logs one line per exit: reason, guest EIP, exit info', () => {
    const rig = runGuest('mov $0x3f8, %dx\n mov $0x41, %al\n out %al, %dx\n exit $0\n', { traceExits: true });
    const lines = rig.log.filter((l) => l.startsWith('exit '));
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(/^exit 1 core 0 @\d+: IOIO \(0x7b\) rip=0x00100[0-9a-f]{3} info1=0x03f80d10 info2=0x00100[0-9a-f]{3}$/);
  });
});

describe('MMIO instruction decoding', () => {
  const d = (bytes: number[]) => decodeMmio(Uint8Array.from([...bytes, ...new Array(15 - bytes.length).fill(0x90)]));
  it('decodes the MOV forms with their lengths, sizes and operands', () => {
    expect(d([0x8b, 0x15, 0, 0, 0xe0, 0xfe])).toMatchObject({ len: 6, write: false, size: 4, reg: 2 }); // mov 0xfee00000, %edx
    expect(d([0x89, 0x43, 0x10])).toMatchObject({ len: 3, write: true, size: 4, reg: 0 });              // mov %eax, 0x10(%ebx)
    expect(d([0xc7, 0x05, 0xf0, 0, 0xe0, 0xfe, 0xff, 1, 0, 0])).toMatchObject({ len: 10, write: true, size: 4, reg: -1, imm: 0x1ff });
    expect(d([0x66, 0x89, 0x08])).toMatchObject({ len: 3, write: true, size: 2, reg: 1 });
    expect(d([0x88, 0x24, 0x24])).toMatchObject({ len: 3, write: true, size: 1, reg: 4 });             // mov %ah, (%esp)
    expect(d([0x8b, 0x84, 0x8b, 0, 1, 0, 0])).toMatchObject({ len: 7, size: 4, reg: 0 });              // SIB + disp32
    expect(d([0x8b, 0x04, 0x25, 0, 0, 0, 0xe0])).toMatchObject({ len: 7 });                             // SIB, no base
    expect(d([0xa1, 0, 0, 0xe0, 0xfe])).toMatchObject({ len: 5, write: false, size: 4, reg: 0 });
    expect(d([0x0f, 0xb6, 0x4b, 0x01])).toMatchObject({ len: 4, size: 1, dstSize: 4, signExtend: false });
    expect(d([0x0f, 0xbf, 0x0b])).toMatchObject({ len: 3, size: 2, dstSize: 4, signExtend: true });
    expect(d([0x3e, 0x8b, 0x00])).toMatchObject({ len: 3 });
  });
  it('refuses what it cannot emulate', () => {
    expect(d([0x83, 0x05, 0, 0, 0, 0xe0, 1])).toBeNull(); // add
    expect(d([0x8b, 0xc0])).toBeNull();                    // register operand
    expect(d([0xc7, 0x0d, 0, 0, 0, 0])).toBeNull();       // C7 /1
  });
});

describe('re-injection from EXITINTINFO', () => {
  function fake(exitintinfo: number, err = 0): { vc: VCore; mem: PhysMem; tel: Telemetry } {
    const mem = new PhysMem(1 << 20);
    const tel = new Telemetry(4);
    mem.write(0x1000 + VMCB_EXITINTINFO, 4, exitintinfo >>> 0);
    mem.write(0x1000 + VMCB_EXITINTINFO + 4, 4, err);
    return { vc: { mem, vmcb: 0x1000, vm: { telemetry: tel } } as unknown as VCore, mem, tel };
  }
  it('an interrupted interrupt or exception delivery goes back into EVENTINJ, error code included', () => {
    const a = fake(EVT_V | (EVT_INTR << 8) | 0x30);
    reinjectAfterExit(a.vc);
    expect(a.mem.read(0x1000 + VMCB_EVENTINJ, 4)).toBe((EVT_V | 0x30) >>> 0);
    const b = fake(EVT_V | (EVT_EXCEPTION << 8) | (1 << 11) | 14, 6);
    reinjectAfterExit(b.vc);
    expect(b.mem.read(0x1000 + VMCB_EVENTINJ, 4)).toBe((EVT_V | (EVT_EXCEPTION << 8) | (1 << 11) | 14) >>> 0);
    expect(b.mem.read(0x1000 + VMCB_EVENTINJ + 4, 4)).toBe(6);
    expect(b.tel.counters.get('intr.reinjected')).toBe(1);
  });
  it('nothing is re-injected without a valid event, nor for a software interrupt (the INT n runs again)', () => {
    const a = fake(0x30);
    reinjectAfterExit(a.vc);
    expect(a.mem.read(0x1000 + VMCB_EVENTINJ, 4)).toBe(0);
    const b = fake(EVT_V | (EVT_SOFT_INT << 8) | 0x80);
    reinjectAfterExit(b.vc);
    expect(b.mem.read(0x1000 + VMCB_EVENTINJ, 4)).toBe(0);
  });
});
