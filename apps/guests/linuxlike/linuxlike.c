/*
 * linuxlike: a "Linux-like" guest kernel, the opposite of catamount for a VMM's paging code.
 * Several processes (ring-3 code, each with its own kernel stack, user stack and page
 * directory, entering the kernel by INT 0x80 system calls) run a memory workload under a
 * periodic PIT tick (250 Hz by default) and a round-robin scheduler that switches address
 * spaces with CR3 writes on every tick and every yield.
 * User memory is demand paged: the #PF handler maps a zeroed frame on first touch. Processes
 * spawn children with a fork-like copy of their address space (copy-on-write: both sides
 * lose write access, the first write faults and copies, or just regains write access when the
 * frame has one user left), and free their heap after every job, so page tables are created,
 * changed and torn down all the time. The kernel's own memory is identity-mapped with 4 MiB
 * pages shared by every address space, as Linux maps low memory; those pages are
 * user-accessible, because the processes' code is part of the kernel image (no protection
 * between kernel and processes: this is a paging workload, not an operating system).
 *
 * Command line: [KERNEL-PATH] [key=value ...] with procs, jobs, pages, rounds, fork, hz
 * (apps/guests/README.md). The amount of work is fixed by the parameters, so runs are
 * comparable across paging modes. Output: the per-process and summary lines depend only on
 * the parameters; the linuxlike-timing line (ticks, switches, cycles) depends on timing.
 * Exits through isa-debug-exit with 0, or 1 on a wrong checksum, 2 on a bad parameter.
 */
#include "kernel.h"

#define MiB 0x100000u
#define KERNEL_TOP (32 * MiB)         /* identity-mapped with 4 MiB pages in every space */
#define FRAMES_BASE (8 * MiB)         /* frames for page tables and user pages */
#define FRAMES_MAX 6144u              /* up to 24 MiB of them */
#define USER_BASE 0x40000000u         /* the heap of every process: [USER_BASE, HEAP_END) */
#define HEAP_END 0x70000000u
#define USER_STACK_TOP 0x80000000u    /* the user stack, demand paged below this */
#define USER_CS 0x1Bu
#define USER_DS 0x23u
#define TSS_SEL 0x28u
enum { SYS_YIELD = 1, SYS_RELEASE, SYS_FORK, SYS_WAIT, SYS_EXIT };
#define PTE_COW 0x200u                /* an available bit: write access removed by a fork */
#define NPROC 24
#define STACK 8192
#define REF_PAGES 128                 /* the largest pages= (the reference buffers) */

/* ---------------------------------------------------------------- physical frames */
static u32 nframes, free_top;
static u32 free_list[FRAMES_MAX];
static u8 refcount[FRAMES_MAX];
static u32 frames_used, frames_peak;

static u32 frame_index(u32 pa) { return (pa - FRAMES_BASE) >> 12; }

static void zero_page(u32 pa) {
  u32 *p = (u32 *)pa, n = 1024;
  asm volatile("rep stosl" : "+D"(p), "+c"(n) : "a"(0) : "memory");
}

