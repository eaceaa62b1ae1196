// Nested paging (hw/cpu/npt.ts, the two-dimensional walk in paging.ts, the combined TLB entries
// in cpu.ts), driven directly on a core: the test sets guest mode, NP_ENABLE, N_CR3 and the
// format on the Cpu, writes guest and nested tables into memory, and calls cpu.translate. A guest
// #PF shows in excVec/excErr/pfAddr; a nested fault goes through svm.ts's svmExit (a VMCB view
// installed as cpu.svm) and shows in the exit record (EXITCODE, EXITINFO1 hi:lo, EXITINFO2).
import { describe, expect, it } from 'vitest';
import { ACC_EXEC, ACC_READ, ACC_WRITE } from '../../../hw/cpu/access.ts';
import { Cpu } from '../../../hw/cpu/cpu.ts';
import {
  HNPT_A, HNPT_D, HNPT_L, HNPT_LP, HNPT_P, HNPT_U, HNPT_V, HNPT_W, hashSlot, hnptTag, nestedWalk, type NestedResult,
  NPF_HI_FINAL, NPF_HI_TABLE, NPF_ID, NPF_P, NPF_RSV, NPF_U, NPF_W, NPT_FORMAT_MASK, NPT_FORMAT_SHIFT, NPT_HASHED,
  NPT_LEGACY, NPT_LONG, NPT_PAE, NptBuilder, nptFormatFromVmcb, nptFormatOfView, VMCB_N_CR3, VMCB_NP_CONTROL,
  VMCB_NPT_FORMAT, VMEXIT_NPF,
} from '../../../hw/cpu/npt.ts';
import { loadPdptes } from '../../../hw/cpu/paging.ts';
import { SvmGuest, vmrun } from '../../../hw/cpu/svm.ts';
import { TRAP_VMEXIT } from '../../../hw/cpu/traps.ts';
import {
  IC4_VMRUN, VMCB_ASID, VMCB_CR0, VMCB_EFER, VMCB_EXITCODE, VMCB_EXITINFO1, VMCB_EXITINFO2, VMCB_INTERCEPTS4,
  VMCB_RAX, VMCB_RFLAGS, VMCB_RIP, VMCB_RSP, VMCB_SEGS, VmcbView,
} from '../../../hw/cpu/vmcb.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';

const MiB = 1 << 20;
/** Host-physical layout: guest-physical [0, 8 MiB) lives at host [8 MiB, 16 MiB) (G2H); nested tables are allocated from 16 MiB; the hashed table sits at 32 MiB; the VMCB at 63 MiB. */
const G2H = 8 * MiB, TABLES = 16 * MiB, HASH = 32 * MiB, VMCB = 63 * MiB;
const PG = 0x80000011, WP = 0x10000, PSE = 0x10, PAE = 0x20, NXE = 0x800;
/** #PF error-code bits. */
const P = 1, W = 2, U = 4, RSVD = 8, ID = 16;
const FORMATS = [NPT_LEGACY, NPT_PAE, NPT_LONG, NPT_HASHED] as const;
const NAME = ['legacy', 'PAE', 'long', 'hashed'];
const LEVELS = [2, 3, 4];

interface EnvOpts { small?: boolean; log2Slots?: number; largePages?: boolean }

class Env {
  readonly mem = new PhysMem(64 * MiB);
  readonly cpu = new Cpu({ mem: this.mem });
  private next = TABLES;
  readonly b: NptBuilder;
  constructor(readonly fmt: number, o: EnvOpts = {}) {
    this.b = new NptBuilder(this.mem, fmt, () => { const a = this.next; this.next += 4096; return a; },
      { base: HASH, log2Slots: o.log2Slots ?? 12, largePages: o.largePages ?? false });
    const cpu = this.cpu;
    cpu.svm = new SvmGuest(new VmcbView(this.mem, VMCB));
    cpu.guest = true; cpu.npEnabled = true; cpu.nCr3 = this.b.nCr3; cpu.nptFormat = fmt;
    this.b.map(0, G2H, 8 * MiB, {}, o.small ?? true);
  }
  /** Writes a dword of guest-physical memory (through the linear G2H layout). */
  gw(gpa: number, v: number): void { this.mem.write(gpa + G2H, 4, v >>> 0); }
  gr(gpa: number): number { return this.mem.read(gpa + G2H, 4); }
  /** A 2-level guest: CR3 = pd, lin -> frame through the page table pt. */
  guest32(pd: number, pt: number, lin: number, frame: number, pteFlags = 7, pdeFlags = 7): void {
    this.gw(pd + (lin >>> 22) * 4, pt | pdeFlags);
    this.gw(pt + ((lin >>> 12) & 0x3ff) * 4, frame | pteFlags);
    this.cpu.cr3 = pd; this.cpu.cr0 = PG; this.cpu.cr4 = 0;
  }
  /** A PAE guest: CR3 = pdpt, lin -> frame through pd and pt. */
  guestPae(pdpt: number, pd: number, pt: number, lin: number, frame: number, pteFlags = 7): void {
    this.gw(pdpt + (lin >>> 30) * 8, pd | 1);
    this.gw(pd + ((lin >>> 21) & 0x1ff) * 8, pt | 7);
    this.gw(pt + ((lin >>> 12) & 0x1ff) * 8, frame | pteFlags);
    this.cpu.cr3 = pdpt; this.cpu.cr0 = PG; this.cpu.cr4 = PAE;
  }
  refs(f: () => void): number {
    const r = this.cpu.stats.walkRefs;
    f();
    return this.cpu.stats.walkRefs - r;
  }
}

