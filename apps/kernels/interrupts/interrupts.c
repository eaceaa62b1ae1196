/*
 * interrupts: its own GDT and IDT; software interrupts and exceptions (INT n, #DE, #UD, #GP,
 * #BP, #OF, #PF with CR2 after paging is on); the 8259 PIC remapped to 0x20 and the 8254 PIT
 * at 1000 Hz on IRQ 0: ticks counted with HLT, ISR/IRR bits, IMR masking, EOI.
 * Exits with 0 when every test passed, else 1.
 */
#include "kernel.h"

#define TICKS_WANTED 20

static volatile u32 int80_hits, int80_if_inside, int80_frame_if, int80_cs;
static int int80_handler(struct trap_frame *f) {
  int80_hits++;
  int80_if_inside = read_eflags() & 0x200;
  int80_frame_if = f->eflags & 0x200;
  int80_cs = f->cs;
  f->eax += 1; /* the handler's change to the frame is what the interrupted code sees */
  return 1;
}

static volatile u32 trap_hits[32], trap_eip[32];
static int trap_recorder(struct trap_frame *f) {
  trap_hits[f->vector]++;
  trap_eip[f->vector] = f->eip;
  return 1;
}

static volatile u32 ticks, isr_set_in_handler = 1, isr_clear_after_eoi = 1;
static volatile u32 skip_eoi, eoi_held;
static int irq0_handler(struct trap_frame *f) {
  (void)f;
  if (!(pic_read_isr() & 1)) isr_set_in_handler = 0;
  ticks++;
  if (skip_eoi) {
    skip_eoi = 0;
    eoi_held = 1;
    return 1;
  }
  pic_eoi(0);
  if (pic_read_isr() & 1) isr_clear_after_eoi = 0;
  return 1;
}

/* Polls the PIT's channel 0 until its count has reloaded `n` times: at least n-1 full periods. */
static u32 wait_pit_reloads(u32 n) {
  u32 reloads = 0;
  u16 prev = pit_read_count();
  for (u32 i = 0; i < 20000000 && reloads < n; i++) {
    u16 c = pit_read_count();
    if (c > prev) reloads++;
    prev = c;
  }
  return reloads;
}

/* Spins until IRQ 0 is requested in the IRR (QEMU raises it a little after the count reloads). */
static int wait_irr0(void) {
  for (u32 i = 0; i < 10000000; i++)
    if (pic_read_irr() & 1) return 1;
  return 0;
}

static u32 read_ds(void) {
  u32 v;
  asm volatile("movl %%ds, %0" : "=r"(v));
  return v;
}

