/* SPDX-License-Identifier: MIT */
/* SQLite result codes as negative errno values, for the SQLite store and the configuration database. */
#pragma once

#include <sqlite3.h>

/* A SQLite result code as a negative errno; 0 for success codes.  db (may be
 * NULL) gives the system errno behind an I/O error. */
int sqlite_errno(sqlite3 *db, int rc);