type Out =
  | { k: 'ok'; pa: number }
  | { k: 'pf'; vec: number; err: number; addr: number }
  | { k: 'npf'; code: number; info1: number; hi: number; gpa: number };

function tr(cpu: Cpu, lin: number, acc: number, user = false): Out {
  try {
    return { k: 'ok', pa: cpu.translate(lin, acc, user) };
  } catch (e) {
    if (!Cpu.isFault(e)) throw e;
    if (cpu.exitPending) {
      cpu.exitPending = false;
      const g = cpu.svm!;
      return { k: 'npf', code: g.exitCode, info1: g.info1, hi: g.info1Hi, gpa: g.info2Hi * 0x100000000 + g.info2 };
    }
    return { k: 'pf', vec: cpu.excVec, err: cpu.excErr, addr: cpu.pfAddr >>> 0 };
  }
}
const npf = (info1: number, hi: number, gpa: number): Out => ({ k: 'npf', code: VMEXIT_NPF, info1, hi, gpa });

describe('the VMCB field that selects the nested format', () => {
  it('is bits 57:56 of the NP_ENABLE quadword at 0x090, i.e. bits 1:0 of VMCB byte 0x097', () => {
    expect(VMCB_NP_CONTROL).toBe(0x090);
    expect(VMCB_N_CR3).toBe(0x0b0);
    expect(VMCB_NPT_FORMAT).toBe(VMCB_NP_CONTROL + (NPT_FORMAT_SHIFT >> 3));
    expect([NPT_FORMAT_SHIFT, NPT_FORMAT_MASK]).toEqual([56, 3]);
    expect([NPT_LEGACY, NPT_PAE, NPT_LONG, NPT_HASHED]).toEqual([0, 1, 2, 3]);
    const mem = new PhysMem(MiB);
    const v = new VmcbView(mem, 0x1000);
    v.w64hl(VMCB_NP_CONTROL, 1, 0x02000000); // NP_ENABLE, format 2 in bits 57:56
    expect(nptFormatFromVmcb(mem, 0x1000)).toBe(NPT_LONG);
    expect(nptFormatOfView(v)).toBe(NPT_LONG);
    v.w64hl(VMCB_NP_CONTROL, 1, 0x03000000);
    expect(nptFormatOfView(v)).toBe(NPT_HASHED);
    v.w64hl(VMCB_NP_CONTROL, 0xff, 0x00ffffff); // every other bit set: still legacy
    expect(nptFormatOfView(v)).toBe(NPT_LEGACY);
  });
});

