/* SPDX-License-Identifier: MIT */
/*
 * A participant and an initiator for the transactions' tests (test_transactions.py).
 *
 * No argument: a component (halod runs it).  It registers, answers its CSIs and takes part in
 * transactions, keeping its state in $TXNCOMP_FILE, a line per step, so that it survives a
 * SIGKILL and the test reads it: "prepare TXID DATA", "vote TXID yes|no", then "commit TXID
 * DATA" or "abort TXID".  $TXNCOMP_VOTE=no: it votes no.  $TXNCOMP_SLOW=prepare or outcome: the
 * first time it gets one, it writes "slow-prepare TXID" or "slow-outcome TXID" and sleeps (the
 * test kills it there).
 *
 * "commit TIMEOUT_MSEC COMP=DATA...": an initiator (DATA "@N": N bytes "x").  Prints "txid ID",
 * then "committed ID", "aborted ID: REASON" or "unknown ID: REASON"; "error: TEXT" (exit 2).
 * "vote TXID": votes yes on a transaction it is no participant of (a liar); prints the answer.
 * "outcome TXID": asks halod the outcome (halo_txn_outcome()); prints "committed ID", "aborted ID:
 * REASON", "undecided ID", "unknown ID" or "error: TEXT".
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halo/halo.h"
#include "halo/txn.h"

static bool stop;
static const char *file;

/* A line into $TXNCOMP_FILE, in one write(2), on disk before going on. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    char line[HALO_TXN_DATA_MAX + 512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 || k <= 0 || write(fd, line, (size_t)k) != k || fsync(fd) < 0)
        _exit(3);
    close(fd);
}

/* The rest of the first line of the file that starts with "WORD TXID" (a pointer into a static
 * buffer: "" when the line has nothing more), or NULL. */
static const char *find(const char *word, const char *txid) {
    static char buf[1 << 20];
    char head[512];
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    snprintf(head, sizeof(head), "%s %s", word, txid);
    size_t hl = strlen(head);
    for (char *line = buf; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, head, hl) == 0 && (line[hl] == '\0' || line[hl] == ' '))
            return line[hl] ? line + hl + 1 : "";
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static bool slow(const char *what, const char *txid) {
    const char *s = getenv("TXNCOMP_SLOW");
    char marker[32];
    snprintf(marker, sizeof(marker), "slow-%s", what);
    if (!s || strcmp(s, what) != 0 || find(marker, "*"))
        return false;
    note("%s %s\n%s *\n", marker, txid, marker);
    sleep(600);
    return true;
}

static int prepare(halo *h, const char *txid, const char *comp, const void *data, size_t len, void *userdata) {
    (void)h, (void)comp, (void)userdata;
    const char *v = find("vote", txid);
    if (v) /* asked again (halod restarted): the same answer */
        return strcmp(v, "yes") == 0 ? 0 : -EPERM;
    note("prepare %s %.*s\n", txid, (int)len, (const char *)data);
    slow("prepare", txid);
    bool no = getenv("TXNCOMP_VOTE") && strcmp(getenv("TXNCOMP_VOTE"), "no") == 0;
    note("vote %s %s\n", txid, no ? "no" : "yes");
    return no ? -EPERM : 0;
}

static void outcome(halo *h, const char *txid, const char *comp, bool commit, void *userdata) {
    (void)h, (void)comp, (void)userdata;
    if (find("commit", txid) || find("abort", txid))
        return; /* applied already */
    slow("outcome", txid);
    const char *data = find("prepare", txid);
    if (commit)
        note("commit %s %s\n", txid, data ? data : "?");
    else
        note("abort %s\n", txid);
}

static void csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state, const halo_csi_descriptor *csi,
                    void *userdata) {
    (void)comp, (void)csi, (void)userdata;
    (void)(state == HALO_HA_QUIESCING ? halo_quiescing_complete(h, inv, 0) : halo_response(h, inv, 0));
}

static void terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    (void)comp, (void)userdata;
    halo_response(h, inv, 0);
    stop = true;
}

