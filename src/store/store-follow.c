/* SPDX-License-Identifier: MIT */
/* Following a prefix of the store: read, then watch from the revision after the read, retry, reload on -ESTALE. */
#include "store-follow.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

/*
 * States: a follower has at most one of a read in flight (read), a live
 * watch (watch) or a retry timer running (retry), and none once it stopped
 * (store == NULL) or while its loaded() runs.
 *
 * A read cannot be cancelled, and its callback always runs once: it gets a
 * small struct of its own that points back to the follower, and that
 * pointer is cleared when the follower stops or is freed first.
 */

struct follow_read {
    struct store_follow *f; /* NULL: forgotten, the callback only frees this */
};

struct store_follow {
    store *store; /* NULL once stopped: never touched again */
    LIST_FIELDS(struct store_follow, follows);
    char *prefix;
    store_op *read_ops; /* their keys are copies */
    size_t n_read_ops;
    struct store_follow_ops ops;
    void *userdata;

    int64_t revision;
    struct follow_read *read;
    store_watch *watch;
    uv_timer_t *retry; /* its own allocation: it outlives f while it closes */
    bool retry_read;   /* what the timer retries: the read, or the watch */
    uint64_t retry_min_msec, retry_max_msec, backoff_msec;

    bool in_callback, stop_pending, freed;
};

static void follow_read_start(struct store_follow *f);
static void follow_watch_start(struct store_follow *f);

static void follow_free_memory(struct store_follow *f) {
    for (size_t i = 0; i < f->n_read_ops; i++)
        free((char *)f->read_ops[i].key);
    free(f->read_ops);
    free(f->prefix);
    free(f);
}

static void on_retry_closed(uv_handle_t *h) {
    free(h);
}

static void follow_destroy(struct store_follow *f) {
    uv_close((uv_handle_t *)f->retry, on_retry_closed);
    follow_free_memory(f);
}

/* Lets go of the store: no read, watch or retry is left, and f leaves the store's list. */
static void follow_detach(struct store_follow *f) {
    if (f->read)
        TAKE_PTR(f->read)->f = NULL; /* its callback frees it */
    f->watch = store_watch_cancel(f->watch);
    (void)uv_timer_stop(f->retry);
    if (f->store) {
        LIST_REMOVE(follows, &f->store->follows, f);
        f->store = NULL;
    }
}

/* After a user callback: runs a stopped() that came meanwhile, then frees f
 * if that was asked.  Returns false if f is gone or stopped. */
static bool follow_callback_done(struct store_follow *f) {
    f->in_callback = false;
    if (f->stop_pending && !f->freed) {
        f->stop_pending = false;
        if (f->ops.stopped) {
            f->in_callback = true;
            f->ops.stopped(f, -ECANCELED, f->userdata);
            f->in_callback = false;
        }
    }
    if (f->freed) {
        follow_destroy(f);
        return false;
    }
    return f->store != NULL;
}

/* Gives up for good (the store is closing). */
static void follow_stop(struct store_follow *f, int error) {
    follow_detach(f);
    if (f->in_callback) {
        f->stop_pending = true; /* right after that callback returns */
        return;
    }
    if (!f->ops.stopped)
        return;
    f->in_callback = true;
    f->ops.stopped(f, error, f->userdata);
    (void)follow_callback_done(f);
}

static void on_retry(uv_timer_t *t) {
    struct store_follow *f = t->data;
    if (f->retry_read)
        follow_read_start(f);
    else
        follow_watch_start(f);
}

/* A call failed with error, or could not start: retry later, unless the store is closing. */
static void follow_failed(struct store_follow *f, bool read, int error) {
    if (error == -ECANCELED) {
        follow_stop(f, error);
        return;
    }
    uint64_t delay = f->backoff_msec ? f->backoff_msec : f->retry_min_msec;
    f->backoff_msec = MIN(delay * 2, f->retry_max_msec);
    f->retry_read = read;
    (void)uv_timer_start(f->retry, on_retry, delay, 0);
}

static void on_read(store *s, int error, const store_result *r, void *userdata) {
    struct follow_read *rd = userdata;
    struct store_follow *f = rd->f;

    free(rd);
    if (!f)
        return; /* forgotten: the follower stopped or was freed meanwhile */
    f->read = NULL;
    if (error < 0) {
        follow_failed(f, true, error);
        return;
    }
    f->revision = r->revision;
    f->backoff_msec = 0;
    f->in_callback = true;
    f->ops.loaded(f, r, f->userdata);
    if (follow_callback_done(f))
        follow_watch_start(f);
}

/* Sends the read: 0, or the store's error with nothing in flight. */
static int follow_read_send(struct store_follow *f) {
    store_txn txn = {.success = f->read_ops, .n_success = f->n_read_ops};
    struct follow_read *rd = malloc(sizeof(*rd));
    int r;

    if (!rd)
        return -ENOMEM;
    rd->f = f;
    r = store_transaction(f->store, &txn, on_read, rd);
    if (r < 0) {
        free(rd);
        return r;
    }
    f->read = rd;
    return 0;
}

