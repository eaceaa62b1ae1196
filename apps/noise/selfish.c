/*
 * The selfish detour benchmark (Beckman et al., ZeptoOS "selfish"): a tight loop reads the TSC
 * and compares each reading with the previous one; a gap longer than the threshold is a
 * detour (time the loop did not get), recorded as (start, length). The threshold is `mult`
 * times the minimum loop time, which a calibration pass measures first (the fastest of ten
 * blocks of 1,000 iterations, divided by 1,000).
 * The loop runs for `duration` cycles (default 44,000,000 = 20 ms at 2.2 GHz) and keeps at
 * most `max` detours (later ones are counted as dropped). Printed after the run
 * (apps/noise/README.md), start relative to the run's first reading:
 *   selfish-params duration=C mult=M max=N minloop=C threshold=C
 *   selfish-detour START LENGTH     (one line per detour, in order, cycles)
 *   selfish-summary detours=N dropped=N sum=C duration=C start=T end=T
 * `sum` is the total length of all detours (dropped ones included); duration the cycles the
 * loop actually ran.
 */
#include "noise.h"

int selfish_main(int argc, char **argv) {
  struct nz_param p[] = {
    { "duration", 44000000, 1000, 0xFFFFFFFFu },
    { "mult", 8, 2, 1000 },
    { "max", 10000, 1, 1u << 22 },
  };
  if (!nz_parse(argc, argv, "selfish", p, 3)) return 2;
  nz_u32 dur = p[0].value, mult = p[1].value, max = p[2].value;
  nz_u32 *d = nz_alloc(max * 8);
  if (!d) { nz_error("selfish: out of memory for the detours"); return 2; }

  /* calibration: the loop time, as the fastest of 10 blocks of 1,000 iterations (a single
   * gap is too coarse: some TSCs advance in steps) */
  nz_u32 minloop = 0xFFFFFFFFu;
  nz_u64 prev = nz_rdtsc();
  nz_u32 lastgap = 0;
  for (nz_u32 b = 0; b < 10; b++) {
    nz_u64 b0 = nz_rdtsc();
    for (nz_u32 i = 0; i < 1000; i++) {
      nz_u64 now = nz_rdtsc();
      lastgap = (nz_u32)(now - prev);
      __asm__ __volatile__("" : "+r"(lastgap));
      prev = now;
    }
    nz_u32 per = (nz_u32)(prev - b0) / 1000;
    if (per < minloop) minloop = per;
  }
  if (minloop == 0) minloop = 1;
  nz_u32 threshold = minloop * mult;

  nz_u32 n = 0, dropped = 0;
  nz_u64 sum = 0;
  nz_u64 start = nz_rdtsc();
  nz_u64 stop = start + dur;
  prev = start;
  for (;;) {
    nz_u64 now = nz_rdtsc();
    nz_u32 gap = (nz_u32)(now - prev);
    if (gap > threshold) {
      sum += gap;
      if (n < max) {
        d[2 * n] = (nz_u32)(prev - start);
        d[2 * n + 1] = gap;
        n++;
      } else {
        dropped++;
      }
    }
    prev = now;
    if (now >= stop) break;
  }

  nz_str("selfish-params"); nz_kv("duration", dur); nz_kv("mult", mult); nz_kv("max", max);
  nz_kv("minloop", minloop); nz_kv("threshold", threshold); nz_nl();
  for (nz_u32 i = 0; i < n; i++) {
    nz_str("selfish-detour"); nz_str(" "); nz_u(d[2 * i]); nz_str(" "); nz_u(d[2 * i + 1]); nz_nl();
  }
  nz_str("selfish-summary"); nz_kv("detours", n + dropped); nz_kv("dropped", dropped); nz_kv("sum", sum);
  nz_kv("duration", prev - start); nz_kv("start", start); nz_kv("end", prev); nz_nl();
  return 0;
}
