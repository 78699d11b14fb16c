/* SPDX-License-Identifier: MIT */
/* Tests for the configuration database (cdb.c) on a real SQLite file. */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cdb.h"
#include "macro.h"
#include "tests.h"

struct fixture {
    char dir[64];
    char path[128];
    uv_loop_t loop;
    struct cdb *db;
};

static void setup(struct fixture *f) {
    snprintf(f->dir, sizeof(f->dir), "/tmp/halo-test-cdb-XXXXXX");
    ASSERT(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/cdb.db", f->dir);
    ASSERT_OK(uv_loop_init(&f->loop));
    ASSERT_OK(cdb_open(&f->loop, f->path, "n1", &f->db));
}

static void reopen(struct fixture *f, const char *node) {
    f->db = cdb_close(f->db);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_OK(cdb_open(&f->loop, f->path, node, &f->db));
}

static void teardown(struct fixture *f) {
    char cmd[128];
    f->db = cdb_close(f->db);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&f->loop));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    ASSERT_EQ(system(cmd), 0);
}

struct result {
    int calls, error;
    cdb_txid id;
};

static void on_commit(struct cdb *c, int error, const cdb_txid *id, void *userdata) {
    struct result *r = userdata;
    r->calls++;
    r->error = error;
    if (id)
        r->id = *id;
}

static cdb_txid commit(struct fixture *f, const struct cdb_op *ops, size_t n) {
    struct result r = {0};
    ASSERT_OK(cdb_commit(f->db, NULL, ops, n, on_commit, &r));
    ASSERT_EQ(r.calls, 0); /* never from inside the call */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 1);
    ASSERT_OK(r.error);
    return r.id;
}

#define SET(p, v) ((struct cdb_op){.path = (p), .value = (const uint8_t *)(v), .len = strlen(v)})
#define DEL(p) ((struct cdb_op){.path = (p), .del = true})

static char *get(struct fixture *f, const char *path) {
    uint8_t *v = NULL;
    size_t n = 0;
    int r = cdb_get(f->db, path, &v, &n);
    if (r == -ENOENT)
        return NULL;
    ASSERT_OK(r);
    ASSERT_EQ(strlen((char *)v), n);
    return (char *)v;
}

static int collect(const char *path, const uint8_t *value, size_t len, void *userdata) {
    char *out = userdata;
    size_t n = strlen(out);
    snprintf(out + n, 4096 - n, "%s=%.*s;", path, (int)len, (const char *)value);
    return 0;
}

static char *list(struct fixture *f, const char *path) {
    static char out[4096];
    out[0] = '\0';
    ASSERT_EQ(cdb_list(f->db, path, NULL, collect, out), 0);
    return out;
}

TEST(cdb_sets_gets_lists_and_deletes_subtrees) {
    struct fixture f;
    setup(&f);
    struct cdb_op ops[] = {SET("/a/b", "1"), SET("/a/c/d", "2"), SET("/a-x", "3"), SET("/ab", "4"), SET("/a", "0")};
    commit(&f, ops, ELEMENTSOF(ops));

    _cleanup_free_ char *v = get(&f, "/a/c/d");
    ASSERT_STREQ(v, "2");
    ASSERT(!get(&f, "/a/c"));
    /* The subtree of /a is /a and what is under "/a/", not its siblings "/a-x" and "/ab". */
    ASSERT_STREQ(list(&f, "/a"), "/a=0;/a/b=1;/a/c/d=2;");
    ASSERT_STREQ(list(&f, "/"), "/a=0;/a-x=3;/a/b=1;/a/c/d=2;/ab=4;"); /* byte order: '-' < '/' */
    ASSERT_STREQ(list(&f, "/nothing"), "");

    struct cdb_op del[] = {DEL("/a")};
    commit(&f, del, 1);
    ASSERT_STREQ(list(&f, "/"), "/a-x=3;/ab=4;");
    struct cdb_op all[] = {DEL("/")};
    commit(&f, all, 1);
    ASSERT_STREQ(list(&f, "/"), "");
    teardown(&f);
}

static int stop_after_two(const char *path, const uint8_t *value, size_t len, void *userdata) {
    int *n = userdata;
    return ++*n == 2 ? 1 : 0;
}

