// libopendkim's C header made usable from C++: it spells bool as C99's _Bool and relies on
// u_char from <sys/types.h>. Include this instead of <opendkim/dkim.h>. Must never define
// anything else.
#pragma once

#include <sys/types.h>

#define _Bool bool
#include <opendkim/dkim.h>
#undef _Bool
