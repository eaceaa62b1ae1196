/* The 8259A pair: master at 0x20/0x21, slave at 0xA0/0xA1 on the master's IRQ 2. */
#include "kernel.h"

#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xA0
#define PIC2_DATA 0xA1

void pic_remap(u8 master_base, u8 slave_base) {
  outb(PIC1_CMD, 0x11);  /* ICW1: edge, cascade, ICW4 follows */
  outb(PIC2_CMD, 0x11);
  outb(PIC1_DATA, master_base); /* ICW2: vector base */
  outb(PIC2_DATA, slave_base);
  outb(PIC1_DATA, 0x04); /* ICW3: slave on IRQ 2 */
  outb(PIC2_DATA, 0x02); /* ICW3: slave identity 2 */
  outb(PIC1_DATA, 0x01); /* ICW4: 8086 mode, normal EOI */
  outb(PIC2_DATA, 0x01);
  pic_set_mask(0xFFFF);
}

void pic_set_mask(u16 mask) {
  outb(PIC1_DATA, (u8)mask);
  outb(PIC2_DATA, (u8)(mask >> 8));
}

u16 pic_get_mask(void) { return inb(PIC1_DATA) | (inb(PIC2_DATA) << 8); }

void pic_eoi(u8 irq) {
  if (irq >= 8) outb(PIC2_CMD, 0x20);
  outb(PIC1_CMD, 0x20);
}

static u16 pic_read(u8 ocw3) {
  outb(PIC1_CMD, ocw3);
  outb(PIC2_CMD, ocw3);
  u16 v = inb(PIC1_CMD) | (inb(PIC2_CMD) << 8);
  return v;
}

u16 pic_read_isr(void) {
  u16 v = pic_read(0x0B);
  pic_read(0x0A); /* back to reading IRR, the power-on choice */
  return v;
}

u16 pic_read_irr(void) { return pic_read(0x0A); }
