// VMCB clean bits (APM vol. 2, 15.15.3; hw/cpu/vmcb.ts CLEAN_*, svm.ts VmcbCache): at VMRUN a
// group whose clean bit is set may come from the core's cached copy, the state it last loaded
// from or wrote back into this VMCB; a clear bit reloads the group from the VMCB. The cache is
// honoured only for the same VMCB address, the same ASID and the same core as the last run:
// anything else reloads every group. State outside the groups (RIP, RSP, RAX, RFLAGS, FS, GS, TR,
// LDTR, EVENTINJ, ...) is always loaded. The guest code is hand-assembled (no assembler needed).
import { describe, expect, it } from 'vitest';
import { Cpu, TRAP_VMEXIT } from '../../../hw/cpu/cpu.ts';
import { DS, FS } from '../../../hw/cpu/insn.ts';
import { extraCosts } from '../../../hw/costs.ts';
import { vmrun } from '../../../hw/cpu/svm.ts';
import * as V from '../../../hw/cpu/vmcb.ts';
import { defaultVmcb, GCODE, IOPM, newVm, SEL_DATA0, VMCB, VMCB2, type Vm } from './vmenv.ts';

const HLT = [0xf4];
/** mov $v, %eax; mov %eax, %cr3; hlt */
const SET_CR3 = (v: number) => [0xb8, v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24, 0x0f, 0x22, 0xd8, 0xf4];

function setup(code: number[] = HLT): Vm {
  const vm = newVm();
  vm.mem.writeBytes(GCODE, Uint8Array.from(code));
  return vm;
}

/** One run: enter, run to the #VMEXIT, back at the guest's start for the next entry. */
function runOnce(vm: Vm, pa = VMCB): number | null {
  vm.enter(pa);
  const code = vm.runToExit();
  new V.VmcbView(vm.mem, pa).w64(V.VMCB_RIP, GCODE);
  return code;
}

interface Group {
  name: string;
  bit: number;
  /** Changes the group's state in the VMCB (a value the first run did not load). */
  edit(v: V.VmcbView): void;
  /** The core's value of that state while the guest runs. */
  read(vm: Vm): number;
  /** The old and the edited value as read(). */
  old: number;
  edited: number;
}

const GROUPS: Group[] = [
  { name: 'I (intercepts)', bit: V.CLEAN_I, edit: (v) => v.w32(V.VMCB_INTERCEPTS3, V.IC3_HLT | V.IC3_SHUTDOWN | V.IC3_CPUID), read: (vm) => vm.cpu.svm!.ic3, old: (V.IC3_HLT | V.IC3_SHUTDOWN) >>> 0, edited: (V.IC3_HLT | V.IC3_SHUTDOWN | V.IC3_CPUID) >>> 0 },
  { name: 'I (TSC_OFFSET)', bit: V.CLEAN_I, edit: (v) => v.w64(V.VMCB_TSC_OFFSET, 5000), read: (vm) => vm.cpu.tscOffset, old: 0, edited: 5000 },
  { name: 'IOPM', bit: V.CLEAN_IOPM, edit: (v) => v.w64(V.VMCB_IOPM_BASE, IOPM + 0x10000), read: (vm) => vm.cpu.svm!.iopm, old: IOPM, edited: IOPM + 0x10000 },
  { name: 'TPR', bit: V.CLEAN_TPR, edit: (v) => v.w32(V.VMCB_VINTR, 5 | (3 << 16)), read: (vm) => vm.cpu.svm!.vTpr | (vm.cpu.svm!.vIntrPrio << 16), old: 0, edited: 5 | (3 << 16) },
  { name: 'NP (N_CR3)', bit: V.CLEAN_NP, edit: (v) => v.w64(V.VMCB_N_CR3, 0x123000), read: (vm) => vm.cpu.nCr3, old: 0, edited: 0x123000 },
  { name: 'CRx (CR3)', bit: V.CLEAN_CRX, edit: (v) => v.w64(V.VMCB_CR3, 0x7000), read: (vm) => vm.cpu.cr3, old: 0, edited: 0x7000 },
  { name: 'CRx (CR4)', bit: V.CLEAN_CRX, edit: (v) => v.w64(V.VMCB_CR4, 0x10), read: (vm) => vm.cpu.cr4, old: 0, edited: 0x10 },
  { name: 'DRx', bit: V.CLEAN_DRX, edit: (v) => v.w64(V.VMCB_DR7, 0x401), read: (vm) => vm.cpu.dr[7], old: 0x400, edited: 0x401 },
  { name: 'DT (GDTR)', bit: V.CLEAN_DT, edit: (v) => v.w64(V.VMCB_GDTR + 8, 0x401800), read: (vm) => vm.cpu.gdtBase, old: 0x401000, edited: 0x401800 },
  { name: 'DT (IDTR limit)', bit: V.CLEAN_DT, edit: (v) => v.w32(V.VMCB_IDTR + 4, 0x3ff), read: (vm) => vm.cpu.idtLimit, old: 0x7ff, edited: 0x3ff },
  { name: 'SEG (DS base)', bit: V.CLEAN_SEG, edit: (v) => v.w64(V.VMCB_DS + 8, 0x10000), read: (vm) => vm.cpu.segBase[DS], old: 0, edited: 0x10000 },
  { name: 'CR2', bit: V.CLEAN_CR2, edit: (v) => v.w64(V.VMCB_CR2, 0xdead000), read: (vm) => vm.cpu.cr2 >>> 0, old: 0, edited: 0xdead000 },
];

