// A protected-mode environment for bare test programs (segmentation, far transfers, task
// switching): a prelude that loads a GDT, an IDT whose handlers log every exception, and a TSS,
// then runs the test's body at CPL 0 with flat segments. The body records results in memory;
// the tests read them back from the machine's RAM (robust whatever else the core can do).
//
// Memory map (linear = physical, paging off unless a test turns it on):
//   0x10000  the image (prelude, handlers, GDT, IDT, then the body)
//   0x20000  COUNT: number of logged exceptions      0x20004 RESUME: where the handler resumes
//   0x20008  DONE marker (0xd0e0d0e0 when the body reached `done`)
//   0x2000c  BACK: where INT 0x81 (RING0 macro) continues at CPL 0
//   0x20100  OUT: results, OUT + 4*n
//   0x20800  LOG: 16 bytes per exception: vector, error code (-1: none), EIP, CS
//   0x30000  TSS0 (main task, selector 0x28)   0x30100 TSS1 (0x30)   0x30200 TSS2 (0x38)
//   0x30300  TSS3, 16-bit (0x40)               0x31000 LDT (selector 0x70, 8 entries)
//   0x3f000  ring-0 stack top from TSS0 (ESP0) 0x40000 the prelude's own ring-0 stack top
//   0x44000  ring-1 stack top (ESP1)           0x46000 ring-2 stack top (ESP2)
//   0x48000  ring-3 stack top                  0x4c000 TSS1's stack  0x50000 TSS2's stack
import { assemble, type BareResult, runBare } from './bare.ts';

export const ORG = 0x10000;
export const COUNT = 0x20000, RESUME = 0x20004, DONE = 0x20008, BACK = 0x2000c, OUT = 0x20100, LOG = 0x20800;
export const TSS0 = 0x30000, TSS1 = 0x30100, TSS2 = 0x30200, TSS3 = 0x30300, LDT = 0x31000;
export const ESP0 = 0x3f000, STACK0 = 0x40000, ESP1 = 0x44000, ESP2 = 0x46000, STACK3 = 0x48000;
export const STACK_T1 = 0x4c000, STACK_T2 = 0x50000;

/** The standard GDT, by selector. Extra descriptors (gdtExtra) start at EXTRA. */
export const SEL = {
  code0: 0x08, data0: 0x10, code3: 0x18, data3: 0x20, tss0: 0x28, tss1: 0x30, tss2: 0x38, tss16: 0x40,
  code1: 0x48, data1: 0x50, conf0: 0x58, code2: 0x60, data2: 0x68, ldt: 0x70, np: 0x78, ro: 0x80,
  xo: 0x88, small: 0x90, down: 0x98, code16: 0xa0, data16: 0xa8, conf3: 0xb0,
} as const;
export const EXTRA = 0xb8;

/** Vectors with an error code (the stub pushes none of its own). */
const ERR = new Set([8, 10, 11, 12, 13, 14, 17]);
export const NVEC = 0x82;

export interface PmOptions {
  /** Extra GDT lines (SEG/GATE macro uses), one descriptor each, from selector 0xb8 up. */
  gdtExtra?: string[];
  /** IDT entries to replace, by vector (a GATE/TGATE macro line). */
  idt?: Record<number, string>;
  /** Extra code or data placed after the body. */
  extra?: string;
  /** LDT lines (SEG macro uses), placed in the image and copied to LDT at start-up. */
  ldt?: string[];
  maxCycles?: number;
}

