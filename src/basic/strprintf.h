/* SPDX-License-Identifier: MIT */
#pragma once

#include "macro.h"

/* A malloc'ed formatted string, NULL when out of memory. */
_printf_(1, 2) char *strprintf(const char *fmt, ...);
