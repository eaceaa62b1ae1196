/* ftq: the noise benchmark apps/noise/ftq.c as a static i386 Linux program; parameters are
 * key=value arguments, output as apps/noise/README.md describes. */
#include "../noise/platform-linux.h"
#include "../noise/ftq.c"

NZ_MAIN(ftq)
