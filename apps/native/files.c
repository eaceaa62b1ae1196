/* Files (issue 5): open, read, lseek, pread, fstat/stat/lstat, getdents64, readlink, access,
 * chdir/getcwd, /dev/null, /dev/zero, /proc/self/exe, errors for missing files and directories.
 * Usage: files DIR [write]. DIR holds the tree test/kernel/fs.test.ts makes (natively a host
 * directory, under the LWK the same tree in the initramfs); nothing printed depends on where
 * DIR is. "write" tries to change the tree (under the LWK: a read-only file system). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* One call, then its result and errno (evaluated in order). */
#define TRY(label, expr) do { errno = 0; long r_ = (long)(expr); int e_ = errno; \
  printf("%s: %ld %s\n", label, r_, r_ < 0 ? strerror(e_) : "ok"); } while (0)

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void list(const char *dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) { printf("list %s: %s\n", dir, strerror(errno)); return; }
  char buf[256], *names[64]; int n = 0; long got;
  /* a small buffer: several getdents64 calls */
  while ((got = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
    for (long off = 0; off < got;) {
      struct { unsigned long long ino; long long off; unsigned short reclen; unsigned char type; char name[]; } *d = (void *)(buf + off);
      char *e = malloc(300);
      snprintf(e, 300, "%s(%c)", d->name, d->type == DT_DIR ? 'd' : d->type == DT_REG ? 'f' : d->type == DT_LNK ? 'l' : d->type == DT_CHR ? 'c' : '?');
      if (n < 64) names[n++] = e;
      off += d->reclen;
    }
  }
  qsort(names, n, sizeof *names, cmp);
  printf("%s:", dir);
  for (int i = 0; i < n; i++) printf(" %s", names[i]);
  printf("\n");
  close(fd);
}

