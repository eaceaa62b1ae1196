/*
 * apic: the local APIC at 0xFEE00000 (enabled through MSR 0x1B and the spurious-vector
 * register): the timer in periodic and one-shot mode with a divide value, the current-count
 * register, a masked LVT, TPR masking, self-IPIs through the ICR, ISR and EOI; then the IOAPIC
 * at 0xFEC00000 routing the PIT (ISA IRQ 0, IOAPIC pin 2) to a vector. The 8259s stay masked.
 * Exits with 0 when every test passed, else 1.
 */
#include "kernel.h"

#define LAPIC 0xFEE00000u
#define IOAPIC 0xFEC00000u

#define L_ID 0x020
#define L_TPR 0x080
#define L_PPR 0x0A0
#define L_EOI 0x0B0
#define L_SVR 0x0F0
#define L_ISR 0x100
#define L_IRR 0x200
#define L_ICR_LO 0x300
#define L_ICR_HI 0x310
#define L_LVT_TIMER 0x320
#define L_LVT_LINT0 0x350
#define L_LVT_LINT1 0x360
#define L_LVT_ERROR 0x370
#define L_TIMER_INIT 0x380
#define L_TIMER_CUR 0x390
#define L_TIMER_DIV 0x3E0

#define LVT_MASKED (1u << 16)
#define LVT_PERIODIC (1u << 17)

#define TIMER_VEC 0x40
#define IPI_VEC 0x50
#define IOAPIC_VEC 0x60
#define SPURIOUS_VEC 0xFF

#define DIV_4 0x1
#define DIV_16 0x3

static u32 lapic_read(u32 reg) { return mmio_read32(LAPIC + reg); }
static void lapic_write(u32 reg, u32 v) { mmio_write32(LAPIC + reg, v); }
static int lapic_bit(u32 base, u32 vec) { return (lapic_read(base + 0x10 * (vec / 32)) >> (vec % 32)) & 1; }

static u32 ioapic_read(u32 index) {
  mmio_write32(IOAPIC, index);
  return mmio_read32(IOAPIC + 0x10);
}
static void ioapic_write(u32 index, u32 v) {
  mmio_write32(IOAPIC, index);
  mmio_write32(IOAPIC + 0x10, v);
}

/* one handler for all three vectors: count, check the ISR bit, EOI, check it is gone */
static volatile u32 hits[256], isr_in_handler_bad, isr_after_eoi_bad;
static int apic_handler(struct trap_frame *f) {
  u32 v = f->vector;
  hits[v]++;
  if (!lapic_bit(L_ISR, v)) isr_in_handler_bad++;
  lapic_write(L_EOI, 0);
  if (lapic_bit(L_ISR, v)) isr_after_eoi_bad++;
  return 1;
}

static void timer_stop(void) {
  lapic_write(L_LVT_TIMER, LVT_MASKED | TIMER_VEC);
  lapic_write(L_TIMER_INIT, 0);
}

/* spins (interrupts as they are) until the timer's current count reads 0 */
static int wait_count_zero(void) {
  for (u32 i = 0; i < 50000000; i++)
    if (lapic_read(L_TIMER_CUR) == 0) return 1;
  return 0;
}

/* spins until the vector's IRR bit is set (QEMU raises it a little after the count reads 0) */
static int wait_irr(u32 vec) {
  for (u32 i = 0; i < 10000000; i++)
    if (lapic_bit(L_IRR, vec)) return 1;
  return 0;
}

static void spin(u32 n) {
  for (u32 i = 0; i < n; i++) pause();
}

static int wait_hits(u32 vec, u32 n) {
  for (u32 i = 0; i < 10000000; i++)
    if (hits[vec] >= n) return 1;
  return 0;
}