describe('the nested walk on its own (gPA -> hPA)', () => {
  const out: NestedResult = { hpa: 0, shift: 0, flags: 0, refs: 0 };
  const pageSizes: Record<number, number[]> = { [NPT_LEGACY]: [12, 22], [NPT_PAE]: [12, 21], [NPT_LONG]: [12, 21, 30], [NPT_HASHED]: [12, 22] };

  for (const fmt of FORMATS) {
    for (const shift of pageSizes[fmt]) {
      it(`${NAME[fmt]} format, ${2 ** (shift - 10)} KiB pages: translates, counts the entries read, sets A (and D on a write)`, () => {
        const mem = new PhysMem(64 * MiB);
        const cpu = new Cpu({ mem });
        let next = TABLES;
        const size = 2 ** shift;
        const gpa = shift === 30 ? 0x40000000 : size * 3, hpa = shift === 30 ? 0 : 24 * MiB;
        const b = new NptBuilder(mem, fmt, () => { const a = next; next += 4096; return a; }, { base: HASH, log2Slots: 8, largePages: shift !== 12 });
        b.map(gpa, hpa, size);
        cpu.nCr3 = b.nCr3; cpu.nptFormat = fmt;
        const probe = gpa + size - 0xffc; // in the last 4 KiB page of the mapping
        expect(nestedWalk(cpu, probe, ACC_READ, out)).toBe(-1);
        expect(out.hpa).toBe(hpa + size - 0x1000);
        expect(out.shift).toBe(shift);
        const expectRefs = fmt === NPT_HASHED ? 1 : LEVELS[fmt] - (shift === 12 ? 0 : shift === 30 ? 2 : 1);
        expect(out.refs).toBe(expectRefs);
        expect(out.flags).toBe(1 /* TE_W */);
        // every entry on the path now has A; the final one has no D until a write
        const accessed = () => {
          let a = 0, d = 0;
          if (fmt === NPT_HASHED) {
            const k = hashSlot(hnptTag(probe, shift !== 12), 8);
            const v = mem.read(HASH + k * 8 + 4, 4);
            return [(v & HNPT_A) ? 1 : 0, (v & HNPT_D) ? 1 : 0];
          }
          const t = mem.readBytes(TABLES, 0x10000);
          for (let i = 0; i < t.length; i += fmt === NPT_LEGACY ? 4 : 8) {
            if (t[i] & 1) { if (t[i] & 0x20) a++; if (t[i] & 0x40) d++; }
          }
          return [a, d];
        };
        const paePdpt = fmt === NPT_PAE ? 1 : 0; // a PAE PDPTE has no accessed bit
        expect(accessed()).toEqual(fmt === NPT_HASHED ? [1, 0] : [expectRefs - paePdpt, 0]);
        expect(nestedWalk(cpu, probe, ACC_WRITE, out)).toBe(-1);
        expect(out.flags).toBe(1 | 4 /* TE_W | TE_D */);
        expect(accessed()).toEqual(fmt === NPT_HASHED ? [1, 1] : [expectRefs - paePdpt, 1]);
      });
    }
  }

  it('reports not-present, protection and reserved-bit faults with the #PF error-code bits', () => {
    const mem = new PhysMem(64 * MiB);
    const cpu = new Cpu({ mem });
    let next = TABLES;
    const b = new NptBuilder(mem, NPT_LONG, () => { const a = next; next += 4096; return a; });
    b.map(0x10000, 0x800000, 0x1000, { w: false });
    b.map(0x11000, 0x801000, 0x1000, { nx: true });
    b.map(0x12000, 0x802000, 0x1000, { u: false });
    b.map(0x13000, 0x803000, 0x1000, { present: false });
    cpu.nCr3 = b.nCr3; cpu.nptFormat = NPT_LONG;
    expect(nestedWalk(cpu, 0x10000, ACC_READ, out)).toBe(-1);
    expect(nestedWalk(cpu, 0x10000, ACC_WRITE, out)).toBe(NPF_P | NPF_W | NPF_U);
    expect(nestedWalk(cpu, 0x11000, ACC_READ, out)).toBe(-1);
    expect(nestedWalk(cpu, 0x11000, ACC_EXEC, out)).toBe(NPF_P | NPF_U | NPF_ID);
    expect(nestedWalk(cpu, 0x12000, ACC_READ, out)).toBe(NPF_P | NPF_U);
    expect(nestedWalk(cpu, 0x13000, ACC_EXEC, out)).toBe(NPF_U | NPF_ID);
    expect(nestedWalk(cpu, 0x14000, ACC_WRITE, out)).toBe(NPF_U | NPF_W);
    // a reserved bit (address bit 40) in the PTE
    const pteAddr = TABLES + 3 * 4096 + 0x10 * 8;
    mem.write(pteAddr + 4, 4, 0x100);
    expect(nestedWalk(cpu, 0x10000, ACC_READ, out)).toBe(NPF_P | NPF_U | NPF_RSV);
    // legacy format: no NX, so a fetch never reports ID
    cpu.nptFormat = NPT_LEGACY;
    cpu.nCr3 = TABLES + 0x8000; // an empty page directory
    expect(nestedWalk(cpu, 0x10000, ACC_EXEC, out)).toBe(NPF_U);
  });

  it('long format: translates guest-physical addresses above 4 GiB; the 32-bit formats fault on them', () => {
    const mem = new PhysMem(64 * MiB);
    const cpu = new Cpu({ mem });
    let next = TABLES;
    const b = new NptBuilder(mem, NPT_LONG, () => { const a = next; next += 4096; return a; });
    b.map(0x512345000, 0x700000, 0x1000);
    cpu.nCr3 = b.nCr3; cpu.nptFormat = NPT_LONG;
    expect(nestedWalk(cpu, 0x512345678, ACC_READ, out)).toBe(-1);
    expect(out.hpa).toBe(0x700000);
    expect(nestedWalk(cpu, 0x12345678, ACC_READ, out)).toBe(NPF_U);
    cpu.nptFormat = NPT_PAE;
    expect(nestedWalk(cpu, 0x112345678, ACC_READ, out)).toBe(NPF_U);
  });
});