void kmain(u32 magic, struct multiboot_info *mbi) {
  (void)mbi;
  serial_init();
  test_begin("interrupts");
  check("multiboot magic", magic == MB_BOOT_MAGIC);

  cpu_init();
  pic_remap(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8); /* everything masked */

  /* INT n through an interrupt gate: IF cleared inside, restored by IRET, frame edits seen */
  set_trap_handler(0x80, int80_handler);
  u32 v = 41;
  sti();
  asm volatile("int $0x80" : "+a"(v) : : "memory");
  u32 if_after = read_eflags() & 0x200;
  cli();
  check("int 0x80 reaches its handler and returns", int80_hits == 1 && v == 42);
  check("interrupt gate clears IF, iret restores it", !int80_if_inside && int80_frame_if && if_after);
  check("frame holds the kernel code selector", int80_cs == KERNEL_CS);

  /* #DE: a fault, resumed past the instruction */
  fault_reset();
  u32 lo = 100, hi = 0;
  asm volatile(FIXUP("divl %[d]") : "+a"(lo), "+d"(hi) : [d] "r"(0u) : "memory");
  check("#DE divide by zero caught and resumed", last_fault.count == 1 && last_fault.vector == 0 && lo == 100);
  fault_reset();
  lo = 0; hi = 5;
  asm volatile(FIXUP("divl %[d]") : "+a"(lo), "+d"(hi) : [d] "r"(2u) : "memory");
  check("#DE on quotient overflow", last_fault.count == 1 && last_fault.vector == 0);

  /* #UD */
  fault_reset();
  asm volatile(FIXUP("ud2") : : : "memory");
  check("#UD from ud2", last_fault.count == 1 && last_fault.vector == 6 && last_fault.err == 0);

  /* #GP: a selector beyond the GDT limit; the error code is the selector */
  fault_reset();
  asm volatile(FIXUP("movl %0, %%ds") : : "r"(0x80u) : "memory");
  check("#GP from a selector beyond the gdt limit", last_fault.count == 1 && last_fault.vector == 13 &&
        last_fault.err == 0x80 && read_ds() == KERNEL_DS);

  /* #BP and #OF are traps: the frame's EIP is the next instruction */
  set_trap_handler(3, trap_recorder);
  set_trap_handler(4, trap_recorder);
  u32 next;
  asm volatile("int3\n993:\n\tmovl $993b, %0" : "=r"(next) : : "memory");
  check("#BP from int3, eip after the instruction", trap_hits[3] == 1 && trap_eip[3] == next);
  asm volatile("movb $0x7f, %%al\n\taddb $1, %%al\n\tinto\n994:\n\tmovl $994b, %0" : "=r"(next) : : "eax", "memory");
  check("#OF from into with OF set", trap_hits[4] == 1 && trap_eip[4] == next);
  asm volatile("xorl %%eax, %%eax\n\tinto" : : : "eax", "memory");
  check("into with OF clear does nothing", trap_hits[4] == 1);

  /* #PF with paging on: the first 4 MiB identity-mapped, nothing else */
  u32 *pd = pgdir_new();
  identity_map(pd, 0, 0x400000, PTE_W);
  paging_enable(pd);
  check("paging on", (read_cr0() & CR0_PG) != 0);
  fault_reset();
  u32 val = 7;
  asm volatile(FIXUP("movl (%1), %0") : "+r"(val) : "r"(0x00C01234u) : "memory");
  check("#PF on a read of an unmapped page, error code 0", last_fault.count == 1 && last_fault.vector == 14 &&
        last_fault.err == 0 && val == 7);
  check("#PF cr2 holds the faulting address", last_fault.cr2 == 0x00C01234u);
  fault_reset();
  asm volatile(FIXUP("movl %0, (%1)") : : "r"(1u), "r"(0x00C05678u) : "memory");
  check("#PF on a write, error code 2 and cr2", last_fault.count == 1 && last_fault.vector == 14 &&
        last_fault.err == 2 && last_fault.cr2 == 0x00C05678u);

  /* the PIC: IMR read back */
  pic_set_mask(0x5AA5);
  u16 m = pic_get_mask();
  pic_set_mask(0xFFFF);
  check("pic imr reads back", m == 0x5AA5 && pic_get_mask() == 0xFFFF);

  /* the PIT at 1000 Hz on IRQ 0, ticks counted with HLT */
  set_trap_handler(PIC_VECTOR_BASE + 0, irq0_handler);
  pit_set_periodic(1000);
  pic_set_mask(0xFFFE);
  while (ticks < TICKS_WANTED) sti_hlt();
  cli();
  check("pit irq0 ticks >= 20 with hlt", ticks >= TICKS_WANTED);
  check("pic isr bit set while irq0 is serviced", isr_set_in_handler);
  check("eoi clears the isr bit", isr_clear_after_eoi);

  /* masked in the IMR: not delivered but pending in the IRR; delivered when unmasked */
  pic_set_mask(0xFFFF);
  u32 t0 = ticks;
  sti();
  u32 reloads = wait_pit_reloads(3);
  int irr = wait_irr0();
  u32 t1 = ticks;
  pic_set_mask(0xFFFE);
  for (u32 i = 0; i < 10000000 && ticks == t1; i++) pause();
  cli();
  check("pit count reloads", reloads == 3);
  check("masked irq0 is not delivered", t1 == t0);
  check("masked irq0 is pending in the irr", irr);
  check("irq0 is delivered once unmasked", ticks > t1);

  /* without an EOI, the in-service IRQ 0 holds off further IRQ 0 */
  eoi_held = 0;
  skip_eoi = 1;
  while (!eoi_held) sti_hlt();
  t0 = ticks;
  reloads = wait_pit_reloads(3);
  irr = wait_irr0();
  t1 = ticks;
  u16 isr = pic_read_isr();
  pic_eoi(0);
  for (u32 i = 0; i < 10000000 && ticks == t1; i++) pause();
  cli();
  check("no eoi: irq0 stays in service, a new request waits in the irr", reloads == 3 && irr && t1 == t0 && (isr & 1) != 0);
  check("eoi from the main line lets irq0 through again", ticks > t1);

  pic_set_mask(0xFFFF);
  test_end();
}
