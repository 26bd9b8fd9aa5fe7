// Values that need _GNU_SOURCE are read here, so the header seen by Swift keeps the default feature set.
#define _GNU_SOURCE
#include <fcntl.h>

int clinux_o_tmpfile(void) { return O_TMPFILE; }