describe('the two-dimensional walk: reference counts of a cold walk', () => {
  // n guest levels over m nested levels with 4 KiB pages everywhere: (n+1)(m+1)-1
  for (const fmt of [NPT_LEGACY, NPT_PAE, NPT_LONG]) {
    const m = LEVELS[fmt];
    it(`2-level guest over the ${NAME[fmt]} format: (2+1)(${m}+1)-1 = ${3 * (m + 1) - 1}`, () => {
      const e = new Env(fmt);
      e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
      expect(e.refs(() => expect(tr(e.cpu, 0x400abc, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x20abc }))).toBe(3 * (m + 1) - 1);
      // a TLB hit costs nothing
      expect(e.refs(() => tr(e.cpu, 0x400abc, ACC_READ))).toBe(0);
    });
    it(`PAE guest over the ${NAME[fmt]} format: (3+1)(${m}+1)-1 = ${4 * (m + 1) - 1} (the PDPTE is read in the walk)`, () => {
      const e = new Env(fmt);
      e.guestPae(0x10020, 0x11000, 0x12000, 0x40400000, 0x20000);
      expect(e.refs(() => expect(tr(e.cpu, 0x40400abc, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x20abc }))).toBe(4 * (m + 1) - 1);
    });
    it(`guest paging off over the ${NAME[fmt]} format: ${m} (the linear address is the guest-physical one)`, () => {
      const e = new Env(fmt);
      e.cpu.cr0 = 0x11;
      expect(e.refs(() => expect(tr(e.cpu, 0x123456, ACC_WRITE)).toEqual({ k: 'ok', pa: G2H + 0x123456 }))).toBe(m);
      expect(e.refs(() => tr(e.cpu, 0x123000, ACC_READ))).toBe(0);
    });
  }

  it('large pages shorten the walk: guest 4 MiB pages, nested 2 MiB and 1 GiB pages', () => {
    // 2-level guest with a 4 MiB page (one guest level) over 4 KiB long-mode tables: (1+1)(4+1)-1
    let e = new Env(NPT_LONG);
    e.gw(0x10000 + 1 * 4, 0x400000 | 0x87);
    e.cpu.cr3 = 0x10000; e.cpu.cr0 = PG; e.cpu.cr4 = PSE;
    expect(e.refs(() => expect(tr(e.cpu, 0x412345, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x412345 }))).toBe(9);
    // the same over 2 MiB nested pages: every nested walk has 3 levels: (1+1)(3+1)-1
    e = new Env(NPT_LONG, { small: false });
    e.gw(0x10000 + 1 * 4, 0x400000 | 0x87);
    e.cpu.cr3 = 0x10000; e.cpu.cr0 = PG; e.cpu.cr4 = PSE;
    expect(e.refs(() => expect(tr(e.cpu, 0x412345, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x412345 }))).toBe(7);
    // a 2-level guest with 4 KiB pages over 1 GiB nested pages (2 levels each): (2+1)(2+1)-1
    const mem = new PhysMem(64 * MiB);
    const cpu = new Cpu({ mem });
    let next = TABLES;
    const b = new NptBuilder(mem, NPT_LONG, () => { const a = next; next += 4096; return a; });
    b.map(0, 0, 0x40000000);
    cpu.svm = new SvmGuest(new VmcbView(mem, VMCB));
    cpu.guest = true; cpu.npEnabled = true; cpu.nCr3 = b.nCr3; cpu.nptFormat = NPT_LONG;
    mem.write(0x10000 + 4, 4, 0x11000 | 7);
    mem.write(0x11000, 4, 0x22000 | 7);
    cpu.cr3 = 0x10000; cpu.cr0 = PG;
    const r = cpu.stats.walkRefs;
    expect(tr(cpu, 0x400008, ACC_READ)).toEqual({ k: 'ok', pa: 0x22008 });
    expect(cpu.stats.walkRefs - r).toBe(8);
  });

  it('the references are charged through the cost table like guest walk references', () => {
    const e = new Env(NPT_LONG);
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
    const c = e.cpu.cycles;
    tr(e.cpu, 0x400000, ACC_READ);
    expect(e.cpu.cycles - c).toBe(2 /* tlbMissBase */ + 14 * 5 /* walkRef */);
  });

  it('hashed tables: a 2-level guest cold walk costs 2 + 3 probes without collisions; 2 + 3 x 2 with large-page probing', () => {
    let e = new Env(NPT_HASHED, { log2Slots: 16 });
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
    expect(e.refs(() => tr(e.cpu, 0x400000, ACC_READ))).toBe(5);
    e = new Env(NPT_HASHED, { log2Slots: 16, largePages: true });
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
    expect(e.refs(() => tr(e.cpu, 0x400000, ACC_READ))).toBe(8);
    // with the guest-physical space in 4 MiB entries every lookup is one probe
    e = new Env(NPT_HASHED, { log2Slots: 16, largePages: true, small: false });
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
    expect(e.refs(() => tr(e.cpu, 0x400000, ACC_READ))).toBe(5);
    // a PAE guest: 3 + 4
    e = new Env(NPT_HASHED, { log2Slots: 16 });
    e.guestPae(0x10000, 0x11000, 0x12000, 0x400000, 0x20000);
    expect(e.refs(() => tr(e.cpu, 0x400000, ACC_READ))).toBe(7);
  });
});

