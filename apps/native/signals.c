/* Signals: user handlers and their frames, sigreturn, masks, SA_* flags, default actions,
 * SIGPIPE, SIGSEGV handled, kill/raise (issue 5); per-thread masks and pending sets, and the
 * waits a signal interrupts (nanosleep, clock_nanosleep, futex). Usage: signals MODE; every
 * mode prints what it saw (no addresses, no pids) so that the output is the same natively and
 * under the LWK. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int count, last_sig, order[8], norder;
static volatile int info_code, info_signo, info_pid_ok, uc_mask_usr2;
static sigjmp_buf jb;

static void on_sig(int s) { count++; last_sig = s; if (norder < 8) order[norder++] = s; }

static void on_usr1_nested(int s) { order[norder++] = s; raise(SIGUSR2); order[norder++] = -s; }

static void on_info(int s, siginfo_t *si, void *ucv) {
  ucontext_t *uc = ucv;
  info_signo = si->si_signo; info_code = si->si_code; info_pid_ok = si->si_pid == getpid();
  uc_mask_usr2 = sigismember(&uc->uc_sigmask, SIGUSR2);
  count++;
}

static void on_segv(int s, siginfo_t *si, void *uc) {
  (void)uc;
  printf("SIGSEGV handler: signo %d code %d addr %#lx\n", s, si->si_code, (unsigned long)si->si_addr);
  siglongjmp(jb, 1);
}

/* Where the kernel put things: distances inside the signal frame, the frame's alignment. */
static volatile long d_info, d_uc, align_rt, align_old, sc_eip_ok, uc_eip_ok;
static void frame_rt(int sig, siginfo_t *si, void *uc) {
  d_info = (char *)si - (char *)&sig; d_uc = (char *)uc - (char *)si; align_rt = (unsigned long)&sig % 16;
  uc_eip_ok = ((ucontext_t *)uc)->uc_mcontext.gregs[REG_EIP] != 0 && ((ucontext_t *)uc)->uc_mcontext.gregs[REG_ESP] > (long)&sig;
}
static void frame_old(int sig) {
  align_old = (unsigned long)__builtin_frame_address(0) % 16; /* ebp = the frame's address - 8 */
  /* the sigcontext follows sig (above the return address and sig): gs fs es ds edi esi ebp esp ebx edx ecx eax trapno err eip */
  volatile unsigned long *sc = (volatile unsigned long *)__builtin_frame_address(0) + 3;
  sc_eip_ok = sc[14] != 0 && sc[7] > (unsigned long)sc && sig == SIGUSR2;
}
struct kact { void (*handler)(int); unsigned long flags; void (*restorer)(void); unsigned long long mask; };

static void set(int sig, void (*h)(int), int flags) {
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_handler = h; sa.sa_flags = flags; sigemptyset(&sa.sa_mask);
  if (sigaction(sig, &sa, 0) != 0) { perror("sigaction"); exit(99); }
}

/* Registers across a signal: a computation in registers with signals arriving in the middle. */
static unsigned regs_across(void) {
  unsigned a = 1, b = 2, c = 3, d = 4, e = 5;
  for (int i = 0; i < 50; i++) {
    if (i % 7 == 0) raise(SIGUSR1);
    a = a * 33 + b; b ^= c << 3; c += d * 7; d = d * 5 + e; e += a >> 3;
  }
  return a ^ b ^ c ^ d ^ e;
}

/* ---- threads and signals: per-thread masks, process- and thread-directed signals ---- */

static volatile pid_t last_tid, wtid;
static sem_t ready;
static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }
static void on_tid(int s) { last_tid = gettid_(); last_sig = s; count++; }
static void block_sig(int how, int s1, int s2) {
  sigset_t s; sigemptyset(&s); sigaddset(&s, s1); if (s2) sigaddset(&s, s2);
  pthread_sigmask(how, &s, 0);
}
static int blocks(int sig) { sigset_t cur; pthread_sigmask(SIG_SETMASK, 0, &cur); return sigismember(&cur, sig); }
static int is_pending(int sig) { sigset_t p; sigpending(&p); return sigismember(&p, sig); }

/* A thread made with clone(2) directly, so that nothing in the C library sets its mask: what the
 * kernel gave it is what it sees. It records its mask, blocks SIGHUP for itself, and exits. */
