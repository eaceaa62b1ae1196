// The disassembler (hw/cpu/disasm.ts) against GNU objdump (`objdump -D -b binary -mi386 -M intel`,
// and -mi8086 for 16-bit code).
//
// The encodings are generated from the opcode table itself: every entry of prepared(op) (group
// members, rm3 members, REP variants) in its register and memory forms, with and without the
// operand-size prefix, with 32- and 16-bit addressing, a segment override and immediates. So
// families added to isa/ later are covered without touching this file. Each encoding sits in its
// own 16-byte slot (padded with NOPs), so a length disagreement cannot derail the others. Our
// decoder decodes each slot; the disassembly must equal objdump's line at that address after
// collapsing spaces, and the lengths must agree.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Cpu } from '../../../hw/cpu/cpu.ts';
import { decode } from '../../../hw/cpu/decoder.ts';
import { disassemble, disasmParts, hexBytes } from '../../../hw/cpu/disasm.ts';
import { CS, type Insn, type OpDef } from '../../../hw/cpu/insn.ts';
import { prepared, type PreparedDef } from '../../../hw/cpu/optable.ts';
import { PhysMem } from '../../../hw/mem/physmem.ts';

const haveObjdump = spawnSync('objdump', ['--version']).status === 0;
const requireObjdump = process.env.CI === 'true';
const suite = haveObjdump || requireObjdump ? describe : describe.skip;

/**
 * Entries objdump spells differently on purpose, ours -> objdump's. Keep it small and say why.
 * - icebp: the table uses Intel's historical name for F1; binutils calls it int1.
 * - sal: C0-D3 /6, which AMD documents as SAL (an alias of SHL /4); binutils prints shl.
 */
const ALIASES: Record<string, string> = { icebp: 'int1', sal: 'shl' };

/**
 * Encodings not compared, each for a reason:
 * - F3 0F BC/BD are BSF/BSR on a P6; objdump (like the modern host) reads TZCNT/LZCNT.
 * - D6 (SALC) is undocumented; binutils does not decode it.
 * - BSWAP with a 16-bit operand size is undefined (Intel SDM); the table says Zd, objdump shows
 *   the 16-bit register.
 * - 0F 19-0F 1E are hint NOPs on a P6; objdump reads the MPX instructions (bndldx, bndmov, ...)
 *   that later CPUs put there.
 */
function skipEncoding(bytes: number[], name: string, mode: 0 | 1): boolean {
  const k = bytes.findIndex((b) => b === 0x0f);
  if (k > 0 && bytes.slice(0, k).includes(0xf3) && (bytes[k + 1] === 0xbc || bytes[k + 1] === 0xbd)) return true;
  if (name === 'salc') return true;
  if (k >= 0 && bytes[k + 1] >= 0x19 && bytes[k + 1] <= 0x1e) return true;
  if (name === 'bswap' && (mode === 0) !== bytes.includes(0x66)) return true;
  return false;
}

/**
 * objdump does not wrap branch targets to 16 bits in 16-bit code (it prints 0xffffff85 for a
 * backward short jump near 0), where the CPU wraps IP: compare objdump's target modulo 64 KiB.
 */
function wrap16Target(text: string): string {
  return text.replace(/0x([0-9a-f]+)$/, (_m, h: string) => '0x' + (parseInt(h, 16) & 0xffff).toString(16));
}

// ---------------------------------------------------------------- a core that only decodes

const BASE = 0x10000;
function decoderCpu(mode: 0 | 1): { cpu: Cpu; mem: PhysMem } {
  const mem = new PhysMem(0x100000);
  const cpu = new Cpu({ mem });
  cpu.cr0 = 0x11; // PE, no paging
  cpu.updateMode();
  cpu.loadSegCache(CS, 0x8, 0, 0xffffffff, mode ? 0xc09b : 0x809b);
  return { cpu, mem };
}

// ---------------------------------------------------------------- encodings from the table

let seed = 0x2545f491;
function rnd(): number { seed = (Math.imul(seed, 1103515245) + 12345) | 0; return (seed >>> 8) & 0xff; }
function le(v: number, n: number): number[] { const a: number[] = []; for (let k = 0; k < n; k++) a.push((v >>> (8 * k)) & 0xff); return a; }

interface Leaf { key: number; def: PreparedDef; reg: number; rm: number; rep: number }

