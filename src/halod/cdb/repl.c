/* SPDX-License-Identifier: MIT */
/* Replication of the configuration database between nodes: primary (and relay) to secondaries over TCP. */

/*
 * A node that serves (primary or relay) listens on its replication address;
 * a secondary connects to it (src/proto/ha.proto has the message sequence).
 * Both prove they hold the token with HMAC-SHA256 over fresh nonces, the
 * names and their role, so the token never crosses the wire and a MAC made
 * for one connection or direction is worth nothing on another.
 *
 * Serving: every transaction the database commits (a client's on the
 * primary, the primary's on a relay) reaches the cdb observer, gets the next
 * stream seq, is packed once and written to every secondary that is
 * streaming; one joining with another last transaction id first gets a full
 * copy (a snapshot read while commits go on; what commits meanwhile waits in
 * that connection's queue).  Rows are sent only while the connection's
 * write queue is short, so a copy never holds the database in memory.
 * Synchronous replication: a commit is acknowledged to its client once every
 * streaming secondary acknowledged its seq (repl_wait); a secondary that
 * dies or is declared dead no longer holds anyone back.
 *
 * Following: the secondary applies each Txn with the primary's id through
 * cdb_commit() (so they are grouped like local commits) and acknowledges
 * the highest seq durable.  A full copy goes through cdb_replace_*(): the
 * old database stays until the copy is complete.
 *
 * Liveness: every connection has a timer; a side that sent nothing for a
 * tick interval sends a Tick, and a peer silent for the dead interval is
 * closed as dead.  Every message is size-checked and validated before use
 * (frame.c); a peer that sends anything unexpected is cut off.
 */
#include "repl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "frame.h"
#include "halo/halo.h"
#include "log.h"
#include "macro.h"

#define REPL_WRITE_QUEUE_MAX (4 * 1024 * 1024) /* a full copy waits while more is queued */
#define REPL_CONNECT_TIMEOUT_MSEC 2000
#define REPL_DEFAULT_PORT 4570
#define REPL_ROWS_MAX 16384 /* rows in one Rows message */
#define REPL_DOWNS_MAX 64   /* connections a primary keeps, authenticated or not */

/* A packed frame shared by several connections' writes. */
struct blob {
    unsigned refs;
    size_t len;
    uint8_t data[];
};

/* One write of one or more blobs (a group's transactions go out in one writev). */
struct write_req {
    uv_write_t req;
    struct peer *peer;
    size_t n;
    struct blob *blobs[];
};

enum peer_role { PEER_DOWN, PEER_UP }; /* a secondary of ours, or our primary */

enum peer_phase {
    PHASE_CONNECTING, /* up: TCP connect in progress */
    PHASE_HELLO,      /* waiting for the other side's Hello (and, up, Auth) */
    PHASE_AUTH,       /* down: waiting for Auth and Join */
    PHASE_WELCOME,    /* up: waiting for Welcome */
    PHASE_COPY,       /* a full copy in progress (either side) */
    PHASE_STREAM,     /* in sync: Txn and Ack */
    PHASE_CLOSING,
};

struct queued_txn {
    struct queued_txn *next;
    struct blob *blob;
};

struct peer {
    struct repl *r;
    struct peer *prev, *next; /* r->downs */
    enum peer_role role;
    enum peer_phase phase;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect;
    unsigned open_handles;
    struct frame_reader reader;
    char nodeid[LINK_NAME_MAX + 1];
    char addr[64];
    char *token; /* the secret in force when the connection started */
    uint8_t nonce_mine[FRAME_NONCE_LEN], nonce_theirs[FRAME_NONCE_LEN];
    uint64_t last_rx, last_tx; /* loop time, ms */
    uint64_t acked;            /* down: highest seq acknowledged */
    uint64_t base_seq;         /* down: the stream seq when it joined */
    bool full_copy;
    bool authed;  /* down: its Auth was right; a Join may follow */
    uint64_t gen; /* up: which join this is */
    /* down, streaming: the transactions of the group being committed, written at its end */
    struct blob **cork;
    size_t n_cork, cap_cork;
    /* down, copying: the snapshot and what committed after it */
    struct cdb_snapshot *snap;
    struct queued_txn *q_head, *q_tail;
    cdb_txid copy_id;
    /* up: acknowledgements waiting for their commit */
    uint64_t applied; /* highest seq durable here */
    unsigned pending_applies;
};

struct waiter {
    struct waiter *next;
    uint64_t seq;
    void (*done)(void *arg, int error);
    void *arg;
};

struct repl {
    uv_loop_t *loop;
    struct cdb *db;
    char listen_addr[64];
    uint16_t listen_port;
    struct sockaddr_storage listen_sa;
    uint64_t tick_msec, dead_msec;
    bool async;
    const struct repl_handlers *h;
    void *userdata;
    char *token;
    char nodeid[LINK_NAME_MAX + 1];

    uv_tcp_t *listener; /* while serving; freed by its close callback */
    unsigned n_open;    /* peers and listeners not released yet: the last frees r once freeing */
    struct peer *downs;
    struct peer *up;
    char up_primary[LINK_NAME_MAX + 1], up_addr[LINK_NAME_MAX + 1];

    uint64_t up_gen;
    uint64_t seq; /* the stream: the last seq given to a committed transaction */
    cdb_txid seq_id;
    struct waiter *waiters;
    bool freeing;
};

static void peer_close(struct peer *p, int error, const char *reason);
static void pump_copy(struct peer *p);
static void cork_drop(struct peer *p);

