/* args: prints what the kernel handed the program at startup: argc and argv, the environment,
 * and the auxiliary-vector entries whose values do not identify the system (AT_PAGESZ,
 * AT_CLKTCK, AT_PHENT, AT_PHNUM, AT_SECURE, and checks that AT_PHDR, AT_ENTRY, AT_RANDOM and
 * AT_EXECFN point where they must). With --ids it also prints the identity entries (AT_UID,
 * AT_EUID, AT_GID, AT_EGID, AT_HWCAP) and the process's ids, which differ between systems. */
#include <elf.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

extern char **environ;
extern const char __ehdr_start[];
extern void _start(void);

int main(int argc, char **argv) {
  int ids = argc > 1 && strcmp(argv[1], "--ids") == 0;
  printf("argc %d\n", argc);
  for (int i = 0; i < argc; i++) printf("argv[%d] \"%s\"\n", i, i == 0 ? "(program)" : argv[i]);
  printf("argv[argc] %s\n", argv[argc] == NULL ? "NULL" : "not NULL");
  int n = 0;
  for (char **e = environ; *e != NULL; e++, n++) printf("env \"%s\"\n", *e);
  printf("envc %d\n", n);
  /* the environment follows argv's NULL on the initial stack */
  printf("environ follows argv %s\n", environ == argv + argc + 1 ? "yes" : "no");
  printf("AT_PAGESZ %lu\n", getauxval(AT_PAGESZ));
  printf("AT_CLKTCK %lu\n", getauxval(AT_CLKTCK));
  printf("AT_PHENT %lu\n", getauxval(AT_PHENT));
  printf("AT_PHNUM %lu\n", getauxval(AT_PHNUM));
  printf("AT_SECURE %lu\n", getauxval(AT_SECURE));
  const Elf32_Ehdr *eh = (const Elf32_Ehdr *)__ehdr_start;
  printf("AT_PHDR is the program headers %s\n", getauxval(AT_PHDR) == (unsigned long)__ehdr_start + eh->e_phoff ? "yes" : "no");
  printf("AT_ENTRY is _start %s\n", getauxval(AT_ENTRY) == (unsigned long)_start ? "yes" : "no");
  const unsigned char *rnd = (const unsigned char *)getauxval(AT_RANDOM);
  unsigned sum = 0;
  if (rnd != NULL) for (int i = 0; i < 16; i++) sum += rnd[i];
  printf("AT_RANDOM present %s\n", rnd != NULL ? "yes" : "no");
  const char *fn = (const char *)getauxval(AT_EXECFN);
  printf("AT_EXECFN is argv[0] %s\n", fn != NULL && strcmp(fn, argv[0]) == 0 ? "yes" : "no");
  if (ids) {
    printf("AT_UID %lu AT_EUID %lu AT_GID %lu AT_EGID %lu\n", getauxval(AT_UID), getauxval(AT_EUID), getauxval(AT_GID), getauxval(AT_EGID));
    printf("AT_HWCAP 0x%lx\n", getauxval(AT_HWCAP));
    printf("AT_RANDOM sum %u\n", sum);
    printf("pid %d ppid %d uid %d euid %d gid %d egid %d\n", (int)getpid(), (int)getppid(), (int)getuid(), (int)geteuid(), (int)getgid(), (int)getegid());
    printf("argv[0] %s\n", argv[0]);
  }
  return argc;
}
