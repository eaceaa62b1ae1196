/* Multiboot v1 header and entry: zero .bss, set up a stack, call kmain(magic, info). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* page-align modules, memory info */

  .section .multiboot, "a"
  .balign 4
  .long MB_MAGIC
  .long MB_FLAGS
  .long -(MB_MAGIC + MB_FLAGS)

  .section .text.boot, "ax"
  .globl _start
_start:
  cli
  cld
  movl %eax, %esi
  movl %ebx, %ebp
  movl $__bss_start, %edi
  movl $__bss_end, %ecx
  subl %edi, %ecx
  xorl %eax, %eax
  rep stosb
  movl $boot_stack_top, %esp
  pushl $0
  popfl
  pushl %ebp
  pushl %esi
  call kmain
  pushl $1
  call qemu_exit
1: hlt
  jmp 1b

  .section .bss
  .balign 16
boot_stack:
  .space 16384
boot_stack_top:

  .section .note.GNU-stack, "", @progbits
