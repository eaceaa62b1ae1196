// Shadow paging (vmm/paging/shadow.ts: the virtual TLB, and shadow-cache.ts) running real guest
// code through vmrun: each guest runs under both strategies and natively (NP off, the guest's
// paging directly on the core), and the guest's view (values, faults, CR reads) must be the same.
import { expect, it } from 'vitest';
import {
  CODE, enablePaging, gate, type GuestMem, guestCode, hexes, identity, PF_SKIP, PT_A, PT_D, PT_G, PT_P, PT_PS, PT_U, PT_W, type RunResult, runGuest,
  suite, TO_RING3,
} from './shadow-env.ts';
import { CACHE, differential, VTLB } from './shadow-props.ts';

const PD = 0x100000, PT0 = 0x101000, PT1 = 0x102000, PD_B = 0x103000, PT_B = 0x104000;
const DATA = 0x200000;
const VA = 0x40000000; // PDE index 256

const MODES = [VTLB, CACHE];

/** Runs under native, shadow and shadow-cache (`differential`: same log and final guest memory); returns the two shadow runs. */
const all = (src: string, setup: (g: GuestMem) => void, ramBase?: number): RunResult[] =>
  differential(guestCode(src), setup, MODES.map((m) => ({ ...m, ramBase }))).runs;

