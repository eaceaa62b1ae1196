/* procs: processes. Modes (first argument):
 *   fork     children one at a time: each prints, checks getppid and exits with its own
 *            status; the parent waits for each by pid (exit code << 8)
 *   any      three children at once, reaped with wait(-1) (statuses sorted), then ECHILD
 *   exec     fork, then the child execs /proc/self/exe with arguments; O_CLOEXEC descriptors are
 *            closed by exec, others stay open; a handled signal is reset to SIG_DFL, an ignored
 *            one stays ignored
 *   vfork    vfork: the parent sleeps until the child calls _exit
 *   wnohang  waitpid(WNOHANG) before and after a child ends
 *   signal   a child killed by SIGSEGV: WIFSIGNALED and WTERMSIG
 *   memory   the child's memory is a copy: writes on either side stay on that side
 *   sigchld  a SA_SIGINFO handler for SIGCHLD sees the child's pid, CLD_EXITED and its status
 *   waitid   waitid: WNOWAIT leaves the child waitable, CLD_EXITED/CLD_KILLED and si_status,
 *            WNOHANG's zeroed siginfo
 *   pipe     a writer child and a reader child joined by a pipe, as a shell's "a | b"
 *   orphan   a child leaves a grandchild behind: the grandchild's parent becomes init (the
 *            output names its new parent's pid, so only the LWK's, where init is this
 *            program, is fixed)
 *   child    (what exec runs) prints its arguments and descriptor states, exits with 7 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void status(const char *what, int st) {
  if (WIFEXITED(st)) printf("%s: exited %d\n", what, WEXITSTATUS(st));
  else if (WIFSIGNALED(st)) printf("%s: killed by signal %d\n", what, WTERMSIG(st));
  else printf("%s: status 0x%x\n", what, st);
}

static void nap(long ms) {
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
  nanosleep(&ts, NULL);
}

static void on_usr1(int sig) { (void)sig; }

static int mode_fork(void) {
  pid_t me = getpid();
  for (int i = 0; i < 4; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 10;
    if (pid == 0) {
      printf("child %d: parent is %s\n", i, getppid() == me ? "the forker" : "someone else");
      exit(i * 3 + 1);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid) return 11;
    char what[32];
    snprintf(what, sizeof what, "child %d", i);
    status(what, st);
  }
  return 0;
}

static int mode_any(void) {
  fflush(stdout);
  for (int i = 0; i < 3; i++) {
    pid_t pid = fork();
    if (pid < 0) return 10;
    if (pid == 0) { nap(10 * (3 - i)); _exit(20 + i); }
  }
  int codes[3];
  for (int i = 0; i < 3; i++) {
    int st;
    if (wait(&st) <= 0 || !WIFEXITED(st)) return 12;
    codes[i] = WEXITSTATUS(st);
  }
  for (int i = 0; i < 3; i++)
    for (int j = i + 1; j < 3; j++)
      if (codes[j] < codes[i]) { int t = codes[i]; codes[i] = codes[j]; codes[j] = t; }
  printf("reaped %d %d %d\n", codes[0], codes[1], codes[2]);
  errno = 0;
  pid_t r = wait(NULL);
  printf("wait with no children: %d, ECHILD %s\n", (int)r, errno == ECHILD ? "yes" : "no");
  return 0;
}

static int mode_exec(void) {
  int keep = dup2(1, 5);
  int gone = fcntl(1, F_DUPFD_CLOEXEC, 6);
  if (keep != 5 || gone != 6) return 10;
  signal(SIGUSR1, on_usr1);
  signal(SIGUSR2, SIG_IGN);
  errno = 0;
  execl("/no/such/program", "x", (char *)NULL);
  printf("exec of a missing file: ENOENT %s, still running\n", errno == ENOENT ? "yes" : "no");
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", "procs-child", "child", "first arg", "", "last", (char *)NULL);
    _exit(99);
  }
  int st;
  if (waitpid(pid, &st, 0) != pid) return 11;
  status("exec'd child", st);
  return 0;
}

static int mode_child(int argc, char **argv) {
  printf("exec'd: argc %d\n", argc);
  for (int i = 0; i < argc; i++) printf("  argv[%d] \"%s\"\n", i, argv[i]);
  printf("  fd 5 (dup2, no cloexec): %s\n", fcntl(5, F_GETFD) >= 0 ? "open" : "closed");
  errno = 0;
  printf("  fd 6 (F_DUPFD_CLOEXEC): %s\n", fcntl(6, F_GETFD) < 0 && errno == EBADF ? "closed" : "open");
  struct sigaction sa;
  sigaction(SIGUSR1, NULL, &sa);
  printf("  SIGUSR1 after exec: %s\n", sa.sa_handler == SIG_DFL ? "default" : "not default");
  sigaction(SIGUSR2, NULL, &sa);
  printf("  SIGUSR2 after exec: %s\n", sa.sa_handler == SIG_IGN ? "ignored" : "not ignored");
  printf("  environment: %s\n", getenv("PATH") != NULL ? getenv("PATH") : "(none)");
  fflush(stdout);
  return 7;
}

static int mode_vfork(void) {
  fflush(stdout);
  static const char msg[] = "vfork child: running while the parent waits\n";
  pid_t pid = vfork();
  if (pid < 0) return 10;
  if (pid == 0) {
    write(1, msg, sizeof msg - 1);
    _exit(5);
  }
  static const char back[] = "vfork parent: resumed after the child\n";
  write(1, back, sizeof back - 1); /* unbuffered: the order shows who ran first */
  int st;
  if (waitpid(pid, &st, 0) != pid) return 11;
  status("vfork child", st);
  return 0;
}

