/**
 * The disassembler: a decoded Insn (plus its bytes) as Intel-syntax text in the style of GNU
 * objdump (`objdump -M intel`), which is also what `--trace insn` prints.
 *
 * Everything comes from the opcode table: the mnemonic is OpDef.name and the operands are
 * rendered from the operand spec tokens of OpDef.ops (see insn.ts):
 *
 *   E G R Z + size  registers by size (al.. / ax.. / eax..), or a memory operand for E/M
 *   M + size        memory operand: `DWORD PTR fs:[ebx+esi*4+0x10]`, `ds:0x1234` when absolute
 *   Cd Dd Sw        cr0.., dr0.., es..gs
 *   I*              immediates in hex, masked to their operand size
 *   J*              branch targets resolved to absolute addresses
 *   Ap              far pointer `0x10:0x1000`;  O*  moffs `ds:0x1234`
 *   X* Y*           string operands `ds:[esi]` / `es:[edi]`
 *   AL eAX DX 1 ... fixed operands (eAX and friends follow the operand size)
 *
 * A few mnemonics change with the operand or address size as objdump prints them (cbw/cwde,
 * pusha/pushaw, jcxz/jecxz, lgdtd ...); those rules are the small tables below. Nothing here
 * runs on the untraced path.
 */
import type { Insn, OpDef } from './insn.ts';
import { SEG_NAMES, ZERO_REG } from './insn.ts';
import { prepared, type PreparedDef } from './optable.ts';

export const REG8 = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'] as const;
export const REG16 = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'] as const;
export const REG32 = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'] as const;

const PTR: Record<number, string> = { 1: 'BYTE PTR ', 2: 'WORD PTR ', 4: 'DWORD PTR ', 6: 'FWORD PTR ', 8: 'QWORD PTR ', 10: 'TBYTE PTR ' };

/** Prefix bytes the decoder accepts. */
const PREFIXES = new Set([0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65]);

/** Mnemonics objdump spells by operand size: [16-bit, 32-bit]. Keys include the sized spellings. */
const BY_OPSZ: Record<string, readonly [string, string]> = {
  cbw: ['cbw', 'cwde'], cwde: ['cbw', 'cwde'],
  cwd: ['cwd', 'cdq'], cdq: ['cwd', 'cdq'],
};
/** Mnemonics objdump spells by address size: [16-bit, 32-bit]. */
const BY_ADSZ: Record<string, readonly [string, string]> = {
  jcxz: ['jcxz', 'jecxz'], jecxz: ['jcxz', 'jecxz'],
};
/**
 * Mnemonics that get a size suffix (w/d) when the operand size is not the code segment's default
 * (pushaw in 32-bit code, pushad in 16-bit code). The value is the base spelling; `imm` marks
 * those suffixed only in their immediate / relative-branch forms (push imm, jmp rel, call rel).
 */
const SUFFIX_NONDEFAULT: Record<string, { base: string; only?: 'imm' | 'rel' }> = {
  pusha: { base: 'pusha' }, pushad: { base: 'pusha' }, pushaw: { base: 'pusha' },
  popa: { base: 'popa' }, popad: { base: 'popa' }, popaw: { base: 'popa' },
  pushf: { base: 'pushf' }, pushfd: { base: 'pushf' }, pushfw: { base: 'pushf' },
  popf: { base: 'popf' }, popfd: { base: 'popf' }, popfw: { base: 'popf' },
  iret: { base: 'iret' }, iretd: { base: 'iret' }, iretw: { base: 'iret' },
  ret: { base: 'ret' }, retn: { base: 'ret' }, retf: { base: 'retf' },
  push: { base: 'push', only: 'imm' },
  jmp: { base: 'jmp', only: 'rel' }, call: { base: 'call', only: 'rel' },
};
/** Far transfers: Intel syntax writes them as call/jmp with a far operand (Ap, Mp). */
const FAR_NAMES: Record<string, string> = { callf: 'call', jmpf: 'jmp', lcall: 'call', ljmp: 'jmp' };
/** Mnemonics objdump always suffixes with the operand size (lgdtd / lgdtw). */
const SUFFIX_ALWAYS = new Set(['lgdt', 'sgdt', 'lidt', 'sidt']);
/** Mnemonics whose 16-bit register operand objdump widens to the operand size (mov eax,es; sldt eax). */
const WIDE_REG_FORM = new Set(['sldt', 'str', 'smsw', 'lar', 'lsl']);
/** String instructions: operand templates when the table gives none (`movsd` with no ops). */
const STRING_OPS: Record<string, string> = {
  movs: 'Y,X', cmps: 'X,Y', stos: 'Y,A', lods: 'A,X', scas: 'A,Y', ins: 'Y,DX', outs: 'DX,X',
};
const REP_Z = new Set(['cmps', 'scas']);
const STRING_RE = /^(movs|cmps|stos|lods|scas|ins|outs)[bwd]?$/;

