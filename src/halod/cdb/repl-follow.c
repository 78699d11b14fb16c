/* SPDX-License-Identifier: MIT */
/* Replication, the following side (secondary or relay): join a primary, take a full copy, apply its transactions. */

/*
 * The secondary applies each Txn with the primary's id through cdb_commit()
 * (so they are grouped like local commits) and acknowledges the highest seq
 * durable.  A full copy goes through cdb_replace_*(): the old database stays
 * until the copy is complete.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "log.h"
#include "repl-internal.h"

#define REPL_CONNECT_TIMEOUT_MSEC 2000
#define REPL_DISCARDED_LISTED 32 /* own transactions a dropping copy names (all are counted) */

/* ---- applying transactions ------------------------------------------------------- */

static void send_ack(struct peer *p) {
    Halo__Ha__Ack a = HALO__HA__ACK__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    a.seq = p->applied;
    m.body_case = HALO__HA__REPL__BODY_ACK;
    m.ack = &a;
    if (repl_conn_send_msg(p, &m) < 0)
        repl_conn_close(p, -ENOMEM, "out of memory");
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
        repl_conn_close(p, error, why);
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
        repl_conn_close(p, -EPROTO, "a bad transaction id");
        return;
    }
    struct cdb_op *ops = calloc(t->n_ops, sizeof(*ops));
    struct apply *a = malloc(sizeof(*a));
    if (!ops || !a) {
        free(ops);
        free(a);
        repl_conn_close(p, -ENOMEM, "out of memory");
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
        repl_conn_close(p, r, "cannot apply a transaction");
        return;
    }
    p->pending_applies++;
}

/* ---- the primary's messages ------------------------------------------------------ */

/* The primary proved it holds the token: ours follows, and the Join. */
static void up_auth(struct peer *p, const Halo__Ha__Auth *a) {
    struct repl *r = p->r;
    if (!repl_auth_ok(p, a, "primary", p->nodeid, r->nodeid)) {
        repl_conn_close(p, -HALO_EBADTOKEN, "the primary does not have our token");
        return;
    }
    if (!streq(p->nodeid, r->up_primary)) {
        char why[LINK_NAME_MAX + 64];
        snprintf(why, sizeof(why), "the node there is '%s'", p->nodeid);
        repl_conn_close(p, -HALO_EBADNAME, why);
        return;
    }
    repl_conn_authed(p);
    Halo__Ha__Join j = HALO__HA__JOIN__INIT;
    HaRepl jm = HALO__HA__REPL__INIT;
    char txid[CDB_TXID_STRING_MAX];
    j.primary_id = r->up_primary;
    j.last_txid = cdb_txid_format(cdb_last(r->db), txid);
    if (*r->name)
        j.subtree = r->subtree; /* version 2: the primary checks it (the main database's Join is as before) */
    jm.body_case = HALO__HA__REPL__BODY_JOIN;
    jm.join = &j;
    if (repl_auth_send(p, "secondary", r->nodeid, p->nodeid) < 0 || repl_conn_send_msg(p, &jm) < 0) {
        repl_conn_close(p, -ENOMEM, "out of memory");
        return;
    }
    p->phase = PHASE_WELCOME;
}

struct discard_ctx {
    char *text;
    size_t len, n;
};

static int discard_add(const cdb_txid *id, const char *paths, void *userdata) {
    struct discard_ctx *x = userdata;
    char txid[CDB_TXID_STRING_MAX];
    if (x->n++ >= REPL_DISCARDED_LISTED)
        return 0;
    char *line = NULL;
    int n = asprintf(&line, "%s%s (%s)", x->len ? ", " : "", cdb_txid_format(id, txid), paths);
    char *grown = n >= 0 ? realloc(x->text, x->len + (size_t)n + 1) : NULL;
    if (!grown) {
        free(line);
        return -ENOMEM;
    }
    memcpy(grown + x->len, line, (size_t)n + 1);
    x->text = grown;
    x->len += (size_t)n;
    free(line);
    return 0;
}

