/*
 * Native i386 differential-testing harness.
 *
 * Runs short snippets of i386 machine code on the host CPU (in a 32-bit Linux
 * process) and reports the register, flag and memory state they leave, or the
 * exception they raise. The TypeScript side is test/native/native.ts; the
 * protocol and the limits are described in test/native/README.md.
 *
 * Build: gcc -m32 -O1 -static -o test/native/build/harness test/native/harness.c
 *
 * How one case runs:
 *   - the code region (CODE_BASE, 64 KiB, RWX) is refilled with HLT, the case's
 *     code is copied to CODE_BASE and followed by an end marker (UD2);
 *   - the data region (DATA_BASE, 8 KiB, RW) gets a fresh copy of the case's data;
 *   - h_enter loads EFLAGS (CF PF AF ZF SF OF DF from the case, TF/NT/AC/ID cleared:
 *     sigreturn keeps a case's NT and ID, so they would leak into the next case; the
 *     rest as the harness's own) and all eight GPRs, ESP included, and jumps to
 *     CODE_BASE;
 *   - every way out is a signal: the end marker raises SIGILL at exactly
 *     CODE_BASE + codeLen (reported as "ran to the end", signal 0), a fault or trap
 *     raises its own signal, a runaway loop is stopped by an ITIMER_VIRTUAL timer
 *     (reported as SIGALRM). The handler runs on an alternate stack, copies the
 *     state from the ucontext (the kernel saved every register exactly, whatever
 *     the code did to ESP or the segment registers), then rewrites the ucontext
 *     so that sigreturn resumes the harness (h_resume) on its own stack with its
 *     own segment registers. The signal mask is restored by sigreturn, so the
 *     handler is re-armed for the next case.
 *   - once set up, the process installs a seccomp filter: only sigreturn and the
 *     harness's own system-call gate (h_sys) may make system calls. A system call
 *     from test code (INT 0x80, SYSENTER, SYSCALL) raises SIGSYS instead of
 *     running, so a case can neither exit, write to the output nor fork.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <ucontext.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#define CODE_BASE 0x10000000u
#define CODE_SIZE 0x10000u /* 64 KiB, a PROT_NONE guard page on each side */
#define DATA_BASE 0x20000000u
#define DATA_SIZE 0x2000u /* 8 KiB, a PROT_NONE guard page on each side */
#define PAGE 0x1000u
#define MAGIC 0x43543356u
#define END_MARK_LEN 2u /* UD2 */
#define MAX_CODE (CODE_SIZE - END_MARK_LEN)
#define FILL_BYTE 0xF4 /* HLT: #GP at CPL3, so running past the end marker is visible */
#define TICK_US 10000 /* ITIMER_VIRTUAL period */
#define TIMEOUT_TICKS 5 /* a case that sees this many ticks has run for 40..50 ms */
#define HEADER_WORDS 11u /* magic, codeLen, regs[8], eflags */
#define RESULT_WORDS 13u /* signal, faultEip, trapno, err, regs[8], eflags */
#define SIG_TIMEOUT_REPORTED 14u /* SIGALRM */

#define EFL_CASE_BITS 0x0CD5u /* CF PF AF ZF SF DF OF */
#define EFL_TF 0x0100u
#define EFL_AC 0x40000u
#define EFL_RF 0x10000u

/* ---- state shared with the assembly below (plain globals, no TLS) ---- */
uint32_t h_in_regs[8]; /* eax ecx edx ebx esp ebp esi edi */
uint32_t h_in_eflags;
uint32_t h_harness_esp;
uint32_t h_entry = CODE_BASE;
uint32_t h_mxcsr_default = 0x1F80;
uint16_t h_seg_cs, h_seg_ds, h_seg_es, h_seg_fs, h_seg_gs, h_seg_ss;

static volatile uint32_t h_in_case;
static volatile uint32_t h_ticks; /* timer ticks seen by the current case */
static uint32_t h_end_addr;
static uint32_t h_out[RESULT_WORDS];

void h_enter(void);
void h_resume(void);
void h_sig_entry(int, siginfo_t *, void *);
int h_sys(int nr, int a, int b, int c);
extern char h_sys_ret[];