/** The parts of one disassembled instruction. */
export interface DisasmParts {
  /** Prefixes objdump prints as words (lock, rep, repz, repnz), space separated, or ''. */
  prefix: string;
  mnemonic: string;
  operands: string[];
}

const tokenCache = new Map<OpDef, readonly string[]>();
function tokensOf(def: OpDef): readonly string[] {
  let t = tokenCache.get(def);
  if (t === undefined) {
    t = def.ops ? def.ops.split(',').map((s) => s.trim()).filter((s) => s.length > 0) : [];
    tokenCache.set(def, t);
  }
  return t;
}

const hex = (v: number): string => '0x' + (v >>> 0).toString(16);

/** Operand size in bytes named by a size letter (0 when it names none). */
function sizeOf(letter: string, i: Insn): number {
  switch (letter) {
    case 'b': return 1;
    case 'w': return 2;
    case 'd': return 4;
    case 'v': case 'z': return i.opsz;
    case 'q': return 8;
    case 'p': return i.opsz + 2;
    case 'a': return i.opsz * 2;
    default: return 0;
  }
}

function regName(n: number, size: number): string {
  if (size === 1) return REG8[n & 7];
  if (size === 2) return REG16[n & 7];
  return REG32[n & 7];
}

/** Where the ModRM byte is in `bytes` (after prefixes and the opcode), or -1. */
function modrmPos(bytes: ArrayLike<number>, i: Insn): number {
  let p = 0;
  while (p < bytes.length && PREFIXES.has(bytes[p])) p++;
  p += i.opcode >= 0x0f00 ? 2 : 1;
  return p < bytes.length ? p : -1;
}

/** The memory operand's address part: `[ebx+esi*4+0x10]`, `fs:[eax]`, `ds:0x1234`. */
function address(i: Insn, bytes: ArrayLike<number> | undefined): string {
  const seg = i.segOverride >= 0 ? SEG_NAMES[i.segOverride] + ':' : '';
  const names = i.adsz === 2 ? REG16 : REG32;
  const parts: string[] = [];
  if (i.base !== ZERO_REG) parts.push(names[i.base]);
  if (i.index !== ZERO_REG) parts.push(`${names[i.index]}${i.adsz === 4 ? '*' + (1 << i.scale) : ''}`);
  else if (i.adsz === 4 && i.mod !== 3 && i.rm === 4 && bytes !== undefined) {
    // a SIB byte with no index: objdump shows it as eiz unless it is the plain [esp] form
    const p = modrmPos(bytes, i);
    if (p >= 0 && p + 1 < bytes.length) {
      const sib = bytes[p + 1];
      if ((sib & 7) !== 4 || (sib >>> 6) !== 0) parts.push('eiz*' + (1 << (sib >>> 6)));
    }
  }
  const disp = i.adsz === 2 ? (i.disp << 16) >> 16 : i.disp | 0;
  if (parts.length === 0) {
    // absolute: no brackets, the segment is always named
    const abs = i.adsz === 2 ? i.disp & 0xffff : i.disp >>> 0;
    return (seg || 'ds:') + hex(abs);
  }
  let s = parts.join('+');
  const hasDisp = i.mod === 1 || i.mod === 2 || (i.base === ZERO_REG && i.adsz === 4) || (i.adsz === 4 && i.mod === 0 && i.rm === 4 && bytes !== undefined && baseFieldIs5(bytes, i));
  if (hasDisp) s += disp < 0 ? '-' + hex(-disp) : '+' + hex(disp);
  return `${seg}[${s}]`;
}

function baseFieldIs5(bytes: ArrayLike<number>, i: Insn): boolean {
  const p = modrmPos(bytes, i);
  return p >= 0 && p + 1 < bytes.length && (bytes[p + 1] & 7) === 5;
}

