/*
 * mmu: paging and interrupts together, the way a VMM's paging code sees a guest (nested or
 * shadow): 4 MiB PSE pages for the kernel and 4 KiB pages above, accessed/dirty bits (a write
 * after a read sets D), CR3 switches between two address spaces, INVLPG after a PTE edit
 * (also through an alias mapping of the page table and in the inactive address space), page
 * faults handled by the kernel's own #PF handler (CR2 and error code checked, the page mapped
 * or made writable, the instruction retried), and a PIT timer whose handler switches CR3 on
 * every tick and takes a demand fault of its own. Then ring 3 (the kernel's 4 MiB pages are
 * user-accessible so its code can run there): user pages, #PF error codes with the U bit for
 * supervisor, read-only and not-present pages, and a user page mapped on demand. Only
 * architecturally defined outcomes are printed. Exits with 0 when every test passed, else 1.
 */
#include "kernel.h"

#define MiB 0x100000u
#define LARGE 0x40000000u   /* 4 MiB PSE page -> physical 0, A/D cleared by the test */
#define WIN 0x80000000u     /* 4 KiB pages, one page table per address space */
#define SWITCHED (WIN + 0x0000u) /* fa in pda, fb in pdb */
#define AD (WIN + 0x1000u)       /* fc, A/D cleared */
#define INV (WIN + 0x2000u)      /* fa, then fc */
#define RO (WIN + 0x3000u)       /* fd, read-only: the #PF handler makes it writable */
#define UNMAP (WIN + 0x4000u)    /* fa, then not present */
#define PTALIAS (WIN + 0x5000u)  /* pda's page table for WIN, as data */
#define VIA (WIN + 0x6000u)      /* edited through PTALIAS */
#define SHARED 0x90000000u  /* a page table shared by both spaces, demand paged */
#define NOPT 0xA0000000u    /* no page table at first: the #PF handler adds one */
#define IRQPF (SHARED + 0x10000u) /* touched by the timer handler */
#define UPAGE (WIN + 0x7000u)    /* fd, user read/write */
#define UROPAGE (WIN + 0x8000u)  /* fc, user read-only */
#define UDEMAND 0xB0000000u      /* not present: the #PF handler maps a user page */

#define AT(va) (*(volatile u32 *)(va))

static u32 *pda, *pdb, *pta, *ptb, *pts;
static volatile u32 *fa, *fb, *fc, *fd;

/* the #PF handler: demand paging in SHARED and NOPT, write-enable RO; records what it saw */
static volatile u32 pf_count, pf_err, pf_cr2, pf_in_irq;
static volatile u32 in_irq;
static int pf_handler(struct trap_frame *f) {
  u32 cr2 = read_cr2();
  u32 *pd = (u32 *)(read_cr3() & ~0xFFFu);
  int ours = 0;
  if ((cr2 & 0xF0000000u) == SHARED || (cr2 & 0xF0000000u) == NOPT) {
    if (f->err & PTE_P) return 0;
    map_page(pd, cr2 & ~0xFFFu, (u32)page_alloc(), PTE_W);
    ours = 1;
  } else if ((cr2 & 0xF0000000u) == UDEMAND && !(f->err & PTE_P)) {
    map_page(pd, cr2 & ~0xFFFu, (u32)page_alloc(), PTE_W | PTE_U);
    pd[cr2 >> 22] |= PTE_U;
    ours = 1;
  } else if ((cr2 & ~0xFFFu) == RO && f->err == (PTE_P | PTE_W)) {
    *pte_lookup(pd, RO, 0) |= PTE_W;
    invlpg(RO);
    ours = 1;
  }
  if (!ours) return 0; /* the fixup table decides */
  pf_count++;
  pf_err = f->err;
  pf_cr2 = cr2;
  if (in_irq) pf_in_irq++;
  return 1; /* IRET retries the instruction */
}
static void pf_reset(void) { pf_count = 0; pf_err = 0xFFFFFFFFu; pf_cr2 = 0; }

