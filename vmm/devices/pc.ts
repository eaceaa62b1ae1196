/**
 * The PC devices a guest needs first (Palacios' set), as wirings of hw/devices' models on guest
 * time: the models are the machine's own (one 8259 model, two wirings), given the VM's clock
 * and event queue and hooked to the VM's port and MMIO tables instead of the machine's bus.
 *
 * | name | model | where |
 * |---|---|---|
 * | pic8259 | Pic8259, the master/slave pair | ports 0x20-0x21, 0xA0-0xA1, ELCR 0x4D0-0x4D1; INTR to the LAPIC's LINT0 (or the core) |
 * | pit8254 | Pit8254 + port 0x61 | ports 0x40-0x43, 0x61; channel 0 on ISA IRQ 0 |
 * | uart16550 | Uart16550 | options port (0x3F8), irq (4), stream (host stream name, default "guest-console"; null for none) |
 * | cmos | CmosRtc | ports 0x70-0x71, IRQ 8; memory size in the CMOS bytes |
 * | i8042 | I8042 | ports 0x60, 0x64; the reset command (0xFE) stops the VM, as QEMU's -no-reboot |
 * | lapic | LocalApic, one per virtual core (APIC ID = core) | MMIO 0xFEE00000 (each core sees its own); IA32_APIC_BASE and IA32_TSC_DEADLINE MSRs; INIT/SIPI start the other cores |
 * | ioapic | IoApic | MMIO 0xFEC00000; messages to the LAPIC |
 * | post-code | PostCode | port 0x80 (counts codes) |
 * | debug-exit | DebugExit | ports 0xF4-0xF7: stops the VM with status (v << 1) | 1 |
 */
import { CMOS_PORTS, CmosRtc } from '../../hw/devices/cmos-rtc.ts';
import { DEBUG_EXIT_PORTS, DebugExit } from '../../hw/devices/debug-exit.ts';
import { I8042, I8042_PORTS } from '../../hw/devices/i8042.ts';
import { IOAPIC_BASE, IOAPIC_SIZE, IoApic } from '../../hw/devices/ioapic.ts';
import { LAPIC_BASE, LAPIC_SIZE, LocalApic } from '../../hw/devices/lapic.ts';
import { PIC_PORTS, Pic8259 } from '../../hw/devices/pic8259.ts';
import { PIT_PORTS, Pit8254 } from '../../hw/devices/pit8254.ts';
import { Port61, PORT61_PORTS } from '../../hw/devices/port61.ts';
import { POST_CODE_PORTS, PostCode } from '../../hw/devices/post-code.ts';
import { UART_COM1_PORTS, Uart16550 } from '../../hw/devices/uart16550.ts';
import type { HostStream } from '../../hostif/hostif.ts';
import { MSR_APIC_BASE, MSR_TSC_DEADLINE } from '../exits/msr.ts';
import { checkOptions, type DeviceRegistry, intOption, type VmDevice } from './registry.ts';

function dev(name: string, id: string, extra: Partial<VmDevice> = {}): VmDevice {
  return { name, id, ...extra };
}

