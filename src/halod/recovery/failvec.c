/* SPDX-License-Identifier: MIT */
/* Epochs and failure vectors, written with the consumer's batches (see failvec.h). */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failvec.h"
#include "hashmap.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "strprintf.h"

/* One event's writes fit an empty batch (its EQ entry's delete or rewrite,
 * the BQ entry and bq-seq besides): a pool member's event costs two per
 * member and the member's state, a node's failure two per pool process on it. */
_Static_assert(2 * CONFIG_POOL_PROCESSES_MAX + 1 + 5 + 3 <= STORE_TXN_OPS_MAX, "a pool's event fits a transaction");
_Static_assert(2 * CONFIG_NODE_POOL_PROCESSES_MAX + 3 <= STORE_TXN_OPS_MAX, "a node's failure fits a transaction");

/* Reads in one load transaction. */
#define LOAD_CHUNK 64

/* An object of a vector: its latest event, kept in the chunk named by the seq
 * of the event that first put it there. */
struct fv_entry {
    char *json; /* the event as published */
    uint64_t chunk;
};

/* A pool process: its committed epoch, and the vector of b_epoch as the
 * store holds it plus what the batch being built changes (written by ops()).
 * An epoch opened in the batch turns the writes of the one before into
 * ready key/value pairs (old), and the vector starts empty. */
struct fv_proc {
    const struct rm_process *p;
    int64_t epoch;            /* committed; QUEUE_EPOCH_NONE: none */
    struct fv_entry *entries; /* in the order of each object's first event */
    size_t n_entries, cap_entries;
    struct hashmap index; /* object -> its position in entries + 1 */
    /* the batch */
    bool opened, count_dirty;
    int64_t b_epoch;
    uint64_t b_hlc, b_open_seq;
    uint64_t new_chunk; /* the chunk the batch's new objects go to; 0: none yet */
    uint64_t *dirty;    /* the chunks to write */
    size_t n_dirty, cap_dirty;
    char **old; /* key, value, key, value... of the epoch closed in the batch */
    size_t n_old;
    char *state; /* its own latest state published in the batch (the event as published), for state/ */
};

struct failvec {
    store *store;
    struct queue *q;
    char *prefix;
    const struct recovery_model *m;
    struct fv_proc *procs; /* by rm_process index; p NULL for processes in no pool */
    size_t n_procs;
    bool loaded, closed;
    bool nomem; /* the batch being built lost a write to memory: ops() fails it */
    unsigned gen, refs;
    size_t load_step, load_at; /* 0: epochs, 1: vectors; the next process to ask for */
    char **mem;                /* the ops' memory, until done() */
    size_t n_mem, cap_mem;
};

static void mem_free(struct failvec *f) {
    for (size_t i = 0; i < f->n_mem; i++)
        free(f->mem[i]);
    f->n_mem = 0;
}

/* Keeps s until done(); NULL stays NULL (and fails the batch). */
static char *mem_keep(struct failvec *f, char *s) {
    if (s && f->n_mem == f->cap_mem) {
        size_t cap = f->cap_mem ? f->cap_mem * 2 : 64;
        char **m = realloc(f->mem, cap * sizeof(*m));
        if (!m) {
            free(s);
            return NULL;
        }
        f->mem = m;
        f->cap_mem = cap;
    }
    if (s)
        f->mem[f->n_mem++] = s;
    return s;
}

static void entries_clear(struct fv_proc *fp) {
    for (size_t i = 0; i < fp->n_entries; i++)
        free(fp->entries[i].json);
    fp->n_entries = 0;
    hashmap_done(&fp->index, NULL);
}

static void old_clear(struct fv_proc *fp) {
    for (size_t i = 0; i < fp->n_old; i++)
        free(fp->old[i]);
    free(fp->old);
    fp->old = NULL;
    fp->n_old = 0;
}

static void batch_clear(struct fv_proc *fp) {
    fp->opened = fp->count_dirty = false;
    fp->b_epoch = fp->epoch;
    fp->new_chunk = 0;
    fp->n_dirty = 0;
    old_clear(fp);
    free(fp->state);
    fp->state = NULL;
}

static void failvec_unref(struct failvec *f) {
    if (--f->refs > 0)
        return;
    for (size_t i = 0; i < f->n_procs; i++) {
        batch_clear(&f->procs[i]);
        entries_clear(&f->procs[i]);
        free(f->procs[i].entries);
        free(f->procs[i].dirty);
    }
    mem_free(f);
    free(f->mem);
    free(f->procs);
    free(f->prefix);
    free(f);
}

