#!/bin/sh
# Builds the native test programs: OUT/<name> for each (OUT defaults to build/ here).
#   sh apps/native/build.sh [OUT]        build into OUT
#   sh apps/native/build.sh --prebuilt   build into build/, then copy the programs to prebuilt/
# Static i386 executables against the system's glibc, with gcc-multilib (gcc -m32). Sources are
# named relative to this directory whatever OUT is and nothing records a time or a path, so the
# same gcc and glibc give the same bytes (test/kernel/native.test.ts checks the prebuilt programs
# against a rebuild when prebuilt/TOOLCHAIN matches the local toolchain). The options and the
# installing are ../build-common.sh's.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../build-common.sh"
build_options "$@"

CFLAGS="-m32 -static -O2"
PROGRAMS="hello args heap compute fault tls upcase clock fwq ftq selfish spmv threads procs futex signals pipes files sysbench"

for p in $PROGRAMS; do
  $CC $CFLAGS -o "$OUT/$p" "$p.c"
done
$CC -m32 -static-pie -O2 -o "$OUT/hello-pie" hello.c
$CC -m32 -static -nostdlib -o "$OUT/sysenter" sysenter.s

if [ $PREBUILT = 1 ]; then
  for p in $PROGRAMS hello-pie sysenter; do to_prebuilt "$p"; done
  record_toolchain "glibc $(ldd --version | head -n 1 | sed 's/.* //')"
fi
