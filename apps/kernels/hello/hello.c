/* hello: a greeting, the Multiboot magic check, the command line; exits with 0. */
#include "kernel.h"

void kmain(u32 magic, struct multiboot_info *mbi) {
  serial_init();
  kprintf("== hello ==\n");
  kprintf("hello from a multiboot kernel\n");
  int mb = magic == MB_BOOT_MAGIC;
  kprintf("multiboot: %s\n", mb ? "ok" : "FAIL");
  if (mb && (mbi->flags & (1u << 2)) && mbi->cmdline)
    kprintf("cmdline: \"%s\"\n", (const char *)mbi->cmdline);
  else
    kprintf("cmdline: none\n");
  kprintf("memory info: %s\n", mb && (mbi->flags & 1u) && mbi->mem_lower >= 256 && mbi->mem_upper >= 1024 ? "ok" : "FAIL");
  kprintf("== hello: done ==\n");
  qemu_exit(mb ? 0 : 1);
}
