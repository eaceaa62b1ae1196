// Tests of the native harness itself (not of the emulator): it loads the state it is given,
// reports the state the code leaves, and survives anything a case does.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  CODE_BASE,
  DATA_BASE,
  DATA_SIZE,
  SIG,
  nativeAvailable,
  runNative,
  type NativeCase,
  type NativeResult,
} from './native.ts';

const CI = process.env.CI === 'true';
const EAX = 0, ECX = 1, EDX = 2, EBX = 3, ESP = 4, EBP = 5, ESI = 6, EDI = 7;
const CF = 0x1, PF = 0x4, AF = 0x10, ZF = 0x40, SF = 0x80, TF = 0x100, DF = 0x400, OF = 0x800, AC = 0x40000;
const STATUS = CF | PF | AF | ZF | SF | OF;
const NO_TRAP = 0xffffffff;

function pattern(): Uint8Array {
  const d = new Uint8Array(DATA_SIZE);
  for (let i = 0; i < DATA_SIZE; i++) d[i] = (i * 37 + 11) & 0xff;
  return d;
}

function mk(code: number[], regs: Partial<Record<number, number>> = {}, eflags = 0, data = pattern()): NativeCase {
  const r = [0, 0, 0, 0, 0, 0, 0, 0];
  for (const [k, v] of Object.entries(regs)) r[Number(k)] = v!;
  return { code: Uint8Array.from(code), regs: r, eflags, data };
}

function run1(code: number[], regs: Partial<Record<number, number>> = {}, eflags = 0, data = pattern()): NativeResult {
  return runNative([mk(code, regs, eflags, data)])[0]!;
}

function u32(d: Uint8Array, off: number): number {
  return (d[off]! | (d[off + 1]! << 8) | (d[off + 2]! << 16) | (d[off + 3]! << 24)) >>> 0;
}

