// --trace insn (hw/cpu/trace.ts): the log's content, that tracing changes nothing, and a
// comparison with QEMU's own `-d in_asm,cpu` log of the same program, read by one parser.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ACC_READ } from '../../../hw/cpu/access.ts';
import { Cpu } from '../../../hw/cpu/cpu.ts';
import { peekEflags, peekPhys, traceInsns } from '../../../hw/cpu/trace.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';
import { makeEmuMachine, runEmu } from '../../native/emu.ts';
import { CODE_BASE, DATA_BASE, DATA_SIZE, type NativeCase } from '../../native/native.ts';

function sink(): { out: { write(s: string): void }; text: () => string; writes: () => number } {
  const chunks: string[] = [];
  return { out: { write: (s: string) => { chunks.push(s); } }, text: () => chunks.join(''), writes: () => chunks.length };
}

// mov ecx,3; mov eax,0; l: add eax,ecx; dec ecx; jnz l   (then the end marker UD2)
const LOOP = [0xb9, 3, 0, 0, 0, 0xb8, 0, 0, 0, 0, 0x01, 0xc8, 0x49, 0x75, 0xfb];
function loopCase(): NativeCase {
  return { code: Uint8Array.from(LOOP), regs: [0x11, 0x22, 0x33, 0x44, DATA_BASE + 0x1000, 0x66, 0x77, 0x88], eflags: 0, data: new Uint8Array(DATA_SIZE) };
}
const hex8 = (v: number) => (v >>> 0).toString(16).padStart(8, '0');

describe('--trace insn', () => {
  it('logs every executed instruction with address, bytes, disassembly and the registers before it', () => {
    const m = makeEmuMachine();
    const s = sink();
    const t = traceInsns(m.cpu, { out: s.out });
    const r = runEmu(m, loopCase());
    t.stop();
    expect(r.signal).toBe(0);
    const lines = s.text().trimEnd().split('\n');
    // 2 movs + 3 x (add, dec, jnz) + the UD2 end marker, which is fetched and traced too
    expect(lines.length).toBe(2 + 9 + 1);
    expect(t.count).toBe(lines.length);
    expect(lines[0]).toMatch(new RegExp(`^0x${hex8(CODE_BASE)}:  b9 03 00 00 00 +mov +ecx,0x3  EAX=00000011 EBX=00000044 ECX=00000022 EDX=00000033 ESI=00000077 EDI=00000088 EBP=00000066 ESP=${hex8(DATA_BASE + 0x1000)} EIP=${hex8(CODE_BASE)} EFL=00000202 \\[-------\\] CPL=3$`));
    expect(lines[2]).toContain('01 c8');
    expect(lines[2]).toContain('add    eax,ecx');
    expect(lines[2]).toContain('EAX=00000000 EBX=00000044 ECX=00000003');
    expect(lines[4]).toContain(`jne    0x${(CODE_BASE + 10).toString(16)}`);
    // after the first dec: ECX=2, flags of 3-1 (no ZF, PF clear: 2 has one bit set)
    expect(lines[4]).toMatch(/ECX=00000002 .* EFL=00000202 \[-------\]/);
    // the last dec leaves ZF and PF set: the jne that falls through sees them
    expect(lines[10]).toMatch(/ECX=00000000 .* EFL=00000246 \[---Z-P-\]/);
    expect(lines[11]).toMatch(new RegExp(`^0x${hex8(CODE_BASE + LOOP.length)}:  0f 0b `));
  });

  it('prints QEMU block layout on request', () => {
    const m = makeEmuMachine();
    const s = sink();
    const t = traceInsns(m.cpu, { out: s.out, format: 'qemu', limit: 1 });
    runEmu(m, loopCase());
    t.stop();
    expect(s.text()).toBe([
      '----------------',
      'IN: ',
      `0x${hex8(CODE_BASE)}:  b9 03 00 00 00           mov    ecx,0x3`,
      '',
      'EAX=00000011 EBX=00000044 ECX=00000022 EDX=00000033',
      `ESI=00000077 EDI=00000088 EBP=00000066 ESP=${hex8(DATA_BASE + 0x1000)}`,
      `EIP=${hex8(CODE_BASE)} EFL=00000202 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0`,
      '',
    ].join('\n'));
  });

  it('stops after `limit` instructions and uninstalls itself', () => {
    const m = makeEmuMachine();
    const s = sink();
    const t = traceInsns(m.cpu, { out: s.out, limit: 3 });
    runEmu(m, loopCase());
    expect(t.count).toBe(3);
    expect(s.text().trimEnd().split('\n').length).toBe(3);
    expect(m.cpu.tracer).toBe(null);
  });

  it('buffers its output and flushes on stop', () => {
    const m = makeEmuMachine();
    const s = sink();
    const t = traceInsns(m.cpu, { out: s.out });
    runEmu(m, loopCase());
    expect(s.writes()).toBe(0); // a dozen lines stay in the buffer
    t.stop();
    expect(s.writes()).toBe(1);
    expect(m.cpu.tracer).toBe(null);
  });

  it('changes nothing the program or the statistics can see', () => {
    // a loop over the data region with loads, stores and lazy flags read by jcc
    const code = [0xb9, 0x40, 0, 0, 0, 0x8b, 0x06, 0x01, 0xc3, 0x89, 0x5e, 0x04, 0x83, 0xc6, 0x08, 0x49, 0x75, 0xf3];
    const c: NativeCase = { code: Uint8Array.from(code), regs: [0, 0, 0, 0, DATA_BASE + 0x1000, 0, DATA_BASE, 0], eflags: 0x8d5, data: new Uint8Array(DATA_SIZE).map((_v, k) => (k * 37) & 0xff) };
    const plain = makeEmuMachine();
    const a = runEmu(plain, c);
    const traced = makeEmuMachine();
    const t = traceInsns(traced.cpu, { out: sink().out });
    const b = runEmu(traced, c);
    t.stop();
    expect(b).toEqual(a);
    expect(traced.cpu.cycles).toBe(plain.cpu.cycles);
    expect(traced.cpu.icount).toBe(plain.cpu.icount);
    expect(traced.cpu.stats).toEqual(plain.cpu.stats);
    expect(traced.cpu.lazy).toBe(plain.cpu.lazy);
  });

  it('reads EFLAGS without materialising the lazy flags', () => {
    const m = makeEmuMachine();
    m.cpu.setLazy(2, 2, 1, 1, 0); // SUB 1-1: ZF PF set, lazily
    const lazy = m.cpu.lazy;
    expect(peekEflags(m.cpu) & 0x44).toBe(0x44);
    expect(m.cpu.lazy).toBe(lazy);
  });
});