static int mode_wnohang(void) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 10;
  if (pid == 0) { nap(100); _exit(9); }
  int st = -1;
  pid_t r = waitpid(pid, &st, WNOHANG);
  printf("WNOHANG while the child sleeps: %d\n", (int)r);
  r = waitpid(pid, &st, 0);
  printf("blocking waitpid: %s\n", r == pid ? "the child" : "something else");
  status("child", st);
  r = waitpid(pid, &st, WNOHANG);
  printf("WNOHANG after reaping: %d, ECHILD %s\n", (int)r, errno == ECHILD ? "yes" : "no");
  return 0;
}

static int mode_signal(void) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 10;
  if (pid == 0) { volatile int *p = (int *)16; *p = 1; _exit(1); }
  int st;
  if (waitpid(pid, &st, 0) != pid) return 11;
  status("faulting child", st);
  return 0;
}

static int shared_value = 1;

static int mode_memory(void) {
  char *heap = malloc(64);
  strcpy(heap, "parent heap");
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 10;
  if (pid == 0) {
    shared_value = 2;
    strcpy(heap, "child heap");
    nap(30);
    printf("child: value %d heap \"%s\"\n", shared_value, heap);
    exit(0);
  }
  shared_value = 3;
  strcpy(heap, "parent wrote");
  int st;
  waitpid(pid, &st, 0);
  printf("parent: value %d heap \"%s\"\n", shared_value, heap);
  status("child", st);
  return 0;
}

static volatile sig_atomic_t got_sig, got_code, got_status;
static volatile pid_t got_pid;

static void on_chld(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  got_sig = sig;
  got_code = si->si_code;
  got_status = si->si_status;
  got_pid = si->si_pid;
}

static int mode_sigchld(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_chld;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0) return 10;
  if (pid == 0) { nap(20); _exit(3); }
  int st;
  pid_t r = waitpid(pid, &st, 0);
  printf("waitpid: %s\n", r == pid ? "the child" : "something else");
  status("child", st);
  printf("SIGCHLD handler: signal %d, CLD_EXITED %s, status %d, pid of the child %s\n", (int)got_sig,
         got_code == CLD_EXITED ? "yes" : "no", (int)got_status, got_pid == pid ? "yes" : "no");
  return 0;
}