/* the timer: every tick switches to the other address space; tick 5 touches IRQPF */
static volatile u32 ticks, irq_value;
static int timer_switching;
static int timer_handler(struct trap_frame *f) {
  (void)f;
  in_irq = 1;
  ticks++;
  if (timer_switching) {
    write_cr3((read_cr3() & ~0xFFFu) == (u32)pda ? (u32)pdb : (u32)pda);
    if (ticks == 5) irq_value = AT(IRQPF + 8);
  }
  in_irq = 0;
  pic_eoi(0);
  return 1;
}

static void fill(volatile u32 *frame, u32 v) {
  for (u32 k = 0; k < PAGE_SIZE / 4; k++) frame[k] = v + k;
}

static void test_setup(void) {
  fa = page_alloc(); fb = page_alloc(); fc = page_alloc(); fd = page_alloc();
  fill(fa, 0xAAAA0000u); fill(fb, 0xBBBB0000u); fill(fc, 0xCCCC0000u); fill(fd, 0xDDDD0000u);
  pda = pgdir_new();
  pdb = pgdir_new();
  /* the kernel: two 4 MiB pages, the same in both spaces */
  map_large(pda, 0, 0, PTE_W);
  map_large(pda, 4 * MiB, 4 * MiB, PTE_W);
  map_large(pda, LARGE, 0, PTE_W);
  pdb[0] = pda[0];
  pdb[1] = pda[1];
  /* the window: a page table each */
  map_page(pda, SWITCHED, (u32)fa, PTE_W);
  map_page(pda, AD, (u32)fc, PTE_W);
  map_page(pda, INV, (u32)fa, PTE_W);
  map_page(pda, RO, (u32)fd, 0);
  map_page(pda, UNMAP, (u32)fa, PTE_W);
  pta = (u32 *)(pda[WIN >> 22] & ~0xFFFu);
  map_page(pda, PTALIAS, (u32)pta, PTE_W);
  map_page(pda, VIA, (u32)fa, PTE_W);
  map_page(pdb, SWITCHED, (u32)fb, PTE_W);
  ptb = (u32 *)(pdb[WIN >> 22] & ~0xFFFu);
  /* a page table both spaces share, with nothing present yet */
  pts = page_alloc();
  pda[SHARED >> 22] = (u32)pts | PTE_P | PTE_W;
  pdb[SHARED >> 22] = (u32)pts | PTE_P | PTE_W;
}

