/* SPDX-License-Identifier: MIT */
/* Store conformance suite: every test runs against every backend (memory, SQLite, and etcd in test-store-etcd). */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "macro.h"
#include "store-fixture.h"
#include "store.h"
#include "tests.h"

/* ==== conformance suite ==== */

static void check_revisions(struct fixture *f) {
    struct reply *r;

    ASSERT_EQ(store_revision(f->s), 1);
    r = get(f, "a");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->revision, 1);
    ASSERT_EQ(r->n_kvs, 0);

    ASSERT_EQ(put_ok(f, "a", "1"), 2);
    ASSERT_EQ(store_revision(f->s), 2);
    ASSERT_EQ(put_ok(f, "b", "2"), 3);

    /* One txn, three keys, one revision. */
    store_op ops[] = {op_put("c", "3", 0), op_put("d", "4", 0), op_key(STORE_OP_DELETE, "a")};
    r = txn(f, &(store_txn){.success = ops, .n_success = ELEMENTSOF(ops)});
    ASSERT_EQ(r->error, 0);
    ASSERT(r->succeeded);
    ASSERT_EQ(r->revision, 4);
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(store_revision(f->s), 4);

    /* Nothing that changes no key moves the revision. */
    ASSERT_EQ(get(f, "b")->revision, 4);
    ASSERT_EQ(range(f, "")->revision, 4);
    store_op gets[] = {op_key(STORE_OP_GET, "b"), op_key(STORE_OP_GET_PREFIX, "")};
    r = txn(f, &(store_txn){.success = gets, .n_success = ELEMENTSOF(gets)});
    ASSERT_EQ(r->revision, 4);
    ASSERT_EQ(r->n_kvs, 4); /* b, then b c d */
    store_compare never = {
        .key = "b", .key_len = 1, .target = STORE_CMP_VERSION, .result = STORE_CMP_EQUAL, .number = 99};
    r = txn(f, &(store_txn){.compares = &never, .n_compares = 1, .success = ops, .n_success = 2});
    ASSERT_EQ(r->error, 0);
    ASSERT(!r->succeeded);
    ASSERT_EQ(r->revision, 4);
    r = del(f, "missing");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 0);
    ASSERT_EQ(r->revision, 4);
    r = del_prefix(f, "zz");
    ASSERT_EQ(r->n_deleted, 0);
    ASSERT_EQ(r->revision, 4);
    ASSERT_EQ(store_revision(f->s), 4);

    r = del(f, "b");
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(r->revision, 5);
}
TEST(revisions) {
    for_each_backend(check_revisions);
}

static void check_get_range(struct fixture *f) {
    static const char *const keys[] = {"app/b", "b", "app/a", "app0", "app/c/x", "ap", "app", "apq", "app/\xff"};
    static const char *const all_sorted[] = {"ap", "app", "app/a", "app/b", "app/c/x", "app/\xff", "app0", "apq", "b"};
    struct reply *r;

    for (size_t i = 0; i < ELEMENTSOF(keys); i++)
        put_ok(f, keys[i], keys[i]);

    r = range(f, "");
    ASSERT_EQ(r->n_kvs, ELEMENTSOF(all_sorted));
    for (size_t i = 0; i < ELEMENTSOF(all_sorted); i++)
        ASSERT_KV(&r->kvs[i], all_sorted[i], all_sorted[i]);

    r = range(f, "app/");
    ASSERT_EQ(r->n_kvs, 4);
    ASSERT_KV(&r->kvs[0], "app/a", "app/a");
    ASSERT_KV(&r->kvs[1], "app/b", "app/b");
    ASSERT_KV(&r->kvs[2], "app/c/x", "app/c/x");
    ASSERT_KV(&r->kvs[3], "app/\xff", "app/\xff");
    ASSERT_EQ(r->revision, 1 + (int64_t)ELEMENTSOF(keys));

    r = range(f, "app");
    ASSERT_EQ(r->n_kvs, 6);
    ASSERT_KV(&r->kvs[0], "app", "app");
    ASSERT_KV(&r->kvs[5], "app0", "app0");

    r = range(f, "nothing/");
    ASSERT_EQ(r->error, 0);
    ASSERT(r->had_result);
    ASSERT_EQ(r->n_kvs, 0);
    ASSERT_EQ(r->revision, 1 + (int64_t)ELEMENTSOF(keys));

    /* get is exact, never a prefix. */
    r = get(f, "app");
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "app", "app");
    ASSERT_EQ(get(f, "app/")->n_kvs, 0);
    ASSERT_EQ(get(f, "a")->n_kvs, 0);

    /* Values are bytes: NULs, empty, the largest allowed; keys up to the largest. */
    static const char bin[] = {'a', 0, 'b', 0};
    ASSERT_EQ(put_bin(f, "bin", bin, sizeof(bin), 0)->error, 0);
    const struct tkv *kv = get_kv(f, "bin");
    ASSERT(kv);
    ASSERT_EQ(kv->value_len, sizeof(bin));
    ASSERT(memcmp(kv->value, bin, sizeof(bin)) == 0);
    ASSERT_EQ(put_bin(f, "empty", NULL, 0, 0)->error, 0);
    kv = get_kv(f, "empty");
    ASSERT(kv);
    ASSERT_EQ(kv->value_len, 0);

    char *big = malloc(STORE_VALUE_MAX);
    ASSERT(big);
    for (size_t i = 0; i < STORE_VALUE_MAX; i++)
        big[i] = (char)(i * 7 + 3);
    char longkey[STORE_KEY_MAX + 1];
    memset(longkey, 'k', STORE_KEY_MAX);
    longkey[STORE_KEY_MAX] = 0;
    ASSERT_EQ(put_bin(f, longkey, big, STORE_VALUE_MAX, 0)->error, 0);
    kv = get_kv(f, longkey);
    ASSERT(kv);
    ASSERT_EQ(kv->key_len, STORE_KEY_MAX);
    ASSERT_EQ(kv->value_len, STORE_VALUE_MAX);
    ASSERT(memcmp(kv->value, big, STORE_VALUE_MAX) == 0);
    free(big);
}
TEST(get_and_range) {
    for_each_backend(check_get_range);
}

