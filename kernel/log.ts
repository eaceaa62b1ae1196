/**
 * The kernel log (printk): lines stamped with the simulated time of the core that logs them,
 * written to the kernel console (COM1) and kept in a buffer (dmesg). The kernel writes its log
 * whatever the CLI shows of it, so cycle counts do not depend on --verbose (DESIGN.md).
 */
import type { Cpu } from '../hw/cpu/cpu.ts';
import type { SerialConsole } from './drivers/serial.ts';

export class KernelLog {
  readonly lines: string[] = [];
  private readonly enc = new TextEncoder();

  constructor(private readonly console: SerialConsole | null, private readonly hz: number) {}

  /** Logs one line from `cpu`. */
  print(cpu: Cpu, msg: string): void {
    const us = Math.floor((cpu.cycles * 1e6) / this.hz);
    const stamp = `[${String(Math.floor(us / 1e6)).padStart(5, ' ')}.${String(us % 1e6).padStart(6, '0')}] `;
    const line = stamp + msg;
    this.lines.push(line);
    this.console?.write(cpu, this.enc.encode(line + '\n'));
  }
}