static void test_paging(void) {
  paging_enable(pda);
  check("paging on: 4 MiB kernel pages, 4 KiB pages above",
        (read_cr0() & CR0_PG) && (read_cr4() & CR4_PSE) && AT(SWITCHED + 4) == 0xAAAA0001u);

  /* 4 MiB page: A, then D, in the PDE */
  pda[LARGE >> 22] &= ~(PTE_A | PTE_D);
  write_cr3(read_cr3());
  static volatile u32 probe = 0x13572468u;
  u32 la = LARGE + (u32)&probe;
  u32 v = AT(la);
  u32 after_read = pda[LARGE >> 22];
  AT(la) = v + 1;
  u32 after_write = pda[LARGE >> 22];
  check("4 MiB page: a read sets accessed in the pde, not dirty",
        v == 0x13572468u && (after_read & (PTE_A | PTE_D)) == PTE_A);
  check("4 MiB page: a write sets dirty in the pde", (after_write & PTE_D) && probe == 0x13572469u);

  /* 4 KiB page: A on a read, D on a later write (the TLB entry from the read has D clear) */
  volatile u32 *pte = pte_lookup(pda, AD, 0);
  *pte &= ~(PTE_A | PTE_D);
  invlpg(AD);
  u32 before = *pte;
  v = AT(AD);
  u32 r1 = *pte;
  AT(AD + 4) = v;
  u32 r2 = *pte;
  check("a/d: a read sets accessed only", (before & (PTE_A | PTE_D)) == 0 && (r1 & (PTE_A | PTE_D)) == PTE_A);
  check("a/d: a write after the read sets dirty", (r2 & (PTE_A | PTE_D)) == (PTE_A | PTE_D) && fc[1] == 0xCCCC0000u);
  fc[1] = 0xCCCC0001u;

  /* CR3 switches */
  u32 a1 = AT(SWITCHED);
  write_cr3((u32)pdb);
  u32 b1 = AT(SWITCHED);
  AT(SWITCHED + 8) = 0x5A5A5A5Au;
  write_cr3((u32)pda);
  u32 a2 = AT(SWITCHED);
  AT(SWITCHED + 12) = 0xA5A5A5A5u;
  check("cr3-switch: each address space sees its own frame", a1 == 0xAAAA0000u && b1 == 0xBBBB0000u && a2 == 0xAAAA0000u);
  check("cr3-switch: writes land in the current space's frame",
        fb[2] == 0x5A5A5A5Au && fa[2] == 0xAAAA0002u && fa[3] == 0xA5A5A5A5u && fb[3] == 0xBBBB0003u);
  fb[2] = 0xBBBB0002u;
  fa[3] = 0xAAAA0003u;

  /* INVLPG after a PTE edit */
  u32 old = AT(INV);
  *pte_lookup(pda, INV, 0) = (u32)fc | PTE_P | PTE_W;
  invlpg(INV);
  check("invlpg: a changed pte is visible", old == 0xAAAA0000u && AT(INV) == 0xCCCC0000u);
  old = AT(VIA);
  AT(PTALIAS + ((VIA >> 12) & 0x3FF) * 4) = (u32)fb | PTE_P | PTE_W;
  invlpg(VIA);
  check("invlpg: a pte written through an alias of its page table", old == 0xAAAA0000u && AT(VIA) == 0xBBBB0000u);

  /* a PTE edit in the inactive space shows once it is current */
  write_cr3((u32)pdb);
  old = AT(SWITCHED);
  write_cr3((u32)pda);
  ptb[(SWITCHED >> 12) & 0x3FF] = (u32)fc | PTE_P | PTE_W;
  write_cr3((u32)pdb);
  u32 now = AT(SWITCHED);
  ptb[(SWITCHED >> 12) & 0x3FF] = (u32)fb | PTE_P | PTE_W;
  invlpg(SWITCHED);
  u32 back = AT(SWITCHED);
  write_cr3((u32)pda);
  check("cr3-switch: a pte edited in the inactive space is seen after the switch",
        old == 0xBBBB0000u && now == 0xCCCC0000u && back == 0xBBBB0000u);

  /* page faults, handled and retried */
  set_trap_handler(14, pf_handler);
  pf_reset();
  v = AT(SHARED + 0x40);
  check("#PF: not-present read, error code 0, cr2, mapped and retried",
        pf_count == 1 && pf_err == 0 && pf_cr2 == SHARED + 0x40 && v == 0);
  pf_reset();
  AT(SHARED + 0x1000 + 4) = 0x600DF00Du;
  check("#PF: not-present write, error code 2, cr2, mapped and retried",
        pf_count == 1 && pf_err == 2 && pf_cr2 == SHARED + 0x1004 && AT(SHARED + 0x1004) == 0x600DF00Du);
  pf_reset();
  AT(NOPT + 8) = 0x12345678u;
  check("#PF: no page table yet, one fault maps both levels", pf_count == 1 && pf_err == 2 && AT(NOPT + 8) == 0x12345678u);
  pf_reset();
  v = AT(RO);
  AT(RO + 4) = 0xFEEDu;
  check("#PF: write to a read-only page, error code 3, made writable and retried",
        pf_count == 1 && pf_err == 3 && pf_cr2 == RO + 4 && v == 0xDDDD0000u && fd[1] == 0xFEEDu);
  pf_reset();
  AT(RO + 8) = 0xBEEFu;
  check("#PF: the second write needs no fault", pf_count == 0 && fd[2] == 0xBEEFu);
  write_cr3((u32)pdb);
  v = AT(SHARED + 0x1004);
  write_cr3((u32)pda);
  check("#PF: a page mapped in a shared page table is seen from the other space", pf_count == 0 && v == 0x600DF00Du);

  /* unmapping: clear the PTE, INVLPG, the access faults */
  v = AT(UNMAP);
  *pte_lookup(pda, UNMAP, 0) = 0;
  invlpg(UNMAP);
  fault_reset();
  u32 got = 0x77777777u;
  asm volatile(FIXUP("movl (%1), %0") : "+r"(got) : "r"(UNMAP + 16) : "memory");
  check("unmap + invlpg: the next access faults (error code 0, cr2)",
        v == 0xAAAA0000u && last_fault.count == 1 && last_fault.vector == 14 && last_fault.err == 0 &&
        last_fault.cr2 == UNMAP + 16 && got == 0x77777777u);
}

