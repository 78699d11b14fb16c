/* SPDX-License-Identifier: MIT */
/* Epochs and failure vectors, written with the consumer's batches (see failvec.h). */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "failvec.h"
#include "keys.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"
#include "strprintf.h"

/* GETs in one load transaction. */
#define LOAD_CHUNK 64

/* A pool process: what the store holds (epoch, nr) and what the batch being
 * built adds (b_*).  An epoch opened in the batch moves the events gathered
 * before it to old_*, written under the epoch they belong to. */
struct fv_proc {
    const struct rm_process *p;
    int64_t epoch; /* committed; QUEUE_EPOCH_NONE: none */
    uint64_t nr;
    /* the batch */
    bool touched, opened;
    int64_t b_epoch;
    uint64_t b_nr, b_first, b_hlc, b_open_seq;
    char *chunk; /* "ev,ev,..." without the brackets */
    size_t chunk_len, chunk_cap;
    bool has_old;
    int64_t old_epoch;
    uint64_t old_nr, old_first;
    char *old_chunk;
    char *state; /* its own latest state published in the batch (the event as published), for state/ */
    /* the ops' memory, until done() */
    char *k[9], *v[9];
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
    size_t load_step, load_at; /* 0: epochs, 1: counts; the next process to ask for */
};

static void proc_ops_free(struct fv_proc *fp) {
    for (size_t i = 0; i < ELEMENTSOF(fp->k); i++) {
        free(fp->k[i]);
        free(fp->v[i]);
        fp->k[i] = fp->v[i] = NULL;
    }
}

static void batch_clear(struct fv_proc *fp) {
    fp->touched = fp->opened = fp->has_old = false;
    fp->b_epoch = fp->epoch;
    fp->b_nr = fp->nr;
    fp->chunk_len = 0;
    free(fp->old_chunk);
    fp->old_chunk = NULL;
    free(fp->state);
    fp->state = NULL;
    proc_ops_free(fp);
}

static void failvec_unref(struct failvec *f) {
    if (--f->refs > 0)
        return;
    for (size_t i = 0; i < f->n_procs; i++) {
        batch_clear(&f->procs[i]);
        free(f->procs[i].chunk);
    }
    free(f->procs);
    free(f->prefix);
    free(f);
}