/** Every entry reachable in the table: plain, group members, rm3 members, REP variants. */
function leaves(): Leaf[] {
  const out: Leaf[] = [];
  const keys: number[] = [];
  for (let op = 0; op < 0x100; op++) if (op !== 0x0f) keys.push(op);
  for (let op = 0; op < 0x100; op++) keys.push(0x0f00 | op);
  for (const key of keys) {
    const p = prepared(key);
    if (p === undefined) continue;
    if (p.group) {
      p.group.forEach((g, reg) => {
        if (!g) return;
        if (hasHandler(g.src) || !g.rm3) out.push({ key, def: g, reg, rm: -1, rep: 0 });
        g.rm3?.forEach((r, rm) => { if (r) out.push({ key, def: r, reg, rm, rep: 0 }); });
        if (g.repVariant) out.push({ key, def: g.repVariant, reg, rm: -1, rep: 1 });
      });
    } else {
      out.push({ key, def: p, reg: -1, rm: -1, rep: 0 });
      if (p.repVariant) out.push({ key, def: p.repVariant, reg: -1, rm: -1, rep: 1 });
    }
  }
  return out;
}
function hasHandler(d: OpDef): boolean { return !!(d.exec || d.execM || d.execR); }

function tokens(d: OpDef): string[] { return d.ops ? d.ops.split(',').map((t) => t.trim()) : []; }

/** ModRM(+SIB+disp) tails for memory forms: [bytes, 16-bit addressing]. */
function memForms(reg: number, adsz16: boolean): number[][] {
  const m = (mod: number, rm: number) => (mod << 6) | (reg << 3) | rm;
  if (adsz16) {
    return [
      [m(0, 0)], [m(0, 6), ...le(0x1234, 2)], [m(1, 7), 0xf0], [m(2, 2), ...le(0x8010, 2)], [m(1, 6), 0x00], [m(2, 4), ...le(0x0100, 2)],
    ];
  }
  return [
    [m(0, 3)], [m(0, 5), ...le(0x12345678, 4)], [m(1, 6), 0xf0], [m(1, 0), 0x00], [m(2, 7), ...le(0x00001000, 4)], [m(2, 1), ...le(-0x20, 4)],
    [m(0, 4), 0x24], // [esp]
    [m(1, 4), (2 << 6) | (6 << 3) | 3, 0x10], // [ebx+esi*4+0x10]
    [m(0, 4), (3 << 6) | (1 << 3) | 5, ...le(0x2000, 4)], // [ecx*8+0x2000]
    [m(0, 4), (0 << 6) | (4 << 3) | 0], // [eax+eiz*1]
    [m(2, 4), (0 << 6) | (5 << 3) | 4, ...le(-8, 4)], // [esp+ebp*1-0x8]
    [m(0, 4), (1 << 6) | (7 << 3) | 5, ...le(0, 4)], // [edi*2+0x0]
  ];
}

function immBytes(t: string, opsz: number, adsz: number): number[] {
  switch (t) {
    case 'Ib': case 'Ibs': case 'Jb': return [rnd()];
    case 'Iw': return [rnd(), rnd()];
    case 'Iz': case 'Iv': case 'Jz': case 'Jv': return opsz === 4 ? [rnd(), rnd(), rnd(), rnd()] : [rnd(), rnd()];
    case 'Id': return [rnd(), rnd(), rnd(), rnd()];
    case 'Ap': return [...(opsz === 4 ? [rnd(), rnd(), rnd(), rnd()] : [rnd(), rnd()]), rnd(), rnd()];
    case 'Ob': case 'Ov': case 'Ow': case 'Od': return adsz === 4 ? [rnd(), rnd(), rnd(), rnd()] : [rnd(), rnd()];
    default: return [];
  }
}

const SIZED = /^(E|G|M|R|Z|I|J|X|Y)(v|z|p|a|bs)$|^Jz$|^Iz$|^e[A-Z]{2}$|^Ap$/;
const STRING = /^(movs|cmps|stos|lods|scas|ins|outs)[bwd]?$/;