function memOperand(i: Insn, size: number, bytes: ArrayLike<number> | undefined): string {
  return (PTR[size] ?? '') + address(i, bytes);
}

/** A string operand: `DWORD PTR ds:[esi]` (X, override allowed) or `es:[edi]` (Y, never overridden). */
function stringOperand(i: Insn, which: 'X' | 'Y', size: number): string {
  const names = i.adsz === 2 ? REG16 : REG32;
  const seg = which === 'Y' ? 'es' : i.segOverride >= 0 ? SEG_NAMES[i.segOverride] : 'ds';
  return `${PTR[size] ?? ''}${seg}:[${which === 'Y' ? names[7] : names[6]}]`;
}

/** Walks the prepared table as the decoder did, to find whether a REP prefix chose a variant. */
function repConsumed(i: Insn): boolean {
  let p: PreparedDef | undefined = prepared(i.opcode);
  if (p === undefined) return false;
  if (p.group) {
    p = p.group[i.reg];
    if (p !== undefined && i.mod === 3 && p.rm3) p = p.rm3[i.rm];
  }
  return p?.repVariant !== undefined && p.repVariant.src === i.def;
}

/** Renders one operand token. `k` counts immediates consumed so far (imm, then imm2). */
function operand(t: string, i: Insn, eip: number, bytes: ArrayLike<number> | undefined, st: { k: number; wide: boolean }): string {
  const c = t.charAt(0);
  const rest = t.slice(1);
  const lowerRest = rest.length === 0 || /^[a-z]+$/.test(rest);
  if (lowerRest) {
    switch (c) {
      case 'E': {
        const size = sizeOf(rest, i);
        if (i.mod === 3) return regName(i.rm, st.wide && size === 2 ? i.opsz : size);
        return memOperand(i, size, bytes);
      }
      case 'M': {
        if (i.mod === 3) return regName(i.rm, sizeOf(rest, i) || i.opsz);
        return memOperand(i, rest === 's' ? 0 : sizeOf(rest, i), bytes);
      }
      case 'G': return regName(i.reg, sizeOf(rest, i));
      case 'R': return regName(i.rm, sizeOf(rest, i) || 4);
      case 'Z': return regName(i.opcode & 7, sizeOf(rest, i));
      case 'C': if (rest.length > 0) return 'cr' + i.reg; break;
      case 'D': if (rest.length > 0) return 'dr' + i.reg; break;
      case 'S': if (rest.length > 0) return i.reg < 6 ? SEG_NAMES[i.reg] : '?'; break;
      case 'X': if (rest.length > 0) return stringOperand(i, 'X', sizeOf(rest, i)); break;
      case 'Y': if (rest.length > 0) return stringOperand(i, 'Y', sizeOf(rest, i)); break;
      case 'I': {
        const v = st.k++ === 0 ? i.imm : i.imm2;
        switch (rest) {
          case 'b': return hex(v & 0xff);
          case 'bs': case 'z': case 'v': return hex(i.opsz === 2 ? v & 0xffff : v);
          case 'w': return hex(v & 0xffff);
          case 'd': return hex(v);
          default: return hex(v);
        }
      }
      case 'J': {
        st.k++;
        const target = (eip + i.len + i.imm) | 0;
        return hex(i.opsz === 2 || i.mode === 0 ? target & 0xffff : target); // IP wraps in 16-bit code
      }
      case 'A': if (rest === 'p') { st.k += 2; return `${hex(i.imm2 & 0xffff)}:${hex(i.imm)}`; } break;
      case 'O': if (rest.length > 0) {
        const seg = i.segOverride >= 0 ? SEG_NAMES[i.segOverride] : 'ds';
        return `${seg}:${hex(i.adsz === 2 ? i.disp & 0xffff : i.disp)}`;
      } break;
    }
  }
  // fixed operands: eAX / rAX follow the operand size; anything else is shown as written
  if ((c === 'e' || c === 'r') && /^[A-Z]{2}$/.test(rest)) {
    const n = REG16.indexOf(rest.toLowerCase() as (typeof REG16)[number]);
    if (n >= 0) return regName(n, i.opsz);
  }
  if (t === 'A') return regName(0, (i.opcode & 1) === 0 ? 1 : i.opsz); // string templates below
  return t.toLowerCase();
}

function hasMemOperand(tokens: readonly string[]): boolean {
  return tokens.some((t) => /^[EM][a-z]*$/.test(t));
}