__asm__(
    ".text\n"
    /* void h_enter(void): run the loaded case; returns (through h_resume) after
       the signal handler captured the state. */
    ".globl h_enter\n"
    "h_enter:\n"
    "  push %ebp\n"
    "  push %ebx\n"
    "  push %esi\n"
    "  push %edi\n"
    "  mov %esp, h_harness_esp\n"
    "  fninit\n"
    "  ldmxcsr h_mxcsr_default\n"
    "  pushfl\n"
    "  pop %eax\n"
    "  and $~(0x0CD5|0x0100|0x4000|0x40000|0x200000), %eax\n" /* case bits, TF, NT, AC, ID */
    "  mov h_in_eflags, %ecx\n"
    "  and $0x0CD5, %ecx\n"
    "  or %ecx, %eax\n"
    "  push %eax\n"
    "  popfl\n"
    "  mov h_in_regs+0, %eax\n"
    "  mov h_in_regs+4, %ecx\n"
    "  mov h_in_regs+8, %edx\n"
    "  mov h_in_regs+12, %ebx\n"
    "  mov h_in_regs+16, %esp\n"
    "  mov h_in_regs+20, %ebp\n"
    "  mov h_in_regs+24, %esi\n"
    "  mov h_in_regs+28, %edi\n"
    "  jmp *h_entry\n"
    /* Where sigreturn lands after a case: the handler has set ESP, EFLAGS and the
       segment registers; restore the callee-saved registers and return. */
    ".globl h_resume\n"
    "h_resume:\n"
    "  mov h_harness_esp, %esp\n"
    "  pop %edi\n"
    "  pop %esi\n"
    "  pop %ebx\n"
    "  pop %ebp\n"
    "  ret\n"
    /* Signal handler entry: the kernel reloaded DS/ES/SS/CS but not FS/GS, and
       glibc's TLS lives behind GS; restore both before any C code runs. */
    ".globl h_sig_entry\n"
    "h_sig_entry:\n"
    "  movw h_seg_fs, %fs\n"
    "  movw h_seg_gs, %gs\n"
    "  jmp h_sig_c\n"
    /* int h_sys(nr, a, b, c): the only place allowed to make system calls once
       the seccomp filter is installed (the filter checks the return address). */
    ".globl h_sys\n"
    "h_sys:\n"
    "  push %ebx\n"
    "  mov 8(%esp), %eax\n"
    "  mov 12(%esp), %ebx\n"
    "  mov 16(%esp), %ecx\n"
    "  mov 20(%esp), %edx\n"
    "  int $0x80\n"
    ".globl h_sys_ret\n"
    "h_sys_ret:\n"
    "  pop %ebx\n"
    "  ret\n");

/* ---- small helpers that only use the gate ---- */
static void h_write_all(int fd, const void *buf, uint32_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    int n = h_sys(__NR_write, fd, (int)(uintptr_t)p, (int)len);
    if (n == -4 /* EINTR */) continue;
    if (n <= 0) h_sys(__NR_exit_group, 3, 0, 0);
    p += n;
    len -= (uint32_t)n;
  }
}

static void h_die(const char *msg) {
  h_write_all(2, "native harness: ", 16);
  h_write_all(2, msg, (uint32_t)strlen(msg));
  h_write_all(2, "\n", 1);
  h_sys(__NR_exit_group, 2, 0, 0);
}

