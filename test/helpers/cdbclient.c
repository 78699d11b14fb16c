/* SPDX-License-Identifier: MIT */
/*
 * cdbclient: a configuration database client for the integration tests.
 *
 *   cdbclient commit PREFIX COUNT   commits PREFIX/<i> = <i> for i in 0..COUNT-1, one
 *                                   transaction each, printing "ok <i> <txid>" once each is
 *                                   acknowledged, or "err <i> <errno>" and exit 1
 *
 * The socket is $HALO_SOCKET.  Output is flushed line by line, so a test that
 * kills halod midway knows exactly which commits were acknowledged.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/cdb.h"

int main(int argc, char **argv) {
    static const halo_callbacks cb = {0};
    halo *h = NULL;

    if (argc != 4 || strcmp(argv[1], "commit") != 0) {
        fprintf(stderr, "usage: cdbclient commit PREFIX COUNT\n");
        return 2;
    }
    long count = strtol(argv[3], NULL, 10);
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r < 0) {
        fprintf(stderr, "cdbclient: halo_open: %s\n", halo_strerror(r));
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (long i = 0; i < count; i++) {
        char path[HALO_CDB_PATH_MAX], value[32], txid[HALO_CDB_TXID_MAX];
        halo_cdb_txn *t = NULL;
        snprintf(path, sizeof(path), "%s/%ld", argv[2], i);
        snprintf(value, sizeof(value), "%ld", i);
        r = halo_cdb_txn_begin(h, &t);
        if (r >= 0)
            r = halo_cdb_txn_set(t, path, value, strlen(value));
        if (r >= 0)
            r = halo_cdb_txn_commit(t, txid);
        else
            halo_cdb_txn_abort(t);
        if (r < 0) {
            printf("err %ld %d\n", i, -r);
            halo_close(h);
            return 1;
        }
        printf("ok %ld %s\n", i, txid);
    }
    halo_close(h);
    return 0;
}
