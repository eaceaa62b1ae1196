// Far transfers run bare on the core (isa/far.ts): JMP/CALL/RET far and IRET at the same
// privilege, through call gates (32- and 16-bit, with the inner-ring stack switch and parameter
// copying), ring 0 -> ring 3 by IRET and RET far and back by a call gate and by INT n,
// conforming code segments, IRET's EFLAGS rules, the faults of each path, and real mode.
import { describe, expect, it } from 'vitest';
import { assemble, haveAssembler, runBare } from './bare.ts';
import { ESP0, fmt, runPm, SEL, STACK3 } from './pmenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

run('far transfers at the same privilege', () => {
  it('JMP far, CALL far / RET far, RET far imm16, FF /3 and FF /5 through memory', () => {
    const r = runPm(`
      ljmp $0x08, $1f
      movl $0xbad, OUT
    1:
      movl $ret1, OUT+0x10
      mov %esp, OUT+0x14
      lcall $0x08, $farfn
    ret1:
      mov %esp, OUT+0x18
      mov OUT, %eax
      mov %eax, OUT+0x30
      push $0x1111
      push $0x2222
      lcall $0x08, $farfn8          # RET 8 drops the two parameters
      mov %esp, OUT+0x1c
      # through memory: FF /3 and FF /5 with a 6-byte pointer
      movl $farfn, OUT+0x80
      movw $0x08, OUT+0x84
      lcall *OUT+0x80
      movl $2f, OUT+0x80
      ljmp *OUT+0x80
      movl $0xbad, OUT+0x20
    2:
      movl $1, OUT+0x24
      jmp 3f
    farfn:
      mov (%esp), %eax
      mov %eax, OUT
      mov 4(%esp), %eax             # CS pushed as a dword
      mov %eax, OUT+4
      incl OUT+0x28
      lret
    farfn8:
      mov 8(%esp), %eax
      mov %eax, OUT+8
      mov 12(%esp), %eax
      mov %eax, OUT+12
      lret $8
    3:
    `);
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(12)).toBe(r.out32(4));  // the return EIP pushed by CALL far
    expect(r.out32(1)).toBe(0x08);
    expect(r.out32(2)).toBe(0x2222);
    expect(r.out32(3)).toBe(0x1111);
    expect(r.out32(5)).toBe(r.out32(6));   // ESP back after CALL/RET
    expect(r.out32(7)).toBe(r.out32(6));   // ESP back after the parameters were released
    expect(r.out32(8)).toBe(0);
    expect(r.out32(9)).toBe(1);
    expect(r.out32(10)).toBe(2);           // farfn ran twice: direct, and through memory
  });

  it('conforming code: callable from CPL 3, runs at CPL 3; a DPL 3 conforming segment is #GP from CPL 0', () => {
    const r = runPm(`
      movl $1f, RESUME
      ljmp $${SEL.conf3}, $1f              # conforming DPL 3 > CPL 0
    1:
      lcall $${SEL.conf0}, $conf           # conforming DPL 0 from CPL 0
      mov %eax, OUT
      RING3 r3
    r3:
      lcall $${SEL.conf0 | 3}, $conf       # from CPL 3: CPL stays 3, CS.RPL = 3
      mov %eax, OUT+4
      mov %ebx, OUT+8
      movl $2f, RESUME
      ljmp $${SEL.code0 | 3}, $2f          # non-conforming DPL 0 from CPL 3
    2:
      movl $3f, RESUME
      lcall $${SEL.code1 | 3}, $3f         # non-conforming DPL 1 (no gate)
    3:
      lcall $${SEL.conf3 | 3}, $conf       # conforming DPL 3 from CPL 3
      mov %eax, OUT+12
      RING0 fin
    conf:
      mov %cs, %eax
      mov 4(%esp), %ebx                    # the caller's CS
      lret
    fin:
    `);
    expect(r.done).toBe(true);
    expect(r.out32(0) & 0xffff).toBe(SEL.conf0);
    expect(r.out32(1) & 0xffff).toBe(SEL.conf0 | 3);
    expect(r.out32(2) & 0xffff).toBe(0x1b);
    expect(r.out32(3) & 0xffff).toBe(SEL.conf3 | 3);
    expect(r.log.map(fmt)).toEqual(['#13(0xb0)', '#13(0x8)', '#13(0x48)']);
  });

  it('faults: null selector #GP(0), data segment #GP(sel), not present #NP(sel), offset beyond the limit #GP(0)', () => {
    const r = runPm(`
      movl $1f, RESUME
      ljmp $0, $1f
    1:
      movl $2f, RESUME
      lcall $0x10, $2f
    2:
      movl $3f, RESUME
      ljmp $0xb8, $3f                     # not-present code segment
    3:
      movl $4f, RESUME
      lcall $${SEL.code16}, $0x10000        # 16-bit code, limit 0xffff
    4:
      movl $5f, RESUME
      ljmp $${SEL.tss0}, $0               # the busy current TSS
    5:
      RING3 r3
    r3:
      mov $0xc3, %ax                      # a small ring-3 stack segment
      mov %ax, %ss
      mov $6, %esp
      movl $6f, RESUME
      lcall $0x1b, $6f                    # the second slot wraps below 0: #SS(0), nothing pushed
    6:
      mov %esp, OUT
      mov $0x23, %ax
      mov %ax, %ss
      RING0 fin
    fin:
    `, { gdtExtra: ['SEG 0, 0xfffff, 0xc01a', 'SEG 0x40000, 0xfff, 0x40f2'] });
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#13(0x0)', '#13(0x10)', '#11(0xb8)', '#13(0x0)', '#13(0x28)', '#12(0x0)']);
    expect(r.out32(0)).toBe(6);
  });
});

