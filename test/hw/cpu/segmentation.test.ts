// Segment-register loads and segment checks in protected mode, run bare on the core: MOV Sreg
// and LDS/LES/LSS/LFS/LGS with the #GP/#NP/#SS rules and their error codes, limit, type and
// expand-down checks on accesses, CPL/RPL/DPL at CPL 3, the LDT. A handler in the program's IDT
// logs every exception (vector, error code) in memory; see pmenv.ts.
import { describe, expect, it } from 'vitest';
import { haveAssembler } from './bare.ts';
import { fmt, runPm, SEL } from './pmenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

/** Loads `sel` into segment register `seg` with RESUME after it, then records the register in OUT+4n. */
function tryLoad(n: number, seg: string, sel: number, restore = '0x10'): string {
  return `
  movl $L${n}, RESUME
  movl $0xffff, %eax
  mov $${sel}, %ax
  mov %ax, %${seg}
L${n}:
  mov %${seg}, %eax
  mov $0x10, %bx
  mov %bx, %ds
  mov %eax, OUT+${4 * n}
  mov $${restore}, %ax
  mov %ax, %${seg}
`;
}

run('segment loads (MOV Sreg)', () => {
  it('data segment registers: #GP/#NP with the selector as error code, valid loads succeed', () => {
    const cases: [number, string][] = [
      [SEL.data0, ''],             // 0: flat data
      [0, ''],                     // 1: null is fine in DS
      [SEL.np, '#11(0x78)'],       // 2: not present
      [SEL.xo, '#13(0x88)'],       // 3: execute-only code
      [SEL.tss0, '#13(0x28)'],     // 4: a system descriptor
      [0x1f8, '#13(0x1f8)'],       // 5: beyond the GDT limit
      [SEL.data0 | 3, '#13(0x10)'], // 6: RPL 3 > DPL 0
      [SEL.conf0 | 3, ''],         // 7: conforming readable code ignores DPL
      [SEL.code0, ''],             // 8: readable non-conforming code, DPL = CPL
      [SEL.data3 | 3, ''],         // 9: DPL 3 data from CPL 0
    ];
    const body = cases.map(([sel], n) => tryLoad(n, 'ds', sel)).join('');
    const r = runPm(body);
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(cases.map(([, e]) => e).filter((e) => e !== ''));
    // a faulting load leaves the register as it was (0x10 restored after each case)
    for (let n = 0; n < cases.length; n++) {
      expect(r.out32(n) & 0xffff, `case ${n}`).toBe(cases[n][1] === '' ? cases[n][0] : SEL.data0);
    }
  });

  it('a null DS/FS/GS loads but any access through it is #GP(0)', () => {
    const r = runPm(`
      xor %eax, %eax
      mov %ax, %fs
      movl $1f, RESUME
      mov %fs:0x100, %eax
    1:
      mov %ax, %gs
      movl $2f, RESUME
      movl $5, %gs:0x100
    2:
    `);
    expect(r.log.map(fmt)).toEqual(['#13(0x0)', '#13(0x0)']);
  });

  it('SS: writable data with DPL = RPL = CPL, else #GP(sel); null #GP(0); not present #SS(sel)', () => {
    const cases: [number, string][] = [
      [SEL.ro, '#13(0x80)'],        // read-only data
      [0, '#13(0x0)'],              // null
      [SEL.np, '#12(0x78)'],        // not present: #SS
      [SEL.data3 | 3, '#13(0x20)'], // RPL 3 != CPL 0
      [SEL.data1, '#13(0x50)'],     // DPL 1 != CPL 0
      [SEL.code0, '#13(0x8)'],      // code
      [SEL.data0, ''],
    ];
    const body = cases.map(([sel], n) => tryLoad(n, 'ss', sel)).join('');
    const r = runPm(body);
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(cases.map(([, e]) => e).filter((e) => e !== ''));
    for (let n = 0; n < cases.length; n++) expect(r.out32(n) & 0xffff).toBe(SEL.data0);
  });

  it('LDT selectors: through the LDT loaded by LLDT; beyond its limit or an empty entry is #GP(sel)', () => {
    const r = runPm(`
      mov $${SEL.ldt}, %ax
      lldt %ax
      ${tryLoad(0, 'ds', 0x04)}
      ${tryLoad(1, 'es', 0x0f)}
      ${tryLoad(2, 'ds', 0x3c)}
      ${tryLoad(3, 'ds', 0x44)}
      # the LDT's data segment (base 0x20000) is what DS addresses
      mov $0x0c, %ax
      mov %ax, %es
      movl $0x5a5a, %es:0x180
      mov $0x10, %ax
      mov %ax, %es
      # with a null LDTR every LDT selector faults
      xor %eax, %eax
      lldt %ax
      ${tryLoad(4, 'ds', 0x04)}
    `, {
      ldt: [
        'SEG 0, 0xfffff, 0xc092',       // 0x04: flat data DPL 0
        'SEG 0x20000, 0xfff, 0x40f2',   // 0x0c: data DPL 3, base 0x20000
      ],
    });
    expect(r.done).toBe(true);
    expect(r.log.map(fmt)).toEqual(['#13(0x3c)', '#13(0x44)', '#13(0x4)']);
    expect(r.out32(0) & 0xffff).toBe(0x04);
    expect(r.out32(1) & 0xffff).toBe(0x0f);
    expect(r.out32(0x20)).toBe(0x5a5a); // 0x20000 + 0x180 = OUT + 0x80
  });
});