TEST(cdb_list_goes_on_after_a_path) {
    struct fixture f;
    setup(&f);
    struct cdb_op ops[] = {SET("/l/1", "a"), SET("/l/2", "b"), SET("/l/3", "c")};
    commit(&f, ops, 3);
    int n = 0;
    ASSERT_EQ(cdb_list(f.db, "/l", NULL, stop_after_two, &n), 1);
    char out[4096] = "";
    ASSERT_EQ(cdb_list(f.db, "/l", "/l/2", collect, out), 0);
    ASSERT_STREQ(out, "/l/3=c;");
    teardown(&f);
}

TEST(cdb_transactions_in_one_iteration_commit_together_in_order) {
    struct fixture f;
    setup(&f);
    struct result r[3] = {0};
    struct cdb_op a[] = {SET("/k", "1")}, b[] = {SET("/k", "2"), SET("/j", "x")}, c[] = {DEL("/j")};
    ASSERT_OK(cdb_commit(f.db, NULL, a, 1, on_commit, &r[0]));
    ASSERT_OK(cdb_commit(f.db, NULL, b, 2, on_commit, &r[1]));
    ASSERT_OK(cdb_commit(f.db, NULL, c, 1, on_commit, &r[2]));
    uv_run(&f.loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(r[i].calls, 1);
        ASSERT_OK(r[i].error);
        ASSERT_STREQ(r[i].id.node, "n1");
    }
    /* Ids grow in commit order, and the last is the database's. */
    ASSERT(r[0].id.hlc < r[1].id.hlc && r[1].id.hlc < r[2].id.hlc);
    ASSERT(cdb_txid_equal(cdb_last(f.db), &r[2].id));
    _cleanup_free_ char *k = get(&f, "/k");
    ASSERT_STREQ(k, "2");
    ASSERT(!get(&f, "/j"));
    teardown(&f);
}

TEST(cdb_refuses_bad_paths_and_empty_transactions) {
    struct fixture f;
    setup(&f);
    struct result r = {0};
    const char *bad[] = {"", "a", "/", "//a", "/a/", "/a//b", "/a\nb"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        struct cdb_op op = SET(bad[i], "v");
        ASSERT_EQ(cdb_commit(f.db, NULL, &op, 1, on_commit, &r), -EINVAL);
    }
    struct cdb_op op = SET("/ok", "v");
    ASSERT_EQ(cdb_commit(f.db, NULL, &op, 0, on_commit, &r), -EINVAL);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(r.calls, 0); /* a failed call never calls back */
    teardown(&f);
}

TEST(cdb_keeps_values_and_the_last_id_across_a_reopen) {
    struct fixture f;
    setup(&f);
    struct cdb_op ops[] = {SET("/p", "persisted")};
    cdb_txid id = commit(&f, ops, 1);
    reopen(&f, "n2");
    ASSERT(cdb_txid_equal(cdb_last(f.db), &id));
    _cleanup_free_ char *v = get(&f, "/p");
    ASSERT_STREQ(v, "persisted");
    /* This node's next id is greater, even though another node made the last one. */
    cdb_txid next = commit(&f, ops, 1);
    ASSERT(next.hlc > id.hlc);
    ASSERT_STREQ(next.node, "n2");
    teardown(&f);
}

/* A cdb-roles group's file is bound to its subtree: the first time once it holds nothing outside
 * it, then only to the same one, across a reopen. */
TEST(cdb_binds_a_file_to_one_subtree) {
    struct fixture f;
    setup(&f);
    char why[128] = "";
    struct cdb_op in[] = {SET("/bill", "root"), SET("/bill/a", "1")};
    (void)commit(&f, in, 2);
    ASSERT_OK(cdb_bind_subtree(f.db, "/bill", why, sizeof(why)));
    ASSERT_OK(cdb_bind_subtree(f.db, "/bill", why, sizeof(why)));
    reopen(&f, "n1");
    ASSERT_OK(cdb_bind_subtree(f.db, "/bill", why, sizeof(why)));
    ASSERT_EQ(cdb_bind_subtree(f.db, "/billing", why, sizeof(why)), -EEXIST);
    ASSERT_STREQ(why, "it holds subtree /bill");
    teardown(&f);

    setup(&f);
    struct cdb_op out[] = {SET("/bill/a", "1"), SET("/billing", "2")};
    (void)commit(&f, out, 2);
    ASSERT_EQ(cdb_bind_subtree(f.db, "/bill", why, sizeof(why)), -ENOTEMPTY);
    ASSERT_STREQ(why, "it holds /billing, outside /bill");
    teardown(&f);
}

