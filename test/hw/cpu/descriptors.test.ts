// Descriptor-table instructions run bare on the core (isa/descriptors.ts): LAR/LSL/VERR/VERW
// over code, data and system descriptors at CPL 0 and CPL 3, SLDT/STR/LLDT/LTR (busy bit,
// faults, privilege), SGDT/SIDT/LGDT/LIDT (operand sizes), ARPL, and the real-mode #UDs.
import { describe, expect, it } from 'vitest';
import { assemble, haveAssembler, runBare } from './bare.ts';
import { fmt, runPm, SEL } from './pmenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

/** LAR, LSL, VERR, VERW of one selector: 8 dwords at OUT + 32*slot. */
function probe(sel: number, slot: number): string {
  const o = `OUT+${32 * slot}`;
  return `
  mov $${sel}, %ecx
  mov $0xdeadbeef, %eax
  lar %cx, %eax
  pushf
  pop %edx
  mov %eax, ${o}
  mov %edx, ${o}+4
  mov $0xdeadbeef, %eax
  lsl %cx, %eax
  pushf
  pop %edx
  mov %eax, ${o}+8
  mov %edx, ${o}+12
  verr %cx
  pushf
  pop %edx
  mov %edx, ${o}+16
  verw %cx
  pushf
  pop %edx
  mov %edx, ${o}+20
`;
}

const NO = null;
/** Expected: LAR value (null: fails), LSL value (null: fails), VERR, VERW. */
type Row = [number, number | null, number | null, boolean, boolean];

function check(r: ReturnType<typeof runPm>, rows: Row[], first: number): void {
  rows.forEach(([sel, lar, lsl, verr, verw], k) => {
    const base = 8 * (first + k);
    const got = {
      sel: sel.toString(16),
      lar: r.out32(base + 1) & 0x40 ? r.out32(base) : r.out32(base) === 0xdeadbeef ? null : 'changed on failure',
      lsl: r.out32(base + 3) & 0x40 ? r.out32(base + 2) : r.out32(base + 2) === 0xdeadbeef ? null : 'changed on failure',
      verr: (r.out32(base + 4) & 0x40) !== 0,
      verw: (r.out32(base + 5) & 0x40) !== 0,
    };
    expect(got).toEqual({ sel: sel.toString(16), lar, lsl, verr, verw });
  });
}

run('LAR, LSL, VERR, VERW', () => {
  const gdtExtra = [
    'GATE 0x08, T, 0xec02',         // 0xb8: 32-bit call gate DPL 3
    'TGATE 0x30',                   // 0xc0: task gate DPL 0
    'GATE 0x08, T, 0x8e00',         // 0xc8: interrupt gate (not for LAR)
    'GATE 0x08, T, 0x8f00',         // 0xd0: trap gate (not for LAR)
    'GATE 0x08, T, 0x8400',         // 0xd8: 16-bit call gate
    'SEG 0, 0, 0x0080',             // 0xe0: reserved system type 0
  ].map((l) => l.replace(', T,', ', (start+0x3a000-ORG),')); // offset 0x3a000: bits 16-23 = 3
  const rows0: Row[] = [
    [SEL.code0, 0x00cf9b00, 0xffffffff, true, false],
    [SEL.data0, 0x00cf9300, 0xffffffff, true, true],
    [SEL.code3 | 3, 0x00cffa00, 0xffffffff, true, false],
    [SEL.tss0, 0x00008b00, 0x67, false, false],
    [SEL.tss1, 0x00008900, 0x67, false, false],
    [SEL.tss16, 0x00008100, 0x2b, false, false],
    [SEL.ldt, 0x00008200, 0x3f, false, false],
    [SEL.np, 0x00cf1200, 0xffffffff, true, true],      // the present bit is not checked
    [SEL.xo, 0x00cf9800, 0xffffffff, false, false],
    [SEL.ro, 0x00cf9000, 0xffffffff, true, false],
    [SEL.small, 0x00409200, 0xfff, true, true],
    [SEL.down, 0x00009600, 0xfff, true, true],
    [SEL.conf0 | 3, 0x00cf9e00, 0xffffffff, true, false], // conforming: RPL 3 does not matter
    [SEL.data0 | 3, NO, NO, false, false],               // RPL 3 > DPL 0
    [0xb8, 0x0003ec00, NO, false, false],
    [0xc0, 0x00008500, NO, false, false],
    [0xc8, NO, NO, false, false],
    [0xd0, NO, NO, false, false],
    [0xd8, 0x00038400, NO, false, false],
    [0xe0, NO, NO, false, false],
    [0, NO, NO, false, false],
    [3, NO, NO, false, false],
    [0x1f8, NO, NO, false, false],                       // beyond the GDT
    [0x04, NO, NO, false, false],                        // LDT selector with no LDT
  ];
  const rows3: Row[] = [
    [SEL.code0 | 3, NO, NO, false, false],
    [SEL.code3 | 3, 0x00cffb00, 0xffffffff, true, false],  // accessed: it is CS
    [SEL.data3 | 3, 0x00cff300, 0xffffffff, true, true],
    [SEL.conf0 | 3, 0x00cf9e00, 0xffffffff, true, false],
    [SEL.conf3 | 3, 0x00cffe00, 0xffffffff, true, false],
    [SEL.tss0 | 3, NO, NO, false, false],
    [SEL.data1 | 3, NO, NO, false, false],
    [SEL.data1 | 1, NO, NO, false, false],                 // CPL 3 > DPL 1 whatever the RPL
    [0xbb, 0x0003ec00, NO, false, false],
    [0xc3, NO, NO, false, false],
  ];

  it('at CPL 0 and CPL 3: the accepted types, the DPL rules, the values, ZF; the destination kept on failure', () => {
    const body = rows0.map(([sel], k) => probe(sel, k)).join('')
      + '  RING3 r3\nr3:\n'
      + rows3.map(([sel], k) => probe(sel, rows0.length + k)).join('')
      + '  RING0 fin\nfin:\n';
    const r = runPm(body, { gdtExtra });
    expect(r.done).toBe(true);
    expect(r.log).toEqual([]);
    check(r, rows0, 0);
    check(r, rows3, rows0.length);
  });

  it('16-bit operand size; only ZF changes', () => {
    const r = runPm(`
      mov $0x10, %ecx
      mov $0xffffffff, %eax
      mov $0xffffffff, %ebx
      stc
      lar %cx, %ax
      pushf
      pop %edx
      mov %eax, OUT
      mov %edx, OUT+4
      lsl %cx, %bx
      mov %ebx, OUT+8
      mov $0x20000, %esi
      movw $0x10, (%esi)
      lar (%esi), %edi                    # memory source
      mov %edi, OUT+12
    `);
    expect(r.done).toBe(true);
    expect(r.out32(0)).toBe(0xffff9300);
    expect(r.out32(1) & 0x41).toBe(0x41);   // ZF set, CF kept
    expect(r.out32(2)).toBe(0xffffffff);
    expect(r.out32(3)).toBe(0x00cf9300);
  });
});