run('privilege changes', () => {
  it('ring 3 -> ring 0 through a 32-bit call gate: new stack from the TSS, parameters copied; RET 8 back to ring 3', () => {
    const r = runPm(`
      movl $after, OUT+0x60
      RING3 r3
    r3:
      push $0x1111
      push $0x2222
      lcall $0xbb, $0                     # the gate (RPL 3); the offset is ignored
    after:
      mov %esp, OUT+0x64
      mov %es, %eax                        # ES was loaded with a ring-0 segment by the callee
      mov %eax, OUT+0x68
      mov %cs, %eax
      mov %eax, OUT+0x6c
      mov %ss, %eax
      mov %eax, OUT+0x70
      mov %ds, %eax
      mov %eax, OUT+0x74
      RING0 fin
    target:
      mov %cs, %eax
      mov %eax, OUT+0x40
      mov %ss, %eax
      mov %eax, OUT+0x44
      mov %esp, OUT+0x48
      mov $0x10, %ax
      mov %ax, %es
      mov $0, %ecx
    1: mov (%esp,%ecx,4), %eax
      mov %eax, OUT(,%ecx,4)
      inc %ecx
      cmp $6, %ecx
      jne 1b
      lret $8
    fin:
    `, { gdtExtra: ['GATE 0x08, target, 0xec02'] });
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(0x10) & 0xffff).toBe(0x08);       // CS at ring 0
    expect(r.out32(0x11) & 0xffff).toBe(0x10);       // SS0 from the TSS
    expect(r.out32(0x12)).toBe(ESP0 - 24);
    const frame = [0, 1, 2, 3, 4, 5].map((k) => r.out32(k));
    expect(frame).toEqual([r.out32(0x18), 0x1b, 0x2222, 0x1111, STACK3 - 8, 0x23]);
    expect(r.out32(0x19)).toBe(STACK3);               // ESP after RET 8 on the outer stack
    expect(r.out32(0x1a)).toBe(0);                    // ES nulled: DPL 0 < CPL 3
    expect(r.out32(0x1b) & 0xffff).toBe(0x1b);
    expect(r.out32(0x1c) & 0xffff).toBe(0x23);
    expect(r.out32(0x1d) & 0xffff).toBe(0x23);        // DS (DPL 3) stays
  });

  it('a 16-bit call gate pushes words and copies word parameters; ring 3 -> ring 1', () => {
    // The code runs in a 32-bit segment based at ORG so that 16-bit offsets reach it.
    const r = runPm(`
      movl $0x23, %eax
      mov %ax, %ds
      mov %ax, %es
      movl $(after - start), OUT+0x60
      push $0x23
      push $0x7f00                        # SP below 64 KiB: a 16-bit gate saves only SP
      push $0x202
      push $0xc3
      push $(r3 - start)
      iret
    r3:
      pushw $0x3333
      pushw $0x4444
      pushw $0x5555
      lcall $0xbb, $0                    # 16-bit gate, 3 word parameters, to ring 1
    after:
      mov %esp, OUT+0x64
      mov %cs, %eax
      mov %eax, OUT+0x68
      RING0 fin
    target:
      mov %cs, %eax
      mov %eax, OUT+0x40
      mov %ss, %eax
      mov %eax, OUT+0x44
      mov %esp, OUT+0x48
      mov $0, %ecx
    1: movzwl (%esp,%ecx,2), %eax
      mov %eax, OUT(,%ecx,4)
      inc %ecx
      cmp $7, %ecx
      jne 1b
      lretw $6
    fin:
    `, {
      gdtExtra: [
        'GATE 0xc9, (target-ORG), 0xe403',   // 0xb8: 16-bit call gate DPL 3, 3 words, to 0xc8 (ring 1)
        'SEG ORG, 0xffff, 0x40fa',           // 0xc0: 32-bit code DPL 3, base ORG
        'SEG ORG, 0xffff, 0x40ba',           // 0xc8: 32-bit code DPL 1, base ORG
      ],
    });
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(0x10) & 0xffff).toBe(0xc9);
    expect(r.out32(0x11) & 0xffff).toBe(0x51);       // SS1 from the TSS
    expect(r.out32(0x12)).toBe(0x44000 - 14);
    const frame = [0, 1, 2, 3, 4, 5, 6].map((k) => r.out32(k));
    expect(frame).toEqual([r.out32(0x18), 0xc3, 0x5555, 0x4444, 0x3333, 0x7f00 - 6, 0x23]);
    expect(r.out32(0x19)).toBe(0x7f00);
    expect(r.out32(0x1a) & 0xffff).toBe(0xc3);
  });

  it('INT n from ring 3 switches to the ring-0 stack of the TSS; IRET returns to ring 3', () => {
    const r = runPm(`
      RING3 r3, 0x3202                    # IOPL 3, IF 1
    r3:
      mov $0x5a, %eax
      int $0x40
    after:
      mov %esp, OUT+0x64
      mov %cs, %eax
      mov %eax, OUT+0x68
      pushf
      pop %eax
      mov %eax, OUT+0x6c
      movl $1f, RESUME
      int $0x41                           # a DPL 0 gate from CPL 3: #GP(0x41*8+2)
    1:
      RING0 fin
    handler:
      mov $0, %ecx
    1: mov (%esp,%ecx,4), %eax
      mov %eax, %ss:OUT(,%ecx,4)
      inc %ecx
      cmp $5, %ecx
      jne 1b
      mov %esp, %ss:OUT+0x48
      pushf
      pop %eax
      mov %eax, %ss:OUT+0x4c
      movl $after, %ss:OUT+0x50
      iret
    fin:
    `, { idt: { 0x40: '  GATE 0x08, handler, 0xee00' } });
    expect(r.done).toBe(true);
    expect(r.out32(0)).toBe(r.out32(0x14));            // EIP of the next instruction
    expect(r.out32(1)).toBe(0x1b);
    expect(r.out32(2) & 0x3200).toBe(0x3200);          // EFLAGS with IOPL 3, IF
    expect(r.out32(3)).toBe(STACK3);
    expect(r.out32(4)).toBe(0x23);
    expect(r.out32(0x12)).toBe(ESP0 - 20);
    expect(r.out32(0x13) & 0x200).toBe(0);             // interrupt gate: IF cleared
    expect(r.out32(0x19)).toBe(STACK3);
    expect(r.out32(0x1a) & 0xffff).toBe(0x1b);
    expect(r.out32(0x1b) & 0x3200).toBe(0x3200);
    expect(r.log.map(fmt)).toEqual(['#13(0x20a)']);
  });

  it('RET far to ring 3 from ring 0 (a hand-built frame), and its SS/CS checks', () => {
    const r = runPm(`
      movl $1f, RESUME
      push $0x13                          # SS with RPL 3 but DPL 0
      push $STACK3
      push $0x1b
      push $r3
      lret
    1:
      mov $STACK0, %esp
      movl $2f, RESUME
      push $0x23
      push $STACK3
      push $${SEL.code1 | 3}              # CS RPL 3 but DPL 1
      push $r3
      lret
    2:
      mov $STACK0, %esp
      movl $3f, RESUME
      mov $0x23, %ax
      mov %ax, %ds
      push $0x23
      push $(STACK3 - 16)
      push $0x1b
      push $r3
      lret $0                             # the good one
    3:
      RING0 fin
    r3:
      mov %esp, %ss:OUT
      mov %ss, %eax
      mov %eax, %ss:OUT+4
      mov %cs, %eax
      mov %eax, %ss:OUT+8
      movl $4f, %ss:RESUME
      push $0x08                          # RET far to CS RPL 0 from CPL 3
      push $4f
      lret
    4:
      RING0 fin
    fin:
    `);
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#13(0x10)', '#13(0x48)', '#13(0x8)']);
    expect(r.out32(0)).toBe(STACK3 - 16);
    expect(r.out32(1) & 0xffff).toBe(0x23);
    expect(r.out32(2) & 0xffff).toBe(0x1b);
  });

  it('call gate faults: gate DPL < CPL #GP(gate), not-present target #NP(code), bad SS1 in the TSS #TS(ss)', () => {
    const r = runPm(`
      RING3 r3
    r3:
      movl $1f, RESUME
      lcall $0xbb, $0                     # gate DPL 0 from CPL 3
    1:
      movl $2f, RESUME
      lcall $0xc3, $0                     # gate to a not-present code segment
    2:
      RING0 fin0
    fin0:
      movl $0x53, TSS0+16                 # SS1 with RPL 3
      RING3 r3b
    r3b:
      movl $3f, RESUME
      lcall $0xcb, $0                     # good gate to ring 1, bad ring-1 stack in the TSS
    3:
      RING0 fin
    tgt:
      lret
    fin:
    `, {
      gdtExtra: [
        'GATE 0x08, tgt, 0x8c00',    // 0xb8: DPL 0 gate
        'GATE 0xd0, tgt, 0xec00',    // 0xc0: DPL 3 gate to 0xd0 (not present)
        'GATE 0x48, tgt, 0xec00',    // 0xc8: DPL 3 gate to ring 1
        'SEG 0, 0xfffff, 0xc01a',    // 0xd0: code, not present
      ],
    });
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#13(0xb8)', '#11(0xd0)', '#10(0x50)']);
  });
});