const HEADER = `
.code32
.equ ORG, ${ORG}
.equ COUNT, ${COUNT}
.equ RESUME, ${RESUME}
.equ DONE, ${DONE}
.equ BACK, ${BACK}
.equ OUT, ${OUT}
.equ LOG, ${LOG}
.equ TSS0, ${TSS0}
.equ TSS1, ${TSS1}
.equ TSS2, ${TSS2}
.equ TSS3, ${TSS3}
.equ LDT, ${LDT}
.equ ESP0, ${ESP0}
.equ STACK0, ${STACK0}
.equ ESP1, ${ESP1}
.equ ESP2, ${ESP2}
.equ STACK3, ${STACK3}
.equ STACK_T1, ${STACK_T1}
.equ STACK_T2, ${STACK_T2}
# a code or data descriptor: base, limit (20 bits), attributes (G/DB in bits 12-15, P/DPL/S/type in 0-7)
.macro SEG base, limit, attr
  .word (\\limit) & 0xffff
  .word (\\base) & 0xffff
  .byte ((\\base) >> 16) & 0xff
  .byte (\\attr) & 0xff
  .byte (((\\limit) >> 16) & 0x0f) | (((\\attr) >> 8) & 0xf0)
  .byte ((\\base) >> 24) & 0xff
.endm
# a gate (call, interrupt, trap) to selector:label; attr = P/DPL/type in bits 8-15, param count in 0-4
.macro GATE sel, target, attr
  .word ((\\target) - start + ORG) & 0xffff
  .word \\sel
  .word \\attr
  .word ((((\\target) - start + ORG) >> 16) & 0xffff)
.endm
# a task gate (P, DPL) to a TSS selector
.macro TGATE tss, attr=0x8500
  .word 0
  .word \\tss
  .word \\attr
  .word 0
.endm
# to CPL 3 at target: DS/ES = 0x23, SS:ESP = 0x23:STACK3, EFLAGS = flags (FS/GS stay 0x10: nulled)
.macro RING3 target, flags=0x202
  mov $0x23, %ax
  mov %ax, %ds
  mov %ax, %es
  push $0x23
  push $STACK3
  push $\\flags
  push $0x1b
  push $\\target
  iret
.endm
# from CPL 3 back to CPL 0 at target (INT 0x81): flat ring-0 segments, the prelude's stack
.macro RING0 target
  movl $\\target, %ss:BACK
  int $0x81
.endm
`;

function stubs(): string {
  let s = '';
  for (let v = 0; v < NVEC; v++) {
    s += `stub_${v}:\n${ERR.has(v) ? '' : '  push $-1\n'}  push $${v}\n  jmp common\n`;
  }
  return s;
}

function idtLines(over: Record<number, string>): string {
  let s = '';
  for (let v = 0; v < NVEC; v++) {
    const def = v === 0x81 ? '  GATE 0x08, to_ring0, 0xee00' : `  GATE 0x08, stub_${v}, ${v === 0x80 ? '0xee00' : '0x8e00'}`;
    s += (over[v] ?? def) + '\n';
  }
  return s;
}