static void follow_read_start(struct store_follow *f) {
    int r = follow_read_send(f);
    if (r < 0)
        follow_failed(f, true, r);
}

static void on_watch(store_watch *w, int error, const store_event *ev, size_t n, void *userdata) {
    struct store_follow *f = userdata;

    if (error < 0) {
        /* The watch ended: it stays ours to cancel. */
        f->watch = store_watch_cancel(f->watch);
        if (error == -ESTALE)
            follow_read_start(f); /* history is gone: start over, at once */
        else
            follow_failed(f, false, error);
        return;
    }
    f->revision = MAX(f->revision, ev[n - 1].kv.mod_revision);
    f->backoff_msec = 0;
    f->in_callback = true;
    f->ops.changed(f, ev, n, f->userdata);
    (void)follow_callback_done(f);
}

static void follow_watch_start(struct store_follow *f) {
    int r = store_watch_prefix(f->store, f->prefix, f->revision + 1, on_watch, f, &f->watch);
    if (r < 0) {
        f->watch = NULL;
        follow_failed(f, false, r);
    }
}

static bool read_ops_ok(const store_op *ops, size_t n) {
    if (n > STORE_TXN_OPS_MAX || (n > 0 && !ops))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((ops[i].type != STORE_OP_GET && ops[i].type != STORE_OP_GET_PREFIX) || !ops[i].key ||
            ops[i].key_len > STORE_KEY_MAX)
            return false;
    return true;
}

/* Copies the read ops and their keys into f. */
static int follow_copy_read_ops(struct store_follow *f, const store_op *ops, size_t n) {
    f->read_ops = calloc(n, sizeof(*ops));
    if (!f->read_ops)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char *key = malloc(ops[i].key_len + 1);
        if (!key)
            return -ENOMEM;
        memcpy(key, ops[i].key, ops[i].key_len);
        key[ops[i].key_len] = 0;
        f->read_ops[i] =
            (store_op){.type = ops[i].type, .key = key, .key_len = ops[i].key_len, .keys_only = ops[i].keys_only};
        f->n_read_ops++;
    }
    return 0;
}

int store_follow(store *s, const struct store_follow_params *p, const struct store_follow_ops *ops, void *userdata,
                 struct store_follow **ret) {
    assert_return(s, -EINVAL);
    assert_return(p, -EINVAL);
    assert_return(ops, -EINVAL);
    assert_return(ops->loaded && ops->changed, -EINVAL);
    assert_return(ret, -EINVAL);
    assert_return(p->prefix && strlen(p->prefix) <= STORE_KEY_MAX, -EINVAL);
    assert_return(read_ops_ok(p->read_ops, p->n_read_ops), -EINVAL);
    uint64_t min = p->retry_min_msec ? p->retry_min_msec : STORE_FOLLOW_RETRY_MIN_MSEC;
    uint64_t max = p->retry_max_msec ? p->retry_max_msec : STORE_FOLLOW_RETRY_MAX_MSEC;
    assert_return(min <= max, -EINVAL);
    if (s->closing)
        return -ECANCELED;

    struct store_follow *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->ops = *ops;
    f->userdata = userdata;
    f->retry_min_msec = min;
    f->retry_max_msec = max;
    /* The default read is a read op like the caller's. */
    store_op def = {
        .type = STORE_OP_GET_PREFIX, .key = p->prefix, .key_len = strlen(p->prefix), .keys_only = p->keys_only};
    f->prefix = strdup(p->prefix);
    f->retry = malloc(sizeof(*f->retry));
    if (!f->prefix || !f->retry ||
        follow_copy_read_ops(f, p->n_read_ops ? p->read_ops : &def, p->n_read_ops ? p->n_read_ops : 1) < 0) {
        free(f->retry);
        follow_free_memory(f);
        return -ENOMEM;
    }
    (void)uv_timer_init(s->loop, f->retry); /* cannot fail */
    f->retry->data = f;

    /* The first read, now: its errors are the caller's. */
    f->store = s;
    int r = follow_read_send(f);
    if (r < 0) {
        follow_destroy(f);
        return r;
    }
    LIST_APPEND(follows, &s->follows, f);
    *ret = f;
    return 0;
}

struct store_follow *store_follow_free(struct store_follow *f) {
    if (!f || f->freed)
        return NULL;
    follow_detach(f);
    f->stop_pending = false;
    if (f->in_callback)
        f->freed = true; /* freed when that callback returns */
    else
        follow_destroy(f);
    return NULL;
}

int64_t store_follow_revision(const struct store_follow *f) {
    assert_return(f, -EINVAL);
    return f->revision;
}

void store_follow_stop_all(store *s) {
    /* From the head each time: a stopped() may free any other follower. */
    while (s->follows.first)
        follow_stop(s->follows.first, -ECANCELED);
}
