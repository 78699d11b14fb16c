/* SPDX-License-Identifier: MIT */
/* Tests for hashmap.h: string keys to pointers, growth, removal while iterating. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "hashmap.h"
#include "macro.h"
#include "tests.h"

TEST(hashmap_empty) {
    struct hashmap m = {0};
    struct hashmap_iter i = {0};
    ASSERT_EQ(hashmap_size(&m), 0);
    ASSERT(hashmap_get(&m, "a") == NULL);
    ASSERT(!hashmap_contains(&m, "a"));
    ASSERT(hashmap_remove(&m, "a") == NULL);
    ASSERT(!hashmap_iterate(&m, &i, NULL, NULL));
    ASSERT_EQ(hashmap_put(&m, NULL, NULL), -EINVAL);
    hashmap_done(&m, free);
    hashmap_done(NULL, free);
    ASSERT_EQ(hashmap_size(NULL), 0);
}

TEST(hashmap_put_get_remove) {
    struct hashmap m = {0};
    int a = 1, b = 2;
    char key[8] = "process";
    ASSERT_OK(hashmap_put(&m, key, &a));
    key[0] = 'X'; /* the key is copied */
    ASSERT(hashmap_get(&m, "process") == &a);
    ASSERT(hashmap_get(&m, "Xrocess") == NULL);
    ASSERT_EQ(hashmap_put(&m, "process", &b), -EEXIST);
    ASSERT(hashmap_get(&m, "process") == &a); /* unchanged */
    ASSERT_OK(hashmap_put(&m, "", &b));       /* the empty key is a key */
    ASSERT(hashmap_get(&m, "") == &b);
    ASSERT_OK(hashmap_put(&m, "null", NULL));
    ASSERT(hashmap_contains(&m, "null"));
    ASSERT(hashmap_get(&m, "null") == NULL);
    ASSERT_EQ(hashmap_size(&m), 3);
    ASSERT(hashmap_remove(&m, "process") == &a);
    ASSERT(!hashmap_contains(&m, "process"));
    ASSERT(hashmap_remove(&m, "process") == NULL);
    ASSERT_EQ(hashmap_size(&m), 2);
    ASSERT_OK(hashmap_put(&m, "process", &b)); /* again, after its removal */
    ASSERT(hashmap_get(&m, "process") == &b);
    hashmap_done(&m, NULL);
    ASSERT_EQ(hashmap_size(&m), 0);
    ASSERT(m.buckets == NULL);
}

/* Many keys: every one found after the table has grown several times, each exactly once by iteration. */
TEST(hashmap_grows_and_iterates_each_once) {
    enum { N = 5000 };
    struct hashmap m = {0};
    char key[32];
    static bool seen[N];
    for (intptr_t k = 0; k < N; k++) {
        snprintf(key, sizeof(key), "su:%ld", (long)k);
        ASSERT_OK(hashmap_put(&m, key, (void *)(k + 1)));
    }
    ASSERT_EQ(hashmap_size(&m), N);
    for (intptr_t k = 0; k < N; k++) {
        snprintf(key, sizeof(key), "su:%ld", (long)k);
        ASSERT_EQ((intptr_t)hashmap_get(&m, key), k + 1);
    }
    struct hashmap_iter i = {0};
    const char *k;
    void *v;
    size_t n = 0;
    while (hashmap_iterate(&m, &i, &k, &v)) {
        intptr_t x = (intptr_t)v - 1;
        ASSERT(x >= 0 && x < N);
        ASSERT(!seen[x]);
        seen[x] = true;
        snprintf(key, sizeof(key), "su:%ld", (long)x);
        ASSERT_STREQ(k, key);
        n++;
    }
    ASSERT_EQ(n, N);
    ASSERT(!hashmap_iterate(&m, &i, &k, &v)); /* stays at the end */
    hashmap_done(&m, NULL);
}

/* Removing the item just returned is allowed: the others are all still visited. */
TEST(hashmap_remove_while_iterating) {
    struct hashmap m = {0};
    char key[32];
    for (int k = 0; k < 300; k++) {
        snprintf(key, sizeof(key), "node:%d", k);
        char *v = strdup(key);
        ASSERT(v);
        ASSERT_OK(hashmap_put(&m, key, v));
    }
    struct hashmap_iter i = {0};
    const char *k;
    void *v;
    size_t visited = 0;
    while (hashmap_iterate(&m, &i, &k, &v)) {
        ASSERT_STREQ(k, v);
        visited++;
        if (atoi(k + 5) % 2 == 0) {
            ASSERT(hashmap_remove(&m, v) == v);
            free(v);
        }
    }
    ASSERT_EQ(visited, 300);
    ASSERT_EQ(hashmap_size(&m), 150);
    for (int n = 0; n < 300; n++) {
        snprintf(key, sizeof(key), "node:%d", n);
        ASSERT_EQ(hashmap_contains(&m, key), n % 2 == 1);
    }
    hashmap_done(&m, free); /* the values too: the sanitizer build checks for leaks */
}