/* A key built into buf (n: the builder's result), copied for an op that outlives the call; NULL on failure. */
static char *dup_key(int n, const char *buf) {
    return n < 0 ? NULL : strdup(buf);
}

/* ---- the vector in memory ---- */

/* The position of object's entry, or -1. */
static ssize_t entry_find(const struct fv_proc *fp, const char *object) {
    void *v = hashmap_get(&fp->index, object);
    return v ? (ssize_t)((uintptr_t)v - 1) : -1;
}

/* A new entry at the end (takes json): 0 or -ENOMEM (json freed). */
static int entry_append(struct fv_proc *fp, const char *object, char *json, uint64_t chunk) {
    if (fp->n_entries == fp->cap_entries) {
        size_t cap = fp->cap_entries ? fp->cap_entries * 2 : 16;
        struct fv_entry *e = realloc(fp->entries, cap * sizeof(*e));
        if (!e) {
            free(json);
            return -ENOMEM;
        }
        fp->entries = e;
        fp->cap_entries = cap;
    }
    if (hashmap_put(&fp->index, object, (void *)(uintptr_t)(fp->n_entries + 1)) < 0) {
        free(json);
        return -ENOMEM;
    }
    fp->entries[fp->n_entries++] = (struct fv_entry){.json = json, .chunk = chunk};
    return 0;
}

static bool chunk_dirty(const struct fv_proc *fp, uint64_t chunk) {
    for (size_t i = 0; i < fp->n_dirty; i++)
        if (fp->dirty[i] == chunk)
            return true;
    return false;
}

static void mark_dirty(struct failvec *f, struct fv_proc *fp, uint64_t chunk) {
    if (chunk_dirty(fp, chunk))
        return;
    if (fp->n_dirty == fp->cap_dirty) {
        size_t cap = fp->cap_dirty ? fp->cap_dirty * 2 : 8;
        uint64_t *d = realloc(fp->dirty, cap * sizeof(*d));
        if (!d) {
            f->nomem = true;
            return;
        }
        fp->dirty = d;
        fp->cap_dirty = cap;
    }
    fp->dirty[fp->n_dirty++] = chunk;
}

/* The value of a chunk: its entries in order, a JSON array (NULL: out of memory). */
static char *chunk_value(const struct fv_proc *fp, uint64_t chunk) {
    size_t len = 2;
    for (size_t i = 0; i < fp->n_entries; i++)
        if (fp->entries[i].chunk == chunk)
            len += strlen(fp->entries[i].json) + 1;
    char *v = malloc(len + 1), *at = v;
    if (!v)
        return NULL;
    *at++ = '[';
    for (size_t i = 0; i < fp->n_entries; i++)
        if (fp->entries[i].chunk == chunk) {
            size_t n = strlen(fp->entries[i].json);
            if (at > v + 1)
                *at++ = ',';
            memcpy(at, fp->entries[i].json, n);
            at += n;
        }
    *at++ = ']';
    *at = '\0';
    return v;
}

int failvec_new(store *s, struct queue *q, const char *prefix, const struct recovery_model *model,
                struct failvec **ret) {
    struct failvec *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->refs = 1;
    f->store = s;
    f->q = q;
    f->m = model;
    f->n_procs = rm_n_processes(model);
    f->prefix = strdup(prefix);
    f->procs = calloc(f->n_procs ? f->n_procs : 1, sizeof(*f->procs));
    if (!f->prefix || !f->procs) {
        failvec_unref(f);
        return -ENOMEM;
    }
    for (size_t i = 0; i < f->n_procs; i++) {
        const struct rm_process *p = rm_process_at(model, i);
        f->procs[i].epoch = f->procs[i].b_epoch = QUEUE_EPOCH_NONE;
        if (p->pool)
            f->procs[i].p = p;
    }
    *ret = f;
    return 0;
}

void failvec_free(struct failvec *f) {
    if (!f)
        return;
    f->closed = true;
    failvec_unref(f);
}

int64_t failvec_epoch(const struct failvec *f, const struct rm_process *p) {
    if (!f || !p || p->index >= f->n_procs || !f->procs[p->index].p)
        return QUEUE_EPOCH_NONE;
    return f->procs[p->index].b_epoch;
}