run('IRET', () => {
  it('EFLAGS rules: IOPL changes only at CPL 0, IF only when CPL <= IOPL', () => {
    const r = runPm(`
      # CPL 0: IOPL and IF both change
      pushf
      pop %eax
      mov %eax, %ebx
      or $0x3000, %eax
      and $~0x200, %eax
      push %eax
      push %cs
      push $1f
      iret
    1:
      pushf
      pop %eax
      mov %eax, OUT
      RING3 r3, 0x0202                    # IOPL 0, IF 1
    r3:
      push $0x3000                        # IOPL 3, IF 0
      push %cs
      push $2f
      iret
    2:
      pushf
      pop %eax
      mov %eax, OUT+4
      RING0 r0
    r0:
      RING3 r3b, 0x3202                   # IOPL 3, IF 1
    r3b:
      push $0x0000                        # IOPL 0, IF 0
      push %cs
      push $3f
      iret
    3:
      pushf
      pop %eax
      mov %eax, OUT+8
      RING0 fin
    fin:
    `);
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    expect(r.out32(0) & 0x3200).toBe(0x3000);   // CPL 0: IOPL 3, IF 0
    expect(r.out32(1) & 0x3200).toBe(0x0200);   // CPL 3, IOPL 0: neither changes
    expect(r.out32(2) & 0x3200).toBe(0x3000);   // CPL 3 <= IOPL 3: IF changes, IOPL does not
  });

  it('IRET faults: CS RPL < CPL, popped SS mismatch, VM=1 (not modelled: #GP(0))', () => {
    const r = runPm(`
      movl $1f, RESUME
      push $0x13                          # SS RPL 3, DPL 0
      push $STACK3
      push $0x2
      push $0x1b
      push $1f
      iret
    1:
      mov $STACK0, %esp
      movl $2f, RESUME
      push $0
      push $0
      push $0x20002                       # VM
      push $0x1b
      push $2f
      iret
    2:
      mov $STACK0, %esp
      RING3 r3
    r3:
      movl $3f, RESUME
      push $0x2
      push $0x08
      push $3f
      iret
    3:
      RING0 fin
    fin:
    `);
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#13(0x10)', '#13(0x0)', '#13(0x8)']);
  });
});

