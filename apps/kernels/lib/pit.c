/* The 8254's channel 0 (IRQ 0): command port 0x43, data port 0x40. */
#include "kernel.h"

void pit_set_periodic(u32 hz) {
  u32 div = (PIT_HZ + hz / 2) / hz;
  outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
  outb(0x40, (u8)div);
  outb(0x40, (u8)(div >> 8));
}

u16 pit_read_count(void) {
  outb(0x43, 0x00); /* counter latch, channel 0 */
  u8 lo = inb(0x40);
  u8 hi = inb(0x40);
  return lo | (hi << 8);
}