static void copy_page(u32 dst, u32 src) {
  u32 *d = (u32 *)dst, *s = (u32 *)src, n = 1024;
  asm volatile("rep movsl" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
}

static u32 frame_alloc(void) {
  if (free_top == 0) {
    kprintf("linuxlike: out of frames\n");
    qemu_exit(1);
  }
  u32 pa = free_list[--free_top];
  refcount[frame_index(pa)] = 1;
  zero_page(pa);
  if (++frames_used > frames_peak) frames_peak = frames_used;
  return pa;
}

static void frame_put(u32 pa) {
  if (--refcount[frame_index(pa)] == 0) {
    free_list[free_top++] = pa;
    frames_used--;
  }
}

/* ---------------------------------------------------------------- processes */
enum { FREE, RUNNABLE, WAITING };
struct proc {
  u32 esp;             /* saved by swtch */
  u32 *pd;
  int state;
  u32 id;
  struct proc *parent;
  u32 children;        /* alive */
  u32 childsum;        /* children's results, folded */
  u32 demand, cow;     /* page faults taken */
  u32 stack[STACK / 4] __attribute__((aligned(16)));
};
static struct proc procs[NPROC];
static struct proc *cur;
static u32 *kernel_pd;
static u32 alive;
static volatile u32 ticks;
static u32 switches, cr3_writes, spawned;
static u32 total_demand, total_cow;

/* swtch(&old->esp, new->esp): save the callee-saved registers on this stack, switch stacks */
void swtch(u32 *old_esp, u32 new_esp);
asm(".text\n"
    ".globl swtch\n"
    "swtch:\n\t"
    "movl 4(%esp), %eax\n\t"
    "movl 8(%esp), %edx\n\t"
    "pushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n\t"
    "movl %esp, (%eax)\n\t"
    "movl %edx, %esp\n\t"
    "popl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\t"
    "ret\n");

/* the GDT with user segments and a TSS (the runtime's GDT has only the kernel's) */
static struct {
  u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
  u32 es, cs, ss, ds, fs, gs, ldt, iomap;
} tss __attribute__((aligned(16)));
static u64 gdt[6] __attribute__((aligned(8)));

static void gdt_init(void) {
  gdt[1] = 0x00CF9A000000FFFFull; /* 0x08 kernel code */
  gdt[2] = 0x00CF92000000FFFFull; /* 0x10 kernel data */
  gdt[3] = 0x00CFFA000000FFFFull; /* 0x1B user code */
  gdt[4] = 0x00CFF2000000FFFFull; /* 0x23 user data */
  u32 base = (u32)&tss, limit = sizeof tss - 1;
  gdt[5] = (limit & 0xFFFF) | ((u64)(base & 0xFFFFFF) << 16) | ((u64)0x89 << 40) | ((u64)(base >> 24) << 56);
  tss.ss0 = KERNEL_DS;
  tss.iomap = sizeof tss; /* no I/O bitmap: IOPL 0 keeps ring 3 off the ports */
  struct __attribute__((packed)) { u16 limit; u32 base; } g = { sizeof gdt - 1, (u32)gdt }, i;
  asm volatile("lgdt %0" : : "m"(g) : "memory");
  asm volatile("ltr %w0" : : "r"(TSS_SEL));
  /* the system-call gate: DPL 3, so INT 0x80 works from ring 3 */
  asm volatile("sidt %0" : "=m"(i));
  u32 *gate = (u32 *)(i.base + 0x80 * 8);
  gate[1] |= 0x6000u;
}

static void set_cr3(u32 *pd) {
  write_cr3((u32)pd);
  cr3_writes++;
}

/* Round robin over the processes after cur; the idle process (slot 0) only when none is ready. */
static void schedule(void) {
  struct proc *prev = cur, *next = &procs[0];
  u32 start = (u32)(cur - procs);
  for (u32 k = 1; k <= NPROC; k++) {
    struct proc *p = &procs[(start + k) % NPROC];
    if (p != &procs[0] && p->state == RUNNABLE) { next = p; break; }
  }
  if (next == prev) return;
  switches++;
  cur = next;
  if (next->pd != prev->pd) set_cr3(next->pd);
  if (next != &procs[0]) tss.esp0 = (u32)&next->stack[STACK / 4];
  swtch(&prev->esp, next->esp);
}

static int timer_handler(struct trap_frame *f) {
  (void)f;
  ticks++;
  pic_eoi(0);
  schedule();
  return 1;
}

/* ---------------------------------------------------------------- address spaces */
static u32 *pd_new(void) {
  u32 *pd = (u32 *)frame_alloc();
  for (u32 i = 0; i < KERNEL_TOP >> 22; i++) pd[i] = kernel_pd[i];
  return pd;
}

static int is_user(u32 va) { return va >= USER_BASE && va < USER_STACK_TOP; }

/* Drops the user pages and page tables of pd in [from, to) (frames with other users survive). */
static void unmap_user(u32 *pd, u32 from, u32 to, int flush) {
  for (u32 i = from >> 22; i < to >> 22; i++) {
    if (!(pd[i] & PTE_P)) continue;
    u32 *pt = (u32 *)(pd[i] & ~0xFFFu);
    for (u32 j = 0; j < 1024; j++) {
      if (!(pt[j] & PTE_P)) continue;
      frame_put(pt[j] & ~0xFFFu);
      pt[j] = 0;
      if (flush) invlpg((i << 22) | (j << 12));
    }
    pd[i] = 0;
    frame_put((u32)pt);
  }
  if (flush) set_cr3(pd); /* the page tables are gone too: drop cached walks */
}

/* The fork-like copy: the child gets the parent's page tables, copy-on-write. */
static u32 *copy_space(u32 *parent) {
  u32 *pd = pd_new();
  for (u32 i = USER_BASE >> 22; i < USER_STACK_TOP >> 22; i++) {
    if (!(parent[i] & PTE_P)) continue;
    u32 *ppt = (u32 *)(parent[i] & ~0xFFFu);
    u32 *cpt = (u32 *)frame_alloc();
    for (u32 j = 0; j < 1024; j++) {
      u32 e = ppt[j];
      if (!(e & PTE_P)) continue;
      if (e & PTE_W) e = (e & ~PTE_W) | PTE_COW;
      ppt[j] = e;
      cpt[j] = e & ~(PTE_A | PTE_D);
      refcount[frame_index(e & ~0xFFFu)]++;
    }
    pd[i] = (u32)cpt | PTE_P | PTE_W | PTE_U;
  }
  set_cr3(parent); /* the parent lost write access: flush its TLB */
  return pd;
}

static int pf_handler(struct trap_frame *f) {
  u32 cr2 = read_cr2();
  if (!is_user(cr2) || !(f->err & 4)) return 0; /* only the processes (ring 3) touch user memory */
  u32 *pd = cur->pd;
  u32 va = cr2 & ~0xFFFu;
  if (!(f->err & PTE_P)) { /* demand paging: a zeroed frame (and a page table if needed) */
    if (!(pd[va >> 22] & PTE_P)) pd[va >> 22] = frame_alloc() | PTE_P | PTE_W | PTE_U;
    u32 *pt = (u32 *)(pd[va >> 22] & ~0xFFFu);
    pt[(va >> 12) & 0x3FF] = frame_alloc() | PTE_P | PTE_W | PTE_U;
    cur->demand++;
    return 1;
  }
  u32 *pt = (u32 *)(pd[va >> 22] & ~0xFFFu);
  u32 *pte = &pt[(va >> 12) & 0x3FF];
  if ((f->err & PTE_W) && (*pte & PTE_COW)) { /* copy on write */
    u32 old = *pte & ~0xFFFu;
    if (refcount[frame_index(old)] == 1) {
      *pte = (*pte & ~PTE_COW) | PTE_W;
    } else {
      u32 n = frame_alloc();
      copy_page(n, old);
      frame_put(old);
      *pte = n | PTE_P | PTE_W | PTE_U;
    }
    invlpg(va);
    cur->cow++;
    return 1;
  }
  return 0;
}

/*
 * A new process starts in swtch's `ret` to enter_user with EDI = the function and ESI = its
 * argument (swtch popped them), and IRETs to ring 3 at user_start on an empty user stack, which
 * calls the function and passes its result to the exit system call.
 */
void enter_user(void);
asm(".text\n"
    ".globl enter_user\n"
    "enter_user:\n\t"
    "movl $0x23, %eax\n\t"
    "movl %eax, %ds\n\t"
    "movl %eax, %es\n\t"
    "pushl $0x23\n\t"
    "pushl $0x80000000\n\t"
    "pushl $0x202\n\t"
    "pushl $0x1B\n\t"
    "pushl $user_start\n\t"
    "iretl\n"
    "user_start:\n\t"
    "pushl %esi\n\t"
    "call *%edi\n\t"
    "movl %eax, %ebx\n\t"
    "movl $5, %eax\n\t" /* SYS_EXIT */
    "int $0x80\n"
    "1: jmp 1b\n");

static u32 results[8];
static u32 result_demand[8], result_cow[8];

static struct proc *spawn(u32 (*fn)(u32), u32 arg, u32 *pd) {
  struct proc *p = NULL;
  for (u32 i = 1; i < NPROC && !p; i++) if (procs[i].state == FREE) p = &procs[i];
  if (!p) { kprintf("linuxlike: out of process slots\n"); qemu_exit(1); }
  p->pd = pd;
  p->id = ++spawned;
  p->parent = cur == &procs[0] ? NULL : cur;
  p->children = 0;
  p->childsum = 0;
  p->demand = 0;
  p->cow = 0;
  u32 *sp = &p->stack[STACK / 4];
  *--sp = (u32)enter_user; /* swtch's ret */
  *--sp = 0;               /* ebp */
  *--sp = 0;               /* ebx */
  *--sp = arg;             /* esi */
  *--sp = (u32)fn;         /* edi */
  p->esp = (u32)sp;
  p->state = RUNNABLE;
  alive++;
  if (p->parent) p->parent->children++;
  return p;
}

static void sys_exit(u32 r) {
  set_cr3(kernel_pd);
  unmap_user(cur->pd, USER_BASE, USER_STACK_TOP, 0);
  frame_put((u32)cur->pd);
  total_demand += cur->demand;
  total_cow += cur->cow;
  struct proc *p = cur->parent;
  if (p) {
    p->childsum ^= r;
    if (--p->children == 0 && p->state == WAITING) p->state = RUNNABLE;
  } else if (cur->id <= 8) {
    results[cur->id - 1] = r;
    result_demand[cur->id - 1] = cur->demand;
    result_cow[cur->id - 1] = cur->cow;
  }
  cur->state = FREE;
  alive--;
  schedule(); /* never comes back: nothing runs a FREE slot */
}

/* INT 0x80 (an interrupt gate: the kernel runs with interrupts off): EAX = number, EBX, ECX */
static int syscall_handler(struct trap_frame *f) {
  u32 r = 0;
  switch (f->eax) {
  case SYS_YIELD: schedule(); break;
  case SYS_RELEASE: unmap_user(cur->pd, USER_BASE, HEAP_END, 1); break;
  case SYS_FORK: spawn((u32 (*)(u32))f->ebx, f->ecx, copy_space(cur->pd)); break;
  case SYS_WAIT:
    while (cur->children) { cur->state = WAITING; schedule(); }
    r = cur->childsum;
    break;
  case SYS_EXIT: sys_exit(f->ebx); break;
  default: r = 0xFFFFFFFFu; break;
  }
  f->eax = r;
  return 1;
}

/* the processes' side: system calls from ring 3 */
static inline u32 syscall2(u32 n, u32 a, u32 b) {
  u32 r;
  asm volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b) : "memory");
  return r;
}
static void sys_yield(void) { syscall2(SYS_YIELD, 0, 0); }
static void sys_release(void) { syscall2(SYS_RELEASE, 0, 0); }
static void sys_fork(u32 (*fn)(u32), u32 arg) { syscall2(SYS_FORK, (u32)fn, arg); }
static u32 sys_wait(void) { return syscall2(SYS_WAIT, 0, 0); }

