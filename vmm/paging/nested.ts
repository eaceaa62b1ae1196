/**
 * Nested paging (AMD NPT) as a paging mode (mode.ts): the VMM builds nested tables once, from
 * the VM's one contiguous block of guest RAM (guest-physical [0, ramSize) -> host-physical
 * [ramBase, ramBase + ramSize)), with the largest pages the format offers where both addresses
 * are aligned (hw/cpu/npt.ts NptBuilder), and the guest then owns its CR0/CR3/CR4, page tables
 * and page faults outright: no CR, INVLPG or #PF intercepts. The only exit of the mode is
 * #VMEXIT(NPF), which here always means an access outside RAM: device memory or nothing, which
 * the run loop emulates ('mmio').
 *
 * Formats (options.format): 'long' (4-level radix, the default, as Palacios on a 64-bit host),
 * 'pae' (3-level), 'legacy' (2-level, 4 MiB pages) and 'hashed' (hw/README.md's hashed table:
 * one probe sequence per translation; sized to twice the entries it holds, at least one page).
 */
import { NPT_HASHED, NPT_LEGACY, NPT_LONG, NPT_PAE, NptBuilder, VMCB_NPT_FORMAT } from '../../hw/cpu/npt.ts';
import {
  EXIT_NPF, NP_ENABLE, VMCB_CR0, VMCB_CR3, VMCB_CR4, VMCB_N_CR3, VMCB_NP_CONTROL,
} from '../../hw/cpu/vmcb.ts';
import { FEATURE_HASHED_NPT } from '../features.ts';
import { guestVirtToPhys } from './guest-walk.ts';
import type { PagingContext, PagingMode, PagingModeFactory, PagingOutcome } from './mode.ts';

export type NptFormatName = 'long' | 'pae' | 'legacy' | 'hashed';

const FORMATS: Readonly<Record<NptFormatName, number>> = { long: NPT_LONG, pae: NPT_PAE, legacy: NPT_LEGACY, hashed: NPT_HASHED };
const PAGE = 4096;

class NestedMode implements PagingMode {
  readonly exitCodes: readonly number[] = [EXIT_NPF];
  private tables: { base: number; count: number }[] = [];
  private vmcbCr: (n: 0 | 3 | 4) => number = () => 0;
  /** Nested entries (or hash slots) written while building. */
  entries = 0;

  constructor(readonly name: string, readonly format: number) {}

  setup(ctx: PagingContext): boolean {
    const { mem } = ctx;
    let failed = false;
    const alloc = (count = 1): number => {
      const b = ctx.allocPages(count);
      if (b === null) { failed = true; throw new NoMemory(); }
      this.tables.push({ base: b, count });
      for (let a = 0; a < count * PAGE; a += 4) mem.write(b + a, 4, 0);
      ctx.chargeRefs(count * PAGE / 4);
      return b;
    };
    let builder: NptBuilder;
    try {
      if (this.format === NPT_HASHED) {
        const large = ctx.ramBase % (4 << 20) === 0;
        const pages = large ? Math.ceil(ctx.ramSize / (4 << 20)) + 2 * 1024 : ctx.ramSize / PAGE;
        let log2 = 9; // one page of 8-byte slots at least
        while ((1 << log2) < 2 * pages && log2 < 20) log2++;
        const bytes = 8 << log2;
        const base = alloc(Math.ceil(bytes / PAGE));
        builder = new NptBuilder(mem, NPT_HASHED, () => 0, { base, log2Slots: log2, largePages: large });
      } else {
        builder = new NptBuilder(mem, this.format, () => alloc(1));
      }
      const before = this.tables.length;
      builder.map(0, ctx.ramBase, ctx.ramSize);
      this.entries = this.format === NPT_HASHED ? 0 : this.tables.length - before;
    } catch (e) {
      if (failed) { this.release(ctx); return false; }
      throw e;
    }
    ctx.count('npt.tablePages', this.tables.reduce((s, t) => s + t.count, 0));
    const v = (off: number, val: number, size: 1 | 4 = 4) => mem.write(ctx.vmcb + off, size, val >>> 0);
    v(VMCB_NP_CONTROL, mem.read(ctx.vmcb + VMCB_NP_CONTROL, 4) | NP_ENABLE);
    v(VMCB_N_CR3, builder.nCr3);
    v(VMCB_N_CR3 + 4, 0);
    v(VMCB_NPT_FORMAT, this.format, 1);
    ctx.chargeRefs(4);
    this.vmcbCr = (n) => mem.read(ctx.vmcb + (n === 0 ? VMCB_CR0 : n === 3 ? VMCB_CR3 : VMCB_CR4), 4);
    return true;
  }

  handleExit(_ctx: PagingContext, _exitCode: number): PagingOutcome {
    // Every page of RAM is mapped, with every permission: an NPF is an access outside RAM.
    return 'mmio';
  }

  guestCr(n: 0 | 3 | 4): number {
    return this.vmcbCr(n);
  }

  translate(ctx: PagingContext, gva: number, _write: boolean): number {
    const env = {
      mem: ctx.mem,
      gpaToHpa: (g: number) => (g >= 0 && g < ctx.ramSize ? ctx.ramBase + g : -1),
      ref: () => ctx.chargeRefs(1),
    };
    const gpa = guestVirtToPhys(env, this.guestCr(0), this.guestCr(3), this.guestCr(4), gva);
    return gpa < 0 ? -1 : env.gpaToHpa(gpa);
  }

  release(ctx: PagingContext): void {
    for (const t of this.tables) ctx.freePages(t.base, t.count);
    this.tables = [];
  }
}

class NoMemory extends Error {}

/** 'nested': the radix formats, options.format 'long' (default), 'pae' or 'legacy' (or 'hashed'). */
export const nestedPaging: PagingModeFactory = {
  name: 'nested',
  create(options: Readonly<Record<string, unknown>>): PagingMode {
    const f = (options.format ?? 'long') as NptFormatName;
    if (!(f in FORMATS)) throw new RangeError(`nested paging: unknown table format ${JSON.stringify(f)} (long, pae, legacy, hashed)`);
    if (f === 'hashed' && !FEATURE_HASHED_NPT) throw new RangeError('nested paging: this build has no hashed page tables');
    return new NestedMode(f === 'hashed' ? 'hashed' : 'nested', FORMATS[f]);
  },
};

/** 'hashed': nested paging with the hashed table format. */
export const hashedPaging: PagingModeFactory = {
  name: 'hashed',
  create(): PagingMode {
    return nestedPaging.create({ format: 'hashed' });
  },
};
