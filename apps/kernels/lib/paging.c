/* 2-level (non-PAE) page tables, built in frames from a static pool inside the kernel image. */
#include "kernel.h"

#define POOL_PAGES 64
static u8 pool[POOL_PAGES][PAGE_SIZE] __attribute__((aligned(PAGE_SIZE)));
static u32 pool_next;

void *page_alloc(void) {
  if (pool_next == POOL_PAGES) {
    kprintf("page_alloc: out of frames\n");
    qemu_exit(1);
  }
  void *p = pool[pool_next++];
  memset(p, 0, PAGE_SIZE);
  return p;
}

u32 *pgdir_new(void) { return page_alloc(); }

u32 *pte_lookup(u32 *pd, u32 va, int create) {
  u32 *pde = &pd[va >> 22];
  if (!(*pde & PTE_P)) {
    if (!create) return NULL;
    *pde = (u32)page_alloc() | PTE_P | PTE_W;
  }
  if (*pde & PTE_PS) return NULL;
  u32 *pt = (u32 *)(*pde & ~0xFFFu);
  return &pt[(va >> 12) & 0x3FF];
}

void map_page(u32 *pd, u32 va, u32 pa, u32 flags) {
  *pte_lookup(pd, va, 1) = (pa & ~0xFFFu) | flags | PTE_P;
}

void map_large(u32 *pd, u32 va, u32 pa, u32 flags) {
  pd[va >> 22] = (pa & 0xFFC00000u) | flags | PTE_PS | PTE_P;
}

void identity_map(u32 *pd, u32 start, u32 end, u32 flags) {
  for (u32 a = start & ~0xFFFu; a < end; a += PAGE_SIZE) map_page(pd, a, a, flags);
}

void paging_enable(u32 *pd) {
  write_cr4(read_cr4() | CR4_PSE);
  write_cr3((u32)pd);
  write_cr0(read_cr0() | CR0_PG | CR0_WP);
}

void paging_disable(void) { write_cr0(read_cr0() & ~CR0_PG); }
