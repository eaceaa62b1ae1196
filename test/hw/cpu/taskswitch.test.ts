// Hardware task switching run bare on the core (hw/cpu/taskswitch.ts): JMP to a TSS and back,
// CALL through a task gate and IRET back (busy bits, NT, back link, saved state), task gates in
// the IDT for INT n and for an exception with an error code, a double fault handled by a task
// gate (as Linux does), #TS in the new task's context, a 16-bit TSS, and CR3 switching with
// paging. Task bodies record what they see in memory; see pmenv.ts for the environment.
import { describe, expect, it } from 'vitest';
import { haveAssembler } from './bare.ts';
import { fmt, runPm, SEL, STACK_T1, STACK_T2, TSS0, TSS1 } from './pmenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

/** Records the access byte (P/DPL/type) of GDT entry `sel` into `dst`. */
const busyByte = (sel: number, dst: string) => `
  movzbl gdt+${sel + 5}, %eax
  mov %eax, ${dst}
`;

run('task switches by JMP, CALL and IRET', () => {
  it('JMP to a TSS: state saved and loaded, busy bits move, NT untouched, no back link; JMP back', () => {
    const r = runPm(`
      movl $0x11111111, TSS1+0x28        # the new task's EAX and EBX
      movl $0x22222222, TSS1+0x34
      movl $back, OUT+0x60
      mov $0x3333, %ecx
      mov $0x4444, %edx
      ljmp $0x30, $0                     # the offset is ignored
    back:
      mov %ecx, OUT+0x40
      mov %edx, OUT+0x44
      str %eax
      mov %eax, OUT+0x48
      ${busyByte(0x28, 'OUT+0x4c')}
      ${busyByte(0x30, 'OUT+0x50')}
      smsw %eax
      mov %eax, OUT+0x54
      mov %esp, OUT+0x58
      jmp done
    task1:
      mov %eax, OUT
      mov %ebx, OUT+4
      mov %ecx, OUT+8
      str %eax
      mov %eax, OUT+12
      pushf
      pop %eax
      mov %eax, OUT+16
      ${busyByte(0x28, 'OUT+20')}
      ${busyByte(0x30, 'OUT+24')}
      mov TSS0+0x20, %eax
      mov %eax, OUT+28
      mov TSS0+0x2c, %eax
      mov %eax, OUT+32
      mov TSS1, %eax
      mov %eax, OUT+36
      mov %esp, OUT+40
      ljmp $0x28, $0
    `);
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    // inside task 1
    expect(r.out32(0)).toBe(0x11111111);
    expect(r.out32(1)).toBe(0x22222222);
    expect(r.out32(2)).toBe(0);
    expect(r.out32(3) & 0xffff).toBe(SEL.tss1);
    expect(r.out32(4) & 0x4000).toBe(0);          // JMP: NT stays clear
    expect(r.out32(5)).toBe(0x89);                // old TSS: busy cleared
    expect(r.out32(6)).toBe(0x8b);                // new TSS: busy
    expect(r.out32(7)).toBe(r.out32(0x18));       // the old task's EIP: after its JMP
    expect(r.out32(8)).toBe(0x3333);              // the old task's ECX
    expect(r.out32(9)).toBe(0);                   // no back link
    expect(r.out32(10)).toBe(STACK_T1);
    // back in the main task
    expect(r.out32(0x10)).toBe(0x3333);
    expect(r.out32(0x11)).toBe(0x4444);
    expect(r.out32(0x12) & 0xffff).toBe(SEL.tss0);
    expect(r.out32(0x13)).toBe(0x8b);
    expect(r.out32(0x14)).toBe(0x89);
    expect(r.out32(0x15) & 8).toBe(8);            // CR0.TS
    expect(r.u32(TSS1 + 0x20)).toBeGreaterThan(0); // task 1's EIP saved after its JMP
  });

  it('CALL through a task gate: back link, NT, both busy; IRET returns and the task resumes after its IRET next time', () => {
    const r = runPm(`
      mov $0x3333, %ecx
      lcall $0xb8, $0
      pushf
      pop %eax
      mov %eax, OUT+0x40
      mov %ecx, OUT+0x44
      ${busyByte(0x28, 'OUT+0x48')}
      ${busyByte(0x30, 'OUT+0x4c')}
      str %eax
      mov %eax, OUT+0x50
      lcall $0x30, $0                    # again, straight to the TSS: task 1 resumes after its IRET
      # IRET with NT whose back link names an available TSS: #TS(link)
      movl $${SEL.tss1}, TSS0
      movl $1f, RESUME
      pushf
      orl $0x4000, (%esp)
      popf
      iret
    1:
      pushf
      andl $~0x4000, (%esp)
      popf
      jmp done
    task1:
      pushf
      pop %eax
      mov %eax, OUT
      mov TSS1, %eax
      mov %eax, OUT+4
      ${busyByte(0x28, 'OUT+8')}
      ${busyByte(0x30, 'OUT+12')}
      mov $0x5555, %ecx
      iret
      mov %ecx, OUT+0x54                  # the second CALL resumes here with ECX restored
      iret
    `, { gdtExtra: ['TGATE 0x30'] });
    expect(r.done).toBe(true);
    expect(r.out32(0) & 0x4000).toBe(0x4000);     // NT set in the called task
    expect(r.out32(1)).toBe(SEL.tss0);            // back link
    expect(r.out32(2)).toBe(0x8b);                // caller stays busy
    expect(r.out32(3)).toBe(0x8b);
    expect(r.out32(0x10) & 0x4000).toBe(0);       // caller's NT as it was
    expect(r.out32(0x11)).toBe(0x3333);           // caller's ECX restored
    expect(r.out32(0x12)).toBe(0x8b);
    expect(r.out32(0x13)).toBe(0x89);             // IRET cleared the callee's busy bit
    expect(r.out32(0x14) & 0xffff).toBe(SEL.tss0);
    expect(r.out32(0x15)).toBe(0x5555);
    expect(r.u32(TSS1 + 0x24) & 0x4000).toBe(0);  // NT cleared in the image IRET saved
    expect(r.log.map(fmt)).toEqual(['#10(0x30)']);
  });

  it('task gate and TSS privilege: from CPL 3 a DPL 0 task gate or TSS is #GP(sel); a busy TSS is #GP(sel)', () => {
    const r = runPm(`
      movl $1f, RESUME
      lcall $0x28, $0                     # the busy current task
    1:
      movl $2f, RESUME
      ljmp $0xc0, $0                      # a task gate naming a non-TSS
    2:
      RING3 r3
    r3:
      movl $3f, RESUME
      lcall $0xbb, $0                     # DPL 0 task gate
    3:
      movl $4f, RESUME
      ljmp $0x33, $0                      # DPL 0 TSS
    4:
      RING0 fin
    fin:
    `, { gdtExtra: ['TGATE 0x30', 'TGATE 0x10'] });
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#13(0x28)', '#13(0x10)', '#13(0xb8)', '#13(0x30)']);
  });
});

