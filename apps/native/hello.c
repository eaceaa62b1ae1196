/* hello: the smallest useful program. Prints a greeting through stdio, one line through
 * write(2) directly, and exits with the status given as its first argument (default 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  printf("hello, world\n");
  fflush(stdout);
  const char *msg = "written by write(2)\n";
  if (write(1, msg, strlen(msg)) != (ssize_t)strlen(msg)) return 100;
  return argc > 1 ? atoi(argv[1]) : 0;
}
