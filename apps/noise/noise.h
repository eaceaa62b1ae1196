/*
 * The noise benchmarks' shared runtime: one source per benchmark (fwq.c, ftq.c, selfish.c,
 * spmv.c) builds both as a static i386 Linux program (apps/native/<name>.c, platform-linux.h)
 * and inside our guest kernels (apps/guests/, platform-kernel.c). A platform provides three
 * functions; everything else (cycle counter, parameters, output formatting) is here, with no
 * libc and no 64-bit division (freestanding i386 code has no libgcc).
 *
 * Output: every line is `<tag> <value>...` or `<tag> key=value ...`, values in decimal; see
 * apps/noise/README.md. Results are kept in memory during the measurement and printed after it.
 */
#ifndef NOISE_H
#define NOISE_H

typedef unsigned int nz_u32;
typedef unsigned long long nz_u64;

/* ---- provided by the platform ---- */
void nz_write(const char *s, nz_u32 n);       /* output bytes (stdout natively, COM1 in a guest) */
void nz_error(const char *s);                 /* one line naming a bad parameter (stderr / COM1) */
void *nz_alloc(nz_u32 bytes);                 /* zeroed and touched memory, or 0 */

/* ---- the cycle counter: the TSC in both ---- */
static inline nz_u64 nz_rdtsc(void) {
  nz_u32 lo, hi;
  __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
  return ((nz_u64)hi << 32) | lo;
}

/* ---- parameters: `key=value` tokens, values decimal (or 0x hex) ---- */
struct nz_param {
  const char *key;
  nz_u32 value;      /* the default, replaced by the token's value */
  nz_u32 min, max;   /* accepted range */
};

/* Parses argv into params; on a bad token prints one line and returns 0. */
int nz_parse(int argc, char **argv, const char *bench, struct nz_param *p, int np);
/* A benchmark entry point: the arguments after the program/application name; returns the exit value. */
typedef int (*nz_main_fn)(int argc, char **argv);
int fwq_main(int argc, char **argv);
int ftq_main(int argc, char **argv);
int selfish_main(int argc, char **argv);
int spmv_main(int argc, char **argv);

/* ---- line output: a line buffer flushed through nz_write ---- */
void nz_str(const char *s);
void nz_u(nz_u64 v);            /* decimal */
void nz_hex(nz_u32 v);          /* 0x%08x */
void nz_kv(const char *key, nz_u64 v); /* " key=v" */
void nz_nl(void);
/* Prints `tag v0 v1 ...` lines, `per` values a line. */
void nz_values(const char *tag, const nz_u32 *v, nz_u32 n, nz_u32 per);

#endif