run('task gates in the IDT', () => {
  it('INT n through a task gate, and an exception with its error code pushed on the new task stack', () => {
    const r = runPm(`
      mov $0x3333, %ecx
      int $0x40
      mov %ecx, OUT+0x40
      movl $fault, OUT+0x44
      mov $0x1f8, %ax
    fault:
      mov %ax, %ds                        # #GP(0x1f8) -> task gate -> task 1
      mov %ecx, OUT+0x48
    task1:
      pushf
      pop %eax
      mov %eax, OUT
      mov TSS1, %eax
      mov %eax, OUT+4
      mov %esp, OUT+8
      iret
      # second entry: the #GP
      mov %esp, OUT+12
      pop %eax                            # the error code
      mov %eax, OUT+16
      mov TSS0+0x20, %eax                 # the faulting EIP, saved in the old TSS
      mov %eax, OUT+20
      movl $after, TSS0+0x20              # resume after the faulting instruction
      iret
    after:
    `, { idt: { 0x40: '  TGATE 0x30', 13: '  TGATE 0x30' } });
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(0) & 0x4000).toBe(0x4000);
    expect(r.out32(1)).toBe(SEL.tss0);
    expect(r.out32(2)).toBe(STACK_T1);
    expect(r.out32(0x10)).toBe(0x3333);
    expect(r.out32(3)).toBe(STACK_T1 - 4);      // the error code is on the stack
    expect(r.out32(4)).toBe(0x1f8);
    expect(r.out32(5)).toBe(r.out32(0x11));     // the faulting instruction
  });

  it('a double fault handled through a task gate (as Linux does)', () => {
    const r = runPm(`
      movl $fault, OUT+0x40
      mov $0x1f8, %ax
    fault:
      mov %ax, %ds                        # #GP; its gate is not present (#NP): double fault
      movl $0xbad, OUT+0x44
    task2:
      pop %eax
      mov %eax, OUT                       # error code 0
      mov %esp, OUT+4
      mov TSS2, %eax
      mov %eax, OUT+8                     # back link
      mov TSS0+0x20, %eax
      mov %eax, OUT+12                    # the faulting EIP of the interrupted task
      pushf
      pop %eax
      mov %eax, OUT+16
      str %eax
      mov %eax, OUT+20
      ${busyByte(0x28, 'OUT+24')}
      ${busyByte(0x38, 'OUT+28')}
      jmp done
    `, { idt: { 8: '  TGATE 0x38', 13: '  GATE 0x08, stub_13, 0x0e00' } });
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(0)).toBe(0);
    expect(r.out32(1)).toBe(STACK_T2);
    expect(r.out32(2)).toBe(SEL.tss0);
    expect(r.out32(3)).toBe(r.out32(0x10));
    expect(r.out32(4) & 0x4000).toBe(0x4000);
    expect(r.out32(5) & 0xffff).toBe(SEL.tss2);
    expect(r.out32(6)).toBe(0x8b);
    expect(r.out32(7)).toBe(0x8b);
    expect(r.out32(0x11)).toBe(0);
    expect(r.cpu.shutdownReason).toBe('');
  });
});

