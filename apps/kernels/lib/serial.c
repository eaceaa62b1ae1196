/* COM1 output: 115200 baud 8N1, FIFOs on, polled through LSR.THRE. */
#include "kernel.h"

#define LSR_THRE 0x20
#define LSR_TEMT 0x40

void serial_init(void) {
  outb(COM1 + 1, 0x00); /* IER: no interrupts */
  outb(COM1 + 3, 0x80); /* LCR: DLAB */
  outb(COM1 + 0, 0x01); /* DLL: divisor 1 = 115200 baud */
  outb(COM1 + 1, 0x00); /* DLM */
  outb(COM1 + 3, 0x03); /* LCR: 8N1 */
  outb(COM1 + 2, 0x07); /* FCR: enable and clear the FIFOs */
  outb(COM1 + 4, 0x0B); /* MCR: DTR, RTS, OUT2 */
}

void serial_putc(char c) {
  u32 spins = 0;
  /* bounded: a UART that never drains must not hang the kernel */
  while (!(inb(COM1 + 5) & LSR_THRE) && ++spins < 10000000) pause();
  outb(COM1, (u8)c);
}

void serial_puts(const char *s) {
  while (*s) serial_putc(*s++);
}

void serial_drain(void) {
  u32 spins = 0;
  while (!(inb(COM1 + 5) & LSR_TEMT) && ++spins < 10000000) pause();
}
