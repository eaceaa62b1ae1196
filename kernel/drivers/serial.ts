/**
 * The kernel console on COM1: a polled 16550 driver (8N1, divisor 1 = 115200 baud, FIFOs on,
 * no interrupts), as an early console is. Lines end in LF alone (the host end is a log, not a terminal). Bytes go out through THR after LSR says the holding
 * register is empty; every register access is a port access charged to the core.
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import type { KernelIo } from './io.ts';

export const COM1_BASE = 0x3f8;
const THR = 0, DLL = 0, IER = 1, DLM = 1, FCR = 2, LCR = 3, MCR = 4, LSR = 5;
const LSR_THRE = 0x20;

export class SerialConsole {
  constructor(private readonly io: KernelIo, private readonly base = COM1_BASE) {}

  /** Programs the UART: 115200 8N1, FIFOs enabled and cleared, interrupts off, DTR/RTS on. */
  init(cpu: Cpu): void {
    const b = this.base, io = this.io;
    io.out8(cpu, b + IER, 0);
    io.out8(cpu, b + LCR, 0x80);
    io.out8(cpu, b + DLL, 1);
    io.out8(cpu, b + DLM, 0);
    io.out8(cpu, b + LCR, 0x03);
    io.out8(cpu, b + FCR, 0xc7);
    io.out8(cpu, b + MCR, 0x03);
  }

  write(cpu: Cpu, bytes: Uint8Array): void {
    for (const v of bytes) this.putc(cpu, v);
  }

  private putc(cpu: Cpu, v: number): void {
    // the model's transmitter is never busy, but a driver asks anyway (bounded, as Linux's early console)
    for (let k = 0; k < 16 && (this.io.in8(cpu, this.base + LSR) & LSR_THRE) === 0; k++) { /* wait */ }
    this.io.out8(cpu, this.base + THR, v);
  }
}