static uint64_t now_ms(struct repl *r) {
    return uv_now(r->loop);
}

/* ---- blobs and writes -------------------------------------------------------- */

static struct blob *blob_unref(struct blob *b) {
    if (b && --b->refs == 0)
        free(b);
    return NULL;
}

static struct blob *pack_repl(const HaRepl *m) {
    uint8_t *buf;
    size_t len;
    if (frame_pack_repl(m, &buf, &len) < 0)
        return NULL;
    struct blob *b = malloc(sizeof(*b) + len);
    if (b) {
        b->refs = 1;
        b->len = len;
        memcpy(b->data, buf, len);
    }
    free(buf);
    return b;
}

static void on_written(uv_write_t *req, int status) {
    struct write_req *w = (struct write_req *)req;
    struct peer *p = w->peer;
    for (size_t i = 0; i < w->n; i++)
        blob_unref(w->blobs[i]);
    free(w);
    if (p->phase == PHASE_CLOSING)
        return;
    if (status < 0) {
        peer_close(p, -HALO_ECLOSED, "the connection broke");
        return;
    }
    if (p->snap)
        pump_copy(p);
}

/* Writes n blobs in one request (each gets a reference). */
static int send_blobs(struct peer *p, struct blob *const *b, size_t n) {
    struct write_req *w = malloc(sizeof(*w) + n * sizeof(w->blobs[0]));
    uv_buf_t stack[16] = {{0}}, *bufs = n <= ELEMENTSOF(stack) ? stack : malloc(n * sizeof(*bufs));
    if (!w || !bufs) {
        free(w);
        if (bufs != stack)
            free(bufs);
        return -ENOMEM;
    }
    w->peer = p;
    w->n = n;
    for (size_t i = 0; i < n; i++) {
        w->blobs[i] = b[i];
        b[i]->refs++;
        bufs[i] = uv_buf_init((char *)b[i]->data, (unsigned)b[i]->len);
    }
    int r = uv_write(&w->req, (uv_stream_t *)&p->tcp, bufs, (unsigned)n, on_written);
    if (bufs != stack)
        free(bufs);
    if (r < 0) {
        for (size_t i = 0; i < n; i++)
            b[i]->refs--;
        free(w);
        return r;
    }
    p->last_tx = now_ms(p->r);
    return 0;
}

static int send_blob(struct peer *p, struct blob *b) {
    return send_blobs(p, &b, 1);
}

static int send_msg(struct peer *p, const HaRepl *m) {
    struct blob *b = pack_repl(m);
    if (!b)
        return -ENOMEM;
    int r = send_blob(p, b);
    blob_unref(b);
    return r;
}

static void send_error(struct peer *p, int error, const char *text) {
    Halo__Ha__Error e = HALO__HA__ERROR__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    e.error = error;
    e.text = (char *)text;
    m.body_case = HALO__HA__REPL__BODY_ERROR;
    m.error = &e;
    (void)send_msg(p, &m);
}

/* ---- authentication ------------------------------------------------------------ */

static void mac_field(struct hmac_sha256_ctx *ctx, const void *data, size_t len) {
    uint8_t n[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    hmac_sha256_update(ctx, 2, n);
    hmac_sha256_update(ctx, len, data);
}

/* HMAC-SHA256(token, role, nonce a, nonce b, name a, name b), each field length-prefixed. */
static void mac_compute(const char *token, const char *role, const uint8_t *na, const uint8_t *nb, const char *ida,
                        const char *idb, uint8_t out[FRAME_MAC_LEN]) {
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, strlen(token), (const uint8_t *)token);
    mac_field(&ctx, role, strlen(role));
    mac_field(&ctx, na, FRAME_NONCE_LEN);
    mac_field(&ctx, nb, FRAME_NONCE_LEN);
    mac_field(&ctx, ida, strlen(ida));
    mac_field(&ctx, idb, strlen(idb));
    hmac_sha256_digest(&ctx, FRAME_MAC_LEN, out);
}

static int fresh_nonce(uint8_t out[FRAME_NONCE_LEN]) {
    ssize_t n = getrandom(out, FRAME_NONCE_LEN, 0);
    return n == FRAME_NONCE_LEN ? 0 : -EIO;
}

static int send_hello(struct peer *p) {
    Halo__Ha__Hello h = HALO__HA__HELLO__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    int r = fresh_nonce(p->nonce_mine);
    if (r < 0)
        return r;
    h.version = FRAME_REPL_VERSION;
    h.nodeid = p->r->nodeid;
    h.nonce.data = p->nonce_mine;
    h.nonce.len = FRAME_NONCE_LEN;
    m.body_case = HALO__HA__REPL__BODY_HELLO;
    m.hello = &h;
    return send_msg(p, &m);
}

static int send_auth(struct peer *p, const char *role, const char *me, const char *them) {
    Halo__Ha__Auth a = HALO__HA__AUTH__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    uint8_t mac[FRAME_MAC_LEN];
    mac_compute(p->token, role, p->nonce_theirs, p->nonce_mine, me, them, mac);
    a.mac.data = mac;
    a.mac.len = FRAME_MAC_LEN;
    m.body_case = HALO__HA__REPL__BODY_AUTH;
    m.auth = &a;
    return send_msg(p, &m);
}

