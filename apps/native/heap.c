/* heap: grows the heap with brk/sbrk and with malloc (small blocks from the brk heap, large
 * ones through mmap), writes a pattern over every byte, checks it and prints checksums. The
 * output is the same on every system; the addresses are not printed. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static uint32_t fill_and_sum(unsigned char *p, size_t n, uint32_t seed) {
  uint32_t x = seed, sum = 0;
  for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; p[i] = (unsigned char)(x >> 16); }
  for (size_t i = 0; i < n; i++) sum = sum * 31u + p[i];
  return sum;
}

int main(int argc, char **argv) {
  size_t total = argc > 1 ? (size_t)atol(argv[1]) : 4u << 20;
  /* 1. sbrk in steps */
  unsigned char *base = sbrk(0);
  if (base == (void *)-1) { puts("sbrk(0) failed"); return 1; }
  uint32_t sum = 0;
  for (size_t step = 4096, done = 0; done < total / 4; done += step, step *= 2) {
    unsigned char *p = sbrk((intptr_t)step);
    if (p == (void *)-1) { printf("sbrk(%zu) failed\n", step); return 1; }
    if (p != base + done) { puts("sbrk is not contiguous"); return 1; }
    sum ^= fill_and_sum(p, step, (uint32_t)step);
  }
  printf("sbrk sum %08x\n", sum);
  if (brk(base) != 0) { puts("brk back failed"); return 1; }
  printf("brk back %s\n", sbrk(0) == base ? "ok" : "wrong");
  /* 2. malloc: many small blocks, then a few large ones */
  enum { SMALL = 2000 };
  static unsigned char *blocks[SMALL];
  uint32_t msum = 0;
  for (int i = 0; i < SMALL; i++) {
    size_t n = 16 + (size_t)(i * 37 % 1000);
    blocks[i] = malloc(n);
    if (blocks[i] == NULL) { puts("malloc failed"); return 1; }
    msum += fill_and_sum(blocks[i], n, (uint32_t)i);
  }
  for (int i = 0; i < SMALL; i += 2) free(blocks[i]);
  for (int i = 0; i < SMALL; i += 2) { blocks[i] = malloc(64); memset(blocks[i], i & 0xff, 64); msum += blocks[i][63]; }
  printf("malloc small sum %08x\n", msum);
  uint32_t lsum = 0;
  for (size_t n = 128 << 10; n <= total; n *= 2) {
    unsigned char *p = malloc(n);
    if (p == NULL) { printf("malloc(%zu) failed\n", n); return 1; }
    lsum ^= fill_and_sum(p, n, (uint32_t)n);
    p = realloc(p, n + n / 2);
    if (p == NULL) { puts("realloc failed"); return 1; }
    lsum ^= fill_and_sum(p + n, n / 2, 7);
    free(p);
  }
  printf("malloc large sum %08x\n", lsum);
  /* 3. anonymous mmap: zero-filled, writable, unmappable */
  size_t mn = 1u << 20;
  unsigned char *m = mmap(NULL, mn, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) { puts("mmap failed"); return 1; }
  int zero = 1;
  for (size_t i = 0; i < mn; i++) if (m[i] != 0) { zero = 0; break; }
  printf("mmap zeroed %s\n", zero ? "yes" : "no");
  printf("mmap sum %08x\n", fill_and_sum(m, mn, 99));
  printf("munmap %d\n", munmap(m, mn));
  return 0;
}