/* keys_only: the keys and revisions of a get or range, in order, with every value empty. */
static void check_keys_only(struct fixture *f) {
    struct reply *r;

    put_ok(f, "q/1", "a long value, not wanted back");
    put_ok(f, "q/2", "two");
    int64_t rev = put_ok(f, "q/2", "two again");
    put_ok(f, "qq", "outside");
    put_ok(f, "qr", "wanted");
    store_op gets[] = {op_key(STORE_OP_GET_PREFIX, "q/"), op_key(STORE_OP_GET, "qq"), op_key(STORE_OP_GET, "qr")};
    gets[0].keys_only = gets[1].keys_only = true;
    r = txn(f, &(store_txn){.success = gets, .n_success = ELEMENTSOF(gets)});
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_kvs, 4);
    ASSERT_KV(&r->kvs[0], "q/1", "");
    ASSERT_KV(&r->kvs[1], "q/2", "");
    ASSERT_EQ(r->kvs[1].mod_revision, rev);
    ASSERT_EQ(r->kvs[1].version, 2);
    ASSERT_KV(&r->kvs[2], "qq", "");
    ASSERT_KV(&r->kvs[3], "qr", "wanted"); /* without the flag, the value */

    /* Only reads can leave values out. */
    store_op put = op_put("q/3", "x", 0);
    put.keys_only = true;
    r = reply_new(f);
    ASSERT_EQ(store_transaction(f->s, &(store_txn){.success = &put, .n_success = 1}, on_reply, r), -EINVAL);
    ASSERT_EQ(r->calls, 0);
    ASSERT(!get_kv(f, "q/3"));
}
TEST(keys_only) {
    for_each_backend(check_keys_only);
}

static void check_versions(struct fixture *f) {
    const struct tkv *kv;
    struct reply *r;

    put_ok(f, "k", "1");
    kv = get_kv(f, "k");
    ASSERT(kv);
    ASSERT_EQ(kv->create_revision, 2);
    ASSERT_EQ(kv->mod_revision, 2);
    ASSERT_EQ(kv->version, 1);
    ASSERT_EQ(kv->lease, 0);

    put_ok(f, "k", "1"); /* the same value is still a write */
    put_ok(f, "other", "x");
    ASSERT_EQ(put_ok(f, "k", "3"), 5);
    kv = get_kv(f, "k");
    ASSERT_KV(kv, "k", "3");
    ASSERT_EQ(kv->create_revision, 2);
    ASSERT_EQ(kv->mod_revision, 5);
    ASSERT_EQ(kv->version, 3);

    r = del(f, "k");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(r->revision, 6);
    ASSERT(!get_kv(f, "k"));
    r = del(f, "k");
    ASSERT_EQ(r->n_deleted, 0);
    ASSERT_EQ(r->revision, 6);

    /* A re-created key starts over. */
    ASSERT_EQ(put_ok(f, "k", "again"), 7);
    kv = get_kv(f, "k");
    ASSERT_EQ(kv->create_revision, 7);
    ASSERT_EQ(kv->mod_revision, 7);
    ASSERT_EQ(kv->version, 1);

    /* delete_prefix: only the prefix, all in one revision. */
    put_ok(f, "p/1", "");
    put_ok(f, "p/2", "");
    put_ok(f, "p/3/x", "");
    int64_t before = put_ok(f, "pq", "");
    r = del_prefix(f, "p/");
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 3);
    ASSERT_EQ(r->revision, before + 1);
    r = range(f, "p");
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "pq", "");
}
TEST(versions_and_deletes) {
    for_each_backend(check_versions);
}

struct cmp_case {
    const char *key;
    store_compare_target target;
    store_compare_result result;
    const char *value;
    int64_t number;
    bool holds;
};

