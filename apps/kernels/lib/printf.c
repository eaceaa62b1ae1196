/* A small printf: %s %c %d %u %x %X, the 0 flag and a width, %%. */
#include "kernel.h"

static void put_num(u32 v, int base, int neg, int width, char padc, int upper) {
  char buf[12];
  int n = 0;
  const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  do {
    buf[n++] = digits[v % base];
    v /= base;
  } while (v);
  if (neg) {
    if (padc == '0') { serial_putc('-'); width--; }
    else buf[n++] = '-';
  }
  for (int k = n; k < width; k++) serial_putc(padc);
  while (n) serial_putc(buf[--n]);
}

void kprintf(const char *fmt, ...) {
  __builtin_va_list ap;
  __builtin_va_start(ap, fmt);
  for (; *fmt; fmt++) {
    if (*fmt != '%') { serial_putc(*fmt); continue; }
    fmt++;
    char padc = ' ';
    int width = 0;
    if (*fmt == '0') { padc = '0'; fmt++; }
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + (*fmt++ - '0');
    switch (*fmt) {
    case 's': {
      const char *s = __builtin_va_arg(ap, const char *);
      if (!s) s = "(null)";
      int len = (int)strlen(s);
      for (int k = len; k < width; k++) serial_putc(' ');
      serial_puts(s);
      break;
    }
    case 'c': serial_putc((char)__builtin_va_arg(ap, int)); break;
    case 'd': {
      int v = __builtin_va_arg(ap, int);
      put_num(v < 0 ? -(u32)v : (u32)v, 10, v < 0, width, padc, 0);
      break;
    }
    case 'u': put_num(__builtin_va_arg(ap, u32), 10, 0, width, padc, 0); break;
    case 'x': put_num(__builtin_va_arg(ap, u32), 16, 0, width, padc, 0); break;
    case 'X': put_num(__builtin_va_arg(ap, u32), 16, 0, width, padc, 1); break;
    case '%': serial_putc('%'); break;
    case 0: fmt--; break;
    default: serial_putc('%'); serial_putc(*fmt); break;
    }
  }
  __builtin_va_end(ap);
}