static bool auth_ok(struct peer *p, const Halo__Ha__Auth *a, const char *role, const char *them, const char *me) {
    uint8_t want[FRAME_MAC_LEN];
    /* They computed it over (our nonce, their nonce, their name, our name). */
    mac_compute(p->token, role, p->nonce_mine, p->nonce_theirs, them, me, want);
    return a->mac.len == FRAME_MAC_LEN && memeql_sec(want, a->mac.data, FRAME_MAC_LEN);
}

/* ---- connections ------------------------------------------------------------- */

static void repl_unref(struct repl *r) {
    if (--r->n_open == 0 && r->freeing)
        free(r);
}

static void peer_release(struct peer *p) {
    struct repl *r = p->r;
    cork_drop(p);
    free(p->cork);
    frame_reader_done(&p->reader);
    p->snap = cdb_snapshot_close(p->snap);
    while (p->q_head) {
        struct queued_txn *q = p->q_head;
        p->q_head = q->next;
        blob_unref(q->blob);
        free(q);
    }
    free(p->token);
    if (r->up == p)
        r->up = NULL;
    free(p);
    repl_unref(r);
}

static void on_peer_handle_closed(uv_handle_t *h) {
    struct peer *p = h->data;
    if (--p->open_handles == 0)
        peer_release(p);
}

static void release_waiters(struct repl *r);

/* Ends a connection: unlinks it, tells the owner (unless the engine is going
 * away), and closes its handles. */
static void peer_close(struct peer *p, int error, const char *reason) {
    struct repl *r = p->r;
    enum peer_phase was = p->phase;

    if (was == PHASE_CLOSING)
        return;
    p->phase = PHASE_CLOSING;
    if (p->role == PEER_DOWN) {
        if (p->prev)
            p->prev->next = p->next;
        else if (r->downs == p)
            r->downs = p->next;
        if (p->next)
            p->next->prev = p->prev;
        p->prev = p->next = NULL;
        if (!r->freeing && (was == PHASE_COPY || was == PHASE_STREAM)) {
            log_info("CDB secondary '%s' (%s) is gone: %s", p->nodeid, p->addr, reason);
            if (r->h->secondary_died)
                r->h->secondary_died(r->userdata, p->nodeid, reason);
        }
        release_waiters(r);
    } else if (r->up == p) {
        r->up = NULL;
        if (!r->freeing) {
            if (was == PHASE_STREAM) {
                log_warning("Lost the CDB primary '%s' at %s: %s", r->up_primary, r->up_addr, reason);
                if (r->h->lost)
                    r->h->lost(r->userdata, error, reason);
            } else {
                log_warning("Failed to join the CDB primary '%s' at %s: %s", r->up_primary, r->up_addr, reason);
                if (r->h->joined)
                    r->h->joined(r->userdata, error, false, reason);
            }
        }
        r->up_primary[0] = r->up_addr[0] = '\0';
    }
    if (p->snap)
        p->snap = cdb_snapshot_close(p->snap);
    if (was == PHASE_COPY && p->role == PEER_UP)
        cdb_replace_abort(r->db); /* the old database stays */
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_peer_handle_closed);
    uv_close((uv_handle_t *)&p->tcp, on_peer_handle_closed);
}

static void on_peer_timer(uv_timer_t *t) {
    struct peer *p = t->data;
    struct repl *r = p->r;
    uint64_t now = now_ms(r);

    if (p->phase == PHASE_CONNECTING) {
        peer_close(p, -HALO_ECONNECT, "no answer to the connection");
        return;
    }
    if (now - p->last_rx >= r->dead_msec) {
        char why[96];
        snprintf(why, sizeof(why), "silent for %llu ms", (unsigned long long)(now - p->last_rx));
        peer_close(p, -ETIMEDOUT, why);
        return;
    }
    if (now - p->last_tx >= r->tick_msec && p->phase != PHASE_HELLO) {
        Halo__Ha__Tick tick = HALO__HA__TICK__INIT;
        HaRepl m = HALO__HA__REPL__INIT;
        m.body_case = HALO__HA__REPL__BODY_TICK;
        m.tick = &tick;
        (void)send_msg(p, &m);
    }
}

static struct peer *peer_new(struct repl *r, enum peer_role role) {
    struct peer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->r = r;
    p->role = role;
    p->token = strdup(r->token ? r->token : "");
    if (!p->token) {
        free(p);
        return NULL;
    }
    frame_reader_init(&p->reader, FRAME_REPL_MAX);
    uv_tcp_init(r->loop, &p->tcp);
    uv_timer_init(r->loop, &p->timer);
    p->tcp.data = p->timer.data = p;
    p->open_handles = 2;
    r->n_open++;
    p->last_rx = p->last_tx = now_ms(r);
    uv_timer_start(&p->timer, on_peer_timer, MIN(r->tick_msec, r->dead_msec) / 2 + 1,
                   MIN(r->tick_msec, r->dead_msec) / 2 + 1);
    return p;
}

/* ---- the serving side ------------------------------------------------------------- */

static void release_waiters(struct repl *r) {
    uint64_t upto = r->seq;
    for (struct peer *d = r->downs; d; d = d->next)
        if (d->phase == PHASE_STREAM) /* a secondary still copying holds nobody back */
            upto = MIN(upto, MAX(d->acked, d->base_seq));
    for (struct waiter **w = &r->waiters; *w;) {
        if ((*w)->seq <= upto) {
            struct waiter *x = *w;
            *w = x->next;
            x->done(x->arg, 0);
            free(x);
        } else
            w = &(*w)->next;
    }
}

