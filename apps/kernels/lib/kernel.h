/*
 * The freestanding runtime shared by the test kernels: boot (boot.S), COM1 output (serial.c),
 * formatted printing (printf.c), result lines and isa-debug-exit (test.c), the GDT, IDT and
 * trap dispatch (trap.c, isr.S), the 8259 PIC (pic.c), the 8254 PIT (pit.c) and a 2-level page
 * table builder (paging.c).
 */
#ifndef KLIB_KERNEL_H
#define KLIB_KERNEL_H

#include "io.h"

#define NULL ((void *)0)
#define MB_BOOT_MAGIC 0x2BADB002u

/* The Multiboot v1 information structure (the fields the kernels read). */
struct multiboot_info {
  u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  u32 syms[4];
  u32 mmap_length, mmap_addr;
};

/* boot.S calls kmain(EAX, EBX) on its own stack with interrupts off. */
void kmain(u32 magic, struct multiboot_info *mbi);

/* string.c (GCC may call memset/memcpy itself) */
void *memset(void *d, int c, u32 n);
void *memcpy(void *d, const void *s, u32 n);
int memcmp(const void *a, const void *b, u32 n);
u32 strlen(const char *s);

/* serial.c: COM1 at 0x3F8, 115200 8N1, FIFOs on, polled output */
#define COM1 0x3F8
void serial_init(void);
void serial_putc(char c);
void serial_puts(const char *s);
void serial_drain(void); /* wait until the transmitter is empty (LSR.TEMT) */

/* printf.c: %s %c %d %u %x %X with optional 0 flag and width, %% */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* test.c: one result line per test, and the exit through isa-debug-exit (port 0xF4) */
void test_begin(const char *kernel); /* prints "== kernel ==" */
int check(const char *name, int ok); /* prints "name: ok" or "name: FAIL"; returns ok */
__attribute__((noreturn)) void test_end(void); /* summary line, exit 0 if all passed else 1 */
__attribute__((noreturn)) void qemu_exit(u32 code); /* (code << 1) | 1 under QEMU */

/* trap.c: the GDT (flat ring-0 code 0x08, data 0x10) and the IDT (all 256 vectors) */
#define KERNEL_CS 0x08
#define KERNEL_DS 0x10
#define GDT_ENTRIES 3

struct trap_frame {
  u32 gs, fs, es, ds;
  u32 edi, esi, ebp, esp_unused, ebx, edx, ecx, eax; /* pusha */
  u32 vector, err;
  u32 eip, cs, eflags; /* pushed by the CPU (same privilege: no ESP/SS) */
};

/* A handler returns nonzero when it handled the trap. */
typedef int (*trap_handler)(struct trap_frame *f);
void cpu_init(void); /* loads the GDT and IDT, reloads the segment registers */
void set_trap_handler(u8 vector, trap_handler h);

/*
 * Expected faults: FIXUP(insn) emits the instruction with an entry in a table of
 * (instruction, resume address). When an exception that no handler takes hits such an
 * instruction, trap.c records it in last_fault and resumes right after the instruction.
 * Any other unhandled exception prints one line and exits with status 1.
 */
#define FIXUP(insn) \
  "991:\n\t" insn "\n992:\n\t" \
  ".pushsection .fixup_table,\"a\"\n\t.long 991b, 992b\n\t.popsection\n\t"

struct fault_record {
  volatile u32 count, vector, err, eip, cr2;
};
extern struct fault_record last_fault;
void fault_reset(void);

/* pic.c: the 8259A pair, remapped to vectors 0x20-0x2F */
#define PIC_VECTOR_BASE 0x20
void pic_remap(u8 master_base, u8 slave_base); /* all IRQs masked afterwards */
void pic_set_mask(u16 mask);                  /* bit n = IRQ n masked */
u16 pic_get_mask(void);
void pic_eoi(u8 irq);                         /* non-specific EOI */
u16 pic_read_isr(void);
u16 pic_read_irr(void);

/* pit.c: the 8254's channel 0 */
#define PIT_HZ 1193182u
void pit_set_periodic(u32 hz); /* mode 2 (rate generator), lobyte/hibyte */
u16 pit_read_count(void);      /* latch and read channel 0 */

/* paging.c: 2-level (non-PAE) tables from a static pool of page frames */
#define PAGE_SIZE 4096u
#define PTE_P 0x001u
#define PTE_W 0x002u
#define PTE_U 0x004u
#define PTE_A 0x020u
#define PTE_D 0x040u
#define PTE_PS 0x080u
#define PTE_G 0x100u
void *page_alloc(void); /* a zeroed, page-aligned 4 KiB frame (identity-mapped) */
u32 *pgdir_new(void);
u32 *pte_lookup(u32 *pd, u32 va, int create); /* the PTE for va (4 KiB pages) */
void map_page(u32 *pd, u32 va, u32 pa, u32 flags);
void map_large(u32 *pd, u32 va, u32 pa, u32 flags); /* 4 MiB PSE page */
void identity_map(u32 *pd, u32 start, u32 end, u32 flags); /* 4 KiB pages */
void paging_enable(u32 *pd); /* CR4.PSE, CR3, CR0.PG|WP */
void paging_disable(void);

#endif