static void check_txn_compares(struct fixture *f) {
    /* "k": value "m", version 2, create 2, mod 3; "gone" does not exist. */
    static const struct cmp_case cases[] = {
        {"k", STORE_CMP_VALUE, STORE_CMP_EQUAL, "m", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_EQUAL, "n", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_NOT_EQUAL, "n", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_NOT_EQUAL, "m", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_LESS, "n", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_LESS, "l", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_LESS, "mm", 0, true}, /* a proper prefix is smaller */
        {"k", STORE_CMP_VALUE, STORE_CMP_GREATER, "l", 0, true},
        {"k", STORE_CMP_VALUE, STORE_CMP_GREATER, "m", 0, false},
        {"k", STORE_CMP_VALUE, STORE_CMP_GREATER, "", 0, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_EQUAL, NULL, 2, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_EQUAL, NULL, 1, false},
        {"k", STORE_CMP_VERSION, STORE_CMP_NOT_EQUAL, NULL, 1, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_NOT_EQUAL, NULL, 2, false},
        {"k", STORE_CMP_VERSION, STORE_CMP_LESS, NULL, 3, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_LESS, NULL, 2, false},
        {"k", STORE_CMP_VERSION, STORE_CMP_GREATER, NULL, 1, true},
        {"k", STORE_CMP_VERSION, STORE_CMP_GREATER, NULL, 2, false},
        {"k", STORE_CMP_CREATE, STORE_CMP_EQUAL, NULL, 2, true},
        {"k", STORE_CMP_CREATE, STORE_CMP_EQUAL, NULL, 3, false},
        {"k", STORE_CMP_CREATE, STORE_CMP_LESS, NULL, 3, true},
        {"k", STORE_CMP_CREATE, STORE_CMP_GREATER, NULL, 2, false},
        {"k", STORE_CMP_CREATE, STORE_CMP_GREATER, NULL, 1, true},
        {"k", STORE_CMP_MOD, STORE_CMP_EQUAL, NULL, 3, true},
        {"k", STORE_CMP_MOD, STORE_CMP_EQUAL, NULL, 2, false},
        {"k", STORE_CMP_MOD, STORE_CMP_NOT_EQUAL, NULL, 3, false},
        {"k", STORE_CMP_MOD, STORE_CMP_GREATER, NULL, 2, true},
        {"k", STORE_CMP_MOD, STORE_CMP_LESS, NULL, 3, false},
        {"k", STORE_CMP_MOD, STORE_CMP_LESS, NULL, 4, true},
        /* A missing key: 0 for numbers, every value compare false. */
        {"gone", STORE_CMP_VERSION, STORE_CMP_EQUAL, NULL, 0, true},
        {"gone", STORE_CMP_VERSION, STORE_CMP_LESS, NULL, 1, true},
        {"gone", STORE_CMP_CREATE, STORE_CMP_EQUAL, NULL, 0, true},
        {"gone", STORE_CMP_MOD, STORE_CMP_EQUAL, NULL, 0, true},
        {"gone", STORE_CMP_MOD, STORE_CMP_GREATER, NULL, 0, false},
        {"gone", STORE_CMP_VALUE, STORE_CMP_EQUAL, "", 0, false},
        {"gone", STORE_CMP_VALUE, STORE_CMP_NOT_EQUAL, "x", 0, false},
        {"gone", STORE_CMP_VALUE, STORE_CMP_GREATER, "", 0, false},
    };

    put_ok(f, "k", "x");
    ASSERT_EQ(put_ok(f, "k", "m"), 3);

    for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
        const struct cmp_case *c = &cases[i];
        store_compare cmp = {
            .key = c->key,
            .key_len = strlen(c->key),
            .target = c->target,
            .result = c->result,
            .value = c->value,
            .value_len = c->value ? strlen(c->value) : 0,
            .number = c->number,
        };
        store_op yes = op_put("out", "success", 0), no = op_put("out", "failure", 0);
        int64_t before = store_revision(f->s);
        struct reply *r = txn(
            f, &(store_txn){
                   .compares = &cmp, .n_compares = 1, .success = &yes, .n_success = 1, .failure = &no, .n_failure = 1});
        ASSERT_EQ(r->error, 0);
        if (r->succeeded != c->holds)
            CHECK_FAIL("compare case %zu: expected %s", i, c->holds ? "success" : "failure");
        ASSERT_EQ(r->revision, before + 1);
        ASSERT_KV(get_kv(f, "out"), "out", c->holds ? "success" : "failure");
    }

    /* Every compare must hold. */
    store_compare both[] = {
        {.key = "k", .key_len = 1, .target = STORE_CMP_VALUE, .result = STORE_CMP_EQUAL, .value = "m", .value_len = 1},
        {.key = "k", .key_len = 1, .target = STORE_CMP_VERSION, .result = STORE_CMP_EQUAL, .number = 7},
    };
    struct reply *r = txn(f, &(store_txn){.compares = both, .n_compares = 2});
    ASSERT(!r->succeeded);
    both[1].number = 2;
    r = txn(f, &(store_txn){.compares = both, .n_compares = 2});
    ASSERT(r->succeeded);
}
TEST(txn_compares) {
    for_each_backend(check_txn_compares);
}

