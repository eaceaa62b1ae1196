/**
 * The cost table: every figure the simulation charges in cycles, in one place (DESIGN.md,
 * "Time and determinism" and "Cost model: starting points"). Each entry says where its number
 * comes from and whether it was measured or assumed; experiments print the table they used.
 *
 * The CPU charges `insn[class]` per executed instruction (classes are assigned by the opcode
 * table), plus the per-iteration and per-reference figures below. Host software (the LWK, the
 * VMM) charges its handler costs from the same table.
 */

export type CostSource = 'measured' | 'assumed';

export interface CostEntry {
  readonly cycles: number;
  readonly kind: CostSource;
  readonly source: string;
}

function c(cycles: number, kind: CostSource, source: string): CostEntry {
  return { cycles, kind, source };
}

const FOG = "Agner Fog, 'Instruction tables', Pentium II/III (P6) section";

/** Instruction classes: the opcode table tags every instruction with one of these. */
export const insnCosts = {
  simple: c(1, 'assumed', `${FOG}: most ALU/MOV/branch ops have reciprocal throughput ~1`),
  load: c(1, 'assumed', `${FOG}: load with L1 hit, pipelined`),
  store: c(1, 'assumed', `${FOG}: store, pipelined`),
  branch: c(1, 'assumed', `${FOG}: predicted branch; no branch predictor is modelled`),
  stack: c(1, 'assumed', `${FOG}: PUSH/POP ~1`),
  mul: c(4, 'assumed', `${FOG}: IMUL r32 latency 4`),
  div: c(39, 'assumed', `${FOG}: DIV r32 latency 39`),
  bitscan: c(2, 'assumed', `${FOG}: BSF/BSR ~2`),
  shiftCl: c(2, 'assumed', `${FOG}: shift by CL 2 uops`),
  string: c(3, 'assumed', `${FOG}: MOVS/STOS/LODS/CMPS/SCAS setup`),
  locked: c(20, 'assumed', `${FOG}: LOCK-prefixed or XCHG with memory ~20 (bus lock)`),
  farTransfer: c(30, 'assumed', `${FOG}: far CALL/JMP/RET, IRET ~20-40`),
  segLoad: c(8, 'assumed', `${FOG}: MOV Sreg ~8 in protected mode`),
  intn: c(40, 'assumed', `${FOG}: INT n / exception delivery in protected mode ~30-50`),
  taskSwitch: c(300, 'assumed', 'P6 hardware task switch, several hundred cycles (Intel SDM timing notes)'),
  system: c(20, 'assumed', `${FOG}: LGDT/LIDT/MOV CRn/INVLPG tens of cycles`),
  serializing: c(30, 'assumed', `${FOG}: CPUID ~30-100 on P6`),
  io: c(100, 'assumed', 'ISA port I/O ~1 us bus cycle, far above a core instruction; refined per device'),
  msr: c(40, 'assumed', `${FOG}: RDMSR/WRMSR ~30-60`),
  rdtsc: c(30, 'assumed', `${FOG}: RDTSC ~30 on P6`),
  halt: c(1, 'assumed', 'HLT retires then the core idles; idle time is jumped over by the machine'),
} as const satisfies Record<string, CostEntry>;

export type InsnClass = keyof typeof insnCosts;

/** Per-iteration and per-reference figures charged on top of the instruction class. */
export const extraCosts = {
  stringIteration: c(1, 'assumed', `${FOG}: REP MOVS/STOS ~1 cycle per element for small counts`),
  stackAccess: c(1, 'assumed', `${FOG}: one load or store per cycle; charged for each stack access of PUSHA/POPA/ENTER beyond the first`),
  walkRef: c(5, 'assumed', 'page-walk memory reference hitting the data cache (DESIGN.md cost model: a few cycles)'),
  tlbMissBase: c(2, 'assumed', 'fixed TLB-miss overhead before the walk starts (page-miss handler start-up)'),
  exception: c(40, 'assumed', `${FOG}: exception delivery through an interrupt gate`),
  tripleFault: c(0, 'assumed', 'shutdown: the core stops'),
  vmrun: c(675, 'measured', 'half of the ~1,350-cycle VMRUN+#VMEXIT round trip measured around VMRUN on a modern AMD CPU under KVM (LKML, December 2020); split evenly, an assumption'),
  vmexit: c(675, 'measured', 'the other half of the ~1,350-cycle round trip (LKML, December 2020); split evenly, an assumption'),
} as const satisfies Record<string, CostEntry>;

/** A flat view of the instruction classes for the decoder (index = class id). */
export const insnClassNames = Object.keys(insnCosts) as InsnClass[];

export function insnClassCycles(cls: InsnClass): number {
  return insnCosts[cls].cycles;
}

/** The whole table as rows, for experiments to print which table they used. */
export function costTableRows(): { name: string; cycles: number; kind: CostSource; source: string }[] {
  const rows: { name: string; cycles: number; kind: CostSource; source: string }[] = [];
  for (const [k, v] of Object.entries(insnCosts)) rows.push({ name: `insn.${k}`, ...v });
  for (const [k, v] of Object.entries(extraCosts)) rows.push({ name: `extra.${k}`, ...v });
  return rows;
}
