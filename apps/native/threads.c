/* threads: POSIX threads on clone(CLONE_VM|CLONE_THREAD|CLONE_SETTLS|...), futex and
 * set_tid_address. Modes (first argument):
 *   (none)  four workers with their own __thread data, a mutex-protected counter, a condvar
 *           hand-off between a producer and a consumer, pthread_join's results (through
 *           CLONE_CHILD_CLEARTID and FUTEX_WAKE at thread exit), gettid against getpid
 *   detach  the main thread leaves with pthread_exit; a detached thread ends the process
 *           with exit(3) (exit of one thread against exit_group)
 *   exec    while two threads spin, a third execs /proc/self/exe: the other threads end, the
 *           exec'ing thread takes the process's pid as its tid, the new program has threads too
 *   unmap   a thread reads a page in a loop while the main thread unmaps it: the next read
 *           faults (SIGSEGV ends the process), however long the reader's core cached the page
 *   group   three threads spin without system calls while a fourth ends the process with
 *           exit(5): exit_group stops threads that are running (on other cores, under the LWK)
 * Output depends only on the program, never on how threads interleave. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORKERS 4
#define ROUNDS 2000
#define ITEMS 50

static __thread int tls_id = -1;
static __thread char tls_name[16] = "unset";
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;
static int tid_distinct[WORKERS];
static int tls_ok[WORKERS];

static void *worker(void *arg) {
  int id = (int)(long)arg;
  tls_id = id;
  snprintf(tls_name, sizeof tls_name, "worker-%d", id);
  long tid = syscall(SYS_gettid);
  tid_distinct[id] = tid != getpid();
  for (int i = 0; i < ROUNDS; i++) {
    pthread_mutex_lock(&lock);
    counter += id + 1;
    pthread_mutex_unlock(&lock);
    if ((i & 255) == 0) sched_yield();
  }
  char want[16];
  snprintf(want, sizeof want, "worker-%d", id);
  tls_ok[id] = tls_id == id && strcmp(tls_name, want) == 0;
  return (void *)(long)(100 + id * id);
}

/* a one-slot queue: the producer waits until the slot is empty, the consumer until it is full */
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t qcond = PTHREAD_COND_INITIALIZER;
static int slot, full, done;

static void *producer(void *arg) {
  (void)arg;
  for (int i = 1; i <= ITEMS; i++) {
    pthread_mutex_lock(&qlock);
    while (full) pthread_cond_wait(&qcond, &qlock);
    slot = i * 7;
    full = 1;
    pthread_cond_broadcast(&qcond);
    pthread_mutex_unlock(&qlock);
  }
  pthread_mutex_lock(&qlock);
  while (full) pthread_cond_wait(&qcond, &qlock);
  done = 1;
  pthread_cond_broadcast(&qcond);
  pthread_mutex_unlock(&qlock);
  return NULL;
}

static void *consumer(void *arg) {
  long sum = 0;
  int n = 0;
  for (;;) {
    pthread_mutex_lock(&qlock);
    while (!full && !done) pthread_cond_wait(&qcond, &qlock);
    if (full) { sum += slot; n++; full = 0; pthread_cond_broadcast(&qcond); }
    int end = done && !full;
    pthread_mutex_unlock(&qlock);
    if (end) break;
  }
  *(long *)arg = sum * 1000 + n;
  return NULL;
}

static void *last_one(void *arg) {
  (void)arg;
  usleep(20000);
  printf("detached thread: the main thread is gone, exiting with 3\n");
  fflush(stdout);
  exit(3);
}

static volatile int spinning;

static void *spinner(void *arg) {
  (void)arg;
  __atomic_add_fetch(&spinning, 1, __ATOMIC_SEQ_CST);
  for (volatile unsigned long i = 0;; i++) {}
  return NULL;
}

static void *ender(void *arg) {
  (void)arg;
  while (__atomic_load_n(&spinning, __ATOMIC_SEQ_CST) < 3) sched_yield();
  printf("ender: three threads spin, exit(5)\n");
  fflush(stdout);
  exit(5);
}

static void *execer(void *arg) {
  while (__atomic_load_n(&spinning, __ATOMIC_SEQ_CST) < 2) sched_yield();
  char pid[16];
  snprintf(pid, sizeof pid, "%d", (int)getpid());
  fflush(stdout);
  execl("/proc/self/exe", "threads", "after-exec", pid, (char *)arg, (char *)NULL);
  return NULL;
}

