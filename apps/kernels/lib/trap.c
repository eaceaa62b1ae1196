/* The GDT, the IDT and trap dispatch. */
#include "kernel.h"

struct __attribute__((packed)) desc_ptr { u16 limit; u32 base; };

static u64 gdt[GDT_ENTRIES] __attribute__((aligned(8))) = {
  0,
  0x00CF9A000000FFFFull, /* 0x08: code, base 0, limit 4 GiB, ring 0 */
  0x00CF92000000FFFFull, /* 0x10: data, base 0, limit 4 GiB, ring 0 */
};
static u64 idt[256] __attribute__((aligned(8)));
static trap_handler handlers[256];
extern char isr_stubs[];
struct fault_record last_fault;

struct fixup { u32 insn, resume; };
extern const struct fixup __fixup_start[], __fixup_end[];

void cpu_init(void) {
  struct desc_ptr g = { sizeof gdt - 1, (u32)gdt };
  asm volatile(
    "lgdt %0\n\t"
    "ljmp %1, $1f\n"
    "1:\n\t"
    "movl %2, %%eax\n\t"
    "movl %%eax, %%ds\n\t"
    "movl %%eax, %%es\n\t"
    "movl %%eax, %%fs\n\t"
    "movl %%eax, %%gs\n\t"
    "movl %%eax, %%ss\n\t"
    : : "m"(g), "i"(KERNEL_CS), "i"(KERNEL_DS) : "eax", "memory");
  for (u32 v = 0; v < 256; v++) {
    u32 off = (u32)isr_stubs + 16 * v;
    /* 32-bit interrupt gate, DPL 0, present */
    idt[v] = (off & 0xFFFF) | ((u64)KERNEL_CS << 16) | ((u64)0x8E00 << 32) |
             ((u64)(off >> 16) << 48);
  }
  struct desc_ptr i = { sizeof idt - 1, (u32)idt };
  asm volatile("lidt %0" : : "m"(i) : "memory");
}

void set_trap_handler(u8 vector, trap_handler h) { handlers[vector] = h; }

void fault_reset(void) {
  last_fault.count = 0;
  last_fault.vector = 0xFFFFFFFF;
  last_fault.err = 0xFFFFFFFF;
  last_fault.eip = 0;
  last_fault.cr2 = 0;
}

static const char *const names[32] = {
  "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP",
  "#SS", "#GP", "#PF", "15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void trap_dispatch(struct trap_frame *f) {
  if (handlers[f->vector] && handlers[f->vector](f)) return;
  if (f->vector < 32) {
    for (const struct fixup *x = __fixup_start; x < __fixup_end; x++) {
      if (x->insn == f->eip) {
        last_fault.count++;
        last_fault.vector = f->vector;
        last_fault.err = f->err;
        last_fault.eip = f->eip;
        last_fault.cr2 = f->vector == 14 ? read_cr2() : 0;
        f->eip = x->resume;
        return;
      }
    }
    const char *n = names[f->vector] ? names[f->vector] : "exception";
    kprintf("unexpected %s (vector %u) at eip 0x%x, error code 0x%x", n, f->vector, f->eip, f->err);
    if (f->vector == 14) kprintf(", cr2 0x%x", read_cr2());
    kprintf("\n");
    qemu_exit(1);
  }
  /* a stray interrupt: ignore it (no EOI; the kernels mask what they do not use) */
}
