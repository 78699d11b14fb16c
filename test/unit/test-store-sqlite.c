/* SPDX-License-Identifier: MIT */
/* The SQLite backend's own tests: reopening, failed writes, crash recovery, files it must refuse. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "macro.h"
#include "store-fixture.h"
#include "store.h"
#include "tests.h"

static void run_sqlite(void (*check)(struct fixture *f)) {
    run_backend(backend_sqlite, check);
}

static void check_sqlite_reopen(struct fixture *f) {
    struct reply *keep = lease_grant(f, 60);
    struct reply *gone = lease_grant(f, 60);
    struct reply *short_ = lease_grant(f, 1);
    put_ok(f, "d/1", "one");
    put_ok(f, "d/2", "two");
    put_ok(f, "d/1", "one again");
    ASSERT_EQ(put_lease(f, "d/leased", "l", keep->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "d/short", "s", short_->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "d/gone", "g", gone->lease)->error, 0);
    ASSERT_EQ(lease_revoke(f, gone->lease)->error, 0);
    ASSERT_EQ(del(f, "d/2")->error, 0);
    int64_t rev = store_revision(f->s);
    ASSERT_EQ(rev, 9);
    struct reply *before = range(f, "");
    struct wrec *hist = watch(f, "", 1);
    run_until_events(f, hist, 8);
    hist->w = store_watch_cancel(hist->w);

    /* Past the short lease's TTL, but nothing ran: reopening gives it a full TTL. */
    usleep(1500 * 1000);
    fixture_reopen(f);
    uint64_t t0 = now_msec();

    ASSERT_EQ(store_revision(f->s), rev);
    struct reply *after = range(f, "");
    ASSERT_EQ(after->revision, rev);
    ASSERT_EQ(after->n_kvs, before->n_kvs);
    ASSERT_EQ(after->n_kvs, 3);
    for (size_t i = 0; i < after->n_kvs; i++) {
        const struct tkv *a = &after->kvs[i], *b = &before->kvs[i];
        ASSERT(a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0);
        ASSERT(a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0);
        ASSERT_EQ(a->create_revision, b->create_revision);
        ASSERT_EQ(a->mod_revision, b->mod_revision);
        ASSERT_EQ(a->version, b->version);
        ASSERT_EQ(a->lease, b->lease);
    }
    ASSERT_EQ(get_kv(f, "d/1")->version, 2);

    /* History resumes: the same events as before the restart, then live ones. */
    struct wrec *again = watch(f, "", 1);
    run_until_events(f, again, 8);
    for (size_t i = 0; i < 8; i++) {
        ASSERT_EQ(again->events[i].type, hist->events[i].type);
        ASSERT_EQ(again->events[i].kv.mod_revision, hist->events[i].kv.mod_revision);
        ASSERT(kv_is(&again->events[i].kv, hist->events[i].kv.key, NULL));
        ASSERT_EQ(again->events[i].kv.value_len, hist->events[i].kv.value_len);
        ASSERT_EQ(again->events[i].kv.version, hist->events[i].kv.version);
    }
    ASSERT_EQ(put_ok(f, "d/3", "three"), rev + 1);
    run_until_events(f, again, 9);
    assert_event(again, 8, STORE_EVENT_PUT, "d/3", rev + 1);

    /* Leases: live ones came back, revoked ones did not, ids are not reused. */
    struct reply *k = lease_keepalive(f, keep->lease);
    ASSERT_EQ(k->error, 0);
    ASSERT_EQ(k->ttl, 60);
    ASSERT_EQ(lease_keepalive(f, gone->lease)->error, -ENOENT);
    struct reply *fresh = lease_grant(f, 60);
    ASSERT(fresh->lease > short_->lease && fresh->lease > gone->lease && fresh->lease > keep->lease);

    /* The short lease expires a full TTL after the reopen. */
    run_until_events(f, again, 10);
    uint64_t elapsed = now_msec() - t0;
    if (elapsed < 950 || elapsed > 3000)
        CHECK_FAIL("re-granted lease expired %llu ms after the reopen", (unsigned long long)elapsed);
    assert_event(again, 9, STORE_EVENT_DELETE, "d/short", rev + 2);
    again->w = store_watch_cancel(again->w);

    fixture_reopen(f);
    ASSERT_EQ(store_revision(f->s), rev + 2);
    ASSERT(!get_kv(f, "d/short"));
    ASSERT_KV(get_kv(f, "d/leased"), "d/leased", "l");
}
TEST(sqlite_survives_reopen) {
    run_sqlite(check_sqlite_reopen);
}

