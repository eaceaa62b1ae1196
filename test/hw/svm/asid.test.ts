// ASIDs and TLB_CONTROL (APM vol. 2, 15.16): the modelled TLB tags every translation with the
// current ASID (0 in the host). A guest's entries survive a #VMEXIT, a run of host code that maps
// the same linear addresses elsewhere, and the next VMRUN with TLB_CONTROL 0 (no re-walk: the
// core's TLB-miss and walk counters do not move); TLB_CONTROL 1 flushes every ASID's entries, 3
// this ASID's, 7 this ASID's non-global ones; VMRUN and #VMEXIT themselves flush nothing. A guest
// with another ASID never sees the first one's translations (with the same ASID it would: the
// VMM must flush or use a fresh ASID).
import { describe, expect, it } from 'vitest';
import { TRAP_SOFTINT, TRAP_VMEXIT } from '../../../hw/cpu/cpu.ts';
import { CS, DS, ES, FS, GS, SS } from '../../../hw/cpu/insn.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { haveAssembler } from '../cpu/bare.ts';
import { AR_CODE0, AR_DATA0, enablePaging, ORG, Paging32, setupTables, w32 } from '../cpu/sysenv.ts';
import { defaultVmcb, GCODE, newVm, VMCB, VMCB2, type Vm } from './vmenv.ts';

const run = haveAssembler() || process.env.CI === 'true' ? describe : describe.skip;

/** The linear pages both worlds read (vpns 0x300-0x303: four different DTLB sets). */
const PAGES = [0x300000, 0x301000, 0x302000, 0x303000];
const HOST_FRAMES = 0x200000, GUEST_A_FRAMES = 0x600000, GUEST_B_FRAMES = 0x640000;
const GUEST_A_PD = 0x700000, GUEST_B_PD = 0x780000, HOST_PD = 0x100000;

const SUM_SRC = PAGES.map((p) => `add 0x${p.toString(16)}, %eax`).join('\n');

interface World {
  vm: Vm;
  a: Paging32;
  /** Runs guest A (or the VMCB at `vmcb`) from GCODE with `tlbControl`: returns [misses, walk refs, the sum it read]. */
  guest(tlbControl: number, vmcb?: number): [number, number, number];
  /** Runs the host's code (the same linear pages, other frames): [misses, walk refs, its sum]. */
  host(): [number, number, number];
}

function world(): World {
  const vm = newVm();
  const { cpu, mem } = vm;
  // ---- the host: flat ring 0, paging on, the PAGES mapped to HOST_FRAMES; its code sums them and traps
  setupTables(cpu, mem);
  const hp = new Paging32(mem, HOST_PD);
  hp.identity(0, 0x800000, 3);
  PAGES.forEach((p, k) => { hp.map(p, HOST_FRAMES + k * 0x1000); w32(mem, HOST_FRAMES + k * 0x1000, 0x2000 + k); });
  enablePaging(cpu, HOST_PD);
  cpu.setCpl(0);
  cpu.loadSegCache(CS, 0x08, 0, 0xffffffff, AR_CODE0);
  for (const s of [SS, DS, ES, FS, GS]) cpu.loadSegCache(s, 0x10, 0, 0xffffffff, AR_DATA0);
  cpu.eip = ORG; cpu.r[4] = 0x9000;
  vm.code(`1: xor %eax, %eax\n${SUM_SRC}\nint $0x81\njmp 1b`, ORG);
  // ---- guest A: paging on, the PAGES mapped to GUEST_A_FRAMES; it sums them and halts (HLT intercepted)
  const a = new Paging32(mem, GUEST_A_PD);
  a.identity(0, 0x800000, 3);
  PAGES.forEach((p, k) => { a.map(p, GUEST_A_FRAMES + k * 0x1000); w32(mem, GUEST_A_FRAMES + k * 0x1000, 0x1000 + k); });
  vm.code(`xor %eax, %eax\n${SUM_SRC}\nhlt`);
  vm.v.w64(V.VMCB_CR3, GUEST_A_PD);
  vm.v.w64(V.VMCB_CR0, 0x80000011);
  // ---- guest B (VMCB2, ASID 2): the same code and linear pages, its own tables and frames
  const vb = new V.VmcbView(mem, VMCB2);
  defaultVmcb(vb);
  const b = new Paging32(mem, GUEST_B_PD);
  b.identity(0, 0x800000, 3);
  PAGES.forEach((p, k) => { b.map(p, GUEST_B_FRAMES + k * 0x1000); w32(mem, GUEST_B_FRAMES + k * 0x1000, 0x3000 + k); });
  vb.w32(V.VMCB_ASID, 2);
  vb.w64(V.VMCB_CR3, GUEST_B_PD);
  vb.w64(V.VMCB_CR0, 0x80000011);

  vm.onTrap = (t) => {
    if (t.kind === TRAP_VMEXIT || (t.kind === TRAP_SOFTINT && t.vector === 0x81)) { cpu.requestStop(); return; }
    throw new Error(`unexpected trap ${t.kind} 0x${t.vector.toString(16)} at 0x${t.eip.toString(16)}`);
  };
  const counters = (): [number, number] => [cpu.stats.tlbMisses, cpu.stats.walkRefs];
  return {
    vm, a,
    guest(tlbControl, vmcb = VMCB) {
      const v = new V.VmcbView(mem, vmcb);
      v.w64(V.VMCB_RIP, GCODE);
      v.w8(V.VMCB_TLB_CONTROL, tlbControl);
      const [m0, w0] = counters();
      vm.enter(vmcb);
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect(v.u8(V.VMCB_TLB_CONTROL)).toBe(tlbControl); // VMRUN reads TLB_CONTROL but does not change it
      const [m1, w1] = counters();
      return [m1 - m0, w1 - w0, v.u32(V.VMCB_RAX)];
    },
    host() {
      const [m0, w0] = counters();
      const n = vm.traps.length;
      cpu.run(cpu.cycles + 100_000);
      expect(vm.traps.length).toBe(n + 1);
      expect([vm.traps[n].kind, cpu.guest, cpu.asid]).toEqual([TRAP_SOFTINT, false, 0]);
      const [m1, w1] = counters();
      return [m1 - m0, w1 - w0, cpu.r[0] >>> 0];
    },
  };
}