static void check_txn_atomic(struct fixture *f) {
    struct reply *r;

    put_ok(f, "a", "old");
    int64_t rev = put_ok(f, "c", "doomed");

    /* Several keys at one revision; a GET sees the txn's own earlier put. */
    store_op ops[] = {op_put("a", "new", 0), op_put("b", "born", 0), op_key(STORE_OP_DELETE, "c"),
                      op_key(STORE_OP_GET, "a"), op_key(STORE_OP_GET_PREFIX, "")};
    r = txn(f, &(store_txn){.success = ops, .n_success = ELEMENTSOF(ops)});
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->revision, rev + 1);
    ASSERT_EQ(r->n_deleted, 1);
    ASSERT_EQ(r->n_kvs, 3); /* a; then a b */
    ASSERT_KV(&r->kvs[0], "a", "new");
    ASSERT_EQ(r->kvs[0].mod_revision, rev + 1);
    ASSERT_KV(&r->kvs[1], "a", "new");
    ASSERT_KV(&r->kvs[2], "b", "born");
    ASSERT_EQ(get_kv(f, "a")->mod_revision, rev + 1);
    ASSERT_EQ(get_kv(f, "b")->mod_revision, rev + 1);
    ASSERT(!get_kv(f, "c"));

    /* A failed compare runs the failure branch, atomically too. */
    store_compare cmp = {
        .key = "a", .key_len = 1, .target = STORE_CMP_VALUE, .result = STORE_CMP_EQUAL, .value = "old", .value_len = 3};
    store_op yes[] = {op_put("x", "1", 0)};
    store_op no[] = {op_put("y", "1", 0), op_put("z", "1", 0), op_key(STORE_OP_GET, "a")};
    r = txn(f, &(store_txn){.compares = &cmp,
                            .n_compares = 1,
                            .success = yes,
                            .n_success = 1,
                            .failure = no,
                            .n_failure = ELEMENTSOF(no)});
    ASSERT_EQ(r->error, 0);
    ASSERT(!r->succeeded);
    ASSERT_EQ(r->revision, rev + 2);
    ASSERT_EQ(r->n_kvs, 1);
    ASSERT_KV(&r->kvs[0], "a", "new");
    ASSERT(!get_kv(f, "x"));
    ASSERT_EQ(get_kv(f, "y")->mod_revision, rev + 2);
    ASSERT_EQ(get_kv(f, "z")->mod_revision, rev + 2);

    /* One op fails while executing (unknown lease): nothing of the txn is applied. */
    store_op bad[] = {op_put("a", "lost", 0), op_key(STORE_OP_DELETE, "b"), op_put("w", "1", 424242)};
    r = txn(f, &(store_txn){.success = bad, .n_success = ELEMENTSOF(bad)});
    ASSERT_EQ(r->error, -ENOENT);
    ASSERT(!r->had_result);
    ASSERT_EQ(store_revision(f->s), rev + 2);
    ASSERT_KV(get_kv(f, "a"), "a", "new");
    ASSERT_EQ(get_kv(f, "a")->version, 2);
    ASSERT(get_kv(f, "b"));
    ASSERT(!get_kv(f, "w"));
    ASSERT_EQ(put_lease(f, "w", "1", 424242)->error, -ENOENT);
    ASSERT_EQ(store_revision(f->s), rev + 2);

    /* Overlapping deletes are fine: a key is deleted once. */
    store_op dels[] = {op_key(STORE_OP_DELETE_PREFIX, ""), op_key(STORE_OP_DELETE, "a")};
    r = txn(f, &(store_txn){.success = dels, .n_success = 2});
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->n_deleted, 4); /* a b y z */
    ASSERT_EQ(r->revision, rev + 3);
    ASSERT_EQ(range(f, "")->n_kvs, 0);
}
TEST(txn_atomic) {
    for_each_backend(check_txn_atomic);
}

static void check_invalid(struct fixture *f) {
    store *s = f->s;
    char toolong[STORE_KEY_MAX + 2];
    memset(toolong, 'x', sizeof(toolong) - 1);
    toolong[sizeof(toolong) - 1] = 0;
    char *big = calloc(1, STORE_VALUE_MAX + 1);
    ASSERT(big);
    store_watch *w = NULL;

    put_ok(f, "k", "v");
    never_calls = 0;

    ASSERT_EQ(store_put(s, toolong, "v", 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "", "v", 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "k", big, STORE_VALUE_MAX + 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "k", NULL, 3, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(s, "k", "v", 1, -1, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_put(NULL, "k", "v", 1, 0, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_get(s, toolong, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_get(s, "", on_never, NULL), -EINVAL);
    ASSERT_EQ(store_get(s, "k", NULL, NULL), -EINVAL);
    ASSERT_EQ(store_range(s, toolong, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_delete(s, "", on_never, NULL), -EINVAL);
    ASSERT_EQ(store_delete_prefix(s, toolong, on_never, NULL), -EINVAL);
    ASSERT_EQ(store_lease_grant(s, 0, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_lease_grant(s, -5, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_lease_keepalive(s, 0, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_lease_revoke(s, -1, on_never_lease, NULL), -EINVAL);
    ASSERT_EQ(store_watch_prefix(s, "", -1, on_never_watch, NULL, &w), -EINVAL);
    ASSERT_EQ(store_watch_prefix(s, toolong, 0, on_never_watch, NULL, &w), -EINVAL);
    ASSERT_EQ(store_watch_prefix(s, "", 0, NULL, NULL, &w), -EINVAL);
    ASSERT(!w);

    /* Txns: sizes, and etcd's rule against writing one key twice. */
    store_op many[STORE_TXN_OPS_MAX + 1];
    char names[STORE_TXN_OPS_MAX + 1][8];
    for (size_t i = 0; i < ELEMENTSOF(many); i++) {
        snprintf(names[i], sizeof(names[i]), "m%zu", i);
        many[i] = op_put(names[i], "v", 0);
    }
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = many, .n_success = ELEMENTSOF(many)}, on_never, NULL),
              -EINVAL);
    ASSERT_EQ(store_transaction(s, &(store_txn){.failure = many, .n_failure = ELEMENTSOF(many)}, on_never, NULL),
              -EINVAL);
    store_compare cmps[STORE_TXN_OPS_MAX + 1];
    for (size_t i = 0; i < ELEMENTSOF(cmps); i++)
        cmps[i] = (store_compare){.key = "k", .key_len = 1, .target = STORE_CMP_VERSION};
    ASSERT_EQ(store_transaction(s, &(store_txn){.compares = cmps, .n_compares = ELEMENTSOF(cmps)}, on_never, NULL),
              -EINVAL);
    store_compare badcmp = {.key = "k", .key_len = 1, .target = (store_compare_target)42};
    ASSERT_EQ(store_transaction(s, &(store_txn){.compares = &badcmp, .n_compares = 1}, on_never, NULL), -EINVAL);
    store_op dup[] = {op_put("d", "1", 0), op_put("d", "2", 0)};
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = dup, .n_success = 2}, on_never, NULL), -EINVAL);
    store_op putdel[] = {op_key(STORE_OP_DELETE, "d"), op_put("d", "2", 0)};
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = putdel, .n_success = 2}, on_never, NULL), -EINVAL);
    store_op inprefix[] = {op_put("dir/x", "2", 0), op_key(STORE_OP_DELETE_PREFIX, "dir/")};
    ASSERT_EQ(store_transaction(s, &(store_txn){.failure = inprefix, .n_failure = 2}, on_never, NULL), -EINVAL);
    store_op badkey[] = {op_put("ok", "1", 0), op_key(STORE_OP_GET, "")};
    ASSERT_EQ(store_transaction(s, &(store_txn){.success = badkey, .n_success = 2}, on_never, NULL), -EINVAL);
    /* The same ops in different branches are fine, and so is a put next to a delete of another key. */
    store_op fine[] = {op_put("dir2", "1", 0), op_key(STORE_OP_DELETE_PREFIX, "dir/")};
    struct reply *r = txn(f, &(store_txn){.success = dup, .n_success = 1, .failure = dup + 1, .n_failure = 1});
    ASSERT_EQ(r->error, 0);
    r = txn(f, &(store_txn){.success = fine, .n_success = 2});
    ASSERT_EQ(r->error, 0);
    int64_t rev = store_revision(f->s);

    run_briefly(f);
    ASSERT_EQ(never_calls, 0);
    ASSERT_EQ(store_revision(f->s), rev);
    r = range(f, "");
    ASSERT_EQ(r->n_kvs, 3); /* d, dir2, k */
    ASSERT_EQ(r->revision, rev);
    free(big);
}
TEST(invalid_arguments_no_callback) {
    for_each_backend(check_invalid);
}

