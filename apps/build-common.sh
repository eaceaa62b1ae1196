# Sourced by apps/kernels/build.sh, apps/guests/build.sh and apps/native/build.sh, after `set -eu`
# and HERE=<the script's directory>: the options they all take, installing into prebuilt/, and the
# freestanding flags and runtime (apps/kernels/lib) the test kernels and the guest kernels share.

CC=${CC:-gcc}

# build_options [--prebuilt] [OUT]: PREBUILT=1 with --prebuilt; OUT (default HERE/build) created
# and made absolute; then the current directory is HERE, so that sources are named relative to it
# whatever OUT is (nothing records a time or a path: the same toolchain gives the same bytes).
build_options() {
  PREBUILT=0
  if [ "${1:-}" = "--prebuilt" ]; then PREBUILT=1; shift; fi
  OUT=${1:-$HERE/build}
  mkdir -p "$OUT"
  OUT=$(cd "$OUT" && pwd)
  cd "$HERE"
}

# to_prebuilt FILE: copies OUT/FILE to prebuilt/FILE.
to_prebuilt() {
  mkdir -p prebuilt
  cp "$OUT/$1" "prebuilt/$1"
}

# record_toolchain LINE: writes prebuilt/TOOLCHAIN: gcc's version, then LINE (the linker's or the C library's).
record_toolchain() {
  {
    echo "gcc $($CC -dumpfullversion)"
    echo "$1"
  } > prebuilt/TOOLCHAIN
}

# freestanding K: LD, KLIB (the runtime's sources), CFLAGS and LDFLAGS of a kernel built on
# apps/kernels/lib, K being the path of apps/kernels from HERE with a trailing slash ("" in
# apps/kernels itself): the paths the compiler sees, and so the images' bytes, do not change.
freestanding() {
  LD=${LD:-ld}
  KLIB="${1}lib/boot.S ${1}lib/isr.S ${1}lib/string.c ${1}lib/serial.c ${1}lib/printf.c ${1}lib/test.c ${1}lib/trap.c ${1}lib/pic.c ${1}lib/pit.c ${1}lib/paging.c"
  CFLAGS="-m32 -march=i686 -mtune=generic -ffreestanding -nostdlib -fno-pic -fno-pie -fno-ident \
-fno-stack-protector -fno-asynchronous-unwind-tables -mgeneral-regs-only -O2 -std=gnu11 \
-Wall -Wextra -ffunction-sections -fdata-sections -I${1}lib"
  LDFLAGS="-m elf_i386 -T ${1}link.ld --build-id=none --gc-sections -nostdlib"
  mkdir -p "$OUT/obj"
}

# compile PREFIX SRC...: OUT/obj/PREFIX_<name>.o from each source, in order; OBJS lists them.
compile() {
  prefix=$1
  shift
  OBJS=""
  for src in "$@"; do
    obj="$OUT/obj/${prefix}_$(basename "${src%.*}").o"
    $CC $CFLAGS -c -o "$obj" "$src"
    OBJS="$OBJS $obj"
  done
}
