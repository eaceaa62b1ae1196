// Address spaces under real code: i386 programs run at CPL 3 on a core whose CR3 is the address
// space's page directory, with a host handler that serves brk/mmap2/munmap/mprotect from it.
// They read and write their regions, fault where they have no access (with the #PF error code
// the hardware gives), see brk/mmap/munmap/mprotect change what they can touch, use 4 MiB pages
// (fewer TLB misses), reach kernel mappings only through the CPU, and a forked copy is independent.
import { describe, expect, it } from 'vitest';
import { TRAP_EXCEPTION } from '../../../hw/cpu/cpu.ts';
import { type AddressSpace, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP } from '../../../kernel/mm/aspace.ts';
import {
  Asm, EAX, EBP, EBX, ECX, EDI, EDX, ESI, enterUser, type Env, MAP_FIXED, makeEnv, meter, MiB, newSpace, pdeOf, runUser,
  SYS_BRK, SYS_MMAP2, SYS_MPROTECT, SYS_MUNMAP, walk,
} from './env.ts';

const TEXT = 0x0804_8000, DATA = 0x0804_9000, STACK_TOP = USER_TOP, STACK = 64 * 1024;
const RX = PROT_READ | PROT_EXEC, RW = PROT_READ | PROT_WRITE;
const PF_P = 1, PF_W = 2, PF_U = 4;

/** A process image: text (RX) with `code`, data (RW) with `data`, a stack; the heap starts after data. */
function load(e: Env, code: Uint8Array, data: Uint8Array = new Uint8Array(16), as = newSpace(e)): AddressSpace {
  const m = e.cpu;
  for (const [addr, len, prot, kind, bytes] of [
    [TEXT, code.length, RX, 'text', code], [DATA, data.length, RW, 'data', data],
  ] as const) {
    const r = as.mmap(m, { addr, len, prot, kind, fixed: true });
    expect(r.ok).toBe(true);
    expect(as.copyout(m, addr, bytes, true).ok).toBe(true);
  }
  expect(as.mmap(m, { addr: STACK_TOP - STACK, len: STACK, prot: RW, kind: 'stack', fixed: true }).ok).toBe(true);
  as.initBrk(DATA + 0x1000);
  return as;
}

function exec(e: Env, as: AddressSpace) {
  enterUser(e.cpu, as, TEXT, STACK_TOP - 16);
  return runUser(e.cpu, as);
}

const word = (as: AddressSpace, va: number): number => {
  const r = as.copyin(meter(), va, 4);
  if (!r.ok) throw new Error(r.error);
  return new DataView(r.value.buffer).getUint32(0, true);
};

