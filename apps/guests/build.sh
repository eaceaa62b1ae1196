#!/bin/sh
# Builds the guest kernels: OUT/<name>.elf for catamount and linuxlike (OUT defaults to build/).
#   sh apps/guests/build.sh [OUT]        build into OUT
#   sh apps/guests/build.sh --prebuilt   build into build/, then copy the images to prebuilt/
# The same compiler flags, runtime (apps/kernels/lib) and linker script (apps/kernels/link.ld)
# as the test kernels (../build-common.sh); the noise benchmarks come from apps/noise/. Sources
# are named relative to this directory whatever OUT is, so the same gcc and binutils give the
# same bytes (test/kernels/guests.test.ts checks the prebuilt images against a rebuild when the
# gcc major version matches prebuilt/TOOLCHAIN).
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../build-common.sh"
build_options "$@"
freestanding ../kernels/
CFLAGS="$CFLAGS -I../noise"

GUESTS="catamount linuxlike"

compile lib $KLIB
lib=$OBJS
compile noise ../noise/common.c ../noise/fwq.c ../noise/ftq.c ../noise/selfish.c ../noise/spmv.c
noise=$OBJS
$CC $CFLAGS -c -o "$OUT/obj/catamount.o" catamount/catamount.c
$LD $LDFLAGS -o "$OUT/catamount.elf" $lib $noise "$OUT/obj/catamount.o"
$CC $CFLAGS -c -o "$OUT/obj/linuxlike.o" linuxlike/linuxlike.c
$LD $LDFLAGS -o "$OUT/linuxlike.elf" $lib "$OUT/obj/linuxlike.o"

if [ $PREBUILT = 1 ]; then
  for g in $GUESTS; do to_prebuilt "$g.elf"; done
  record_toolchain "$($LD --version | head -n 1)"
fi