static void test_lapic(void) {
  u32 a, b, c, d;
  cpuid(1, &a, &b, &c, &d);
  if (!check("cpuid: local apic present", (d >> 9) & 1)) test_end();

  u64 base = rdmsr(0x1B);
  check("apic base msr: 0xfee00000, bsp", (base & 0xFFFFF000u) == LAPIC && (base & (1u << 8)));
  wrmsr(0x1B, base | (1u << 11));
  check("apic base msr: global enable set", (rdmsr(0x1B) & (1u << 11)) != 0);

  lapic_write(L_SVR, 0x100 | SPURIOUS_VEC);
  check("svr: software enable and spurious vector", (lapic_read(L_SVR) & 0x1FF) == (0x100 | SPURIOUS_VEC));
  lapic_write(L_LVT_LINT0, LVT_MASKED); /* the 8259s are masked anyway: no ExtINT */
  lapic_write(L_LVT_ERROR, LVT_MASKED | 0xFE);
  lapic_write(L_TPR, 0);
  check("tpr reads back", (lapic_read(L_TPR) & 0xFF) == 0);

  set_trap_handler(TIMER_VEC, apic_handler);
  set_trap_handler(IPI_VEC, apic_handler);
  set_trap_handler(IOAPIC_VEC, apic_handler);

  /* periodic mode, divide by 16 */
  lapic_write(L_TIMER_DIV, DIV_16);
  check("timer divide register reads back", (lapic_read(L_TIMER_DIV) & 0xB) == DIV_16);
  lapic_write(L_LVT_TIMER, LVT_PERIODIC | TIMER_VEC);
  check("lvt timer reads back (periodic, vector)", (lapic_read(L_LVT_TIMER) & 0x700FF) == (LVT_PERIODIC | TIMER_VEC));
  lapic_write(L_TIMER_INIT, 100000);
  while (hits[TIMER_VEC] < 10) sti_hlt();
  cli();
  timer_stop();
  check("periodic timer: 10 interrupts with hlt", hits[TIMER_VEC] >= 10);
  check("isr bit set in the handler, cleared by eoi", !isr_in_handler_bad && !isr_after_eoi_bad);

  /* one-shot mode, divide by 4 */
  hits[TIMER_VEC] = 0;
  lapic_write(L_TIMER_DIV, DIV_4);
  lapic_write(L_LVT_TIMER, TIMER_VEC);
  lapic_write(L_TIMER_INIT, 200000);
  u32 c1 = lapic_read(L_TIMER_CUR), c2 = c1;
  for (u32 i = 0; i < 10000000 && c2 >= c1; i++) c2 = lapic_read(L_TIMER_CUR);
  check("one-shot: current count starts at most at the initial count", c1 <= 200000);
  check("one-shot: current count decreases", c2 < c1);
  while (hits[TIMER_VEC] < 1) sti_hlt();
  spin(100000);
  cli();
  check("one-shot: exactly one interrupt", hits[TIMER_VEC] == 1);
  check("one-shot: current count stays at 0", lapic_read(L_TIMER_CUR) == 0);

  /* a masked LVT: the count runs down, no interrupt, nothing in the IRR */
  hits[TIMER_VEC] = 0;
  lapic_write(L_LVT_TIMER, LVT_MASKED | TIMER_VEC);
  lapic_write(L_TIMER_INIT, 50000);
  sti();
  int zero = wait_count_zero();
  spin(10000);
  cli();
  check("masked lvt timer: counts down, no interrupt", zero && hits[TIMER_VEC] == 0 && !lapic_bit(L_IRR, TIMER_VEC));

  /* TPR above the timer's priority class: held in the IRR until the TPR drops */
  lapic_write(L_TPR, 0x50);
  lapic_write(L_LVT_TIMER, TIMER_VEC);
  lapic_write(L_TIMER_INIT, 50000);
  sti();
  zero = wait_count_zero();
  u32 irr = wait_irr(TIMER_VEC);
  u32 held = hits[TIMER_VEC], ppr = lapic_read(L_PPR) & 0xFF;
  lapic_write(L_TPR, 0x30);
  int delivered = wait_hits(TIMER_VEC, 1);
  cli();
  check("tpr 0x50 holds off vector 0x40", zero && held == 0 && irr);
  check("ppr follows tpr", ppr == 0x50);
  check("tpr 0x30 lets vector 0x40 through", delivered && hits[TIMER_VEC] == 1);
  lapic_write(L_TPR, 0);
  timer_stop();

  /* self-IPIs through the ICR */
  lapic_write(L_ICR_HI, 0);
  lapic_write(L_ICR_LO, (1u << 18) | IPI_VEC); /* shorthand self, fixed, edge */
  sti();
  delivered = wait_hits(IPI_VEC, 1);
  cli();
  int idle = 0;
  for (u32 i = 0; i < 1000000 && !idle; i++) idle = !(lapic_read(L_ICR_LO) & (1u << 12));
  check("self-ipi (shorthand self) delivered", delivered && hits[IPI_VEC] == 1);
  check("icr delivery status returns to idle", idle);
  u32 id = lapic_read(L_ID) >> 24;
  lapic_write(L_ICR_HI, id << 24);
  lapic_write(L_ICR_LO, IPI_VEC); /* no shorthand, physical destination: this cpu's apic id */
  sti();
  delivered = wait_hits(IPI_VEC, 2);
  cli();
  check("ipi to the own apic id delivered", delivered && hits[IPI_VEC] == 2);
  /* a self-IPI with TPR raised stays pending, then arrives */
  lapic_write(L_TPR, 0x60);
  lapic_write(L_ICR_HI, 0);
  lapic_write(L_ICR_LO, (1u << 18) | IPI_VEC);
  sti();
  irr = wait_irr(IPI_VEC);
  held = hits[IPI_VEC];
  lapic_write(L_TPR, 0);
  delivered = wait_hits(IPI_VEC, 3);
  cli();
  check("self-ipi held by tpr, delivered when it drops", held == 2 && irr && delivered && hits[IPI_VEC] == 3);
  check("isr and eoi for every vector", !isr_in_handler_bad && !isr_after_eoi_bad);
}

static void test_ioapic(void) {
  u32 ver = ioapic_read(1);
  check("ioapic: at least 16 redirection entries", ((ver >> 16) & 0xFF) >= 15);
  u32 id = lapic_read(L_ID) >> 24;
  /* pin 2 (the PIT's ISA IRQ 0): fixed, physical, edge, active high, unmasked */
  ioapic_write(0x10 + 2 * 2 + 1, id << 24);
  ioapic_write(0x10 + 2 * 2, IOAPIC_VEC);
  check("ioapic: redirection entry reads back", (ioapic_read(0x10 + 2 * 2) & 0x1EFFF) == IOAPIC_VEC &&
        (ioapic_read(0x10 + 2 * 2 + 1) >> 24) == id);
  pit_set_periodic(1000);
  while (hits[IOAPIC_VEC] < 10) sti_hlt();
  cli();
  ioapic_write(0x10 + 2 * 2, LVT_MASKED | IOAPIC_VEC);
  check("ioapic: pit on pin 2, 10 interrupts with hlt", hits[IOAPIC_VEC] >= 10);
  check("ioapic: masked entry reads back", (ioapic_read(0x10 + 2 * 2) & 0x1EFFF) == (LVT_MASKED | IOAPIC_VEC));
}

void kmain(u32 magic, struct multiboot_info *mbi) {
  (void)mbi;
  serial_init();
  test_begin("apic");
  check("multiboot magic", magic == MB_BOOT_MAGIC);
  cpu_init();
  pic_remap(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8); /* and leave every 8259 IRQ masked */
  test_lapic();
  test_ioapic();
  test_end();
}