const A_SUM = 0x4006, B_SUM = 0xc006, HOST_SUM = 0x8006;
/** A cold run misses once for the code page and once per data page. */
const COLD = 1 + PAGES.length;

run('ASIDs and TLB_CONTROL', () => {
  it("a guest's translations survive the #VMEXIT and a host run: re-entered with TLB_CONTROL 0 it walks nothing", () => {
    const w = world();
    const [m1, r1, s1] = w.guest(V.TLB_CONTROL_FLUSH_ALL);
    expect([m1, s1]).toEqual([COLD, A_SUM]);
    expect(r1).toBe(COLD * 2); // two-level tables: two references per walk
    const [hm, , hs] = w.host();
    expect([hm, hs]).toEqual([COLD, HOST_SUM]); // the host's translations are its own (ASID 0)
    expect(w.guest(V.TLB_CONTROL_NOTHING)).toEqual([0, 0, A_SUM]);
    expect(w.host()).toEqual([0, 0, HOST_SUM]);
    expect(w.guest(V.TLB_CONTROL_NOTHING)).toEqual([0, 0, A_SUM]);
  });

  it('TLB_CONTROL 1 flushes every ASID, the host\'s too', () => {
    const w = world();
    w.guest(V.TLB_CONTROL_FLUSH_ALL);
    w.host();
    expect(w.guest(V.TLB_CONTROL_FLUSH_ALL).slice(0, 1)).toEqual([COLD]);
    expect(w.host()[0]).toBe(COLD);
  });

  it('TLB_CONTROL 3 flushes only this guest\'s entries', () => {
    const w = world();
    w.guest(V.TLB_CONTROL_FLUSH_ALL);
    w.host();
    expect(w.guest(V.TLB_CONTROL_FLUSH_ASID)).toEqual([COLD, COLD * 2, A_SUM]);
    expect(w.host()).toEqual([0, 0, HOST_SUM]);
  });

  it('TLB_CONTROL 7 keeps this guest\'s global entries (CR4.PGE), 3 drops them too', () => {
    const w = world();
    // the code page and the first two data pages global
    w.a.map(GCODE, GCODE, 0x103);
    w.a.map(PAGES[0], GUEST_A_FRAMES, 0x103);
    w.a.map(PAGES[1], GUEST_A_FRAMES + 0x1000, 0x103);
    w.vm.v.w64(V.VMCB_CR4, 0x80);
    expect(w.guest(V.TLB_CONTROL_FLUSH_ASID)[0]).toBe(COLD);
    expect(w.guest(V.TLB_CONTROL_FLUSH_ASID_NONGLOBAL)[0]).toBe(2);
    expect(w.guest(V.TLB_CONTROL_NOTHING)[0]).toBe(0);
    expect(w.guest(V.TLB_CONTROL_FLUSH_ASID)[0]).toBe(COLD);
  });

  it('the TLB caches: a remapped page is not seen until the VMM flushes the guest\'s ASID', () => {
    const w = world();
    w.guest(V.TLB_CONTROL_FLUSH_ALL);
    w32(w.vm.mem, 0x650000, 0x5555);
    w.a.map(PAGES[0], 0x650000);
    expect(w.guest(V.TLB_CONTROL_NOTHING)).toEqual([0, 0, A_SUM]);
    expect(w.guest(V.TLB_CONTROL_FLUSH_ASID)).toEqual([COLD, COLD * 2, A_SUM - 0x1000 + 0x5555]);
  });

  it('a guest with another ASID does not see the first one\'s translations; the first keeps its own', () => {
    const w = world();
    expect(w.guest(V.TLB_CONTROL_FLUSH_ALL)[2]).toBe(A_SUM);
    expect(w.guest(V.TLB_CONTROL_NOTHING, VMCB2)).toEqual([COLD, COLD * 2, B_SUM]);
    expect(w.guest(V.TLB_CONTROL_NOTHING)).toEqual([0, 0, A_SUM]);
    expect(w.guest(V.TLB_CONTROL_NOTHING, VMCB2)).toEqual([0, 0, B_SUM]);
    expect(w.host()).toEqual([COLD, COLD * 2, HOST_SUM]);
  });

  it('with the same ASID, the second guest would use the first one\'s stale translations (why the VMM flushes or renumbers)', () => {
    const w = world();
    w.guest(V.TLB_CONTROL_FLUSH_ALL);
    new V.VmcbView(w.vm.mem, VMCB2).w32(V.VMCB_ASID, 1);
    expect(w.guest(V.TLB_CONTROL_NOTHING, VMCB2)).toEqual([0, 0, A_SUM]);
    expect(w.guest(V.TLB_CONTROL_FLUSH_ASID, VMCB2)).toEqual([COLD, COLD * 2, B_SUM]);
  });
});