run('LDTR and TR', () => {
  it('SLDT/STR, LLDT and LTR (busy bit), their faults, and their privilege', () => {
    const r = runPm(`
      mov $-1, %eax
      str %eax
      mov %eax, OUT
      mov $-1, %eax
      sldt %eax                          # zero-extended
      mov %eax, OUT+4
      mov $${SEL.ldt}, %ax
      lldt %ax
      movl $-1, OUT+8
      sldt OUT+8                         # 16 bits to memory
      mov $${SEL.tss1}, %ax
      ltr %ax
      str %ebx
      mov %ebx, OUT+12
      movzbl gdt+${SEL.tss1 + 5}, %eax
      mov %eax, OUT+16
      movl $1f, RESUME
      mov $${SEL.tss1}, %ax
      ltr %ax                            # busy now
    1:
      movl $2f, RESUME
      mov $${SEL.data0}, %ax
      ltr %ax
    2:
      movl $3f, RESUME
      xor %eax, %eax
      ltr %ax
    3:
      movl $4f, RESUME
      mov $0x34, %ax                     # TI = 1
      ltr %ax
    4:
      movl $5f, RESUME
      mov $0xb8, %ax                     # not present
      ltr %ax
    5:
      movl $6f, RESUME
      mov $${SEL.data0}, %ax
      lldt %ax
    6:
      movl $7f, RESUME
      mov $0xc0, %ax                     # LDT not present
      lldt %ax
    7:
      xor %eax, %eax
      lldt %ax
      sldt %eax
      mov %eax, OUT+20
      RING3 r3
    r3:
      movl $8f, RESUME
      str %eax                           # allowed at CPL 3
      mov %eax, OUT+24
      mov $${SEL.ldt}, %ax
      lldt %ax
    8:
      movl $9f, RESUME
      mov $${SEL.tss2}, %ax
      ltr %ax
    9:
      RING0 fin
    fin:
    `, { gdtExtra: ['SEG TSS2, 0x67, 0x0009', 'SEG LDT, 0x3f, 0x0002'] });
    expect(r.done).toBe(true);
    expect(r.out32(0)).toBe(SEL.tss0);
    expect(r.out32(1)).toBe(0);
    expect(r.out32(2)).toBe((0xffff0000 | SEL.ldt) >>> 0);
    expect(r.out32(3)).toBe(SEL.tss1);
    expect(r.out32(4)).toBe(0x8b);
    expect(r.out32(5)).toBe(0);
    expect(r.out32(6)).toBe(SEL.tss1);
    expect(r.log.map(fmt)).toEqual([
      '#13(0x30)', '#13(0x10)', '#13(0x0)', '#13(0x34)', '#11(0xb8)', '#13(0x10)', '#11(0xc0)',
      '#13(0x0)', '#13(0x0)',
    ]);
  });
});