/* ---------------------------------------------------------------- the workload */
static u32 p_jobs = 32, p_pages = 32, p_rounds = 2, p_fork = 2, p_verify = 1;

#define HEAP ((volatile u32 *)USER_BASE)

static u32 mix(u32 h, u32 v) { return (h ^ v) * 16777619u; }

static u32 checksum(u32 pages, u32 rounds) {
  u32 h = 2166136261u;
  for (u32 r = 0; r < rounds; r++)
    for (u32 i = 0; i < pages * 1024; i += 4) h = mix(h, HEAP[i] + r);
  return h;
}

/* a child: reads the parent's heap as it was at the fork, writes half of it, exits */
static u32 child(u32 arg) {
  u32 h = checksum(p_pages, 1);
  for (u32 p = 0; p < p_pages; p += 2)
    for (u32 w = 0; w < 1024; w += 8) HEAP[p * 1024 + w] ^= arg + w;
  return mix(h, checksum(p_pages, 1));
}

static u32 worker(u32 id) {
  u32 h = 2166136261u;
  for (u32 j = 0; j < p_jobs; j++) {
    u32 seed = id * 0x9E3779B1u + j * 0x85EBCA6Bu;
    for (u32 p = 0; p < p_pages; p++)       /* first touch: one demand fault per page */
      for (u32 w = 0; w < 1024; w++) HEAP[p * 1024 + w] = seed ^ (p << 10) ^ w;
    h = mix(h, checksum(p_pages, p_rounds));
    if (p_fork && j % p_fork == p_fork - 1) {
      sys_fork(child, seed);
      for (u32 p = 0; p < p_pages; p += 4) HEAP[p * 1024 + 1] += 1; /* copy-on-write faults */
      h = mix(h, checksum(p_pages, 1));
    }
    sys_release();
    sys_yield();
  }
  return mix(h, sys_wait());
}

