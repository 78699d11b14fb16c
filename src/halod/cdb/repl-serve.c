/* SPDX-License-Identifier: MIT */
/* Replication, the serving side (primary or relay): secondaries, full copies, the commit stream and its acks. */

/*
 * Every transaction the database commits (a client's on the primary, the
 * primary's on a relay) reaches the cdb observer, gets the next stream seq,
 * is packed once and written to every secondary that is streaming; one
 * joining with another last transaction id first gets a full copy (a
 * snapshot read while commits go on; what commits meanwhile waits in that
 * connection's queue).  Rows are sent only while the connection's write
 * queue is short, so a copy never holds the database in memory.
 * Synchronous replication: a commit is acknowledged to its client once every
 * streaming secondary acknowledged its seq (repl_wait); a secondary that
 * dies or is declared dead no longer holds anyone back, unless it is the
 * expected one (repl_expect: the standby of roles driven by the AMF), which
 * holds every commit back until it has it, connected or not.  A name counts
 * only once its connection authenticated.
 *
 * The repls of a node share one listener (their hub, repl.c): a connection
 * waits in the hub's host until its Hello names the database it wants, then
 * moves to that database's repl, or gets an Error if the node does not serve
 * it now.  The listener is open while any of them serves.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "log.h"
#include "repl-internal.h"

#define REPL_WRITE_QUEUE_MAX (4 * 1024 * 1024) /* a full copy waits while more is queued */
#define REPL_ROWS_MAX 16384                    /* rows in one Rows message */
#define REPL_DOWNS_MAX 64                      /* connections a primary keeps, authenticated or not */

/* ---- acknowledgements -------------------------------------------------------------- */

static void release_waiters(struct repl *r) {
    uint64_t upto = r->seq;
    struct peer *d;
    struct waiter *w, *next;
    LIST_FOREACH (downs, d, &r->downs) {
        if (d->phase == PHASE_STREAM) /* a secondary still copying holds nobody back */
            upto = MIN(upto, MAX(d->acked, d->base_seq));
    }
    /* The expected secondary holds every commit back until it has it, connected or not. */
    if (r->expect[0])
        upto = MIN(upto, r->expect_acked);
    if (r->hold)
        upto = 0;
    LIST_FOREACH_SAFE (waiters, w, next, &r->waiters) {
        if (w->seq <= upto) {
            LIST_REMOVE(waiters, &r->waiters, w);
            w->done(w->arg, 0);
            free(w);
        }
    }
}

/* What secondary p has durably grew to seq. */
static void note_durable(struct peer *p, uint64_t seq) {
    struct repl *r = p->r;
    p->acked = MAX(p->acked, seq);
    bool was = repl_expected_caught_up(r);
    if (r->expect[0] && streq(p->nodeid, r->expect)) {
        r->expect_acked = MAX(r->expect_acked, seq);
        r->expect_joined = true;
    }
    release_waiters(r);
    if (!was && repl_expected_caught_up(r) && r->h->expected_caught_up)
        r->h->expected_caught_up(r->userdata);
}

void repl_hold(struct repl *r, bool hold) {
    if (r->hold == hold)
        return;
    r->hold = hold;
    if (!hold)
        release_waiters(r);
}

/* Only once it has joined: a node that has not may lack what this one acknowledged before the
 * stream began (alone, or before a restart of this halod: seq counts this stream's commits only). */
bool repl_expected_caught_up(const struct repl *r) {
    return r->expect[0] && r->expect_joined && r->expect_acked >= r->seq;
}

void repl_expect(struct repl *r, const char *nodeid) {
    struct peer *d;
    if (streq(r->expect, nodeid ?: ""))
        return;
    snprintf(r->expect, sizeof(r->expect), "%s", nodeid ?: "");
    r->expect_acked = 0;
    r->expect_joined = false;
    LIST_FOREACH (downs, d, &r->downs) {
        if (d->phase == PHASE_STREAM && streq(d->nodeid, r->expect)) {
            r->expect_acked = MAX(r->expect_acked, d->acked);
            r->expect_joined = true;
        }
    }
    if (*r->expect)
        log_info("CDB%s commits wait for secondary '%s'", r->label, r->expect);
    release_waiters(r);
    /* Named while it streams with every commit: caught up now, and said so, as note_durable() would
     * (the owner may be waiting for that word; nothing else may come for a while). */
    if (repl_expected_caught_up(r) && r->h->expected_caught_up)
        r->h->expected_caught_up(r->userdata);
}