run('SGDT, SIDT, LGDT, LIDT', () => {
  it('store and load 6-byte pseudo-descriptors; a 16-bit operand size uses 24 bits of the base', () => {
    const r = runPm(`
      movl $gdt, OUT+0x40
      movl $(gdt_end - gdt - 1), OUT+0x44
      movl $idt, OUT+0x48
      movl $(idt_end - idt - 1), OUT+0x4c
      sgdt OUT
      sidt OUT+8
      movw $0x1234, OUT+0x60
      movl $0x12345678, OUT+0x62
      lgdt OUT+0x60
      sgdt OUT+0x10
      movl $-1, OUT+0x18
      movl $-1, OUT+0x1c
      sgdtw OUT+0x18                     # the base's top byte stored as 0
      lgdtw OUT+0x60                     # base 0x00345678
      sgdt OUT+0x20
      lgdt OUT                           # back to the real GDT
      lidtw OUT+0x60
      sidt OUT+0x28
      lidt OUT+8
      RING3 r3
    r3:
      sgdt OUT+0x30                      # unprivileged
      movl $1f, RESUME
      lgdt OUT
    1:
      movl $2f, RESUME
      lidt OUT+8
    2:
      RING0 fin
    fin:
    `);
    expect(r.done).toBe(true);
    const gdtBase = r.out32(0x10), gdtLim = r.out32(0x11), idtBase = r.out32(0x12), idtLim = r.out32(0x13);
    expect(r.u16(0x20100)).toBe(gdtLim);
    expect(r.u32(0x20102)).toBe(gdtBase);
    expect(r.u16(0x20108)).toBe(idtLim);
    expect(r.u32(0x2010a)).toBe(idtBase);
    expect(r.u16(0x20110)).toBe(0x1234);
    expect(r.u32(0x20112)).toBe(0x12345678);
    expect(r.u16(0x20118)).toBe(0x1234);
    expect(r.u32(0x2011a)).toBe(0x00345678);
    expect(r.u32(0x20122)).toBe(0x00345678);
    expect(r.u32(0x2012a)).toBe(0x00345678);
    expect(r.u16(0x20130)).toBe(gdtLim);
    expect(r.u32(0x20132)).toBe(gdtBase);
    expect(r.log.map(fmt)).toEqual(['#13(0x0)', '#13(0x0)']);
  });
});

run('ARPL', () => {
  it('raises the RPL of the destination to the source RPL, ZF says whether it did; 16-bit only', () => {
    const r = runPm(`
      mov $0xabcd0010, %eax
      mov $0x3, %ebx
      arpl %bx, %ax
      pushf
      pop %edx
      mov %eax, OUT
      mov %edx, OUT+4
      mov $1, %ebx
      arpl %bx, %ax
      pushf
      pop %edx
      mov %eax, OUT+8
      mov %edx, OUT+12
      movl $0xffff0008, OUT+0x40
      mov $2, %ebx
      arpl %bx, OUT+0x40
      pushf
      pop %edx
      mov %edx, OUT+16
    `);
    expect(r.done).toBe(true);
    expect(r.out32(0)).toBe(0xabcd0013);
    expect(r.out32(1) & 0x40).toBe(0x40);
    expect(r.out32(2)).toBe(0xabcd0013);
    expect(r.out32(3) & 0x40).toBe(0);
    expect(r.out32(0x10)).toBe(0xffff000a);
    expect(r.out32(4) & 0x40).toBe(0x40);
  });
});

run('real mode', () => {
  it('the 0F 00 group, LAR, LSL and ARPL are #UD; LGDT/LIDT/SGDT/SIDT work', () => {
    const img = assemble(`
      .code16
    start:
      xor %ax, %ax
      mov %ax, %ds
      mov %ax, %ss
      mov $0x7000, %sp
      movw $(0x7c00 + ud - start), 6 * 4
      movw $0, 6 * 4 + 2
      movw $(0x7c00 + n1 - start), 0x502
      sldt %ax
    n1:
      movw $(0x7c00 + n2 - start), 0x502
      str %ax
    n2:
      movw $(0x7c00 + n3 - start), 0x502
      lldt %ax
    n3:
      movw $(0x7c00 + n4 - start), 0x502
      verr %ax
    n4:
      movw $(0x7c00 + n5 - start), 0x502
      lar %ax, %bx
    n5:
      movw $(0x7c00 + n6 - start), 0x502
      lsl %ax, %bx
    n6:
      movw $(0x7c00 + n7 - start), 0x502
      arpl %ax, %bx
    n7:
      movw $0x27, 0x600
      movl $0x00012345, 0x602
      lgdt 0x600
      sgdt 0x610
      sidt 0x620
      mov $0, %al
      out %al, $0xf4
    ud:
      incw 0x500
      mov %sp, %bp
      mov 0x502, %ax
      mov %ax, (%bp)
      iret
    `, 0x7c00);
    const r = runBare(img, { org: 0x7c00, start: 'real', maxCycles: 100_000 });
    expect(r.exit).toBe(1);
    expect(r.mem.read(0x500, 2)).toBe(7);
    expect(r.mem.read(0x610, 2)).toBe(0x27);
    expect(r.mem.read(0x612, 4)).toBe(0x12345);
    expect(r.mem.read(0x620, 2)).toBe(0x3ff);
    expect(r.mem.read(0x622, 4)).toBe(0);
  });
});
