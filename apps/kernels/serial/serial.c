/*
 * serial: the 16550A UART at COM1 (0x3F8): scratch register, LCR and the divisor latch, IER,
 * FIFO control and IIR's FIFO bits, loopback (MCR bit 4) with and without FIFOs, overrun,
 * the modem status bits in loopback, interrupt identification and priority (polled), and a
 * THR-empty interrupt through the 8259 (IRQ 4). Output stops while the UART is reconfigured;
 * each result line is printed after the UART is back to 115200 8N1 with FIFOs.
 * Exits with 0 when every test passed, else 1.
 */
#include "kernel.h"

#define RBR 0
#define THR 0
#define DLL 0
#define IER 1
#define DLM 1
#define IIR 2
#define FCR 2
#define LCR 3
#define MCR 4
#define LSR 5
#define MSR 6
#define SCR 7

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

static u8 rd(u32 reg) { return inb(COM1 + reg); }
static void wr(u32 reg, u8 v) { outb(COM1 + reg, v); }

/* back to what serial_init set up: 115200 8N1, FIFOs on, DTR RTS OUT2, no interrupts */
static void uart_restore(void) {
  wr(IER, 0);
  wr(MCR, 0x0B);
  serial_init();
  while (rd(LSR) & LSR_DR) (void)rd(RBR);
}

/* polls LSR until one of `bits` is set; returns the OR of every LSR value read */
static u8 wait_lsr(u8 bits) {
  u8 seen = 0;
  for (u32 i = 0; i < 1000000; i++) {
    u8 l = rd(LSR);
    seen |= l;
    if (l & bits) break;
  }
  return seen;
}

static int wait_iir(u8 id) {
  for (u32 i = 0; i < 1000000; i++)
    if ((rd(IIR) & 0x0F) == id) return 1;
  return 0;
}

static void test_registers(void) {
  serial_drain();
  wr(SCR, 0x5A);
  int scr = rd(SCR) == 0x5A;
  wr(SCR, 0xA5);
  scr = scr && rd(SCR) == 0xA5;
  check("scratch register holds a byte", scr);

  serial_drain();
  wr(LCR, 0x1F); /* 8 bits, 2 stop bits, even parity */
  u8 lcr = rd(LCR);
  wr(LCR, 0x03);
  check("lcr reads back", lcr == 0x1F && rd(LCR) == 0x03);

  serial_drain();
  wr(LCR, 0x83); /* DLAB */
  wr(DLL, 0x0C);
  wr(DLM, 0x00);
  int dl = rd(DLL) == 0x0C && rd(DLM) == 0x00;
  wr(DLL, 0x34);
  wr(DLM, 0x12);
  dl = dl && rd(DLL) == 0x34 && rd(DLM) == 0x12 && rd(LCR) == 0x83;
  wr(DLL, 0x01);
  wr(DLM, 0x00);
  wr(LCR, 0x03);
  wr(IER, 0x05); /* DLAB clear: offset 1 is IER again */
  u8 ier = rd(IER);
  wr(IER, 0x00);
  uart_restore();
  check("divisor latch reads back under dlab", dl);
  check("ier reads back once dlab is clear", ier == 0x05);

  serial_drain();
  wr(FCR, 0x07);
  u8 fifo_on = rd(IIR);
  wr(FCR, 0x00);
  u8 fifo_off = rd(IIR);
  uart_restore();
  check("fcr enables the fifos: iir bits 7-6 = 11", (fifo_on & 0xC0) == 0xC0);
  check("fcr disables the fifos: iir bits 7-6 = 00", (fifo_off & 0xC0) == 0x00);
  check("lsr: transmitter empty, no data", (rd(LSR) & (LSR_THRE | LSR_TEMT | LSR_DR)) == (LSR_THRE | LSR_TEMT));
}

