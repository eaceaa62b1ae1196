/**
 * What the shadow-paging handlers (shadow.ts, shadow-cache.ts) charge, beside the per-word
 * references they charge through PagingContext.chargeRefs (each guest page-table entry read or
 * written, each shadow entry written, each word of a shadow page zeroed or scanned).
 *
 * The fixed costs are the handler's own work (decode of the exit, bookkeeping, the exit dispatch
 * is the run loop's and not in here). All are assumed figures, in the range published for
 * software shadow paging on hardware of that age; none was measured on our simulator. Sources:
 * - Adams & Agesen, "A Comparison of Software and Hardware Techniques for x86 Virtualization",
 *   ASPLOS 2006 (hidden page faults and the VMM's trace/fill work: hundreds to a few thousand
 *   cycles on top of the exit itself);
 * - Palacios' vmm_shadow_paging_32.h / vmm_direct_paging.h (the work per exit: one guest walk,
 *   one shadow entry written, list bookkeeping), read for the operation counts;
 * - Bhargava et al., "Accelerating Two-Dimensional Page Walks for Virtualized Systems",
 *   ASPLOS 2008 (shadow page-fault handling cost in KVM/Xen of the same generation).
 */
import type { CostEntry } from '../../hw/costs.ts';

const c = (cycles: number, source: string): CostEntry => ({ cycles, kind: 'assumed', source });

export const shadowCosts = {
  /** MOV to/from CR0/CR3/CR4, CLTS, SMSW, LMSW emulated from the decode assist. */
  crAccess: c(120, 'assumed: register move and RIP update from nRIP (Palacios handle_cr0/3/4_read/write)'),
  /** A #PF exit: classify, walk the guest tables in software (the walk's entries are charged as refs). */
  pageFault: c(300, 'assumed: Adams & Agesen 2006, hidden-fault handling in a software VMM, excluding the exit'),
  /** Writing one shadow entry and its bookkeeping (list/map updates). */
  fill: c(150, 'assumed: Palacios vmm_shadow_paging_32.h handle_pte_shadow_pagefault_32 bookkeeping'),
  /** Reflecting a guest page fault (EVENTINJ and CR2). */
  reflect: c(100, 'assumed: Palacios v3_inject_guest_pf'),
  /** INVLPG emulated: find and clear one shadow entry. */
  invlpg: c(150, 'assumed: Palacios handle_shadow_invlpg_32'),
  /** Flushing the virtual TLB (CR3 write, paging-mode change): fixed part; zeroed words are refs. */
  flush: c(400, 'assumed: Palacios delete_page_tables_32 + reset, fixed part'),
  /** A lookup in the shadow-table cache (a hash probe). */
  cacheLookup: c(60, 'assumed: hash-table probe, Palacios vmm_shdw_pg_cache.c'),
  /** Dropping write protection from a guest page-table page (unsync) or restoring it, per page. */
  protect: c(200, 'assumed: rmap walk per protected page (KVM rmap_write_protect of the same era)'),
} as const satisfies Record<string, CostEntry>;