static int participant(void) {
    const char *comp = getenv("HALO_COMPONENT");
    /* No csi_remove: libhalo answers it (the component holds nothing per CSI). */
    halo_callbacks cb = {.csi_set = csi_set, .terminate = terminate};
    halo *h;
    file = getenv("TXNCOMP_FILE");
    if (!comp || !file || halo_open(NULL, &cb, NULL, &h) < 0 || halo_txn_participate(h, prepare, outcome, NULL) < 0 ||
        halo_register(h, comp, NULL) < 0)
        return 1;
    while (!stop) {
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, 1000) > 0 && halo_dispatch(h, HALO_DISPATCH_ALL) < 0)
            break;
    }
    halo_close(h);
    return 0;
}

static bool finished;

static void done(halo *h, const char *txid, int result, const char *reason, void *userdata) {
    (void)h, (void)userdata;
    if (result == 0)
        printf("committed %s\n", txid);
    else
        printf("%s %s: %s\n", result == -ECANCELED ? "aborted" : "unknown", txid, reason);
    finished = true;
}

static int fail(const char *what, int r) {
    printf("error: %s: %s\n", what, halo_strerror(r));
    return 2;
}

static int initiator(int argc, char **argv) {
    halo_callbacks cb = {0};
    halo *h;
    halo_txn *t;
    char *txid = NULL;
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r < 0)
        return fail("open", r);
    if (strcmp(argv[1], "outcome") == 0) {
        char *reason = NULL;
        r = halo_txn_outcome(h, argv[2], &reason);
        halo_close(h);
        if (r == 0 || r == -ECANCELED || r == -EINPROGRESS || r == -HALO_EUNKNOWN)
            printf("%s %s%s%s\n",
                   r == 0              ? "committed"
                   : r == -ECANCELED   ? "aborted"
                   : r == -EINPROGRESS ? "undecided"
                                       : "unknown",
                   argv[2], reason ? ": " : "", reason ?: "");
        free(reason);
        return r == 0 || r == -ECANCELED || r == -EINPROGRESS || r == -HALO_EUNKNOWN ? 0 : fail("outcome", r);
    }
    if (strcmp(argv[1], "vote") == 0) {
        r = halo_txn_vote(h, argv[2], 0, NULL);
        halo_close(h);
        return r < 0 ? fail("vote", r) : (printf("voted\n"), 0);
    }
    r = halo_txn_begin(h, &t);
    if (r < 0) {
        halo_close(h);
        return fail("begin", r);
    }
    for (int i = 3; r >= 0 && i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            halo_txn_free(t); /* freed on every way out: a leak would fail a sanitizer run at exit */
            halo_close(h);
            return fail("usage", -EINVAL);
        }
        *eq = '\0';
        size_t len = eq[1] == '@' ? strtoul(eq + 2, NULL, 10) : strlen(eq + 1);
        char *data = eq[1] == '@' ? calloc(1, len + 1) : strdup(eq + 1);
        if (eq[1] == '@' && data)
            memset(data, 'x', len);
        r = data ? halo_txn_add(t, argv[i], data, len) : -ENOMEM;
        free(data);
    }
    if (r < 0) {
        halo_txn_free(t);
        halo_close(h);
        return fail("add", r);
    }
    r = halo_txn_commit(t, (unsigned)atoi(argv[2]), done, NULL, &txid); /* frees t */
    if (r < 0) {
        halo_close(h);
        return fail("commit", r);
    }
    printf("txid %s\n", txid);
    fflush(stdout);
    while (!finished) {
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, 1000) > 0 && (r = halo_dispatch(h, HALO_DISPATCH_ALL)) < 0 && !finished) {
            printf("unknown %s: %s\n", txid, halo_strerror(r));
            free(txid);
            halo_close(h); /* a leak would fail a sanitizer run at exit */
            return 1;
        }
    }
    free(txid);
    halo_close(h);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 &&
        (strcmp(argv[1], "commit") == 0 || strcmp(argv[1], "vote") == 0 || strcmp(argv[1], "outcome") == 0))
        return initiator(argc, argv);
    return participant();
}