static void test_loopback(void) {
  static const char msg[] = "loopback!";
  serial_drain();
  wr(FCR, 0x00);
  wr(MCR, 0x10);
  int echo = 1, dr_clear = 1;
  for (u32 k = 0; msg[k]; k++) {
    wr(THR, (u8)msg[k]);
    if (!(wait_lsr(LSR_DR) & LSR_DR)) { echo = 0; break; }
    if (rd(RBR) != (u8)msg[k]) echo = 0;
    if (rd(LSR) & LSR_DR) dr_clear = 0;
  }
  uart_restore();
  check("loopback without fifo: each byte comes back with lsr.dr", echo);
  check("loopback: reading rbr clears lsr.dr", dr_clear);

  /* FIFO mode: 16 bytes queue up in the receive FIFO */
  serial_drain();
  wr(FCR, 0x07);
  wr(MCR, 0x10);
  for (u32 k = 0; k < 16; k++) wr(THR, (u8)('a' + k));
  wait_lsr(LSR_TEMT);
  int fifo = 1;
  for (u32 k = 0; k < 16; k++) {
    if (!(rd(LSR) & LSR_DR) || rd(RBR) != (u8)('a' + k)) fifo = 0;
  }
  int empty = !(rd(LSR) & LSR_DR);
  /* a 17th byte overruns a full FIFO: LSR.OE, the FIFO keeps the first 16 */
  for (u32 k = 0; k < 16; k++) wr(THR, (u8)('A' + k));
  wait_lsr(LSR_TEMT);
  wait_lsr(LSR_THRE);
  wr(THR, '!');
  u8 seen = wait_lsr(LSR_TEMT);
  seen |= rd(LSR);
  int kept = 1;
  for (u32 k = 0; k < 16; k++)
    if (rd(RBR) != (u8)('A' + k)) kept = 0;
  int oe_cleared = !(rd(LSR) & (LSR_OE | LSR_DR));
  uart_restore();
  check("loopback with fifo: 16 bytes queue and come back in order", fifo && empty);
  check("fifo overrun: lsr.oe set, the first 16 bytes kept", (seen & LSR_OE) && kept);
  check("reading lsr clears oe", oe_cleared);

  /* no FIFO: a second byte before RBR is read overruns and replaces the first */
  serial_drain();
  wr(FCR, 0x00);
  wr(MCR, 0x10);
  wr(THR, 'x');
  wait_lsr(LSR_DR);
  wr(THR, 'y');
  seen = wait_lsr(LSR_TEMT);
  seen |= rd(LSR);
  u8 got = rd(RBR);
  uart_restore();
  check("overrun without fifo: lsr.oe set, rbr holds the newer byte", (seen & LSR_OE) && got == 'y');

  /* modem status in loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD */
  serial_drain();
  int msr = 1;
  for (u32 m = 0; m < 16; m++) {
    wr(MCR, 0x10 | m);
    u8 want = (u8)((((m & 1) << 1) | ((m >> 1) & 1) | (m & 4) | (m & 8)) << 4);
    if ((rd(MSR) & 0xF0) != want) msr = 0;
  }
  uart_restore();
  check("loopback: msr cts/dsr/ri/dcd follow mcr rts/dtr/out1/out2", msr);
}

static void test_iir(void) {
  /* polled identification, loopback, no FIFO: the PC routes no interrupt in loopback */
  serial_drain();
  wr(FCR, 0x00);
  wr(MCR, 0x10);
  wr(IER, 0x01);
  u8 none = rd(IIR);
  wr(THR, 'r');
  int rda = wait_iir(0x04);
  (void)rd(RBR);
  u8 after_read = rd(IIR);
  wr(IER, 0x00);
  wr(IER, 0x02); /* THRE while THR is empty */
  u8 thre = rd(IIR);
  u8 after_iir = rd(IIR);
  wr(IER, 0x03);
  wr(THR, 's');
  int prio = wait_iir(0x04);
  (void)rd(RBR);
  u8 then_thre = rd(IIR);
  wr(IER, 0x00);
  /* a line status interrupt (overrun) outranks received data; reading LSR clears it */
  wr(IER, 0x05);
  wr(THR, 'u');
  wait_iir(0x04);
  wr(THR, 'v');
  int rls = wait_iir(0x06);
  u8 lsr = rd(LSR);
  u8 back_to_rda = rd(IIR);
  (void)rd(RBR);
  u8 idle = rd(IIR);
  uart_restore();
  check("iir: no interrupt pending reads 0x01", none == 0x01);
  check("iir: received data available (0x04), cleared by reading rbr", rda && after_read == 0x01);
  check("iir: thr empty (0x02) on enabling ier.thri, cleared by reading iir", thre == 0x02 && after_iir == 0x01);
  check("iir: received data outranks thr empty", prio && (then_thre & 0x0F) == 0x02);
  check("iir: line status (0x06) outranks received data, cleared by reading lsr",
        rls && (lsr & LSR_OE) && (back_to_rda & 0x0F) == 0x04 && idle == 0x01);
}

/* THR empty through the 8259: IRQ 4 (MCR.OUT2 set, loopback off) */
static volatile u32 irq4_hits, irq4_iir, irq4_iir_after;
static int irq4_handler(struct trap_frame *f) {
  (void)f;
  irq4_hits++;
  irq4_iir = inb(COM1 + IIR);       /* identifies THRE and clears it */
  irq4_iir_after = inb(COM1 + IIR);
  pic_eoi(4);
  return 1;
}

static void test_irq(void) {
  set_trap_handler(PIC_VECTOR_BASE + 4, irq4_handler);
  serial_drain();
  pic_set_mask(~(1u << 4) & 0xFFFF);
  wr(IER, 0x02);
  sti();
  for (u32 i = 0; i < 10000000 && irq4_hits == 0; i++) pause();
  for (u32 i = 0; i < 100000; i++) pause(); /* a second interrupt would be a bug */
  cli();
  wr(IER, 0x00);
  pic_set_mask(0xFFFF);
  check("thr empty interrupt through the pic on irq 4", irq4_hits == 1);
  check("irq 4 handler: iir identifies thr empty, the read clears it",
        (irq4_iir & 0x0F) == 0x02 && (irq4_iir_after & 0x0F) == 0x01);
}

void kmain(u32 magic, struct multiboot_info *mbi) {
  (void)mbi;
  serial_init();
  test_begin("serial");
  check("multiboot magic", magic == MB_BOOT_MAGIC);
  cpu_init();
  pic_remap(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8);
  test_registers();
  test_loopback();
  test_iir();
  test_irq();
  test_end();
}