/* Commits still waiting for the secondaries get error: their replication is not known. */
static void fail_waiters(struct repl *r, int error) {
    while (r->waiters) {
        struct waiter *w = r->waiters;
        r->waiters = w->next;
        w->done(w->arg, error);
        free(w);
    }
}

void repl_wait(struct repl *r, const cdb_txid *id, void (*done)(void *arg, int error), void *arg) {
    /* The observer ran just before the commit's callback: its seq is the last given.  Anything
     * else (asynchronous, no secondary, not the last transaction) needs no wait. */
    if (r->async || !r->downs || !cdb_txid_equal(id, &r->seq_id)) {
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
    w->next = r->waiters;
    r->waiters = w;
    release_waiters(r);
}

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

/* Sends the copy's next rows while the write queue is short; at the end, CopyEnd and what waited. */
static void pump_copy(struct peer *p) {
    while (p->snap && uv_stream_get_write_queue_size((uv_stream_t *)&p->tcp) < REPL_WRITE_QUEUE_MAX) {
        struct rows_ctx x = {.rows = HALO__HA__ROWS__INIT, .cap = REPL_ROWS_MAX};
        HaRepl m = HALO__HA__REPL__INIT;
        x.rows.rows = calloc(x.cap, sizeof(*x.rows.rows));
        if (!x.rows.rows) {
            peer_close(p, -ENOMEM, "out of memory");
            return;
        }
        /* At most FRAME_ROWS_BYTES of paths and values and REPL_ROWS_MAX rows: well within a frame. */
        int k = cdb_snapshot_next(p->snap, FRAME_ROWS_BYTES, rows_add, &x);
        int r = k;
        if (k >= 0 && x.rows.n_rows) {
            m.body_case = HALO__HA__REPL__BODY_ROWS;
            m.rows = &x.rows;
            r = send_msg(p, &m);
        }
        for (size_t i = 0; i < x.rows.n_rows; i++)
            free(x.rows.rows[i]);
        free(x.rows.rows);
        if (r < 0) {
            peer_close(p, r, "failed to read or send the full copy");
            return;
        }
        if (k == 0) {
            char txid[CDB_TXID_STRING_MAX];
            Halo__Ha__CopyEnd end = HALO__HA__COPY_END__INIT;
            end.txid = cdb_txid_format(&p->copy_id, txid);
            m.body_case = HALO__HA__REPL__BODY_COPY_END;
            m.copy_end = &end;
            p->snap = cdb_snapshot_close(p->snap);
            if (send_msg(p, &m) < 0) {
                peer_close(p, -ENOMEM, "out of memory");
                return;
            }
            while (p->q_head) {
                struct queued_txn *q = p->q_head;
                p->q_head = q->next;
                (void)send_blob(p, q->blob);
                blob_unref(q->blob);
                free(q);
            }
            p->q_tail = NULL;
            p->phase = PHASE_STREAM;
            log_info("CDB secondary '%s' (%s) has the full copy", p->nodeid, p->addr);
            return;
        }
    }
}

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
        blob_unref(p->cork[i]);
    p->n_cork = 0;
}

/* The end of a group of commits: each secondary gets its transactions in one write. */
static void on_group_end(struct cdb *db, void *userdata) {
    struct repl *r = userdata;
    for (struct peer *d = r->downs, *next; d; d = next) {
        next = d->next;
        if (!d->n_cork)
            continue;
        int k = send_blobs(d, d->cork, d->n_cork);
        cork_drop(d);
        if (k < 0)
            peer_close(d, k, "failed to send transactions");
    }
}