/* ---- loading: every pool process's epoch, then its vector ---- */

static void load_next(struct failvec *f);

struct load_call {
    struct failvec *f;
    unsigned gen;
    size_t step, from, n;
    size_t idx[LOAD_CHUNK];
    char *keys[LOAD_CHUNK]; /* step 1: the vector's prefix, failvec/<process>/<epoch>/ */
};

static void load_call_free(struct load_call *lc) {
    for (size_t i = 0; i < lc->n; i++)
        free(lc->keys[i]);
    free(lc);
}

static bool parse_count(const store_kv *kv, uint64_t *ret) {
    uint64_t v;
    if (parse_u64_n(kv->value, kv->value_len, &v) < 0 || v > INT64_MAX)
        return false;
    *ret = v;
    return true;
}

/* One chunk of fp's vector as read: its objects join the entries (an object
 * seen in an earlier chunk keeps its place and takes the later event). */
static int load_chunk(struct fv_proc *fp, const store_kv *kv, size_t prefix_len) {
    uint64_t chunk;
    if (key_parse_number(kv->key + prefix_len, kv->key_len - prefix_len, &chunk) < 0) {
        log_warning("Ignoring the unknown key '%.*s'", (int)kv->key_len, kv->key);
        return 0;
    }
    json_t *arr = json_loadb(kv->value, kv->value_len, JSON_REJECT_DUPLICATES, NULL);
    size_t i;
    json_t *ev;
    int r = 0;
    if (!json_is_array(arr))
        log_warning("Ignoring the invalid value of '%.*s'", (int)kv->key_len, kv->key);
    json_array_foreach(arr, i, ev) {
        struct queue_event qe;
        char object[QUEUE_OBJECT_MAX];
        if (queue_event_from_json(ev, &qe) < 0 || queue_event_object(&qe, object) < 0)
            continue;
        char *text = json_dumps(ev, JSON_COMPACT | JSON_SORT_KEYS);
        if (!text) {
            r = -ENOMEM;
            break;
        }
        ssize_t at = entry_find(fp, object);
        if (at >= 0) {
            free(fp->entries[at].json);
            fp->entries[at].json = text;
        } else if ((r = entry_append(fp, object, text, chunk)) < 0)
            break;
    }
    json_decref(arr);
    return r;
}

static void on_loaded(store *s, int error, const store_result *r, void *userdata) {
    struct load_call *lc = userdata;
    struct failvec *f = lc->f;
    if (f->closed || lc->gen != f->gen)
        goto out;
    if (error < 0) {
        if (error != -ECANCELED) {
            log_warning_errno(error, "Failed to read the epochs of the pool processes, again: %m");
            f->load_at = lc->from; /* the next load_next() asks again */
            load_next(f);
        }
        goto out;
    }
    for (size_t i = 0; i < lc->n; i++) {
        struct fv_proc *fp = &f->procs[lc->idx[i]];
        size_t klen = strlen(lc->keys[i]);
        if (lc->step == 1) {
            entries_clear(fp);
            for (size_t j = 0; j < r->n_kvs; j++) {
                const store_kv *kv = &r->kvs[j];
                if (kv->key_len <= klen || memcmp(kv->key, lc->keys[i], klen) != 0 ||
                    key_failvec_is_count(kv->key, kv->key_len))
                    continue;
                if (load_chunk(fp, kv, klen) < 0) {
                    log_error("Out of memory reading the failure vectors");
                    goto out; /* the consumer waits until its next reload */
                }
            }
            continue;
        }
        const store_kv *kv = NULL;
        for (size_t j = 0; j < r->n_kvs; j++)
            if (r->kvs[j].key_len == klen && memcmp(r->kvs[j].key, lc->keys[i], klen) == 0)
                kv = &r->kvs[j];
        uint64_t v = 0;
        if (kv && !parse_count(kv, &v))
            log_warning("Ignoring the invalid value of '%s'", lc->keys[i]);
        fp->epoch = kv && parse_count(kv, &v) ? (int64_t)v : QUEUE_EPOCH_NONE;
        fp->b_epoch = fp->epoch;
    }
    load_next(f);
out:
    load_call_free(lc);
    failvec_unref(f);
}