#define RAW_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID)
static volatile int raw_tid;
static volatile unsigned long long raw_seen;
static char raw_stack[16384] __attribute__((aligned(16)));
static void __attribute__((noreturn, noinline, used)) raw_child(void) {
  unsigned long long old = 0, hup = 1ull << (SIGHUP - 1);
  long r;
  __asm__ volatile("int $0x80" : "=a"(r) : "0"(SYS_rt_sigprocmask), "b"(SIG_BLOCK), "c"(&hup), "d"(&old), "S"(8) : "memory");
  raw_seen = old;
  __asm__ volatile("int $0x80" : : "a"(SYS_exit), "b"(0) : "memory");
  __builtin_unreachable();
}
static long raw_thread(void) {
  long r;
  __asm__ volatile("int $0x80\n\t"
                   "testl %%eax, %%eax\n\t"
                   "jnz 1f\n\t"
                   "call *%%esi\n\t" /* the new thread, on its own stack */
                   "hlt\n"
                   "1:"
                   : "=a"(r)
                   : "0"(SYS_clone), "b"(RAW_FLAGS), "c"(raw_stack + sizeof raw_stack), "d"(&raw_tid), "S"(raw_child), "D"(&raw_tid)
                   : "memory");
  if (r > 0) { int t; while ((t = raw_tid) != 0) syscall(SYS_futex, &raw_tid, FUTEX_WAIT, t, 0, 0, 0); }
  return r;
}

static void *fork_from_thread(void *a) {
  (void)a;
  block_sig(SIG_BLOCK, SIGUSR1, 0);
  pid_t c = fork();
  if (c == 0) { printf("fork from a thread: the child blocks usr1 %d\n", blocks(SIGUSR1)); _exit(0); }
  int st; waitpid(c, &st, 0);
  return 0;
}

static void *mask_thread(void *a) {
  (void)a;
  printf("pthread: starts with usr2 blocked %d\n", blocks(SIGUSR2));
  block_sig(SIG_BLOCK, SIGTERM, 0);
  return 0;
}

static void *suspender(void *a) {
  (void)a;
  wtid = gettid_();
  sem_post(&ready);
  sigset_t none; sigemptyset(&none);
  sigsuspend(&none);
  return 0;
}

static void msleep(int ms);

static volatile int spin_flag;
static void on_spin(int s) { last_tid = gettid_(); last_sig = s; spin_flag = 1; }
static void *spinner(void *a) {
  (void)a;
  block_sig(SIG_UNBLOCK, SIGUSR1, 0);
  wtid = gettid_();
  sem_post(&ready);
  while (!spin_flag) { }
  return 0;
}

static void *killer(void *a) {
  (void)a;
  msleep(50);
  kill(getpid(), SIGUSR1); /* main does not block it either: main, the one named, takes it */
  return 0;
}

static volatile pid_t usr1_tid, usr2_tid;
static volatile int w_usr2_pending;
static void *tg_worker(void *a) {
  (void)a;
  block_sig(SIG_BLOCK, SIGUSR1, SIGUSR2);
  wtid = gettid_();
  sem_post(&ready);
  sigset_t m; pthread_sigmask(SIG_SETMASK, 0, &m); sigdelset(&m, SIGUSR1);
  sigsuspend(&m); /* SIGUSR1 only: SIGUSR2 stays blocked */
  usr1_tid = last_tid;
  w_usr2_pending = is_pending(SIGUSR2);
  block_sig(SIG_UNBLOCK, SIGUSR2, 0); /* taken here */
  usr2_tid = last_tid;
  return 0;
}

/* ---- waits interrupted by signals: a helper thread signals the main thread after a delay ---- */