describe('peekPhys (the tracer\'s look at code bytes)', () => {
  function machine(): { cpu: Cpu; mem: PhysMem; w: (a: number, v: number) => void } {
    const mem = new PhysMem(0x800000);
    const cpu = new Cpu({ mem });
    return { cpu, mem, w: (a, v) => mem.write(a, 4, v >>> 0) };
  }
  const samples = [0x00401234, 0x00402ffc, 0x00800010, 0x00bff123, 0x40000abc];

  it('agrees with the CPU\'s own translation for 2-level, PSE and PAE tables, and reads no further', () => {
    // 2-level: 4 KiB pages at 0x400000-0x402fff, a 4 MiB page at 0x800000
    const a = machine();
    a.w(0x1000 + (0x400000 >>> 22) * 4, 0x2000 | 7);
    for (let k = 0; k < 3; k++) a.w(0x2000 + k * 4, (0x100000 + k * 0x3000) | 7);
    a.w(0x1000 + (0x800000 >>> 22) * 4, 0x400000 | 0x87);
    a.cpu.cr3 = 0x1000; a.cpu.cr4 = 0x10; a.cpu.cr0 = 0x80000011; a.cpu.updateMode(); a.cpu.flushTlbAll();
    // PAE: PDPT at 0x3000; a 4 KiB page at 0x401000 and a 2 MiB page at 0x800000
    const b = machine();
    b.w(0x3000, 0x4000 | 1);
    b.w(0x4000 + ((0x400000 >>> 21) & 0x1ff) * 8, 0x5000 | 7);
    b.w(0x5000 + ((0x401000 >>> 12) & 0x1ff) * 8, 0x123000 | 7);
    b.w(0x4000 + ((0x800000 >>> 21) & 0x1ff) * 8, 0x600000 | 0x87);
    b.cpu.cr4 = 0x20; b.cpu.cr0 = 0x80000011;
    b.cpu.cr3 = 0x3000;
    b.cpu.pdpte[0] = 0x4000 | 1;
    b.cpu.updateMode(); b.cpu.flushTlbAll();
    for (const { cpu } of [a, b]) {
      for (const lin of samples) {
        const before = { ...cpu.stats };
        const peek = peekPhys(cpu, lin);
        expect(cpu.stats).toEqual(before);
        let want = -1;
        try { want = cpu.translate(lin, ACC_READ, false); } catch (e) { if (!Cpu.isFault(e)) throw e; }
        expect(peek, `lin 0x${lin.toString(16)}`).toBe(want);
      }
    }
    expect(peekPhys(a.cpu, 0x401234)).toBe(0x103234);
    expect(peekPhys(b.cpu, 0x401234)).toBe(0x123234);
    expect(peekPhys(b.cpu, 0x8abcde)).toBe(0x6abcde);
  });
});

