// Paging, run bare: programs turn paging on with MOV CR3/CR4/CR0 (or start at CPL 3 with it on)
// and touch memory; the tests read physical memory, the page tables and the exception frame.
// 2-level with 4 KiB pages, PSE 4 MiB pages, PGE global pages, PAE with 2 MiB pages and NX,
// CR0.WP, user/supervisor and read/write checks, accessed/dirty bits, #PF error codes and CR2.
import { describe, expect, it } from 'vitest';
import { haveAssembler } from './bare.ts';
import { enablePaging, excFrame, halted, hex, ORG, Paging32, PagingPae, r32, runSys, USER_EXIT, w32 } from './sysenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

const PD = 0x100000;
/** Turns paging on with CR3 = PD (CR4 as the program set it). */
const ON = `
  mov $${hex(PD)}, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $0x80000000, %eax
  mov %eax, %cr0
`;
const cr4 = (v: number) => `mov $${hex(v)}, %eax\n mov %eax, %cr4\n`;
const PSE = 0x10, PAE = 0x20, PGE = 0x80;

/** #PF error-code bits. */
const P = 1, W = 2, U = 4, RSVD = 8, ID = 16;

run('2-level paging, 4 KiB pages', () => {
  it('translates, and writes the accessed and dirty bits back to the tables', () => {
    let p!: Paging32;
    const r = runSys(`${ON}
      movl $0xcafe, 0x400010
      mov 0x401008, %ebx
      cli
      hlt
    `, {
      setup: (_cpu, mem) => {
        p = new Paging32(mem, PD);
        p.identity(0, 0x200000);
        p.map(0x400000, 0x200000);
        p.map(0x401000, 0x201000);
        p.map(0x402000, 0x202000);
        w32(mem, 0x201008, 0x5555);
      },
    });
    expect(halted(r).vector).toBe(-1);
    expect(r32(r.mem, 0x200010)).toBe(0xcafe);
    expect(r.cpu.r[3]).toBe(0x5555);
    expect(p.pte(0x400000) & 0x60).toBe(0x60); // written: A and D
    expect(p.pte(0x401000) & 0x60).toBe(0x20); // read: A only
    expect(p.pte(0x402000) & 0x60).toBe(0);    // untouched
    expect(p.pde(0x400000) & 0x60).toBe(0x20); // a PDE that points to a table gets A, never D
  });

  it('a #PF for a not-present page reports CR2 and the error code, and the faulting instruction restarts', () => {
    const r = runSys(`${ON}
      .org 0x100, 0x90
      movl $1, 0x500004
      cli
      hlt
    `, { setup: (_c, mem) => new Paging32(mem, PD).identity(0, 0x200000) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([14, W, ORG + 0x100]);
    expect(r.cpu.cr2 >>> 0).toBe(0x500004);
  });

  it('an instruction fetch from a not-present page faults with EIP = CR2 = the target', () => {
    const r = runSys(`${ON}
      mov $0x900000, %eax
      jmp *%eax
    `, { setup: (_c, mem) => new Paging32(mem, PD).identity(0, 0x200000) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([14, 0, 0x900000]);
    expect(r.cpu.cr2 >>> 0).toBe(0x900000);
  });

  it('an instruction straddling into a not-present page faults at its start with CR2 = the second page', () => {
    const r = runSys(`${ON}
      mov $0x403ffe, %eax
      jmp *%eax
    `, {
      setup: (_c, mem) => {
        const p = new Paging32(mem, PD);
        p.identity(0, 0x200000);
        p.map(0x403000, 0x203000);
        mem.writeBytes(0x203ffe, Uint8Array.of(0xb8, 1, 2, 3, 4)); // mov $0x04030201, %eax
      },
    });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([14, 0, 0x403ffe]);
    expect(r.cpu.cr2 >>> 0).toBe(0x404000);
  });
});

run('PSE: 4 MiB pages', () => {
  const prog = (cr4bits: number) => `${cr4(cr4bits)}${ON}
      movl $0xbeef, 0x812344
      mov 0x812344, %ebx
      cli
      hlt
  `;
  const setup = (p: { v?: Paging32 }) => (_c: unknown, mem: import('../../../hw/mem/physmem.ts').PhysMem) => {
    p.v = new Paging32(mem, PD);
    p.v.identity(0, 0x200000);
    p.v.map4m(0x800000, 0x400000);
  };

  it('map 4 MiB with one PDE (A and D set in it) when CR4.PSE = 1', () => {
    const p: { v?: Paging32 } = {};
    const r = runSys(prog(PSE), { setup: setup(p) });
    expect(halted(r).vector).toBe(-1);
    expect(r32(r.mem, 0x412344)).toBe(0xbeef);
    expect(r.cpu.r[3]).toBe(0xbeef);
    expect(p.v!.pde(0x800000) & 0xe0).toBe(0xe0);
  });

  it('PS is ignored without CR4.PSE: the PDE points to a page table', () => {
    const p: { v?: Paging32 } = {};
    const r = runSys(prog(0), { setup: setup(p) });
    const f = excFrame(r);
    expect([f.vector, f.err]).toEqual([14, W]); // the "table" at 0x400000 holds zeros
    expect(r.cpu.cr2 >>> 0).toBe(0x812344);
  });
});

run('PGE: global pages', () => {
  // The PTE for 0x400000 lives at 0x102000 (third page of the tables); the program retargets it.
  const PTE = 0x102000;
  const prog = (g: number, cr4bits: number) => `${cr4(cr4bits)}${ON}
      mov 0x400000, %eax              # 0x11111111, now in the TLB
      movl $${hex(0x201003 | g)}, ${hex(PTE)}
      mov %cr3, %ecx
      mov %ecx, %cr3                  # flushes non-global entries only
      mov 0x400000, %ebx
      invlpg 0x400000                 # flushes the page, global or not
      mov 0x400000, %edx              # 0x22222222
      movl $${hex(0x200003 | g)}, ${hex(PTE)}
      mov %cr3, %ecx
      mov %ecx, %cr3
      mov 0x400000, %esi
      mov %cr4, %ecx
      xor $0x80, %ecx
      mov %ecx, %cr4                  # toggling PGE flushes everything
      xor $0x80, %ecx
      mov %ecx, %cr4
      mov 0x400000, %edi              # 0x11111111
      cli
      hlt
  `;
  const setup = (g: number) => (_c: unknown, mem: import('../../../hw/mem/physmem.ts').PhysMem) => {
    const p = new Paging32(mem, PD);
    p.identity(0, 0x200000);
    p.map(0x400000, 0x200000, 3 | g);
    if (p.pteAddr(0x400000) !== PTE) throw new Error('layout changed');
    w32(mem, 0x200000, 0x11111111);
    w32(mem, 0x201000, 0x22222222);
  };
  const A = 0x11111111, B = 0x22222222;

  it('a global entry survives a CR3 write; INVLPG and a CR4.PGE toggle flush it', () => {
    const r = runSys(prog(0x100, PGE), { setup: setup(0x100) });
    expect(halted(r).vector).toBe(-1);
    const g = (n: number) => r.cpu.r[n] >>> 0;
    expect([g(0), g(3), g(2), g(6), g(7)]).toEqual([A, A, B, B, A]);
  });
  it('without the G bit, or without CR4.PGE, a CR3 write flushes the entry', () => {
    for (const [gbit, bits] of [[0, PGE], [0x100, 0]]) {
      const r = runSys(prog(gbit, bits), { setup: setup(gbit) });
      expect(halted(r).vector).toBe(-1);
      expect([r.cpu.r[0], r.cpu.r[3], r.cpu.r[6]]).toEqual([A, B, A]);
    }
  });
});

run('CR0.PG', () => {
  it('turning paging off and on again drops every cached translation (global ones too)', () => {
    const PTE = 0x102000;
    const r = runSys(`${cr4(PGE)}${ON}
      mov 0x400000, %ebx              # the TLB now maps 0x400000 -> 0x200000 (a global entry)
      mov %cr0, %eax
      and $0x7fffffff, %eax
      mov %eax, %cr0                  # paging off
      movl $0x201103, ${hex(PTE)}
      or $0x80000000, %eax
      mov %eax, %cr0                  # paging on
      mov 0x400000, %ecx
      cli
      hlt
    `, {
      setup: (_c, mem) => {
        const p = new Paging32(mem, PD);
        p.identity(0, 0x200000);
        p.map(0x400000, 0x200000, 0x103);
        if (p.pteAddr(0x400000) !== PTE) throw new Error('layout changed');
        w32(mem, 0x200000, 0x11111111);
        w32(mem, 0x201000, 0x22222222);
      },
    });
    expect(halted(r).vector).toBe(-1);
    expect([r.cpu.r[3] >>> 0, r.cpu.r[1] >>> 0]).toEqual([0x11111111, 0x22222222]);
  });
});

run('PAE: 3-level, 2 MiB pages, NX', () => {
  // PDPT at PD; the page directory for the first GiB at PD + 0x1000
  const PDE0 = PD + 0x1000;
  const base = (q: { v?: PagingPae }) => (_c: unknown, mem: import('../../../hw/mem/physmem.ts').PhysMem) => {
    const p = new PagingPae(mem, PD);
    q.v = p;
    p.map2m(0, 0);
    p.map2m(0x400000, 0x600000);
    p.map2m(0xa00000, 0x800000, 3, true);
    w32(mem, 0x800000, 0xc3c3c3c3);
    p.map(0xc00000, 0x200000);
    if (p.pdeAddr(0x400000) !== PDE0 + 16) throw new Error('layout changed');
  };

  it('maps 2 MiB pages and sets A and D in the PDE', () => {
    const q: { v?: PagingPae } = {};
    const r = runSys(`${cr4(PAE)}${ON}
      movl $0x1234, 0x4abcd0
      mov 0x4abcd0, %ebx
      mov 0xc00000, %ecx      # a 4 KiB page under PAE
      cli
      hlt
    `, { setup: base(q) });
    expect(halted(r).vector).toBe(-1);
    expect(r32(r.mem, 0x6abcd0)).toBe(0x1234);
    expect(r.cpu.r[3]).toBe(0x1234);
    expect(r32(r.mem, PDE0 + 16) & 0xe0).toBe(0xe0);
  });

  it('with EFER.NXE, data in an NX page reads, and a fetch from it is #PF with I/D', () => {
    const q: { v?: PagingPae } = {};
    const r = runSys(`${cr4(PAE)}${ON}
      mov $0xc0000080, %ecx
      mov $0x800, %eax
      xor %edx, %edx
      wrmsr
      mov 0xa00000, %ebx
      mov $0xa00000, %eax
      jmp *%eax
    `, { setup: base(q) });
    const f = excFrame(r);
    expect(r.cpu.r[3] >>> 0).toBe(0xc3c3c3c3);
    expect([f.vector, f.err, f.eip]).toEqual([14, P | ID, 0xa00000]);
    expect(r.cpu.cr2 >>> 0).toBe(0xa00000);
  });

  it('without EFER.NXE the NX bit is reserved: #PF with RSVD', () => {
    const q: { v?: PagingPae } = {};
    const r = runSys(`${cr4(PAE)}${ON}
      .org 0x100, 0x90
      mov 0xa00010, %ebx
    `, { setup: base(q) });
    const f = excFrame(r);
    expect([f.vector, f.err, f.eip]).toEqual([14, P | RSVD, ORG + 0x100]);
    expect(r.cpu.cr2 >>> 0).toBe(0xa00010);
  });

  it('reserved bits in a PTE (above the 36-bit address) or in a 2 MiB PDE are #PF with RSVD', () => {
    for (const [lin, poke] of [[0xc00000, (q: PagingPae) => w32(q.mem, q.pteAddr(0xc00000) + 4, 0x100)],
      [0x400000, (q: PagingPae) => w32(q.mem, q.pdeAddr(0x400000), 0x600000 | 0x2000 | 0x83)]] as const) {
      const r = runSys(`${cr4(PAE)}${ON}\n movl $1, ${hex(lin + 8)}\n cli\n hlt`, {
        setup: (c, mem) => { const q: { v?: PagingPae } = {}; base(q)(c, mem); poke(q.v!); },
      });
      const f = excFrame(r);
      expect([f.vector, f.err]).toEqual([14, P | W | RSVD]);
      expect(r.cpu.cr2 >>> 0).toBe(lin + 8);
    }
  });

  it('PDPTEs are loaded by MOV CR3 and by enabling paging: reserved bits are #GP(0)', () => {
    const bad = (_c: unknown, mem: import('../../../hw/mem/physmem.ts').PhysMem) => {
      const q: { v?: PagingPae } = {};
      base(q)(_c, mem);
      w32(mem, 0x1f0000, PDE0 | 1 | 0x20);    // a second PDPT whose entry 0 has reserved bit 5
    };
    const a = runSys(`${cr4(PAE)}${ON}
      mov $0x1f0000, %eax
      .org 0x100, 0x90
      mov %eax, %cr3
      cli
      hlt
    `, { setup: bad });
    const f = excFrame(a);
    expect([f.vector, f.err, f.eip]).toEqual([13, 0, ORG + 0x100]);
    expect(a.cpu.cr3).toBe(PD);
    const b = runSys(`${cr4(PAE)}
      mov $0x1f0000, %eax
      mov %eax, %cr3
      mov %cr0, %eax
      or $0x80000000, %eax
      .org 0x100, 0x90
      mov %eax, %cr0
      cli
      hlt
    `, { setup: bad });
    const g = excFrame(b);
    expect([g.vector, g.err, g.eip]).toEqual([13, 0, ORG + 0x100]);
    expect(b.cpu.pg).toBe(false);
  });
});

run('CR0.WP', () => {
  it('a supervisor write to a read-only page succeeds with WP = 0 and faults once WP = 1', () => {
    const r = runSys(`${ON}
      movl $1, 0x400000
      mov %cr0, %eax
      or $0x10000, %eax
      mov %eax, %cr0
      .org 0x100, 0x90
      movl $2, 0x400000
      cli
      hlt
    `, {
      setup: (_c, mem) => {
        const p = new Paging32(mem, PD);
        p.identity(0, 0x200000);
        p.map(0x400000, 0x200000, 1);
      },
    });
    const f = excFrame(r);
    expect(r32(r.mem, 0x200000)).toBe(1);
    expect([f.vector, f.err, f.eip]).toEqual([14, P | W, ORG + 0x100]);
    expect(r.cpu.cr2 >>> 0).toBe(0x400000);
  });
});

run('user/supervisor and read/write checks', () => {
  // [what, PDE flags, PTE flags (0: not present), access, expected error code or null]
  const cases: [string, number, number, string, number | null][] = [
    ['user read of a supervisor page', 7, 3, 'mov 0x400000, %eax', P | U],
    ['user write of a supervisor page', 7, 3, 'movl $1, 0x400000', P | W | U],
    ['user write of a read-only page', 7, 5, 'movl $1, 0x400000', P | W | U],
    ['user read of a read-only page', 7, 5, 'mov 0x400000, %eax', null],
    ['user write of a writable page', 7, 7, 'movl $1, 0x400000', null],
    ['user read through a supervisor PDE', 3, 7, 'mov 0x400000, %eax', P | U],
    ['user write through a read-only PDE', 5, 7, 'movl $1, 0x400000', P | W | U],
    ['user read of a not-present page', 7, 0, 'mov 0x400000, %eax', U],
    ['user write of a not-present page', 7, 0, 'movl $1, 0x400000', W | U],
    ['user fetch from a supervisor page', 7, 3, 'mov $0x400000, %eax\n jmp *%eax', P | U],
  ];
  it.each(cases)('%s', (_name, pdeFlags, pteFlags, access, err) => {
    const r = runSys(`.org 0x100, 0x90\n${access}\nint $${USER_EXIT}`, {
      user: true,
      setup: (cpu, mem) => {
        const p = new Paging32(mem, PD);
        p.identity(0, 0x200000, 7);
        p.pteAddr(0x400000, pdeFlags);
        if (pteFlags) p.map(0x400000, 0x200000, pteFlags);
        mem.write(0x200000, 1, 0xc3);
        enablePaging(cpu, PD);
      },
    });
    const h = halted(r);
    if (err === null) { expect(h.vector).toBe(USER_EXIT); return; }
    expect(h.vector).toBe(14);
    expect(h.stack[0]).toBe(err);
    expect(r.cpu.cr2 >>> 0).toBe(0x400000);
    if (access.startsWith('jmp') || access.includes('jmp')) expect(h.stack[1]).toBe(0x400000);
    else expect(h.stack[1]).toBe(ORG + 0x100);
  });

  it('supervisor code reads and writes user pages', () => {
    const r = runSys(`${ON}\n movl $5, 0x400000\n mov 0x400000, %ebx\n cli\n hlt`, {
      setup: (_c, mem) => {
        const p = new Paging32(mem, PD);
        p.identity(0, 0x200000);
        p.map(0x400000, 0x200000, 7);
      },
    });
    expect(halted(r).vector).toBe(-1);
    expect(r.cpu.r[3]).toBe(5);
  });
});
