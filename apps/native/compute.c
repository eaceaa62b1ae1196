/* compute: a long integer computation with no system calls between its start and its one line
 * of output (the tickless test runs it alone on a core). The first argument is the number of
 * rounds (default 2000). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  long rounds = argc > 1 ? atol(argv[1]) : 2000;
  uint32_t h = 2166136261u;
  for (long r = 0; r < rounds; r++) {
    uint32_t x = (uint32_t)r;
    for (int i = 0; i < 1000; i++) { x ^= x << 13; x ^= x >> 17; x ^= x << 5; h = (h ^ x) * 16777619u; }
  }
  printf("compute %ld rounds: %08x\n", rounds, h);
  return 0;
}
