/* tls: thread-local storage through %gs (set_thread_area), errno (itself thread-local), and
 * a few identity system calls whose results do not depend on the system. */
#include <errno.h>
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

static __thread int counter = 5;
static __thread char buf[64] = "initial tls data";

int main(void) {
  for (int i = 0; i < 10; i++) counter += i;
  printf("tls counter %d\n", counter);
  printf("tls buf \"%s\"\n", buf);
  buf[0] = 'I';
  printf("tls buf after store \"%s\"\n", buf);
  errno = 0;
  if (write(-1, "x", 1) != -1) return 1;
  printf("write(-1): errno %d (EBADF %d)\n", errno, EBADF);
  if (close(12345) != -1) return 1;
  printf("close(12345): errno %d\n", errno);
  unsigned short gs;
  __asm__("mov %%gs, %0" : "=r"(gs));
  printf("gs is a GDT selector at RPL 3: %s\n", (gs & 7) == 3 ? "yes" : "no");
  struct utsname u;
  if (uname(&u) != 0) return 1;
  printf("sysname %s\n", u.sysname);
  return 0;
}