static void load_next(struct failvec *f) {
    for (;;) {
        struct load_call *lc = calloc(1, sizeof(*lc));
        if (!lc) {
            log_error("Out of memory reading the epochs of the pool processes");
            return; /* the consumer stays stopped until its next reload */
        }
        lc->f = f;
        lc->gen = f->gen;
        lc->step = f->load_step;
        lc->from = f->load_at;
        store_op ops[LOAD_CHUNK];
        bool nomem = false;
        for (; f->load_at < f->n_procs && lc->n < LOAD_CHUNK; f->load_at++) {
            struct fv_proc *fp = &f->procs[f->load_at];
            if (!fp->p || (lc->step == 1 && fp->epoch < 0))
                continue;
            char kb[STORE_KEY_MAX];
            char *k = lc->step == 0 ? dup_key(key_current_epoch(kb, f->prefix, fp->p->object), kb)
                                    : dup_key(key_failvec_chunks(kb, f->prefix, fp->p->object, fp->epoch), kb);
            if (!k) {
                nomem = true;
                break;
            }
            lc->idx[lc->n] = f->load_at;
            lc->keys[lc->n] = k;
            ops[lc->n] =
                (store_op){.type = lc->step == 0 ? STORE_OP_GET : STORE_OP_GET_PREFIX, .key = k, .key_len = strlen(k)};
            lc->n++;
        }
        if (nomem) {
            load_call_free(lc);
            log_error("Out of memory reading the epochs of the pool processes");
            return;
        }
        if (lc->n == 0) {
            load_call_free(lc);
            if (f->load_step == 0) {
                f->load_step = 1;
                f->load_at = 0;
                continue;
            }
            f->loaded = true;
            log_debug("Epochs and failure vectors of the pool processes read");
            eq_consumer_kick(f->q);
            return;
        }
        store_txn txn = {.success = ops, .n_success = lc->n};
        f->refs++;
        int r = store_transaction(f->store, &txn, on_loaded, lc);
        if (r < 0) {
            f->refs--;
            load_call_free(lc);
            if (r != -ECANCELED)
                log_warning_errno(r, "Failed to read the epochs of the pool processes: %m");
        }
        return;
    }
}

/* ---- the writer ---- */

static bool fv_ready(struct queue *q, void *userdata) {
    struct failvec *f = userdata;
    return f->loaded;
}

static void fv_reset(struct queue *q, void *userdata) {
    struct failvec *f = userdata;
    f->gen++;
    f->loaded = false;
    f->nomem = false;
    f->load_step = f->load_at = 0;
    mem_free(f);
    for (size_t i = 0; i < f->n_procs; i++) {
        f->procs[i].epoch = QUEUE_EPOCH_NONE;
        batch_clear(&f->procs[i]);
        entries_clear(&f->procs[i]);
    }
    load_next(f);
}

/* Opens the next epoch of fp in the batch: the writes of the epoch it
 * closes become ready pairs, and the new vector starts empty. */
static void open_epoch(struct failvec *f, struct fv_proc *fp, uint64_t seq, uint64_t hlc) {
    size_t n = fp->b_epoch >= 0 ? 2 * (fp->n_dirty + fp->count_dirty) : 0;
    if (n > 0 && !(fp->old = calloc(n, sizeof(*fp->old))))
        f->nomem = true;
    for (size_t i = 0; fp->old && i < fp->n_dirty; i++) {
        char kb[STORE_KEY_MAX];
        fp->old[fp->n_old++] = dup_key(key_failvec_chunk(kb, f->prefix, fp->p->object, fp->b_epoch, fp->dirty[i]), kb);
        fp->old[fp->n_old++] = chunk_value(fp, fp->dirty[i]);
    }
    if (fp->old && fp->count_dirty) {
        char kb[STORE_KEY_MAX];
        fp->old[fp->n_old++] = dup_key(key_failvec_count(kb, f->prefix, fp->p->object, fp->b_epoch), kb);
        fp->old[fp->n_old++] = strprintf("%zu", fp->n_entries);
    }
    for (size_t i = 0; i < fp->n_old; i++)
        f->nomem = f->nomem || !fp->old[i];
    entries_clear(fp);
    fp->n_dirty = 0;
    fp->new_chunk = 0;
    fp->opened = fp->count_dirty = true;
    fp->b_epoch = fp->b_epoch < 0 ? 0 : fp->b_epoch + 1;
    fp->b_open_seq = seq;
    fp->b_hlc = hlc;
}

/* The event json (as published, seq seq) on object becomes the object's
 * entry in fp's vector: in its place if it has one, else at the end, in the
 * batch's new chunk. */
