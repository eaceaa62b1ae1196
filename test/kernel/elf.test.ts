// The program loader and the initial stack (issue 5, "Native applications"): static i386 ELF
// executables (ET_EXEC and static-pie) mapped from contiguous memory with their segments'
// protections, and argv, envp and the auxiliary vector laid out as Linux lays them out.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseElf32 } from '../../hw/boot/elf.ts';
import { cpuidLookup } from '../../hw/cpu/cpuid.ts';
import { Machine } from '../../hw/machine.ts';
import { bootKernel, makeBootInfo } from '../../kernel/boot.ts';
import { FIXED_ENV } from '../../kernel/kernel.ts';
import { AddressSpace, PROT_EXEC, PROT_READ, PROT_WRITE, USER_TOP } from '../../kernel/mm/aspace.ts';
import { Pmem } from '../../kernel/mm/pmem.ts';
import { ExecError, loadElf, PIE_BASE } from '../../kernel/proc/elf-loader.ts';
import { AT_CLKTCK, AT_ENTRY, AT_EXECFN, AT_HWCAP, AT_NULL, AT_PAGESZ, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PLATFORM, AT_RANDOM,
  AT_SECURE, AT_UID } from '../../kernel/proc/stack.ts';
import { programPath, TINY_CODE, tinyElf, X } from './lwk.ts';

function space() {
  const m = new Machine({ ram: 64 << 20 });
  const pmem = new Pmem(m.memoryMap, { ramSize: m.mem.ramSize });
  const r = AddressSpace.create({ cycles: 0 }, { pmem, mem: m.mem });
  if (!r.ok) throw new Error(r.error);
  return { m, as: r.value, meter: { cycles: 0 } };
}

const prog = (name: string) => new Uint8Array(readFileSync(programPath(name)));

describe('the ELF loader', () => {
  it('maps an ET_EXEC program\'s segments at their addresses with their protections, .bss zeroed', () => {
    const { as, meter } = space();
    const bytes = prog('hello');
    const elf = parseElf32(bytes);
    const img = loadElf(meter, as, bytes, 'hello');
    expect(img.bias).toBe(0);
    expect(img.entry).toBe(elf.entry);
    for (const p of elf.loads) {
      const r = as.regionAt(p.vaddr)!;
      const prot = ((p.flags & 4) ? PROT_READ : 0) | ((p.flags & 2) ? PROT_WRITE : 0) | ((p.flags & 1) ? PROT_EXEC : 0);
      expect(r.prot & prot).toBe(prot);
      expect(r.kind).toBe((p.flags & 2) !== 0 ? 'data' : 'text');
      const got = as.copyin(meter, p.vaddr, p.filesz);
      expect(got.ok && Buffer.from(got.value).equals(Buffer.from(bytes.subarray(p.offset, p.offset + p.filesz)))).toBe(true);
      if (p.memsz > p.filesz) {
        const bss = as.copyin(meter, p.vaddr + p.filesz, p.memsz - p.filesz);
        expect(bss.ok && bss.value.every((b) => b === 0)).toBe(true);
      }
    }
    const top = Math.max(...elf.loads.map((p) => p.vaddr + p.memsz));
    expect(img.brk).toBe(Math.ceil(top / 4096) * 4096);
    expect(as.brkValue).toBe(img.brk);
    // AT_PHDR: the program headers, in the first segment
    const ph = as.copyin(meter, img.phdr, 32 * img.phnum);
    expect(ph.ok && Buffer.from(ph.value).equals(Buffer.from(bytes.subarray(elf.phoff, elf.phoff + 32 * elf.phnum)))).toBe(true);
    expect(meter.cycles).toBeGreaterThan(0);
  });

  it('places a static-pie program at ELF_ET_DYN_BASE and relocates nothing itself', () => {
    const { as, meter } = space();
    const bytes = prog('hello-pie');
    const elf = parseElf32(bytes);
    expect(elf.type).toBe(3);
    const img = loadElf(meter, as, bytes, 'hello-pie');
    expect(img.bias).toBe(PIE_BASE);
    expect(img.entry).toBe(PIE_BASE + elf.entry);
    expect(as.regionAt(PIE_BASE)).toBeDefined();
  });

  it('gives a page two segments share the union of their protections', () => {
    const code = Uint8Array.from(X.exit(3));
    const img = tinyElf(code, { data: new Uint8Array(16) });
    // move the data segment into the code's page: vaddr 0x08048800, file offset 0x800
    const b = new Uint8Array(0x1000 + 16);
    b.set(img.subarray(0, 0x1000));
    const dv = new DataView(b.buffer);
    dv.setUint32(52 + 32 + 4, 0x800, true);
    dv.setUint32(52 + 32 + 8, 0x08048800, true);
    const { as, meter } = space();
    loadElf(meter, as, b, 'shared');
    expect(as.regionAt(0x08048000)!.prot).toBe(PROT_READ | PROT_WRITE | PROT_EXEC);
  });

  it('refuses what the LWK cannot run, with one line naming the problem', () => {
    const { as, meter } = space();
    const dyn = tinyElf(Uint8Array.from(X.exit(0)), { interp: true });
    expect(() => loadElf(meter, as, dyn, 'dyn')).toThrow(ExecError);
    expect(() => loadElf(meter, as, dyn, 'dyn')).toThrow(/dyn: a dynamically linked program/);
    expect(() => loadElf(meter, as, Uint8Array.of(1, 2, 3, 4), 'junk')).toThrow(/junk is not an ELF file/);
    const high = tinyElf(Uint8Array.from(X.exit(0)));
    new DataView(high.buffer).setUint32(52 + 8, 0xc0000000, true);
    expect(() => loadElf(meter, as, high, 'high')).toThrow(/outside user space/);
    expect(as.regions()).toEqual([]);
  });
});