TEST(cdb_applies_a_primary_transaction_with_its_id) {
    struct fixture f;
    setup(&f);
    cdb_txid theirs = {.hlc = 123456789, .node = "primary"};
    struct result r = {0};
    struct cdb_op ops[] = {SET("/from", "primary")};
    ASSERT_OK(cdb_commit(f.db, &theirs, ops, 1, on_commit, &r));
    uv_run(&f.loop, UV_RUN_DEFAULT);
    ASSERT_OK(r.error);
    ASSERT(cdb_txid_equal(&r.id, &theirs));
    ASSERT(cdb_txid_equal(cdb_last(f.db), &theirs));
    teardown(&f);
}

struct seen {
    int calls;
    size_t ops;
    char last_path[64];
};

static void on_observe(struct cdb *c, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata) {
    struct seen *s = userdata;
    s->calls++;
    s->ops = n;
    if (n)
        snprintf(s->last_path, sizeof(s->last_path), "%s", ops[n - 1].path);
}

TEST(cdb_snapshot_is_consistent_while_commits_go_on_and_replaces_another_database) {
    struct fixture f, g;
    setup(&f);
    setup(&g);
    struct cdb_op ops[] = {SET("/s/1", "one"), SET("/s/2", "two")};
    cdb_txid id = commit(&f, ops, 2);

    struct cdb_snapshot *snap;
    cdb_txid snap_id;
    uint64_t paths;
    ASSERT_OK(cdb_snapshot_open(f.db, &snap, &snap_id, &paths));
    ASSERT(cdb_txid_equal(&snap_id, &id));
    ASSERT_EQ(paths, 2);
    /* A commit after the snapshot does not show in it. */
    struct cdb_op later[] = {SET("/s/3", "three"), DEL("/s/1")};
    commit(&f, later, 2);

    struct seen seen = {0};
    ASSERT_OK(cdb_observe(g.db, on_observe, NULL, &seen));
    struct cdb_op old[] = {SET("/old", "gone after the copy")};
    commit(&g, old, 1);
    ASSERT_OK(cdb_replace_begin(g.db));
    struct result r = {0};
    ASSERT_EQ(cdb_commit(g.db, NULL, old, 1, on_commit, &r), -EBUSY);
    char rows[4096] = "";
    int k;
    while ((k = cdb_snapshot_next(snap, 1, collect, rows)) > 0)
        ;
    ASSERT_OK(k);
    ASSERT_STREQ(rows, "/s/1=one;/s/2=two;");
    cdb_snapshot_close(snap);
    ASSERT_OK(cdb_replace_add(g.db, "/s/1", (const uint8_t *)"one", 3));
    ASSERT_OK(cdb_replace_add(g.db, "/s/2", (const uint8_t *)"two", 3));
    ASSERT_OK(cdb_replace_end(g.db, &snap_id));
    ASSERT_STREQ(list(&g, "/"), "/s/1=one;/s/2=two;");
    ASSERT(cdb_txid_equal(cdb_last(g.db), &snap_id));
    ASSERT_EQ(seen.calls, 2); /* the commit, then the copy as one change with no ops */
    ASSERT_EQ(seen.ops, 0);
    /* It stays after a reopen, and commits work again. */
    reopen(&g, "n1");
    ASSERT_STREQ(list(&g, "/"), "/s/1=one;/s/2=two;");
    commit(&g, old, 1);
    teardown(&g);
    teardown(&f);
}

TEST(cdb_replace_abort_keeps_the_old_database) {
    struct fixture f;
    setup(&f);
    struct cdb_op ops[] = {SET("/keep", "me")};
    cdb_txid id = commit(&f, ops, 1);
    ASSERT_OK(cdb_replace_begin(f.db));
    ASSERT_OK(cdb_replace_add(f.db, "/other", (const uint8_t *)"x", 1));
    cdb_replace_abort(f.db);
    ASSERT_STREQ(list(&f, "/"), "/keep=me;");
    ASSERT(cdb_txid_equal(cdb_last(f.db), &id));
    commit(&f, ops, 1);
    teardown(&f);
}

