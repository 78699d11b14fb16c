/* SPDX-License-Identifier: MIT */
/* The store layout of docs/store.md, spelled in one place (keys.h). */
#include "keys.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "parse-util.h"
#include "string-table.h"

static const char *const key_dir_table[_KEY_DIR_MAX] = {
    [KEY_ASSIGNMENTS] = "assignments",
    [KEY_SU] = "su",
    [KEY_COMPONENTS] = "components",
    [KEY_NODES] = "nodes",
    [KEY_ADMIN] = "admin",
    [KEY_SUSTATE] = "sustate",
    [KEY_TARGET] = "target",
    [KEY_CONFIRMED] = "confirmed",
    [KEY_EQ] = "eq",
    [KEY_BQ] = "bq",
    [KEY_BQ_DELIVERED] = "bq-delivered",
    [KEY_STATE] = "state",
    [KEY_FAILVEC] = "failvec",
    [KEY_RECOVERY] = "recovery",
    [KEY_CDB_ALONE] = "cdb-alone",
    [KEY_COMPLETED] = "completed",
    [KEY_DOOM] = "doom",
    [KEY_ADMINSTATE] = "adminstate",
    [KEY_CKPT] = "ckpt",
    [KEY_CKPT_OPEN] = "ckpt-open",
    [KEY_NAMES] = "names",
    [KEY_TXN] = "txn",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(key_dir, enum key_dir);

_printf_(2, 3) static int key_format(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, STORE_KEY_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= STORE_KEY_MAX) {
        buf[0] = '\0';
        return -ENAMETOOLONG;
    }
    return n;
}

static const char *dir(enum key_dir d) {
    return key_dir_to_string(d) ?: "?";
}

int key_prefix(char *buf, const char *cluster) {
    return key_format(buf, "/halo/%s/", cluster);
}

int key_dir(char *buf, const char *prefix, enum key_dir d) {
    return key_format(buf, "%s%s/", prefix, dir(d));
}

int key_name(char *buf, const char *prefix, enum key_dir d, const char *name) {
    return key_format(buf, "%s%s/%s", prefix, dir(d), name);
}

int key_name_dir(char *buf, const char *prefix, enum key_dir d, const char *name) {
    return key_format(buf, "%s%s/%s/", prefix, dir(d), name);
}

int key_pair(char *buf, const char *prefix, enum key_dir d, const char *a, const char *b) {
    return key_format(buf, "%s%s/%s/%s", prefix, dir(d), a, b);
}

int key_leader(char *buf, const char *prefix) {
    return key_format(buf, "%sleader", prefix);
}

int key_bq_seq(char *buf, const char *prefix) {
    return key_format(buf, "%sbq-seq", prefix);
}

int key_state_seq(char *buf, const char *prefix) {
    return key_format(buf, "%sstate-seq", prefix);
}

int key_admin(char *buf, const char *prefix, const char *node, uint64_t n) {
    return key_format(buf, "%s%s/%s/%" PRIu64, prefix, dir(KEY_ADMIN), node, n);
}

int key_eq_node(char *buf, const char *prefix, const char *node) {
    return key_format(buf, "%s%s/%s/", prefix, dir(KEY_EQ), node);
}

int key_eq_entry(char *buf, const char *prefix, const char *node, uint64_t hlc) {
    return key_format(buf, "%s%s/%s/%0*" PRIu64, prefix, dir(KEY_EQ), node, KEY_NUMBER_DIGITS, hlc);
}

int key_evt_dir(char *buf, const char *prefix) {
    return key_format(buf, "%sevt/", prefix);
}

int key_evt_entry(char *buf, const char *prefix, const char *channel, const char *node, uint64_t hlc) {
    return key_format(buf, "%sevt/%s/%s/%0*" PRIu64, prefix, channel, node, KEY_NUMBER_DIGITS, hlc);
}

int key_bq_entry(char *buf, const char *prefix, uint64_t seq) {
    return key_format(buf, "%s%s/%0*" PRIu64, prefix, dir(KEY_BQ), KEY_NUMBER_DIGITS, seq);
}

int key_current_epoch(char *buf, const char *prefix, const char *process) {
    return key_format(buf, "%s%s/current_epoch", prefix, process);
}

int key_failvec_dir(char *buf, const char *prefix, const char *process) {
    return key_format(buf, "%s%s/%s/", prefix, dir(KEY_FAILVEC), process);
}

int key_failvec_epoch(char *buf, const char *prefix, const char *process, int64_t epoch) {
    return key_format(buf, "%s%s/%s/%" PRId64, prefix, dir(KEY_FAILVEC), process, epoch);
}

int key_failvec_chunks(char *buf, const char *prefix, const char *process, int64_t epoch) {
    return key_format(buf, "%s%s/%s/%" PRId64 "/", prefix, dir(KEY_FAILVEC), process, epoch);
}

int key_failvec_chunk(char *buf, const char *prefix, const char *process, int64_t epoch, uint64_t seq) {
    return key_format(buf, "%s%s/%s/%" PRId64 "/%0*" PRIu64, prefix, dir(KEY_FAILVEC), process, epoch,
                      KEY_NUMBER_DIGITS, seq);
}

