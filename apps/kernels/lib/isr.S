/*
 * Interrupt stubs for all 256 vectors, 16 bytes apart from isr_stubs: each pushes a dummy
 * error code (unless the CPU pushes one: 8, 10-14, 17, 21, 29, 30) and its vector, then
 * isr_common saves the registers and calls trap_dispatch(frame). The handler may change
 * the frame (EIP, registers); the stub restores it and returns with IRET.
 */
  .section .text
  .balign 16
  .globl isr_stubs
isr_stubs:
  .set vec, 0
  .rept 256
  .balign 16
  .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
  .else
  pushl $0
  .endif
  pushl $vec
  jmp isr_common
  .set vec, vec + 1
  .endr

isr_common:
  pushal
  pushl %ds
  pushl %es
  pushl %fs
  pushl %gs
  movl $0x10, %eax
  movl %eax, %ds
  movl %eax, %es
  cld
  pushl %esp
  call trap_dispatch
  addl $4, %esp
  popl %gs
  popl %fs
  popl %es
  popl %ds
  popal
  addl $8, %esp
  iretl

  .section .note.GNU-stack, "", @progbits
