/* upcase: copies stdin to stdout in upper case, reading with read(2) in small chunks and
 * writing with writev(2); prints the byte count on stderr. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

int main(void) {
  char buf[700];
  long total = 0;
  for (;;) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0) { perror("read"); return 1; }
    if (n == 0) break;
    for (ssize_t i = 0; i < n; i++) buf[i] = (char)toupper((unsigned char)buf[i]);
    struct iovec iov[2] = { { buf, (size_t)n / 2 }, { buf + n / 2, (size_t)(n - n / 2) } };
    if (writev(1, iov, 2) != n) { perror("writev"); return 1; }
    total += n;
  }
  fprintf(stderr, "upcase: %ld bytes\n", total);
  return 0;
}
