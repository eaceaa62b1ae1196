/**
 * What a system call handler gets and returns. A handler is a function of a SysCtx: the kernel,
 * the core and the calling thread, its process, and the six argument registers (Linux i386:
 * EBX ECX EDX ESI EDI EBP; with SYSENTER the sixth is at [EBP]). It returns the value for EAX
 * (a negative errno on failure), or asks to block the thread, or says the thread is gone.
 */
import type { Cpu } from '../../hw/cpu/cpu.ts';
import type { Kernel } from '../kernel.ts';
import type { MmError } from '../mm/result.ts';
import { ERRNO } from '../mm/result.ts';
import type { Process } from '../proc/process.ts';
import type { Thread } from '../sched/thread.ts';

export interface SysCtx {
  readonly k: Kernel;
  readonly cpu: Cpu;
  readonly core: number;
  readonly thread: Thread;
  readonly proc: Process;
  /** The six arguments as unsigned 32-bit values. */
  readonly a: readonly number[];
  readonly nr: number;
}

/** The thread sleeps until `until` (cycles; Infinity: until woken); `onResume` gives EAX when it runs again. */
export interface SysBlock { readonly kind: 'block'; readonly until: number; readonly onResume: () => number }

/** The calling thread does not return (exit, a fatal signal). */
export const NORETURN = Symbol('noreturn');

export type SysRet = number | SysBlock | typeof NORETURN;

/**
 * How --strace shows an argument: d signed decimal, u unsigned, x hex, p pointer (NULL or hex),
 * s NUL-terminated string, b output buffer (its length is the next argument), B input buffer
 * (filled by the call; its length is the result), o octal, - not shown.
 */
export type ArgFmt = 'd' | 'u' | 'x' | 'p' | 's' | 'b' | 'B' | 'o' | '-';

export interface SyscallDef {
  readonly name: string;
  /** Argument formats for --strace (their count is the call's argument count). */
  readonly args: string;
  readonly fn: (c: SysCtx) => SysRet;
  /** Return shown in hex (mmap2, brk). */
  readonly hexResult?: boolean;
}

export const errno = (e: MmError): number => -ERRNO[e];

/** Signed view of a 32-bit argument. */
export const s32 = (v: number): number => v | 0;