run('faults while loading the new task', () => {
  it('a bad ES in the new TSS is #TS(sel) in the new task context (EIP = its entry)', () => {
    const r = runPm(`
      movl $0x1f8, TSS1+0x48
      movl $1f, RESUME
      ljmp $0x30, $0
    1:
      str %eax
      mov %eax, %ss:OUT
      jmp done
    task1:
      movl $0xbad, OUT+4
    `);
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#10(0x1f8)']);
    expect(r.log[0].cs).toBe(0x08);
    expect(r.log[0].eip).toBe(r.u32(TSS1 + 0x20));   // task 1's entry, never overwritten
    expect(r.out32(0) & 0xffff).toBe(SEL.tss1);
    expect(r.out32(1)).toBe(0);
  });

  it('INT n through a task gate into a task with a bad ES: the #TS is taken on the new task\'s stack', () => {
    const r = runPm(`
      movl $0x1f8, TSS1+0x48
      movl $1f, RESUME
      int $0x40
    1:
      mov %esp, %ss:OUT                   # after the handler's IRET: still the new task's stack
      str %eax
      mov %eax, %ss:OUT+4
      jmp done
    `, { idt: { 0x40: '  TGATE 0x30' } });
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#10(0x1f8)']);
    expect(r.log[0].eip).toBe(r.u32(TSS1 + 0x20));
    expect(r.out32(0)).toBe(STACK_T1);
    expect(r.out32(1) & 0xffff).toBe(SEL.tss1);
  });

  it('a bad SS in the new TSS is #TS(sel), delivered on the ring-0 stack of the new TSS; a bad CS too', () => {
    // The #TS handler does not IRET (the frame names the bad selectors): it records and moves on.
    const r = runPm(`
      movl $0x13, TSS1+0x50               # SS RPL 3 for a ring-0 task
      movl $1f, RESUME
      ljmp $0x30, $0
    1:
      movl $0x10, TSS2+0x4c               # CS = a data segment
      movl $2f, RESUME
      ljmp $0x38, $0
    2:
      jmp done
    ts_handler:
      mov %ss:OUT+0x7c, %edi              # a record counter in memory (EDI belongs to the task)
      mov %ss, %eax
      mov %eax, %ss:OUT(,%edi,8)
      mov %esp, %ss:OUT+4(,%edi,8)
      pop %eax
      mov %eax, %ss:OUT+0x40(,%edi,8)
      mov 4(%esp), %eax                   # the CS in the frame: the new task's selector
      mov %eax, %ss:OUT+0x44(,%edi,8)
      incl %ss:OUT+0x7c
      mov $0x10, %ax
      mov %ax, %ds
      mov %ax, %es
      jmp *RESUME
    `, { idt: { 10: '  GATE 0x08, ts_handler, 0x8e00' } });
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    // the bad SS: CPL reads 3 while SS is checked, so the handler ran on SS0:ESP0 of the new TSS
    expect(r.out32(0) & 0xffff).toBe(0x10);
    expect(r.out32(1)).toBe(0x3f000 - 24);
    expect(r.out32(0x10)).toBe(0x10);
    expect(r.out32(0x11) & 0xffff).toBe(0x08);
    // the bad CS: SS was good, so the handler ran at the same level on the new task's stack
    expect(r.out32(2) & 0xffff).toBe(0x10);
    expect(r.out32(3)).toBe(STACK_T2 - 16);
    expect(r.out32(0x12)).toBe(0x10);
    expect(r.out32(0x13) & 0xffff).toBe(0x10);
  });
});

