/**
 * The LWK's cost table: what each piece of kernel work charges to the core it runs on
 * (DESIGN.md, "Time and determinism"). Host software pays a fixed cost per handler plus a
 * per-word cost for each word of emulated memory it reads or writes; register accesses of
 * devices cost what the hardware table (hw/costs.ts) says a port access or an MSR access costs.
 *
 * Every entry names its source and whether it was measured or assumed, like hw/costs.ts.
 * Figures for "a kernel path of N instructions" assume about one cycle per instruction (the
 * CPU table's simple class). Another engineer's kernel/mm/ code may append its own entries
 * below (the page-table and allocator costs live with the code that charges them).
 */
import type { Cpu } from '../hw/cpu/cpu.ts';
import { type CostEntry, type CostSource, insnCosts } from '../hw/costs.ts';

function c(cycles: number, kind: CostSource, source: string): CostEntry {
  return { cycles, kind, source };
}

const LMBENCH = 'lmbench lat_syscall/lat_sig/lat_ctx figures for Linux on P6-class and later x86 (McVoy & Staelin, USENIX 1996; later runs)';
const KITTEN = 'Kitten LWK source (arch/x86_64/kernel/entry.S, kernel/sched.c): path lengths of the entry, timer and schedule code';

export const kernelCosts = {
  // ---- entry and exit
  syscallEntry: c(120, 'assumed', `${LMBENCH}: a null system call through INT 0x80 costs ~200-300 cycles on P6, of which the INT/IRET pair (charged by the CPU) is ~100; the rest is the entry stub, register save, table dispatch and the exit path`),
  sysenterEntry: c(60, 'assumed', `${LMBENCH}: SYSENTER/SYSEXIT roughly halve the null-syscall cost against INT 0x80 (Linux 2.6 measurements, P6/P4)`),
  syscallBody: c(20, 'assumed', 'the body of a trivial system call (getpid, a flag store): a few dozen instructions'),
  exceptionEntry: c(200, 'assumed', `${KITTEN}: the exception stub, register save and the fault lookup`),
  interruptEntry: c(150, 'assumed', `${KITTEN}: the interrupt stub, register save, vector dispatch and EOI path`),
  idleWake: c(100, 'assumed', 'leaving the idle loop after HLT: interrupt entry without a user frame to save'),
  // ---- memory touched by the kernel
  memWord: c(1, 'assumed', 'one 32-bit word of emulated memory read or written by kernel code, an L1 hit (DESIGN.md cost model)'),
  // ---- devices
  portAccess: insnCosts.io,
  msrAccess: insnCosts.msr,
  mmioAccess: c(60, 'assumed', 'an uncached MMIO access to the local APIC page: tens of cycles on P6/K8 (xAPIC register accesses are uncached loads/stores)'),
  // ---- scheduling
  schedule: c(150, 'assumed', `${KITTEN}: picking the next task from a per-core run queue (a list walk of a few entries)`),
  contextSwitch: c(400, 'assumed', `${LMBENCH}: lat_ctx 2-process context switch ~1-2 us on P6 including cache refill; the register save/restore and CR3 load part is a few hundred cycles (the TLB refill is charged by the CPU model as misses)`),
  timerDecision: c(80, 'assumed', 'computing the next timer deadline from the run queue and the sleep list'),
  ipiSend: c(100, 'assumed', 'building and writing the ICR (two MMIO writes plus checks); charged on top of the MMIO accesses'),
  kthreadStep: c(50, 'assumed', 'resuming a kernel thread (a generator) and handling its request'),
  // ---- the host interface (kernel/hostif/)
  vmrunEntry: c(120, 'assumed', 'Palacios v3_svm_launch / KVM svm_vcpu_run entry: loading the guest GPRs from the save area (the register words themselves are charged per word), the checks before VMRUN'),
  vmexitEntry: c(150, 'assumed', 'KVM svm_vcpu_run exit path / Palacios v3_svm_enter after VMRUN: storing the guest GPRs (charged per word), reading EXITCODE, host state fix-ups before interrupts are re-enabled (~150 instructions)'),
  hostMessage: c(60, 'assumed', 'taking one cross-core request (start, wake, lock hand-over, call) off a per-core mailbox and acting on it: a list pop and a few stores, as a Linux smp_call_function_single IPI handler does'),
  hostLock: c(40, 'assumed', 'acquiring or releasing a kernel mutex without contention, or queueing a waiter: a compare-and-swap and a list operation'),
  hostAlloc: c(50, 'assumed', 'the host-interface wrapper around pmem for the VMM (argument checks, the live-block table); pmem charges its own walk'),
  // ---- processes
  elfLoadBase: c(5_000, 'assumed', 'parsing the ELF header and program headers, building the process structures'),
  signalDelivery: c(1_000, 'assumed', `${LMBENCH}: lat_sig catch ~1-3 us on P6: frame set-up on the user stack`),
  processExit: c(2_000, 'assumed', 'tearing down a process: freeing its regions and structures'),
  processCreate: c(3_000, 'assumed', `${LMBENCH}: lat_proc fork ~100 us on P6 is mostly the address-space copy (charged per word by kernel/mm); the rest, copy_process building the task, descriptor-table and signal structures, is a few thousand instructions`),
  threadCreate: c(1_500, 'assumed', 'clone(CLONE_THREAD): a task structure sharing everything else (Linux copy_process with CLONE_VM|CLONE_FILES|CLONE_SIGHAND: about half the work of a fork without its memory)'),
  futexQueue: c(100, 'assumed', 'Linux kernel/futex: hashing the futex key and walking one hash bucket to queue or wake a waiter'),
  // ---- boot (Intel MultiProcessor Specification 1.4, appendix B.4: the universal start-up algorithm)
  apInitDelay: c(22_000_000, 'assumed', 'MP spec B.4: wait 10 ms after the INIT IPI (at 2.2 GHz), as Linux does on older CPUs'),
  apSipiDelay: c(440_000, 'assumed', 'MP spec B.4: wait 200 us after each STARTUP IPI (at 2.2 GHz)'),
  coreSetup: c(10_000, 'assumed', 'per-core set-up: descriptor tables, MSRs, local APIC programming, per-core data'),
} as const satisfies Record<string, CostEntry>;