static void check_lease_expiry(struct fixture *f) {
    uint64_t t0 = now_msec();
    struct reply *g = lease_grant(f, 1);
    ASSERT_EQ(g->error, 0);
    ASSERT(g->lease > 0);
    ASSERT_EQ(g->ttl, 1);
    int64_t rev0 = store_revision(f->s);
    ASSERT_EQ(rev0, 1); /* a grant is not a key change */

    ASSERT_EQ(put_lease(f, "l/a", "1", g->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "l/b", "2", g->lease)->error, 0);
    ASSERT_EQ(put(f, "l/c", "3")->error, 0);
    ASSERT_EQ(put_lease(f, "m", "4", g->lease)->error, 0);
    ASSERT_EQ(get_kv(f, "l/a")->lease, g->lease);
    int64_t rev = store_revision(f->s);
    struct wrec *w = watch(f, "l/", 0);

    run_until_events(f, w, 2);
    uint64_t elapsed = now_msec() - t0;
    if (elapsed < 950 || elapsed > 3000)
        CHECK_FAIL("lease with TTL 1s expired after %llu ms", (unsigned long long)elapsed);
    assert_event(w, 0, STORE_EVENT_DELETE, "l/a", rev + 1);
    assert_event(w, 1, STORE_EVENT_DELETE, "l/b", rev + 1);
    ASSERT_EQ(store_revision(f->s), rev + 1); /* three keys, one revision */
    ASSERT(!get_kv(f, "l/a"));
    ASSERT(!get_kv(f, "m"));
    ASSERT_KV(get_kv(f, "l/c"), "l/c", "3");

    ASSERT_EQ(lease_keepalive(f, g->lease)->error, -ENOENT);
    ASSERT_EQ(lease_revoke(f, g->lease)->error, -ENOENT);
    ASSERT_EQ(put_lease(f, "l/d", "x", g->lease)->error, -ENOENT);
    ASSERT_EQ(store_revision(f->s), rev + 1);
    run_briefly(f);
    ASSERT_EQ(w->n_events, 2);
    w->w = store_watch_cancel(w->w);
}
TEST(lease_expiry) {
    for_each_backend(check_lease_expiry);
}

struct keeper {
    struct fixture *f;
    int64_t lease;
    int sent, ok;
    uint64_t last;
};

static void on_keepalive_reply(store *s, int error, int64_t lease, int64_t ttl, void *userdata) {
    struct keeper *k = userdata;
    ASSERT_EQ(error, 0);
    ASSERT_EQ(lease, k->lease);
    ASSERT_EQ(ttl, 1);
    k->ok++;
}

static void on_keepalive_timer(uv_timer_t *t) {
    struct keeper *k = t->data;
    ASSERT_OK(store_lease_keepalive(k->f->s, k->lease, on_keepalive_reply, k));
    k->sent++;
    k->last = now_msec();
}