static void record(struct failvec *f, struct fv_proc *fp, const char *object, const char *json, uint64_t seq) {
    char *text = strdup(json);
    if (!text) {
        f->nomem = true;
        return;
    }
    ssize_t at = entry_find(fp, object);
    if (at >= 0) {
        free(fp->entries[at].json);
        fp->entries[at].json = text;
        mark_dirty(f, fp, fp->entries[at].chunk);
        return;
    }
    if (fp->new_chunk == 0)
        fp->new_chunk = seq;
    if (entry_append(fp, object, text, fp->new_chunk) < 0) {
        f->nomem = true;
        return;
    }
    mark_dirty(f, fp, fp->new_chunk);
    fp->count_dirty = true;
}

/* The ops recording object in fp's vector would add to the batch. */
static size_t record_cost(const struct fv_proc *fp, const char *object) {
    ssize_t at = entry_find(fp, object);
    if (at >= 0)
        return chunk_dirty(fp, fp->entries[at].chunk) ? 0 : 1;
    return (fp->new_chunk ? 0 : 1) + (fp->count_dirty ? 0 : 1);
}

/* What ev does to the pool processes it concerns.  apply false: only says
 * how many more ops (and stamps ev's epoch); SIZE_MAX when it cannot join
 * this batch.  apply true: does it. */
