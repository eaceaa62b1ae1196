/*
 * The noise benchmarks' platform for a static i386 Linux program (apps/native/fwq.c etc.):
 * stdout through a fully buffered stdio stream (written after the measurement), errors on
 * stderr, memory from malloc, zeroed with memset so every page is touched before the run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../noise/noise.h"

void nz_write(const char *s, nz_u32 n) { fwrite(s, 1, n, stdout); }
void nz_error(const char *s) { fprintf(stderr, "%s\n", s); }
void *nz_alloc(nz_u32 bytes) {
  void *p = malloc(bytes ? bytes : 1);
  if (p) memset(p, 0, bytes);
  return p;
}

#include "../noise/common.c"

/* NZ_MAIN(fwq) defines main(): the arguments after the program name are the parameters. */
#define NZ_MAIN(name) \
  int main(int argc, char **argv) { \
    static char buf[1 << 16]; \
    setvbuf(stdout, buf, _IOFBF, sizeof buf); \
    int r = name##_main(argc - 1, argv + 1); \
    fflush(stdout); \
    return r; \
  }