/** Disassembles into parts (see DisasmParts); `eip` is the instruction's offset in CS. */
export function disasmParts(i: Insn, bytes?: ArrayLike<number>, eip = 0): DisasmParts {
  const def = i.def;
  if (def === null) return { prefix: '', mnemonic: '(bad)', operands: [] };
  let name = def.name;
  let tokens = tokensOf(def);
  let stringBase = '';
  const sm = STRING_RE.exec(name);
  if (sm) {
    stringBase = sm[1];
    name = stringBase;
    if (tokens.length === 0) {
      const sz = (i.opcode & 1) === 0 ? 'b' : 'v';
      tokens = STRING_OPS[stringBase].split(',').map((x) => (x === 'X' || x === 'Y' ? x + sz : x));
    }
  } else if ((name === 'xlat' || name === 'xlatb') && tokens.length === 0) {
    name = 'xlat';
  }

  name = FAR_NAMES[name] ?? name;
  const st = { k: 0, wide: WIDE_REG_FORM.has(name) || tokens.includes('Sw') };
  const operands = tokens.map((t) => operand(t, i, eip, bytes, st));
  if (name === 'xlat' && operands.length === 0) {
    const seg = i.segOverride >= 0 ? SEG_NAMES[i.segOverride] : 'ds';
    operands.push(`BYTE PTR ${seg}:[${i.adsz === 2 ? 'bx' : 'ebx'}]`);
  }

  // mnemonics that depend on the operand or address size
  const defaultOpsz = i.mode ? 4 : 2;
  const bo = BY_OPSZ[name];
  const ba = BY_ADSZ[name];
  const sn = SUFFIX_NONDEFAULT[name];
  if (bo) name = bo[i.opsz === 4 ? 1 : 0];
  else if (ba) name = ba[i.adsz === 4 ? 1 : 0];
  else if (sn) {
    name = sn.base;
    const applies = sn.only === undefined
      || (sn.only === 'imm' && tokens.some((t) => t.startsWith('I')))
      || (sn.only === 'rel' && tokens.some((t) => t === 'Jz' || t === 'Jv'));
    if (applies && i.opsz !== defaultOpsz) name += i.opsz === 2 ? 'w' : 'd';
  } else if (SUFFIX_ALWAYS.has(name.replace(/[wd]$/, '')) && tokens.some((t) => t.startsWith('M'))) {
    name = name.replace(/[wd]$/, '') + (i.opsz === 2 ? 'w' : 'd');
  }
  if (name === 'invlpg' && i.mod !== 3 && operands.length === 1 && !operands[0].includes('PTR')) {
    operands[0] = 'BYTE PTR ' + operands[0];
  }

  const pre: string[] = [];
  // a 32-bit absolute address in 16-bit code: objdump names the prefix (not the other way round)
  if (i.adsz === 4 && i.mode === 0 && i.base === ZERO_REG && i.index === ZERO_REG && (i.mod !== 3 && hasMemOperand(tokens) || tokens.some((t) => t.charAt(0) === 'O'))) {
    pre.push('addr32');
  }
  if (i.lock) pre.push('lock');
  if (i.rep !== 0 && !repConsumed(i)) {
    // F2 is always repnz; F3 is rep on the string moves and repz elsewhere (objdump's spelling)
    if (i.rep === 2) pre.push('repnz');
    else pre.push(stringBase !== '' && !REP_Z.has(stringBase) ? 'rep' : 'repz');
  }
  return { prefix: pre.join(' '), mnemonic: name, operands };
}

/** One line of Intel-syntax text, spaced like objdump: `mov    eax,DWORD PTR [ebx+0x4]`. */
export function disassemble(i: Insn, bytes?: ArrayLike<number>, eip = 0): string {
  const p = disasmParts(i, bytes, eip);
  const head = p.prefix ? `${p.prefix} ${p.mnemonic}` : p.mnemonic;
  return p.operands.length === 0 ? head : `${head.padEnd(6)} ${p.operands.join(',')}`;
}

/** Bytes as objdump shows them: `8b 44 24 04`. */
export function hexBytes(bytes: ArrayLike<number>): string {
  let s = '';
  for (let k = 0; k < bytes.length; k++) s += (k ? ' ' : '') + (bytes[k] & 0xff).toString(16).padStart(2, '0');
  return s;
}