static volatile int *page;
static int reader_ready, unmapped;

static void *reader(void *arg) {
  (void)arg;
  long sum = 0;
  __atomic_store_n(&reader_ready, 1, __ATOMIC_SEQ_CST);
  while (!__atomic_load_n(&unmapped, __ATOMIC_SEQ_CST)) sum += page[0];
  sum += page[0]; /* the page is gone: this read faults */
  printf("read after munmap: %ld\n", sum);
  fflush(stdout);
  exit(1);
}

static void *hello_thread(void *arg) { return (void *)((long)arg * 2); }

int main(int argc, char **argv) {
  tls_id = 99;
  strcpy(tls_name, "main");
  if (argc > 1 && strcmp(argv[1], "detach") == 0) {
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &a, last_one, NULL) != 0) return 20;
    printf("main thread: pthread_exit\n");
    fflush(stdout);
    pthread_exit(NULL);
  }
  if (argc > 1 && strcmp(argv[1], "exec") == 0) {
    pthread_t t;
    for (int i = 0; i < 2; i++) if (pthread_create(&t, NULL, spinner, NULL) != 0) return 20;
    if (pthread_create(&t, NULL, execer, "from a thread") != 0) return 21;
    pthread_join(t, NULL);
    return 22;
  }
  if (argc > 3 && strcmp(argv[1], "after-exec") == 0) {
    int same = getpid() == atoi(argv[2]);
    printf("after exec (%s): same pid %s, tid is the pid %s\n", argv[3], same ? "yes" : "no",
           syscall(SYS_gettid) == getpid() ? "yes" : "no");
    pthread_t t;
    void *ret;
    if (pthread_create(&t, NULL, hello_thread, (void *)21L) != 0 || pthread_join(t, &ret) != 0) return 23;
    printf("a thread of the new program returned %ld\n", (long)ret);
    return 4;
  }
  if (argc > 1 && strcmp(argv[1], "unmap") == 0) {
    page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return 30;
    page[0] = 1;
    pthread_t t;
    if (pthread_create(&t, NULL, reader, NULL) != 0) return 31;
    while (!__atomic_load_n(&reader_ready, __ATOMIC_SEQ_CST)) sched_yield();
    usleep(10000);
    printf("unmapping the page the reader reads\n");
    fflush(stdout);
    munmap((void *)page, 4096);
    __atomic_store_n(&unmapped, 1, __ATOMIC_SEQ_CST);
    pthread_join(t, NULL);
    return 32;
  }
  if (argc > 1 && strcmp(argv[1], "group") == 0) {
    pthread_t t;
    for (int i = 0; i < 3; i++) if (pthread_create(&t, NULL, spinner, NULL) != 0) return 20;
    if (pthread_create(&t, NULL, ender, NULL) != 0) return 21;
    pthread_join(t, NULL);
    return 22;
  }
  pthread_t th[WORKERS];
  for (int i = 0; i < WORKERS; i++)
    if (pthread_create(&th[i], NULL, worker, (void *)(long)i) != 0) return 10;
  for (int i = 0; i < WORKERS; i++) {
    void *ret;
    if (pthread_join(th[i], &ret) != 0) return 11;
    printf("worker %d: returned %ld, tid differs from pid: %s, tls intact: %s\n", i, (long)ret,
           tid_distinct[i] ? "yes" : "no", tls_ok[i] ? "yes" : "no");
  }
  long expect = 0;
  for (int i = 0; i < WORKERS; i++) expect += (long)(i + 1) * ROUNDS;
  printf("counter %ld (expected %ld)\n", counter, expect);
  printf("main tls after the workers: id %d name %s\n", tls_id, tls_name);

  pthread_t p, c;
  long result = 0;
  if (pthread_create(&c, NULL, consumer, &result) != 0) return 12;
  if (pthread_create(&p, NULL, producer, NULL) != 0) return 13;
  pthread_join(p, NULL);
  pthread_join(c, NULL);
  printf("condvar queue: sum %ld items %ld\n", result / 1000, result % 1000);
  return counter == expect ? 0 : 1;
}