static int collect_own(const cdb_txid *id, const char *paths, void *userdata) {
    char *out = userdata;
    size_t n = strlen(out);
    ASSERT_STREQ(id->node, "n1");
    snprintf(out + n, 4096 - n, "%s;", paths);
    return 0;
}

static char *own_after(struct fixture *f, uint64_t hlc) {
    static char out[4096];
    out[0] = '\0';
    ASSERT_OK(cdb_own_after(f->db, hlc, collect_own, out));
    return out;
}

TEST(cdb_names_its_own_transactions_after_the_last_one_taken_from_another_node) {
    struct fixture f;
    setup(&f);
    cdb_txid none = {0};
    ASSERT(cdb_txid_equal(cdb_upstream(f.db), &none));
    struct cdb_op first[] = {SET("/a", "1")};
    cdb_txid a = commit(&f, first, 1);
    /* A transaction of another node's: the upstream moves, nothing of ours is remembered for it. */
    cdb_txid theirs = {.hlc = a.hlc + 65536, .node = "n2"};
    struct result r = {0};
    struct cdb_op applied[] = {SET("/b", "2")};
    ASSERT_OK(cdb_commit(f.db, &theirs, applied, 1, on_commit, &r));
    uv_run(&f.loop, UV_RUN_DEFAULT);
    ASSERT(cdb_txid_equal(cdb_upstream(f.db), &theirs));
    /* Ours after it: its paths, shortened when long. */
    struct cdb_op second[] = {SET("/c", "3"), DEL("/a")};
    commit(&f, second, 2);
    struct cdb_op many[40];
    char paths[40][16];
    for (size_t i = 0; i < ELEMENTSOF(many); i++) {
        snprintf(paths[i], sizeof(paths[i]), "/many/%02zu", i);
        many[i] = SET(paths[i], "v");
    }
    commit(&f, many, ELEMENTSOF(many));
    const char *long_paths = "/many/00 /many/01 /many/02 /many/03 /many/04 /many/05 /many/06 /many/07 /many/08 "
                             "/many/09 /many/10 /many/11 /many/12 /many/13 /many/14 /many/15 /many/16 /many/17 "
                             "/many/18 /many/19 /many/20 /many/21 +18 more;";
    char want[1024];
    snprintf(want, sizeof(want), "/a;/c /a;%s", long_paths);
    ASSERT_STREQ(own_after(&f, 0), want);
    snprintf(want, sizeof(want), "/c /a;%s", long_paths);
    ASSERT_STREQ(own_after(&f, cdb_upstream(f.db)->hlc), want);
    /* Both survive a restart. */
    reopen(&f, "n1");
    ASSERT(cdb_txid_equal(cdb_upstream(f.db), &theirs));
    ASSERT_STREQ(own_after(&f, theirs.hlc), want);
    /* A full copy: everything comes from it, nothing is ours any more. */
    cdb_txid copy = {.hlc = theirs.hlc + 10 * 65536, .node = "n2"};
    ASSERT_OK(cdb_replace_begin(f.db));
    ASSERT_OK(cdb_replace_add(f.db, "/copied", (const uint8_t *)"x", 1));
    ASSERT_OK(cdb_replace_end(f.db, &copy));
    ASSERT(cdb_txid_equal(cdb_upstream(f.db), &copy));
    ASSERT_STREQ(own_after(&f, 0), "");
    teardown(&f);
}

static int count_own(const cdb_txid *id, const char *paths, void *userdata) {
    uint64_t *n = userdata;
    ++*n;
    return 0;
}

TEST(cdb_remembers_a_bounded_number_of_its_own_transactions) {
    struct fixture f;
    setup(&f);
    struct cdb_op ops[] = {SET("/k", "v")};
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 2000; i++)
            ASSERT_OK(cdb_commit(f.db, NULL, ops, 1, NULL, NULL));
        uv_run(&f.loop, UV_RUN_DEFAULT);
    }
    uint64_t n = 0;
    ASSERT_OK(cdb_own_after(f.db, 0, count_own, &n));
    ASSERT(n >= 4096 && n < 4096 + 1024);
    /* The newest is among them. */
    n = 0;
    ASSERT_OK(cdb_own_after(f.db, cdb_last(f.db)->hlc - 1, count_own, &n));
    ASSERT_EQ(n, 1);
    teardown(&f);
}