/* Holds SQLite's write lock from another connection, as a stuck writer would. */
static sqlite3 *lock_db(const char *path) {
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void unlock_db(sqlite3 *db) {
    ASSERT_EQ(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_close(db), SQLITE_OK);
}

static void check_sqlite_write_failure(struct fixture *f) {
    ASSERT_EQ(put_ok(f, "k", "1"), 2);
    struct wrec *w = watch(f, "", 0);

    sqlite3 *db = lock_db(f->path);
    struct reply *r = put(f, "k", "2");
    ASSERT_EQ(r->error, -EBUSY);
    ASSERT(!r->had_result);
    store_op ops[] = {op_put("a", "1", 0), op_put("b", "1", 0)};
    ASSERT_EQ(txn(f, &(store_txn){.success = ops, .n_success = 2})->error, -EBUSY);
    ASSERT_EQ(del(f, "k")->error, -EBUSY);
    ASSERT_EQ(lease_grant(f, 10)->error, -EBUSY);
    /* Reads still work, and show that nothing was applied. */
    ASSERT_EQ(store_revision(f->s), 2);
    r = range(f, "");
    ASSERT_EQ(r->revision, 2);
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "k", "1");
    ASSERT_EQ(r->kvs[0].version, 1);
    unlock_db(db);

    ASSERT_EQ(put_ok(f, "k", "3"), 3);
    ASSERT_EQ(get_kv(f, "k")->version, 2);
    run_until_events(f, w, 1);
    assert_event(w, 0, STORE_EVENT_PUT, "k", 3);

    /* A lease that expires while the file is locked keeps its keys until a retry works. */
    struct reply *g = lease_grant(f, 1);
    ASSERT_EQ(g->error, 0);
    ASSERT_EQ(put_lease(f, "e", "x", g->lease)->error, 0);
    ASSERT_EQ(store_revision(f->s), 4);
    db = lock_db(f->path);
    run_for(f, 1600);
    ASSERT_KV(get_kv(f, "e"), "e", "x");
    ASSERT_EQ(store_revision(f->s), 4);
    unlock_db(db);
    run_until_events(f, w, 3);
    assert_event(w, 2, STORE_EVENT_DELETE, "e", 5);
    ASSERT(!get_kv(f, "e"));
    w->w = store_watch_cancel(w->w);

    fixture_reopen(f);
    ASSERT_EQ(store_revision(f->s), 5);
    ASSERT_KV(get_kv(f, "k"), "k", "3");
    ASSERT_EQ(range(f, "")->n_kvs, 1);
}
TEST(sqlite_failed_write_not_applied) {
    run_sqlite(check_sqlite_write_failure);
}

/* ---- crash: a child writes in a loop and is SIGKILLed ---- */

#define CRASH_VALUE_SIZE 3000

static void crash_value(char *buf, uint64_t n) {
    for (size_t i = 0; i < CRASH_VALUE_SIZE; i++)
        buf[i] = (char)('a' + (n + i) % 26);
    snprintf(buf, 32, "n=%llu;", (unsigned long long)n);
}

static void on_child_reply(store *s, int error, const store_result *res, void *userdata) {
    int64_t *rev = userdata;
    *rev = error < 0 ? error : res->revision;
}

static int64_t child_get_counter(uv_loop_t *loop, store *s);

/* Runs in the grandchild: n-th write puts crash/a and crash/b = value(n) and crash/n = n. */
static _Noreturn void crash_writer(const char *path, int fd) {
    uv_loop_t loop;
    store *s;
    static char value[CRASH_VALUE_SIZE];

    if (uv_loop_init(&loop) < 0 || store_sqlite_new(&loop, path, &s) < 0)
        _exit(2);
    int64_t n = child_get_counter(&loop, s);
    for (;;) {
        char num[32];
        n++;
        crash_value(value, (uint64_t)n);
        snprintf(num, sizeof(num), "%lld", (long long)n);
        store_op ops[] = {
            {.type = STORE_OP_PUT, .key = "crash/a", .key_len = 7, .value = value, .value_len = CRASH_VALUE_SIZE},
            {.type = STORE_OP_PUT, .key = "crash/b", .key_len = 7, .value = value, .value_len = CRASH_VALUE_SIZE},
            {.type = STORE_OP_PUT, .key = "crash/n", .key_len = 7, .value = num, .value_len = strlen(num)},
        };
        int64_t rev = 0;
        if (store_transaction(s, &(store_txn){.success = ops, .n_success = 3}, on_child_reply, &rev) < 0)
            _exit(3);
        while (rev == 0)
            (void)uv_run(&loop, UV_RUN_ONCE);
        if (rev < 0)
            _exit(4);
        /* Reported only once the write's callback said it is done. */
        if (write(fd, &rev, sizeof(rev)) != sizeof(rev))
            _exit(5);
    }
}