/** The encodings of one leaf in code of `mode` (1: 32-bit, 0: 16-bit). */
function encodings(l: Leaf, mode: 0 | 1): number[][] {
  const d = l.def.src;
  const t = tokens(d);
  const opBytes = l.key >= 0x0f00 ? [0x0f, l.key & 0xff] : [l.key];
  // the operand-size prefix is generated where it changes the operands or the mnemonic
  // (byte string ops have even opcodes: a prefix there would be shown as data16)
  const sizeDependent = t.some((x) => SIZED.test(x))
    || (t.length === 0 && /^(cbw|cwde|cwd|cdq|pusha|popa|pushf|popf|iret|ret|retf)[dw]?$/.test(d.name))
    || (t.length === 0 && STRING.test(d.name) && (l.key & 1) === 1);
  const out: number[][] = [];
  const osVariants: number[][] = sizeDependent ? [[], [0x66]] : [[]];
  const repPrefix = l.rep ? [0xf3] : [];
  const repVariants: number[][] = STRING.test(d.name) ? [[], [0xf3], [0xf2]] : [repPrefix];
  // a segment override matters to X (DS:eSI) and moffs operands; in string ops given without
  // operand specs, to those that read DS:eSI
  const usesX = t.some((x) => /^X[a-z]$|^O[a-z]$/.test(x)) || (t.length === 0 && /^(movs|cmps|lods|outs)[bwd]?$/.test(d.name));

  for (const os of osVariants) {
    const opsz = (os.length ? 2 : 4) === 4 ? (mode ? 4 : 2) : (mode ? 2 : 4);
    for (const rp of repVariants) {
      const pre = [...rp, ...os];
      const imms = (adsz: number) => t.flatMap((x) => immBytes(x, opsz, adsz));
      if (!l.def.modrm) {
        const adsz = mode ? 4 : 2;
        out.push([...pre, ...opBytes, ...imms(adsz)]);
        if (usesX) out.push([0x26, ...pre, ...opBytes, ...imms(adsz)]);
        continue;
      }
      const regs = l.reg >= 0 ? [l.reg] : regChoices(t);
      // register forms
      if (!d.memOnly) {
        for (const reg of regs) {
          const rms = l.rm >= 0 ? [l.rm] : [0, 3, 6];
          for (const rm of rms) out.push([...pre, ...opBytes, 0xc0 | (reg << 3) | rm, ...imms(4)]);
        }
      }
      // memory forms (not for an rm3 member: those exist only with mod = 3; not where the
      // mod bits are ignored (MOV CRn), which objdump shows with the unused prefixes named)
      if (!d.regOnly && !d.modIgnored && l.rm < 0) {
        const reg = regs[regs.length - 1];
        const ad32 = mode === 1;
        for (const tail of memForms(reg, !ad32)) out.push([...pre, ...opBytes, ...tail, ...imms(ad32 ? 4 : 2)]);
        for (const tail of memForms(reg, ad32).slice(0, 3)) out.push([0x67, ...pre, ...opBytes, ...tail, ...imms(ad32 ? 2 : 4)]);
        out.push([0x64, ...pre, ...opBytes, ...memForms(reg, !ad32)[2], ...imms(ad32 ? 4 : 2)]);
      }
    }
  }
  return out.filter((b) => !skipEncoding(b, d.name, mode));
}

/** ModRM.reg values worth trying for a non-group entry, by what its reg field names. */
function regChoices(t: string[]): number[] {
  if (t.includes('Sw')) return [0, 3, 5];
  if (t.includes('Cd')) return [0, 2, 3, 4];
  if (t.includes('Dd')) return [0, 3, 7];
  return [0, 2, 7];
}

// ---------------------------------------------------------------- objdump

interface Line { len: number; text: string }