describe('VMCB clean bits', () => {
  it('the groups are the APM\'s bits 0-9, and the core honours exactly those', () => {
    expect([V.CLEAN_I, V.CLEAN_IOPM, V.CLEAN_ASID, V.CLEAN_TPR, V.CLEAN_NP, V.CLEAN_CRX, V.CLEAN_DRX, V.CLEAN_DT, V.CLEAN_SEG, V.CLEAN_CR2])
      .toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 512]);
    expect(V.CLEAN_CACHED).toBe(0x3ff);
    expect(V.VMCB_CLEAN).toBe(0xc0);
  });

  for (const g of GROUPS) {
    it(`${g.name}: a set bit keeps the cached (old) state although the VMCB changed; a clear bit reloads it`, () => {
      const vm = setup();
      vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED); // ignored on the first run: nothing is cached yet
      expect(runOnce(vm)).toBe(V.EXIT_HLT);
      g.edit(vm.v);
      vm.v.w64(V.VMCB_RAX, 0x1234); // never cached
      vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED);
      vm.enter();
      expect(g.read(vm)).toBe(g.old);
      expect(vm.cpu.r[0]).toBe(0x1234);
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      // what the exit wrote back is the old state (the state the guest ran with)
      vm.v.w64(V.VMCB_RIP, GCODE);
      g.edit(vm.v);
      vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED & ~g.bit);
      vm.enter();
      expect(g.read(vm)).toBe(g.edited);
    });
  }

  it('other groups\' bits do not reload a group', () => {
    const vm = setup();
    runOnce(vm);
    vm.v.w64(V.VMCB_CR3, 0x7000);
    vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED & ~(V.CLEAN_SEG | V.CLEAN_DT | V.CLEAN_CR2));
    vm.enter();
    expect(vm.cpu.cr3).toBe(0);
  });

  it('state outside the groups (FS, RIP, RFLAGS) is always loaded', () => {
    const vm = setup([0x90, 0xf4]); // nop; hlt
    runOnce(vm);
    vm.v.w64(V.VMCB_FS + 8, 0x20000);
    vm.v.w64(V.VMCB_RIP, GCODE + 1);
    vm.v.w64(V.VMCB_RFLAGS, 0x202);
    vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED);
    vm.enter();
    expect(vm.cpu.segBase[FS]).toBe(0x20000);
    expect(vm.cpu.eip).toBe(GCODE + 1);
    expect(vm.cpu.getEflags() & 0x200).toBe(0x200);
  });

  it('the cache holds what the guest left: a CR3 the guest wrote comes back with CRx clean', () => {
    const vm = setup(SET_CR3(0x9000));
    expect(runOnce(vm)).toBe(V.EXIT_HLT);
    expect(vm.v.u32(V.VMCB_CR3)).toBe(0x9000);
    vm.mem.writeBytes(GCODE, Uint8Array.from(HLT));
    vm.v.w64(V.VMCB_CR3, 0x5000); // ignored: CRx is clean
    vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED);
    vm.enter();
    expect(vm.cpu.cr3).toBe(0x9000);
  });

  it('a different VMCB address ignores the clean bits', () => {
    const vm = setup();
    runOnce(vm);
    vm.mem.writeBytes(VMCB2, vm.mem.readBytes(VMCB, 0x1000));
    const v2 = new V.VmcbView(vm.mem, VMCB2);
    v2.w64(V.VMCB_CR3, 0x7000); v2.w64(V.VMCB_GDTR + 8, 0x401800); v2.w64(V.VMCB_DS + 8, 0x10000);
    v2.w32(V.VMCB_CLEAN, V.CLEAN_CACHED);
    vm.enter(VMCB2);
    expect([vm.cpu.cr3, vm.cpu.gdtBase, vm.cpu.segBase[DS]]).toEqual([0x7000, 0x401800, 0x10000]);
  });

  it('a different ASID ignores the clean bits', () => {
    const vm = setup();
    runOnce(vm);
    vm.v.w32(V.VMCB_ASID, 2);
    vm.v.w64(V.VMCB_CR3, 0x7000); vm.v.w64(V.VMCB_DS + 8, 0x10000);
    vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED);
    vm.enter();
    expect([vm.cpu.asid, vm.cpu.cr3, vm.cpu.segBase[DS]]).toEqual([2, 0x7000, 0x10000]);
  });

  it('the same VMCB run on another core since: the first core reloads everything', () => {
    const vm = setup();
    const other = new Cpu({ mem: vm.mem });
    other.host = { trap(c, t) { if (t.kind === TRAP_VMEXIT) c.requestStop(); } };
    runOnce(vm); // core A caches the VMCB
    // core B runs it with a new CR3 (clean bits clear: B has nothing cached)
    vm.v.w64(V.VMCB_CR3, 0x7000);
    vm.v.w32(V.VMCB_CLEAN, 0);
    expect(vmrun(other, VMCB)).toBe(0);
    expect(other.cr3).toBe(0x7000);
    other.run(other.cycles + 100_000);
    expect(other.guest).toBe(false);
    expect(vm.v.u32(V.VMCB_EXITCODE)).toBe(V.EXIT_HLT);
    // back on core A with every bit set: A's copy is stale, so it loads the VMCB
    vm.v.w64(V.VMCB_RIP, GCODE);
    vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED);
    vm.enter();
    expect(vm.cpu.cr3).toBe(0x7000);
  });

  it('VMEXIT_INVALID drops the cache: the next run loads the (fixed) VMCB', () => {
    const vm = setup();
    runOnce(vm);
    vm.v.w32(V.VMCB_INTERCEPTS4, 0); // no VMRUN intercept: inconsistent
    vm.v.w32(V.VMCB_CLEAN, 0);
    expect(vmrun(vm.cpu, VMCB)).toBe(V.EXIT_INVALID);
    vm.v.w32(V.VMCB_INTERCEPTS4, V.IC4_VMRUN);
    vm.v.w64(V.VMCB_CR3, 0x7000);
    vm.v.w32(V.VMCB_CLEAN, V.CLEAN_CACHED);
    vm.enter();
    expect(vm.cpu.cr3).toBe(0x7000);
  });

  it('a VMM that never sets clean bits sees every edit (all groups reload)', () => {
    const vm = setup();
    runOnce(vm);
    for (const g of GROUPS) g.edit(vm.v);
    vm.v.w32(V.VMCB_CLEAN, 0);
    vm.enter();
    for (const g of GROUPS) expect([g.name, g.read(vm)]).toEqual([g.name, g.edited]);
  });
});

