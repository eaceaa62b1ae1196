/**
 * Shadow paging with shadow tables cached across CR3 switches (config name 'shadow-cache'): the
 * strategy that helps guests with many processes, whose address spaces come back after each
 * context switch. The engine is shadow.ts's (its header describes both strategies); this one
 * keys each shadow table by the guest page-table page it was derived from, write-protects that
 * guest page in the shadow, and on a guest write to it marks the derived tables out of sync
 * (dropped at the next CR3 write; INVLPG refreshes single entries), so an edit the guest makes
 * visible with INVLPG or a CR3 reload is seen. Guest 4 MiB pages are always split into 4 KiB
 * shadow entries here, so that write protection stays per page.
 *
 * Options: `maxTables` (default 256): the cache's size in shadow tables; when it is full the
 * whole cache is dropped ('shadow.cacheEvict').
 */
import type { PagingMode, PagingModeFactory } from './mode.ts';
import { ShadowPaging } from './shadow.ts';

export const shadowCacheFactory: PagingModeFactory = {
  name: 'shadow-cache',
  create(options: Readonly<Record<string, unknown>>): PagingMode {
    const max = typeof options.maxTables === 'number' ? options.maxTables : undefined;
    return new ShadowPaging('shadow-cache', { cache: true, maxTables: max });
  },
};