// ---------------------------------------------------------------- against QEMU

const haveQemu = spawnSync('qemu-i386', ['--version']).status === 0 && spawnSync('gcc', ['--version']).status === 0;
const qemuSuite = haveQemu || process.env.CI === 'true' ? describe : describe.skip;

interface Step { eip: number; regs: string; efl: string; cpl: string; bytes: string }

/** Reads a `-d in_asm,cpu` log (QEMU's or ours in `qemu` format): the executed steps in order. */
function parseQemuLog(log: string): Step[] {
  const bytesAt = new Map<number, string>();
  const steps: Step[] = [];
  let regs: string[] = [];
  for (const line of log.split('\n')) {
    const ins = /^0x([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)/.exec(line);
    if (ins) { bytesAt.set(parseInt(ins[1], 16), ins[2].trim()); continue; }
    if (/^(EAX|ESI)=/.test(line)) { regs.push(line.trim()); continue; }
    const m = /^EIP=([0-9a-f]{8}) EFL=([0-9a-f]{8}) \[([-A-Z]{7})\] CPL=(\d)/.exec(line);
    if (m) {
      const eip = parseInt(m[1], 16);
      // ESP differs (QEMU's stack is its own): leave it out
      steps.push({ eip, regs: regs.join(' ').replace(/ ESP=[0-9a-f]{8}/, ''), efl: `${m[2]} [${m[3]}]`, cpl: m[4], bytes: '' });
      regs = [];
    }
  }
  for (const s of steps) s.bytes = bytesAt.get(s.eip) ?? '?';
  return steps;
}

qemuSuite('--trace insn against qemu-i386 -d in_asm,cpu', () => {
  it('gives the same executed addresses, bytes, registers and flags as QEMU, step by step', () => {
    expect(haveQemu).toBe(true);
    const src = `
      .globl _start
      _start:
        mov $10, %ecx
        mov $0, %eax
        mov $0x12345678, %ebx
        mov $0x7ffffffe, %esi
      1:
        add %ecx, %eax
        sub $3, %ebx
        add $1, %esi
        mov %eax, %edx
        cmp $40, %eax
        dec %ecx
        jnz 1b
        mov $1, %eax
        mov $0, %ebx
        int $0x80
    `;
    const dir = mkdtempSync(join(tmpdir(), 'trace-'));
    try {
      writeFileSync(join(dir, 'p.S'), src);
      const build = spawnSync('gcc', ['-m32', '-nostdlib', '-static', '-no-pie', `-Wl,-Ttext=0x${CODE_BASE.toString(16)}`, '-Wl,--build-id=none', '-o', join(dir, 'p'), join(dir, 'p.S')], { encoding: 'utf8' });
      expect(build.status, build.stderr).toBe(0);
      expect(spawnSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'p'), join(dir, 'p.bin')]).status).toBe(0);
      const q = spawnSync('qemu-i386', ['-singlestep', '-d', 'in_asm,cpu,nochain', '-D', join(dir, 'q.log'), join(dir, 'p')], { encoding: 'utf8' });
      expect(q.status, q.stderr).toBe(0);
      const theirs = parseQemuLog(readFileSync(join(dir, 'q.log'), 'utf8'));

      const m = makeEmuMachine();
      const s = sink();
      const t = traceInsns(m.cpu, { out: s.out, format: 'qemu' });
      runEmu(m, { code: new Uint8Array(readFileSync(join(dir, 'p.bin'))), regs: [0, 0, 0, 0, DATA_BASE + 0x1000, 0, 0, 0], eflags: 0, data: new Uint8Array(DATA_SIZE) });
      t.stop();
      const ours = parseQemuLog(s.text());

      expect(theirs.length).toBeGreaterThan(60);
      expect(ours).toEqual(theirs);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