describe('the two-dimensional walk: faults', () => {
  it('a guest page-table access the nested tables do not map exits with NPF, bit 33, EXITINFO2 = the entry\'s gPA', () => {
    const e = new Env(NPT_LONG);
    e.guest32(0x10000, 0x7ff000, 0x400000, 0x20000);
    e.gw(0x10000 + 4, 0x900000 | 7); // the page table at gPA 9 MiB: not mapped
    expect(tr(e.cpu, 0x400123, ACC_READ)).toEqual(npf(NPF_U | NPF_W, NPF_HI_TABLE, 0x900000));
    expect(tr(e.cpu, 0x403123, ACC_EXEC, true)).toEqual(npf(NPF_U | NPF_W, NPF_HI_TABLE, 0x90000c));
    e.cpu.cr3 = 0xa00000; // the page directory itself unmapped
    expect(tr(e.cpu, 0x400123, ACC_READ)).toEqual(npf(NPF_U | NPF_W, NPF_HI_TABLE, 0xa00004));
  });

  it('guest page-table accesses are user writes at the nested level: a read-only or supervisor nested page faults even for a read', () => {
    for (const perms of [{ w: false }, { u: false }]) {
      const e = new Env(NPT_PAE);
      e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
      e.b.map(0x11000, G2H + 0x11000, 0x1000, perms); // remap the page table's page
      e.cpu.flushTlbAll();
      expect(tr(e.cpu, 0x400000, ACC_READ)).toEqual(npf(NPF_P | NPF_W | NPF_U, NPF_HI_TABLE, 0x11000));
    }
  });

  it('the final access: NPF with bit 32, the access kind and EXITINFO2 = the accessed byte\'s gPA', () => {
    const e = new Env(NPT_LONG);
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
    e.b.map(0x20000, G2H + 0x20000, 0x1000, { w: false, nx: true });
    e.gw(0x11000 + 4, 0x900000 | 7); // lin 0x401000 -> gPA 9 MiB, not mapped
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0x400ff0, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x20ff0 });
    expect(tr(e.cpu, 0x400ff0, ACC_WRITE)).toEqual(npf(NPF_P | NPF_W | NPF_U, NPF_HI_FINAL, 0x20ff0));
    expect(tr(e.cpu, 0x400ff0, ACC_EXEC)).toEqual(npf(NPF_P | NPF_U | NPF_ID, NPF_HI_FINAL, 0x20ff0));
    expect(tr(e.cpu, 0x401abc, ACC_READ, true)).toEqual(npf(NPF_U, NPF_HI_FINAL, 0x900abc));
  });

  it('a guest #PF stays a #PF in the guest (CR2 = the linear address), with no exit', () => {
    const e = new Env(NPT_LONG);
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000, 5 /* read-only user page */);
    expect(tr(e.cpu, 0x400010, ACC_WRITE, true)).toEqual({ k: 'pf', vec: 14, err: P | W | U, addr: 0x400010 });
    expect(tr(e.cpu, 0x800010, ACC_READ, true)).toEqual({ k: 'pf', vec: 14, err: U, addr: 0x800010 });
    expect(e.cpu.svm!.exitCode).toBe(0);
  });

  it('a nested fault on a guest table comes before the guest\'s own checks of that entry; a guest fault before the final nested translation', () => {
    const e = new Env(NPT_LONG);
    e.guest32(0x10000, 0x11000, 0x400000, 0x900000, 0 /* not present */);
    // the PTE is not present (guest #PF) and its page is fine: #PF, although the frame it names is unmapped
    expect(tr(e.cpu, 0x400000, ACC_READ)).toEqual({ k: 'pf', vec: 14, err: 0, addr: 0x400000 });
    // the PTE's page unmapped: NPF first
    e.b.map(0x11000, G2H + 0x11000, 0x1000, { present: false });
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0x400000, ACC_READ)).toEqual(npf(NPF_U | NPF_W, NPF_HI_TABLE, 0x11000));
  });

  it('PAE guest: the PDPTEs are not loaded at CR3 writes; each walk reads the PDPTE through the nested tables and reserved bits give #PF', () => {
    const e = new Env(NPT_LONG);
    e.guestPae(0x10020, 0x11000, 0x12000, 0x40000000, 0x20000);
    e.gw(0x10020 + 8, 0x11000 | 0x21); // bit 5 is reserved in a PDPTE
    e.cpu.pdpte.fill(0);
    expect(loadPdptes(e.cpu)).toBe(true); // nothing loaded, nothing checked
    expect(Array.from(e.cpu.pdpte)).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(tr(e.cpu, 0x40000000, ACC_WRITE)).toEqual({ k: 'pf', vec: 14, err: P | W | RSVD, addr: 0x40000000 });
    e.gw(0x10020 + 8, 0x11000 | 1);
    expect(tr(e.cpu, 0x40000000, ACC_WRITE)).toEqual({ k: 'ok', pa: G2H + 0x20000 });
    // the PDPT's page unmapped: NPF at the PDPTE's guest-physical address
    e.b.map(0x10000, G2H + 0x10000, 0x1000, { present: false });
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0xc0000000, ACC_READ)).toEqual(npf(NPF_U | NPF_W, NPF_HI_TABLE, 0x10020 + 24));
    // NX in a guest PTE with EFER.NXE: a guest #PF with I/D
    e.b.map(0x10000, G2H + 0x10000, 0x1000);
    e.gw(0x12000 + 4, 0x80000000);
    e.cpu.efer = NXE;
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0x40000000, ACC_EXEC)).toEqual({ k: 'pf', vec: 14, err: P | ID, addr: 0x40000000 });
  });

  it('PAE guest: a guest-physical address above 4 GiB is translated by long-mode nested tables and faults in the 32-bit formats', () => {
    for (const fmt of [NPT_LONG, NPT_PAE]) {
      const e = new Env(fmt);
      e.guestPae(0x10000, 0x11000, 0x12000, 0x400000, 0x20000);
      e.gw(0x12000 + 4 * 8 + 4, 0x3); // PTE for lin 0x404000 -> gPA 0x3_00005000
      e.gw(0x12000 + 4 * 8, 0x5000 | 7);
      if (fmt === NPT_LONG) e.b.map(0x300005000, 0x700000, 0x1000);
      expect(tr(e.cpu, 0x404321, ACC_READ)).toEqual(fmt === NPT_LONG ? { k: 'ok', pa: 0x700321 } : npf(NPF_U, NPF_HI_FINAL, 0x300005321));
    }
  });
});

