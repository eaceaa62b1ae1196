#!/bin/sh
# Builds the test kernels: OUT/<name>.elf for each kernel (OUT defaults to build/ here).
#   sh apps/kernels/build.sh [OUT]     build into OUT
#   sh apps/kernels/build.sh --prebuilt  build into build/, then copy the images to prebuilt/
# Sources are named relative to this directory whatever OUT is, and nothing records a time or a
# path, so the same gcc and binutils give the same bytes (test/kernels/ checks the prebuilt
# images against a rebuild when the gcc major version matches prebuilt/TOOLCHAIN). The flags and
# the steps are in ../build-common.sh (shared with apps/guests and apps/native).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../build-common.sh"
build_options "$@"
freestanding ""

KERNELS="hello interrupts paging apic serial mmu"

compile lib $KLIB
for k in $KERNELS; do
  $CC $CFLAGS -c -o "$OUT/obj/$k.o" "$k/$k.c"
  $LD $LDFLAGS -o "$OUT/$k.elf" $OBJS "$OUT/obj/$k.o"
done

if [ $PREBUILT = 1 ]; then
  for k in $KERNELS; do to_prebuilt "$k.elf"; done
  record_toolchain "$($LD --version | head -n 1)"
fi
