/**
 * The paging modes a VM config can name, by PagingModeFactory.name: 'nested' and 'hashed'
 * (nested.ts, 'hashed' unless the build leaves the hashed format out) and the shadow modes
 * ('shadow', 'shadow-cache': shadow.ts, shadow-cache.ts) unless the build leaves shadow paging
 * out (features.ts). registerPagingMode adds others (an experiment's own mode).
 */
import { FEATURE_HASHED_NPT, FEATURE_SHADOW_PAGING } from '../features.ts';
import type { PagingModeFactory } from './mode.ts';
import { hashedPaging, nestedPaging } from './nested.ts';
import { shadowCacheFactory } from './shadow-cache.ts';
import { shadowFactory } from './shadow.ts';

const modes = new Map<string, PagingModeFactory>();
modes.set(nestedPaging.name, nestedPaging);
if (FEATURE_HASHED_NPT) modes.set(hashedPaging.name, hashedPaging);
if (FEATURE_SHADOW_PAGING) {
  modes.set(shadowFactory.name, shadowFactory);
  modes.set(shadowCacheFactory.name, shadowCacheFactory);
}

export function registerPagingMode(f: PagingModeFactory): void {
  modes.set(f.name, f);
}

export function pagingMode(name: string): PagingModeFactory | undefined {
  return modes.get(name);
}

export function pagingModeNames(): string[] {
  return [...modes.keys()];
}
