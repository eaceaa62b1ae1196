/**
 * Specialised handlers, generated from small templates: one JavaScript function per
 * (operation, form) instead of one shared handler that switches on the operation and operand
 * size. Each generated function is a separate function literal to V8, so it gets its own type
 * feedback and compiles to straight-line code (DESIGN.md: "generating JavaScript ... lets V8
 * compile guest code to machine code"; this is the per-instruction step of that).
 *
 * The bodies use only the Cpu's public fields and methods (they are compiled with `new Function`
 * and see no module scope). Semantics are those of the generic handlers in alu.ts and
 * control.ts, which the differential tests check for both paths: the generic handlers still run
 * for 16-bit operand size, ADC/SBB, and forms without a specialisation.
 */
import type { Handler } from '../insn.ts';

function gen(name: string, body: string): Handler {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  const f = new Function('cpu', 'i', body) as Handler;
  Object.defineProperty(f, 'name', { value: name });
  return f;
}

/** Operation -> [expression of a and b, lazy-flag op] for the ALU ops we specialise (see flags.ts OP_*). */
const ALU: Record<number, [string, number, string]> = {
  0: ['(a + b) | 0', 0, 'add'],
  1: ['a | b', 4, 'or'],
  4: ['a & b', 4, 'and'],
  5: ['(a - b) | 0', 2, 'sub'],
  6: ['a ^ b', 4, 'xor'],
  7: ['(a - b) | 0', 2, 'cmp'],
};

const flags = (lf: number) => `cpu.lfOp = ${lf}; cpu.lfSz = 2; cpu.lfA = a; cpu.lfB = b; cpu.lfRes = r; cpu.lazy = 0x8d5;`;

/** The ALU forms: EG (Ev,Gv), GE (Gv,Ev), EI (Ev,imm), AI (eAX,Iz). */
export type AluForm = 'EG' | 'GE' | 'EI' | 'AI';

/** 32-bit specialisations of ALU op `op` in `form`, or undefined when op is not specialised (ADC, SBB). */
export function aluFast32(op: number, form: AluForm): { r?: Handler; m?: Handler } | undefined {
  const spec = ALU[op];
  if (spec === undefined) return undefined;
  const [expr, lf, name] = spec;
  const cmp = op === 7;
  const f = flags(lf);
  const n = `${name}32_${form}`;
  switch (form) {
    case 'EG':
      return {
        r: gen(n + '_r', `const a = cpu.r[i.rm], b = cpu.r[i.reg]; const r = ${expr}; ${f} ${cmp ? '' : 'cpu.r[i.rm] = r;'}`),
        m: gen(n + '_m', `const off = cpu.ea(i); ${cmp ? '' : 'cpu.checkRmw(i.seg, off, 4);'} const a = cpu.rd32(i.seg, off), b = cpu.r[i.reg]; const r = ${expr}; ${f} ${cmp ? '' : 'cpu.wr32(i.seg, off, r);'}`),
      };
    case 'GE':
      return {
        r: gen(n + '_r', `const a = cpu.r[i.reg], b = cpu.r[i.rm]; const r = ${expr}; ${f} ${cmp ? '' : 'cpu.r[i.reg] = r;'}`),
        m: gen(n + '_m', `const a = cpu.r[i.reg], b = cpu.rd32(i.seg, cpu.ea(i)); const r = ${expr}; ${f} ${cmp ? '' : 'cpu.r[i.reg] = r;'}`),
      };
    case 'EI':
      return {
        r: gen(n + '_r', `const a = cpu.r[i.rm], b = i.imm; const r = ${expr}; ${f} ${cmp ? '' : 'cpu.r[i.rm] = r;'}`),
        m: gen(n + '_m', `const off = cpu.ea(i); ${cmp ? '' : 'cpu.checkRmw(i.seg, off, 4);'} const a = cpu.rd32(i.seg, off), b = i.imm; const r = ${expr}; ${f} ${cmp ? '' : 'cpu.wr32(i.seg, off, r);'}`),
      };
    case 'AI':
      return { r: gen(n, `const a = cpu.r[0], b = i.imm; const r = ${expr}; ${f} ${cmp ? '' : 'cpu.r[0] = r;'}`) };
  }
}

/** Conditions 0-15 as expressions over the Cpu's flag readers (the even one; odd negates). */
const COND = [
  'cpu.of()', 'cpu.getCF() !== 0', 'cpu.zf()', '(cpu.getCF() !== 0 || cpu.zf())',
  'cpu.sf()', 'cpu.pf()', '(cpu.sf() !== cpu.of())', '(cpu.zf() || cpu.sf() !== cpu.of())',
];

/** A Jcc handler for condition `cc` (relative target in i.imm). */
export function jccFast(cc: number, name: string): Handler {
  const c = COND[cc >> 1];
  return gen(name, `if (${cc & 1 ? '!' : ''}(${c})) cpu.jumpNear(cpu.eip + i.imm);`);
}
