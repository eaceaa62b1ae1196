/* fault: ends with the signal named by its first argument, as a faulting program does:
 * segv (a store through a null pointer: SIGSEGV), ill (UD2: SIGILL), fpe (integer division by
 * zero: SIGFPE), trap (INT3: SIGTRAP), abort (abort(): SIGABRT). Prints one line first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

volatile int zero = 0;

int main(int argc, char **argv) {
  const char *what = argc > 1 ? argv[1] : "segv";
  printf("fault: %s\n", what);
  fflush(stdout);
  if (strcmp(what, "segv") == 0) *(volatile int *)0 = 1;
  else if (strcmp(what, "ill") == 0) __asm__ volatile("ud2");
  else if (strcmp(what, "fpe") == 0) printf("%d\n", 100 / zero);
  else if (strcmp(what, "trap") == 0) __asm__ volatile("int3");
  else if (strcmp(what, "abort") == 0) abort();
  return 1;
}