/* ---- signal handler (entered through h_sig_entry) ---- */
void h_sig_c(int sig, siginfo_t *si, void *ucv) __attribute__((used));
void h_sig_c(int sig, siginfo_t *si, void *ucv) {
  (void)si;
  ucontext_t *uc = ucv;
  greg_t *g = uc->uc_mcontext.gregs;
  if (!h_in_case) {
    if (sig == SIGVTALRM) return; /* a tick while the harness itself runs */
    h_die("signal inside the harness itself (harness bug or corrupted harness memory)");
  }
  /* A tick during a case: resume the case (sigreturn restores it exactly) unless
     it has used up its time. */
  if (sig == SIGVTALRM && ++h_ticks < TIMEOUT_TICKS) return;
  h_in_case = 0;
  uint32_t eip = (uint32_t)g[REG_EIP];
  if (sig == SIGILL && eip == h_end_addr && (uint32_t)g[REG_TRAPNO] == 6) {
    h_out[0] = 0;
    h_out[1] = 0;
    h_out[2] = 0xFFFFFFFFu;
    h_out[3] = 0;
  } else if (sig == SIGVTALRM || sig == SIGSYS) {
    /* No hardware exception behind these: the ucontext's TRAPNO/ERR are stale. */
    h_out[0] = sig == SIGVTALRM ? SIG_TIMEOUT_REPORTED : (uint32_t)sig;
    h_out[1] = eip;
    h_out[2] = 0xFFFFFFFFu;
    h_out[3] = 0;
  } else {
    h_out[0] = (uint32_t)sig;
    h_out[1] = eip;
    h_out[2] = (uint32_t)g[REG_TRAPNO];
    h_out[3] = (uint32_t)g[REG_ERR];
  }
  h_out[4] = (uint32_t)g[REG_EAX];
  h_out[5] = (uint32_t)g[REG_ECX];
  h_out[6] = (uint32_t)g[REG_EDX];
  h_out[7] = (uint32_t)g[REG_EBX];
  h_out[8] = (uint32_t)g[REG_ESP];
  h_out[9] = (uint32_t)g[REG_EBP];
  h_out[10] = (uint32_t)g[REG_ESI];
  h_out[11] = (uint32_t)g[REG_EDI];
  h_out[12] = (uint32_t)g[REG_EFL] & ~EFL_RF; /* RF is an artifact of fault delivery */

  /* Resume the harness: its stack, its segments, clean flags (DF clear). */
  g[REG_EIP] = (greg_t)(uintptr_t)h_resume;
  g[REG_ESP] = (greg_t)h_harness_esp;
  g[REG_UESP] = (greg_t)h_harness_esp;
  g[REG_EFL] = 0x202;
  g[REG_CS] = h_seg_cs;
  g[REG_DS] = h_seg_ds;
  g[REG_ES] = h_seg_es;
  g[REG_FS] = h_seg_fs;
  g[REG_GS] = h_seg_gs;
  g[REG_SS] = h_seg_ss;
}

/* ---- buffered I/O through the gate ---- */
static uint8_t in_buf[1 << 20];
static uint32_t in_pos, in_len;
static uint8_t out_buf[1 << 20];
static uint32_t out_len;

/* Reads exactly len bytes; returns 0 at a clean end of input before any byte. */
static int h_read_exact(void *dst, uint32_t len) {
  uint8_t *d = dst;
  uint32_t got = 0;
  while (got < len) {
    if (in_pos == in_len) {
      int n = h_sys(__NR_read, 0, (int)(uintptr_t)in_buf, (int)sizeof in_buf);
      if (n == -4 /* EINTR */) continue;
      if (n < 0) h_die("read error on stdin");
      if (n == 0) {
        if (got == 0) return 0;
        h_die("truncated input");
      }
      in_pos = 0;
      in_len = (uint32_t)n;
    }
    uint32_t take = in_len - in_pos;
    if (take > len - got) take = len - got;
    memcpy(d + got, in_buf + in_pos, take);
    in_pos += take;
    got += take;
  }
  return 1;
}

static void h_flush(void) {
  h_write_all(1, out_buf, out_len);
  out_len = 0;
}

static void h_emit(const void *src, uint32_t len) {
  const uint8_t *s = src;
  while (len > 0) {
    uint32_t room = (uint32_t)sizeof out_buf - out_len;
    if (room == 0) {
      h_flush();
      continue;
    }
    uint32_t take = len < room ? len : room;
    memcpy(out_buf + out_len, s, take);
    out_len += take;
    s += take;
    len -= take;
  }
}

/* ---- setup (ordinary libc calls; runs before the seccomp filter) ---- */
static void setup_fail(const char *what) {
  perror(what);
  exit(2);
}

static void map_region(uint32_t base, uint32_t size, int prot) {
  /* Reserve [base - PAGE, base + size + PAGE) as PROT_NONE, then open the middle. */
  void *want = (void *)(uintptr_t)(base - PAGE);
  void *p = mmap(want, size + 2 * PAGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p != want) setup_fail("mmap (region already in use?)");
  if (mprotect((void *)(uintptr_t)base, size, prot) != 0) setup_fail("mprotect");
}

