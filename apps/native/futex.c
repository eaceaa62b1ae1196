/* futex: the futex operations through syscall(2), each result printed (errno names, counts,
 * word values): WAIT on a changed word (EAGAIN), a relative timeout (ETIMEDOUT), WAKE with
 * nobody waiting, bitsets (a wake with a disjoint bitset wakes nobody), WAKE_OP's update of the
 * second word, CMP_REQUEUE's compare, REQUEUE moving waiters to a second futex, and bad
 * arguments (EINVAL). Helper threads park on futexes; the main thread waits until they are
 * asleep by polling with FUTEX_WAKE counts, so the output never depends on timing. */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long fx(uint32_t *uaddr, int op, uint32_t val, const struct timespec *t, uint32_t *uaddr2, uint32_t val3) {
  return syscall(SYS_futex, uaddr, op, val, t, uaddr2, val3);
}

static const char *res(long r) {
  static char buf[32];
  if (r >= 0) { snprintf(buf, sizeof buf, "%ld", r); return buf; }
  switch (errno) {
    case EAGAIN: return "EAGAIN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EINVAL: return "EINVAL";
    case EINTR: return "EINTR";
    case ENOSYS: return "ENOSYS";
    default: snprintf(buf, sizeof buf, "errno %d", errno); return buf;
  }
}

static uint32_t word_a, word_b, asleep;
static uint32_t results[8];

struct waiter { uint32_t *word; uint32_t bitset; int slot; };

static void *wait_thread(void *arg) {
  struct waiter *w = arg;
  __atomic_add_fetch(&asleep, 1, __ATOMIC_SEQ_CST);
  long r = w->bitset ? fx(w->word, FUTEX_WAIT_BITSET_PRIVATE, 0, NULL, NULL, w->bitset)
                     : fx(w->word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
  results[w->slot] = r == 0 ? 1 : 100 + errno;
  return NULL;
}

/* wakes `n` waiters of `word` once they are all asleep (retrying a zero count until they are) */
static long wake_when_asleep(uint32_t *word, int op, int n, uint32_t bitset) {
  long got = 0;
  for (int tries = 0; tries < 100000 && got < n; tries++) {
    long r = fx(word, op, n - got, NULL, NULL, bitset);
    if (r < 0) return r;
    got += r;
    if (got < n) usleep(1000);
  }
  return got;
}

int main(void) {
  uint32_t w = 5;
  struct timespec ts = { 0, 20 * 1000 * 1000 };
  printf("WAIT on a word that changed: %s\n", res(fx(&w, FUTEX_WAIT_PRIVATE, 4, NULL, NULL, 0)));
  printf("WAIT 20 ms: %s\n", res(fx(&w, FUTEX_WAIT_PRIVATE, 5, &ts, NULL, 0)));
  printf("WAKE with nobody waiting: %s\n", res(fx(&w, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  printf("WAIT_BITSET with bitset 0: %s\n", res(fx(&w, FUTEX_WAIT_BITSET_PRIVATE, 5, NULL, NULL, 0)));
  printf("WAKE_BITSET with bitset 0: %s\n", res(fx(&w, FUTEX_WAKE_BITSET_PRIVATE, 1, NULL, NULL, 0)));
  printf("unaligned WAKE: %s\n", res(fx((uint32_t *)((char *)&w + 1), FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0)));
  printf("unknown op: %s\n", res(fx(&w, 99 | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0)));
  uint32_t other = 3;
  printf("CMP_REQUEUE with a changed word: %s\n", res(fx(&w, FUTEX_CMP_REQUEUE_PRIVATE, 1, (void *)1, &other, 4)));
  /* WAKE_OP: other = other + 4, then wake other's waiters if its old value was > 2 */
  uint32_t op = FUTEX_OP(FUTEX_OP_ADD, 4, FUTEX_OP_CMP_GT, 2);
  long r = fx(&w, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &other, op);
  printf("WAKE_OP: %s, second word now %u\n", res(r), other);
  op = FUTEX_OP(FUTEX_OP_OR, 3, FUTEX_OP_CMP_EQ, 0) | (FUTEX_OP_OPARG_SHIFT << 28);
  r = fx(&w, FUTEX_WAKE_OP_PRIVATE, 1, (void *)1, &other, op);
  printf("WAKE_OP with OPARG_SHIFT: %s, second word now %u\n", res(r), other);

  /* two waiters with bitsets 1 and 2: a wake with bitset 4 wakes nobody, bitset 2 wakes one */
  pthread_t t[4];
  struct waiter ws[4] = { { &word_a, 1, 0 }, { &word_a, 2, 1 }, { &word_b, 0, 2 }, { &word_b, 0, 3 } };
  for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, wait_thread, &ws[i]);
  while (__atomic_load_n(&asleep, __ATOMIC_SEQ_CST) < 2) usleep(1000);
  usleep(20000);
  printf("WAKE_BITSET 4 with waiters on bitsets 1 and 2: %s\n", res(fx(&word_a, FUTEX_WAKE_BITSET_PRIVATE, 10, NULL, NULL, 4)));
  printf("WAKE_BITSET 2: %ld woken\n", wake_when_asleep(&word_a, FUTEX_WAKE_BITSET_PRIVATE, 1, 2));
  pthread_join(t[1], NULL);
  printf("waiter on bitset 2: %s, waiter on bitset 1 still asleep: %s\n", results[1] == 1 ? "woken" : "not woken",
         results[0] == 0 ? "yes" : "no");
  printf("WAKE (any bitset): %ld woken\n", wake_when_asleep(&word_a, FUTEX_WAKE_PRIVATE, 1, 0));
  pthread_join(t[0], NULL);

  /* two waiters on word_b: REQUEUE wakes none and moves both to word_a, where WAKE finds them */
  for (int i = 2; i < 4; i++) pthread_create(&t[i], NULL, wait_thread, &ws[i]);
  while (__atomic_load_n(&asleep, __ATOMIC_SEQ_CST) < 4) usleep(1000);
  usleep(20000);
  long moved = 0;
  for (int tries = 0; tries < 100000 && moved < 2; tries++) {
    long r = fx(&word_b, FUTEX_REQUEUE_PRIVATE, 0, (void *)(long)(2 - moved), &word_a, 0);
    if (r < 0) { printf("REQUEUE: %s\n", res(r)); return 1; }
    moved += r;
    if (moved < 2) usleep(1000);
  }
  printf("REQUEUE word_b -> word_a: %ld moved\n", moved);
  printf("WAKE on word_b after the move: %s\n", res(fx(&word_b, FUTEX_WAKE_PRIVATE, 10, NULL, NULL, 0)));
  printf("WAKE on word_a: %ld woken\n", wake_when_asleep(&word_a, FUTEX_WAKE_PRIVATE, 2, 0));
  pthread_join(t[2], NULL);
  pthread_join(t[3], NULL);
  printf("requeued waiters: %s %s\n", results[2] == 1 ? "woken" : "not woken", results[3] == 1 ? "woken" : "not woken");
  return 0;
}