static void check_lease_keepalive(struct fixture *f) {
    struct reply *g = lease_grant(f, 1);
    ASSERT_EQ(g->error, 0);
    ASSERT_EQ(put_lease(f, "ka", "1", g->lease)->error, 0);

    struct keeper k = {.f = f, .lease = g->lease, .last = now_msec()};
    uv_timer_t t;
    ASSERT_OK(uv_timer_init(&f->loop, &t));
    t.data = &k;
    ASSERT_OK(uv_timer_start(&t, on_keepalive_timer, 300, 300));
    run_for(f, 2500); /* 2.5 TTLs */
    uv_close((uv_handle_t *)&t, NULL);
    run_briefly(f);
    /* etcd: the last keepalive may still be on the wire. */
    while (f->b->etcd && k.ok < k.sent)
        ASSERT(uv_run(&f->loop, UV_RUN_ONCE) != 0 || k.ok == k.sent);
    ASSERT(k.sent >= 6);
    ASSERT_EQ(k.ok, k.sent);
    ASSERT_KV(get_kv(f, "ka"), "ka", "1");

    /* Then without keepalives, it expires a TTL after the last one. */
    struct wrec *w = watch(f, "ka", 0);
    run_until_events(f, w, 1);
    uint64_t elapsed = now_msec() - k.last;
    if (elapsed < 950 || elapsed > 3000)
        CHECK_FAIL("expired %llu ms after the last keepalive", (unsigned long long)elapsed);
    ASSERT_EQ(w->events[0].type, STORE_EVENT_DELETE);
    ASSERT(!get_kv(f, "ka"));
}
TEST(lease_keepalive) {
    for_each_backend(check_lease_keepalive);
}

static void check_lease_revoke(struct fixture *f) {
    struct reply *g = lease_grant(f, 60);
    ASSERT_EQ(g->error, 0);
    ASSERT_EQ(g->ttl, 60);
    ASSERT_EQ(put_lease(f, "r/1", "1", g->lease)->error, 0);
    ASSERT_EQ(put_lease(f, "r/2", "2", g->lease)->error, 0);
    ASSERT_EQ(put(f, "r/3", "3")->error, 0);
    /* A put without the lease detaches the key from it. */
    ASSERT_EQ(put_lease(f, "r/4", "4", g->lease)->error, 0);
    ASSERT_EQ(put(f, "r/4", "4b")->error, 0);
    int64_t rev = store_revision(f->s);
    struct wrec *w = watch(f, "r/", 0);

    struct reply *r = lease_revoke(f, g->lease);
    ASSERT_EQ(r->error, 0);
    ASSERT_EQ(r->lease, g->lease);
    ASSERT_EQ(store_revision(f->s), rev + 1);
    run_until_events(f, w, 2);
    assert_event(w, 0, STORE_EVENT_DELETE, "r/1", rev + 1);
    assert_event(w, 1, STORE_EVENT_DELETE, "r/2", rev + 1);
    r = range(f, "r/");
    ASSERT_EQ(r->n_kvs, 2);
    ASSERT_KV(&r->kvs[0], "r/3", "3");
    ASSERT_KV(&r->kvs[1], "r/4", "4b");
    ASSERT_EQ(r->kvs[1].lease, 0);

    ASSERT_EQ(lease_revoke(f, g->lease)->error, -ENOENT);
    ASSERT_EQ(lease_keepalive(f, g->lease)->error, -ENOENT);

    /* Ids are not reused; revoking a lease without keys changes no revision. */
    struct reply *g2 = lease_grant(f, 60);
    ASSERT_EQ(g2->error, 0);
    ASSERT(g2->lease != g->lease);
    ASSERT_EQ(lease_keepalive(f, g2->lease)->error, 0);
    ASSERT_EQ(lease_revoke(f, g2->lease)->error, 0);
    ASSERT_EQ(store_revision(f->s), rev + 1);
    run_briefly(f);
    ASSERT_EQ(w->n_events, 2);
    w->w = store_watch_cancel(w->w);
}
TEST(lease_revoke) {
    for_each_backend(check_lease_revoke);
}

static void check_watch_replay(struct fixture *f) {
    ASSERT_EQ(put_ok(f, "a/1", "1"), 2);
    ASSERT_EQ(put_ok(f, "b/1", "1"), 3);
    ASSERT_EQ(put_ok(f, "a/2", "2"), 4);
    ASSERT_EQ(del(f, "a/1")->revision, 5);
    store_op two[] = {op_put("a/3", "3", 0), op_put("a/4", "4", 0)};
    ASSERT_EQ(txn(f, &(store_txn){.success = two, .n_success = 2})->revision, 6);
    ASSERT_EQ(put_ok(f, "b/2", "2"), 7);

    struct wrec *w = watch(f, "a/", 3);
    struct wrec *all = watch(f, "", 1);
    struct wrec *now = watch(f, "a/", 0);
    struct wrec *later = watch(f, "a/", 10); /* a revision still to come */

    /* A write before the replay is delivered comes after it, once. */
    ASSERT_EQ(put_ok(f, "a/5", "5"), 8);
    run_until_events(f, w, 5);
    assert_event(w, 0, STORE_EVENT_PUT, "a/2", 4);
    assert_event(w, 1, STORE_EVENT_DELETE, "a/1", 5);
    assert_event(w, 2, STORE_EVENT_PUT, "a/3", 6);
    assert_event(w, 3, STORE_EVENT_PUT, "a/4", 6);
    assert_event(w, 4, STORE_EVENT_PUT, "a/5", 8);
    ASSERT_KV(&w->events[0].kv, "a/2", "2");
    ASSERT_EQ(w->events[0].kv.create_revision, 4);
    ASSERT_EQ(w->events[0].kv.version, 1);

    ASSERT_EQ(put_ok(f, "a/6", "6"), 9);
    ASSERT_EQ(put_ok(f, "b/3", "3"), 10);
    ASSERT_EQ(put_ok(f, "a/5", "5b"), 11);
    ASSERT_EQ(del_prefix(f, "a/")->revision, 12);
    run_until_events(f, w, 12);
    assert_event(w, 5, STORE_EVENT_PUT, "a/6", 9);
    assert_event(w, 6, STORE_EVENT_PUT, "a/5", 11);
    ASSERT_EQ(w->events[6].kv.version, 2);
    ASSERT_EQ(w->events[6].kv.create_revision, 8);
    static const char *const deleted[] = {"a/2", "a/3", "a/4", "a/5", "a/6"};
    for (size_t i = 0; i < ELEMENTSOF(deleted); i++)
        assert_event(w, 7 + i, STORE_EVENT_DELETE, deleted[i], 12);

    /* Every event of every revision, no gap, no repeat. */
    run_until_events(f, all, 16);
    static const int64_t revs[] = {2, 3, 4, 5, 6, 6, 7, 8, 9, 10, 11, 12, 12, 12, 12, 12};
    for (size_t i = 0; i < ELEMENTSOF(revs); i++)
        ASSERT_EQ(all->events[i].kv.mod_revision, revs[i]);

    run_until_events(f, now, 8); /* a/5 a/6 a/5, then five deletes */
    assert_event(now, 0, STORE_EVENT_PUT, "a/5", 8);
    run_until_events(f, later, 6);
    assert_event(later, 0, STORE_EVENT_PUT, "a/5", 11);

    run_briefly(f);
    ASSERT_EQ(w->n_events, 12);
    ASSERT_EQ(all->n_events, 16);
    ASSERT_EQ(now->n_events, 8);
    ASSERT_EQ(later->n_events, 6);
    w->w = store_watch_cancel(w->w);
    all->w = store_watch_cancel(all->w);
    now->w = store_watch_cancel(now->w);
    later->w = store_watch_cancel(later->w);
}
TEST(watch_replay_then_live) {
    for_each_backend(check_watch_replay);
}