describe('accessed and dirty bits at both levels', () => {
  it('a write sets guest A/D at their host-physical addresses, nested A on every level, nested D on the table pages (writes) and the data page', () => {
    const e = new Env(NPT_LEGACY);
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
    const nestedPte = (gpa: number) => {
      const pde = e.mem.read(e.b.nCr3 + (gpa >>> 22) * 4, 4);
      return { pde, pte: e.mem.read((pde & 0xfffff000) + ((gpa >>> 12) & 0x3ff) * 4, 4) };
    };
    expect(tr(e.cpu, 0x400000, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x20000 });
    expect(e.gr(0x10000 + 4) & 0x60).toBe(0x20);   // guest PDE: A
    expect(e.gr(0x11000) & 0x60).toBe(0x20);       // guest PTE: A, not D (a read)
    expect(nestedPte(0x10000).pte & 0x60).toBe(0x60); // the guest PD's page: written at the nested level
    expect(nestedPte(0x11000).pte & 0x60).toBe(0x60);
    expect(nestedPte(0x20000).pte & 0x60).toBe(0x20); // the data page: read
    expect(nestedPte(0x20000).pde & 0x60).toBe(0x20);
    expect(tr(e.cpu, 0x400000, ACC_WRITE)).toEqual({ k: 'ok', pa: G2H + 0x20000 });
    expect(e.gr(0x11000) & 0x60).toBe(0x60);
    expect(nestedPte(0x20000).pte & 0x60).toBe(0x60);
    expect(nestedPte(0x30000).pte & 0x60).toBe(0);    // untouched
  });

  it('a write through a TLB entry made by a read walks again to set the nested dirty bit (a dirty assist, not a miss)', () => {
    const e = new Env(NPT_LONG);
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000, 0x67 /* A and D already set */);
    tr(e.cpu, 0x400000, ACC_READ);
    const misses = e.cpu.stats.tlbMisses;
    expect(e.refs(() => expect(tr(e.cpu, 0x400000, ACC_WRITE)).toEqual({ k: 'ok', pa: G2H + 0x20000 }))).toBe(14);
    expect(e.cpu.stats.tlbMisses).toBe(misses);
    expect(e.refs(() => tr(e.cpu, 0x400000, ACC_WRITE))).toBe(0);
  });
});

describe('the combined TLB entry', () => {
  it('holds the intersection of guest and nested permissions: a read fills it, a write to a nested read-only page still exits', () => {
    const e = new Env(NPT_LONG);
    e.guest32(0x10000, 0x11000, 0x400000, 0x20000);
    e.b.map(0x20000, G2H + 0x20000, 0x1000, { w: false });
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0x400000, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x20000 });
    // guest CR0.WP = 0 lets a supervisor write a read-only guest page; the nested level still forbids it
    expect(tr(e.cpu, 0x400000, ACC_WRITE)).toEqual(npf(NPF_P | NPF_W | NPF_U, NPF_HI_FINAL, 0x20000));
    e.cpu.cr0 = PG | WP;
    expect(tr(e.cpu, 0x400000, ACC_WRITE)).toEqual(npf(NPF_P | NPF_W | NPF_U, NPF_HI_FINAL, 0x20000));
    // the fast mirror never lets a write through either
    expect(tr(e.cpu, 0x400000, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x20000 });
    expect(() => e.cpu.lwr32(0x400000, 1)).toThrow();
    e.cpu.exitPending = false;
    expect(e.mem.read(G2H + 0x20000, 4)).toBe(0);
    // nested NX: a fetch through a data-filled entry exits
    e.b.map(0x20000, G2H + 0x20000, 0x1000, { nx: true });
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0x400000, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x20000 });
    expect(tr(e.cpu, 0x400000, ACC_EXEC)).toEqual(npf(NPF_P | NPF_U | NPF_ID, NPF_HI_FINAL, 0x20000));
  });

  it('is tagged with the ASID: another ASID misses; a guest large page over large enough nested pages gives a large entry', () => {
    let e = new Env(NPT_LEGACY, { small: false });
    e.gw(0x10000 + 1 * 4, 0x400000 | 0x87);
    e.cpu.cr3 = 0x10000; e.cpu.cr0 = PG; e.cpu.cr4 = PSE;
    e.cpu.setAsid(5);
    expect(tr(e.cpu, 0x412345, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x412345 });
    expect(e.cpu.dtlbLarge.valid()).toBe(1);
    expect(e.refs(() => tr(e.cpu, 0x7ff000, ACC_READ))).toBe(0);
    e.cpu.setAsid(6);
    expect(e.refs(() => tr(e.cpu, 0x7ff000, ACC_READ))).toBe(3); // (1+1)(1+1)-1: one level each
    // over 2 MiB nested pages the 4 MiB guest page is split into 4 KiB TLB entries
    e = new Env(NPT_LONG, { small: false });
    e.gw(0x10000 + 1 * 4, 0x400000 | 0x87);
    e.cpu.cr3 = 0x10000; e.cpu.cr0 = PG; e.cpu.cr4 = PSE;
    tr(e.cpu, 0x412345, ACC_READ);
    expect([e.cpu.dtlbLarge.valid(), e.cpu.dtlb.valid()]).toEqual([0, 1]);
  });
});