run('segment checks on accesses', () => {
  it('limits of a byte-granular segment, read-only data, expand-down data', () => {
    const r = runPm(`
      mov $${SEL.small}, %ax       # base 0x20000, limit 0xfff
      mov %ax, %ds
      movl $0x11223344, 0x100      # = OUT+0
      mov 0xffc, %eax              # last dword: fine
      movl $1f, %ss:RESUME
      mov 0xffd, %eax              # crosses the limit
    1:
      movl $2f, %ss:RESUME
      movb $1, 0x1000
    2:
      mov $0x10, %ax
      mov %ax, %ds
      mov $${SEL.ro}, %ax
      mov %ax, %es
      mov %es:OUT, %eax
      mov %eax, OUT+4
      movl $3f, RESUME
      movl $7, %es:OUT+8           # read-only: #GP(0)
    3:
      mov $${SEL.down}, %ax        # expand-down, limit 0xfff, 16-bit: offsets 0x1000-0xffff
      mov %ax, %es
      movl $4f, RESUME
      mov %es:0x800, %eax
    4:
      movl $0x77, %es:0x2000
      movw %es:0xfffe, %ax
      movl $5f, RESUME
      mov %es:0xfffe, %eax         # beyond 0xffff
    5:
      movl $6f, RESUME
      mov %es:0xfff, %al           # the limit itself is outside
    6:
      mov 0x2000, %eax
      mov %eax, OUT+12
    `);
    expect(r.done).toBe(true);
    expect(r.out32(0)).toBe(0x11223344);
    expect(r.out32(1)).toBe(0x11223344);
    expect(r.out32(2)).toBe(0);
    expect(r.out32(3)).toBe(0x77);
    expect(r.log.map(fmt)).toEqual(['#13(0x0)', '#13(0x0)', '#13(0x0)', '#13(0x0)', '#13(0x0)', '#13(0x0)']);
  });

  it('a stack-segment limit violation is #SS(0)', () => {
    const r = runPm(`
      mov %esp, %edi
      mov $${SEL.small}, %ax
      mov %ax, %ss
      mov $0x800, %esp
      push $0x1234                  # at 0x207fc
      movl $1f, RESUME
      mov 0x1000(%esp), %eax        # SS-relative, beyond the limit
    1:
      mov $0x10, %ax
      mov %ax, %ss
      mov %edi, %esp
      mov 0x207fc, %eax
      mov %eax, OUT
    `);
    expect(r.done).toBe(true);
    expect(r.out32(0)).toBe(0x1234);
    expect(r.log.map(fmt)).toEqual(['#12(0x0)']);
  });
});

