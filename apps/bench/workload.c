/*
 * The integer workload of `npm run bench` (bench/run.ts): CRC-32 over a buffer, a quicksort of
 * pseudo-random integers and a sieve of Eratosthenes. Freestanding i386 code: no libc, no system
 * calls. Linked (flat.ld) to a flat image at 0x10000000:
 *
 *   +0   _start: call workload; ud2      the emulator enters here; UD2 ends the run, EAX = checksum
 *   +8   .long workload                  the native runner (bench/native-runner.c) calls this
 *   +12  .long _end                      end of .bss: the memory the image needs from its base
 *
 * workload() initialises all of its state itself, so it can run any number of times. Its result
 * (EXPECTED_CHECKSUM in bench/run.ts) mixes the three parts' results, so a wrong instruction
 * anywhere shows.
 */
typedef unsigned int u32;
typedef unsigned char u8;

#define CRC_BYTES (256 * 1024)
#define CRC_ROUNDS 2
#define SORT_N 60000
#define SIEVE_N (2 * 1024 * 1024)

__asm__(
  ".section .text.start,\"ax\",@progbits\n"
  ".globl _start\n"
  "_start:\n"
  "  call workload\n"
  "  ud2\n"
  "  .p2align 3\n"
  "  .long workload\n"
  "  .long _end\n"
  ".text\n");

static u32 crc_table[256];
static u8 buf[CRC_BYTES];
static u32 arr[SORT_N];
static u8 sieve[SIEVE_N];
static u32 rng;

static u32 xorshift32(void) {
  u32 x = rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  rng = x;
  return x;
}

static void crc_init(void) {
  for (u32 n = 0; n < 256; n++) {
    u32 c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}

static u32 crc32(const u8 *p, u32 len, u32 crc) {
  crc = ~crc;
  for (u32 i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

static void quicksort(u32 *a, int lo, int hi) {
  while (lo < hi) {
    u32 pivot = a[lo + ((hi - lo) >> 1)];
    int i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        u32 t = a[i]; a[i] = a[j]; a[j] = t;
        i++; j--;
      }
    }
    /* recurse into the smaller part, loop on the larger: the stack stays O(log n) */
    if (j - lo < hi - i) { quicksort(a, lo, j); lo = i; }
    else { quicksort(a, i, hi); hi = j; }
  }
}

static u32 primes_below(u32 n) {
  for (u32 i = 0; i < n; i++) sieve[i] = (u8)(i & 1); /* odd numbers are candidates */
  sieve[1] = 0;
  if (n > 2) sieve[2] = 1;
  for (u32 i = 3; i * i < n; i += 2) {
    if (sieve[i]) for (u32 j = i * i; j < n; j += 2 * i) sieve[j] = 0;
  }
  u32 count = 0;
  for (u32 i = 0; i < n; i++) count += sieve[i];
  return count;
}

u32 workload(void) {
  u32 sum;

  /* CRC-32 */
  rng = 0x2545f491u;
  crc_init();
  for (u32 i = 0; i < CRC_BYTES; i++) buf[i] = (u8)(xorshift32() >> 24);
  u32 crc = 0;
  for (int r = 0; r < CRC_ROUNDS; r++) crc = crc32(buf, CRC_BYTES, crc);
  sum = crc;

  /* quicksort, then check the order and fold the sorted values in */
  for (u32 i = 0; i < SORT_N; i++) arr[i] = xorshift32();
  quicksort(arr, 0, SORT_N - 1);
  u32 sorted = 1, fold = 0;
  for (u32 i = 0; i < SORT_N; i++) {
    if (i > 0 && arr[i - 1] > arr[i]) sorted = 0;
    fold = fold * 31u + arr[i];
  }
  sum = sum * 0x9e3779b1u ^ fold ^ (sorted ? 0 : 0xdead0000u);

  /* sieve */
  sum = sum * 0x9e3779b1u + primes_below(SIEVE_N);
  return sum;
}
