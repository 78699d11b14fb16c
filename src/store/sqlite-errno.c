/* SPDX-License-Identifier: MIT */
/* SQLite result codes as negative errno values, for the SQLite store and the configuration database. */
#include "sqlite-errno.h"

#include <errno.h>

/* A SQLite result code as a negative errno; 0 for success codes. */
int sqlite_errno(sqlite3 *db, int rc) {
    int sys;

    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
        sys = db ? sqlite3_system_errno(db) : 0;
        return sys > 0 ? -sys : (rc & 0xff) == SQLITE_CANTOPEN ? -ENOENT : -EIO;
    default:
        return -EIO;
    }
}