run('segment loads at CPL 3', () => {
  it('DPL/RPL rules from ring 3; ring-0 data segments are nulled by the IRET to ring 3', () => {
    const r = runPm(`
      mov $0x10, %ax
      mov %ax, %fs                 # FS/GS hold ring-0 data: IRET to ring 3 must null them
      RING3 r3
    r3:
      mov %fs, %eax
      mov %eax, OUT+0x40
      mov %gs, %eax
      mov %eax, OUT+0x44
      mov %ds, %eax
      mov %eax, OUT+0x48
      mov %cs, %eax
      mov %eax, OUT+0x4c
      movl $1f, RESUME
      mov $0x10, %ax
      mov %ax, %ds                  # DPL 0 data from CPL 3
    1:
      movl $2f, RESUME
      mov $${SEL.conf0 | 3}, %ax
      mov %ax, %fs                  # conforming readable code: DPL ignored
      mov %fs:OUT+0x40, %ebx
    2:
      movl $3f, RESUME
      mov $${SEL.code0 | 3}, %ax
      mov %ax, %gs                  # non-conforming DPL 0 code
    3:
      movl $4f, RESUME
      mov $${SEL.data3}, %ax        # RPL 0 != CPL 3
      mov %ax, %ss
    4:
      movl $5f, RESUME
      mov $${SEL.data1 | 3}, %ax    # DPL 1 data with RPL 3
      mov %ax, %es
    5:
      mov %fs, %eax
      mov %eax, OUT+0x50
      mov %ss, %eax
      mov %eax, OUT+0x54
      RING0 fin
    fin:
    `);
    expect(r.done).toBe(true);
    expect(r.out32(0x10)).toBe(0);       // FS nulled
    expect(r.out32(0x11)).toBe(0);       // GS nulled
    expect(r.out32(0x12) & 0xffff).toBe(0x23);
    expect(r.out32(0x13) & 0xffff).toBe(0x1b);
    expect(r.out32(0x14) & 0xffff).toBe(SEL.conf0 | 3);
    expect(r.out32(0x15) & 0xffff).toBe(0x23);
    expect(r.log.map(fmt)).toEqual(['#13(0x10)', '#13(0x8)', '#13(0x20)', '#13(0x50)']);
    expect(r.log.every((e) => e.cs === 0x1b)).toBe(true);
  });
});

run('LDS/LES/LSS/LFS/LGS', () => {
  it('load a far pointer (32- and 16-bit operand size); a bad selector faults and leaves the GPR', () => {
    const r = runPm(`
      movl $0x12345678, OUT+0x80
      movw $0x10, OUT+0x84
      movw $0xabcd, OUT+0x90
      movw $0x23, OUT+0x92
      movl $0x3e000, OUT+0xa0
      movw $0x10, OUT+0xa4
      movl $0x9999, OUT+0xb0
      movw $${SEL.np}, OUT+0xb4
      movl $0x8888, OUT+0xc0
      movw $0x1f8, OUT+0xc4
      xor %ebx, %ebx
      lds OUT+0x80, %ebx
      mov %ebx, OUT
      mov $0xffffffff, %ecx
      les OUT+0x90, %cx             # 16-bit: CX = 0xabcd, ES = 0x23
      mov %ecx, OUT+4
      mov %es, %eax
      mov %eax, OUT+8
      mov %esp, %edi
      lss OUT+0xa0, %esp
      mov %esp, OUT+12
      mov %ss, %eax
      mov %eax, OUT+16
      mov %edi, %esp
      mov $0x77, %edx
      movl $1f, RESUME
      lfs OUT+0xb0, %edx            # not present: #NP(0x78), EDX unchanged
    1:
      mov %edx, OUT+20
      movl $2f, RESUME
      lgs OUT+0xc0, %edx            # beyond the GDT: #GP(0x1f8)
    2:
      mov %edx, OUT+24
      mov %gs, %eax
      mov %eax, OUT+28
      movl $3f, RESUME
      .byte 0xc5, 0xc0              # LDS with a register operand: #UD
    3:
    `);
    expect(r.done).toBe(true);
    expect(r.out32(0)).toBe(0x12345678);
    expect(r.out32(1)).toBe(0xffffabcd);
    expect(r.out32(2) & 0xffff).toBe(0x23);
    expect(r.out32(3)).toBe(0x3e000);
    expect(r.out32(4) & 0xffff).toBe(0x10);
    expect(r.out32(5)).toBe(0x77);
    expect(r.out32(6)).toBe(0x77);
    expect(r.out32(7) & 0xffff).toBe(0x10);
    expect(r.log.map(fmt)).toEqual(['#11(0x78)', '#13(0x1f8)', '#6(-)']);
  });
});