/* ---------------------------------------------------------------- boot */
static int streq_n(const char *a, const char *b, u32 n) {
  for (u32 i = 0; i < n; i++) if (a[i] != b[i]) return 0;
  return 1;
}

/* key=value tokens; the first token (the kernel's path) and anything without '=' is skipped */
static int parse(const char *s, u32 *procs_n, u32 *hz) {
  struct { const char *k; u32 *v; u32 min, max; } keys[] = {
    { "procs", procs_n, 1, 8 }, { "jobs", &p_jobs, 1, 100000 }, { "pages", &p_pages, 1, REF_PAGES },
    { "rounds", &p_rounds, 1, 1000 }, { "fork", &p_fork, 0, 100000 }, { "hz", hz, 10, 10000 }, { "verify", &p_verify, 0, 1 },
  };
  while (*s) {
    while (*s == ' ') s++;
    const char *t = s;
    while (*s && *s != ' ') s++;
    u32 n = (u32)(s - t), eq = 0;
    while (eq < n && t[eq] != '=') eq++;
    if (n == 0 || eq == n) continue;
    int found = 0;
    for (u32 k = 0; k < sizeof keys / sizeof keys[0]; k++) {
      if (strlen(keys[k].k) != eq || !streq_n(t, keys[k].k, eq)) continue;
      u32 v = 0, d = eq + 1;
      if (d == n) return 0;
      for (; d < n; d++) {
        if (t[d] < '0' || t[d] > '9' || v > 100000000u) return 0;
        v = v * 10 + (u32)(t[d] - '0');
      }
      if (v < keys[k].min || v > keys[k].max) return 0;
      *keys[k].v = v;
      found = 1;
    }
    if (!found) return 0;
  }
  return 1;
}

