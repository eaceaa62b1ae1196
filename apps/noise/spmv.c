/*
 * spmv: a memory-bound kernel, the sparse matrix-vector product y = A x in compressed sparse
 * row form with 32-bit integer arithmetic (wrapping), over a matrix of `rows` rows with `nnz`
 * nonzeros each (default 16384 x 16: 2 MiB of values and column indices, plus the vectors).
 * Half of each row's columns lie in a band around the diagonal, half anywhere (a fixed
 * linear congruential generator), so the product streams the matrix and gathers from x.
 * `iters` products are timed one by one with RDTSC; each feeds the next (x = y ^ i).
 * Printed after the run (apps/noise/README.md):
 *   spmv-params rows=R nnz=K iters=I bytes=B
 *   spmv-iter C C C ...             (16 iteration times a line, cycles)
 *   spmv-summary iters=I min=C max=C sum=C checksum=0x........
 * The checksum (a hash of the final vector) depends only on the parameters.
 */
#include "noise.h"

int spmv_main(int argc, char **argv) {
  struct nz_param p[] = {
    { "rows", 16384, 16, 1u << 20 },
    { "nnz", 16, 1, 256 },
    { "iters", 20, 1, 1u << 20 },
  };
  if (!nz_parse(argc, argv, "spmv", p, 3)) return 2;
  nz_u32 rows = p[0].value, k = p[1].value, iters = p[2].value;
  if ((nz_u64)rows * k > (1u << 22)) { nz_error("spmv: rows x nnz above 4194304"); return 2; }
  nz_u32 nnz = rows * k;
  nz_u32 bytes = nnz * 8 + (rows + 1) * 4 + rows * 8 + iters * 4;
  nz_u32 *val = nz_alloc(nnz * 4), *col = nz_alloc(nnz * 4), *rowp = nz_alloc((rows + 1) * 4);
  nz_u32 *x = nz_alloc(rows * 4), *y = nz_alloc(rows * 4), *t = nz_alloc(iters * 4);
  if (!val || !col || !rowp || !x || !y || !t) { nz_error("spmv: out of memory for the matrix"); return 2; }

  nz_u32 seed = 12345;
  for (nz_u32 r = 0; r < rows; r++) {
    rowp[r] = r * k;
    for (nz_u32 j = 0; j < k; j++) {
      seed = seed * 1103515245u + 12345u;
      nz_u32 c = j < k / 2 ? (r + j * 7) % rows : (seed >> 8) % rows;
      col[r * k + j] = c;
      val[r * k + j] = (seed >> 16) | 1;
    }
    x[r] = r * 2654435761u;
  }
  rowp[rows] = nnz;

  for (nz_u32 it = 0; it < iters; it++) {
    nz_u64 t0 = nz_rdtsc();
    for (nz_u32 r = 0; r < rows; r++) {
      nz_u32 s = 0;
      for (nz_u32 e = rowp[r]; e < rowp[r + 1]; e++) s += val[e] * x[col[e]];
      y[r] = s;
    }
    nz_u64 t1 = nz_rdtsc();
    t[it] = (nz_u32)(t1 - t0);
    for (nz_u32 r = 0; r < rows; r++) x[r] = y[r] ^ it;
  }

  nz_u32 h = 2166136261u, mn = 0xFFFFFFFFu, mx = 0;
  nz_u64 sum = 0;
  for (nz_u32 r = 0; r < rows; r++) h = (h ^ y[r]) * 16777619u;
  for (nz_u32 i = 0; i < iters; i++) {
    if (t[i] < mn) mn = t[i];
    if (t[i] > mx) mx = t[i];
    sum += t[i];
  }
  nz_str("spmv-params"); nz_kv("rows", rows); nz_kv("nnz", k); nz_kv("iters", iters); nz_kv("bytes", bytes); nz_nl();
  nz_values("spmv-iter", t, iters, 16);
  nz_str("spmv-summary"); nz_kv("iters", iters); nz_kv("min", mn); nz_kv("max", mx); nz_kv("sum", sum);
  nz_str(" checksum="); nz_hex(h); nz_nl();
  return 0;
}