#define KEY_COUNT_SUFFIX "/nr_failures"

int key_failvec_count(char *buf, const char *prefix, const char *process, int64_t epoch) {
    return key_format(buf, "%s%s/%s/%" PRId64 KEY_COUNT_SUFFIX, prefix, dir(KEY_FAILVEC), process, epoch);
}

bool key_failvec_is_count(const char *key, size_t len) {
    size_t n = strlen(KEY_COUNT_SUFFIX);
    return len >= n && memcmp(key + len - n, KEY_COUNT_SUFFIX, n) == 0;
}

int key_names_of(char *buf, const char *prefix, const char *ctx, const char *name) {
    return key_format(buf, "%s%s/%s/%s/", prefix, dir(KEY_NAMES), ctx, name);
}

int key_names_reg(char *buf, const char *prefix, const char *ctx, const char *name, const char *node,
                  const char *comp) {
    return key_format(buf, "%s%s/%s/%s/%s/%s", prefix, dir(KEY_NAMES), ctx, name, node, comp);
}

int key_names_split(const char *rest, size_t len, char *ctx, char *name, char *node, char *comp) {
    char *parts[] = {ctx, name, node, comp};
    const char *p = rest, *end = rest + len;
    if (len >= STORE_KEY_MAX)
        return -EINVAL;
    for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
        const char *slash = i + 1 < ELEMENTSOF(parts) ? memchr(p, '/', (size_t)(end - p)) : end;
        if (!slash || slash == p || (i + 1 == ELEMENTSOF(parts) && end[-1] == '/'))
            return -EINVAL;
        memcpy(parts[i], p, (size_t)(slash - p));
        parts[i][slash - p] = '\0';
        p = slash + (slash < end);
    }
    return 0;
}

int key_parse(const char *prefix, const char *key, size_t len, const char **ret_rest, size_t *ret_len) {
    size_t plen = strlen(prefix);
    if (len <= plen || memcmp(key, prefix, plen) != 0)
        return -ENOENT;
    const char *s = key + plen, *slash = memchr(s, '/', len - plen);
    if (!slash)
        return -ENOENT;
    for (int d = 0; d < _KEY_DIR_MAX; d++) {
        const char *name = key_dir_table[d];
        if ((size_t)(slash - s) == strlen(name) && memcmp(s, name, (size_t)(slash - s)) == 0) {
            *ret_rest = slash + 1;
            *ret_len = len - plen - (size_t)(slash - s) - 1;
            return d;
        }
    }
    return -ENOENT;
}

int key_split_pair(const char *rest, size_t len, char *a, char *b) {
    const char *slash = memchr(rest, '/', len);
    if (!slash || slash == rest || (size_t)(slash - rest) + 1 == len || len >= STORE_KEY_MAX)
        return -EINVAL;
    size_t na = (size_t)(slash - rest), nb = len - na - 1;
    memcpy(a, rest, na);
    a[na] = '\0';
    memcpy(b, slash + 1, nb);
    b[nb] = '\0';
    return 0;
}

int key_parse_number(const char *rest, size_t len, uint64_t *ret) {
    const char *slash = memchr(rest, '/', len);
    return parse_u64_n(rest, slash ? (size_t)(slash - rest) : len, ret) < 0 ? -EINVAL : 0;
}

int key_txn(char *buf, const char *prefix, const char *txid, const char *part, const char *comp) {
    if (!part)
        return key_format(buf, "%s%s/%s/", prefix, dir(KEY_TXN), txid);
    if (!comp)
        return key_format(buf, "%s%s/%s/%s", prefix, dir(KEY_TXN), txid, part);
    return key_format(buf, "%s%s/%s/%s/%s", prefix, dir(KEY_TXN), txid, part, comp);
}

int key_txn_done(char *buf, const char *prefix, const char *txid) {
    return key_format(buf, "%s%s/done/%s", prefix, dir(KEY_TXN), txid);
}

int key_txn_parse(const char *rest, size_t len, char *txid, char *part, char *comp) {
    char tail[STORE_KEY_MAX];
    int r = key_split_pair(rest, len, txid, tail);
    if (r < 0)
        return r;
    if (streq(txid, "done")) {
        if (strchr(tail, '/'))
            return -EINVAL;
        strcpy(txid, tail);
        strcpy(part, "done");
        *comp = '\0';
        return 0;
    }
    const char *slash = strchr(tail, '/');
    static const char *const parts[] = {KEY_TXN_PARTS};
    size_t n = slash ? (size_t)(slash - tail) : strlen(tail);
    for (size_t i = 0; i < ELEMENTSOF(parts); i++)
        if (strlen(parts[i]) == n && strncmp(parts[i], tail, n) == 0) {
            /* record and decision stand alone; the others name a participant. */
            if ((i < 2) != !slash || (slash && !slash[1]) || (slash && strchr(slash + 1, '/')))
                return -EINVAL;
            memcpy(part, tail, n);
            part[n] = '\0';
            strcpy(comp, slash ? slash + 1 : "");
            return 0;
        }
    return -EINVAL;
}