describe('the initial stack', () => {
  function boot(argv: string[], seed = 0) {
    const m = new Machine({ ram: 64 << 20 });
    const k = bootKernel(m, makeBootInfo(m, [{ name: '/prog', data: tinyElf(Uint8Array.from(X.exit(0)), { data: new Uint8Array(8) }) }]),
      { seed, init: { argv } });
    const proc = k.processes.get(k.initPid)!;
    const sp = m.cores[0].r[4] >>> 0; // the thread is loaded: ESP is the initial stack pointer
    const as = proc.aspace;
    const u32 = (va: number) => { const r = as.copyin({ cycles: 0 }, va, 4); if (!r.ok) throw new Error(r.error); return new DataView(r.value.buffer).getUint32(0, true); };
    const str = (va: number) => { const r = as.copyinString({ cycles: 0 }, va, 4096); if (!r.ok) throw new Error(r.error); return Buffer.from(r.value).toString('latin1'); };
    return { m, k, sp, u32, str, as };
  }

  it('argc, argv, envp and auxv in Linux\'s layout, ESP 16-byte aligned', () => {
    const { m, sp, u32, str } = boot(['/prog', 'a', 'bb', '']);
    expect(sp % 16).toBe(0);
    expect(m.cores[0].eip).toBe(TINY_CODE);
    expect(u32(sp)).toBe(4);
    const argv = [1, 2, 3, 4].map((i) => str(u32(sp + 4 * i)));
    expect(argv).toEqual(['/prog', 'a', 'bb', '']);
    expect(u32(sp + 20)).toBe(0);
    const env: string[] = [];
    let p = sp + 24;
    for (; u32(p) !== 0; p += 4) env.push(str(u32(p)));
    expect(env).toEqual([...FIXED_ENV]);
    p += 4;
    const aux = new Map<number, number>();
    const order: number[] = [];
    for (; ; p += 8) { const t = u32(p); order.push(t); aux.set(t, u32(p + 4)); if (t === AT_NULL) break; }
    expect(aux.get(AT_PAGESZ)).toBe(4096);
    expect(aux.get(AT_CLKTCK)).toBe(100);
    expect(aux.get(AT_PHENT)).toBe(32);
    expect(aux.get(AT_PHNUM)).toBe(2);
    expect(aux.get(AT_PHDR)).toBe(0x08048034);
    expect(aux.get(AT_ENTRY)).toBe(TINY_CODE);
    expect(aux.get(AT_SECURE)).toBe(0);
    expect(aux.get(AT_UID)).toBe(0);
    expect(aux.get(AT_HWCAP)).toBe(cpuidLookup(m.cores[0].cpuid, 1)[3] >>> 0);
    expect(str(aux.get(AT_EXECFN)!)).toBe('/prog');
    expect(str(aux.get(AT_PLATFORM)!)).toBe('i686');
    expect(order[0]).toBe(AT_HWCAP);
    expect(order[order.length - 1]).toBe(AT_NULL);
    // the strings sit at the top: argv's, then envp's, then the file name, then 4 zero bytes
    expect(u32(USER_TOP - 4)).toBe(0);
    expect(aux.get(AT_EXECFN)).toBe(USER_TOP - 4 - '/prog'.length - 1);
    expect(u32(sp + 8)).toBeLessThan(u32(sp + 24)); // argv strings below envp strings
    const rnd = aux.get(AT_RANDOM)!;
    expect(rnd % 16).toBe(0);
    expect(rnd).toBeLessThan(aux.get(AT_PLATFORM)!);
  });

  it('AT_RANDOM\'s 16 bytes come from the boot seed', () => {
    const rnd = (seed: number) => {
      const b = boot(['/prog'], seed);
      let p = b.sp + 24; // past argc, argv[0], NULL, envp[0], envp[1], NULL
      for (; ; p += 8) if (b.u32(p) === AT_RANDOM) break;
      const r = b.as.copyin({ cycles: 0 }, b.u32(p + 4), 16);
      return r.ok ? Array.from(r.value) : [];
    };
    expect(rnd(5)).toEqual(rnd(5));
    expect(rnd(5)).not.toEqual(rnd(6));
    expect(rnd(5)).toHaveLength(16);
  });
});
