/* Result lines and the exit through isa-debug-exit. */
#include "kernel.h"

static const char *kernel_name = "kernel";
static u32 passed, failed;

void test_begin(const char *kernel) {
  kernel_name = kernel;
  kprintf("== %s ==\n", kernel);
}

int check(const char *name, int ok) {
  kprintf("%s: %s\n", name, ok ? "ok" : "FAIL");
  if (ok) passed++;
  else failed++;
  return ok;
}

void test_end(void) {
  if (failed) kprintf("== %s: %u passed, %u FAILED ==\n", kernel_name, passed, failed);
  else kprintf("== %s: all %u passed ==\n", kernel_name, passed);
  qemu_exit(failed ? 1 : 0);
}

/* isa-debug-exit: a write of v to port 0xF4 ends QEMU with status (v << 1) | 1. */
void qemu_exit(u32 code) {
  serial_drain();
  outl(0xF4, code);
  /* no isa-debug-exit device: stop here */
  for (;;) { cli(); hlt(); }
}