static void on_commit_observed(struct cdb *db, const cdb_txid *id, const struct cdb_op *ops, size_t n, void *userdata) {
    struct repl *r = userdata;
    char txid[CDB_TXID_STRING_MAX];

    if (n == 0)
        return; /* our own full copy from upstream (a relay): secondaries join again below */
    r->seq++;
    r->seq_id = *id;
    if (!r->downs)
        return;
    Halo__Ha__Txn t = HALO__HA__TXN__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    _cleanup_free_ Halo__Link__CdbOp *mops = calloc(n, sizeof(*mops));
    _cleanup_free_ Halo__Link__CdbOp **pops = calloc(n, sizeof(*pops));
    if (!mops || !pops) {
        log_error("Out of memory: CDB secondaries cut off");
        while (r->downs)
            peer_close(r->downs, -ENOMEM, "out of memory on the primary");
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
    struct blob *b = pack_repl(&m);
    for (struct peer *d = r->downs, *next; d; d = next) {
        next = d->next;
        int k = b ? 0 : -ENOMEM;
        if (k == 0 && d->phase == PHASE_STREAM)
            k = cork_add(d, b);
        else if (k == 0 && d->phase == PHASE_COPY) {
            struct queued_txn *q = malloc(sizeof(*q));
            if (!q)
                k = -ENOMEM;
            else {
                q->blob = b;
                b->refs++;
                q->next = NULL;
                if (d->q_tail)
                    d->q_tail->next = q;
                else
                    d->q_head = q;
                d->q_tail = q;
            }
        }
        if (k < 0)
            peer_close(d, k, "failed to send a transaction");
    }
    blob_unref(b);
}

static void down_join(struct peer *p, const Halo__Ha__Join *j) {
    struct repl *r = p->r;
    cdb_txid theirs;
    Halo__Ha__Welcome w = HALO__HA__WELCOME__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    char txid[CDB_TXID_STRING_MAX];
    uint64_t paths = 0;

    if (!streq(j->primary_id, r->nodeid)) {
        send_error(p, -HALO_EBADNAME, "this node has another name");
        peer_close(p, -HALO_EBADNAME, "it asked for another primary");
        return;
    }
    if (cdb_txid_parse(j->last_txid, &theirs) < 0) {
        peer_close(p, -EBADMSG, "a bad transaction id");
        return;
    }
    p->base_seq = r->seq;
    p->acked = r->seq;
    w.full_copy = !cdb_txid_equal(&theirs, cdb_last(r->db));
    if (w.full_copy) {
        int k = cdb_snapshot_open(r->db, &p->snap, &p->copy_id, &paths);
        if (k < 0) {
            send_error(p, k, "the primary cannot read its database");
            peer_close(p, k, "cannot open a snapshot");
            return;
        }
        w.txid = cdb_txid_format(&p->copy_id, txid);
        w.paths = paths;
    } else
        w.txid = cdb_txid_format(cdb_last(r->db), txid);
    m.body_case = HALO__HA__REPL__BODY_WELCOME;
    m.welcome = &w;
    if (send_msg(p, &m) < 0) {
        peer_close(p, -ENOMEM, "out of memory");
        return;
    }
    p->full_copy = w.full_copy;
    log_info("CDB secondary '%s' (%s) joined%s", p->nodeid, p->addr,
             w.full_copy ? ": sending a full copy" : ", already in sync");
    if (r->h->secondary_arrived)
        r->h->secondary_arrived(r->userdata, p->nodeid);
    if (p->phase == PHASE_CLOSING)
        return;
    p->phase = w.full_copy ? PHASE_COPY : PHASE_STREAM;
    if (p->snap)
        pump_copy(p);
}

static void down_msg(struct peer *p, const HaRepl *m) {
    struct repl *r = p->r;
    switch (p->phase) {
    case PHASE_HELLO:
        if (m->body_case != HALO__HA__REPL__BODY_HELLO || m->hello->version != FRAME_REPL_VERSION)
            break;
        /* Only one connection per secondary name: a newer one replaces it. */
        for (struct peer *d = r->downs; d; d = d->next)
            if (d != p && streq(d->nodeid, m->hello->nodeid) && d->phase != PHASE_HELLO) {
                peer_close(d, -HALO_ECLOSED, "it connected again");
                break;
            }
        snprintf(p->nodeid, sizeof(p->nodeid), "%s", m->hello->nodeid);
        memcpy(p->nonce_theirs, m->hello->nonce.data, FRAME_NONCE_LEN);
        if (send_hello(p) < 0 || send_auth(p, "primary", r->nodeid, p->nodeid) < 0) {
            peer_close(p, -ENOMEM, "out of memory");
            return;
        }
        p->phase = PHASE_AUTH;
        return;
    case PHASE_AUTH:
        if (m->body_case == HALO__HA__REPL__BODY_AUTH) {
            if (!auth_ok(p, m->auth, "secondary", p->nodeid, r->nodeid)) {
                log_warning("CDB secondary '%s' (%s) does not have our token: refused", p->nodeid, p->addr);
                send_error(p, -HALO_EBADTOKEN, "bad token");
                peer_close(p, -HALO_EBADTOKEN, "bad token");
                return;
            }
            p->authed = true;
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
            if (m->ack->seq > p->acked) {
                p->acked = m->ack->seq;
                release_waiters(r);
            }
            return;
        }
        break;
    default:
        break;
    }
    peer_close(p, -EPROTO, "unexpected message");
}

/* ---- the following side -------------------------------------------------------------- */

static void send_ack(struct peer *p) {
    Halo__Ha__Ack a = HALO__HA__ACK__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    a.seq = p->applied;
    m.body_case = HALO__HA__REPL__BODY_ACK;
    m.ack = &a;
    if (send_msg(p, &m) < 0)
        peer_close(p, -ENOMEM, "out of memory");
}

struct apply {
    struct repl *r;
    uint64_t gen; /* the join it belongs to */
    uint64_t seq;
};

static void on_applied(struct cdb *db, int error, const cdb_txid *id, void *userdata) {
    struct apply *a = userdata;
    struct repl *r = a->r;
    struct peer *p = r->up;
    uint64_t seq = a->seq, gen = a->gen;
    free(a);
    if (!p || p->gen != gen || p->phase != PHASE_STREAM)
        return; /* the connection ended meanwhile: the next join compares ids */
    p->pending_applies--;
    if (error < 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot apply a transaction: %s", halo_strerror(error));
        peer_close(p, error, why);
        return;
    }
    p->applied = MAX(p->applied, seq);
    /* One Ack for a group: the last of those applied together. */
    if (p->pending_applies == 0)
        send_ack(p);
}

static void up_txn(struct peer *p, const Halo__Ha__Txn *t) {
    cdb_txid id;
    if (cdb_txid_parse(t->txid, &id) < 0 || id.hlc == 0) {
        peer_close(p, -EPROTO, "a bad transaction id");
        return;
    }
    struct cdb_op *ops = calloc(t->n_ops, sizeof(*ops));
    struct apply *a = malloc(sizeof(*a));
    if (!ops || !a) {
        free(ops);
        free(a);
        peer_close(p, -ENOMEM, "out of memory");
        return;
    }
    for (size_t i = 0; i < t->n_ops; i++)
        ops[i] = (struct cdb_op){.path = t->ops[i]->path,
                                 .value = t->ops[i]->value.data,
                                 .len = t->ops[i]->value.len,
                                 .del = t->ops[i]->del};
    a->r = p->r;
    a->gen = p->gen;
    a->seq = t->seq;
    int r = cdb_commit(p->r->db, &id, ops, t->n_ops, on_applied, a);
    free(ops);
    if (r < 0) {
        free(a);
        peer_close(p, r, "cannot apply a transaction");
        return;
    }
    p->pending_applies++;
}

static void up_msg(struct peer *p, const HaRepl *m) {
    struct repl *r = p->r;
    switch (p->phase) {
    case PHASE_HELLO:
        if (m->body_case == HALO__HA__REPL__BODY_HELLO && !p->nodeid[0]) {
            if (m->hello->version != FRAME_REPL_VERSION)
                break;
            snprintf(p->nodeid, sizeof(p->nodeid), "%s", m->hello->nodeid);
            memcpy(p->nonce_theirs, m->hello->nonce.data, FRAME_NONCE_LEN);
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_AUTH && p->nodeid[0]) {
            if (!auth_ok(p, m->auth, "primary", p->nodeid, r->nodeid)) {
                peer_close(p, -HALO_EBADTOKEN, "the primary does not have our token");
                return;
            }
            if (!streq(p->nodeid, r->up_primary)) {
                char why[LINK_NAME_MAX + 64];
                snprintf(why, sizeof(why), "the node there is '%s'", p->nodeid);
                peer_close(p, -HALO_EBADNAME, why);
                return;
            }
            Halo__Ha__Join j = HALO__HA__JOIN__INIT;
            HaRepl jm = HALO__HA__REPL__INIT;
            char txid[CDB_TXID_STRING_MAX];
            j.primary_id = r->up_primary;
            j.last_txid = cdb_txid_format(cdb_last(r->db), txid);
            jm.body_case = HALO__HA__REPL__BODY_JOIN;
            jm.join = &j;
            if (send_auth(p, "secondary", r->nodeid, p->nodeid) < 0 || send_msg(p, &jm) < 0) {
                peer_close(p, -ENOMEM, "out of memory");
                return;
            }
            p->phase = PHASE_WELCOME;
            return;
        }
        break;
    case PHASE_WELCOME:
        if (m->body_case == HALO__HA__REPL__BODY_WELCOME) {
            p->full_copy = m->welcome->full_copy;
            if (!p->full_copy) {
                p->phase = PHASE_STREAM;
                log_info("Joined the CDB primary '%s' at %s: in sync, no copy needed", r->up_primary, r->up_addr);
                if (r->h->joined)
                    r->h->joined(r->userdata, 0, false, NULL);
                return;
            }
            int k = cdb_replace_begin(r->db);
            if (k < 0) {
                peer_close(p, k, "cannot start the copy");
                return;
            }
            log_info("Joined the CDB primary '%s' at %s: receiving a full copy (%llu paths)", r->up_primary, r->up_addr,
                     (unsigned long long)m->welcome->paths);
            p->phase = PHASE_COPY;
            return;
        }
        break;
    case PHASE_COPY:
        if (m->body_case == HALO__HA__REPL__BODY_ROWS) {
            for (size_t i = 0; i < m->rows->n_rows; i++) {
                int k = cdb_replace_add(r->db, m->rows->rows[i]->path, m->rows->rows[i]->value.data,
                                        m->rows->rows[i]->value.len);
                if (k < 0) {
                    peer_close(p, k, "cannot store the copy");
                    return;
                }
            }
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_COPY_END) {
            cdb_txid id;
            int k = cdb_txid_parse(m->copy_end->txid, &id);
            if (k >= 0)
                k = cdb_replace_end(r->db, &id);
            if (k < 0) {
                peer_close(p, k, "cannot store the copy");
                return;
            }
            p->phase = PHASE_STREAM;
            log_info("Received the full copy from the CDB primary '%s'", r->up_primary);
            if (r->h->joined)
                r->h->joined(r->userdata, 0, true, NULL);
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_TICK)
            return;
        break;
    case PHASE_STREAM:
        if (m->body_case == HALO__HA__REPL__BODY_TXN) {
            up_txn(p, m->txn);
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_TICK)
            return;
        break;
    default:
        break;
    }
    peer_close(p, -EPROTO, "unexpected message");
}

/* ---- reading ------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char slab[65536]; /* one loop thread: the read callback consumes it before the next alloc */
    buf->base = slab;
    buf->len = sizeof(slab);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    struct peer *p = s->data;
    const uint8_t *body;
    size_t len;

    if (n == 0)
        return;
    if (n < 0) {
        peer_close(p, -HALO_ECLOSED, n == UV_EOF ? "it closed the connection" : "the connection broke");
        return;
    }
    p->last_rx = now_ms(p->r);
    int k = frame_reader_feed(&p->reader, (const uint8_t *)buf->base, (size_t)n);
    if (k < 0) {
        peer_close(p, -EPROTO, k == -EMSGSIZE ? "a message over the size limit" : "out of memory");
        return;
    }
    while (p->phase != PHASE_CLOSING && (k = frame_reader_next(&p->reader, &body, &len)) > 0) {
        HaRepl *m = NULL;
        if (frame_unpack_repl(body, len, &m) < 0) {
            peer_close(p, -EPROTO, "a malformed message");
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_ERROR) {
            char why[LINK_NAME_MAX + 32];
            int error = m->error->error < 0 && m->error->error > -20000 ? m->error->error : -HALO_ECLOSED;
            snprintf(why, sizeof(why), "it said: %s", *m->error->text ? m->error->text : halo_strerror(error));
            frame_repl_free(m);
            peer_close(p, error, why);
            return;
        }
        if (p->role == PEER_DOWN)
            down_msg(p, m);
        else
            up_msg(p, m);
        frame_repl_free(m);
    }
    if (k < 0)
        peer_close(p, -EPROTO, "a message over the size limit");
}

