#!/bin/sh
# Builds the test kernels: OUT/<name>.elf for each kernel (OUT defaults to build/ here).
#   sh apps/kernels/build.sh [OUT]     build into OUT
#   sh apps/kernels/build.sh --prebuilt  build into build/, then copy the images to prebuilt/
# Sources are named relative to this directory whatever OUT is, and nothing records a time or a
# path, so the same gcc and binutils give the same bytes (test/kernels/ checks the prebuilt
# images against a rebuild when the gcc major version matches prebuilt/TOOLCHAIN).
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
KERNELS="hello interrupts paging apic serial mmu"
LIB="lib/boot.S lib/isr.S lib/string.c lib/serial.c lib/printf.c lib/test.c lib/trap.c lib/pic.c lib/pit.c lib/paging.c"
CFLAGS="-m32 -march=i686 -mtune=generic -ffreestanding -nostdlib -fno-pic -fno-pie -fno-ident \
-fno-stack-protector -fno-asynchronous-unwind-tables -mgeneral-regs-only -O2 -std=gnu11 \
-Wall -Wextra -ffunction-sections -fdata-sections -Ilib"
LDFLAGS="-m elf_i386 -T link.ld --build-id=none --gc-sections -nostdlib"

objs=""
for src in $LIB; do
  obj="$OUT/obj/lib_$(basename "${src%.*}").o"
  $CC $CFLAGS -c -o "$obj" "$src"
  objs="$objs $obj"
done
for k in $KERNELS; do
  $CC $CFLAGS -c -o "$OUT/obj/$k.o" "$k/$k.c"
  $LD $LDFLAGS -o "$OUT/$k.elf" $objs "$OUT/obj/$k.o"
done

if [ $PREBUILT = 1 ]; then
  mkdir -p prebuilt
  for k in $KERNELS; do cp "$OUT/$k.elf" "prebuilt/$k.elf"; done
  {
    echo "gcc $($CC -dumpfullversion)"
    $LD --version | head -n 1
  } > prebuilt/TOOLCHAIN
fi