static void on_child_get(store *s, int error, const store_result *res, void *userdata) {
    int64_t *n = userdata;
    *n = error < 0 ? error : res->n_kvs == 0 ? 0 : strtoll(res->kvs[0].value, NULL, 10);
}

static int64_t child_get_counter(uv_loop_t *loop, store *s) {
    int64_t n = -1000;
    if (store_get(s, "crash/n", on_child_get, &n) < 0)
        _exit(6);
    while (n == -1000)
        (void)uv_run(loop, UV_RUN_ONCE);
    if (n < 0)
        _exit(7);
    return n;
}

static void check_crash_consistent(struct fixture *f, int64_t last_reported) {
    int64_t rev = store_revision(f->s);
    if (rev < last_reported)
        CHECK_FAIL("revision %lld after the crash, but %lld was reported written", (long long)rev,
                   (long long)last_reported);
    const struct tkv *a = get_kv(f, "crash/a"), *b = get_kv(f, "crash/b"), *n = get_kv(f, "crash/n");
    ASSERT(a && b && n);
    int64_t count = strtoll(n->value, NULL, 10);
    /* Each write changed all three keys at one revision: rev = 1 + writes. */
    ASSERT_EQ(rev, 1 + count);
    ASSERT_EQ(a->mod_revision, rev);
    ASSERT_EQ(b->mod_revision, rev);
    ASSERT_EQ(n->mod_revision, rev);
    ASSERT_EQ(a->version, count);
    ASSERT_EQ(a->create_revision, 2);
    char want[CRASH_VALUE_SIZE];
    crash_value(want, (uint64_t)count);
    ASSERT_EQ(a->value_len, CRASH_VALUE_SIZE);
    ASSERT(memcmp(a->value, want, CRASH_VALUE_SIZE) == 0);
    ASSERT(memcmp(b->value, want, CRASH_VALUE_SIZE) == 0);

    /* History is whole: three events per revision, up to the last one. */
    struct wrec *w = watch(f, "crash/", rev - 9);
    run_until_events(f, w, 30);
    for (int i = 0; i < 30; i++)
        assert_event(w, (size_t)i, STORE_EVENT_PUT,
                     i % 3 == 0   ? "crash/a"
                     : i % 3 == 1 ? "crash/b"
                                  : "crash/n",
                     rev - 9 + i / 3);
    w->w = store_watch_cancel(w->w);
}

