// The VMM's device wirings (vmm/devices/): each hw/ model on its ports or MMIO page, on guest
// time, with its IRQ routed, and the VM-level effects (reset, exit, the generic device).
import { describe, expect, it } from 'vitest';
import { deviceRegistry } from '../../vmm/index.ts';
import { assemblerMissing, runGuest } from './guests.ts';

const status = (v: number) => (((v >>> 0) << 1) | 1) >>> 0;

describe('device registry', () => {
  it('registers the PC set and the generic device by name', () => {
    expect([...deviceRegistry.names()].sort()).toEqual(['cmos', 'debug-exit', 'generic', 'i8042', 'ioapic', 'lapic', 'pic8259', 'pit8254', 'post-code', 'uart16550']);
    expect(() => deviceRegistry.register('cmos', 'again', () => 'x')).toThrow(/already registered/);
  });
});

describe.skipIf(assemblerMissing && process.env.CI !== 'true')('virtual devices', () => {
  it('cmos: the extended memory size of the VM in CMOS bytes 0x30-0x31', () => {
    const rig = runGuest(`
      mov $0x30, %al
      out %al, $0x70
      in $0x71, %al
      movzbl %al, %ebx
      mov $0x31, %al
      out %al, $0x70
      in $0x71, %al
      movzbl %al, %eax
      shl $8, %eax
      or %ebx, %eax
      exit %eax
    `, { memory: '24M' });
    expect(rig.vm.report().exitStatus).toBe(status(23 * 1024));
  });

  it('i8042: the reset command stops the VM (as qemu -no-reboot)', () => {
    const rig = runGuest('mov $0xfe, %al\n out %al, $0x64\n jmp .\n');
    const r = rig.vm.report();
    expect(r.state).toBe('stopped');
    expect(r.exitStatus).toBeNull();
    expect(r.reason).toMatch(/reset the machine/);
  });

  it('post-code counts port 0x80 writes; debug-exit on another port', () => {
    const rig = runGuest(`
      mov $5, %ecx
    1:out %al, $0x80
      loop 1b
      mov $9, %eax
      out %eax, $0x10
    `, { devices: ['post-code', { name: 'debug-exit', options: { port: 0x10 } }] });
    expect(rig.vm.report().exitStatus).toBe(status(9));
    expect(rig.vm.stats().counters['post-code.codes']).toBe(5);
  });

  it('generic: "print" ranges log each access on the host, "ignore" ranges only count', () => {
    const rig = runGuest(`
      mov $0x42, %al
      out %al, $0x60
      in $0x61, %al
      out %al, $0x70
      exit $0
    `, { devices: ['debug-exit', { name: 'generic', options: { ranges: [{ base: 0x60, length: 2, mode: 'print' }, { base: 0x70, length: 1 }] } }] });
    expect(rig.log).toEqual(['generic: outb 0x60 <- 0x42', 'generic: inb 0x61']);
    expect(rig.vm.stats().counters['generic.writes']).toBe(2);
    expect(rig.vm.stats().counters['generic.reads']).toBe(1);
  });

  it('pit8254 + ioapic: the PIT on IOAPIC pin 2 reaches the LAPIC on guest time', () => {
    const rig = runGuest(`
      setgate 0x60, tick
      movl $0x1ff, 0xfee000f0       # LAPIC on
      mov $0xff, %al                # 8259s masked
      out %al, $0x21
      out %al, $0xa1
      movl $0x14, 0xfec00000        # IOREDTBL pin 2, low dword
      movl $0x60, 0xfec00010        # vector 0x60, fixed, edge, unmasked
      movl $0x15, 0xfec00000
      movl $0, 0xfec00010           # destination APIC 0
      mov $0x34, %al                # channel 0, mode 2, lo/hi
      out %al, $0x43
      mov $0xa9, %al                # 1193182 / 1000 = 1193 = 0x4a9
      out %al, $0x40
      mov $0x04, %al
      out %al, $0x40
      rdtsc
      mov %eax, %esi
      sti
    1:hlt
      cmpl $10, ticks
      jb 1b
      cli
      rdtsc
      sub %esi, %eax
      exit %eax
    tick:
      incl ticks
      movl $0, 0xfee000b0
      iret
    ticks: .long 0
    `);
    const r = rig.vm.report();
    expect(r.state).toBe('stopped');
    const elapsed = r.exitStatus! >>> 1;
    // ten periods of 1193 PIT ticks (1.193182 MHz) at 2.2 GHz: 21,996,630 cycles, less the phase of the first
    expect(elapsed).toBeGreaterThan(9 * 2_199_663);
    expect(elapsed).toBeLessThanOrEqual(10 * 2_199_663 + 50_000);
    expect(rig.vm.stats().counters['mmio.ioapic']).toBe(4);
  });
});
