/*
 * The native side of the benchmark: runs the very machine code the emulator runs.
 *
 *   native-runner IMAGE BASE REPEATS
 *
 * maps the flat image (apps/bench/workload.bin) at BASE (its code is position-dependent), with
 * its .bss (the header's _end, see apps/bench/workload.c), calls the header's `workload` entry
 * REPEATS times and prints the checksum and each run's time (CLOCK_MONOTONIC), one per line:
 *
 *   checksum 0x1234abcd
 *   run 0.012345678 0.012300000      (wall seconds, then CPU seconds of the process)
 *
 * Build: gcc -m32 -O2 -static -o bench/build/native-runner bench/native-runner.c
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

typedef uint32_t (*entry_fn)(void);

static double now(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: %s IMAGE BASE REPEATS\n", argv[0]); return 2; }
  FILE *f = fopen(argv[1], "rb");
  if (!f) { perror(argv[1]); return 2; }
  static uint8_t img[1 << 20];
  size_t len = fread(img, 1, sizeof img, f);
  fclose(f);
  uint32_t base = (uint32_t)strtoul(argv[2], 0, 0);
  int repeats = atoi(argv[3]);
  if (len < 16) { fprintf(stderr, "%s: too short\n", argv[1]); return 2; }
  uint32_t entry, end;
  memcpy(&entry, img + 8, 4);
  memcpy(&end, img + 12, 4);
  if (end < base + len || entry < base || entry >= base + len) { fprintf(stderr, "%s: bad header\n", argv[1]); return 2; }
  size_t size = ((size_t)(end - base) + 0xfff) & ~(size_t)0xfff;
  void *p = mmap((void *)(uintptr_t)base, size, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED || (uintptr_t)p != base) { perror("mmap"); return 2; }
  memcpy(p, img, len);
  entry_fn fn = (entry_fn)(uintptr_t)entry;
  uint32_t sum = 0;
  for (int r = 0; r < repeats; r++) {
    double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    uint32_t c = fn();
    double t1 = now(CLOCK_MONOTONIC), c1 = now(CLOCK_PROCESS_CPUTIME_ID);
    if (r > 0 && c != sum) { fprintf(stderr, "checksum changed between runs\n"); return 1; }
    sum = c;
    if (r == 0) printf("checksum 0x%08x\n", sum);
    printf("run %.9f %.9f\n", t1 - t0, c1 - c0);
  }
  return 0;
}