static void addr_of(uv_tcp_t *tcp, char *out, size_t n) {
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    uint16_t port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    }
    snprintf(out, n, "%s:%u", host, (unsigned)port);
}

static void on_connection(uv_stream_t *server, int status) {
    struct repl *r = server->data;
    if (status < 0)
        return;
    size_t n = 0;
    for (struct peer *d = r->downs; d; d = d->next)
        n++;
    struct peer *p = peer_new(r, PEER_DOWN);
    if (!p)
        return;
    p->phase = PHASE_HELLO;
    if (n >= REPL_DOWNS_MAX) {
        /* Taken and closed at once, so that the backlog does not fill with what we refuse. */
        if (uv_accept(server, (uv_stream_t *)&p->tcp) == 0)
            log_warning("CDB: %zu connections already; one more refused", n);
        p->phase = PHASE_CLOSING;
        uv_timer_stop(&p->timer);
        uv_close((uv_handle_t *)&p->timer, on_peer_handle_closed);
        uv_close((uv_handle_t *)&p->tcp, on_peer_handle_closed);
        return;
    }
    p->next = r->downs;
    if (r->downs)
        r->downs->prev = p;
    r->downs = p;
    if (uv_accept(server, (uv_stream_t *)&p->tcp) < 0 || uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) < 0) {
        peer_close(p, -EIO, "accept failed");
        return;
    }
    (void)uv_tcp_nodelay(&p->tcp, 1);
    addr_of(&p->tcp, p->addr, sizeof(p->addr));
}