/* A full copy replaces the database: this node's own transactions after the primary's upstream
 * (the last it took from elsewhere) are not in it.  Names them, or NULL when there are none. */
static char *discarded_text(struct repl *r, const char *upstream) {
    struct discard_ctx x = {0};
    cdb_txid up;
    char *text = NULL;
    if (!upstream || !*upstream || cdb_txid_parse(upstream, &up) < 0)
        return NULL; /* a primary that does not say: nothing can be named */
    int k = cdb_own_after(r->db, up.hlc, discard_add, &x);
    if (k >= 0 && x.n > 0 &&
        asprintf(&text, "discarded %zu transaction%s of this node that primary '%s' does not have: %s%s", x.n,
                 x.n == 1 ? "" : "s", r->up_primary, x.text, x.n > REPL_DISCARDED_LISTED ? ", ..." : "") < 0)
        text = NULL;
    free(x.text);
    return text;
}

static void up_welcome(struct peer *p, const Halo__Ha__Welcome *w) {
    struct repl *r = p->r;
    p->full_copy = w->full_copy;
    if (!p->full_copy) {
        p->phase = PHASE_STREAM;
        log_info("Joined the CDB%s primary '%s' at %s: in sync, no copy needed", r->label, r->up_primary, r->up_addr);
        if (r->h->joined)
            r->h->joined(r->userdata, 0, false, NULL);
        return;
    }
    int k = cdb_replace_begin(r->db);
    if (k < 0) {
        repl_conn_close(p, k, "cannot start the copy");
        return;
    }
    log_info("Joined the CDB%s primary '%s' at %s: receiving a full copy (%llu paths)", r->label, r->up_primary,
             r->up_addr, (unsigned long long)w->paths);
    p->discarded = discarded_text(r, w->upstream);
    p->phase = PHASE_COPY;
}

static void up_rows(struct peer *p, const Halo__Ha__Rows *rows) {
    for (size_t i = 0; i < rows->n_rows; i++) {
        int k = cdb_replace_add(p->r->db, rows->rows[i]->path, rows->rows[i]->value.data, rows->rows[i]->value.len);
        if (k < 0) {
            repl_conn_close(p, k, "cannot store the copy");
            return;
        }
    }
}

static void up_copy_end(struct peer *p, const Halo__Ha__CopyEnd *end) {
    struct repl *r = p->r;
    cdb_txid id;
    int k = cdb_txid_parse(end->txid, &id);
    if (k >= 0)
        k = cdb_replace_end(r->db, &id);
    if (k < 0) {
        repl_conn_close(p, k, "cannot store the copy");
        return;
    }
    p->phase = PHASE_STREAM;
    log_info("Received the full copy from the CDB%s primary '%s'", r->label, r->up_primary);
    p->applied = end->seq; /* the copy is durable: the primary may count it */
    send_ack(p);
    if (p->phase != PHASE_STREAM)
        return;
    char reason[LINK_NAME_MAX + 1] = ""; /* a notification's reason is at most this long */
    if (p->discarded) {
        log_warning("CDB%s: %s", r->label, p->discarded);
        snprintf(reason, sizeof(reason), "%s", p->discarded);
        if (strlen(p->discarded) >= sizeof(reason))
            memcpy(reason + sizeof(reason) - 4, "...", 4);
    }
    if (r->h->joined)
        r->h->joined(r->userdata, 0, true, *reason ? reason : NULL);
}