describe('hashed nested page tables', () => {
  it('the walk reads the table in memory: changing its bytes changes the translation after a TLB flush', () => {
    const e = new Env(NPT_HASHED, { log2Slots: 12 });
    e.cpu.cr0 = 0x11; // guest paging off: linear = guest-physical
    expect(tr(e.cpu, 0x5123, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x5123 });
    const slot = HASH + hashSlot(hnptTag(0x5000, false), 12) * 8;
    expect(e.mem.read(slot, 4)).toBe(0x5000 | HNPT_V);
    e.mem.write(slot + 4, 4, 0x3000000 | HNPT_P | HNPT_W | HNPT_U);
    expect(tr(e.cpu, 0x5123, ACC_READ)).toEqual({ k: 'ok', pa: G2H + 0x5123 }); // the TLB still holds the old one
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0x5123, ACC_READ)).toEqual({ k: 'ok', pa: 0x3000123 });
    e.mem.write(slot + 4, 4, 0x3000000 | HNPT_W | HNPT_U); // P clear: a tombstone that keeps probing chains intact
    e.cpu.flushTlbAll();
    expect(tr(e.cpu, 0x5123, ACC_READ)).toEqual(npf(NPF_U, NPF_HI_FINAL, 0x5123));
    e.mem.write(slot + 4, 4, 0x3000000 | 0x80 | HNPT_P | HNPT_U); // a reserved bit
    expect(tr(e.cpu, 0x5123, ACC_READ)).toEqual(npf(NPF_P | NPF_U | NPF_RSV, NPF_HI_FINAL, 0x5123));
  });

  it('collisions are resolved by linear probing, each probe one reference; a free slot ends the search', () => {
    const mem = new PhysMem(64 * MiB);
    const cpu = new Cpu({ mem });
    const k = 4; // 16 slots
    const b = new NptBuilder(mem, NPT_HASHED, () => 0, { base: HASH, log2Slots: k, largePages: false });
    cpu.nCr3 = b.nCr3; cpu.nptFormat = NPT_HASHED;
    // find three guest frames with the same home slot
    const home = hashSlot(hnptTag(0x1000, false), k);
    const same = [0x1000];
    for (let g = 0x2000; same.length < 3; g += 0x1000) if (hashSlot(hnptTag(g, false), k) === home) same.push(g);
    same.forEach((g, i) => b.map(g, 0x100000 * (i + 1), 0x1000));
    const out: NestedResult = { hpa: 0, shift: 0, flags: 0, refs: 0 };
    same.forEach((g, i) => {
      expect(nestedWalk(cpu, g + 0x10, ACC_READ, out)).toBe(-1);
      expect([out.hpa, out.refs]).toEqual([0x100000 * (i + 1), i + 1]);
    });
    // a frame not in the table whose home slot is that chain's: probes to the first free slot
    let miss = same[2] + 0x1000;
    while (hashSlot(hnptTag(miss, false), k) !== home) miss += 0x1000;
    expect(nestedWalk(cpu, miss, ACC_READ, out)).toBe(NPF_U);
    expect(out.refs).toBe(4);
  });

  it('large (4 MiB) entries are probed first when N_CR3.LP is set, and shadow 4 KiB entries inside them', () => {
    const mem = new PhysMem(64 * MiB);
    const cpu = new Cpu({ mem });
    const b = new NptBuilder(mem, NPT_HASHED, () => 0, { base: HASH, log2Slots: 10, largePages: true });
    b.map(0x800000, 0x1000000, 0x400000);        // one 4 MiB entry
    b.map(0xc00000, 0x2000000, 0x1000);          // a 4 KiB entry
    b.map(0x801000, 0x3000000, 0x1000);          // inside the large one: never used
    cpu.nCr3 = b.nCr3; cpu.nptFormat = NPT_HASHED;
    expect(b.nCr3 & HNPT_LP).toBe(HNPT_LP);
    const out: NestedResult = { hpa: 0, shift: 0, flags: 0, refs: 0 };
    expect(nestedWalk(cpu, 0x801234, ACC_READ, out)).toBe(-1);
    expect([out.hpa, out.shift]).toEqual([0x1001000, 22]);
    expect(mem.read(HASH + hashSlot(hnptTag(0x800000, true), 10) * 8, 4)).toBe(0x800000 | HNPT_L | HNPT_V);
    expect(nestedWalk(cpu, 0xc00234, ACC_READ, out)).toBe(-1);
    expect([out.hpa, out.shift]).toEqual([0x2000000, 12]);
    // without LP the large entry is invisible
    cpu.nCr3 = b.nCr3 & ~HNPT_LP;
    expect(nestedWalk(cpu, 0x801234, ACC_READ, out)).toBe(-1);
    expect(out.hpa).toBe(0x3000000);
    expect(nestedWalk(cpu, 0x802234, ACC_READ, out)).toBe(NPF_U);
    // a table size of 0 or above 2^20 slots is unusable: a reserved-bit fault
    cpu.nCr3 = HASH;
    expect(nestedWalk(cpu, 0x801234, ACC_READ, out)).toBe(NPF_P | NPF_U | NPF_RSV);
    cpu.nCr3 = HASH | 21;
    expect(nestedWalk(cpu, 0x801234, ACC_READ, out)).toBe(NPF_P | NPF_U | NPF_RSV);
  });
});

