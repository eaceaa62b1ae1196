// System instructions (hw/cpu/isa/system.ts) run bare in protected mode: control and debug
// registers with their checks, group 7 (SMSW/LMSW/INVLPG), CPUID, RDTSC, the MSRs, SYSENTER/
// SYSEXIT, CLI/STI with IOPL, and the privilege rule (#GP(0) at CPL 3).
import { describe, expect, it } from 'vitest';
import { insnCosts } from '../../../hw/costs.ts';
import { Cpu } from '../../../hw/cpu/cpu.ts';
import { CS, SS } from '../../../hw/cpu/insn.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { haveAssembler } from './bare.ts';
import { DATA, excFrame, halted, hex, ORG, r32, RING0_STACK, runSys, USER_EXIT } from './sysenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

function str(words: number[]): string {
  return words.map((w) => String.fromCharCode(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24)).join('');
}

run('CPUID', () => {
  it('is AuthenticAMD, family 6, no FPU; advertises PSE PAE PGE SEP TSC MSR CX8 CMOV and NX', () => {
    const r = runSys(`
      xor %eax, %eax
      cpuid
      mov %eax, ${DATA}
      mov %ebx, ${DATA + 4}
      mov %edx, ${DATA + 8}
      mov %ecx, ${DATA + 12}
      mov $1, %eax
      cpuid
      mov %eax, ${DATA + 16}
      mov %ebx, ${DATA + 20}
      mov %edx, ${DATA + 24}
      mov $0x80000001, %eax
      cpuid
      mov %edx, ${DATA + 28}
      mov $0x12345, %eax       # an absent leaf: zeros (AMD)
      cpuid
      mov %eax, ${DATA + 32}
      mov %ebx, ${DATA + 36}
      cli
      hlt
    `);
    const m = (o: number) => r32(r.mem, DATA + o);
    expect(halted(r).vector).toBe(-1);
    expect(m(0)).toBeGreaterThanOrEqual(1);
    expect(str([m(4), m(8), m(12)])).toBe('AuthenticAMD');
    const sig = m(16);
    expect((sig >>> 8) & 0xf).toBe(6);          // family
    expect(m(20) >>> 24).toBe(0);               // initial APIC ID of core 0
    const edx = m(24);
    expect(edx & 1).toBe(0);                    // no FPU until the x87 issue
    for (const bit of [3, 4, 5, 6, 8, 11, 13, 15]) expect((edx >>> bit) & 1).toBe(1);
    for (const bit of [23, 25, 26]) expect((edx >>> bit) & 1).toBe(0); // no MMX, SSE, SSE2
    expect((m(28) >>> 20) & 1).toBe(1);         // NX
    expect([m(32), m(36)]).toEqual([0, 0]);
  });
});

run('CPUID on another core', () => {
  it('leaf 1 EBX[31:24] holds the core\'s initial APIC ID', () => {
    const mem = new PhysMem(1 << 20);
    const cpu = new Cpu({ mem, apicId: 5 });
    mem.writeBytes(0x7c00, Uint8Array.of(0x66, 0xb8, 1, 0, 0, 0, 0x0f, 0xa2, 0xf4)); // mov $1, %eax; cpuid; hlt
    cpu.loadSegCache(CS, 0, 0, 0xffff, 0x9b);
    cpu.eip = 0x7c00;
    cpu.run(10_000);
    expect(cpu.r[3] >>> 24).toBe(5);
    expect((cpu.r[0] >>> 8) & 0xf).toBe(6);
  });
});