function objdump(bin: Uint8Array, mode: 0 | 1): Map<number, Line> {
  const dir = mkdtempSync(join(tmpdir(), 'disasm-'));
  try {
    const f = join(dir, 'code.bin');
    writeFileSync(f, bin);
    const r = spawnSync('objdump', ['-D', '-b', 'binary', mode ? '-mi386' : '-mi8086', '-M', 'intel', f], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) throw new Error(`objdump failed: ${r.stderr}`);
    const out = new Map<number, Line>();
    let last: Line | undefined;
    for (const line of r.stdout.split('\n')) {
      const m = /^\s*([0-9a-f]+):\t([0-9a-f ]+?)\s*(?:\t(.*))?$/.exec(line);
      if (!m) continue;
      const n = m[2].trim().split(/\s+/).length;
      if (m[3] === undefined) { if (last) last.len += n; continue; } // continuation of the bytes column
      last = { len: n, text: m[3] };
      out.set(parseInt(m[1], 16), last);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

/** Our text with the mnemonic replaced by objdump's where ALIASES says so. */
function aliased(i: Insn, bytes: Uint8Array, eip: number): string {
  const p = disasmParts(i, bytes, eip);
  const mn = ALIASES[p.mnemonic] ?? p.mnemonic;
  return `${p.prefix ? p.prefix + ' ' : ''}${mn} ${p.operands.join(',')}`;
}

interface Outcome { compared: number; entries: number; mismatches: string[] }

function compareMode(mode: 0 | 1): Outcome {
  const slots: { bytes: number[]; leaf: Leaf }[] = [];
  const ls = leaves();
  for (const l of ls) for (const b of encodings(l, mode)) slots.push({ bytes: b, leaf: l });
  const SLOT = 16;
  const bin = new Uint8Array(slots.length * SLOT).fill(0x90);
  slots.forEach((s, k) => bin.set(s.bytes, k * SLOT));
  const ref = objdump(bin, mode);
  const { cpu, mem } = decoderCpu(mode);
  const mismatches: string[] = [];
  for (let k = 0; k < slots.length; k++) {
    const s = slots[k];
    const off = k * SLOT;
    mem.writeBytes(BASE, bin.subarray(off, off + SLOT));
    cpu.code.pages.fill(undefined);
    const insn: Insn = decode(cpu, BASE);
    const bytes = bin.subarray(off, off + insn.len);
    const ours = norm(aliased(insn, bytes, off));
    const theirs = ref.get(off);
    let want = theirs ? norm(theirs.text) : '(none)';
    if (mode === 0 && tokens(s.leaf.def.src).some((x) => x.startsWith('J'))) want = wrap16Target(want);
    if (!theirs || theirs.len !== insn.len || want !== ours) {
      mismatches.push(`${mode ? 'i386' : 'i8086'} [${hexBytes(s.bytes)}] (${s.leaf.def.src.name} ${s.leaf.def.src.ops ?? ''}): ours "${ours}" (${insn.len} bytes), objdump "${want}" (${theirs?.len ?? 0} bytes)`);
    }
  }
  return { compared: slots.length, entries: ls.length, mismatches };
}

// ---------------------------------------------------------------- tests

suite('disassembler vs objdump', () => {
  it('objdump is present (CI requires it)', () => {
    expect(haveObjdump).toBe(true);
  });

  it.each([[1, 'i386'], [0, 'i8086']] as const)('every table entry disassembles as objdump does (%s code)', (mode, _name) => {
    const r = compareMode(mode);
    if (process.env.DISASM_ALL) console.log(`${r.entries} entries, ${r.compared} encodings\n${r.mismatches.join('\n')}`); // DISASM_ALL=1 lists every mismatch
    expect(r.entries).toBeGreaterThan(100);
    expect(r.compared).toBeGreaterThan(1000);
    expect(r.mismatches.slice(0, 40)).toEqual([]);
  });
});

describe('disassembler details', () => {
  const { cpu, mem } = decoderCpu(1);
  function dis(bytes: number[], eip = 0x1000): string {
    mem.writeBytes(BASE, Uint8Array.from([...bytes, 0x90, 0x90, 0x90, 0x90]));
    cpu.code.pages.fill(undefined);
    const i = decode(cpu, BASE);
    return disassemble(i, bytes.slice(0, i.len), eip);
  }

  it('resolves branch targets to absolute addresses', () => {
    expect(dis([0xeb, 0xfe], 0x8048000)).toBe('jmp    0x8048000');
    expect(dis([0xe8, 0x10, 0, 0, 0], 0x1000)).toBe('call   0x1015');
    expect(dis([0x0f, 0x85, 0xfa, 0xff, 0xff, 0xff], 0x2000)).toBe('jne    0x2000');
  });

  it('writes memory operands with size, segment, base, index, scale and displacement', () => {
    expect(dis([0x64, 0x8b, 0x44, 0xb3, 0x10])).toBe('mov    eax,DWORD PTR fs:[ebx+esi*4+0x10]');
    expect(dis([0x88, 0x45, 0xf8])).toBe('mov    BYTE PTR [ebp-0x8],al');
    expect(dis([0x8b, 0x0d, 0x78, 0x56, 0x34, 0x12])).toBe('mov    ecx,DWORD PTR ds:0x12345678');
    expect(dis([0x67, 0x66, 0x8b, 0x40, 0x02])).toBe('mov    ax,WORD PTR [bx+si+0x2]');
  });

  it('writes immediates in hex at their operand size', () => {
    expect(dis([0x83, 0xc0, 0xff])).toBe('add    eax,0xffffffff');
    expect(dis([0x66, 0x83, 0xc0, 0xff])).toBe('add    ax,0xffff');
    expect(dis([0xb0, 0x7f])).toBe('mov    al,0x7f');
  });

  it('names an opcode with no table entry (bad), as objdump does', () => {
    const i = (() => { mem.writeBytes(BASE, Uint8Array.from([0x0f, 0x04, 0x90])); cpu.code.pages.fill(undefined); return decode(cpu, BASE); })();
    expect(disasmParts(i).mnemonic).toBe('(bad)');
  });
});