void repl_follow_msg(struct peer *p, const HaRepl *m) {
    switch (p->phase) {
    case PHASE_HELLO:
        if (m->body_case == HALO__HA__REPL__BODY_HELLO && !p->nodeid[0]) {
            /* The primary answers for the database we named, with our version. */
            if (m->hello->version != (*p->r->name ? FRAME_REPL_VERSION_DB : FRAME_REPL_VERSION) ||
                !streq(m->hello->db, p->r->name)) {
                repl_conn_close(p, -EPROTO, "it answered for another database");
                return;
            }
            snprintf(p->nodeid, sizeof(p->nodeid), "%s", m->hello->nodeid);
            memcpy(p->nonce_theirs, m->hello->nonce.data, FRAME_NONCE_LEN);
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_AUTH && p->nodeid[0]) {
            up_auth(p, m->auth);
            return;
        }
        break;
    case PHASE_WELCOME:
        if (m->body_case == HALO__HA__REPL__BODY_WELCOME) {
            up_welcome(p, m->welcome);
            return;
        }
        break;
    case PHASE_COPY:
        if (m->body_case == HALO__HA__REPL__BODY_ROWS) {
            up_rows(p, m->rows);
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_COPY_END) {
            up_copy_end(p, m->copy_end);
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
    repl_conn_close(p, -EPROTO, "unexpected message");
}

/* ---- the connection to the primary ---------------------------------------------- */

void repl_follow_closed(struct peer *p, enum peer_phase was, int error, const char *reason) {
    struct repl *r = p->r;
    char hinted[LINK_NAME_MAX + 1]; /* a notification's reason is at most this long */
    /* A halod that knows the main database only closes at a Hello that names another, without a word. */
    if (*r->name && was == PHASE_HELLO && !p->nodeid[0] && !p->explained && error == -HALO_ECLOSED) {
        snprintf(hinted, sizeof(hinted), "%s (is it a halod without cdb-subtree? upgrade every node first)", reason);
        reason = hinted;
    }
    if (r->up == p) {
        r->up = NULL;
        if (!r->freeing) {
            if (was == PHASE_STREAM) {
                log_warning("Lost the CDB%s primary '%s' at %s: %s", r->label, r->up_primary, r->up_addr, reason);
                if (r->h->lost)
                    r->h->lost(r->userdata, error, reason);
            } else {
                log_warning("Failed to join the CDB%s primary '%s' at %s: %s", r->label, r->up_primary, r->up_addr,
                            reason);
                if (r->h->joined)
                    r->h->joined(r->userdata, error, false, reason);
            }
        }
        r->up_primary[0] = r->up_addr[0] = '\0';
    }
    if (was == PHASE_COPY)
        cdb_replace_abort(r->db); /* the old database stays */
}

static void on_connected(uv_connect_t *req, int status) {
    struct peer *p = req->data;
    if (p->phase == PHASE_CLOSING)
        return;
    if (status < 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
        repl_conn_close(p, -HALO_ECONNECT, why);
        return;
    }
    (void)uv_tcp_nodelay(&p->tcp, 1);
    p->phase = PHASE_HELLO;
    p->started = p->last_rx = repl_now_ms(p->r);
    /* The connect timeout is over: from now on ticks and the dead check, as on every connection. */
    uint64_t every = repl_check_msec(p->r);
    uv_timer_start(&p->timer, repl_conn_on_timer, every, every);
    /* Over TLS, the Hello goes once the handshake is over (repl-tls.c). */
    if (repl_conn_start_reading(p) < 0 || (!p->tls && repl_auth_send_hello(p) < 0))
        repl_conn_close(p, -HALO_ECONNECT, "cannot use the connection");
}

int repl_follow(struct repl *r, const char *primary_id, const char *addr) {
    struct sockaddr_storage sa;
    if (!primary_id || !*primary_id || strlen(primary_id) > LINK_NAME_MAX)
        return -HALO_EBADNAME;
    if (!addr || strlen(addr) > LINK_NAME_MAX || repl_parse_addr(addr, r->hub->listen_port, &sa) < 0)
        return -EINVAL;
    repl_unfollow(r);
    struct peer *p = repl_conn_new(r, PEER_UP);
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
    uv_timer_start(&p->timer, repl_conn_on_timer, MAX(r->dead_msec, REPL_CONNECT_TIMEOUT_MSEC), repl_check_msec(r));
    int k = uv_tcp_connect(&p->connect, &p->tcp, (const struct sockaddr *)&sa, on_connected);
    if (k < 0) {
        /* Reported like any failure to connect, from the loop. */
        r->up = NULL;
        p->phase = PHASE_CLOSING;
        repl_conn_close_handles(p);
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
    repl_conn_close_handles(p);
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