/* decimal without 64-bit division (no libgcc): long division over 16-bit limbs */
static void print_u64(u64 v) {
  u32 limb[4] = { (u32)(v >> 48) & 0xFFFF, (u32)(v >> 32) & 0xFFFF, (u32)(v >> 16) & 0xFFFF, (u32)v & 0xFFFF };
  char buf[24];
  int n = 0;
  do {
    u32 r = 0;
    for (int k = 0; k < 4; k++) {
      u32 c = (r << 16) | limb[k];
      limb[k] = c / 10;
      r = c % 10;
    }
    buf[n++] = (char)('0' + r);
  } while (limb[0] | limb[1] | limb[2] | limb[3]);
  while (n) serial_putc(buf[--n]);
}

static inline u64 rdtsc64(void) {
  u32 lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return ((u64)hi << 32) | lo;
}

/* The reference: the same computation on plain kernel memory, no paging tricks. */
static u32 ref_parent[REF_PAGES * 1024], ref_child[REF_PAGES * 1024];

static u32 ref_sum(const u32 *m, u32 pages, u32 rounds) {
  u32 h = 2166136261u;
  for (u32 r = 0; r < rounds; r++)
    for (u32 i = 0; i < pages * 1024; i += 4) h = mix(h, m[i] + r);
  return h;
}

