/* The noise benchmarks' shared runtime: parameters and line output (see noise.h). */
#include "noise.h"

static int nz_streq(const char *a, const char *b, nz_u32 n) {
  for (nz_u32 i = 0; i < n; i++) if (a[i] != b[i] || a[i] == 0) return 0;
  return b[n] == 0;
}

static int nz_number(const char *s, nz_u32 *out) {
  nz_u64 v = 0;
  nz_u32 base = 10;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) { base = 16; s += 2; }
  if (*s == 0) return 0;
  for (; *s; s++) {
    nz_u32 d;
    if (*s >= '0' && *s <= '9') d = (nz_u32)(*s - '0');
    else if (base == 16 && *s >= 'a' && *s <= 'f') d = (nz_u32)(*s - 'a' + 10);
    else if (base == 16 && *s >= 'A' && *s <= 'F') d = (nz_u32)(*s - 'A' + 10);
    else return 0;
    v = v * base + d;
    if (v > 0xFFFFFFFFull) return 0;
  }
  *out = (nz_u32)v;
  return 1;
}

static void nz_err2(const char *bench, const char *what, const char *tok) {
  char buf[160];
  nz_u32 n = 0;
  const char *parts[5] = { bench, ": ", what, tok, 0 };
  for (int k = 0; parts[k]; k++)
    for (const char *s = parts[k]; *s && n < sizeof buf - 1; s++) buf[n++] = *s;
  buf[n] = 0;
  nz_error(buf);
}

int nz_parse(int argc, char **argv, const char *bench, struct nz_param *p, int np) {
  for (int i = 0; i < argc; i++) {
    const char *t = argv[i];
    nz_u32 eq = 0;
    while (t[eq] && t[eq] != '=') eq++;
    if (t[eq] != '=') { nz_err2(bench, "expected key=value, got ", t); return 0; }
    int found = 0;
    for (int k = 0; k < np; k++) {
      if (!nz_streq(t, p[k].key, eq)) continue;
      nz_u32 v;
      if (!nz_number(t + eq + 1, &v) || v < p[k].min || v > p[k].max) {
        nz_err2(bench, "value out of range or not a number: ", t);
        return 0;
      }
      p[k].value = v;
      found = 1;
    }
    if (!found) { nz_err2(bench, "unknown parameter: ", t); return 0; }
  }
  return 1;
}

static char line[256];
static nz_u32 len;

static void nz_flush(void) {
  if (len) nz_write(line, len);
  len = 0;
}

static void nz_putc(char c) {
  if (len == sizeof line) nz_flush();
  line[len++] = c;
}

void nz_str(const char *s) { while (*s) nz_putc(*s++); }

/* Decimal conversion by long division over 16-bit limbs: no 64-bit division (no libgcc). */
void nz_u(nz_u64 v) {
  nz_u32 limb[4] = { (nz_u32)(v >> 48) & 0xFFFF, (nz_u32)(v >> 32) & 0xFFFF, (nz_u32)(v >> 16) & 0xFFFF, (nz_u32)v & 0xFFFF };
  char buf[24];
  int n = 0;
  do {
    nz_u32 r = 0;
    for (int k = 0; k < 4; k++) {
      nz_u32 cur = (r << 16) | limb[k];
      limb[k] = cur / 10;
      r = cur % 10;
    }
    buf[n++] = (char)('0' + r);
  } while (limb[0] | limb[1] | limb[2] | limb[3]);
  while (n) nz_putc(buf[--n]);
}

void nz_hex(nz_u32 v) {
  nz_str("0x");
  for (int s = 28; s >= 0; s -= 4) nz_putc("0123456789abcdef"[(v >> s) & 0xF]);
}

void nz_kv(const char *key, nz_u64 v) {
  nz_putc(' ');
  nz_str(key);
  nz_putc('=');
  nz_u(v);
}

void nz_nl(void) {
  nz_putc('\n');
  nz_flush();
}

void nz_values(const char *tag, const nz_u32 *v, nz_u32 n, nz_u32 per) {
  for (nz_u32 i = 0; i < n; i += per) {
    nz_str(tag);
    for (nz_u32 k = i; k < n && k < i + per; k++) { nz_putc(' '); nz_u(v[k]); }
    nz_nl();
  }
}
