/* sysbench: the round trip of a null system call (getpid), for bench/syscall.ts.
 *
 *   sysbench N MODE...      MODE: int80 | sysenter | libc
 *
 * For each MODE, makes N getpid calls in a loop and prints two lines on stdout:
 *
 *   begin MODE
 *   MODE calls N cycles C ns T cpu_ns U
 *
 * C is the RDTSC difference around the loop (simulated cycles under the LWK, the host's TSC
 * natively), T the CLOCK_MONOTONIC nanoseconds around it and U the CLOCK_PROCESS_CPUTIME_ID
 * nanoseconds (both simulated time under the LWK). The
 * bench timestamps the two lines as they reach the console, which gives host time per call. Each
 * call goes directly through the named path, with no vDSO: `int80` executes INT 0x80; `sysenter`
 * executes SYSENTER with Linux's convention (EBP = the user stack), LWK-only: AMD CPUs have no
 * SYSENTER in compatibility mode and Linux returns from it to its vDSO; `libc` is
 * syscall(SYS_getpid), the C library's path (through the vDSO's __kernel_vsyscall natively, INT
 * 0x80 under the LWK, which has no vDSO). Every call must return the process's pid: otherwise
 * the program says so and exits 1. Exit status 2 on a bad argument. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t rdtsc(void) {
  uint32_t lo, hi;
  __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((uint64_t)hi << 32) | lo;
}

static long long now_ns(clockid_t clock) {
  struct timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Each loop returns the number of calls whose result was not `pid`. */
static unsigned loop_int80(unsigned n, int pid) {
  unsigned bad = 0;
  for (unsigned i = 0; i < n; i++) {
    int r;
    __asm__ volatile("int $0x80" : "=a"(r) : "0"(SYS_getpid) : "memory");
    bad += r != pid;
  }
  return bad;
}

static unsigned loop_sysenter(unsigned n, int pid) {
  unsigned bad = 0;
  for (unsigned i = 0; i < n; i++) {
    int r;
    __asm__ volatile("push %%ebp\n\tmov %%esp, %%ebp\n\tsysenter\n\tpop %%ebp"
                     : "=a"(r) : "0"(SYS_getpid) : "ecx", "edx", "memory");
    bad += r != pid;
  }
  return bad;
}

static unsigned loop_libc(unsigned n, int pid) {
  unsigned bad = 0;
  for (unsigned i = 0; i < n; i++) bad += syscall(SYS_getpid) != pid;
  return bad;
}

int main(int argc, char **argv) {
  char *end;
  unsigned long n = argc > 2 ? strtoul(argv[1], &end, 10) : 0;
  if (argc < 3 || *end != 0 || n == 0 || n > 1000000000UL) {
    fprintf(stderr, "usage: sysbench N int80|sysenter|libc...\n");
    return 2;
  }
  int pid = getpid();
  for (int a = 2; a < argc; a++) {
    const char *mode = argv[a];
    unsigned (*loop)(unsigned, int) = !strcmp(mode, "int80") ? loop_int80
                                      : !strcmp(mode, "sysenter") ? loop_sysenter
                                      : !strcmp(mode, "libc") ? loop_libc : 0;
    if (!loop) { fprintf(stderr, "sysbench: unknown mode '%s' (int80, sysenter, libc)\n", mode); return 2; }
    printf("begin %s\n", mode);
    fflush(stdout);
    long long u0 = now_ns(CLOCK_PROCESS_CPUTIME_ID), t0 = now_ns(CLOCK_MONOTONIC);
    uint64_t c0 = rdtsc();
    unsigned bad = loop(n, pid);
    uint64_t c1 = rdtsc();
    long long t1 = now_ns(CLOCK_MONOTONIC), u1 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (bad) { printf("%s: %u of %lu calls did not return the pid %d\n", mode, bad, n, pid); return 1; }
    printf("%s calls %lu cycles %llu ns %lld cpu_ns %lld\n", mode, n, (unsigned long long)(c1 - c0), t1 - t0, u1 - u0);
    fflush(stdout);
  }
  return 0;
}
