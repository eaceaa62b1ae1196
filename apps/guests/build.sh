#!/bin/sh
# Builds the guest kernels: OUT/<name>.elf for catamount and linuxlike (OUT defaults to build/).
#   sh apps/guests/build.sh [OUT]        build into OUT
#   sh apps/guests/build.sh --prebuilt   build into build/, then copy the images to prebuilt/
# The same compiler flags, runtime (apps/kernels/lib) and linker script (apps/kernels/link.ld)
# as the test kernels; the noise benchmarks come from apps/noise/. Sources are named relative to
# this directory whatever OUT is, so the same gcc and binutils give the same bytes
# (test/kernels/guests.test.ts checks the prebuilt images against a rebuild when the gcc major
# version matches prebuilt/TOOLCHAIN).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
PREBUILT=0
if [ "${1:-}" = "--prebuilt" ]; then PREBUILT=1; shift; fi
OUT=${1:-$HERE/build}
mkdir -p "$OUT/obj"
OUT=$(cd "$OUT" && pwd)
cd "$HERE"

CC=${CC:-gcc}
LD=${LD:-ld}
K=../kernels
GUESTS="catamount linuxlike"
LIB="$K/lib/boot.S $K/lib/isr.S $K/lib/string.c $K/lib/serial.c $K/lib/printf.c $K/lib/test.c $K/lib/trap.c $K/lib/pic.c $K/lib/pit.c $K/lib/paging.c"
NOISE="../noise/common.c ../noise/fwq.c ../noise/ftq.c ../noise/selfish.c ../noise/spmv.c"
CFLAGS="-m32 -march=i686 -mtune=generic -ffreestanding -nostdlib -fno-pic -fno-pie -fno-ident \
-fno-stack-protector -fno-asynchronous-unwind-tables -mgeneral-regs-only -O2 -std=gnu11 \
-Wall -Wextra -ffunction-sections -fdata-sections -I$K/lib -I../noise"
LDFLAGS="-m elf_i386 -T $K/link.ld --build-id=none --gc-sections -nostdlib"

objs=""
for src in $LIB; do
  obj="$OUT/obj/lib_$(basename "${src%.*}").o"
  $CC $CFLAGS -c -o "$obj" "$src"
  objs="$objs $obj"
done
nobjs=""
for src in $NOISE; do
  obj="$OUT/obj/noise_$(basename "${src%.*}").o"
  $CC $CFLAGS -c -o "$obj" "$src"
  nobjs="$nobjs $obj"
done
$CC $CFLAGS -c -o "$OUT/obj/catamount.o" catamount/catamount.c
$LD $LDFLAGS -o "$OUT/catamount.elf" $objs $nobjs "$OUT/obj/catamount.o"
$CC $CFLAGS -c -o "$OUT/obj/linuxlike.o" linuxlike/linuxlike.c
$LD $LDFLAGS -o "$OUT/linuxlike.elf" $objs "$OUT/obj/linuxlike.o"

if [ $PREBUILT = 1 ]; then
  mkdir -p prebuilt
  for g in $GUESTS; do cp "$OUT/$g.elf" "prebuilt/$g.elf"; done
  {
    echo "gcc $($CC -dumpfullversion)"
    $LD --version | head -n 1
  } > prebuilt/TOOLCHAIN
fi