TEST(cdb_opens_a_version_1_file_and_goes_on) {
    char dir[] = "/tmp/halo-test-cdb-XXXXXX", path[64];
    sqlite3 *old = NULL;
    ASSERT(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/cdb.db", dir);
    ASSERT_EQ(sqlite3_open(path, &old), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(old,
                           "CREATE TABLE kv (path TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
                           "CREATE TABLE meta (name TEXT PRIMARY KEY, value NOT NULL) WITHOUT ROWID;"
                           "INSERT INTO kv VALUES ('/old', 'v');"
                           "INSERT INTO meta VALUES ('txid_hlc', 7), ('txid_node', 'n2');"
                           "PRAGMA user_version = 1;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(old);
    struct fixture f = {0};
    snprintf(f.dir, sizeof(f.dir), "%s", dir);
    snprintf(f.path, sizeof(f.path), "%s", path);
    ASSERT_OK(uv_loop_init(&f.loop));
    ASSERT_OK(cdb_open(&f.loop, f.path, "n1", &f.db));
    _cleanup_free_ char *v = get(&f, "/old");
    ASSERT_STREQ(v, "v");
    ASSERT_EQ(cdb_last(f.db)->hlc, 7);
    struct cdb_op ops[] = {SET("/new", "w")};
    commit(&f, ops, 1);
    ASSERT_STREQ(own_after(&f, 0), "/new;");
    teardown(&f);
}

TEST(cdb_txid_text_form_round_trips_and_rejects_garbage) {
    cdb_txid id = {.hlc = 117663894132686848ULL, .node = "n1"}, back;
    char buf[CDB_TXID_STRING_MAX];
    ASSERT_STREQ(cdb_txid_format(&id, buf), "117663894132686848@n1");
    ASSERT_OK(cdb_txid_parse(buf, &back));
    ASSERT(cdb_txid_equal(&id, &back));
    cdb_txid none = {0};
    ASSERT_OK(cdb_txid_parse(cdb_txid_format(&none, buf), &back));
    ASSERT(cdb_txid_equal(&none, &back));
    const char *bad[] = {"", "@", "12", "x@n1", "1@", "0@n1", "99999999999999999999999@n1", "-1@n1"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        ASSERT_EQ(cdb_txid_parse(bad[i], &back), -EINVAL);
}

TEST(cdb_refuses_a_file_that_is_not_a_database) {
    char dir[] = "/tmp/halo-test-cdb-XXXXXX", path[64], cmd[96];
    uv_loop_t loop;
    struct cdb *db = NULL;
    ASSERT(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/cdb.db", dir);
    FILE *fp = fopen(path, "w");
    ASSERT(fp);
    fputs("this is not SQLite, and it is long enough to have a header of its own.............", fp);
    fclose(fp);
    ASSERT_OK(uv_loop_init(&loop));
    ASSERT_EQ(cdb_open(&loop, path, "n1", &db), -EBADMSG);
    ASSERT_OK(uv_loop_close(&loop));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
}

TEST(cdb_wal_stays_bounded_under_a_steady_stream_of_commits) {
    struct fixture f;
    char wal[160], value[8192];
    struct stat st;
    setup(&f);
    snprintf(wal, sizeof(wal), "%s-wal", f.path);
    memset(value, 'w', sizeof(value));
    /* 20,000 groups of one 8 KiB value, about 160 MB through the WAL, one right after the other:
     * each loop turn runs only what is due, so the pool's checkpoints run meanwhile. */
    for (int i = 0; i < 20000; i++) {
        char path[32];
        struct result r = {0};
        snprintf(path, sizeof(path), "/w/%d", i % 500);
        struct cdb_op op = {.path = path, .value = (const uint8_t *)value, .len = sizeof(value)};
        ASSERT_OK(cdb_commit(f.db, NULL, &op, 1, on_commit, &r));
        while (r.calls == 0)
            uv_run(&f.loop, UV_RUN_NOWAIT);
        ASSERT_OK(r.error);
    }
    uv_run(&f.loop, UV_RUN_DEFAULT);
    ASSERT_OK(stat(wal, &st) < 0 ? -errno : 0);
    /* CDB_WAL_RESTART_PAGES (16,000 pages of 4 KiB, 64 MB) and a group's worth: it started over. */
    ASSERT(st.st_size < 80 * 1024 * 1024);
    _cleanup_free_ char *v = get(&f, "/w/499");
    ASSERT_EQ(strlen(v), sizeof(value));
    teardown(&f);
}