describe.skipIf(!CI && !nativeAvailable())('native i386 harness', () => {
  it('can be built on this host (gcc -m32 -static)', () => {
    expect(nativeAvailable()).toBe(true);
  });

  it('runs add eax, ebx and reports EAX and the flags', () => {
    const [a, b] = runNative([
      mk([0x01, 0xd8], { [EAX]: 0xffffffff, [EBX]: 1 }),
      mk([0x01, 0xd8], { [EAX]: 0x7fffffff, [EBX]: 1 }),
    ]);
    expect(a!.signal).toBe(0);
    expect(a!.faultEip).toBe(0);
    expect(a!.trapno).toBe(NO_TRAP);
    expect(a!.regs[EAX]).toBe(0);
    expect(a!.eflags & STATUS).toBe(CF | PF | AF | ZF);
    expect(b!.regs[EAX]).toBe(0x80000000);
    expect(b!.eflags & STATUS).toBe(OF | SF | AF | PF);
  });

  it('returns every register and the flags unchanged for empty code', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: 0xffffffff }), { minLength: 8, maxLength: 8 }), fc.nat({ max: 0xffffffff }), (regs, eflags) => {
        const r = runNative([{ code: new Uint8Array(0), regs, eflags, data: new Uint8Array(DATA_SIZE) }])[0]!;
        expect(r.signal).toBe(0);
        expect(r.regs).toEqual(regs.map((v) => v >>> 0));
        expect(r.eflags & (STATUS | DF)).toBe(eflags & (STATUS | DF));
        expect(r.eflags & (TF | AC)).toBe(0);
      }),
      { numRuns: 50, seed: CI ? 0x5eed : undefined },
    );
  });

  it('reports div by zero as SIGFPE at the instruction', () => {
    const r = run1([0xf7, 0xf1], { [EAX]: 5, [ECX]: 0 }); // div ecx
    expect(r.signal).toBe(SIG.FPE);
    expect(r.faultEip).toBe(CODE_BASE);
    expect(r.trapno).toBe(0);
    expect(r.regs[EAX]).toBe(5);
  });

  it('reports ud2 as SIGILL (#UD, vector 6)', () => {
    const r = run1([0x90, 0x0f, 0x0b]);
    expect(r.signal).toBe(SIG.ILL);
    expect(r.faultEip).toBe(CODE_BASE + 1);
    expect(r.trapno).toBe(6);
  });

  it('reports int3 as SIGTRAP with EIP after the instruction', () => {
    const r = run1([0xcc], { [EAX]: 0x1234 });
    expect(r.signal).toBe(SIG.TRAP);
    expect(r.faultEip).toBe(CODE_BASE + 1);
    expect(r.trapno).toBe(3);
    expect(r.regs[EAX]).toBe(0x1234);
  });

  it('lets code store into the data region and returns the data', () => {
    const before = pattern();
    const r = run1([0x89, 0x06], { [EAX]: 0xdeadbeef, [ESI]: DATA_BASE + 16 }, 0, before); // mov [esi], eax
    expect(r.signal).toBe(0);
    expect(u32(r.data, 16)).toBe(0xdeadbeef);
    const expected = pattern();
    expected.set([0xef, 0xbe, 0xad, 0xde], 16);
    expect(r.data).toEqual(expected);
  });

  it('loads each case its own data (no leak from the previous case)', () => {
    const zero = new Uint8Array(DATA_SIZE);
    const [, second] = runNative([
      mk([0x89, 0x06], { [EAX]: 0xffffffff, [ESI]: DATA_BASE }),
      mk([0x8b, 0x06], { [ESI]: DATA_BASE }, 0, zero), // mov eax, [esi]
    ]);
    expect(second!.regs[EAX]).toBe(0);
    expect(second!.data).toEqual(zero);
  });

  it('reports stores past either end of the data region as SIGSEGV (#PF)', () => {
    const [above, below, lastOk] = runNative([
      mk([0x89, 0x06], { [ESI]: DATA_BASE + DATA_SIZE }),
      mk([0x89, 0x06], { [ESI]: DATA_BASE - 4 }),
      mk([0x89, 0x06], { [ESI]: DATA_BASE + DATA_SIZE - 4, [EAX]: 7 }),
    ]);
    for (const r of [above!, below!]) {
      expect(r.signal).toBe(SIG.SEGV);
      expect(r.faultEip).toBe(CODE_BASE);
      expect(r.trapno).toBe(14);
      expect(r.err & 0x6).toBe(0x6); // user-mode write
    }
    expect(lastOk!.signal).toBe(0);
    expect(u32(lastOk!.data, DATA_SIZE - 4)).toBe(7);
  });

  it('takes CF PF AF ZF SF OF DF from the case and never sets TF or AC', () => {
    const [lahf, pushfd, all] = runNative([
      mk([0x9f], {}, CF | ZF | DF), // lahf
      mk([0x9c], { [ESP]: DATA_BASE + 0x100 }, CF | DF), // pushfd
      mk([0x9c], { [ESP]: DATA_BASE + 0x100 }, 0xffffffff),
    ]);
    expect((lahf!.regs[EAX]! >>> 8) & 0xff).toBe(0x02 | CF | ZF);
    expect(lahf!.eflags & DF).toBe(DF);
    const pushed = u32(pushfd!.data, 0xfc);
    expect(pushed & (STATUS | DF | TF | AC)).toBe(CF | DF);
    expect(pushfd!.regs[ESP]).toBe(DATA_BASE + 0xfc);
    const pushedAll = u32(all!.data, 0xfc);
    expect(pushedAll & (STATUS | DF)).toBe(STATUS | DF);
    expect(pushedAll & (TF | AC)).toBe(0);
  });

  it('honours DF for string instructions', () => {
    // mov edi, esi; stosd with DF=1 goes down
    const r = run1([0xab], { [EDI]: DATA_BASE + 0x40, [EAX]: 0x11223344 }, DF);
    expect(r.signal).toBe(0);
    expect(u32(r.data, 0x40)).toBe(0x11223344);
    expect(r.regs[EDI]).toBe(DATA_BASE + 0x3c);
  });

  it('runs ESP-relative push and pop in the data region', () => {
    // push eax; push ebx; pop ecx; push dword [esp]
    const r = run1([0x50, 0x53, 0x59, 0xff, 0x34, 0x24], { [ESP]: DATA_BASE + 0x1000, [EAX]: 0xaaaa5555, [EBX]: 0x12345678 });
    expect(r.signal).toBe(0);
    expect(r.regs[ECX]).toBe(0x12345678);
    expect(r.regs[ESP]).toBe(DATA_BASE + 0xff8);
    expect(u32(r.data, 0xffc)).toBe(0xaaaa5555);
    expect(u32(r.data, 0xff8)).toBe(0xaaaa5555);
  });

  it('stops an infinite loop with a timeout (signal 14)', () => {
    const [loop, after] = runNative([mk([0xeb, 0xfe], { [EBP]: 77 }), mk([0x40], { [EAX]: 1 })]);
    expect(loop!.signal).toBe(SIG.ALRM);
    expect(loop!.faultEip).toBe(CODE_BASE);
    expect(loop!.regs[EBP]).toBe(77);
    expect(after!.signal).toBe(0);
    expect(after!.regs[EAX]).toBe(2);
  });

  it('survives wild jumps, garbage ESP, segment loads, system calls and self-modifying code', () => {
    const results = runNative([
      mk([0xff, 0xe0], { [EAX]: 0x12345678 }), // jmp eax
      mk([0x0f, 0x0b], { [ESP]: 0 }), // ud2 with ESP = 0
      mk([0x50], { [ESP]: 0xdead0000 }), // push to an unmapped stack
      mk([0x8e, 0xd8, 0x8e, 0xe8, 0x8e, 0xe0], { [EAX]: 0 }), // mov ds, ax; mov gs, ax; mov fs, ax (null)
      mk([0x8e, 0xd8, 0x8e, 0xd0], { [EAX]: 0 }), // mov ds, ax; mov ss, ax (null SS: #GP)
      mk([0xcd, 0x80], { [EAX]: 1, [EBX]: 9 }), // int 0x80: exit(9)
      mk([0xcd, 0x80], { [EAX]: 4, [EBX]: 1, [ECX]: DATA_BASE, [EDX]: 100 }), // write(1, ...)
      mk([0xc6, 0x05, 0x00, 0x01, 0x00, 0x10, 0xcc]), // mov byte [CODE_BASE + 0x100], 0xcc
      mk([0x40], { [EAX]: 41 }),
    ]);
    const [jmp, esp0, pushBad, nullSegs, nullSs, exit, write, smc, last] = results;
    expect(jmp!.signal).toBe(SIG.SEGV);
    expect(jmp!.faultEip).toBe(0x12345678);
    expect(jmp!.trapno).toBe(14);
    expect(esp0!.signal).toBe(SIG.ILL);
    expect(esp0!.regs[ESP]).toBe(0);
    expect(pushBad!.signal).toBe(SIG.SEGV);
    expect(pushBad!.regs[ESP]).toBe(0xdead0000);
    expect(nullSegs!.signal).toBe(0);
    expect(nullSs!.signal).toBe(SIG.SEGV);
    expect(nullSs!.trapno).toBe(13);
    expect(exit!.signal).toBe(SIG.SYS);
    expect(exit!.faultEip).toBe(CODE_BASE + 2);
    expect(write!.signal).toBe(SIG.SYS);
    expect(smc!.signal).toBe(0);
    expect(last!.signal).toBe(0);
    expect(last!.regs[EAX]).toBe(42);
    // The byte written into the code region is gone for the next case.
    const probe = run1([0xa0, 0x00, 0x01, 0x00, 0x10]); // mov al, [CODE_BASE + 0x100]
    expect(probe.regs[EAX]! & 0xff).toBe(0xf4);
  });

  it('reports TF and AC that the code sets itself, and clears them for the next case', () => {
    const popf = (bits: number[]) => [0x9c, 0x81, 0x0c, 0x24, ...bits, 0x9d]; // pushfd; or [esp], imm32; popfd
    const [ac, tf, next] = runNative([
      mk([...popf([0, 0, 4, 0]), 0x8b, 0x46, 0x01], { [ESP]: DATA_BASE + 0x1000, [ESI]: DATA_BASE }), // misaligned load
      mk([...popf([0, 1, 0, 0]), 0x90, 0x90], { [ESP]: DATA_BASE + 0x1000 }),
      mk([0x8b, 0x46, 0x01, 0x9c], { [ESP]: DATA_BASE + 0x1000, [ESI]: DATA_BASE }),
    ]);
    expect(ac!.signal).toBe(SIG.BUS);
    expect(ac!.trapno).toBe(17);
    expect(ac!.faultEip).toBe(CODE_BASE + 9);
    expect(tf!.signal).toBe(SIG.TRAP);
    expect(tf!.trapno).toBe(1);
    expect(tf!.faultEip).toBe(CODE_BASE + 10); // after the instruction following popfd
    expect(next!.signal).toBe(0);
    expect(u32(next!.data, 0xffc) & (TF | AC)).toBe(0);
  });

  it('runs a batch of 5,000 cases in one spawn, quickly', () => {
    const cases: NativeCase[] = [];
    for (let i = 0; i < 5000; i++) {
      const kind = i % 4;
      if (kind === 0) cases.push(mk([0x01, 0xd8], { [EAX]: i, [EBX]: i * 3 }));
      else if (kind === 1) cases.push(mk([0xf7, 0xf1], { [EAX]: i, [ECX]: 0 }));
      else if (kind === 2) cases.push(mk([0x89, 0x06], { [EAX]: i, [ESI]: DATA_BASE + (i & 0x1ffc) }));
      else cases.push(mk([0xcc]));
    }
    const t0 = performance.now();
    const results = runNative(cases);
    const ms = performance.now() - t0;
    console.log(`native harness: 5000 cases in ${ms.toFixed(0)} ms`);
    expect(results).toHaveLength(5000);
    for (let i = 0; i < 5000; i++) {
      const r = results[i]!;
      const kind = i % 4;
      if (kind === 0) expect(r.regs[EAX]).toBe((i * 4) >>> 0);
      else if (kind === 1) expect(r.signal).toBe(SIG.FPE);
      else if (kind === 2) expect(u32(r.data, i & 0x1ffc)).toBe(i);
      else expect(r.signal).toBe(SIG.TRAP);
    }
    expect(ms).toBeLessThan(5000);
  });

  it('rejects malformed cases before spawning', () => {
    expect(() => runNative([{ code: new Uint8Array(1), regs: [0], eflags: 0, data: new Uint8Array(DATA_SIZE) }])).toThrow(/regs/);
    expect(() => runNative([{ code: new Uint8Array(1), regs: [0, 0, 0, 0, 0, 0, 0, 0], eflags: 0, data: new Uint8Array(4) }])).toThrow(/data/);
    expect(runNative([])).toEqual([]);
  });
});
