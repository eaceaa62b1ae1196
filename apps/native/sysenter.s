/* sysenter: system calls made both ways, with no C library: write(2) and exit(2) through
 * INT 0x80 and through SYSENTER (Linux's convention: the sixth argument at [EBP], EBP the user
 * stack pointer). LWK-only: the x86-64 host this is tested on runs 32-bit programs in
 * compatibility mode, where AMD CPUs do not have SYSENTER (it raises #UD there). Exits with
 * status 42 when every call returned what it should. */
	.file "sysenter.s"
	.text
	.globl _start
_start:
	mov $4, %eax            /* write(1, msg1, len1) through INT 0x80 */
	mov $1, %ebx
	mov $msg1, %ecx
	mov $len1, %edx
	int $0x80
	cmp $len1, %eax
	jne fail
	push %ebp               /* write(1, msg2, len2) through SYSENTER */
	mov %esp, %ebp
	mov $4, %eax
	mov $1, %ebx
	mov $msg2, %ecx
	mov $len2, %edx
	sysenter
	pop %ebp
	cmp $len2, %eax
	jne fail
	cmp $msg2, %ecx         /* arguments survive the call */
	jne fail
	mov $20, %eax           /* getpid through SYSENTER */
	push %ebp
	mov %esp, %ebp
	sysenter
	pop %ebp
	cmp $1, %eax
	jne fail
	mov $1, %eax            /* exit(42) through SYSENTER */
	mov $42, %ebx
	push %ebp
	mov %esp, %ebp
	sysenter
fail:
	mov $1, %eax
	mov $1, %ebx
	int $0x80

	.data
msg1:	.ascii "int 0x80 works\n"
	len1 = . - msg1
msg2:	.ascii "sysenter works\n"
	len2 = . - msg2
	.section .note.GNU-stack,"",@progbits