run('real mode', () => {
  it('JMP/CALL/RET far, IRET (16- and 32-bit), LDS and INT through the IVT', () => {
    const img = assemble(`
      .code16
    start:
      xor %ax, %ax
      mov %ax, %ds
      mov %ax, %ss
      mov $0x7000, %sp
      ljmp $0x07c0, $(l1 - start)
    l1:
      mov %cs, %ax
      mov %ax, 0x600
      lcall $0x0000, $(0x7c00 + fn - start)
      mov %ax, 0x602
      mov %bx, 0x604
      mov %sp, 0x606
      # IRET (16-bit): FLAGS, CS, IP
      pushw $0x0cd5
      pushw $0x0000
      pushw $(0x7c00 + l2 - start)
      iret
    l2:
      pushf
      pop %ax
      mov %ax, 0x608
      mov %cs, %ax
      mov %ax, 0x60a
      # IRET (32-bit) with 0x66
      pushl $0x00000002
      pushl $0x00000000
      pushl $(0x7c00 + l3 - start)
      iretl
    l3:
      pushf
      pop %ax
      mov %ax, 0x60c
      # LDS
      movw $0x1234, 0x700
      movw $0x0050, 0x702
      lds 0x700, %si
      mov %ds, %ax
      xor %bx, %bx
      mov %bx, %ds
      mov %ax, 0x60e
      mov %si, 0x610
      # INT through the IVT, IRET back
      movw $(0x7c00 + isr - start), 0x80 * 4
      movw $0, 0x80 * 4 + 2
      int $0x80
      mov %ax, 0x612
      mov $0, %al
      out %al, $0xf4
    fn:
      mov %sp, %bp
      mov (%bp), %ax          # return IP
      mov 2(%bp), %bx         # return CS
      lret
    isr:
      mov $0x4321, %ax
      iret
    `, 0x7c00);
    const r = runBare(img, { org: 0x7c00, start: 'real', maxCycles: 100_000 });
    const w = (a: number) => r.mem.read(a, 2);
    expect(r.exit).toBe(1);
    expect(w(0x600)).toBe(0x07c0);
    expect(w(0x604)).toBe(0x07c0);
    expect(w(0x602)).toBeGreaterThan(0);
    expect(w(0x606)).toBe(0x7000);
    expect(w(0x608) & 0x0fd5).toBe(0x0cd5);
    expect(w(0x60a)).toBe(0);
    expect(w(0x60c) & 0x0fd5).toBe(0);
    expect(w(0x60e)).toBe(0x50);
    expect(w(0x610)).toBe(0x1234);
    expect(w(0x612)).toBe(0x4321);
  });
});