suite('shadow paging (real guests, vmrun, own exit loop)', () => {
  it('paging off runs on the passthrough table; CR0/CR3/CR4 reads give the guest its own values', () => {
    const src = `
      movl $0x11223344, 0x200000
      mov 0x200000, %eax
      log
      mov %cr0, %eax
      log
      mov %cr4, %eax
      log
      ${enablePaging(PD)}
      mov %cr0, %eax
      log
      mov %cr3, %eax
      log
      mov %cr4, %eax
      log
      mov 0x200000, %eax
      log
      smsw %ecx
      mov %ecx, %eax
      log
      clts
      mov %cr0, %eax
      log
      finish
    `;
    const runs = all(src, (g) => identity(g, PD, PT0));
    expect(hexes(runs[0].log)).toEqual(hexes([0x11223344, 0x11, 0, 0x80010011, PD, 0x10, 0x11223344, 0x80010011, 0x80010011]));
    for (const r of runs) {
      expect(r.counts.get('shadow.crWrite')).toBeGreaterThanOrEqual(3);
      expect(r.counts.get('shadow.fill')).toBeGreaterThan(0);
    }
  });

  it('switches CR3 between two address spaces', () => {
    const src = `
      ${enablePaging(PD)}
      mov $${VA}, %ebx
      movl $0xaaaa, (%ebx)
      loadcr3 ${PD_B}
      movl $0xbbbb, (%ebx)
      readlog
      loadcr3 ${PD}
      readlog
      loadcr3 ${PD_B}
      readlog
      mov 0x${(DATA + 0x1000).toString(16)}, %eax
      log
      finish
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD, PT0); identity(g, PD_B, PT0);
      g.w32(PD + 256 * 4, PT1 | PT_P | PT_W); g.w32(PT1, DATA | PT_P | PT_W);
      g.w32(PD_B + 256 * 4, PT_B | PT_P | PT_W); g.w32(PT_B, (DATA + 0x1000) | PT_P | PT_W);
    };
    const runs = all(src, setup);
    expect(hexes(runs[0].log)).toEqual(hexes([0xbbbb, 0xaaaa, 0xbbbb, 0xbbbb]));
    expect(runs[0].counts.get('shadow.flush')).toBeGreaterThanOrEqual(4);
    // the cache finds each address space's tables again when CR3 comes back
    expect(runs[1].counts.get('shadow.cacheHit') ?? 0).toBeGreaterThan(0);
  });

  it('INVLPG makes a changed PTE visible; without it the stale translation may stay (both strategies keep it)', () => {
    const src = `
      ${enablePaging(PD)}
      mov $${VA}, %ebx
      readlog
      movl $${(DATA + 0x1000) | PT_P | PT_W}, ${PT1}
      readlog
      invlpg (%ebx)
      readlog
      finish
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD, PT0);
      g.w32(PD + 256 * 4, PT1 | PT_P | PT_W); g.w32(PT1, DATA | PT_P | PT_W);
      g.w32(DATA, 0x1111); g.w32(DATA + 0x1000, 0x2222);
    };
    const runs = all(src, setup);
    expect(hexes(runs[0].log)).toEqual(hexes([0x1111, 0x1111, 0x2222]));
    for (const r of runs) expect(r.counts.get('shadow.invlpg')).toBe(1);
  });

  it("reflects guest page faults into the guest's own handler with CR2 and the error code", () => {
    const src = `
      ${enablePaging(PD)}
      mov $${VA + 0x5008}, %ebx
      mov (%ebx), %eax          # not present, read: err 0
      mov %eax, (%ebx)          # not present, write: err 2
      mov $${VA + 0x1010}, %ebx
      mov %eax, (%ebx)          # read-only page, supervisor write with WP: err 3
      readlog
      finish
      ${PF_SKIP}
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD, PT0);
      g.w32(PD + 256 * 4, PT1 | PT_P | PT_W); g.w32(PT1 + 4, (DATA + 0x1000) | PT_P);
      g.w32(DATA + 0x1010, 0x5151);
    };
    const runs = all(src, setup);
    expect(hexes(runs[0].log)).toEqual(hexes([VA + 0x5008, 0, VA + 0x5008, 2, VA + 0x1010, 3, 0x5151]));
    for (const r of runs) expect(r.counts.get('shadow.guestPf')).toBe(3);
  });

  it('keeps the accessed and dirty bits the guest sees, write-protecting clean pages', () => {
    const src = `
      ${enablePaging(PD)}
      mov ${PT1}, %eax
      log                       # untouched: no A
      mov $${VA}, %ebx
      mov (%ebx), %eax
      mov ${PT1}, %eax
      log                       # read: A
      mov ${PD + 256 * 4}, %eax
      log                       # the PDE's A
      movl $7, (%ebx)
      mov ${PT1}, %eax
      log                       # written: A and D
      mov ${PT1 + 4}, %eax
      log                       # the neighbour: untouched
      finish
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD, PT0);
      g.w32(PD + 256 * 4, PT1 | PT_P | PT_W); g.w32(PT1, DATA | PT_P | PT_W); g.w32(PT1 + 4, (DATA + 0x1000) | PT_P | PT_W);
    };
    const runs = all(src, setup);
    const pte = DATA | PT_P | PT_W;
    expect(hexes(runs[0].log)).toEqual(hexes([pte, pte | PT_A, PT1 | PT_P | PT_W | PT_A, pte | PT_A | PT_D, (DATA + 0x1000) | PT_P | PT_W]));
    for (const r of runs) expect(r.counts.get('shadow.wpFault')).toBeGreaterThanOrEqual(1);
  });

  it('supervisor writes to read-only pages with CR0.WP = 0; user/supervisor checks at CPL 3', () => {
    const src = `
      ${enablePaging(PD)}
      mov %cr0, %eax
      and $~0x10000, %eax
      mov %eax, %cr0            # WP = 0
      mov $${VA + 0x1000}, %ebx
      movl $0x77, (%ebx)        # read-only user page: a supervisor write goes through
      readlog
      ${TO_RING3}
      mov $${VA + 0x1000}, %ebx
      mov (%ebx), %eax          # user read of a user page
      log
      mov %eax, (%ebx)          # user write of a read-only page: err 7
      mov $${VA}, %ebx
      mov (%ebx), %eax          # user read of a supervisor page: err 5
      mov %eax, (%ebx)          # user write of a supervisor page: err 7
      finish
      ${PF_SKIP}
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD, PT0);
      g.w32(PD + 256 * 4, PT1 | PT_P | PT_W | PT_U);
      g.w32(PT1, DATA | PT_P | PT_W);
      g.w32(PT1 + 4, (DATA + 0x1000) | PT_P | PT_U);
    };
    const runs = all(src, setup);
    expect(hexes(runs[0].log)).toEqual(hexes([0x77, 0x77, VA + 0x1000, 7, VA, 5, VA, 7]));
  });

  it('4 MiB guest pages (PSE) and global pages: mapped large where the host allows, split where not; G survives CR3 writes', () => {
    const src = `
      ${enablePaging(PD, 0x90)}
      mov $${VA + 0x300010}, %ebx
      movl $0x4242, (%ebx)
      mov ${DATA + 0x100010}, %eax
      log
      mov ${PD + 256 * 4}, %eax
      log
      loadcr3 ${PD}
      readlog
      finish
    `;
    const setup = (g: boolean) => (m: GuestMem): void => {
      identity(m, PD, PT0);
      m.w32(PD + 256 * 4, 0 | PT_P | PT_W | PT_PS | (g ? PT_G : 0));
    };
    for (const ramBase of [0x400000, 0x500000]) {
      const global = all(src, setup(true), ramBase);
      const runs = all(src, setup(false), ramBase);
      expect(hexes(global[0].log)).toEqual(hexes([0x4242, PT_P | PT_W | PT_PS | PT_G | PT_A | PT_D, 0x4242]));
      expect(hexes(runs[0].log)).toEqual(hexes([0x4242, PT_P | PT_W | PT_PS | PT_A | PT_D, 0x4242]));
      // the shadow directory entry for VA (refilled after the CR3 write): a 4 MiB page where the
      // host frame is 4 MiB aligned (virtual TLB only), else a page table (the guest page split)
      for (const [k, r] of runs.entries()) {
        const spde = r.host.read(r.realCr3 + 256 * 4, 4);
        const large = ramBase % 0x400000 === 0 && k === 0;
        expect((spde & PT_PS) !== 0, `${MODES[k].name} at ${ramBase.toString(16)}`).toBe(large);
        const leaf = large ? spde : r.host.read((spde & ~0xfff) + 0x300 * 4, 4);
        expect(leaf & ~0xfff).toBe(large ? ramBase : ramBase + 0x300000);
      }
      // a global page's translation outlives the guest's CR3 write (TLB_CONTROL 7): no refill
      expect(global[0].counts.get('shadow.fill')).toBe((runs[0].counts.get('shadow.fill') ?? 0) - 1);
    }
  });

  it('hands an access to a guest page outside RAM back as mmio, with its guest-physical address', () => {
    const src = `
      ${enablePaging(PD)}
      mov $${VA + 0x123}, %ebx
      readlog
      finish
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD, PT0);
      g.w32(PD + 256 * 4, PT1 | PT_P | PT_W); g.w32(PT1, 0x800000 | PT_P | PT_W);
    };
    for (const { name, f } of MODES) {
      const r = runGuest(f, guestCode(src), { setup });
      expect(r.outcome, name).toBe('mmio');
      expect(r.mmio).toEqual({ gva: VA + 0x123, gpa: 0x800123 });
      expect(r.counts.get('shadow.mmio')).toBe(1);
      // the guest's accessed bit is set (the walk completed); the shadow maps nothing there
      expect(r.ram[PT1] & PT_A).toBe(PT_A);
      const spde = r.host.read(r.realCr3 + 256 * 4, 4);
      expect(spde & PT_P ? r.host.read((spde & ~0xfff), 4) & PT_P : 0).toBe(0);
    }
  });

  it('checks the CR0 value as the core would (#GP for PG without PE) and emulates LMSW, CLTS and SMSW', () => {
    const src = `
      mov $0x80000000, %eax
      mov %eax, %cr0            # PG without PE: #GP(0), skipped by the handler
      mov $0xe, %ecx
      lmsw %cx                  # sets MP, EM, TS; PE stays
      mov %cr0, %eax
      log
      clts
      smsw %eax
      log
      finish
      .org 0x700, 0x90
    gp:
      pop %eax
      log
      addl $3, (%esp)
      iret
    `;
    const setup = (g: GuestMem): void => gate(g, 13, CODE + 0x700);
    const runs = all(src, setup);
    expect(hexes(runs[0].log)).toEqual(hexes([0, 0x1f, 0x17]));
  });

  it('runs PAE guests on PAE shadow tables: 2 MiB and 4 KiB pages, reserved bits, PDPTEs, NX with EFER.NXE', () => {
    const PDPT = 0x105000, PD_LOW = 0x106000, PD_HIGH = 0x107000, PT = 0x108000;
    const src = `
      mov $0x30, %eax
      mov %eax, %cr4            # PSE, PAE
      loadcr3 ${PDPT}
      mov %cr0, %eax
      or $0x80010000, %eax
      mov %eax, %cr0
      mov %cr3, %eax
      log
      mov $0x80200004, %ebx
      mov (%ebx), %eax          # through the 2 MiB page at gpa 2 MiB
      log
      mov 0x80000000, %eax      # a 4 KiB page through a page table
      log
      mov ${PT}, %eax
      log                       # its A bit
      mov $0x80400010, %ebx
      mov (%ebx), %eax          # bit 63 set without EFER.NXE: reserved, err 9
      mov $0x40000020, %ebx
      mov %eax, (%ebx)          # PDPTE 1 not present: err 2
      mov $${0x80000000 + DATA + 0x10}, %ebx
      movl $0x5a5a, (%ebx)      # through the 2 MiB page
      mov ${DATA + 0x10}, %eax
      log
      mov ${PD_HIGH + 8}, %eax
      log                       # the 2 MiB PDE: A and D
      mov $0xc0000080, %ecx
      rdmsr
      or $0x800, %eax
      wrmsr                     # EFER.NXE: bit 63 is NX now
      mov $0x80400010, %ebx
      mov (%ebx), %eax          # a read of an NX page is fine
      log
      finish
      ${PF_SKIP}
    `;
    const setup = (g: GuestMem): void => {
      identity(g, PD, PT0); // the 2-level tables stay unused
      g.w32(PDPT, PD_LOW | 1); g.w32(PDPT + 16, PD_HIGH | 1);
      g.w32(PD_LOW, 0 | 0x83); g.w32(PD_LOW + 8, 0x200000 | 0x83);
      g.w32(PD_HIGH, PT | 3);  // 0x80000000: page table
      g.w32(PT, (DATA + 0x3000) | 3);
      g.w32(PD_HIGH + 8, 0x200000 | 0x83); // 0x80200000 -> 2 MiB at gpa 2 MiB
      g.w32(PD_HIGH + 16, 0x200000 | 0x83); g.w32(PD_HIGH + 20, 0x80000000); // 0x80400000: bit 63
      g.w32(DATA + 4, 0x11110001); g.w32(DATA + 0x3000, 0x3000);
    };
    for (const ramBase of [0x400000, 0x500000]) {
      const runs = all(src, setup, ramBase);
      expect(hexes(runs[0].log)).toEqual(hexes([PDPT, 0x11110001, 0x3000, (DATA + 0x3000) | 3 | PT_A, 0x80400010, 9, 0x40000020, 2, 0x5a5a,
        0x200000 | 0x83 | PT_A | PT_D, 0x5a5a]));
      for (const r of runs) expect(r.counts.get('shadow.unsupported.pae')).toBeUndefined();
    }
  });
});