void repl_serve_fail_waiters(struct repl *r, int error) {
    struct waiter *w;
    while ((w = LIST_POP(waiters, &r->waiters))) {
        w->done(w->arg, error);
        free(w);
    }
}

void repl_wait(struct repl *r, const cdb_txid *id, void (*done)(void *arg, int error), void *arg) {
    /* The observer ran just before the commit's callback: its seq is the last given.  Anything
     * else (asynchronous, no secondary, not the last transaction) needs no wait. */
    if (r->async || (LIST_IS_EMPTY(&r->downs) && !r->expect[0] && !r->hold) || !cdb_txid_equal(id, &r->seq_id)) {
        done(arg, 0);
        return;
    }
    struct waiter *w = malloc(sizeof(*w));
    if (!w) {
        done(arg, -ENOMEM);
        return;
    }
    w->seq = r->seq;
    w->done = done;
    w->arg = arg;
    LIST_PREPEND(waiters, &r->waiters, w);
    release_waiters(r);
}

/* ---- full copies ------------------------------------------------------------------- */

struct rows_ctx {
    Halo__Ha__Rows rows;
    size_t cap;
};

/* Adds a row (copied: SQLite's memory is valid for one row only); 1 when the message is full. */
static int rows_add(const char *path, const uint8_t *value, size_t len, void *userdata) {
    struct rows_ctx *x = userdata;
    size_t pl = strlen(path) + 1;
    Halo__Link__CdbOp *op = malloc(sizeof(*op) + pl + len);
    if (!op)
        return -ENOMEM;
    halo__link__cdb_op__init(op);
    op->path = memcpy(op + 1, path, pl);
    op->value.data = (uint8_t *)op->path + pl;
    if (len)
        memcpy(op->value.data, value, len);
    op->value.len = len;
    x->rows.rows[x->rows.n_rows++] = op;
    return x->rows.n_rows == x->cap ? 1 : 0;
}

/* The copy is sent: CopyEnd, then what committed meanwhile, and the secondary streams. */
static void copy_end(struct peer *p) {
    char txid[CDB_TXID_STRING_MAX];
    Halo__Ha__CopyEnd end = HALO__HA__COPY_END__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    struct queued_txn *q;
    end.txid = cdb_txid_format(&p->copy_id, txid);
    end.seq = p->base_seq; /* the secondary acknowledges it once the copy is stored */
    m.body_case = HALO__HA__REPL__BODY_COPY_END;
    m.copy_end = &end;
    p->snap = cdb_snapshot_close(p->snap);
    if (repl_conn_send_msg(p, &m) < 0) {
        repl_conn_close(p, -ENOMEM, "out of memory");
        return;
    }
    while ((q = LIST_POP(queue, &p->queue))) {
        (void)repl_conn_send_blob(p, q->blob);
        repl_conn_blob_unref(q->blob);
        free(q);
    }
    p->phase = PHASE_STREAM;
    log_info("CDB%s secondary '%s' (%s) has the full copy", p->r->label, p->nodeid, p->addr);
}

void repl_serve_pump_copy(struct peer *p) {
    while (p->snap && uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp) < REPL_WRITE_QUEUE_MAX) {
        struct rows_ctx x = {.rows = HALO__HA__ROWS__INIT, .cap = REPL_ROWS_MAX};
        HaRepl m = HALO__HA__REPL__INIT;
        x.rows.rows = calloc(x.cap, sizeof(*x.rows.rows));
        if (!x.rows.rows) {
            repl_conn_close(p, -ENOMEM, "out of memory");
            return;
        }
        /* At most FRAME_ROWS_BYTES of paths and values and REPL_ROWS_MAX rows: well within a frame. */
        int k = cdb_snapshot_next(p->snap, FRAME_ROWS_BYTES, rows_add, &x);
        int r = k;
        if (k >= 0 && x.rows.n_rows) {
            m.body_case = HALO__HA__REPL__BODY_ROWS;
            m.rows = &x.rows;
            r = repl_conn_send_msg(p, &m);
        }
        for (size_t i = 0; i < x.rows.n_rows; i++)
            free(x.rows.rows[i]);
        free(x.rows.rows);
        if (r < 0) {
            repl_conn_close(p, r, "failed to read or send the full copy");
            return;
        }
        if (k == 0) {
            copy_end(p);
            return;
        }
    }
}

