/* Pipes (issue 5): within one process and between processes; end of file when every writer has
 * closed, EPIPE/SIGPIPE when no reader is left, O_NONBLOCK and EAGAIN, the pipe's capacity,
 * poll, a large transfer through a pipe between a parent and its child. Usage: pipes MODE. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static unsigned sum(const unsigned char *p, size_t n, unsigned s) {
  for (size_t i = 0; i < n; i++) s = s * 31 + p[i];
  return s;
}

int main(int argc, char **argv) {
  const char *m = argc > 1 ? argv[1] : "self";
  setvbuf(stdout, 0, _IONBF, 0);
  int fd[2];
  if (!strcmp(m, "self")) {
    if (pipe(fd) != 0) return 98;
    struct stat st; fstat(fd[0], &st);
    printf("fifo %d, fds %d %d\n", S_ISFIFO(st.st_mode), fd[0], fd[1]);
    write(fd[1], "hello ", 6); write(fd[1], "pipe", 4);
    char buf[64]; ssize_t n = read(fd[0], buf, sizeof buf);
    printf("read %zd '%.*s'\n", n, (int)n, buf);
    struct pollfd p[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLOUT, 0}};
    int r = poll(p, 2, 0);
    printf("poll empty: %d revents %#x %#x\n", r, p[0].revents, p[1].revents);
    fcntl(fd[0], F_SETFL, fcntl(fd[0], F_GETFL) | O_NONBLOCK);
    n = read(fd[0], buf, sizeof buf);
    printf("nonblocking empty read %zd %s, flags has O_NONBLOCK %d\n", n, strerror(errno), (fcntl(fd[0], F_GETFL) & O_NONBLOCK) != 0);
    fcntl(fd[1], F_SETFL, O_NONBLOCK);
    static char big[4096];
    memset(big, 'z', sizeof big);
    long total = 0;
    for (;;) { n = write(fd[1], big, sizeof big); if (n < 0) break; total += n; }
    printf("capacity %ld then %s\n", total, strerror(errno));
    p[0].revents = p[1].revents = 0;
    r = poll(p, 2, 0);
    printf("poll full: %d revents %#x %#x\n", r, p[0].revents, p[1].revents);
    long got = 0;
    while ((n = read(fd[0], big, sizeof big)) > 0) got += n;
    printf("drained %ld then %s\n", got, strerror(errno));
    int d = dup(fd[1]);
    close(fd[1]);
    write(d, "x", 1);
    close(d);
    n = read(fd[0], buf, sizeof buf);
    ssize_t n2 = read(fd[0], buf, sizeof buf);
    printf("after last writer closed: %zd then %zd\n", n, n2);
    p[0].events = POLLIN; p[0].revents = 0;
    r = poll(p, 1, 0);
    printf("poll hup: %d revents %#x\n", r, p[0].revents);
    if (pipe2(fd, O_CLOEXEC | O_NONBLOCK) != 0) return 97;
    printf("pipe2 cloexec %d nonblock %d\n", fcntl(fd[0], F_GETFD), (fcntl(fd[1], F_GETFL) & O_NONBLOCK) != 0);
    long off = (long)lseek(fd[0], 0, SEEK_SET);
    printf("lseek on a pipe: %ld %s\n", off, strerror(errno));
    return 0;
  }
  if (!strcmp(m, "fork")) {
    /* the parent writes 300 KB in odd-sized chunks; the child sums them and reports back */
    int back[2];
    if (pipe(fd) != 0 || pipe(back) != 0) return 98;
    pid_t c = fork();
    if (c == 0) {
      close(fd[1]); close(back[0]);
      static unsigned char buf[5000];
      unsigned s = 0; long total = 0; ssize_t n;
      while ((n = read(fd[0], buf, sizeof buf)) > 0) { s = sum(buf, n, s); total += n; }
      char msg[64]; int len = snprintf(msg, sizeof msg, "%ld bytes sum %u", total, s);
      write(back[1], msg, len);
      _exit(n == 0 ? 0 : 1);
    }
    close(fd[0]); close(back[1]);
    static unsigned char data[300000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (unsigned char)(i * 7 + (i >> 9));
    size_t off = 0, chunk = 777;
    int shorts = 0;
    while (off < sizeof data) {
      size_t k = sizeof data - off < chunk ? sizeof data - off : chunk;
      ssize_t n = write(fd[1], data + off, k);
      if (n <= 0) { perror("write"); return 1; }
      if ((size_t)n != k) shorts++; /* a blocking pipe write is all or nothing (but for signals) */
      off += n; chunk = chunk * 3 % 20011 + 1;
    }
    printf("short writes: %d\n", shorts);
    close(fd[1]);
    char msg[64]; ssize_t n = read(back[0], msg, sizeof msg);
    int st; waitpid(c, &st, 0);
    printf("child: %.*s, status %d; expected sum %u\n", (int)n, msg, WEXITSTATUS(st), sum(data, sizeof data, 0));
    return 0;
  }
  if (!strcmp(m, "epipe")) {
    if (pipe(fd) != 0) return 98;
    pid_t c = fork();
    if (c == 0) { close(fd[0]); _exit(0); }
    close(fd[0]);
    int st; waitpid(c, &st, 0);
    c = fork();
    if (c == 0) { write(fd[1], "x", 1); _exit(3); }
    waitpid(c, &st, 0);
    printf("writer without readers: signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));
    return 0;
  }
  if (!strcmp(m, "wait")) {
    /* poll, ppoll and select that wait: for a child's write, or until their timeout */
    if (pipe(fd) != 0) return 98;
    struct pollfd p = {fd[0], POLLIN, 0};
    int r = poll(&p, 1, 30);
    printf("poll timed out: %d revents %#x\n", r, p.revents);
    fd_set rs; FD_ZERO(&rs); FD_SET(fd[0], &rs);
    struct timeval tv = {0, 20000};
    r = select(fd[0] + 1, &rs, 0, 0, &tv);
    printf("select timed out: %d set %d\n", r, FD_ISSET(fd[0], &rs));
    pid_t c = fork();
    if (c == 0) {
      struct timespec ts = {0, 40 * 1000 * 1000};
      nanosleep(&ts, 0); write(fd[1], "a", 1);
      nanosleep(&ts, 0); write(fd[1], "b", 1);
      nanosleep(&ts, 0); write(fd[1], "c", 1);
      _exit(0);
    }
    p.revents = 0;
    r = poll(&p, 1, 5000);
    char ch; read(fd[0], &ch, 1);
    printf("poll woken: %d revents %#x read %c\n", r, p.revents, ch);
    FD_ZERO(&rs); FD_SET(fd[0], &rs);
    r = select(fd[0] + 1, &rs, 0, 0, 0);
    read(fd[0], &ch, 1);
    printf("select woken: %d set %d read %c\n", r, FD_ISSET(fd[0], &rs), ch);
    struct timespec to = {5, 0};
    p.revents = 0;
    r = ppoll(&p, 1, &to, 0);
    read(fd[0], &ch, 1);
    printf("ppoll woken: %d revents %#x read %c\n", r, p.revents, ch);
    int st; waitpid(c, &st, 0);
    close(fd[1]);
    p.revents = 0;
    r = poll(&p, 1, -1);
    printf("poll after the writers are gone: %d revents %#x\n", r, p.revents);
    return 0;
  }
  fprintf(stderr, "pipes: unknown mode %s\n", m);
  return 2;
}