export function registerPcDevices(reg: DeviceRegistry): void {
  reg.register('pic8259', '8259A PIC pair (ports 0x20, 0xA0, ELCR 0x4D0)', (ctx, o, id) => {
    const e = checkOptions(o, [], 'pic8259'); if (e) return e;
    if (ctx.intr.pic !== null) return 'device pic8259: a VM has one 8259 pair';
    const pic = new Pic8259(ctx.intr.picOutput);
    ctx.intr.setPic(pic);
    return ctx.hookPorts(id, pic, PIC_PORTS) ?? dev('pic8259', id);
  });

  reg.register('pit8254', '8254 PIT (ports 0x40-0x43, 0x61; IRQ 0)', (ctx, o, id) => {
    const e = checkOptions(o, [], 'pit8254'); if (e) return e;
    const pit = new Pit8254({ time: ctx.time, scheduler: ctx.scheduler, outputs: [ctx.isaIrq(0)] });
    const p61 = new Port61(pit, ctx.time);
    return ctx.hookPorts(id, pit, PIT_PORTS) ?? ctx.hookPorts(`${id}.port61`, p61, PORT61_PORTS) ?? dev('pit8254', id);
  });

  reg.register('uart16550', '16550A UART (COM1 by default) whose line is a host stream', (ctx, o, id) => {
    const e = checkOptions(o, ['port', 'irq', 'stream'], 'uart16550'); if (e) return e;
    const port = intOption(o, 'port', UART_COM1_PORTS[0].base, 0, 0xfff8, 'uart16550'); if (typeof port === 'string') return port;
    const irq = intOption(o, 'irq', 4, 0, 15, 'uart16550'); if (typeof irq === 'string') return irq;
    const sname = o.stream === undefined ? 'guest-console' : o.stream;
    if (sname !== null && typeof sname !== 'string') return 'device uart16550: option stream must be a host stream name or null';
    let stream: HostStream | null = null;
    if (sname !== null) {
      stream = ctx.host.openStream(sname);
      if (stream === null) return `device uart16550: the host has no stream ${JSON.stringify(sname)} (option stream)`;
    }
    const s = stream;
    let dropped = 0;
    const uart = new Uart16550({
      time: ctx.time, scheduler: ctx.scheduler, irq: ctx.isaIrq(irq),
      sink: { write: (b) => { if (s !== null) { const n = s.write(b); dropped += b.length - n; } } },
    });
    if (s !== null) s.onInput((bytes) => { uart.receive(bytes); ctx.kick(); });
    return ctx.hookPorts(id, uart, [{ base: port, length: 8, offset: 0 }]) ?? dev('uart16550', id, {
      stats: () => ({ droppedOutput: dropped }),
      free: () => { if (s !== null) s.onInput(null); },
    });
  });

  reg.register('cmos', 'MC146818 CMOS/RTC (ports 0x70-0x71, IRQ 8)', (ctx, o, id) => {
    const e = checkOptions(o, [], 'cmos'); if (e) return e;
    const rtc = new CmosRtc({ time: ctx.time, scheduler: ctx.scheduler, irq: ctx.isaIrq(8) });
    rtc.setMemorySize(ctx.memory);
    return ctx.hookPorts(id, rtc, CMOS_PORTS) ?? dev('cmos', id);
  });

  reg.register('i8042', '8042 keyboard controller (ports 0x60, 0x64): reset stops the VM', (ctx, o, id) => {
    const e = checkOptions(o, [], 'i8042'); if (e) return e;
    const kbc = new I8042({ kbdIrq: ctx.isaIrq(1), auxIrq: ctx.isaIrq(12), onReset: () => ctx.stopVm(null, 'the guest reset the machine (0xFE to port 0x64)') });
    return ctx.hookPorts(id, kbc, I8042_PORTS) ?? dev('i8042', id);
  });

  reg.register('lapic', 'a local APIC per virtual core (MMIO 0xFEE00000, MSRs 0x1B and 0x6E0)', (ctx, o, id) => {
    const e = checkOptions(o, [], 'lapic'); if (e) return e;
    if (ctx.intr.lapic !== null) return 'device lapic: the local APICs are created once (one per virtual core)';
    for (let k = 0; k < ctx.cores; k++) {
      ctx.intr.addLapic(new LocalApic({
        time: ctx.time, scheduler: ctx.scheduler, apicId: k, bus: ctx.intr.apicBus,
        onInterruptChange: () => ctx.intr.onChange(k),
        onNmi: () => ctx.intr.onChange(k),
        onInit: () => ctx.initCore(k),
        onStartup: (v) => ctx.startupCore(k, v),
        onEoiBroadcast: (v) => ctx.intr.ioapic?.eoi(v),
      }));
    }
    const cur = () => ctx.intr.lapics[ctx.currentCore()];
    ctx.hookMsr(MSR_APIC_BASE, {
      read: () => [cur().readApicBaseMsr(), 0],
      write: (lo) => cur().writeApicBaseMsr(lo),
    });
    ctx.hookMsr(MSR_TSC_DEADLINE, {
      read: () => { const d = cur().getTscDeadline(); return [d % 0x100000000, Math.floor(d / 0x100000000)]; },
      write: (lo, hi) => { cur().setTscDeadline(hi * 0x100000000 + lo); return true; },
    });
    return ctx.hookMmio(id, LAPIC_BASE, LAPIC_SIZE, { read: (off, size) => cur().mmioRead(off, size), write: (off, size, v) => cur().mmioWrite(off, size, v) }) ?? dev('lapic', id);
  });

  reg.register('ioapic', 'IOAPIC, 24 pins (MMIO 0xFEC00000)', (ctx, o, id) => {
    const e = checkOptions(o, [], 'ioapic'); if (e) return e;
    if (ctx.intr.ioapic !== null) return 'device ioapic: a VM has one IOAPIC';
    const io = new IoApic({ id: 1 });
    ctx.intr.setIoapic(io);
    return ctx.hookMmio(id, IOAPIC_BASE, IOAPIC_SIZE, { read: (off, size) => io.mmioRead(off, size), write: (off, size, v) => io.mmioWrite(off, size, v) }) ?? dev('ioapic', id);
  });

  reg.register('post-code', 'POST code port 0x80 (counts codes)', (ctx, o, id) => {
    const e = checkOptions(o, [], 'post-code'); if (e) return e;
    const p = new PostCode(64);
    return ctx.hookPorts(id, p, POST_CODE_PORTS) ?? dev('post-code', id, { stats: () => ({ codes: p.total }) });
  });

  reg.register('debug-exit', 'isa-debug-exit (ports 0xF4-0xF7): stops the VM with status (v << 1) | 1', (ctx, o, id) => {
    const e = checkOptions(o, ['port'], 'debug-exit'); if (e) return e;
    const port = intOption(o, 'port', DEBUG_EXIT_PORTS[0].base, 0, 0xfffc, 'debug-exit'); if (typeof port === 'string') return port;
    const d = new DebugExit((status) => ctx.stopVm(status, `isa-debug-exit: value ${status >>> 1}, status ${status}`));
    return ctx.hookPorts(id, d, [{ base: port, length: 4, offset: 0 }]) ?? dev('debug-exit', id);
  });
}
