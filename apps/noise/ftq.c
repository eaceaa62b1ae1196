/*
 * FTQ, the fixed time quanta benchmark (LANL/Sottile-Minnich ftq): time is cut into `quanta`
 * consecutive intervals of `quantum` cycles (default 220,000 = 100 us at 2.2 GHz), aligned to
 * the start; in each, count how many basic work units (`unit` iterations of an integer
 * recurrence) complete before the interval's end. Without noise every count is the same; time
 * taken away shows as lower counts. A quantum's end is start + (i+1) * quantum whatever
 * happened before, as in the original, so a long detour lowers the counts of the quanta it
 * covers. Printed after the run (apps/noise/README.md):
 *   ftq-params quanta=N quantum=C unit=U
 *   ftq-count K K K ...             (16 counts a line, in order)
 *   ftq-summary quanta=N quantum=C min=K max=K sum=K start=T end=T
 */
#include "noise.h"

static nz_u32 ftq_unit(nz_u32 u, nz_u32 x) {
  for (nz_u32 j = 0; j < u; j++) {
    x = x * 1664525u + 1013904223u;
    __asm__ __volatile__("" : "+r"(x));
  }
  return x;
}

volatile nz_u32 ftq_sink;

int ftq_main(int argc, char **argv) {
  struct nz_param p[] = {
    { "quanta", 200, 1, 1u << 22 },
    { "quantum", 220000, 1000, 0x7FFFFFFFu },
    { "unit", 32, 1, 1u << 20 },
  };
  if (!nz_parse(argc, argv, "ftq", p, 3)) return 2;
  nz_u32 n = p[0].value, q = p[1].value, u = p[2].value;
  nz_u32 *c = nz_alloc(n * 4);
  if (!c) { nz_error("ftq: out of memory for the counts"); return 2; }

  nz_u32 x = ftq_unit(u, 1);
  nz_u64 start = nz_rdtsc();
  nz_u64 end = start;
  for (nz_u32 i = 0; i < n; i++) {
    end += q;
    nz_u32 count = 0;
    while (nz_rdtsc() < end) {
      x = ftq_unit(u, x);
      count++;
    }
    c[i] = count;
  }
  nz_u64 stop = nz_rdtsc();
  ftq_sink = x;

  nz_u32 mn = 0xFFFFFFFFu, mx = 0;
  nz_u64 sum = 0;
  for (nz_u32 i = 0; i < n; i++) {
    if (c[i] < mn) mn = c[i];
    if (c[i] > mx) mx = c[i];
    sum += c[i];
  }
  nz_str("ftq-params"); nz_kv("quanta", n); nz_kv("quantum", q); nz_kv("unit", u); nz_nl();
  nz_values("ftq-count", c, n, 16);
  nz_str("ftq-summary"); nz_kv("quanta", n); nz_kv("quantum", q); nz_kv("min", mn); nz_kv("max", mx);
  nz_kv("sum", sum); nz_kv("start", start); nz_kv("end", stop); nz_nl();
  return 0;
}