run('TSS formats and paging', () => {
  it('a 16-bit TSS: 16-bit state loaded (upper halves FFFFh, FS/GS null) and saved', () => {
    const r = runPm(`
      movw $(task16 - start), TSS3+0x0e   # IP (in a 16-bit code segment based at ORG)
      movw $0x0002, TSS3+0x10             # FLAGS
      movw $0x1234, TSS3+0x12             # AX
      movw $0x7000, TSS3+0x1a             # SP
      movw $${SEL.small}, TSS3+0x22       # ES
      movw $0xb8, TSS3+0x24               # CS
      movw $0x10, TSS3+0x26               # SS
      movw $${SEL.small}, TSS3+0x28       # DS: base 0x20000, so OUT is at 0x100
      ljmp $0x40, $0
      mov TSS3+0x0e, %eax
      mov %eax, OUT+0x40
      mov TSS3+0x12, %eax
      mov %eax, OUT+0x44
      movl $(ret16 - start), OUT+0x48
      jmp done
    .code16
    task16:
      movl %eax, 0x100
      mov %fs, %ax
      movw %ax, 0x104
      mov %gs, %ax
      movw %ax, 0x106
      str %ax
      movw %ax, 0x108
      mov $0xbeef, %ax
      ljmp $0x28, $0
    ret16:
      hlt
    .code32
    `, { gdtExtra: ['SEG ORG, 0xffff, 0x009a'] });
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(0)).toBe(0xffff1234);
    expect(r.u16(0x20104)).toBe(0);
    expect(r.u16(0x20106)).toBe(0);
    expect(r.u16(0x20108)).toBe(SEL.tss16);
    expect(r.out32(0x10) & 0xffff).toBe(r.out32(0x12));  // IP saved after the JMP
    expect(r.out32(0x11) & 0xffff).toBe(0xbeef);         // AX saved
  });

  it('with paging on, CR3 comes from the new 32-bit TSS (and the TLB is flushed)', () => {
    const r = runPm(`
      # PT0: identity for 0-4 MiB; PT1 the same but linear 0x2f000 -> physical 0x5f000
      mov $0x61000, %edi
      mov $0x63000, %esi
      mov $0x007, %eax
      mov $1024, %ecx
    1: mov %eax, (%edi)
      mov %eax, (%esi)
      add $0x1000, %eax
      add $4, %edi
      add $4, %esi
      loop 1b
      movl $0x5f007, 0x63000 + 0x2f * 4
      movl $0x61007, 0x60000
      movl $0x63007, 0x62000
      movl $0xaaaa, 0x2f000
      movl $0xbbbb, 0x5f000
      movl $0x60000, TSS0+0x1c
      movl $0x62000, TSS1+0x1c
      mov $0x60000, %eax
      mov %eax, %cr3
      mov %cr0, %eax
      or $0x80000000, %eax
      mov %eax, %cr0
      mov 0x2f000, %eax                  # through the TLB: 0xaaaa
      mov %eax, OUT+0x40
      ljmp $0x30, $0
      mov 0x2f000, %eax
      mov %eax, OUT+0x44
      mov %cr3, %eax
      mov %eax, OUT+0x48
      mov %cr0, %eax
      and $0x7fffffff, %eax
      mov %eax, %cr0
      jmp done
    task1:
      mov 0x2f000, %eax
      mov %eax, OUT
      mov %cr3, %eax
      mov %eax, OUT+4
      ljmp $0x28, $0
    `);
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(0x10)).toBe(0xaaaa);
    expect(r.out32(0)).toBe(0xbbbb);
    expect(r.out32(1)).toBe(0x62000);
    expect(r.out32(0x11)).toBe(0xaaaa);
    expect(r.out32(0x12)).toBe(0x60000);
    expect(r.u32(TSS0 + 0x1c)).toBe(0x60000);   // CR3 is not written back
  });
});
