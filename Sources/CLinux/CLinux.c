// The C target needs one translation unit; everything it offers is inline in include/CLinux.h.
#include "CLinux.h"
