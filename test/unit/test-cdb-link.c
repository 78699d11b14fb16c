/* SPDX-License-Identifier: MIT */
/* Tests for the CDB on the HA link (cdb-link.c): the list merge, and routing to a main and a subtree database. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cdb-link.h"
#include "cdb.h"
#include "fake-io.h"
#include "halo/halo.h"
#include "macro.h"
#include "tests.h"

/* ---- the merge alone ---------------------------------------------------------- */

#define SOURCE_MAX 32

/* A database's paths in byte order, as the merge gets them. */
struct source {
    Halo__Link__CdbOp ops[SOURCE_MAX];
    Halo__Link__CdbOp *pops[SOURCE_MAX];
    size_t n;
};

static void source_init(struct source *s, const char *const *paths, size_t value_len) {
    *s = (struct source){0};
    for (; *paths; paths++) {
        ASSERT(s->n < SOURCE_MAX);
        halo__link__cdb_op__init(&s->ops[s->n]);
        s->ops[s->n].path = (char *)*paths;
        s->ops[s->n].value.len = value_len;
        s->pops[s->n] = &s->ops[s->n];
        s->n++;
    }
}

/* The page a database gives: at most max paths after `after` (NULL: from the start). */
static struct cdb_link_page source_page(const struct source *s, const char *after, size_t max) {
    size_t i = 0;
    while (after && i < s->n && strcmp(s->pops[i]->path, after) <= 0)
        i++;
    size_t n = s->n - i < max ? s->n - i : max;
    return (struct cdb_link_page){.items = s->pops + i, .n = n, .more = i + n < s->n};
}

#define MERGED_MAX 16

/* Merges the pages and writes the paths of the merged one to buf, space-separated; returns its more. */
static bool merge(const struct cdb_link_page *pages, size_t n_pages, size_t max_items, size_t max_bytes,
                  char buf[static 256]) {
    Halo__Link__CdbOp *out[MERGED_MAX];
    bool more = true; /* the merge writes it: the cases without more show that it did */
    size_t at = 0;
    ASSERT(max_items <= MERGED_MAX);
    size_t n = cdb_link_merge_pages(pages, n_pages, max_items, max_bytes, out, &more);
    ASSERT(n <= max_items);
    buf[0] = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + at, 256 - at, "%s%s", i ? " " : "", out[i]->path);
        ASSERT(w > 0 && (size_t)w < 256 - at);
        at += (size_t)w;
    }
    return more;
}

static const char *const main_paths[] = {"/a", "/bilk", "/bill-x", "/c", "/c/a", "/z", NULL};
static const char *const bill_paths[] = {"/bill", "/bill/a", "/bill/a/b", "/bill/b", NULL};
static const char *const x_paths[] = {"/x", "/x/1", "/x/2", NULL};

TEST(merge_stops_at_the_first_page_that_has_more_and_keeps_byte_order) {
    struct source m, b, x;
    char buf[256];
    source_init(&m, main_paths, 0);
    source_init(&b, bill_paths, 0);
    source_init(&x, x_paths, 0);
    /* bill said more after /bill/a: its next paths might sort before /bill-x's followers. */
    struct cdb_link_page pages[] = {source_page(&m, NULL, 10), source_page(&b, NULL, 2), source_page(&x, NULL, 10)};
    ASSERT(merge(pages, 3, MERGED_MAX, 1 << 20, buf));
    /* '-' sorts before '/': strcmp's order (SQLite's BINARY), not component by component. */
    ASSERT_STREQ(buf, "/a /bilk /bill /bill-x /bill/a");

    /* Every page whole: all of it, in order, nothing more. */
    pages[1] = source_page(&b, NULL, 10);
    ASSERT(!merge(pages, 3, MERGED_MAX, 1 << 20, buf));
    ASSERT_STREQ(buf, "/a /bilk /bill /bill-x /bill/a /bill/a/b /bill/b /c /c/a /x /x/1 /x/2 /z");

    /* One page alone comes out as it went in. */
    pages[0] = source_page(&m, "/a", 3);
    ASSERT(merge(pages, 1, MERGED_MAX, 1 << 20, buf));
    ASSERT_STREQ(buf, "/bilk /bill-x /c");
}