struct shot { pthread_t target; int sig; int ms; int *word; };
static void msleep(int ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) { }
}
static void *shooter(void *arg) {
  struct shot *s = arg;
  msleep(s->ms);
  pthread_kill(s->target, s->sig);
  if (s->word != 0) {
    msleep(s->ms);
    __atomic_store_n(s->word, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, s->word, FUTEX_WAKE_PRIVATE, 1, 0, 0, 0);
  }
  return 0;
}
static struct shot shot_;
static pthread_t shoot(int sig, int ms, int *word) {
  pthread_t th;
  shot_ = (struct shot){ pthread_self(), sig, ms, word };
  if (pthread_create(&th, 0, shooter, &shot_) != 0) { perror("pthread_create"); exit(97); }
  return th;
}
static const char *res(long r, int e) { return r == 0 ? "ok" : strerror(e); }
static int fword;
static long fwait(int op, const struct timespec *ts, unsigned bits) {
  return syscall(SYS_futex, &fword, op | FUTEX_PRIVATE_FLAG, 0, ts, 0, bits);
}
static struct timespec mono_in(int sec) {
  struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); t.tv_sec += sec; return t;
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "handler";
  setvbuf(stdout, 0, _IONBF, 0);
  if (!strcmp(m, "handler")) {
    set(SIGUSR1, on_sig, 0);
    unsigned r = regs_across();
    printf("handler ran %d times, last %d, result %u\n", count, last_sig, r);
    set(SIGUSR1, on_sig, SA_SIGINFO & 0);
    kill(getpid(), SIGUSR1);
    printf("after kill: %d\n", count);
    return 0;
  }
  if (!strcmp(m, "siginfo")) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_info; sa.sa_flags = SA_SIGINFO; sigemptyset(&sa.sa_mask); sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, 0);
    sigset_t s; sigemptyset(&s); sigaddset(&s, SIGUSR2); sigprocmask(SIG_BLOCK, &s, 0);
    raise(SIGUSR1);
    printf("signo %d code %d pid-ok %d saved-mask-has-usr2 %d count %d\n", info_signo, info_code, info_pid_ok, uc_mask_usr2, count);
    syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1);
    printf("tgkill: signo %d code %d count %d\n", info_signo, info_code, count);
    sigset_t cur; sigprocmask(SIG_SETMASK, 0, &cur);
    printf("mask after: usr1 %d usr2 %d\n", sigismember(&cur, SIGUSR1), sigismember(&cur, SIGUSR2));
    return 0;
  }
  if (!strcmp(m, "mask")) {
    set(SIGUSR1, on_sig, 0); set(SIGUSR2, on_sig, 0);
    sigset_t s, p; sigemptyset(&s); sigaddset(&s, SIGUSR1); sigaddset(&s, SIGUSR2);
    sigprocmask(SIG_BLOCK, &s, 0);
    raise(SIGUSR2); raise(SIGUSR1); raise(SIGUSR1);
    sigpending(&p);
    printf("blocked: count %d pending usr1 %d usr2 %d term %d\n", count, sigismember(&p, SIGUSR1), sigismember(&p, SIGUSR2), sigismember(&p, SIGTERM));
    sigprocmask(SIG_UNBLOCK, &s, 0);
    printf("unblocked: count %d order", count);
    for (int i = 0; i < norder; i++) printf(" %d", order[i]);
    printf("\n");
    return 0;
  }
  if (!strcmp(m, "nested")) {
    set(SIGUSR1, on_usr1_nested, 0); set(SIGUSR2, on_sig, 0);
    raise(SIGUSR1);
    printf("order");
    for (int i = 0; i < norder; i++) printf(" %d", order[i]);
    printf("\n");
    return 0;
  }
  if (!strcmp(m, "resethand")) {
    set(SIGUSR1, on_sig, SA_RESETHAND | SA_NODEFER);
    raise(SIGUSR1);
    struct sigaction old; sigaction(SIGUSR1, 0, &old);
    printf("count %d, handler now default %d\n", count, old.sa_handler == SIG_DFL);
    raise(SIGUSR1);
    printf("not reached\n");
    return 0;
  }
  if (!strcmp(m, "ignore")) {
    signal(SIGTERM, SIG_IGN);
    raise(SIGTERM);
    printf("ignored SIGTERM\n");
    signal(SIGTERM, SIG_DFL);
    raise(SIGCHLD); raise(SIGWINCH); raise(SIGURG);
    printf("default-ignored signals ignored\n");
    raise(SIGTERM);
    printf("not reached\n");
    return 0;
  }
  if (!strcmp(m, "sigpipe")) {
    int fd[2];
    if (pipe(fd) != 0) return 98;
    close(fd[0]);
    signal(SIGPIPE, SIG_IGN);
    ssize_t n = write(fd[1], "x", 1);
    printf("ignored: write %zd errno %s\n", n, strerror(errno));
    signal(SIGPIPE, on_sig);
    n = write(fd[1], "x", 1);
    printf("handled: write %zd errno %s, handler count %d sig %d\n", n, strerror(errno), count, last_sig);
    signal(SIGPIPE, SIG_DFL);
    write(fd[1], "x", 1);
    printf("not reached\n");
    return 0;
  }
  if (!strcmp(m, "segv")) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv; sa.sa_flags = SA_SIGINFO; sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, 0);
    if (sigsetjmp(jb, 1) == 0) { *(volatile int *)16 = 1; printf("not reached\n"); }
    printf("recovered\n");
    sigset_t cur; sigprocmask(SIG_SETMASK, 0, &cur);
    printf("segv blocked after longjmp: %d\n", sigismember(&cur, SIGSEGV));
    return 0;
  }
  if (!strcmp(m, "restart") || !strcmp(m, "eintr")) {
    int fd[2];
    if (pipe(fd) != 0) return 98;
    set(SIGUSR1, on_sig, !strcmp(m, "restart") ? SA_RESTART : 0);
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
      struct timespec ts = {0, 50 * 1000 * 1000};
      nanosleep(&ts, 0);
      kill(parent, SIGUSR1);
      nanosleep(&ts, 0);
      write(fd[1], "data", 4);
      _exit(0);
    }
    char buf[8];
    ssize_t n = read(fd[0], buf, sizeof buf);
    int e = errno;
    printf("read %zd (%s), handler count %d\n", n, n < 0 ? strerror(e) : "ok", count);
    int st; waitpid(c, &st, 0);
    printf("child status %d\n", WEXITSTATUS(st));
    return 0;
  }
  if (!strcmp(m, "child")) {
    /* a child killed by a signal: the parent sees it in the status */
    pid_t c = fork();
    if (c == 0) { raise(SIGTERM); _exit(1); }
    int st; waitpid(c, &st, 0);
    printf("child signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));
    return 0;
  }
  if (!strcmp(m, "frame")) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = frame_rt; sa.sa_flags = SA_SIGINFO; sigaction(SIGUSR1, &sa, 0);
    set(SIGUSR2, frame_old, 0);
    raise(SIGUSR1); raise(SIGUSR2);
    printf("rt frame: info at &sig+%ld, uc at info+%ld, &sig %% 16 = %ld, saved eip/esp sane %ld\n", d_info, d_uc, align_rt, uc_eip_ok);
    printf("old frame: ebp %% 16 = %ld, sigcontext eip/esp sane %ld\n", align_old, sc_eip_ok);
    return 0;
  }
  if (!strcmp(m, "norestorer")) {
    /* rt_sigaction without SA_RESTORER: the kernel provides the return path itself */
    struct kact a = { on_sig, 0, 0, 0 };
    long r = syscall(SYS_rt_sigaction, SIGUSR1, &a, 0, 8);
    raise(SIGUSR1); raise(SIGUSR1);
    printf("rt_sigaction %ld, handler ran %d times\n", r, count);
    return 0;
  }
  if (!strcmp(m, "sigchld")) {
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_info; sa.sa_flags = SA_SIGINFO | SA_RESTART; sigaction(SIGCHLD, &sa, 0);
    pid_t c = fork();
    if (c == 0) _exit(5);
    int st; pid_t w = waitpid(c, &st, 0);
    printf("waitpid ok %d status %d; SIGCHLD handler count %d signo %d code %d\n", w == c, WEXITSTATUS(st), count, info_signo, info_code);
    return 0;
  }
  if (!strcmp(m, "thread-mask")) {
    /* the mask is per thread: a new thread starts with its creator's, changes only its own */
    block_sig(SIG_BLOCK, SIGUSR2, 0);
    long r = raw_thread();
    printf("clone: ok %d, the new thread started with usr2 blocked %d, hup %d\n", r > 0,
           (int)((raw_seen >> (SIGUSR2 - 1)) & 1), (int)((raw_seen >> (SIGHUP - 1)) & 1));
    printf("its SIGHUP block stayed its own: main blocks hup %d\n", blocks(SIGHUP));
    pthread_t th;
    pthread_create(&th, 0, mask_thread, 0); pthread_join(th, 0);
    printf("main blocks term %d (the thread blocked it for itself)\n", blocks(SIGTERM));
    pthread_create(&th, 0, fork_from_thread, 0); pthread_join(th, 0);
    printf("main blocks usr1 %d, usr2 %d\n", blocks(SIGUSR1), blocks(SIGUSR2));
    return 0;
  }
  if (!strcmp(m, "thread-kill")) {
    /* a signal sent to the process goes to a thread that does not block it */
    set(SIGUSR1, on_tid, 0);
    sem_init(&ready, 0, 0);
    block_sig(SIG_BLOCK, SIGUSR1, 0);
    pthread_t th;
    pthread_create(&th, 0, suspender, 0);
    sem_wait(&ready);
    kill(getpid(), SIGUSR1);
    pthread_join(th, 0);
    printf("kill: taken by the thread in sigsuspend %d, by main %d, count %d, still pending %d\n",
           last_tid == wtid, last_tid == getpid(), count, is_pending(SIGUSR1));
    set(SIGUSR1, on_spin, 0);
    pthread_create(&th, 0, spinner, 0);
    sem_wait(&ready);
    kill(getpid(), SIGUSR1);
    pthread_join(th, 0);
    printf("kill: taken by the spinning thread %d, by main %d\n", last_tid == wtid, last_tid == getpid());
    set(SIGUSR1, on_tid, 0);
    block_sig(SIG_UNBLOCK, SIGUSR1, 0);
    last_tid = 0;
    pthread_create(&th, 0, killer, 0);
    struct timespec req = { 10, 0 };
    int r = nanosleep(&req, 0); int e = errno;
    pthread_join(th, 0);
    printf("kill from a thread while main sleeps: nanosleep %d (%s), taken by main %d\n", r, r == 0 ? "ok" : strerror(e), last_tid == getpid());
    return 0;
  }
  if (!strcmp(m, "thread-tgkill")) {
    /* tgkill names one thread: the signal waits for that thread, in its own pending set */
    set(SIGUSR1, on_tid, 0); set(SIGUSR2, on_tid, 0);
    sem_init(&ready, 0, 0);
    pthread_t th;
    pthread_create(&th, 0, tg_worker, 0);
    sem_wait(&ready);
    syscall(SYS_tgkill, getpid(), wtid, SIGUSR2);
    int main_sees = is_pending(SIGUSR2);
    syscall(SYS_tgkill, getpid(), wtid, SIGUSR1);
    pthread_join(th, 0);
    printf("tgkill: usr1 ran on the worker %d; usr2 pending for the worker %d, for main %d; usr2 ran on the worker once unblocked %d; count %d\n",
           usr1_tid == wtid, w_usr2_pending, main_sees, usr2_tid == wtid, count);
    syscall(SYS_tgkill, getpid(), getpid(), SIGUSR1);
    printf("tgkill to main: ran on main %d, count %d\n", last_tid == getpid(), count);
    return 0;
  }
  if (!strcmp(m, "sleep")) {
    /* nanosleep and clock_nanosleep end with EINTR when a handler runs, SA_RESTART or not */
    struct timespec req = { 10, 0 }, rem = { -1, -1 };
    set(SIGUSR1, on_sig, 0);
    pthread_t th = shoot(SIGUSR1, 50, 0);
    int r = nanosleep(&req, &rem); int e = errno;
    pthread_join(th, 0);
    printf("nanosleep %d (%s), rem 9.x s %d, handler count %d\n", r, res(r, e), rem.tv_sec == 9 && rem.tv_nsec > 0, count);
    set(SIGUSR1, on_sig, SA_RESTART);
    rem.tv_sec = -1;
    th = shoot(SIGUSR1, 50, 0);
    long lr = syscall(SYS_nanosleep, &req, &rem); e = errno;
    pthread_join(th, 0);
    printf("SA_RESTART: nanosleep(2) %ld (%s), rem 9.x s %d, handler count %d\n", lr, res(lr, e), rem.tv_sec == 9 && rem.tv_nsec > 0, count);
    struct timespec until = mono_in(10);
    rem.tv_sec = -1; rem.tv_nsec = -1;
    th = shoot(SIGUSR1, 50, 0);
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, &rem);
    pthread_join(th, 0);
    printf("SA_RESTART: clock_nanosleep(TIMER_ABSTIME) %s, rem untouched %d, handler count %d\n", res(r, r), rem.tv_sec == -1 && rem.tv_nsec == -1, count);
    req.tv_sec = 10;
    th = shoot(SIGUSR1, 50, 0);
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem);
    pthread_join(th, 0);
    printf("SA_RESTART: clock_nanosleep (relative) %s, rem 9.x s %d, handler count %d\n", res(r, r), rem.tv_sec == 9 && rem.tv_nsec > 0, count);
    /* a signal that is ignored, or blocked, does not end the sleep */
    struct timespec shortreq = { 0, 200 * 1000 * 1000 };
    th = shoot(SIGWINCH, 50, 0);
    r = nanosleep(&shortreq, 0); e = errno;
    pthread_join(th, 0);
    printf("SIGWINCH (ignored): nanosleep %d (%s)\n", r, res(r, e));
    set(SIGUSR2, on_sig, 0);
    block_sig(SIG_BLOCK, SIGUSR2, 0);
    th = shoot(SIGUSR2, 50, 0);
    r = nanosleep(&shortreq, 0); e = errno;
    pthread_join(th, 0);
    printf("SIGUSR2 (blocked): nanosleep %d (%s), pending %d, handler count %d\n", r, res(r, e), is_pending(SIGUSR2), count);
    block_sig(SIG_UNBLOCK, SIGUSR2, 0);
    printf("unblocked: handler count %d, last %d\n", count, last_sig);
    return 0;
  }
  if (!strcmp(m, "futex")) {
    /* FUTEX_WAIT: a handler without SA_RESTART ends it with EINTR; with SA_RESTART a wait with
     * no timeout goes on (Linux's -ERESTARTSYS), one with a timeout ends with EINTR */
    set(SIGUSR1, on_sig, 0);
    fword = 0;
    pthread_t th = shoot(SIGUSR1, 50, 0);
    long r = fwait(FUTEX_WAIT, 0, 0); int e = errno;
    pthread_join(th, 0);
    printf("FUTEX_WAIT: %ld (%s), handler count %d\n", r, res(r, e), count);
    set(SIGUSR1, on_sig, SA_RESTART);
    fword = 0;
    th = shoot(SIGUSR1, 50, &fword);
    r = fwait(FUTEX_WAIT, 0, 0); e = errno;
    pthread_join(th, 0);
    printf("SA_RESTART: FUTEX_WAIT %ld (%s), handler count %d, word %d\n", r, res(r, e), count, fword);
    fword = 0;
    struct timespec rel = { 10, 0 };
    th = shoot(SIGUSR1, 50, 0);
    r = fwait(FUTEX_WAIT, &rel, 0); e = errno;
    pthread_join(th, 0);
    printf("SA_RESTART: FUTEX_WAIT with a timeout %ld (%s), handler count %d\n", r, res(r, e), count);
    struct timespec abs = mono_in(10);
    th = shoot(SIGUSR1, 50, 0);
    r = fwait(FUTEX_WAIT_BITSET, &abs, FUTEX_BITSET_MATCH_ANY); e = errno;
    pthread_join(th, 0);
    printf("SA_RESTART: FUTEX_WAIT_BITSET with a deadline %ld (%s), handler count %d\n", r, res(r, e), count);
    th = shoot(SIGWINCH, 50, 0);
    rel.tv_sec = 0; rel.tv_nsec = 200 * 1000 * 1000;
    r = fwait(FUTEX_WAIT, &rel, 0); e = errno;
    pthread_join(th, 0);
    printf("SIGWINCH (ignored): FUTEX_WAIT %ld (%s)\n", r, res(r, e));
    return 0;
  }
  if (!strcmp(m, "term")) { kill(getpid(), SIGTERM); return 1; }
  if (!strcmp(m, "kill")) { raise(SIGKILL); return 1; }
  if (!strcmp(m, "usr1")) { raise(SIGUSR1); return 1; }
  fprintf(stderr, "signals: unknown mode %s\n", m);
  return 2;
}
