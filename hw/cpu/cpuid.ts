/**
 * CPUID: an AMD family-6 (K7-era) signature that advertises only what the core implements.
 * The table is configurable per core (a VMM or an experiment can change leaves).
 */

export type CpuidLeaf = readonly [eax: number, ebx: number, ecx: number, edx: number];
export type CpuidTable = Map<number, CpuidLeaf>;

function str4(s: string, i: number): number {
  return (s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24)) >>> 0;
}

/** Leaf 1 EDX feature bits this core implements (FEAT_APIC is added by a machine that wires a local APIC). */
export const FEAT_PSE = 1 << 3, FEAT_TSC = 1 << 4, FEAT_MSR = 1 << 5, FEAT_PAE = 1 << 6, FEAT_CX8 = 1 << 8,
  FEAT_APIC = 1 << 9, FEAT_SEP = 1 << 11, FEAT_PGE = 1 << 13, FEAT_CMOV = 1 << 15, FEAT_PAT = 1 << 16;
/** Extended leaf 0x80000001 EDX: NX. */
export const EXT_NX = 1 << 20;

/** Family 6, model 6, stepping 3 (an Athlon-class signature). */
export const SIGNATURE = 0x00000663;

export function defaultCpuid(): CpuidTable {
  const vendor = 'AuthenticAMD';
  const brand = 'v3vee-ts emulated i686 (P6 class)'.padEnd(48, '\0');
  const t: CpuidTable = new Map();
  t.set(0, [1, str4(vendor, 0), str4(vendor, 8), str4(vendor, 4)]);
  const edx = FEAT_PSE | FEAT_TSC | FEAT_MSR | FEAT_PAE | FEAT_CX8 | FEAT_SEP | FEAT_PGE | FEAT_CMOV | FEAT_PAT;
  t.set(1, [SIGNATURE, 0, 0, edx >>> 0]);
  t.set(0x80000000, [0x80000004, str4(vendor, 0), str4(vendor, 8), str4(vendor, 4)]);
  t.set(0x80000001, [SIGNATURE, 0, 0, (edx | EXT_NX) >>> 0]);
  for (let k = 0; k < 3; k++) {
    const o = k * 16;
    t.set(0x80000002 + k, [str4(brand, o), str4(brand, o + 4), str4(brand, o + 8), str4(brand, o + 12)]);
  }
  return t;
}

/** CPUID as the instruction sees it: unknown leaves above the maximum return the highest basic leaf (as Intel) or zeros (AMD: zeros). */
export function cpuidLookup(t: CpuidTable, leaf: number): CpuidLeaf {
  return t.get(leaf >>> 0) ?? [0, 0, 0, 0];
}