describe('the exit itself', () => {
  it('goes through svm.ts svmExit: EXITCODE 0x400, EXITINFO1 = hi:lo, EXITINFO2 = gPA (hi:lo); unwinding like a fault', () => {
    const e = new Env(NPT_LONG);
    e.cpu.cr0 = 0x11;
    let caught: unknown;
    try { e.cpu.translate(0x900010, ACC_WRITE, false); } catch (x) { caught = x; }
    expect(Cpu.isFault(caught)).toBe(true);
    expect(e.cpu.exitPending).toBe(true);
    const g = e.cpu.svm!;
    expect([g.exitCode, g.info1, g.info1Hi, g.info2, g.info2Hi]).toEqual([0x400, NPF_U | NPF_W, 1, 0x900010, 0]);
  });

  it('outside an SVM guest a nested fault is a usage error, not a silent translation', () => {
    const e = new Env(NPT_LONG);
    e.cpu.svm = null;
    e.cpu.cr0 = 0x11;
    expect(() => e.cpu.translate(0x900010, ACC_READ, false)).toThrow(/nested page fault/);
  });

  it('end to end: a guest running with nested paging (VMRUN) exits with NPF, the VMCB holding EXITCODE, EXITINFO1/2 and the faulting RIP', () => {
    const mem = new PhysMem(64 * MiB);
    const cpu = new Cpu({ mem });
    let next = TABLES;
    const b = new NptBuilder(mem, NPT_LONG, () => { const a = next; next += 4096; return a; });
    b.map(0, G2H, MiB); // guest-physical [0, 1 MiB) at host 8 MiB
    // mov 0x2000, %eax; mov 0x900000, %ebx (not mapped)
    mem.writeBytes(G2H + 0x1000, Uint8Array.of(0xa1, 0x00, 0x20, 0x00, 0x00, 0x8b, 0x1d, 0x00, 0x00, 0x90, 0x00));
    mem.write(G2H + 0x2000, 4, 0xcafef00d);
    const v = new VmcbView(mem, VMCB);
    v.w32(VMCB_INTERCEPTS4, IC4_VMRUN);
    v.w32(VMCB_ASID, 1);
    v.w64hl(VMCB_NP_CONTROL, 1, NPT_LONG << (NPT_FORMAT_SHIFT - 32));
    v.w64hl(VMCB_N_CR3, b.nCr3, 0);
    v.w64hl(VMCB_CR0, 0x11, 0);
    v.w64hl(VMCB_EFER, 0x1000, 0);
    VMCB_SEGS.forEach((o, s) => { v.w16(o, s === 1 ? 8 : 0x10); v.w16(o + 2, s === 1 ? 0xc9b : 0xc93); v.w32(o + 4, 0xffffffff); });
    v.w64hl(VMCB_RIP, 0x1000, 0); v.w64hl(VMCB_RSP, 0x8000, 0); v.w64hl(VMCB_RFLAGS, 2, 0);
    const traps: number[][] = [];
    cpu.host = { trap: (c, t) => { traps.push([t.kind, t.vector]); c.requestStop(); } };
    expect(vmrun(cpu, VMCB)).toBe(0);
    cpu.run(cpu.cycles + 100000);
    expect(traps).toEqual([[TRAP_VMEXIT, VMEXIT_NPF]]);
    expect(cpu.guest).toBe(false);
    expect([v.u32(VMCB_EXITCODE), v.u32(VMCB_EXITINFO1), v.hi32(VMCB_EXITINFO1), v.u32(VMCB_EXITINFO2), v.hi32(VMCB_EXITINFO2)])
      .toEqual([VMEXIT_NPF, NPF_U, NPF_HI_FINAL, 0x900000, 0]);
    expect([v.u32(VMCB_RIP), v.u32(VMCB_RAX)]).toEqual([0x1005, 0xcafef00d]);
  });
});
