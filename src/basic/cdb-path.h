/* SPDX-License-Identifier: MIT */
/* Paths of the configuration database (CDB): "/a/b", shared by the link, the daemon and the
 * description's checks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* 0 if s is a path: a '/' first, no empty part (no "//", no trailing '/'), no control
 * characters, at most max bytes; "/" only with root_ok.  -EINVAL otherwise. */
int cdb_path_check(const char *s, size_t max, bool root_ok);

/* Whether path is prefix or lies under it ("/" holds every path; "/a" holds "/a" and "/a/b",
 * not "/ab"). */
bool cdb_path_under(const char *path, const char *prefix);
