/*
 * catamount: a "Catamount-like" lightweight guest kernel. It builds its page tables once,
 * identity-mapping all of memory with 4 MiB (PSE) pages, turns paging on, and runs one
 * application chosen by the command line: one of the noise benchmarks (apps/noise: fwq, ftq,
 * selfish) or the memory-bound spmv, with its key=value parameters. It takes no interrupts:
 * the 8259s are masked and IF stays clear for the whole run (exceptions still reach its IDT
 * and end the run with a message). Memory for the application comes from a bump allocator
 * above the image, zeroed before the measurement. It prints the application's result lines
 * (apps/noise/README.md) between a header and a footer and exits through isa-debug-exit with
 * the application's exit value (0 success, 2 bad parameters). See apps/guests/README.md.
 *
 * Command line: [KERNEL-PATH] [APP] [key=value ...]; APP is the first token naming an
 * application; without one it is fwq and its parameters are the tokens holding '='.
 */
#include "kernel.h"
#include "noise.h"

#define MiB 0x100000u
#define LARGE (4 * MiB)

extern char __bss_end[];
static u32 heap_next, heap_end;

void nz_write(const char *s, nz_u32 n) {
  for (nz_u32 i = 0; i < n; i++) serial_putc(s[i]);
}

void nz_error(const char *s) { kprintf("error: %s\n", s); }

static void zero_words(u32 *p, u32 words) {
  asm volatile("rep stosl" : "+D"(p), "+c"(words) : "a"(0) : "memory");
}

void *nz_alloc(nz_u32 bytes) {
  u32 size = (bytes + 4095) & ~4095u;
  if (size == 0) size = 4096;
  if (heap_next + size > heap_end || heap_next + size < heap_next) return NULL;
  u32 *p = (u32 *)heap_next;
  heap_next += size;
  zero_words(p, size / 4);
  return p;
}

struct app { const char *name; nz_main_fn main; };
static const struct app apps[] = {
  { "fwq", fwq_main }, { "ftq", ftq_main }, { "selfish", selfish_main }, { "spmv", spmv_main },
};
#define NAPPS (sizeof apps / sizeof apps[0])

#define MAXTOK 32
static char cmdbuf[512];
static char *tok[MAXTOK];

static int split(const char *s) {
  u32 n = 0;
  while (*s && n < sizeof cmdbuf - 1) { cmdbuf[n] = *s++; n++; }
  cmdbuf[n] = 0;
  int nt = 0;
  char *p = cmdbuf;
  while (*p && nt < MAXTOK) {
    while (*p == ' ') *p++ = 0;
    if (!*p) break;
    tok[nt++] = p;
    while (*p && *p != ' ') p++;
  }
  return nt;
}

static int streq(const char *a, const char *b) {
  while (*a && *a == *b) { a++; b++; }
  return *a == *b;
}

void kmain(u32 magic, struct multiboot_info *mbi) {
  serial_init();
  cpu_init();
  pic_remap(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8); /* every IRQ masked; IF stays clear */
  kprintf("== catamount ==\n");
  if (magic != MB_BOOT_MAGIC || !(mbi->flags & 1)) {
    kprintf("error: not booted by a multiboot loader with memory information\n");
    qemu_exit(2);
  }

  /* memory: [1 MiB, 1 MiB + mem_upper KiB), mapped once with 4 MiB pages */
  u32 top = MiB + mbi->mem_upper * 1024u;
  u32 mapped = (top + LARGE - 1) & ~(LARGE - 1);
  u32 *pd = pgdir_new();
  for (u32 a = 0; a < mapped && a < 0xC0000000u; a += LARGE) map_large(pd, a, a, PTE_W);
  paging_enable(pd);
  heap_next = ((u32)__bss_end + 4095) & ~4095u;
  heap_end = top & ~4095u;

  int nt = split((mbi->flags & 4) ? (const char *)mbi->cmdline : "");
  int first = nt; /* the application's token: the first that names one */
  const struct app *app = &apps[0];
  for (int i = 0; i < nt && first == nt; i++)
    for (u32 k = 0; k < NAPPS; k++)
      if (streq(tok[i], apps[k].name)) { app = &apps[k]; first = i; break; }
  int argc = first < nt ? nt - first - 1 : 0;
  char **argv = first < nt ? &tok[first + 1] : tok;
  if (first == nt) /* no application named: the default's parameters are the key=value tokens */
    for (int i = 0; i < nt; i++) {
      const char *t = tok[i];
      while (*t && *t != '=') t++;
      if (*t) tok[argc++] = tok[i];
    }

  kprintf("catamount-app %s pages=4M mapped=%u\n", app->name, mapped >> 20);
  int r = app->main(argc, argv);
  kprintf("== catamount: exit %d ==\n", r);
  qemu_exit((u32)r);
}