static void check_stale(struct fixture *f, bool reopened) {
    int64_t rev = store_revision(f->s);
    ASSERT_EQ(rev, HISTORY_MAX + 50 + 1);

    struct wrec *old = watch(f, "s/", 2);
    run_until(f, &old->calls);
    ASSERT(old->ended);
    ASSERT_EQ(old->error, -ESTALE);
    ASSERT_EQ(old->n_events, 0);

    struct wrec *recent = watch(f, "s/", rev - 99);
    run_until_events(f, recent, 100);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(recent->events[i].kv.mod_revision, rev - 99 + i);

    /* The local backends keep exactly the last HISTORY_MAX events. */
    struct wrec *edge = watch(f, "s/", rev - HISTORY_MAX + 1);
    struct wrec *past = watch(f, "s/", rev - HISTORY_MAX);
    run_until_events(f, edge, HISTORY_MAX);
    run_until(f, &past->calls);
    ASSERT_EQ(past->error, -ESTALE);
    ASSERT_EQ(edge->events[0].kv.mod_revision, rev - HISTORY_MAX + 1);

    /* An ended watch is still the caller's to cancel; no callback follows. */
    run_briefly(f);
    ASSERT_EQ(old->calls, 1);
    ASSERT_EQ(past->calls, 1);
    old->w = store_watch_cancel(old->w);
    past->w = store_watch_cancel(past->w);
    recent->w = store_watch_cancel(recent->w);
    edge->w = store_watch_cancel(edge->w);
    (void)reopened;
}

/* etcd keeps all history until compacted: compact, then the same checks. */
static void check_watch_stale_etcd(struct fixture *f) {
    int64_t rev = put_many(f, "s/", 150);
    ASSERT_EQ(rev, 151);
    char body[64];
    snprintf(body, sizeof(body), "{\"revision\":\"%lld\"}", (long long)(rev - 99));
    ASSERT_EQ(etcd_http(f, "/v3/kv/compaction", body), 200);

    struct wrec *old = watch(f, "s/", 2);
    run_until(f, &old->calls);
    ASSERT(old->ended);
    ASSERT_EQ(old->error, -ESTALE);
    ASSERT_EQ(old->n_events, 0);

    struct wrec *edge = watch(f, "s/", rev - 99); /* the compaction revision itself is kept */
    struct wrec *past = watch(f, "s/", rev - 100);
    run_until_events(f, edge, 100);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(edge->events[i].kv.mod_revision, rev - 99 + i);
    run_until(f, &past->calls);
    ASSERT_EQ(past->error, -ESTALE);

    /* An ended watch is still the caller's to cancel; no callback follows. */
    run_briefly(f);
    ASSERT_EQ(old->calls, 1);
    ASSERT_EQ(past->calls, 1);
    old->w = store_watch_cancel(old->w);
    past->w = store_watch_cancel(past->w);
    edge->w = store_watch_cancel(edge->w);
}

static void check_watch_stale(struct fixture *f) {
    if (f->b->etcd) {
        check_watch_stale_etcd(f);
        return;
    }
    ASSERT_EQ(put_many(f, "s/", HISTORY_MAX + 50), HISTORY_MAX + 50 + 1);
    check_stale(f, false);
    if (!f->b->persistent)
        return;

    fixture_reopen(f);
    check_stale(f, true);
    /* On disk too: history is trimmed with the same bound. */
    sqlite3 *db;
    sqlite3_stmt *st;
    ASSERT_EQ(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*), min(rev) FROM history", -1, &st, NULL), SQLITE_OK);
    ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int64(st, 0), HISTORY_MAX);
    ASSERT_EQ(sqlite3_column_int64(st, 1), 50 + 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
}
TEST(watch_stale) {
    for_each_backend(check_watch_stale);
}