export type KernelCost = keyof typeof kernelCosts;

/** Charges `n` times the cost `what` to the core. */
export function charge(cpu: Cpu, what: KernelCost, n = 1): void {
  cpu.cycles += kernelCosts[what].cycles * n;
}

/** Charges the kernel's access to `bytes` bytes of emulated memory (rounded up to words). */
export function chargeMem(cpu: Cpu, bytes: number): void {
  cpu.cycles += kernelCosts.memWord.cycles * Math.ceil(bytes / 4);
}

/** The table as rows, for `--stats` and experiments. */
export function kernelCostRows(): { name: string; cycles: number; kind: CostSource; source: string }[] {
  return Object.entries(kernelCosts).map(([k, v]) => ({ name: `kernel.${k}`, ...v }));
}

// ---- physical memory and address spaces (kernel/mm/; appended by the mm engineer) ----------
// kernel/mm/ charges a `Meter` (anything with a `cycles` field: a Cpu is one) passed to each
// call. Emulated memory it zeroes, copies or reads is charged per word at kernelCosts.memWord
// (a copy touches two words per word moved: a read and a write).

/** What kernel/mm/ charges: anything with a cycle counter (a Cpu, or a plain counter in tests). */
export interface Meter { cycles: number }

export const mmCosts = {
  pmemCall: c(100, 'assumed', 'Kitten mm/pmem.c: entering pmem_alloc/pmem_free, validating the request and updating the region list (~100 instructions at ~1 cycle each)'),
  pmemExtent: c(4, 'assumed', 'Kitten mm/pmem.c: one step of the walk over the region list (a load, a compare and a branch per region, list in cache)'),
  aspaceCall: c(200, 'assumed', 'Kitten mm/aspace.c / Linux mm/mmap.c: finding, splitting and merging the regions of an address space (~200 instructions per call, VMA work of an mmap/munmap/mprotect, lmbench-scale)'),
  pteWrite: c(3, 'assumed', 'one page-table or page-directory entry computed and stored: the store (kernelCosts.memWord) plus ~2 instructions of the fill loop (Linux remap_pfn_range/copy_pte_range inner loop)'),
} as const satisfies Record<string, CostEntry>;

export type MmCost = keyof typeof mmCosts;

/** The mm table as rows, for `--stats` and experiments. */
export function mmCostRows(): { name: string; cycles: number; kind: CostSource; source: string }[] {
  return Object.entries(mmCosts).map(([k, v]) => ({ name: `mm.${k}`, ...v }));
}
