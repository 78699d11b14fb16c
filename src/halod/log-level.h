/* SPDX-License-Identifier: MIT */
/* halod's log levels as operators see and change them: haloctl log-level and PUT /v1/log-level. */
#pragma once

#include <stddef.h>

/* {"main": "info", "amf": "debug", ...}: every area's level, malloc'ed; NULL when out of memory. */
char *log_level_json(void);

/*
 * Applies a PUT /v1/log-level body: {"level": LEVEL} for every area or {"area": AREA, "level": LEVEL}
 * for one, and nothing else.  Returns 0 and *ret_spec (malloc'ed, "LEVEL" or "AREA=LEVEL", what
 * haloctl log-level takes) when it changed the level; -EINVAL with *ret_error_msg (static) when the
 * body is not such an object or names an unknown level or area (nothing changes); -ENOMEM.
 */
int log_level_put(const char *body, size_t len, char **ret_spec, const char **ret_error_msg);