run('control registers', () => {
  it('read back CR0 (ET hardwired, reserved bits ignored), CR2, CR3 and CR4', () => {
    const r = runSys(`
      mov $0x60000123, %eax     # CD NW NE MP PE + reserved bit 8; ET clear
      mov %eax, %cr0
      mov %cr0, %ebx
      mov $0xdeadbeef, %eax
      mov %eax, %cr2
      mov %cr2, %ecx
      mov $0x00345018, %eax
      mov %eax, %cr3
      mov %cr3, %edx
      mov $0x1bc, %eax          # TSD DE PSE PAE PGE PCE
      mov %eax, %cr4
      mov %cr4, %esi
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    const reg = (n: number) => r.cpu.r[n] >>> 0;
    expect(reg(3)).toBe(0x60000033);
    expect(reg(1)).toBe(0xdeadbeef);
    expect(reg(2)).toBe(0x00345018);
    expect(reg(6)).toBe(0x1bc);
  });

  it.each([
    ['PG without PE', 'mov $0x80000000, %eax\n mov %eax, %cr0'],
    ['NW without CD', 'mov $0x20000011, %eax\n mov %eax, %cr0'],
    ['CR4.VME', 'mov $1, %eax\n mov %eax, %cr4'],
    ['CR4.PVI', 'mov $2, %eax\n mov %eax, %cr4'],
    ['CR4.MCE', 'mov $0x40, %eax\n mov %eax, %cr4'],
    ['CR4.OSFXSR', 'mov $0x200, %eax\n mov %eax, %cr4'],
  ])('#GP(0) for %s, with the register unchanged', (_name, code) => {
    const r = runSys(`
      mov %cr0, %esi
      mov %cr4, %edi
      .org 0x100, 0x90
      ${code}
      cli
      hlt
    `);
    const f = excFrame(r);
    expect(f.vector).toBe(13);
    expect(f.err).toBe(0);
    expect(f.eip).toBeGreaterThan(ORG + 0x100); // the MOV to CRn, after the MOV to EAX
    expect(r.cpu.cr0 >>> 0).toBe(r.cpu.r[6] >>> 0);
    expect(r.cpu.cr4 >>> 0).toBe(r.cpu.r[7] >>> 0);
  });

  it.each([
    ['CR1 read', '.byte 0x0f, 0x20, 0xc8'],
    ['CR5 write', '.byte 0x0f, 0x22, 0xe8'],
    ['CR7 read', '.byte 0x0f, 0x20, 0xf8'],
  ])('#UD for %s', (_name, code) => {
    const r = runSys(`.org 0x100, 0x90\n${code}\ncli\nhlt`);
    expect(halted(r).vector).toBe(6);
    expect(halted(r).stack[0]).toBe(ORG + 0x100);
  });

  it('MOV CRn ignores the mod bits: no displacement follows', () => {
    const r = runSys(`
      .byte 0x0f, 0x20, 0x05    # mod=0 rm=5 would take a disp32 as a memory operand: here it is EBP
      mov $0x12345678, %ebx
      .byte 0x0f, 0x20, 0x46    # mod=1 rm=6: ESI = CR0, no disp8
      mov $0x9abc, %ecx
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    expect(r.cpu.r[5] >>> 0).toBe(r.cpu.cr0 >>> 0);
    expect(r.cpu.r[6] >>> 0).toBe(r.cpu.cr0 >>> 0);
    expect(r.cpu.r[3]).toBe(0x12345678);
    expect(r.cpu.r[1]).toBe(0x9abc);
  });

  it('LMSW sets PE MP EM TS but cannot clear PE; SMSW reads CR0 (all of it into a 32-bit register)', () => {
    const r = runSys(`
      mov $0x40000011, %eax     # CD
      mov %eax, %cr0
      mov $0xfffe, %ax          # PE clear in the source, MP EM TS set
      lmsw %ax
      mov %cr0, %ebx
      smsw %ecx
      smsw ${DATA}
      xor %eax, %eax
      lmsw %ax
      mov %cr0, %edx
      mov $0x8, %ax             # TS
      lmsw %ax
      clts
      mov %cr0, %esi
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    expect(r.cpu.r[3] >>> 0).toBe(0x4000001f);
    expect(r.cpu.r[1] >>> 0).toBe(0x4000001f);
    expect(r.mem.read(DATA, 4)).toBe(0x001f);    // a 16-bit store
    expect(r.cpu.r[2] >>> 0).toBe(0x40000011);
    expect(r.cpu.r[6] >>> 0).toBe(0x40000011);
  });
});

run('debug registers', () => {
  it('store DR0-3; DR6/DR7 keep their fixed bits; DR4/DR5 alias DR6/DR7 without CR4.DE', () => {
    const r = runSys(`
      mov $0x11111111, %eax
      mov %eax, %dr0
      mov $0x22222222, %eax
      mov %eax, %dr3
      xor %eax, %eax
      mov %eax, %dr6
      mov $-1, %eax
      mov %eax, %dr7
      mov %dr0, %eax
      mov %dr3, %ebx
      mov %dr6, %ecx
      mov %dr7, %edx
      .byte 0x0f, 0x21, 0xe6    # mov %dr4, %esi
      .byte 0x0f, 0x21, 0xef    # mov %dr5, %edi
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    const reg = (n: number) => r.cpu.r[n] >>> 0;
    expect([reg(0), reg(3)]).toEqual([0x11111111, 0x22222222]);
    expect(reg(1)).toBe(0xffff0ff0);
    expect(reg(2)).toBe(0xffff27ff);
    expect(reg(6)).toBe(0xffff0ff0);
    expect(reg(7)).toBe(0xffff27ff);
  });

  it('DR4/DR5 are #UD with CR4.DE', () => {
    const r = runSys(`
      mov $8, %eax
      mov %eax, %cr4
      .org 0x100, 0x90
      .byte 0x0f, 0x21, 0xe0    # mov %dr4, %eax
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(6);
    expect(halted(r).stack[0]).toBe(ORG + 0x100);
  });
});

run('privilege', () => {
  // each instruction at .org 0x100 of a CPL-3 program; RING0_STACK holds the frame
  it.each([
    ['mov %cr0, %eax'], ['mov %eax, %cr0'], ['mov %eax, %cr3'], ['mov %cr4, %eax'],
    ['mov %dr7, %eax'], ['mov %eax, %dr0'], ['lmsw %ax'], ['clts'], ['invd'], ['wbinvd'],
    ['invlpg (%eax)'], ['hlt'], ['rdmsr'], ['wrmsr'], ['sysexit'], ['cli'], ['sti'], ['rdpmc'],
  ])('%s at CPL 3 is #GP(0)', (insn) => {
    const r = runSys(`xor %eax, %eax\n.org 0x100, 0x90\n${insn}\nint $${USER_EXIT}`, { user: true });
    const h = halted(r);
    expect(h.vector).toBe(13);
    expect(h.stack.slice(0, 3)).toEqual([0, ORG + 0x100, 0x1b]);
    expect(r.cpu.r[4] >>> 0).toBe(RING0_STACK - 24);
  });

  it('SMSW, RDTSC and CPUID work at CPL 3; CLI/STI too when IOPL = 3', () => {
    const r = runSys(`
      cpuid
      rdtsc
      smsw %ebx
      cli
      sti
      int $${USER_EXIT}
    `, { user: true, setup: (cpu) => cpu.setEflags(3 << 12, 3 << 12) });
    expect(halted(r).vector).toBe(USER_EXIT);
    expect(r.cpu.r[3] >>> 0).toBe(r.cpu.cr0 >>> 0);
  });

  it('RDTSC at CPL 3 is #GP(0) with CR4.TSD; at CPL 0 it still works', () => {
    const u = runSys(`.org 0x100, 0x90\nrdtsc\nint $${USER_EXIT}`, { user: true, setup: (cpu) => { cpu.cr4 = 4; } });
    expect(halted(u).vector).toBe(13);
    expect(halted(u).stack.slice(0, 2)).toEqual([0, ORG + 0x100]);
    const k = runSys('rdtsc\ncli\nhlt', { setup: (cpu) => { cpu.cr4 = 4; } });
    expect(halted(k).vector).toBe(-1);
  });
});

run('RDTSC and the MSRs', () => {
  it('RDTSC reads the cycle count; WRMSR TSC sets it', () => {
    const r = runSys(`
      rdtsc
      mov %eax, ${DATA}
      mov %edx, ${DATA + 4}
      nop
      rdtsc
      mov %eax, ${DATA + 8}
      mov $0x10, %ecx
      mov $5, %edx
      mov $0xfffffff0, %eax
      wrmsr
      rdtsc
      mov %eax, ${DATA + 12}
      mov %edx, ${DATA + 16}
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    const m = (o: number) => r32(r.mem, DATA + o);
    expect(m(0)).toBe(0);                    // nothing ran before it
    expect(m(4)).toBe(0);
    expect(m(8) - m(0)).toBe(insnCosts.rdtsc.cycles + 2 * insnCosts.store.cycles + insnCosts.simple.cycles);
    // 5:0xfffffff0 as written, plus the WRMSR's own cycles, carried into the high half
    expect(m(16) * 2 ** 32 + m(12)).toBe(5 * 2 ** 32 + 0xfffffff0 + insnCosts.msr.cycles);
    expect(m(16)).toBe(6);
  });

  it('SYSENTER_CS/ESP/EIP, EFER.NXE, PAT and APIC_BASE read back what was written', () => {
    const wr = (msr: number, lo: number, hi = 0) => `mov $${hex(msr)}, %ecx\n mov $${hex(lo)}, %eax\n mov $${hex(hi)}, %edx\n wrmsr`;
    const rd = (msr: number, at: number) => `mov $${hex(msr)}, %ecx\n rdmsr\n mov %eax, ${at}\n mov %edx, ${at + 4}`;
    const r = runSys(`
      ${wr(0x174, 0x10)}
      ${wr(0x175, 0x12345678)}
      ${wr(0x176, 0x9abcdef0)}
      ${wr(0xc0000080, 0x800)}
      ${wr(0x277, 0x00010406, 0x07050400)}
      ${wr(0x1b, 0xfec00800)}
      ${rd(0x174, DATA)}
      ${rd(0x175, DATA + 8)}
      ${rd(0x176, DATA + 16)}
      ${rd(0xc0000080, DATA + 24)}
      ${rd(0x277, DATA + 32)}
      ${rd(0x1b, DATA + 40)}
      cli
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    const m = (o: number) => r32(r.mem, DATA + o);
    expect([m(0), m(4)]).toEqual([0x10, 0]);
    expect(m(8)).toBe(0x12345678);
    expect(m(16)).toBe(0x9abcdef0);
    expect([m(24), m(28)]).toEqual([0x800, 0]);
    expect([m(32), m(36)]).toEqual([0x00010406, 0x07050400]);
    expect(m(40)).toBe(0xfec00900);           // the BSP bit is read-only and set on core 0
    expect(r.cpu.efer).toBe(0x800);
  });

  it.each([
    ['an unknown MSR', 'mov $0x1234, %ecx\n rdmsr'],
    ['an unknown MSR write', 'mov $0xc0000081, %ecx\n wrmsr'],
    ['EFER.SCE', 'mov $0xc0000080, %ecx\n mov $1, %eax\n xor %edx, %edx\n wrmsr'],
    ['EFER.LME', 'mov $0xc0000080, %ecx\n mov $0x100, %eax\n xor %edx, %edx\n wrmsr'],
    ['a PAT entry of type 2', 'mov $0x277, %ecx\n mov $0x00000200, %eax\n xor %edx, %edx\n wrmsr'],
    ['APIC_BASE reserved bits', 'mov $0x1b, %ecx\n mov $0xfee00001, %eax\n xor %edx, %edx\n wrmsr'],
    ['RDPMC (no counters)', 'xor %ecx, %ecx\n rdpmc'],
  ])('#GP(0) for %s', (_name, code) => {
    const r = runSys(`${code}\ncli\nhlt`);
    const f = excFrame(r);
    expect([f.vector, f.err]).toEqual([13, 0]);
    expect(r.cpu.efer).toBe(0);
  });
});

run('SYSENTER / SYSEXIT', () => {
  it('SYSEXIT enters ring 3 with the flat segments after SYSENTER_CS; SYSENTER comes back to ring 0', () => {
    const r = runSys(`
      mov $0x174, %ecx
      mov $0x08, %eax
      xor %edx, %edx
      wrmsr
      mov $0x175, %ecx
      mov $0x8800, %eax
      wrmsr
      mov $0x176, %ecx
      mov $${hex(ORG + 0x200)}, %eax
      wrmsr
      sti
      mov $${hex(ORG + 0x100)}, %edx
      mov $0x6f000, %ecx
      sysexit
      .org 0x100, 0x90
      mov %cs, %eax             # in ring 3
      mov %ss, %ebx
      mov %esp, %esi
      sysenter
      .org 0x200, 0x90
      mov %cs, %edi             # back in ring 0
      cli
      hlt
    `);
    const { cpu } = r;
    expect(halted(r).vector).toBe(-1);
    expect([cpu.r[0], cpu.r[3], cpu.r[6]]).toEqual([0x1b, 0x23, 0x6f000]);
    expect(cpu.r[7]).toBe(0x08);
    expect([cpu.segSel[CS], cpu.segSel[SS], cpu.cpl]).toEqual([0x08, 0x10, 0]);
    expect(cpu.r[4]).toBe(0x8800);
    expect(cpu.segLimit[SS]).toBe(0xffffffff);
  });

  it('SYSENTER clears IF', () => {
    const r = runSys(`
      mov $0x174, %ecx
      mov $0x08, %eax
      xor %edx, %edx
      wrmsr
      mov $0x176, %ecx
      mov $${hex(ORG + 0x100)}, %eax
      wrmsr
      sti
      sysenter
      .org 0x100, 0x90
      hlt
    `);
    expect(halted(r).vector).toBe(-1);
    expect(r.cpu.getEflags() & 0x200).toBe(0);
  });

  it('SYSENTER with SYSENTER_CS = 0 is #GP(0); SYSEXIT at CPL 3 is #GP(0)', () => {
    const a = runSys('.org 0x100, 0x90\nsysenter\ncli\nhlt');
    expect(excFrame(a).vector).toBe(13);
    expect(excFrame(a).eip).toBe(ORG + 0x100);
    const b = runSys(`.org 0x100, 0x90\nsysexit\nint $${USER_EXIT}`, { user: true, setup: (cpu) => { cpu.sysenterCs = 8; } });
    expect(halted(b).vector).toBe(13);
  });
});

run('HLT, CLTS, INVD, WBINVD, UD2', () => {
  it('run at CPL 0; HLT with IF = 0 halts for good', () => {
    const r = runSys('clts\ninvd\nwbinvd\nmov $7, %ebx\ncli\nhlt\nmov $9, %ebx');
    expect(r.end).toBe('halt');
    expect(halted(r).vector).toBe(-1);
    expect(r.cpu.r[3]).toBe(7);
  });
  it('UD2 raises #UD and is not counted as an unimplemented opcode', () => {
    const r = runSys('.org 0x100, 0x90\nud2');
    expect(halted(r).vector).toBe(6);
    expect(halted(r).stack[0]).toBe(ORG + 0x100);
    expect(r.cpu.unimplemented.size).toBe(0);
  });
});