static void test_timer(void) {
  pic_remap(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8);
  set_trap_handler(PIC_VECTOR_BASE, timer_handler);
  pit_set_periodic(1000);
  pic_set_mask(0xFFFE);
  ticks = 0;
  sti();
  u32 spins = 0;
  while (ticks < 10 && ++spins < 100000000u) hlt();
  cli();
  check("timer: pit irq0 ticks with paging on (10 with hlt)", ticks >= 10);

  /* every tick switches CR3; the main line sees the frame of whichever space is current */
  pf_reset();
  irq_value = 0xFFFFFFFFu;
  ticks = 0;
  timer_switching = 1;
  u32 bad = 0, seen_a = 0, seen_b = 0;
  spins = 0;
  for (;;) {
    sti_hlt(); /* woken by the tick, which switched the space */
    cli();
    if (ticks >= 20 || ++spins >= 100000000u) break;
    u32 cr3 = read_cr3() & ~0xFFFu;
    u32 v = AT(SWITCHED);
    if (cr3 == (u32)pda) { seen_a++; if (v != 0xAAAA0000u) bad++; }
    else if (cr3 == (u32)pdb) { seen_b++; if (v != 0xBBBB0000u) bad++; }
    else bad++;
  }
  timer_switching = 0;
  pic_set_mask(0xFFFF);
  write_cr3((u32)pda);
  check("timer: the handler switches cr3 on every tick", ticks >= 20);
  check("timer: the main line always sees the current space's frame", bad == 0 && seen_a > 0 && seen_b > 0);
  check("timer: a #PF inside the handler is fixed and retried",
        pf_count == 1 && pf_in_irq == 1 && pf_err == 0 && pf_cr2 == IRQPF + 8 && irq_value == 0);
}

/* ---- ring 3: a GDT with user segments and a TSS, INT 0x80 back to the kernel ---- */
static struct {
  u32 link, esp0, ss0, esp1, ss1, esp2, ss2, cr3, eip, eflags, eax, ecx, edx, ebx, esp, ebp, esi, edi;
  u32 es, cs, ss, ds, fs, gs, ldt, iomap;
} tss __attribute__((aligned(16)));
static u64 gdt[6] __attribute__((aligned(8)));
static u32 ring0_stack[1024] __attribute__((aligned(16)));
static u32 user_stack[1024] __attribute__((aligned(16)));

static void ring3_init(void) {
  gdt[1] = 0x00CF9A000000FFFFull; /* 0x08 kernel code */
  gdt[2] = 0x00CF92000000FFFFull; /* 0x10 kernel data */
  gdt[3] = 0x00CFFA000000FFFFull; /* 0x1B user code */
  gdt[4] = 0x00CFF2000000FFFFull; /* 0x23 user data */
  u32 base = (u32)&tss, limit = sizeof tss - 1;
  gdt[5] = (limit & 0xFFFF) | ((u64)(base & 0xFFFFFF) << 16) | ((u64)0x89 << 40) | ((u64)(base >> 24) << 56);
  tss.ss0 = KERNEL_DS;
  tss.esp0 = (u32)&ring0_stack[1024];
  tss.iomap = sizeof tss;
  struct __attribute__((packed)) { u16 limit; u32 base; } g = { sizeof gdt - 1, (u32)gdt }, i;
  asm volatile("lgdt %0" : : "m"(g) : "memory");
  asm volatile("ltr %w0" : : "r"(0x28));
  asm volatile("sidt %0" : "=m"(i));
  ((u32 *)(i.base + 0x80 * 8))[1] |= 0x6000u; /* DPL 3 */
}