static u32 expect_checksum(u32 id) {
  u32 h = 2166136261u, children = 0;
  for (u32 j = 0; j < p_jobs; j++) {
    u32 seed = id * 0x9E3779B1u + j * 0x85EBCA6Bu;
    for (u32 p = 0; p < p_pages; p++)
      for (u32 w = 0; w < 1024; w++) ref_parent[p * 1024 + w] = seed ^ (p << 10) ^ w;
    h = mix(h, ref_sum(ref_parent, p_pages, p_rounds));
    if (p_fork && j % p_fork == p_fork - 1) {
      for (u32 i = 0; i < p_pages * 1024; i++) ref_child[i] = ref_parent[i];
      u32 c = ref_sum(ref_child, p_pages, 1);
      for (u32 p = 0; p < p_pages; p += 2)
        for (u32 w = 0; w < 1024; w += 8) ref_child[p * 1024 + w] ^= seed + w;
      children ^= mix(c, ref_sum(ref_child, p_pages, 1));
      for (u32 p = 0; p < p_pages; p += 4) ref_parent[p * 1024 + 1] += 1;
      h = mix(h, ref_sum(ref_parent, p_pages, 1));
    }
  }
  return mix(h, children);
}

void kmain(u32 magic, struct multiboot_info *mbi) {
  serial_init();
  cpu_init();
  pic_remap(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8);
  kprintf("== linuxlike ==\n");
  if (magic != MB_BOOT_MAGIC || !(mbi->flags & 1)) {
    kprintf("error: not booted by a multiboot loader with memory information\n");
    qemu_exit(2);
  }
  u32 nprocs = 4, hz = 250;
  if (!parse((mbi->flags & 4) ? (const char *)mbi->cmdline : "", &nprocs, &hz)) {
    kprintf("error: bad parameter (procs=1..8 jobs pages=1..128 rounds fork hz=10..10000 verify=0|1)\n");
    qemu_exit(2);
  }
  u32 top = MiB + mbi->mem_upper * 1024u;
  nframes = top > FRAMES_BASE ? (top - FRAMES_BASE) >> 12 : 0;
  if (nframes > FRAMES_MAX) nframes = FRAMES_MAX;
  if (nframes < 512) { kprintf("error: needs at least 10 MiB of memory\n"); qemu_exit(2); }
  for (u32 i = 0; i < nframes; i++) free_list[i] = FRAMES_BASE + (nframes - 1 - i) * PAGE_SIZE;
  free_top = nframes;

  kernel_pd = pgdir_new();
  for (u32 a = 0; a < KERNEL_TOP; a += 4 * MiB) map_large(kernel_pd, a, a, PTE_W | PTE_U);
  paging_enable(kernel_pd);
  gdt_init();
  set_trap_handler(14, pf_handler);
  set_trap_handler(0x80, syscall_handler);
  set_trap_handler(PIC_VECTOR_BASE, timer_handler);
  kprintf("linuxlike-params procs=%u jobs=%u pages=%u rounds=%u fork=%u hz=%u verify=%u\n",
          nprocs, p_jobs, p_pages, p_rounds, p_fork, hz, p_verify);

  cur = &procs[0];
  procs[0].state = RUNNABLE;
  procs[0].pd = kernel_pd;
  for (u32 i = 1; i <= nprocs; i++) spawn(worker, i, pd_new());
  u64 t0 = rdtsc64();
  pit_set_periodic(hz);
  pic_set_mask(0xFFFE);
  while (alive) { sti_hlt(); cli(); } /* the idle process */
  pic_set_mask(0xFFFF);
  u64 t1 = rdtsc64();

  u32 all = 2166136261u, bad = 0;
  for (u32 i = 1; i <= nprocs; i++) {
    u32 want = p_verify ? expect_checksum(i) : results[i - 1];
    kprintf("linuxlike-proc %u checksum=0x%08x demand=%u cow=%u %s\n", i, results[i - 1],
            result_demand[i - 1], result_cow[i - 1], !p_verify ? "unverified" : results[i - 1] == want ? "ok" : "WRONG");
    if (results[i - 1] != want) bad++;
    all = mix(all, results[i - 1]);
  }
  kprintf("linuxlike-summary procs=%u children=%u demand=%u cow=%u checksum=0x%08x\n",
          nprocs, spawned - nprocs, total_demand, total_cow, all);
  kprintf("linuxlike-timing ticks=%u switches=%u cr3-writes=%u frames-peak=%u cycles=", ticks, switches,
          cr3_writes, frames_peak);
  print_u64(t1 - t0);
  kprintf("\n");
  kprintf("== linuxlike: exit %u ==\n", bad ? 1u : 0u);
  qemu_exit(bad ? 1 : 0);
}
