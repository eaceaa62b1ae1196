/* Signals: user handlers and their frames, sigreturn, masks, SA_* flags, default actions,
 * SIGPIPE, SIGSEGV handled, kill/raise (issue 5). Usage: signals MODE; every mode prints what
 * it saw (no addresses, no pids) so that the output is the same natively and under the LWK. */
#define _GNU_SOURCE
#include <errno.h>
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
  if (!strcmp(m, "term")) { kill(getpid(), SIGTERM); return 1; }
  if (!strcmp(m, "kill")) { raise(SIGKILL); return 1; }
  if (!strcmp(m, "usr1")) { raise(SIGUSR1); return 1; }
  fprintf(stderr, "signals: unknown mode %s\n", m);
  return 2;
}