static void check_sqlite_crash(struct fixture *f) {
    int64_t last_reported = 0;
    srand((unsigned)getpid());

    for (int round = 0; round < 4; round++) {
        int fds[2];
        f->s = store_free(f->s); /* the child writes alone; we reopen after the crash */
        run_dry(f);
        ASSERT_OK(pipe2(fds, O_CLOEXEC));
        fflush(NULL);
        pid_t pid = fork();
        ASSERT(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            crash_writer(f->path, fds[1]);
        }
        close(fds[1]);

        /* Let it make progress, then kill it at a random moment. */
        int64_t rev;
        for (int seen = 0; seen < 50; seen++) {
            if (read(fds[0], &rev, sizeof(rev)) != sizeof(rev))
                CHECK_FAIL("the writer died early");
            last_reported = rev;
        }
        usleep((useconds_t)(rand() % 20000));
        ASSERT_OK(kill(pid, SIGKILL));
        int status;
        ASSERT_EQ(waitpid(pid, &status, 0), pid);
        ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        while (read(fds[0], &rev, sizeof(rev)) == sizeof(rev))
            last_reported = rev;
        close(fds[0]);

        /* Killed without a checkpoint: the writes are in the WAL, which the open must recover. */
        char wal[160];
        struct stat stw;
        snprintf(wal, sizeof(wal), "%s-wal", f->path);
        ASSERT_OK(stat(wal, &stw));
        ASSERT(stw.st_size > 0);

        ASSERT_OK(f->b->open(f));
        check_crash_consistent(f, last_reported);
    }

    /* And SQLite agrees that the file is sound. */
    sqlite3 *db;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_STREQ((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
    int64_t rev = store_revision(f->s);
    ASSERT_EQ(put_ok(f, "after", "crash"), rev + 1);
}
TEST(sqlite_crash_recovery) {
    run_sqlite(check_sqlite_crash);
}

static void check_sqlite_open_errors(struct fixture *f) {
    store *s = NULL;
    char p[160];

    /* Not a database. */
    snprintf(p, sizeof(p), "%s/garbage.db", f->dir);
    FILE *g = fopen(p, "we");
    ASSERT(g);
    for (int i = 0; i < 512; i++)
        fputs("this is not an SQLite database ", g);
    fclose(g);
    ASSERT_EQ(store_sqlite_new(&f->loop, p, &s), -EBADMSG);
    ASSERT(!s);
    ASSERT_OK(unlink(p));

    /* A directory that does not exist. */
    snprintf(p, sizeof(p), "%s/missing/store.db", f->dir);
    int r = store_sqlite_new(&f->loop, p, &s);
    ASSERT(r < 0);
    ASSERT(!s);

    /* A database from another schema version. */
    fixture_close_store(f);
    sqlite3 *db;
    ASSERT_EQ(sqlite3_open(f->path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ(store_sqlite_new(&f->loop, f->path, &s), -EPROTONOSUPPORT);
    ASSERT(!s);
    ASSERT_EQ(store_sqlite_new(NULL, f->path, &s), -EINVAL);

    /* A failed open leaves nothing on the loop. */
    ASSERT_EQ(uv_run(&f->loop, UV_RUN_NOWAIT), 0);
    ASSERT_EQ(sqlite3_open(f->path, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_OK(f->b->open(f));
}
TEST(sqlite_open_errors) {
    run_sqlite(check_sqlite_open_errors);
}

/* The file descriptors of this process open on path. */
static int fds_on(const char *path) {
    char link[64], target[256];
    int n = 0;
    for (int fd = 0; fd < 1024; fd++) {
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t len = readlink(link, target, sizeof(target) - 1);
        if (len < 0)
            continue;
        target[len] = '\0';
        n += strcmp(target, path) == 0;
    }
    return n;
}

/* About 100 MB through the WAL (6,000 writes of 8 KiB, each also in the history), one right after
 * the other: the WAL's checkpoints run in the thread pool on a connection of their own (a second
 * descriptor on the file), not in a COMMIT on the loop.  While they lag (a slow disk under a steady
 * stream: CI saw the WAL reach 109 MB) the WAL grows; once the writes slow down it starts over and
 * is cut back to journal_size_limit (4 MiB).  Writes never wait for a checkpoint. */
static void check_sqlite_wal_checkpoints_off_the_loop(struct fixture *f) {
    char wal[160], key[32];
    static char value[8192];
    struct stat st;
    memset(value, 'w', sizeof(value) - 1);
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    ASSERT_EQ(fds_on(f->path), 1);
    for (int i = 0; i < 6000; i++) {
        snprintf(key, sizeof(key), "w/%d", i % 200);
        put_ok(f, key, value);
    }
    uv_run(&f->loop, UV_RUN_NOWAIT);
    ASSERT_EQ(fds_on(f->path), 2);
    /* A write every 50 ms: the pool catches up, and a write starts the WAL over. */
    uint64_t deadline = now_msec() + 20000;
    for (;;) {
        ASSERT_OK(stat(wal, &st) < 0 ? -errno : 0);
        if (st.st_size <= 5 * 1024 * 1024)
            break;
        if (now_msec() > deadline)
            CHECK_FAIL("the WAL is still %lld bytes 20 s after the stream", (long long)st.st_size);
        usleep(50 * 1000);
        put_ok(f, "w/0", "slow");
    }
    fixture_reopen(f);
    ASSERT_EQ(strlen(get_kv(f, "w/199")->value), sizeof(value) - 1);
}
TEST(sqlite_wal_checkpoints_off_the_loop) {
    run_sqlite(check_sqlite_wal_checkpoints_off_the_loop);
}
