/**
 * Compile-time switches, like Palacios' build options (Kconfig). Each is written as a test of
 * `process.env.V3_*` so that rollup (@rollup/plugin-replace, or any define) can replace the
 * variable with a literal and tree-shaking then drops the disabled code. Running from source
 * (tsx, vitest), a feature is on unless its environment variable is "0".
 */

/** Shadow paging (both strategies): vmm/paging/shadow*.ts. */
export const FEATURE_SHADOW_PAGING: boolean = typeof process === 'undefined' || process.env.V3_SHADOW_PAGING !== '0';
/** The hashed nested page-table format. */
export const FEATURE_HASHED_NPT: boolean = typeof process === 'undefined' || process.env.V3_HASHED_NPT !== '0';
/** `--trace exits`: a line per exit. */
export const FEATURE_TRACE_EXITS: boolean = typeof process === 'undefined' || process.env.V3_TRACE_EXITS !== '0';