describe('address spaces running code', () => {
  it('a program reads and writes its data and stack; text is read-only', () => {
    const e = makeEnv();
    const code = new Asm()
      .movImm(EBX, DATA).load(EAX, EBX, 0).addImm(EAX, 0x1111).store(EBX, EAX, 4)
      .push(EAX).pop(ECX).store(EBX, ECX, 8)
      .movImm(EDX, TEXT).store(EDX, EAX, 0)          // a write to text: #PF
      .exit().build();
    const data = new Uint8Array(16);
    new DataView(data.buffer).setUint32(0, 0x12340000, true);
    const as = load(e, code, data);
    const r = exec(e, as);
    expect(word(as, DATA + 4)).toBe(0x12341111);
    expect(word(as, DATA + 8)).toBe(0x12341111);
    expect(r.fault).toMatchObject({ kind: TRAP_EXCEPTION, vector: 14, errorCode: PF_P | PF_W | PF_U, cr2: TEXT });
    expect(r.fault?.eip).toBeGreaterThan(TEXT);
  });

  it('unmapped addresses fault as not present (read: U, write: W|U); the kernel half is supervisor-only', () => {
    const e = makeEnv();
    const read = exec(e, load(e, new Asm().movImm(EBX, 0x2000_0000).load(EAX, EBX, 0).exit().build()));
    expect(read.fault).toMatchObject({ vector: 14, errorCode: PF_U, cr2: 0x2000_0000 });
    const write = exec(e, load(e, new Asm().movImm(EBX, DATA + 0x1000).store(EBX, EAX, 0).exit().build()));
    expect(write.fault).toMatchObject({ vector: 14, errorCode: PF_W | PF_U, cr2: DATA + 0x1000 });
    // a kernel mapping (shared by all address spaces) is present but not user-accessible
    const page = e.pmem.alloc(meter(), { size: 4096, type: 'kernel' });
    expect(page.ok && e.kernel.map(meter(), 0xffff_f000, page.value, 4096).ok).toBe(true);
    const k = exec(e, load(e, new Asm().movImm(EBX, 0xffff_f000).load(EAX, EBX, 0).exit().build()));
    expect(k.fault).toMatchObject({ vector: 14, errorCode: PF_P | PF_U, cr2: 0xffff_f000 });
  });

  it('the CPU reads a GDT mapped by the KernelSpace: a TLS segment load through %gs works', () => {
    const e = makeEnv();
    const gdt = e.pmem.alloc(meter(), { size: 4096, type: 'kernel' });
    if (!gdt.ok) throw new Error('no memory');
    const TLS = DATA + 8;
    // entry 6: a DPL-3 data segment based at TLS (Linux's first TLS slot, selector 0x33)
    e.mem.write(gdt.value + 48, 4, ((TLS & 0xffff) << 16) | 0xffff);
    e.mem.write(gdt.value + 52, 4, ((TLS & 0xff000000) | 0x00cff300 | ((TLS >>> 16) & 0xff)) >>> 0);
    const data = new Uint8Array(16);
    new DataView(data.buffer).setUint32(8, 0xcafe, true);
    const as = load(e, new Asm().movImm(EAX, 0x33).movGsAx().loadGs(0).movRR(EDX, EAX).exit().build(), data);
    // mapped after the address space exists: the shared table reaches its directory too
    expect(e.kernel.map(meter(), 0xffc0_0000, gdt.value, 4096).ok).toBe(true);
    enterUser(e.cpu, as, TEXT, STACK_TOP - 16);
    e.cpu.gdtBase = 0xffc0_0000; e.cpu.gdtLimit = 0xff;
    const r = runUser(e.cpu, as);
    expect(r.fault).toBeNull();
    expect(e.cpu.r[EDX]).toBe(0xcafe);
  });

  it('brk growth makes the heap accessible (zeroed) and shrinking takes it away again', () => {
    const e = makeEnv();
    const code = new Asm()
      .sys(SYS_BRK, 0).movRR(ESI, EAX)                          // esi = brk(0)
      .movRR(EBX, ESI).addImm(EBX, 0x5000).movImm(EAX, SYS_BRK).int80()
      .load(EDX, ESI, 0x4ffc)                                   // new heap reads as zero
      .movImm(EAX, 0x77).store(ESI, EAX, 0x4ffc).store(ESI, EAX, 0x10)
      .movRR(EBX, ESI).movImm(EAX, SYS_BRK).int80()             // brk(start): the heap is gone
      .store(ESI, EAX, 0x10)                                    // #PF, although the TLB had the page
      .exit().build();
    const as = load(e, code);
    const r = exec(e, as);
    expect(e.cpu.r[ESI]).toBe(DATA + 0x1000);
    expect(e.cpu.r[EDX]).toBe(0);
    expect(r.fault).toMatchObject({ vector: 14, errorCode: PF_W | PF_U, cr2: DATA + 0x1010 });
    expect(as.brkValue).toBe(DATA + 0x1000);
  });

  it('mmap gives accessible zeroed memory; mprotect read-only makes writes fault with P|W|U; munmap takes it away', () => {
    const e = makeEnv();
    const mk = (tail: (a: Asm) => Asm) => tail(new Asm()
      .sys(SYS_MMAP2, 0, 0x3000, RW, 0x22).movRR(ESI, EAX)
      .load(EBP, ESI, 0x2000).movImm(EAX, 0x55).store(ESI, EAX, 0x2000)).exit().build();
    // write after mprotect(PROT_READ) of the last page
    const a = load(e, mk((x) => x.movRR(EBX, ESI).addImm(EBX, 0x2000).movImm(ECX, 0x1000).movImm(EDX, PROT_READ)
      .movImm(EAX, SYS_MPROTECT).int80().load(EDI, ESI, 0x2000).store(ESI, EAX, 0x2000)));
    const ra = exec(e, a);
    const base = e.cpu.r[ESI] >>> 0;
    expect(base % 4096).toBe(0);
    expect(e.cpu.r[EBP]).toBe(0);                                // fresh memory reads as zero
    expect(e.cpu.r[EDI]).toBe(0x55);                            // still readable
    expect(ra.fault).toMatchObject({ vector: 14, errorCode: PF_P | PF_W | PF_U, cr2: base + 0x2000 });
    expect(a.regions().filter((r) => r.kind === 'mmap').map((r) => r.prot)).toEqual([RW, PROT_READ]);
    // read after munmap of the middle page
    const b = load(e, mk((x) => x.movRR(EBX, ESI).addImm(EBX, 0x1000).movImm(ECX, 0x1000)
      .movImm(EAX, SYS_MUNMAP).int80().load(EDX, ESI, 0x2000).load(EDX, ESI, 0x1000)));
    const rb = exec(e, b);
    expect(e.cpu.r[EDX]).toBe(0x55);                             // the last page survived the split
    expect(rb.fault).toMatchObject({ vector: 14, errorCode: PF_U, cr2: (e.cpu.r[ESI] >>> 0) + 0x1000 });
    // a fixed mapping at a chosen address
    const c = load(e, new Asm().sys(SYS_MMAP2, 0x4000_0000, 0x1000, RW, 0x22 | MAP_FIXED).movRR(ESI, EAX)
      .movImm(EAX, 9).store(ESI, EAX, 0).exit().build());
    expect(exec(e, c).fault).toBeNull();
    expect(e.cpu.r[ESI]).toBe(0x4000_0000);
    expect(word(c, 0x4000_0000)).toBe(9);
  });

  it('4 MiB-aligned regions are mapped with 4 MiB pages and take far fewer TLB misses than 4 KiB pages', () => {
    const REGION = 0x1000_0000, SIZE = 8 * MiB, PAGES = SIZE / 4096;
    const touch = new Asm()
      .movImm(EDX, 2).label('pass')
      .movImm(EBX, REGION).movImm(ECX, PAGES).label('loop')
      .store(EBX, ECX, 0).addImm(EBX, 4096).dec(ECX).jnz('loop')
      .dec(EDX).jnz('pass').exit().build();
    const misses = (large: boolean) => {
      const e = makeEnv();
      const as = load(e, touch, undefined, newSpace(e, { largePages: large }));
      expect(as.mmap(e.cpu, { addr: REGION, len: SIZE, prot: RW, fixed: true }).ok).toBe(true);
      const pdes = [REGION, REGION + 4 * MiB].map((va) => pdeOf(e.mem, as.cr3, va));
      enterUser(e.cpu, as, TEXT, STACK_TOP - 16);
      const before = e.cpu.stats.dtlbMisses;
      const r = exec(e, as);
      expect(r.exitCode).toBe(0);
      expect(word(as, REGION + SIZE - 4096)).toBe(1);
      return { misses: e.cpu.stats.dtlbMisses - before, pdes, stats: as.stats() };
    };
    const big = misses(true), small = misses(false);
    for (const p of big.pdes) expect(p & 0x80).toBe(0x80);      // PS: a 4 MiB page
    for (const p of small.pdes) expect(p & 0x80).toBe(0);
    expect(big.stats.largePages).toBe(2);
    expect(small.stats.largePages).toBe(0);
    // 4 KiB pages: every page misses in both passes (2 x 2048 > the 64-entry DTLB); 4 MiB pages: 2 misses
    expect(small.misses).toBeGreaterThanOrEqual(2 * PAGES);
    expect(big.misses).toBeLessThan(10);
  });

  it('a forked address space is an independent copy', () => {
    const e = makeEnv();
    const code = new Asm().movImm(EBX, DATA).load(EAX, EBX, 0).addImm(EAX, 1).store(EBX, EAX, 0)
      .movImm(EBX, 0x2000_0000).load(ECX, EBX, 0).addImm(ECX, 1).store(EBX, ECX, 0).exit().build();
    const data = new Uint8Array(16);
    data[0] = 10;
    const parent = load(e, code, data);
    expect(parent.mmap(e.cpu, { addr: 0x2000_0000, len: 5 * MiB, prot: RW, fixed: true }).ok).toBe(true);
    expect(parent.brk(e.cpu, DATA + 0x3000)).toBe(DATA + 0x3000);
    expect(parent.copyout(e.cpu, DATA + 0x2000, Uint8Array.of(0xab)).ok).toBe(true);
    const used = e.pmem.freeBytes;
    const f = parent.fork(e.cpu);
    if (!f.ok) throw new Error(f.error);
    const child = f.value;
    expect(child.cr3).not.toBe(parent.cr3);
    expect(child.brkValue).toBe(parent.brkValue);
    expect(child.regions().map((r) => [r.start, r.end, r.prot, r.kind])).toEqual(parent.regions().map((r) => [r.start, r.end, r.prot, r.kind]));
    for (const r of child.regions()) expect(child.translate(r.start)).not.toBe(parent.translate(r.start));
    expect(walk(e.mem, child.cr3, 0x2000_0000)?.large).toBe(true);
    expect(word(child, DATA + 0x2000)).toBe(0xab);
    expect(exec(e, child).exitCode).toBe(0);
    expect(word(child, DATA)).toBe(11);
    expect(word(parent, DATA)).toBe(10);
    expect(exec(e, parent).exitCode).toBe(0);
    expect(exec(e, parent).exitCode).toBe(0);
    expect([word(parent, DATA), word(child, DATA)]).toEqual([12, 11]);
    expect([word(parent, 0x2000_0000), word(child, 0x2000_0000)]).toEqual([2, 1]);
    child.destroy(e.cpu);
    expect(e.pmem.freeBytes).toBe(used);
  });
});