describe('the default VMCB helper', () => {
  it('leaves VMCB_CLEAN zero', () => {
    const vm = newVm();
    defaultVmcb(vm.v);
    expect(vm.v.u32(V.VMCB_CLEAN)).toBe(0);
  });
});

// The IOIO intercept leaves the instruction loop without an exception (cpu.exitAfterInsn): the
// exit must look exactly like the unwinding one of the other intercepts: the instruction does not
// retire (no count, no cycles beyond VMRUN and #VMEXIT), RIP is the instruction, nRIP the next.
describe('the IOIO exit without unwinding', () => {
  for (const [name, code, port, info] of [
    ['out %al, $0x80', [0xe6, 0x80], 0x80, 0x10 | 0x100 | (3 << 10)], // SEG reads DS for every form (svm.ts ioIntercept)
    ['in $0x80, %eax', [0xe5, 0x80], 0x80, 0x40 | 0x100 | 1 | (3 << 10)],
    ['outsb (dx = 0x80)', [0x6e], 0x80, 0x10 | 0x100 | 4 | (3 << 10)],
  ] as const) {
    it(`${name}: the exit record, and the instruction does not retire`, () => {
      const vm = setup([...code, 0xf4]);
      vm.v.w32(V.VMCB_INTERCEPTS3, V.IC3_HLT | V.IC3_SHUTDOWN | V.IC3_IOIO);
      vm.mem.write(IOPM + (port >>> 3), 1, 1 << (port & 7));
      vm.cpu.r[2] = port;
      vm.cpu.r[0] = 0x55;
      const c0 = vm.cpu.cycles, i0 = vm.cpu.icount;
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_IOIO);
      expect(vm.cpu.icount).toBe(i0);
      expect(vm.cpu.cycles - c0).toBe(extraCosts.vmrun.cycles + extraCosts.vmexit.cycles);
      expect(vm.v.u32(V.VMCB_RIP)).toBe(GCODE);
      expect(vm.v.u32(V.VMCB_NRIP)).toBe(GCODE + code.length);
      expect(vm.v.u32(V.VMCB_EXITINFO1)).toBe(((port << 16) | info) >>> 0);
      expect(vm.v.u32(V.VMCB_EXITINFO2)).toBe(GCODE + code.length);
      expect(vm.cpu.guest).toBe(false);
      // the core goes on in host mode: the next entry runs the instruction again
      vm.mem.write(IOPM + (port >>> 3), 1, 0);
      vm.enter();
      expect(vm.runToExit()).toBe(V.EXIT_HLT);
      expect(vm.v.u32(V.VMCB_RIP)).toBe(GCODE + code.length);
    });
  }
});

