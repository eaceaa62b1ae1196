/*
 * FWQ, the fixed work quanta benchmark (LLNL's fwq): `samples` times, run the same work loop
 * (`work` iterations of an integer recurrence) and time it with RDTSC. Without noise every
 * sample takes the same number of cycles; interruptions make samples longer. The samples are
 * kept in memory and printed after the last one (apps/noise/README.md):
 *   fwq-params samples=N work=W
 *   fwq-sample C C C ...            (16 samples a line, in order, cycles)
 *   fwq-summary samples=N min=C max=C sum=C start=T end=T
 */
#include "noise.h"

/* One work quantum: a serial integer recurrence the compiler cannot shorten. */
static nz_u32 fwq_work(nz_u32 w, nz_u32 x) {
  for (nz_u32 j = 0; j < w; j++) {
    x = x * 1664525u + 1013904223u;
    __asm__ __volatile__("" : "+r"(x));
  }
  return x;
}

volatile nz_u32 fwq_sink;

int fwq_main(int argc, char **argv) {
  struct nz_param p[] = {
    { "samples", 3000, 1, 1u << 22 },
    { "work", 2000, 1, 1u << 24 },
  };
  if (!nz_parse(argc, argv, "fwq", p, 2)) return 2;
  nz_u32 n = p[0].value, w = p[1].value;
  nz_u32 *s = nz_alloc(n * 4);
  if (!s) { nz_error("fwq: out of memory for the samples"); return 2; }

  nz_u32 x = 1;
  x = fwq_work(w, x); /* warm the caches and the TLB */
  nz_u64 start = nz_rdtsc();
  for (nz_u32 i = 0; i < n; i++) {
    nz_u64 t0 = nz_rdtsc();
    x = fwq_work(w, x);
    nz_u64 t1 = nz_rdtsc();
    s[i] = (nz_u32)(t1 - t0);
  }
  nz_u64 end = nz_rdtsc();
  fwq_sink = x;

  nz_u32 mn = 0xFFFFFFFFu, mx = 0;
  nz_u64 sum = 0;
  for (nz_u32 i = 0; i < n; i++) {
    if (s[i] < mn) mn = s[i];
    if (s[i] > mx) mx = s[i];
    sum += s[i];
  }
  nz_str("fwq-params"); nz_kv("samples", n); nz_kv("work", w); nz_nl();
  nz_values("fwq-sample", s, n, 16);
  nz_str("fwq-summary"); nz_kv("samples", n); nz_kv("min", mn); nz_kv("max", mx); nz_kv("sum", sum);
  nz_kv("start", start); nz_kv("end", end); nz_nl();
  return 0;
}
