/* clock: the clocks and sleeping. Sleeps with nanosleep and clock_nanosleep and checks that
 * the monotonic clock moved at least that far; checks the wall clock is past 2000-01-01 and
 * that time(), gettimeofday() and clock_gettime(CLOCK_REALTIME) agree; sched_yield. */
#include <sched.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void) {
  struct timespec a, b, req = { 0, 3000000 };
  clock_gettime(CLOCK_MONOTONIC, &a);
  if (nanosleep(&req, NULL) != 0) { puts("nanosleep failed"); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("nanosleep 3 ms: monotonic moved at least 3 ms: %s\n", ns(b) - ns(a) >= 3000000 ? "yes" : "no");
  struct timespec dl = b;
  dl.tv_nsec += 2000000;
  if (dl.tv_nsec >= 1000000000) { dl.tv_sec++; dl.tv_nsec -= 1000000000; }
  if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) != 0) { puts("clock_nanosleep failed"); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &a);
  printf("clock_nanosleep to an absolute deadline: reached: %s\n", ns(a) >= ns(dl) ? "yes" : "no");
  struct timeval tv;
  gettimeofday(&tv, NULL);
  time_t t = time(NULL);
  clock_gettime(CLOCK_REALTIME, &a);
  printf("wall clock after 2000-01-01: %s\n", t >= 946684800 ? "yes" : "no");
  printf("time, gettimeofday and CLOCK_REALTIME agree: %s\n", (tv.tv_sec - t) <= 1 && (t - tv.tv_sec) <= 1 && a.tv_sec - t <= 1 && t - a.tv_sec <= 1 ? "yes" : "no");
  printf("sched_yield %d\n", sched_yield());
  struct timespec res;
  printf("clock_getres(CLOCK_MONOTONIC) %d\n", clock_getres(CLOCK_MONOTONIC, &res));
  return 0;
}