TEST(merge_cuts_at_the_item_and_byte_limits_and_says_more) {
    struct source m, b;
    char buf[256];
    source_init(&m, main_paths, 100);
    source_init(&b, bill_paths, 100);
    struct cdb_link_page pages[] = {source_page(&m, NULL, 10), source_page(&b, NULL, 10)};

    ASSERT(merge(pages, 2, 3, 1 << 20, buf));
    ASSERT_STREQ(buf, "/a /bilk /bill");

    /* Each item costs its path, a NUL, its 100 bytes and the framing: /a and /bilk fit, /bill not
     * by one byte. */
    size_t three = (2 + 1 + 100 + CDB_LINK_ITEM_FRAMING) + (5 + 1 + 100 + CDB_LINK_ITEM_FRAMING) +
                   (5 + 1 + 100 + CDB_LINK_ITEM_FRAMING);
    ASSERT(merge(pages, 2, MERGED_MAX, three - 1, buf));
    ASSERT_STREQ(buf, "/a /bilk");
    ASSERT(merge(pages, 2, MERGED_MAX, three, buf));
    ASSERT_STREQ(buf, "/a /bilk /bill");

    /* The first item goes in whatever it costs, so that a page always moves on. */
    ASSERT(merge(pages, 2, MERGED_MAX, 10, buf));
    ASSERT_STREQ(buf, "/a");

    /* Nothing at all. */
    struct cdb_link_page empty[] = {{.n = 0}, {.n = 0}};
    ASSERT(!merge(empty, 2, MERGED_MAX, 1 << 20, buf));
    ASSERT_STREQ(buf, "");
}

static int cmp_paths(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Paging as libhalo does it (after = the last path of the previous page) gives every path once, in
 * order, whatever the sizes of the databases' pages and of the merged page. */
TEST(merge_pages_read_after_the_last_path_give_every_path_once_in_order) {
    struct source src[3];
    source_init(&src[0], main_paths, 0);
    source_init(&src[1], bill_paths, 0);
    source_init(&src[2], x_paths, 0);
    const char *all[SOURCE_MAX * 3];
    size_t n_all = 0;
    for (size_t s = 0; s < 3; s++)
        for (size_t i = 0; i < src[s].n; i++)
            all[n_all++] = src[s].pops[i]->path;
    qsort(all, n_all, sizeof(*all), cmp_paths);

    static const size_t page_max[] = {1, 2, 3, 5, 100}, out_max[] = {1, 2, 3, 4, 7, 100};
    for (size_t a = 0; a < ELEMENTSOF(page_max); a++)
        for (size_t b = 0; b < ELEMENTSOF(page_max); b++)
            for (size_t o = 0; o < ELEMENTSOF(out_max); o++) {
                const char *after = NULL;
                size_t seen = 0, rounds = 0;
                bool more = true;
                while (more) {
                    Halo__Link__CdbOp *out[100];
                    struct cdb_link_page pages[] = {source_page(&src[0], after, page_max[a]),
                                                    source_page(&src[1], after, page_max[b]),
                                                    source_page(&src[2], after, page_max[(a + b) % 5])};
                    size_t n = cdb_link_merge_pages(pages, 3, out_max[o], 1 << 20, out, &more);
                    ASSERT(n > 0 || !more);
                    for (size_t i = 0; i < n; i++) {
                        ASSERT(seen < n_all);
                        ASSERT_STREQ(out[i]->path, all[seen]);
                        seen++;
                    }
                    if (n)
                        after = out[n - 1]->path;
                    ASSERT(++rounds <= n_all + 1);
                }
                ASSERT_EQ(seen, n_all);
            }
}

/* ---- a link with a main database and the subtree /bill ------------------------------ */

struct fixture {
    char dir[64];
    uv_loop_t loop;
    struct cdb *main, *bill;
    struct cdb_link *link;
    struct conn conn;
    uint64_t seq;
};

static void setup(struct fixture *f) {
    char path[128];
    *f = (struct fixture){0};
    snprintf(f->dir, sizeof(f->dir), "/tmp/halo-test-cdb-link-XXXXXX");
    ASSERT(mkdtemp(f->dir));
    ASSERT_OK(uv_loop_init(&f->loop));
    snprintf(path, sizeof(path), "%s/cdb.db", f->dir);
    ASSERT_OK(cdb_open(&f->loop, path, "n1", &f->main));
    snprintf(path, sizeof(path), "%s/cdb-bill.db", f->dir);
    ASSERT_OK(cdb_open(&f->loop, path, "n1", &f->bill));
    ASSERT_OK(cdb_link_new(f->main, &f->link));
    ASSERT_OK(cdb_link_add_subtree(f->link, "/bill", f->bill));
}

static void teardown(struct fixture *f) {
    char cmd[128];
    fake_conn_done(&f->conn);
    f->link = cdb_link_free(f->link);
    f->main = cdb_close(f->main);
    f->bill = cdb_close(f->bill);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&f->loop));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    ASSERT_EQ(system(cmd), 0);
}