static void on_connected(uv_connect_t *req, int status) {
    struct peer *p = req->data;
    if (p->phase == PHASE_CLOSING)
        return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
        peer_close(p, -HALO_ECONNECT, why);
        return;
    }
    (void)uv_tcp_nodelay(&p->tcp, 1);
    p->phase = PHASE_HELLO;
    p->last_rx = now_ms(p->r);
    /* The connect timeout is over: from now on ticks and the dead check, as on every connection. */
    uint64_t every = MIN(p->r->tick_msec, p->r->dead_msec) / 2 + 1;
    uv_timer_start(&p->timer, on_peer_timer, every, every);
    if (uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read) < 0 || send_hello(p) < 0)
        peer_close(p, -HALO_ECONNECT, "cannot use the connection");
}

/* ---- addresses --------------------------------------------------------------------- */

/* "host", "host:port", "[v6]" or "[v6]:port", numeric only. */
static int parse_addr(const char *s, uint16_t default_port, struct sockaddr_storage *ret) {
    char host[INET6_ADDRSTRLEN + 2];
    const char *port = NULL;
    long pn = default_port;

    if (!s || !*s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || (size_t)(end - s - 1) >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        if (end[1] == ':')
            port = end + 2;
        else if (end[1])
            return -EINVAL;
    } else {
        const char *colon = strrchr(s, ':');
        size_t n = colon && strchr(s, ':') == colon ? (size_t)(colon - s) : strlen(s);
        if (n >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, n);
        host[n] = '\0';
        if (colon && strchr(s, ':') == colon)
            port = colon + 1;
    }
    if (port) {
        char *end;
        pn = strtol(port, &end, 10);
        if (!*port || *end || pn <= 0 || pn > 65535)
            return -EINVAL;
    }
    if (pn <= 0)
        return -EINVAL;
    memset(ret, 0, sizeof(*ret));
    if (uv_ip4_addr(host, (int)pn, (struct sockaddr_in *)ret) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)pn, (struct sockaddr_in6 *)ret) == 0)
        return 0;
    return -EINVAL;
}

/* ---- the engine --------------------------------------------------------------------- */

int repl_new(const struct repl_params *p, struct repl **ret) {
    struct repl *r = calloc(1, sizeof(*r));
    if (!r)
        return -ENOMEM;
    r->loop = p->loop;
    r->db = p->db;
    r->tick_msec = p->tick_msec;
    r->dead_msec = p->dead_msec;
    r->async = p->async;
    r->h = p->handlers;
    r->userdata = p->userdata;
    snprintf(r->listen_addr, sizeof(r->listen_addr), "%s", p->listen);
    int k = parse_addr(p->listen, REPL_DEFAULT_PORT, &r->listen_sa);
    if (k < 0) {
        free(r);
        return k;
    }
    r->listen_port = ntohs(r->listen_sa.ss_family == AF_INET ? ((struct sockaddr_in *)&r->listen_sa)->sin_port
                                                             : ((struct sockaddr_in6 *)&r->listen_sa)->sin6_port);
    k = cdb_observe(r->db, on_commit_observed, on_group_end, r);
    if (k < 0) {
        free(r);
        return k;
    }
    r->seq_id = *cdb_last(r->db);
    *ret = r;
    return 0;
}

static void on_listener_closed(uv_handle_t *h) {
    struct repl *r = h->data;
    free(h);
    repl_unref(r);
}