static void check_watch_cancel(struct fixture *f) {
    /* Cancelled with an event queued: never called. */
    struct wrec *quiet = watch(f, "c/", 0);
    ASSERT_OK(store_put(f->s, "c/0", "x", 1, 0, NULL, NULL));
    quiet->w = store_watch_cancel(quiet->w);
    run_briefly(f);

    /* Cancels itself from its first callback. */
    struct wrec *self = watch(f, "c/", 0);
    self->cancel_self_after = 1;
    /* a's first callback cancels b, which would run next. */
    struct wrec *a = watch(f, "c/", 0);
    struct wrec *b = watch(f, "c/", 0);
    a->cancel_other = &b->w;

    put_ok(f, "c/1", "1");
    run_until(f, &self->calls);
    run_until(f, &a->calls);
    put_ok(f, "c/2", "2");
    put_ok(f, "c/3", "3");
    run_until_events(f, a, 3);
    run_briefly(f);

    ASSERT_EQ(quiet->calls, 0);
    ASSERT_EQ(self->calls, 1);
    ASSERT_EQ(self->n_events, 1);
    ASSERT(!self->w);
    /* etcd: each watch has its own stream, so b's event may come before a's. */
    if (f->b->etcd)
        ASSERT(b->calls <= 1);
    else
        ASSERT_EQ(b->calls, 0);
    ASSERT(!b->w);
    ASSERT(store_watch_cancel(NULL) == NULL);
    a->w = store_watch_cancel(a->w);
    put_ok(f, "c/4", "4");
    run_briefly(f);
    ASSERT_EQ(a->n_events, 3);
}
TEST(watch_cancel) {
    for_each_backend(check_watch_cancel);
}

/* ---- store_free ---- */

struct free_probe {
    struct fixture *f;
    struct reply *put, *get;
    struct wrec *live, *busy;
    bool free_from_put_cb;
    int put_after_free;
};

static struct free_probe *probe;

static void on_probe_put(store *s, int error, const store_result *res, void *userdata) {
    on_reply(s, error, res, userdata);
    if (probe->free_from_put_cb)
        probe->f->s = store_free(probe->f->s);
}

static void on_probe_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    on_watch(w, error, ev, n, userdata);
    /* Calls after store_free() started fail, and never call back. */
    if (error == -ECANCELED)
        probe->put_after_free = store_put(probe->f->s ? probe->f->s : w->store, "late", "x", 1, 0, on_never, NULL);
}

static void check_free(struct fixture *f, bool from_callback) {
    struct free_probe p = {.f = f, .free_from_put_cb = from_callback};
    probe = &p;
    never_calls = 0;

    struct wrec *gone = watch(f, "", 0);
    gone->w = store_watch_cancel(gone->w);
    p.live = watch(f, "y", 0);
    p.busy = tmem(f, sizeof(*p.busy));
    p.busy->f = f;
    p.busy->events = tmem(f, WREC_MAX * sizeof(struct tevent));
    ASSERT_OK(store_watch_prefix(f->s, "x", 0, on_probe_watch, p.busy, &p.busy->w));
    put_ok(f, "x0", "0");
    run_until(f, &p.busy->calls);

    p.put = reply_new(f);
    p.get = reply_new(f);
    ASSERT_OK(store_put(f->s, "x1", "1", 1, 0, on_probe_put, p.put));
    ASSERT_OK(store_get(f->s, "x0", on_reply, p.get));
    ASSERT_EQ(p.put->calls + p.get->calls, 0);

    if (from_callback)
        run_until(f, &p.put->calls); /* its callback frees the store */
    else
        f->s = store_free(f->s);
    ASSERT(!f->s);

    /* Before store_free() returned: results of executed calls, -ECANCELED for watches. */
    ASSERT_EQ(p.put->calls, 1);
    ASSERT_EQ(p.get->calls, 1);
    if (f->b->etcd) {
        /* etcd: calls not answered yet are in flight or queued: -ECANCELED.
         * The put's own answer may come after its watch event. */
        ASSERT_EQ(p.put->error, from_callback ? 0 : -ECANCELED);
        if (from_callback)
            ASSERT_EQ(p.put->revision, 3);
        ASSERT_EQ(p.get->error, -ECANCELED);
        ASSERT(p.busy->n_events == 1 || (from_callback && p.busy->n_events == 2));
    } else {
        ASSERT_EQ(p.put->error, 0);
        ASSERT_EQ(p.put->revision, 3);
        ASSERT_EQ(p.get->error, 0);
        ASSERT_EQ(p.get->n_kvs, 1);
        ASSERT_EQ(p.busy->n_events, 1); /* x0; x1 was pending and is dropped */
    }
    ASSERT_EQ(p.live->calls, 1);
    ASSERT_EQ(p.live->error, -ECANCELED);
    ASSERT_EQ(p.busy->error, -ECANCELED);
    ASSERT_EQ(p.put_after_free, -ECANCELED);
    ASSERT_EQ(gone->calls, 0);

    run_dry(f);
    ASSERT_EQ(never_calls, 0);
    fixture_reopen_freed(f);
    if (f->b->persistent)
        ASSERT_KV(get_kv(f, "x1"), "x1", "1"); /* reported as done, so durable */
    probe = NULL;
}

static void check_free_direct(struct fixture *f) {
    check_free(f, false);
}

static void check_free_from_callback(struct fixture *f) {
    check_free(f, true);
}

TEST(free_runs_pending_callbacks) {
    for_each_backend(check_free_direct);
}

TEST(free_from_a_callback) {
    for_each_backend(check_free_from_callback);
}