static void show(const char *p) {
  struct stat s, l;
  int a = stat(p, &s), b = lstat(p, &l);
  if (a != 0 && b != 0) { printf("%s: %s\n", p, strerror(errno)); return; }
  printf("%s: stat %s size %lld mode %o | lstat %s mode %o\n", p,
         a == 0 ? (S_ISDIR(s.st_mode) ? "dir" : S_ISREG(s.st_mode) ? "file" : S_ISCHR(s.st_mode) ? "chr" : "other") : strerror(errno),
         a == 0 ? (long long)(S_ISREG(s.st_mode) ? s.st_size : 0) : -1LL, a == 0 ? s.st_mode & 07777 : 0,
         S_ISLNK(l.st_mode) ? "link" : S_ISDIR(l.st_mode) ? "dir" : "file", l.st_mode & 07777);
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: files DIR [write]\n"); return 2; }
  setvbuf(stdout, 0, _IONBF, 0);
  if (chdir(argv[1]) != 0) { printf("chdir: %s\n", strerror(errno)); return 1; }
  if (argc > 2 && !strcmp(argv[2], "write")) {
    TRY("create", open("new", O_WRONLY | O_CREAT, 0644));
    TRY("open for writing", open("hello.txt", O_WRONLY));
    TRY("open O_RDWR", open("hello.txt", O_RDWR));
    TRY("O_TRUNC", open("hello.txt", O_RDONLY | O_TRUNC));
    TRY("O_EXCL existing", open("hello.txt", O_CREAT | O_EXCL | O_RDONLY, 0644));
    TRY("create in missing dir", open("nodir/new", O_WRONLY | O_CREAT, 0644));
    TRY("open a directory for writing", open("sub", O_WRONLY));
    TRY("mkdir", mkdir("d2", 0755));
    TRY("mkdir existing", mkdir("sub", 0755));
    TRY("unlink", unlink("hello.txt"));
    TRY("unlink missing", unlink("missing"));
    TRY("rmdir", rmdir("sub"));
    TRY("rename", rename("hello.txt", "x"));
    TRY("access W_OK", access("hello.txt", W_OK));
    TRY("access W_OK /dev/null", access("/dev/null", W_OK));
    TRY("write to /dev/null", write(open("/dev/null", O_WRONLY), "x", 1));
    return 0;
  }
  char cwd[4096];
  printf("getcwd ends with the dir: %d\n", getcwd(cwd, sizeof cwd) != NULL && strlen(cwd) >= strlen("data") && !strcmp(cwd + strlen(cwd) - 4, "data"));
  list("."); list("sub"); list("sub/deeper");
  show("hello.txt"); show("link"); show("dirlink"); show("sub"); show("missing"); show("dangling"); show("hello.txt/x"); show("exec.sh");
  int fd = open("hello.txt", O_RDONLY);
  char buf[128]; ssize_t n = read(fd, buf, 5);
  printf("read %zd '%.*s'", n, (int)n, buf);
  n = read(fd, buf, sizeof buf); printf(" then %zd '%.*s'", n, (int)n, buf);
  n = read(fd, buf, sizeof buf); printf(" then %zd\n", n);
  off_t e = lseek(fd, 0, SEEK_END), c = lseek(fd, -6, SEEK_CUR), s = lseek(fd, 2, SEEK_SET);
  printf("lseek end %ld cur-6 %ld set %ld", (long)e, (long)c, (long)s);
  n = read(fd, buf, 3); printf(" read '%.*s'", (int)n, buf);
  n = pread(fd, buf, 4, 7); printf(" pread '%.*s'", (int)n, buf);
  printf("\n"); TRY("bad seek", lseek(fd, -100, SEEK_SET));
  close(fd);
  fd = open("sub/deeper/../../link", O_RDONLY);
  n = read(fd, buf, sizeof buf); printf("through .. and a link: %zd '%.*s'\n", n, (int)n, buf); close(fd);
  fd = open("./dirlink/inner.txt", O_RDONLY);
  n = read(fd, buf, sizeof buf); printf("through a directory link: %zd '%.*s'\n", n, (int)n, buf); close(fd);
  char l[256]; n = readlink("link", l, sizeof l); printf("readlink link: '%.*s'\n", (int)n, l);
  TRY("readlink of a file", readlink("hello.txt", l, sizeof l));
  n = readlink("/proc/self/exe", l, sizeof l); printf("/proc/self/exe names this program: %d\n", n > 6 && !memcmp(l + n - 6, "/files", 6));
  TRY("loop", open("loop1", O_RDONLY));
  TRY("O_NOFOLLOW on a link", open("link", O_RDONLY | O_NOFOLLOW));
  TRY("O_DIRECTORY on a file", open("hello.txt", O_RDONLY | O_DIRECTORY));
  fd = open("sub", O_RDONLY); TRY("read a directory", read(fd, buf, 1)); close(fd);
  TRY("access R_OK", access("hello.txt", R_OK));
  TRY("access X_OK exec.sh", access("exec.sh", X_OK));
  TRY("access X_OK hello.txt", access("hello.txt", X_OK));
  TRY("access F_OK missing", access("missing", F_OK));
  TRY("access through a file", access("hello.txt/x", F_OK));
  fd = open("/dev/null", O_RDWR); TRY("/dev/null write", write(fd, "abc", 3)); TRY("/dev/null read", read(fd, buf, 10)); close(fd);
  fd = open("/dev/zero", O_RDONLY); memset(buf, 1, 16); n = read(fd, buf, 16);
  int zeros = 0; for (int i = 0; i < n; i++) zeros += buf[i] == 0;
  printf("/dev/zero: read %zd zeros %d\n", n, zeros); close(fd);
  if (chdir("sub/deeper") == 0 && getcwd(cwd, sizeof cwd)) printf("cwd now ends with data/sub/deeper: %d\n", strlen(cwd) >= 15 && !strcmp(cwd + strlen(cwd) - 15, "data/sub/deeper"));
  TRY("chdir to a file", chdir("../../hello.txt"));
  fd = open("../../sub", O_RDONLY | O_DIRECTORY);
  int fd2 = openat(fd, "deeper/file", O_RDONLY);
  n = read(fd2, buf, sizeof buf); printf("openat: %zd '%.*s'\n", n, (int)n, buf);
  struct stat st; TRY("fstatat", fstatat(fd, "deeper/file", &st, 0)); printf("fstatat size %lld\n", (long long)st.st_size);
  TRY("openat with a file as dirfd", openat(fd2, "x", O_RDONLY));
  return 0;
}