static void listener_close(struct repl *r) {
    if (!r->listener)
        return;
    uv_close((uv_handle_t *)r->listener, on_listener_closed);
    r->listener = NULL;
}

struct repl *repl_free(struct repl *r) {
    if (!r)
        return NULL;
    r->freeing = true;
    cdb_unobserve(r->db, on_commit_observed, r); /* the database may commit after us, at its close */
    fail_waiters(r, -ESHUTDOWN);
    repl_unfollow(r);
    while (r->downs)
        peer_close(r->downs, -ESHUTDOWN, "shutting down");
    free(r->token);
    r->token = NULL;
    listener_close(r);
    if (r->n_open == 0)
        free(r);
    return NULL;
}

int repl_set_token(struct repl *r, const char *token) {
    char *t = strdup(token);
    if (!t)
        return -ENOMEM;
    free(r->token);
    r->token = t;
    return 0;
}

int repl_set_nodeid(struct repl *r, const char *nodeid) {
    if (!nodeid || !*nodeid || strlen(nodeid) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    snprintf(r->nodeid, sizeof(r->nodeid), "%s", nodeid);
    return 0;
}

int repl_serve(struct repl *r) {
    if (r->listener)
        return 0;
    r->listener = malloc(sizeof(*r->listener));
    if (!r->listener)
        return -ENOMEM;
    uv_tcp_init(r->loop, r->listener);
    r->listener->data = r;
    r->n_open++;
    int k = uv_tcp_bind(r->listener, (const struct sockaddr *)&r->listen_sa, 0);
    if (k >= 0)
        k = uv_listen((uv_stream_t *)r->listener, 16, on_connection);
    if (k < 0) {
        log_error("Failed to listen for CDB secondaries on %s: %s", r->listen_addr, uv_strerror(k));
        listener_close(r);
        return -HALO_EBIND;
    }
    log_info("Serving the CDB to secondaries on %s", r->listen_addr);
    return 0;
}

bool repl_serving(const struct repl *r) {
    return r->listener != NULL;
}

void repl_stop_serving(struct repl *r, const char *reason) {
    fail_waiters(r, -HALO_ECLOSED); /* before the secondaries go: they would release them as replicated */
    for (struct peer *d = r->downs, *next; d; d = next) {
        next = d->next;
        send_error(d, -HALO_ECLOSED, reason);
        peer_close(d, -HALO_ECLOSED, reason);
    }
    listener_close(r);
    release_waiters(r);
}

int repl_follow(struct repl *r, const char *primary_id, const char *addr) {
    struct sockaddr_storage sa;
    if (!primary_id || !*primary_id || strlen(primary_id) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    if (!addr || strlen(addr) > LINK_NAME_MAX || parse_addr(addr, r->listen_port, &sa) < 0)
        return -EINVAL;
    repl_unfollow(r);
    struct peer *p = peer_new(r, PEER_UP);
    if (!p)
        return -ENOMEM;
    p->phase = PHASE_CONNECTING;
    p->gen = ++r->up_gen;
    p->connect.data = p;
    snprintf(p->addr, sizeof(p->addr), "%s", addr);
    snprintf(r->up_primary, sizeof(r->up_primary), "%s", primary_id);
    snprintf(r->up_addr, sizeof(r->up_addr), "%s", addr);
    r->up = p;
    /* The connect attempt gets the dead interval or REPL_CONNECT_TIMEOUT_MSEC, whichever is longer. */
    uv_timer_start(&p->timer, on_peer_timer, MAX(r->dead_msec, REPL_CONNECT_TIMEOUT_MSEC),
                   MIN(r->tick_msec, r->dead_msec) / 2 + 1);
    int k = uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&sa, on_connected);
    if (k < 0) {
        /* Reported like any failure to connect, from the loop. */
        r->up = NULL;
        p->phase = PHASE_CLOSING;
        uv_close((uv_handle_t *)&p->timer, on_peer_handle_closed);
        uv_close((uv_handle_t *)&p->tcp, on_peer_handle_closed);
        r->up_primary[0] = r->up_addr[0] = '\0';
        return -HALO_ECONNECT;
    }
    return 0;
}

void repl_unfollow(struct repl *r) {
    struct peer *p = r->up;
    if (!p)
        return;
    r->up = NULL; /* no callback for a leave we asked for */
    if (p->phase == PHASE_COPY)
        cdb_replace_abort(r->db);
    p->phase = PHASE_CLOSING;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_peer_handle_closed);
    uv_close((uv_handle_t *)&p->tcp, on_peer_handle_closed);
    r->up_primary[0] = r->up_addr[0] = '\0';
}

const char *repl_primary(const struct repl *r, const char **ret_addr) {
    /* Also while a failed join is being reported (the connection is gone, the names not yet). */
    if (!r->up_primary[0])
        return NULL;
    if (ret_addr)
        *ret_addr = r->up_addr;
    return r->up_primary;
}

void repl_secondary_dead(struct repl *r, const char *nodeid) {
    for (struct peer *d = r->downs, *next; d; d = next) {
        next = d->next;
        if (streq(d->nodeid, nodeid))
            peer_close(d, -HALO_ECLOSED, "declared dead by the application");
    }
}

void repl_secondaries(struct repl *r, void (*fn)(const char *nodeid, const char *addr, void *ud), void *ud) {
    for (struct peer *d = r->downs; d; d = d->next)
        if (d->phase == PHASE_COPY || d->phase == PHASE_STREAM)
            fn(d->nodeid, d->addr, ud);
}
