// Booting the LWK (issue 5, "Boot"): memory management set up from the boot information, the
// kernel's handler on every core, the other cores brought up with INIT/SIPI through the local
// APIC, each APIC programmed (TSC-deadline timer, spurious vector), the console taken, the boot
// log written, the init task started.
import { describe, expect, it } from 'vitest';
import { WAIT_SIPI } from '../../hw/cpu/cpu.ts';
import { LapicReg } from '../../hw/devices/lapic.ts';
import { Machine } from '../../hw/machine.ts';
import { bootKernel, makeBootInfo, TRAMPOLINE_PAGE } from '../../kernel/boot.ts';
import { kernelCosts } from '../../kernel/costs.ts';
import { GDT_BYTES, KERNEL_CS } from '../../kernel/gdt.ts';
import { GDT_VA, SYSENTER_ENTRY_VA } from '../../kernel/kernel.ts';
import { VEC_TIMER } from '../../kernel/sched/scheduler.ts';
import { VEC_SPURIOUS } from '../../kernel/trap.ts';
import { tinyElf, X } from './lwk.ts';

/** A program that exits with status 7 at once. */
const EXIT7 = tinyElf(Uint8Array.from(X.exit(7)));

function boot(cores: number, image = EXIT7, ram = 64 << 20) {
  const log: number[] = [];
  const m = new Machine({ cores, ram, com1: { write: (b) => { for (const x of b) log.push(x); } } });
  const info = makeBootInfo(m, [{ name: '/init', data: image }]);
  const k = bootKernel(m, info);
  return { m, k, info, log: () => Buffer.from(log).toString('latin1') };
}

describe('boot', () => {
  it('describes the machine in the boot information and places the module in RAM', () => {
    const m = new Machine({ cores: 3, ram: 32 << 20 });
    const info = makeBootInfo(m, [{ name: 'a', data: Uint8Array.of(1, 2, 3) }, { name: 'b', data: Uint8Array.of(9) }]);
    expect(info.cores.map((c) => c.apicId)).toEqual([0, 1, 2]);
    expect(info.ramSize).toBe(32 << 20);
    expect(info.modules).toEqual([{ name: 'a', base: 0x100000, size: 3 }, { name: 'b', base: 0x101000, size: 1 }]);
    expect(Array.from(m.mem.readBytes(0x100000, 3))).toEqual([1, 2, 3]);
    expect(info.memoryMap.some((r) => r.type === 1 && r.base === 0x100000)).toBe(true);
    expect(info.devices.hostConsole.channels).toBe(1);
  });

  it('registers the handler, programs the BSP, and leaves the APs to start from the trampoline', () => {
    const { m, k } = boot(4);
    for (const c of m.cores) expect(c.host).toBe(k);
    const bsp = m.cores[0];
    expect(k.percpu[0].online).toBe(true);
    expect(bsp.gdtBase >>> 0).toBe(GDT_VA);
    expect(bsp.gdtLimit).toBe(GDT_BYTES - 1);
    expect(bsp.cr0 & 0x80000001).toBe(0x80000001 | 0);
    expect(bsp.cr4 & 0x10).toBe(0x10);
    expect([bsp.sysenterCs, bsp.sysenterEip >>> 0]).toEqual([KERNEL_CS, SYSENTER_ENTRY_VA]);
    const apic = m.lapics[0];
    expect(apic.readRegister(LapicReg.SVR)).toBe(0x100 | VEC_SPURIOUS);
    expect(apic.readRegister(LapicReg.LVT_TIMER)).toBe((2 << 17) | VEC_TIMER);
    // the APs got INIT and STARTUP but have not run yet: they wait at the trampoline
    for (let i = 1; i < 4; i++) {
      expect(m.cores[i].state).not.toBe(WAIT_SIPI);
      expect(m.cores[i].segBase[1]).toBe(TRAMPOLINE_PAGE << 12);
      expect(k.percpu[i].online).toBe(false);
    }
    // INIT waits 10 ms and each STARTUP 200 us per AP, all on the BSP's clock
    expect(bsp.cycles).toBeGreaterThan(3 * (kernelCosts.apInitDelay.cycles + 2 * kernelCosts.apSipiDelay.cycles));
  });

  it('brings every AP online in its first trap, at or after the time its STARTUP was sent', () => {
    const { m, k, log } = boot(4);
    m.run();
    expect(k.percpu.map((p) => p.online)).toEqual([true, true, true, true]);
    for (let i = 1; i < 4; i++) {
      const ap = m.cores[i];
      expect(ap.gdtBase >>> 0).toBe(GDT_VA + i * 4096);
      expect(m.lapics[i].readRegister(LapicReg.LVT_TIMER)).toBe((2 << 17) | VEC_TIMER);
      expect(m.lapics[i].readRegister(LapicReg.SVR)).toBe(0x100 | VEC_SPURIOUS);
      // each AP came up after the previous one's start-up sequence (sequential INIT/SIPI)
      expect(k.percpu[i].onlineAt).toBeGreaterThan(i * kernelCosts.apInitDelay.cycles);
    }
    expect(log()).toMatch(/core 3: online \(APIC ID 3\); 4 cores up/);
  });

  it('writes a boot log with memory, cores and timer on COM1, and starts init', () => {
    const { m, k, log } = boot(2);
    const r = m.run();
    const text = log();
    expect(text).toMatch(/booting on 2 cores at 2200 MHz/);
    expect(text).toMatch(/memory: 64\.0 MiB RAM, .* usable, .* free/);
    expect(text).toMatch(/timer: local APIC in TSC-deadline mode, vector 0xec; tickless/);
    expect(text).toMatch(/init: pid 1 '\/init' on core 0/);
    expect(text).toMatch(/init \(pid 1\) exited with status 7/);
    expect(r).toBe('exit');
    expect(k.initStatus).toBe(7);
    // the log is the kernel's own: every line is stamped with simulated time
    for (const line of text.trim().split('\n')) expect(line).toMatch(/^\[ *\d+\.\d{6}\] /);
  });

  it('gives a process memory back to pmem when it exits', () => {
    const { m, k } = boot(1);
    const before = k.pmem.freeBytes;
    expect(k.processes.size).toBe(1);
    m.run();
    expect(k.processes.size).toBe(0);
    expect(k.pmem.freeBytes).toBeGreaterThan(before);
  });

  it('reports a bad first program instead of starting it', () => {
    const bad = tinyElf(Uint8Array.from(X.exit(0)), { interp: true });
    const { k } = boot(1, bad);
    expect(k.initError).toMatch(/dynamically linked/);
    expect(k.processes.size).toBe(0);
  });

  it('boots the same way every time (cycle counts included)', () => {
    const a = boot(2), b = boot(2);
    a.m.run(); b.m.run();
    expect(a.log()).toBe(b.log());
    expect(a.m.stats()).toEqual(b.m.stats());
    expect(a.m.cores.map((c) => c.cycles)).toEqual(b.m.cores.map((c) => c.cycles));
  });
});