/** The whole program: prelude, handlers, tables, the body (label `test`), `done`. */
export function pmSource(body: string, o: PmOptions = {}): string {
  const ldt = o.ldt ?? [];
  return `${HEADER}
start:
  lgdt gdt_ptr
  lidt idt_ptr
  ljmp $0x08, $1f
1:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %fs
  mov %ax, %gs
  mov %ax, %ss
  mov $STACK0, %esp
  movl $fail, RESUME
  # TSS0: the ring stacks
  movl $ESP0, TSS0+4
  movl $0x10, TSS0+8
  movl $ESP1, TSS0+12
  movl $0x51, TSS0+16
  movl $ESP2, TSS0+20
  movl $0x6a, TSS0+24
  movw $0x68, TSS0+0x66
  # TSS1 and TSS2: ring-0 tasks at task1/task2 (the body defines them, or they fail)
  mov $TSS1, %edi
  movl $task1, %eax
  mov $STACK_T1, %ebx
  call init_tss
  mov $TSS2, %edi
  movl $task2, %eax
  mov $STACK_T2, %ebx
  call init_tss
  # the LDT image
  mov $ldt_image, %esi
  mov $LDT, %edi
  mov $(ldt_end - ldt_image), %ecx
  jecxz 2f
3: movb (%esi), %al
  movb %al, (%edi)
  inc %esi
  inc %edi
  loop 3b
2:
  mov $0x28, %ax
  ltr %ax
  jmp test

# init_tss: edi = TSS, eax = EIP, ebx = ESP; flat ring-0 segments, EFLAGS = 2
init_tss:
  movl $ESP0, 4(%edi)
  movl $0x10, 8(%edi)
  movl %eax, 0x20(%edi)
  movl $2, 0x24(%edi)
  movl %ebx, 0x38(%edi)
  movl $0x10, 0x48(%edi)
  movl $0x08, 0x4c(%edi)
  movl $0x10, 0x50(%edi)
  movl $0x10, 0x54(%edi)
  movl $0x10, 0x58(%edi)
  movl $0x10, 0x5c(%edi)
  movw $0x68, 0x66(%edi)
  ret

${/^\s*task1:/m.test(body + (o.extra ?? '')) ? '' : 'task1:'}
${/^\s*task2:/m.test(body + (o.extra ?? '')) ? '' : 'task2:'}
fail:
  mov $0x10, %ax
  mov %ax, %ds
  movl $0xfa11, DONE
  mov $0x7e, %al
  out %al, $0xf4
  cli
  hlt

done:
  mov $0x10, %ax
  mov %ax, %ds
  movl $0xd0e0d0e0, DONE
  mov $0, %al
  out %al, $0xf4
  cli
  hlt

to_ring0:
  mov $0x10, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %fs
  mov %ax, %gs
  mov %ax, %ss
  mov $STACK0, %esp
  jmp *BACK

# every exception: log vector, error code, EIP, CS; resume at RESUME
common:
  push %ds
  push %eax
  push %ebx
  mov $0x10, %ax
  mov %ax, %ds
  mov COUNT, %ebx
  cmp $64, %ebx
  jae fail
  shl $4, %ebx
  mov 12(%esp), %eax
  mov %eax, LOG(%ebx)
  mov 16(%esp), %eax
  mov %eax, LOG+4(%ebx)
  mov 20(%esp), %eax
  mov %eax, LOG+8(%ebx)
  mov 24(%esp), %eax
  mov %eax, LOG+12(%ebx)
  incl COUNT
  mov RESUME, %eax
  mov %eax, 20(%esp)
  pop %ebx
  pop %eax
  pop %ds
  add $8, %esp
  iret

${stubs()}

.p2align 3
gdt:
  .quad 0
  SEG 0, 0xfffff, 0xc09a
  SEG 0, 0xfffff, 0xc092
  SEG 0, 0xfffff, 0xc0fa
  SEG 0, 0xfffff, 0xc0f2
  SEG TSS0, 0x67, 0x0089
  SEG TSS1, 0x67, 0x0089
  SEG TSS2, 0x67, 0x0089
  SEG TSS3, 0x2b, 0x0081
  SEG 0, 0xfffff, 0xc0ba
  SEG 0, 0xfffff, 0xc0b2
  SEG 0, 0xfffff, 0xc09e
  SEG 0, 0xfffff, 0xc0da
  SEG 0, 0xfffff, 0xc0d2
  SEG LDT, 0x3f, 0x0082
  SEG 0, 0xfffff, 0xc012
  SEG 0, 0xfffff, 0xc090
  SEG 0, 0xfffff, 0xc098
  SEG 0x20000, 0xfff, 0x4092
  SEG 0, 0x0fff, 0x0096
  SEG 0, 0xffff, 0x009a
  SEG 0, 0xffff, 0x0092
  SEG 0, 0xfffff, 0xc0fe
${(o.gdtExtra ?? []).map((l) => '  ' + l).join('\n')}
gdt_end:
gdt_ptr:
  .word gdt_end - gdt - 1
  .long gdt

.p2align 3
idt:
${idtLines(o.idt ?? {})}
idt_end:
idt_ptr:
  .word idt_end - idt - 1
  .long idt

ldt_image:
${ldt.map((l) => '  ' + l).join('\n')}
ldt_end:

test:
${body}
  jmp done

${o.extra ?? ''}
`;
}

export interface LogEntry { vec: number; err: number; eip: number; cs: number }

export interface PmResult extends BareResult {
  /** Exceptions the handlers logged, in order. */
  log: LogEntry[];
  /** OUT + 4*n. */
  out32(n: number): number;
  /** Any dword of RAM. */
  u32(addr: number): number;
  u16(addr: number): number;
  /** The body reached `done`. */
  done: boolean;
}

/** Assembles and runs a protected-mode test program (starts flat32 at ORG). */
export function runPm(body: string, o: PmOptions = {}): PmResult {
  const img = assemble(pmSource(body, o), ORG);
  const r = runBare(img, { org: ORG, start: 'flat32', maxCycles: o.maxCycles ?? 5_000_000 });
  const u32 = (a: number) => r.mem.read(a, 4) >>> 0;
  const n = u32(COUNT);
  const log: LogEntry[] = [];
  for (let k = 0; k < Math.min(n, 64); k++) {
    const e = LOG + 16 * k;
    log.push({ vec: u32(e), err: u32(e + 4) | 0, eip: u32(e + 8), cs: u32(e + 12) & 0xffff });
  }
  return {
    ...r, log,
    out32: (k: number) => u32(OUT + 4 * k),
    u32, u16: (a: number) => r.mem.read(a, 2),
    done: u32(DONE) === 0xd0e0d0e0,
  };
}

/** A log entry as a short string, for readable assertions. */
export function fmt(e: LogEntry): string {
  return `#${e.vec}(${e.err < 0 ? '-' : '0x' + e.err.toString(16)})`;
}