// #VMEXIT restores the host's descriptor caches; their access ranges (rdMin..wrMax) are copied
// from the last restore while the host's caches and CR0.PE are unchanged since (svm.ts
// HostState.segDerived), and derived again otherwise. Either way they must be exactly what
// deriving them from the restored caches gives.
describe('the host descriptor caches after #VMEXIT', () => {
  const ranges = (c: Cpu) => [...c.rdMin, ...c.rdMax, ...c.wrMin, ...c.wrMax, c.codeMode, c.ipMask, c.spMask, c.cpl, c.csBase, c.csLimit];
  /** What deriving the current caches anew gives (loadSegCaches on a copy of them). */
  function derived(c: Cpu): number[] {
    const probe = new Cpu({ mem: c.mem });
    probe.cr0 = c.cr0;
    probe.setCpl(c.cpl);
    probe.loadSegCaches(c.segSel.slice(), c.segBase.slice(), c.segLimit.slice(), c.segAr.slice());
    return ranges(probe);
  }
  function cycle(vm: Vm): void {
    expect(runOnce(vm)).toBe(V.EXIT_HLT);
    expect(vm.cpu.guest).toBe(false);
    expect(ranges(vm.cpu)).toEqual(derived(vm.cpu));
  }

  it('unchanged, changed between runs (a data segment, then CR0.PE): the ranges are those derived from the caches', () => {
    const vm = setup();
    cycle(vm); // first restore: derived
    cycle(vm); // same host state: copied
    const wr0 = vm.cpu.wrMax[DS];
    // the host makes DS read-only (a data segment, type 0x91): DS becomes unwritable
    vm.cpu.cr0 |= 1;
    vm.cpu.loadSegCache(DS, SEL_DATA0, 0, 0xffff, 0x91);
    cycle(vm);
    expect(vm.cpu.wrMax[DS]).toBe(-1);
    cycle(vm); // unchanged again: copied, still read-only
    expect(vm.cpu.wrMax[DS]).toBe(-1);
    // back to real mode without reloading DS: the ranges follow CR0.PE (every segment writable)
    vm.cpu.cr0 &= ~1;
    cycle(vm);
    expect(vm.cpu.wrMax[DS]).toBe(0xffff);
    expect(wr0).toBe(0xffff);
  });
});
