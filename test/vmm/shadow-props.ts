// What the shadow-paging differential tests share (shadow.property, shadow-pae.property,
// shadow-edits.property; shadow.test and shadow-cache.test use `differential` too):
// - the strategies under test, and `differential`: one guest image run natively (NP off, the
//   guest's paging directly on the core: the reference) and under each strategy; every run must
//   end with status 0, with the reference's log (values read, and every #PF's CR2 and error
//   code, which PF_SKIP logs) and its final guest memory byte for byte (the accessed and dirty
//   bits in the guest's tables, the data written, the stacks);
// - INTERPRETER, a guest that runs a list of ops (at OPS) that setup code writes with `startOps`,
//   and the random parts the property tests build their cases from.
import fc from 'fast-check';
import { expect } from 'vitest';
import { shadowCacheFactory } from '../../vmm/paging/shadow-cache.ts';
import { shadowFactory } from '../../vmm/paging/shadow.ts';
import type { PagingModeFactory } from '../../vmm/paging/mode.ts';
import { type GuestMem, hexes, PF_SKIP, PT_A, PT_D, PT_G, PT_U, PT_W, type RunResult, runGuest, TO_RING3 } from './shadow-env.ts';

// ---- the strategies, and the differential run

export interface Strategy {
  readonly name: string;
  readonly f: PagingModeFactory;
  /** Host-physical base of guest RAM (runGuest's default, 4 MiB, when absent). */
  readonly ramBase?: number;
}

/** The virtual TLB; guest RAM 4 MiB-aligned on the host, so large guest pages get large shadow pages. */
export const VTLB: Strategy = { name: 'shadow', f: shadowFactory };
/** The virtual TLB with guest RAM not large-page aligned on the host: large guest pages are split. */
export const VTLB_SPLIT: Strategy = { name: 'shadow (split)', f: shadowFactory, ramBase: 0x500000 };
/** The cached shadow tables. */
export const CACHE: Strategy = { name: 'shadow-cache', f: shadowCacheFactory };

/** Expects guest memory `got` to equal `want`, naming the first differing dword's address and values. */
export function expectSameMemory(name: string, got: Uint8Array, want: Uint8Array): void {
  if (Buffer.compare(got, want) === 0) return;
  for (let pg = 0; pg < got.length; pg += 0x1000) {
    const a = got.subarray(pg, pg + 0x1000), b = want.subarray(pg, pg + 0x1000);
    if (Buffer.compare(a, b) !== 0) {
      const k = a.findIndex((x, j) => x !== b[j]) & ~3;
      const dv = new DataView(a.buffer, a.byteOffset), dr = new DataView(b.buffer, b.byteOffset);
      expect(`${name}: gpa 0x${(pg + k).toString(16)} = 0x${dv.getUint32(k, true).toString(16)}`)
        .toBe(`${name}: gpa 0x${(pg + k).toString(16)} = 0x${dr.getUint32(k, true).toString(16)}`);
    }
  }
}

/**
 * Runs `img` natively (the reference) and under each strategy, expecting every run to end with
 * status 0 and each strategy's log and final guest memory to be the reference's. Returns the runs.
 */
export function differential(img: Uint8Array, setup: (g: GuestMem) => void, strategies: readonly Strategy[]): { ref: RunResult; runs: RunResult[] } {
  const ref = runGuest('native', img, { setup });
  expect(ref.failure).toBeNull();
  expect(ref.status).toBe(0);
  const runs = strategies.map((s) => {
    const r = runGuest(s.f, img, { setup, ramBase: s.ramBase });
    expect(r.failure, s.name).toBeNull();
    expect(r.status, s.name).toBe(0);
    expect(hexes(r.log), s.name).toEqual(hexes(ref.log));
    expectSameMemory(s.name, r.ram, ref.ram);
    return r;
  });
  return { ref, runs };
}

// ---- the op interpreter

/** Where the interpreter finds its configuration (CONF) and its op list (OPS, 12 bytes an op). */
export const CONF = 0x1f000, OPS = 0x20000;
/**
 * The ops (address, kind, value): READ logs the dword at the address, WRITE stores the value
 * there, USER continues at CPL 3, CR3 loads the value into CR3, INVLPG invalidates the address,
 * END ends the run. A faulting access is logged by PF_SKIP and skipped.
 */
export const OP_READ = 0, OP_WRITE = 1, OP_USER = 2, OP_END = 3, OP_CR3 = 4, OP_INVLPG = 5;