/* A key built into buf (n: the builder's result), copied for an op that outlives the call; NULL on failure. */
static char *dup_key(int n, const char *buf) {
    return n < 0 ? NULL : strdup(buf);
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

/* ---- loading: every pool process's epoch, then its vector's count ---- */

static void load_next(struct failvec *f);

struct load_call {
    struct failvec *f;
    unsigned gen;
    size_t step, from, n;
    size_t idx[LOAD_CHUNK];
    char *keys[LOAD_CHUNK];
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
        const store_kv *kv = NULL;
        for (size_t j = 0; j < r->n_kvs; j++)
            if (r->kvs[j].key_len == strlen(lc->keys[i]) && memcmp(r->kvs[j].key, lc->keys[i], r->kvs[j].key_len) == 0)
                kv = &r->kvs[j];
        uint64_t v = 0;
        if (kv && !parse_count(kv, &v))
            log_warning("Ignoring the invalid value of '%s'", lc->keys[i]);
        if (lc->step == 0)
            fp->epoch = kv && parse_count(kv, &v) ? (int64_t)v : QUEUE_EPOCH_NONE;
        else
            fp->nr = kv && parse_count(kv, &v) ? v : 0;
        fp->b_epoch = fp->epoch;
        fp->b_nr = fp->nr;
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
                                    : dup_key(key_failvec_count(kb, f->prefix, fp->p->object, fp->epoch), kb);
            if (!k) {
                nomem = true;
                break;
            }
            lc->idx[lc->n] = f->load_at;
            lc->keys[lc->n] = k;
            ops[lc->n] = (store_op){.type = STORE_OP_GET, .key = k, .key_len = strlen(k)};
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
            log_debug("Epochs of the pool processes read");
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
    for (size_t i = 0; i < f->n_procs; i++) {
        f->procs[i].epoch = QUEUE_EPOCH_NONE;
        f->procs[i].nr = 0;
        batch_clear(&f->procs[i]);
    }
    load_next(f);
}

/* The ops fp's batch state takes. */
static size_t proc_ops(const struct fv_proc *fp) {
    size_t n = 0;
    if (fp->has_old)
        n += 2; /* its chunk and count */
    if (fp->opened)
        n += 2 + (fp->b_epoch >= 2 ? 2 : 0); /* current_epoch, the record, the deletes of epoch - 2 */
    if (fp->chunk_len > 0)
        n++;
    if (fp->touched)
        n++; /* nr_failures */
    if (fp->state)
        n++; /* state/<process> */
    return n;
}

/* Opens the next epoch of fp in the batch (the events gathered before it
 * keep their epoch, in old_*). */
static void open_epoch(struct failvec *f, struct fv_proc *fp, uint64_t seq, uint64_t hlc) {
    if (fp->chunk_len > 0) {
        fp->has_old = true;
        fp->old_epoch = fp->b_epoch;
        fp->old_nr = fp->b_nr;
        fp->old_first = fp->b_first;
        if (!(fp->old_chunk = strndup(fp->chunk, fp->chunk_len)))
            f->nomem = true;
    }
    fp->opened = fp->touched = true;
    fp->b_epoch = fp->b_epoch < 0 ? 0 : fp->b_epoch + 1;
    fp->b_nr = 0;
    fp->b_open_seq = seq;
    fp->b_hlc = hlc;
    fp->chunk_len = 0;
}

static void append_event(struct failvec *f, struct fv_proc *fp, const char *json, uint64_t seq) {
    size_t len = strlen(json), need = fp->chunk_len + len + 2;
    if (need > fp->chunk_cap) {
        size_t cap = MAX(need, fp->chunk_cap * 2);
        char *c = realloc(fp->chunk, cap);
        if (!c) {
            f->nomem = true; /* ops() fails the batch */
            return;
        }
        fp->chunk = c;
        fp->chunk_cap = cap;
    }
    if (fp->chunk_len == 0)
        fp->b_first = seq;
    else
        fp->chunk[fp->chunk_len++] = ',';
    memcpy(fp->chunk + fp->chunk_len, json, len + 1);
    fp->chunk_len += len;
    fp->b_nr++;
    fp->touched = true;
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
        if (open && (fp->opened || (fp->chunk_len > 0 && fp->has_old)))
            return SIZE_MAX; /* one new epoch per process and batch */
        if (apply) {
            if (open)
                open_epoch(f, fp, seq, ev->hlc);
            if (add)
                append_event(f, fp, json, seq);
            continue;
        }
        struct fv_proc t = *fp; /* the flags it would have, for the count */
        if (open) {
            t.has_old = t.has_old || t.chunk_len > 0;
            t.opened = t.touched = true;
            t.b_epoch = t.b_epoch < 0 ? 0 : t.b_epoch + 1;
            t.chunk_len = 0;
        }
        if (add) {
            t.touched = true;
            t.chunk_len = 1;
        }
        cost += proc_ops(&t) - proc_ops(fp);
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

static int put(store_op *ops, size_t *n, size_t room, char **k, char **v, char *key, char *value) {
    *k = key;
    *v = value;
    if (!key || !value)
        return -ENOMEM;
    if (*n >= room)
        return -E2BIG;
    ops[(*n)++] = (store_op){
        .type = STORE_OP_PUT, .key = key, .key_len = strlen(key), .value = value, .value_len = strlen(value)};
    return 0;
}

static int fv_ops(struct queue *q, store_op *ops, size_t room, void *userdata) {
    struct failvec *f = userdata;
    size_t n = 0;
    int r = f->nomem ? -ENOMEM : 0;
    for (size_t i = 0; i < f->n_procs && r >= 0; i++) {
        struct fv_proc *fp = &f->procs[i];
        if (!fp->p || (!fp->touched && !fp->opened && !fp->has_old && !fp->state))
            continue;
        const char *o = fp->p->object;
        char kb[STORE_KEY_MAX];
        size_t s = 0;
        proc_ops_free(fp);
        if (fp->has_old) {
            r = put(ops, &n, room, &fp->k[s], &fp->v[s],
                    dup_key(key_failvec_chunk(kb, f->prefix, o, fp->old_epoch, fp->old_first), kb),
                    fp->old_chunk ? strprintf("[%s]", fp->old_chunk) : NULL);
            s++;
            if (r >= 0)
                r = put(ops, &n, room, &fp->k[s], &fp->v[s],
                        dup_key(key_failvec_count(kb, f->prefix, o, fp->old_epoch), kb),
                        strprintf("%" PRIu64, fp->old_nr));
            s++;
        }
        if (r >= 0 && fp->opened) {
            r = put(ops, &n, room, &fp->k[s], &fp->v[s], dup_key(key_current_epoch(kb, f->prefix, o), kb),
                    strprintf("%" PRId64, fp->b_epoch));
            s++;
            if (r >= 0)
                r = put(ops, &n, room, &fp->k[s], &fp->v[s],
                        dup_key(key_failvec_epoch(kb, f->prefix, o, fp->b_epoch), kb),
                        strprintf("{\"epoch\":%" PRId64 ",\"hlc\":\"%" PRIu64 "\",\"seq\":%" PRIu64 "}", fp->b_epoch,
                                  fp->b_hlc, fp->b_open_seq));
            s++;
            if (r >= 0 && fp->b_epoch >= 2) {
                /* The epoch two before goes: its record, then everything under it. */
                char *rec = dup_key(key_failvec_epoch(kb, f->prefix, o, fp->b_epoch - 2), kb);
                char *under = dup_key(key_failvec_chunks(kb, f->prefix, o, fp->b_epoch - 2), kb);
                fp->k[s++] = rec;
                fp->k[s++] = under;
                if (!rec || !under)
                    r = -ENOMEM;
                else if (n + 2 > room)
                    r = -E2BIG;
                else {
                    ops[n++] = (store_op){.type = STORE_OP_DELETE, .key = rec, .key_len = strlen(rec)};
                    ops[n++] = (store_op){.type = STORE_OP_DELETE_PREFIX, .key = under, .key_len = strlen(under)};
                }
            }
        }
        if (r >= 0 && fp->chunk_len > 0) {
            r = put(ops, &n, room, &fp->k[s], &fp->v[s],
                    dup_key(key_failvec_chunk(kb, f->prefix, o, fp->b_epoch, fp->b_first), kb),
                    strprintf("[%s]", fp->chunk));
            s++;
        }
        if (r >= 0 && fp->touched)
            r = put(ops, &n, room, &fp->k[s], &fp->v[s], dup_key(key_failvec_count(kb, f->prefix, o, fp->b_epoch), kb),
                    strprintf("%" PRIu64, fp->b_nr));
        s++;
        if (r >= 0 && fp->state)
            r = put(ops, &n, room, &fp->k[s], &fp->v[s], dup_key(key_name(kb, f->prefix, KEY_STATE, o), kb),
                    strdup(fp->state));
    }
    if (r < 0)
        log_warning_errno(r, "Failed to write the failure vectors of a batch: %m");
    return r < 0 ? r : (int)n;
}

static void fv_done(struct queue *q, bool committed, void *userdata) {
    struct failvec *f = userdata;
    f->nomem = false;
    for (size_t i = 0; i < f->n_procs; i++) {
        struct fv_proc *fp = &f->procs[i];
        if (!fp->p)
            continue;
        if (committed) {
            fp->epoch = fp->b_epoch;
            fp->nr = fp->b_nr;
        }
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