/* ---- the commit stream ------------------------------------------------------------- */

static int cork_add(struct peer *p, struct blob *b) {
    if (p->n_cork == p->cap_cork) {
        size_t cap = p->cap_cork ? 2 * p->cap_cork : 64;
        struct blob **v = realloc(p->cork, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        p->cork = v;
        p->cap_cork = cap;
    }
    p->cork[p->n_cork++] = b;
    b->refs++;
    return 0;
}

static void cork_drop(struct peer *p) {
    for (size_t i = 0; i < p->n_cork; i++)
        repl_conn_blob_unref(p->cork[i]);
    p->n_cork = 0;
}

static int queue_add(struct peer *p, struct blob *b) {
    struct queued_txn *q = malloc(sizeof(*q));
    if (!q)
        return -ENOMEM;
    q->blob = b;
    b->refs++;
    LIST_APPEND(queue, &p->queue, q);
    return 0;
}

/* The end of a group of commits: each secondary gets its transactions in one write. */
void repl_serve_on_group_end(struct cdb *db, void *userdata) {
    struct repl *r = userdata;
    struct peer *d, *next;
    LIST_FOREACH_SAFE (downs, d, next, &r->downs) {
        if (!d->n_cork)
            continue;
        int k = repl_conn_send_blobs(d, d->cork, d->n_cork);
        cork_drop(d);
        if (k < 0)
            repl_conn_close(d, k, "failed to send transactions");
    }
}

void repl_serve_on_commit(struct cdb *db, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata) {
    struct repl *r = userdata;
    char txid[CDB_TXID_STRING_MAX];
    struct peer *d, *next;

    if (n == 0)
        return; /* our own full copy from upstream (a relay): secondaries join again below */
    r->seq++;
    r->seq_id = *id;
    if (LIST_IS_EMPTY(&r->downs))
        return;
    Halo__Ha__Txn t = HALO__HA__TXN__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    _cleanup_free_ Halo__Link__CdbOp *mops = calloc(n, sizeof(*mops));
    _cleanup_free_ Halo__Link__CdbOp **pops = calloc(n, sizeof(*pops));
    if (!mops || !pops) {
        log_error("Out of memory: CDB secondaries cut off");
        while (!LIST_IS_EMPTY(&r->downs))
            repl_conn_close(r->downs.first, -ENOMEM, "out of memory on the primary");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        halo__link__cdb_op__init(&mops[i]);
        mops[i].path = (char *)ops[i].path;
        mops[i].value.data = (uint8_t *)ops[i].value;
        mops[i].value.len = ops[i].len;
        mops[i].del = ops[i].del;
        pops[i] = &mops[i];
    }
    t.seq = r->seq;
    t.txid = cdb_txid_format(id, txid);
    t.ops = pops;
    t.n_ops = n;
    m.body_case = HALO__HA__REPL__BODY_TXN;
    m.txn = &t;
    struct blob *b = repl_conn_blob_pack(&m);
    LIST_FOREACH_SAFE (downs, d, next, &r->downs) {
        int k = b ? 0 : -ENOMEM;
        if (k == 0 && d->phase == PHASE_STREAM)
            k = cork_add(d, b);
        else if (k == 0 && d->phase == PHASE_COPY)
            k = queue_add(d, b);
        if (k < 0)
            repl_conn_close(d, k, "failed to send a transaction");
    }
    repl_conn_blob_unref(b);
}

/* ---- a secondary's messages -------------------------------------------------------- */

static void down_join(struct peer *p, const Halo__Ha__Join *j) {
    struct repl *r = p->r;
    cdb_txid theirs;
    Halo__Ha__Welcome w = HALO__HA__WELCOME__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    char txid[CDB_TXID_STRING_MAX], upstream[CDB_TXID_STRING_MAX];
    uint64_t paths = 0;

    if (!streq(j->primary_id, r->nodeid)) {
        repl_conn_send_error(p, -HALO_EBADNAME, "this node has another name");
        repl_conn_close(p, -HALO_EBADNAME, "it asked for another primary");
        return;
    }
    if (cdb_txid_parse(j->last_txid, &theirs) < 0) {
        repl_conn_close(p, -EBADMSG, "a bad transaction id");
        return;
    }
    /* A named database (a version-2 Hello): two nodes started with different descriptions. */
    if (*r->name && !streq(j->subtree, r->subtree)) {
        char why[sizeof(r->name) + 2 * sizeof(r->subtree) + 64];
        snprintf(why, sizeof(why), "the primary's subtree for group '%s' is %s, this node's %s", r->name, r->subtree,
                 *j->subtree ? j->subtree : "none");
        log_warning("CDB%s secondary '%s' (%s) refused: %s", r->label, p->nodeid, p->addr, why);
        repl_conn_send_error(p, -HALO_EBADNAME, why);
        repl_conn_close(p, -HALO_EBADNAME, "it has another subtree");
        return;
    }
    p->base_seq = r->seq;
    w.full_copy = !cdb_txid_equal(&theirs, cdb_last(r->db));
    /* In sync: it has every commit so far.  A copy counts once the secondary acknowledged it. */
    p->acked = w.full_copy ? 0 : r->seq;
    if (w.full_copy) {
        int k = cdb_snapshot_open(r->db, &p->snap, &p->copy_id, &paths);
        if (k < 0) {
            repl_conn_send_error(p, k, "the primary cannot read its database");
            repl_conn_close(p, k, "cannot open a snapshot");
            return;
        }
        w.txid = cdb_txid_format(&p->copy_id, txid);
        w.paths = paths;
        w.upstream = cdb_txid_format(cdb_upstream(r->db), upstream);
    } else
        w.txid = cdb_txid_format(cdb_last(r->db), txid);
    m.body_case = HALO__HA__REPL__BODY_WELCOME;
    m.welcome = &w;
    if (repl_conn_send_msg(p, &m) < 0) {
        repl_conn_close(p, -ENOMEM, "out of memory");
        return;
    }
    p->full_copy = w.full_copy;
    log_info("CDB%s secondary '%s' (%s) joined%s", r->label, p->nodeid, p->addr,
             w.full_copy ? ": sending a full copy" : ", already in sync");
    if (r->h->secondary_arrived)
        r->h->secondary_arrived(r->userdata, p->nodeid);
    if (p->phase == PHASE_CLOSING)
        return;
    p->phase = w.full_copy ? PHASE_COPY : PHASE_STREAM;
    if (!w.full_copy)
        note_durable(p, r->seq);
    if (p->snap)
        repl_serve_pump_copy(p);
}

static void down_hello(struct peer *p, const Halo__Ha__Hello *h) {
    /* The database it names, served now; the main one is "". */
    struct repl *r = repl_hub_find(p->r->hub, h->db);
    if (!r || !r->serving) {
        char why[LINK_NAME_MAX + 64];
        if (*h->db)
            snprintf(why, sizeof(why), "this node does not serve the CDB of group '%s' now", h->db);
        else
            snprintf(why, sizeof(why), "this node does not serve the CDB now");
        repl_conn_send_error(p, -HALO_ECONNECT, why);
        repl_conn_close(p, -HALO_ECONNECT, why);
        return;
    }
    if (repl_conn_move(p, r) < 0) {
        repl_conn_close(p, -ENOMEM, "out of memory");
        return;
    }
    /* The name is only a claim until its Auth proves it: nothing is done in its name before. */
    snprintf(p->nodeid, sizeof(p->nodeid), "%s", h->nodeid);
    memcpy(p->nonce_theirs, h->nonce.data, FRAME_NONCE_LEN);
    if (repl_auth_send_hello(p) < 0 || repl_auth_send(p, "primary", r->nodeid, p->nodeid) < 0) {
        repl_conn_close(p, -ENOMEM, "out of memory");
        return;
    }
    p->phase = PHASE_AUTH;
}

/* p proved its name: an older connection of the same secondary is replaced (only one per name). */
static void down_authed(struct peer *p) {
    struct peer *d, *next;
    repl_conn_authed(p);
    LIST_FOREACH_SAFE (downs, d, next, &p->r->downs) {
        if (d != p && d->authed && streq(d->nodeid, p->nodeid))
            repl_conn_close(d, -HALO_ECLOSED, "it connected again");
    }
}

void repl_serve_msg(struct peer *p, const HaRepl *m) {
    struct repl *r = p->r;
    switch (p->phase) {
    case PHASE_HELLO:
        /* frame.c checked that db is empty exactly in a version-1 Hello; a later version is closed. */
        if (m->body_case != HALO__HA__REPL__BODY_HELLO ||
            m->hello->version != (*m->hello->db ? FRAME_REPL_VERSION_DB : FRAME_REPL_VERSION))
            break;
        down_hello(p, m->hello);
        return;
    case PHASE_AUTH:
        if (m->body_case == HALO__HA__REPL__BODY_AUTH) {
            if (!repl_auth_ok(p, m->auth, "secondary", p->nodeid, r->nodeid)) {
                log_warning("CDB%s secondary '%s' (%s) does not have our token: refused", r->label, p->nodeid, p->addr);
                repl_conn_send_error(p, -HALO_EBADTOKEN, "bad token");
                repl_conn_close(p, -HALO_EBADTOKEN, "bad token");
                return;
            }
            down_authed(p);
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_JOIN && p->authed) {
            down_join(p, m->join);
            return;
        }
        break;
    case PHASE_COPY:
    case PHASE_STREAM:
        if (m->body_case == HALO__HA__REPL__BODY_TICK)
            return;
        if (m->body_case == HALO__HA__REPL__BODY_ACK) {
            if (m->ack->seq > r->seq)
                break;
            if (m->ack->seq > p->acked)
                note_durable(p, m->ack->seq);
            return;
        }
        break;
    default:
        break;
    }
    repl_conn_close(p, -EPROTO, "unexpected message");
}

/* ---- secondaries' connections ------------------------------------------------------ */

void repl_serve_closed(struct peer *p, enum peer_phase was, const char *reason) {
    struct repl *r = p->r;
    LIST_REMOVE(downs, &r->downs, p);
    if (!r->freeing && (was == PHASE_COPY || was == PHASE_STREAM)) {
        log_info("CDB%s secondary '%s' (%s) is gone: %s", r->label, p->nodeid, p->addr, reason);
        if (r->h->secondary_died)
            r->h->secondary_died(r->userdata, p->nodeid, reason);
    }
    release_waiters(r);
    p->snap = cdb_snapshot_close(p->snap);
}

void repl_serve_release(struct peer *p) {
    struct queued_txn *q;
    cork_drop(p);
    free(p->cork);
    p->snap = cdb_snapshot_close(p->snap);
    while ((q = LIST_POP(queue, &p->queue))) {
        repl_conn_blob_unref(q->blob);
        free(q);
    }
}

static void on_connection(uv_stream_t *server, int status) {
    struct repl_hub *hub = server->data;
    struct repl *r = repl_hub_host(hub), *each; /* a repl serves while the listener is open */
    struct peer *d;
    size_t n = 0;
    if (status < 0 || !r)
        return;
    LIST_FOREACH (repls, each, &hub->repls) {
        LIST_FOREACH (downs, d, &each->downs)
            n++;
    }
    struct peer *p = repl_conn_new(r, PEER_DOWN);
    if (!p)
        return;
    p->phase = PHASE_HELLO;
    if (n >= REPL_DOWNS_MAX) {
        /* Taken and closed at once, so that the backlog does not fill with what we refuse. */
        if (uv_accept(server, (uv_stream_t *)&p->tcp) == 0)
            log_warning("CDB: %zu connections already; one more refused", n);
        p->phase = PHASE_CLOSING;
        repl_conn_close_handles(p);
        return;
    }
    LIST_PREPEND(downs, &r->downs, p);
    if (uv_accept(server, (uv_stream_t *)&p->tcp) < 0 || repl_conn_start_reading(p) < 0) {
        repl_conn_close(p, -EIO, "accept failed");
        return;
    }
    (void)uv_tcp_nodelay(&p->tcp, 1);
    repl_conn_peer_addr(&p->tcp, p->addr, sizeof(p->addr));
}

/* ---- the listener ------------------------------------------------------------------ */

static void on_listener_closed(uv_handle_t *h) {
    struct repl_hub *hub = h->data;
    free(h);
    repl_hub_unref(hub);
}

static void hub_close_listener(struct repl_hub *hub) {
    if (!hub->listener)
        return;
    uv_close((uv_handle_t *)hub->listener, on_listener_closed);
    hub->listener = NULL;
}

static int hub_listen(struct repl_hub *hub) {
    if (hub->listener)
        return 0;
    hub->listener = malloc(sizeof(*hub->listener));
    if (!hub->listener)
        return -ENOMEM;
    uv_tcp_init(hub->loop, hub->listener);
    hub->listener->data = hub;
    hub->refs++;
    int k = uv_tcp_bind(hub->listener, (const struct sockaddr *)&hub->listen_sa, 0);
    if (k >= 0)
        k = uv_listen((uv_stream_t *)hub->listener, 16, on_connection);
    if (k < 0) {
        log_error("Failed to listen for CDB secondaries on %s: %s", hub->listen_addr, uv_strerror(k));
        hub_close_listener(hub);
        return -HALO_EBIND;
    }
    return 0;
}

int repl_serve(struct repl *r) {
    if (r->serving)
        return 0;
    int k = hub_listen(r->hub);
    if (k < 0)
        return k;
    r->serving = true;
    r->hub->n_serving++;
    log_info("Serving the CDB%s to secondaries on %s", r->label, r->hub->listen_addr);
    return 0;
}

bool repl_serving(const struct repl *r) {
    return r->serving;
}

void repl_serve_leave(struct repl *r, const char *reason) {
    struct repl_hub *hub = r->hub;
    struct repl *each;
    struct peer *d, *next;
    if (!r->serving)
        return;
    r->serving = false;
    if (--hub->n_serving > 0)
        return;
    hub_close_listener(hub);
    /* Nothing is served now: a connection whose Hello has not come has nowhere to go. */
    LIST_FOREACH (repls, each, &hub->repls) {
        LIST_FOREACH_SAFE (downs, d, next, &each->downs) {
            if (d->phase != PHASE_HELLO)
                continue;
            repl_conn_send_error(d, -HALO_ECLOSED, reason);
            repl_conn_close(d, -HALO_ECLOSED, reason);
        }
    }
}

void repl_stop_serving(struct repl *r, const char *reason) {
    struct peer *d, *next;
    /* Another database still served: connections not yet past their Hello may be headed there. */
    bool others = r->hub->n_serving > (r->serving ? 1u : 0u);
    repl_serve_fail_waiters(r, -HALO_ECLOSED); /* before the secondaries go: they would release them as replicated */
    LIST_FOREACH_SAFE (downs, d, next, &r->downs) {
        if (others && d->phase == PHASE_HELLO)
            continue;
        repl_conn_send_error(d, -HALO_ECLOSED, reason);
        repl_conn_close(d, -HALO_ECLOSED, reason);
    }
    repl_serve_leave(r, reason);
    release_waiters(r);
}

void repl_secondary_dead(struct repl *r, const char *nodeid) {
    struct peer *d, *next;
    LIST_FOREACH_SAFE (downs, d, next, &r->downs) {
        if (streq(d->nodeid, nodeid))
            repl_conn_close(d, -HALO_ECLOSED, "declared dead by the application");
    }
}

void repl_secondaries(struct repl *r, void (*fn)(const char *nodeid, const char *addr, void *ud), void *ud) {
    struct peer *d;
    LIST_FOREACH (downs, d, &r->downs) {
        if (d->phase == PHASE_COPY || d->phase == PHASE_STREAM)
            fn(d->nodeid, d->addr, ud);
    }
}