/**
 * Guest code: sets EFER.NXE if CONF+8 is non-zero, CR4 = [CONF], CR3 = [CONF+12], turns paging
 * and CR0.WP on, clears the CR0 bits in [CONF+4], then runs the ops.
 */
export const INTERPRETER = `
  mov ${CONF + 8}, %eax
  test %eax, %eax
  jz 1f
  mov $0xc0000080, %ecx
  rdmsr
  or $0x800, %eax
  wrmsr
1:
  mov ${CONF}, %eax
  mov %eax, %cr4
  mov ${CONF + 12}, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $0x80010000, %eax
  mov ${CONF + 4}, %ecx
  not %ecx
  and %ecx, %eax
  mov %eax, %cr0
  mov $${OPS}, %esi
next:
  mov (%esi), %ebx
  mov 4(%esi), %ecx
  mov 8(%esi), %eax
  add $12, %esi
  cmp $${OP_WRITE}, %ecx
  je write
  cmp $${OP_USER}, %ecx
  je user
  cmp $${OP_END}, %ecx
  je end
  cmp $${OP_CR3}, %ecx
  je cr3
  cmp $${OP_INVLPG}, %ecx
  je inv
  readlog
  jmp next
write:
  mov %eax, (%ebx)
  jmp next
cr3:
  mov %eax, %cr3
  jmp next
inv:
  invlpg (%ebx)
  jmp next
user:
  ${TO_RING3}
  jmp next
end:
  finish
  ${PF_SKIP}
`;

/** The interpreter's configuration: CR3, CR4, CR0.WP (on unless false) and EFER.NXE (off unless true). */
export interface Conf { cr3: number; cr4: number; wp?: boolean; nxe?: boolean }

export type PutOp = (addr: number, kind: number, value?: number) => void;

/** Writes the configuration and returns `put`, which appends an op to the list (the caller ends it with OP_END). */
export function startOps(g: GuestMem, conf: Conf): PutOp {
  g.w32(CONF, conf.cr4);
  g.w32(CONF + 4, conf.wp === false ? 0x10000 : 0);
  g.w32(CONF + 8, conf.nxe === true ? 1 : 0);
  g.w32(CONF + 12, conf.cr3);
  let p = OPS;
  return (addr, kind, value = 0) => { g.w32(p, addr); g.w32(p + 4, kind); g.w32(p + 8, value); p += 12; };
}

export interface Access { write: boolean; value: number }

/** The ops of supervisor accesses, then (at CPL 3) user ones, then the end; `addr` places each access. */
export function putSupThenUser<O extends Access>(put: PutOp, c: { sup: O[]; usr: O[] }, addr: (o: O) => number): void {
  for (const o of c.sup) put(addr(o), o.write ? OP_WRITE : OP_READ, o.value);
  put(0, OP_USER);
  for (const o of c.usr) put(addr(o), o.write ? OP_WRITE : OP_READ, o.value);
  put(0, OP_END);
}

/** Marks `n` data pages from `base`: the dword at `off` of page k holds 0xd0000000 + k. */
export function markPages(g: GuestMem, base: number, n: number, off: number): void {
  for (let k = 0; k < n; k++) g.w32(base + k * 0x1000 + off, 0xd0000000 + k);
}

// ---- random parts

const entryFlags = (b: { w: boolean; u: boolean; g?: boolean; a: boolean; d: boolean }): number =>
  (b.w ? PT_W : 0) | (b.u ? PT_U : 0) | (b.g === true ? PT_G : 0) | (b.a ? PT_A : 0) | (b.d ? PT_D : 0);
/** Random W, U, G, A and D bits of a page-table entry. */
export const entryBits = fc.record({ w: fc.boolean(), u: fc.boolean(), g: fc.boolean(), a: fc.boolean(), d: fc.boolean() }).map(entryFlags);
/** Random W, U, A and D bits (no global pages). */
export const entryBitsNoG = fc.record({ w: fc.boolean(), u: fc.boolean(), a: fc.boolean(), d: fc.boolean() }).map(entryFlags);

/** The fields of a random access: a page (0 to pages-1), a dword in it, read or write, the value written. */
export const accessFields = (pages: number) => ({
  page: fc.integer({ min: 0, max: pages - 1 }), off: fc.integer({ min: 0, max: 1023 }),
  write: fc.boolean(), value: fc.integer({ min: 0, max: 0x7fffffff }),
});