static void install_handlers(void) {
  static uint8_t altstack[1 << 16] __attribute__((aligned(16)));
  stack_t ss;
  memset(&ss, 0, sizeof ss);
  ss.ss_sp = altstack;
  ss.ss_size = sizeof altstack;
  if (sigaltstack(&ss, NULL) != 0) setup_fail("sigaltstack");

  static const int sigs[] = {SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV, SIGVTALRM, SIGSYS};
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = h_sig_entry;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaddset(&sa.sa_mask, sigs[i]);
  for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    if (sigaction(sigs[i], &sa, NULL) != 0) setup_fail("sigaction");
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static int install_seccomp(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_rt_sigreturn, 4, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sigreturn, 3, 0),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0 /* patched: h_sys_ret */, 1, 0),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  f[7].k = (uint32_t)(uintptr_t)h_sys_ret;
  struct sock_fprog prog = {.len = (unsigned short)(sizeof f / sizeof f[0]), .filter = f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -1;
  /* SPEC_ALLOW: do not switch on speculation mitigations (SSBD) that slow the process. */
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_SPEC_ALLOW, &prog) != 0 &&
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
    return -1;
  return 0;
}

static uint8_t case_code[CODE_SIZE];

int main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  __asm__ volatile("mov %%cs, %0" : "=m"(h_seg_cs));
  __asm__ volatile("mov %%ds, %0" : "=m"(h_seg_ds));
  __asm__ volatile("mov %%es, %0" : "=m"(h_seg_es));
  __asm__ volatile("mov %%fs, %0" : "=m"(h_seg_fs));
  __asm__ volatile("mov %%gs, %0" : "=m"(h_seg_gs));
  __asm__ volatile("mov %%ss, %0" : "=m"(h_seg_ss));

  map_region(CODE_BASE, CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC);
  map_region(DATA_BASE, DATA_SIZE, PROT_READ | PROT_WRITE);
  install_handlers();
  /* Larger pipes mean fewer system calls for the ~16 KiB each case moves. */
  fcntl(0, F_SETPIPE_SZ, 1 << 20);
  fcntl(1, F_SETPIPE_SZ, 1 << 20);
  /* One periodic CPU-time tick for the whole run: no timer system calls per case. */
  struct itimerval itv;
  memset(&itv, 0, sizeof itv);
  itv.it_interval.tv_usec = TICK_US;
  itv.it_value.tv_usec = TICK_US;
  if (setitimer(ITIMER_VIRTUAL, &itv, NULL) != 0) setup_fail("setitimer");
  if (install_seccomp() != 0)
    fprintf(stderr, "native harness: warning: seccomp unavailable, system calls from test code are not contained\n");
  fflush(stderr);

  uint8_t *code = (uint8_t *)(uintptr_t)CODE_BASE;
  uint8_t *data = (uint8_t *)(uintptr_t)DATA_BASE;
  memset(code, FILL_BYTE, CODE_SIZE);

  for (;;) {
    uint32_t hdr[HEADER_WORDS];
    if (!h_read_exact(hdr, sizeof hdr)) break;
    if (hdr[0] != MAGIC) h_die("bad case magic (protocol out of sync)");
    uint32_t code_len = hdr[1];
    if (code_len > MAX_CODE) h_die("code too long (max 65534 bytes)");
    memcpy(h_in_regs, &hdr[2], sizeof h_in_regs);
    h_in_eflags = hdr[10];
    if (!h_read_exact(case_code, code_len)) h_die("truncated input");
    if (!h_read_exact(data, DATA_SIZE)) h_die("truncated input");

    /* The previous case may have written anywhere in the code region. */
    memset(code, FILL_BYTE, CODE_SIZE);
    memcpy(code, case_code, code_len);
    code[code_len] = 0x0F; /* UD2: the end marker */
    code[code_len + 1] = 0x0B;
    h_end_addr = CODE_BASE + code_len;

    h_ticks = 0;
    h_in_case = 1;
    h_enter();

    h_emit(h_out, sizeof h_out);
    h_emit(data, DATA_SIZE);
  }
  h_flush();
  h_sys(__NR_exit_group, 0, 0, 0);
  return 0;
}