static int mode_waitid(void) {
  fflush(stdout);
  pid_t a = fork();
  if (a == 0) _exit(12);
  siginfo_t si;
  memset(&si, 0xff, sizeof si);
  if (waitid(P_PID, a, &si, WEXITED | WNOWAIT) != 0) return 10;
  printf("waitid WNOWAIT: pid %s, CLD_EXITED %s, status %d\n", si.si_pid == a ? "the child" : "other",
         si.si_code == CLD_EXITED ? "yes" : "no", si.si_status);
  int st;
  printf("then waitpid: %s\n", waitpid(a, &st, 0) == a ? "the same child" : "nothing");
  status("child", st);
  pid_t b = fork();
  if (b == 0) { nap(30); volatile int *p = (int *)16; *p = 1; _exit(1); }
  memset(&si, 0xff, sizeof si);
  if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) != 0) return 11;
  printf("waitid WNOHANG while it runs: si_pid %d\n", (int)si.si_pid);
  if (waitid(P_ALL, 0, &si, WEXITED) != 0) return 12;
  printf("waitid: CLD_KILLED %s, signal %d, pid %s\n", si.si_code == CLD_KILLED ? "yes" : "no", si.si_status,
         si.si_pid == b ? "the child" : "other");
  errno = 0;
  int none = waitid(P_ALL, 0, &si, WEXITED);
  printf("waitid with no children: %d, ECHILD %s\n", none, errno == ECHILD ? "yes" : "no");
  return 0;
}

static int mode_pipe(void) {
  int fd[2];
  if (pipe(fd) != 0) return 10;
  fflush(stdout);
  pid_t w = fork();
  if (w == 0) {
    close(fd[0]);
    char buf[1000];
    for (int i = 0; i < 100; i++) {
      memset(buf, 'a' + i % 26, sizeof buf);
      if (write(fd[1], buf, sizeof buf) != sizeof buf) _exit(1);
    }
    _exit(0);
  }
  pid_t r = fork();
  if (r == 0) {
    close(fd[1]);
    char buf[4096];
    long total = 0, sum = 0;
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0)
      for (ssize_t i = 0; i < n; i++) { total++; sum += buf[i]; }
    printf("reader: %ld bytes, sum %ld, then end of file\n", total, sum);
    exit(0);
  }
  close(fd[0]);
  close(fd[1]);
  int st;
  if (waitpid(w, &st, 0) != w) return 11;
  status("writer", st);
  if (waitpid(r, &st, 0) != r) return 12;
  status("reader", st);
  return 0;
}

static int mode_orphan(void) {
  fflush(stdout);
  pid_t c = fork();
  if (c == 0) {
    pid_t g = fork();
    if (g == 0) {
      nap(50);
      printf("grandchild: parent is now %d\n", (int)getppid());
      fflush(stdout);
      _exit(6);
    }
    _exit(0);
  }
  int st;
  if (waitpid(c, &st, 0) != c) return 11;
  status("child", st);
  pid_t r = wait(&st);
  if (r > 0) status("the adopted grandchild", st);
  else printf("no adopted grandchild\n");
  return 0;
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "fork";
  if (strcmp(m, "fork") == 0) return mode_fork();
  if (strcmp(m, "any") == 0) return mode_any();
  if (strcmp(m, "exec") == 0) return mode_exec();
  if (strcmp(m, "child") == 0) return mode_child(argc, argv);
  if (strcmp(m, "vfork") == 0) return mode_vfork();
  if (strcmp(m, "wnohang") == 0) return mode_wnohang();
  if (strcmp(m, "signal") == 0) return mode_signal();
  if (strcmp(m, "memory") == 0) return mode_memory();
  if (strcmp(m, "pipe") == 0) return mode_pipe();
  if (strcmp(m, "sigchld") == 0) return mode_sigchld();
  if (strcmp(m, "waitid") == 0) return mode_waitid();
  if (strcmp(m, "orphan") == 0) return mode_orphan();
  fprintf(stderr, "procs: unknown mode %s\n", m);
  return 2;
}