static void on_commit(struct cdb *c, int error, const cdb_txid *id, void *userdata) {
    ASSERT_OK(error);
}

/* Commits straight into db, past the link. */
static void put(struct fixture *f, struct cdb *db, const char *path, size_t len) {
    _cleanup_free_ uint8_t *v = malloc(len + 1);
    ASSERT(v);
    memset(v, 'v', len);
    struct cdb_op op = {.path = path, .value = v, .len = len};
    ASSERT_OK(cdb_commit(db, NULL, &op, 1, on_commit, NULL));
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static bool has(struct cdb *db, const char *path) {
    _cleanup_free_ uint8_t *v = NULL;
    size_t n;
    int r = cdb_get(db, path, &v, &n);
    if (r == -ENOENT)
        return false;
    ASSERT_OK(r);
    return true;
}

/* What the link answered to request seq: its error, and the Reply (NULL when it was an error alone). */
static int answer(struct fixture *f, uint64_t seq, const Halo__Link__Reply **ret_reply) {
    uint64_t s;
    int r = fake_conn_last_reply(&f->conn, &s, NULL);
    ASSERT_EQ(s, seq);
    const LinkMsg *m = f->conn.n_msgs ? f->conn.msgs[f->conn.n_msgs - 1] : NULL;
    if (ret_reply)
        *ret_reply = m && m->body_case == HALO__LINK__MSG__BODY_REPLY && m->reply->seq == seq ? m->reply : NULL;
    return r;
}

#define SET(p)                                                                                            \
    {                                                                                                     \
        .base = PROTOBUF_C_MESSAGE_INIT(&halo__link__cdb_op__descriptor), .path = (char *)(p), .value = { \
            1,                                                                                            \
            (uint8_t *)"1"                                                                                \
        }                                                                                                 \
    }
#define DEL(p) \
    { .base = PROTOBUF_C_MESSAGE_INIT(&halo__link__cdb_op__descriptor), .path = (char *)(p), .del = true }

static int commit(struct fixture *f, Halo__Link__CdbOp *ops, size_t n) {
    Halo__Link__CdbOp *pops[8];
    Halo__Link__CdbCommit cm = HALO__LINK__CDB_COMMIT__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    ASSERT(n <= ELEMENTSOF(pops));
    for (size_t i = 0; i < n; i++)
        pops[i] = &ops[i];
    cm.seq = ++f->seq;
    cm.ops = pops;
    cm.n_ops = n;
    m.body_case = HALO__LINK__MSG__BODY_CDB_COMMIT;
    m.cdb_commit = &cm;
    size_t replies = f->conn.n_replies;
    ASSERT(cdb_link_handle_msg(f->link, &f->conn, &m));
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_EQ(f->conn.n_replies, replies + 1);
    return answer(f, cm.seq, NULL);
}

#define COMMIT(f, ...) commit((f), (Halo__Link__CdbOp[]){__VA_ARGS__}, ELEMENTSOF(((Halo__Link__CdbOp[]){__VA_ARGS__})))

/* The value at path through the link, "" for none (-ENOENT); the caller frees it. */
static char *get(struct fixture *f, const char *path) {
    Halo__Link__CdbGet g = HALO__LINK__CDB_GET__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    const Halo__Link__Reply *rep;
    g.seq = ++f->seq;
    g.path = (char *)path;
    m.body_case = HALO__LINK__MSG__BODY_CDB_GET;
    m.cdb_get = &g;
    ASSERT(cdb_link_handle_msg(f->link, &f->conn, &m));
    int r = answer(f, g.seq, &rep);
    if (r == -ENOENT)
        return strdup("");
    ASSERT_OK(r);
    ASSERT(rep);
    return strndup((const char *)rep->value.data, rep->value.len);
}

/* Lists path as libhalo does, page by page; the paths, and in *ret_pages how many pages it took. */
static char *list(struct fixture *f, const char *path, unsigned *ret_pages) {
    char *all = strdup(""), *after = NULL;
    unsigned pages = 0;
    ASSERT(all);
    for (;;) {
        Halo__Link__CdbList l = HALO__LINK__CDB_LIST__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        const Halo__Link__Reply *rep;
        l.seq = ++f->seq;
        l.path = (char *)path;
        l.after = after ? after : (char *)"";
        m.body_case = HALO__LINK__MSG__BODY_CDB_LIST;
        m.cdb_list = &l;
        ASSERT(cdb_link_handle_msg(f->link, &f->conn, &m));
        ASSERT_OK(answer(f, l.seq, &rep));
        ASSERT(rep);
        pages++;
        for (size_t i = 0; i < rep->n_items; i++) {
            char *next;
            ASSERT(asprintf(&next, "%s%s%s", all, *all ? " " : "", rep->items[i]->path) > 0);
            free(all);
            all = next;
        }
        free(after);
        after = NULL;
        if (!rep->more || rep->n_items == 0)
            break;
        ASSERT((after = strdup(rep->items[rep->n_items - 1]->path)));
        /* The fake keeps FAKE_CONN_MSGS_MAX messages: start it over, the subscriptions hold its address. */
        fake_conn_done(&f->conn);
    }
    if (ret_pages)
        *ret_pages = pages;
    return all;
}

TEST(link_routes_gets_and_commits_to_the_region_of_their_paths) {
    struct fixture f;
    setup(&f);

    ASSERT_OK(COMMIT(&f, SET("/x"), SET("/bill-x")));
    ASSERT_OK(COMMIT(&f, SET("/bill"), SET("/bill/y")));
    ASSERT(has(f.main, "/x") && has(f.main, "/bill-x"));
    ASSERT(has(f.bill, "/bill") && has(f.bill, "/bill/y"));
    ASSERT(!has(f.main, "/bill/y") && !has(f.bill, "/x"));

    /* What the main database holds under the subtree is hidden behind it. */
    put(&f, f.main, "/bill/hidden", 3);
    _cleanup_free_ char *y = get(&f, "/bill/y"), *x = get(&f, "/x"), *hidden = get(&f, "/bill/hidden");
    ASSERT_STREQ(y, "1");
    ASSERT_STREQ(x, "1");
    ASSERT_STREQ(hidden, "");

    /* Both regions, or a delete that reaches into the subtree from above: refused, nothing written. */
    ASSERT_EQ(COMMIT(&f, SET("/x2"), SET("/bill/y2")), -EXDEV);
    ASSERT_EQ(COMMIT(&f, SET("/bill/y2"), SET("/x2")), -EXDEV);
    ASSERT_EQ(COMMIT(&f, DEL("/")), -EXDEV);
    ASSERT_EQ(COMMIT(&f, SET("/bill/y2"), DEL("/")), -EXDEV);
    ASSERT(!has(f.main, "/x2") && !has(f.bill, "/bill/y2"));
    ASSERT(has(f.main, "/x") && has(f.bill, "/bill/y"));

    /* A delete of a sibling that only shares a prefix stays in main; one of the subtree, in it. */
    ASSERT_OK(COMMIT(&f, DEL("/bil")));
    ASSERT_OK(COMMIT(&f, DEL("/bill-x")));
    ASSERT(!has(f.main, "/bill-x"));
    ASSERT_OK(COMMIT(&f, DEL("/bill")));
    ASSERT(!has(f.bill, "/bill") && !has(f.bill, "/bill/y"));
    ASSERT(has(f.main, "/bill/hidden")); /* not main's to delete through the subtree */

    /* No ops: refused as before, by the main database. */
    ASSERT_EQ(commit(&f, NULL, 0), -EINVAL);
    teardown(&f);
}

TEST(link_refuses_subtrees_that_overlap_or_are_no_paths) {
    struct fixture f;
    setup(&f);
    ASSERT_EQ(cdb_link_add_subtree(f.link, "/", f.main), -EINVAL);
    ASSERT_EQ(cdb_link_add_subtree(f.link, "bill", f.main), -EINVAL);
    ASSERT_EQ(cdb_link_add_subtree(f.link, "/other", f.bill), -EEXIST);
    ASSERT_EQ(cdb_link_add_subtree(f.link, "/bill/a", f.main), -EEXIST);
    ASSERT_EQ(cdb_link_add_subtree(f.link, "/bill", f.main), -EEXIST);
    teardown(&f);
}

static unsigned may_write_calls, replicated_calls;

static int read_only(void *userdata) {
    may_write_calls++;
    return -HALO_EREADONLY;
}

static void count_replicated(void *userdata, const cdb_txid *id, void (*done)(void *arg, int error), void *arg) {
    replicated_calls++;
    done(arg, 0);
}

TEST(link_asks_the_role_of_the_region_a_commit_goes_to) {
    static const struct cdb_link_role secondary = {.may_write = read_only}, primary = {.replicated = count_replicated};
    struct fixture f;
    setup(&f);
    cdb_link_set_role(f.link, f.bill, &secondary, NULL);
    cdb_link_set_role(f.link, f.main, &primary, NULL);

    ASSERT_EQ(COMMIT(&f, SET("/bill/a")), -HALO_EREADONLY);
    ASSERT_EQ(may_write_calls, 1);
    ASSERT_OK(COMMIT(&f, SET("/a")));
    ASSERT_EQ(replicated_calls, 1);
    ASSERT_EQ(COMMIT(&f, SET("/a"), SET("/bill/a")), -EXDEV); /* before any role is asked */
    ASSERT_EQ(may_write_calls, 1);

    cdb_link_set_role(f.link, f.bill, NULL, NULL);
    ASSERT_OK(COMMIT(&f, SET("/bill/a")));
    ASSERT_EQ(replicated_calls, 1);
    ASSERT(has(f.bill, "/bill/a"));
    teardown(&f);
}

TEST(link_lists_an_ancestor_of_a_subtree_from_both_databases_in_byte_order) {
    struct fixture f;
    setup(&f);
    put(&f, f.main, "/a", 1);
    put(&f, f.main, "/bilk", 1);
    put(&f, f.main, "/bill-x", 1);
    put(&f, f.main, "/bill/hidden", 1);
    put(&f, f.main, "/c", 1);
    put(&f, f.bill, "/bill", 1);
    put(&f, f.bill, "/bill/a", 1);
    put(&f, f.bill, "/bill/a/b", 1);

    unsigned pages;
    _cleanup_free_ char *root = list(&f, "/", &pages), *bill = list(&f, "/bill", NULL),
                        *bill_a = list(&f, "/bill/a", NULL), *c = list(&f, "/c", NULL);
    ASSERT_STREQ(root, "/a /bilk /bill /bill-x /bill/a /bill/a/b /c");
    ASSERT_EQ(pages, 1);
    ASSERT_STREQ(bill, "/bill /bill/a /bill/a/b");
    ASSERT_STREQ(bill_a, "/bill/a /bill/a/b");
    ASSERT_STREQ(c, "/c");
    teardown(&f);
}

TEST(link_lists_an_ancestor_of_a_subtree_in_pages_that_go_on_where_they_stopped) {
    struct fixture f;
    setup(&f);
    /* 20,000-byte values: three to a reply (LINK_MSG_MAX).  The first page stops at /bilk, where
     * the main database's page ends, before /bill; the next one starts the subtree from its own
     * path, and is cut for its size; the last one is what is left. */
    static const char *const in_main[] = {"/a", "/b", "/bilk", "/bill-x", "/c"};
    static const char *const in_bill[] = {"/bill", "/bill/a", "/bill/b", "/bill/c"};
    for (size_t i = 0; i < ELEMENTSOF(in_main); i++)
        put(&f, f.main, in_main[i], 20000);
    for (size_t i = 0; i < ELEMENTSOF(in_bill); i++)
        put(&f, f.bill, in_bill[i], 20000);
    put(&f, f.main, "/z", 10);
    put(&f, f.bill, "/bill/d", 10);

    unsigned pages;
    _cleanup_free_ char *root = list(&f, "/", &pages);
    ASSERT_STREQ(root, "/a /b /bilk /bill /bill-x /bill/a /bill/b /bill/c /bill/d /c /z");
    ASSERT_EQ(pages, 3);
    teardown(&f);
}

/* The ids of the subscriptions that got a note since the last call, reset notes or others. */
static unsigned notes(struct fixture *f, bool reset) {
    unsigned ids = 0;
    LinkMsg *m;
    while ((m = fake_conn_next(&f->conn))) {
        if (m->body_case != HALO__LINK__MSG__BODY_CDB_CHANGE)
            continue;
        ASSERT_EQ(m->cdb_change->reset, reset);
        ASSERT_EQ(m->cdb_change->n_ops == 0, reset);
        ids |= 1u << m->cdb_change->id;
    }
    return ids;
}

static void subscribe(struct fixture *f, uint32_t id, const char *path) {
    Halo__Link__CdbSubscribe s = HALO__LINK__CDB_SUBSCRIBE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    s.seq = ++f->seq;
    s.id = id;
    s.path = (char *)path;
    m.body_case = HALO__LINK__MSG__BODY_CDB_SUBSCRIBE;
    m.cdb_subscribe = &s;
    ASSERT(cdb_link_handle_msg(f->link, &f->conn, &m));
    ASSERT_OK(answer(f, s.seq, NULL));
}

static void full_copy(struct fixture *f, struct cdb *db, const char *path) {
    static uint64_t hlc = 1000;
    cdb_txid id = {.hlc = ++hlc, .node = "n2"};
    ASSERT_OK(cdb_replace_begin(db));
    ASSERT_OK(cdb_replace_add(db, path, (const uint8_t *)"1", 1));
    ASSERT_OK(cdb_replace_end(db, &id));
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

TEST(link_sends_a_full_copy_only_to_the_subscriptions_that_overlap_its_region) {
    struct fixture f;
    setup(&f);
    subscribe(&f, 1, "/");
    subscribe(&f, 2, "/bill");
    subscribe(&f, 3, "/bill/a");
    subscribe(&f, 4, "/x");
    subscribe(&f, 5, "/bil");
    subscribe(&f, 6, "/bill-x");

    full_copy(&f, f.bill, "/bill/a");
    ASSERT_EQ(notes(&f, true), 1u << 1 | 1u << 2 | 1u << 3);
    full_copy(&f, f.main, "/x");
    ASSERT_EQ(notes(&f, true), 1u << 1 | 1u << 4 | 1u << 5 | 1u << 6);

    /* Ordinary changes as before: to whoever they touch. */
    ASSERT_OK(COMMIT(&f, SET("/bill/a/b")));
    ASSERT_EQ(notes(&f, false), 1u << 1 | 1u << 2 | 1u << 3);
    ASSERT_OK(COMMIT(&f, DEL("/bil")));
    ASSERT_EQ(notes(&f, false), 1u << 1 | 1u << 5);
    teardown(&f);
}