static size_t apply(struct failvec *f, struct queue_event *ev, uint64_t seq, const char *json, bool apply) {
    char object[QUEUE_OBJECT_MAX];
    const struct rm_process *in[CONFIG_POOL_PROCESSES_MAX * 4];
    if (queue_event_object(ev, object) < 0)
        return 0;
    size_t n = rm_concerned(f->m, object, in, ELEMENTSOF(in));
    if (n > ELEMENTSOF(in))
        return SIZE_MAX;
    const struct rm_process *owner = rm_owner(f->m, object);
    bool pooled = owner && owner->pool;
    bool opens = ev->kind == QUEUE_KIND_PROCESS && ev->state == QUEUE_HA_ONLINE && pooled;
    /* Its services coming ONLINE with it start the epoch too: not in its own vector. */
    bool own_online = ev->kind == QUEUE_KIND_SERVICE && ev->state == QUEUE_HA_ONLINE;
    /* The event carries its process's epoch (the new one for the ONLINE that opens it). */
    if (pooled) {
        int64_t e = f->procs[owner->index].b_epoch;
        ev->epoch = e < 0 ? 0 : e + (opens ? 1 : 0);
    }
    size_t cost = 0;
    /* The process's own state goes to state/ in the same transaction as its epoch and vector. */
    if (ev->kind == QUEUE_KIND_PROCESS && pooled) {
        struct fv_proc *o = &f->procs[owner->index];
        if (!apply)
            cost += o->state ? 0 : 1;
        else {
            free(o->state);
            if (!(o->state = strdup(json)))
                f->nomem = true;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct fv_proc *fp = &f->procs[in[i]->index];
        bool is_owner = in[i] == owner;
        if (fp->b_epoch < 0 && !is_owner)
            continue; /* its vector starts with its own first event */
        bool open = (opens && is_owner) || fp->b_epoch < 0;
        bool add = !(opens && is_owner) && !(own_online && is_owner);
        if (open && fp->opened)
            return SIZE_MAX; /* one new epoch per process and batch */
        if (apply) {
            if (open)
                open_epoch(f, fp, seq, ev->hlc);
            if (add)
                record(f, fp, object, json, seq);
        } else if (open) /* current_epoch, the record, the new count (and the deletes of epoch - 2) */
            cost += 3 + (fp->b_epoch + 1 >= 2 ? 2 : 0) + (add ? 1 : 0);
        else if (add)
            cost += record_cost(fp, object);
    }
    return cost;
}

static size_t fv_cost(struct queue *q, struct queue_event *ev, void *userdata) {
    size_t c = apply(userdata, ev, 0, NULL, false);
    return c == SIZE_MAX ? STORE_TXN_OPS_MAX : c;
}

static void fv_add(struct queue *q, const struct queue_event *ev, uint64_t seq, const char *json, void *userdata) {
    struct queue_event e = *ev;
    (void)apply(userdata, &e, seq, json, true);
}

/* Adds a put of key = value (both kept until done()). */
static int put(struct failvec *f, store_op *ops, size_t *n, size_t room, char *key, char *value) {
    key = mem_keep(f, key);
    value = mem_keep(f, value);
    if (!key || !value)
        return -ENOMEM;
    if (*n >= room)
        return -E2BIG;
    ops[(*n)++] = (store_op){
        .type = STORE_OP_PUT, .key = key, .key_len = strlen(key), .value = value, .value_len = strlen(value)};
    return 0;
}

static int del(struct failvec *f, store_op *ops, size_t *n, size_t room, char *key, store_op_type type) {
    if (!(key = mem_keep(f, key)))
        return -ENOMEM;
    if (*n >= room)
        return -E2BIG;
    ops[(*n)++] = (store_op){.type = type, .key = key, .key_len = strlen(key)};
    return 0;
}

static int proc_ops(struct failvec *f, struct fv_proc *fp, store_op *ops, size_t *n, size_t room) {
    const char *o = fp->p->object;
    char kb[STORE_KEY_MAX];
    int r = 0;
    for (size_t i = 0; r >= 0 && i + 1 < fp->n_old; i += 2) {
        r = put(f, ops, n, room, fp->old[i], fp->old[i + 1]);
        fp->old[i] = fp->old[i + 1] = NULL; /* now the batch's */
    }
    if (r >= 0 && fp->opened) {
        r = put(f, ops, n, room, dup_key(key_current_epoch(kb, f->prefix, o), kb), strprintf("%" PRId64, fp->b_epoch));
        if (r >= 0)
            r = put(f, ops, n, room, dup_key(key_failvec_epoch(kb, f->prefix, o, fp->b_epoch), kb),
                    strprintf("{\"epoch\":%" PRId64 ",\"hlc\":\"%" PRIu64 "\",\"seq\":%" PRIu64 "}", fp->b_epoch,
                              fp->b_hlc, fp->b_open_seq));
        /* The epoch two before goes: its record, then everything under it. */
        if (r >= 0 && fp->b_epoch >= 2)
            r = del(f, ops, n, room, dup_key(key_failvec_epoch(kb, f->prefix, o, fp->b_epoch - 2), kb),
                    STORE_OP_DELETE);
        if (r >= 0 && fp->b_epoch >= 2)
            r = del(f, ops, n, room, dup_key(key_failvec_chunks(kb, f->prefix, o, fp->b_epoch - 2), kb),
                    STORE_OP_DELETE_PREFIX);
    }
    for (size_t i = 0; r >= 0 && i < fp->n_dirty; i++)
        r = put(f, ops, n, room, dup_key(key_failvec_chunk(kb, f->prefix, o, fp->b_epoch, fp->dirty[i]), kb),
                chunk_value(fp, fp->dirty[i]));
    if (r >= 0 && fp->count_dirty)
        r = put(f, ops, n, room, dup_key(key_failvec_count(kb, f->prefix, o, fp->b_epoch), kb),
                strprintf("%zu", fp->n_entries));
    if (r >= 0 && fp->state)
        r = put(f, ops, n, room, dup_key(key_name(kb, f->prefix, KEY_STATE, o), kb), strdup(fp->state));
    return r;
}

static int fv_ops(struct queue *q, store_op *ops, size_t room, void *userdata) {
    struct failvec *f = userdata;
    size_t n = 0;
    int r = f->nomem ? -ENOMEM : 0;
    mem_free(f);
    for (size_t i = 0; i < f->n_procs && r >= 0; i++)
        if (f->procs[i].p)
            r = proc_ops(f, &f->procs[i], ops, &n, room);
    if (r < 0)
        log_warning_errno(r, "Failed to write the failure vectors of a batch: %m");
    return r < 0 ? r : (int)n;
}

static void fv_done(struct queue *q, bool committed, void *userdata) {
    struct failvec *f = userdata;
    if (!committed) {
        /* The vectors in memory took the batch: read them again. */
        fv_reset(q, f);
        return;
    }
    f->nomem = false;
    mem_free(f);
    for (size_t i = 0; i < f->n_procs; i++) {
        struct fv_proc *fp = &f->procs[i];
        if (!fp->p)
            continue;
        fp->epoch = fp->b_epoch;
        batch_clear(fp);
    }
}

const struct eq_writer failvec_writer = {
    .ready = fv_ready,
    .cost = fv_cost,
    .add = fv_add,
    .ops = fv_ops,
    .done = fv_done,
    .reset = fv_reset,
};