/* run_user(eip): IRET to ring 3 at eip (IF clear) on user_stack; INT 0x80 comes back here */
void run_user(u32 eip, u32 esp);
void user_return(void);
u32 saved_ksp; /* referenced from the asm below */
asm(".text\n"
    ".globl run_user, user_return\n"
    "run_user:\n\t"
    "pushl %ebp\n\tpushl %ebx\n\tpushl %esi\n\tpushl %edi\n\t"
    "movl %esp, saved_ksp\n\t"
    "movl 20(%esp), %eax\n\t"
    "movl 24(%esp), %ecx\n\t"
    "pushl $0x23\n\tpushl %ecx\n\tpushl $0x002\n\tpushl $0x1B\n\tpushl %eax\n\t"
    "movl $0x23, %edx\n\tmovl %edx, %ds\n\tmovl %edx, %es\n\t"
    "iretl\n"
    "user_return:\n\t"
    "movl saved_ksp, %esp\n\t"
    "movl $0x10, %eax\n\tmovl %eax, %ds\n\tmovl %eax, %es\n\t"
    "popl %edi\n\tpopl %esi\n\tpopl %ebx\n\tpopl %ebp\n\t"
    "ret\n");

static volatile u32 user_cs_seen;
static int back_to_kernel(struct trap_frame *f) {
  user_cs_seen = f->cs;
  f->cs = KERNEL_CS;
  f->eip = (u32)user_return;
  return 1;
}

/* ring-3 code (in the kernel image, whose pages are user-accessible) */
static volatile u32 u_read, u_got1, u_got2, u_got3;
static void user_rw(void) {
  u_read = AT(UPAGE);
  AT(UPAGE + 4) = 0x0000BEEFu;
  asm volatile("int $0x80");
}
static void user_faults(void) {
  u32 v = 0x11111111u;
  asm volatile(FIXUP("movl (%1), %0") : "+r"(v) : "r"(SWITCHED) : "memory");
  u_got1 = last_fault.err | (last_fault.cr2 == SWITCHED ? 0x100 : 0);
  asm volatile(FIXUP("movl %0, (%1)") : : "r"(1u), "r"(UROPAGE + 8) : "memory");
  u_got2 = last_fault.err | (last_fault.cr2 == UROPAGE + 8 ? 0x100 : 0);
  asm volatile(FIXUP("movl %0, (%1)") : : "r"(2u), "r"(UNMAP + 12) : "memory");
  u_got3 = last_fault.err | (last_fault.cr2 == UNMAP + 12 ? 0x100 : 0);
  asm volatile("int $0x80");
}
static void user_demand(void) {
  AT(UDEMAND + 0x20) = 0x7E57u;
  u_read = AT(UDEMAND + 0x20);
  asm volatile("int $0x80");
}

static void test_ring3(void) {
  write_cr3((u32)pda);
  pda[0] |= PTE_U;
  pda[1] |= PTE_U;
  map_page(pda, UPAGE, (u32)fd, PTE_W | PTE_U);
  map_page(pda, UROPAGE, (u32)fc, PTE_U);
  pda[WIN >> 22] |= PTE_U;
  write_cr3((u32)pda);
  ring3_init();
  set_trap_handler(0x80, back_to_kernel);

  fd[0] = 0x0000CAFEu;
  run_user((u32)user_rw, (u32)&user_stack[1024]);
  check("ring 3: runs with cpl 3 and returns through int 0x80", (user_cs_seen & 3) == 3);
  check("ring 3: reads and writes a user page", u_read == 0x0000CAFEu && fd[1] == 0x0000BEEFu);

  fault_reset();
  run_user((u32)user_faults, (u32)&user_stack[1024]);
  check("ring 3: a supervisor page faults with error code 5 (present, user), cr2", u_got1 == 0x105);
  check("ring 3: a write to a read-only user page faults with error code 7, cr2", u_got2 == 0x107 && fc[2] != 1u);
  check("ring 3: a not-present page faults with error code 6 (user write), cr2", u_got3 == 0x106 && last_fault.count == 3);

  pf_reset();
  run_user((u32)user_demand, (u32)&user_stack[1024]);
  check("ring 3: the #PF handler maps a user page on demand (error code 6), retried",
        pf_count == 1 && pf_err == 6 && pf_cr2 == UDEMAND + 0x20 && u_read == 0x7E57u);
}

void kmain(u32 magic, struct multiboot_info *mbi) {
  (void)mbi;
  serial_init();
  cpu_init();
  pic_remap(PIC_VECTOR_BASE, PIC_VECTOR_BASE + 8);
  test_begin("mmu");
  check("multiboot magic", magic == MB_BOOT_MAGIC);
  test_setup();
  test_paging();
  test_timer();
  test_ring3();
  test_end();
}
