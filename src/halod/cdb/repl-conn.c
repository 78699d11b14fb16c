/* SPDX-License-Identifier: MIT */
/* Replication connections: their lifetime, liveness timer, and the framed messages read from and written to them. */

/*
 * Every connection, to a secondary (down) or to our primary (up), is a TCP
 * stream of length-prefixed HaRepl messages (frame.h).  Outgoing messages
 * are packed once into reference-counted blobs, so that a transaction goes
 * to every secondary without being packed again.  A side that sent nothing
 * for a tick interval sends a Tick, and a peer silent for the dead interval
 * is closed as dead.  Incoming messages are size-checked and validated
 * (frame.c) before the serving or following side sees them.  Until the other
 * side has authenticated, its frames are small (REPL_PREAUTH_FRAME_MAX) and
 * it has max(dead interval, REPL_AUTH_TIMEOUT_MIN_MSEC) to do so: a stranger
 * holds a few KiB for a few seconds, never a 2 MiB buffer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "log.h"
#include "repl-internal.h"

/* One write of one or more blobs (a group's transactions go out in one writev). */
struct write_req {
    uv_write_t req;
    struct peer *peer;
    size_t n;
    struct blob *blobs[];
};

/* ---- blobs and writes -------------------------------------------------------- */

struct blob *repl_conn_blob_unref(struct blob *b) {
    if (b && --b->refs == 0)
        free(b);
    return NULL;
}

struct blob *repl_conn_blob_pack(const HaRepl *m) {
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

/* Why a TLS primary ended the connection of this secondary early, or NULL. */
static const char *tls_end_reason(const struct peer *p) {
    if (!p->tls || p->role != PEER_UP || p->authed)
        return NULL;
    if (!p->tls_ready)
        return "it ended the connection during the TLS handshake: does it have --cdb-tls-cert, --cdb-tls-key and "
               "--cdb-tls-ca?";
    /* TLS 1.3: the client's handshake is over before the server has checked its certificate. */
    return "it ended the connection before the HMAC handshake: " REPL_TLS_CERT_HINT;
}

void repl_conn_written(struct peer *p, int status) {
    if (p->phase == PHASE_CLOSING)
        return;
    if (status < 0) {
        repl_conn_close(p, -HALO_ECLOSED, tls_end_reason(p) ?: "the connection broke");
        return;
    }
    if (p->snap)
        repl_serve_pump_copy(p);
}

static void on_written(uv_write_t *req, int status) {
    struct write_req *w = (struct write_req *)req;
    struct peer *p = w->peer;
    for (size_t i = 0; i < w->n; i++)
        repl_conn_blob_unref(w->blobs[i]);
    free(w);
    repl_conn_written(p, status);
}

/* Through the TLS session: each blob is encrypted into writes of its own (repl-tls.c). */
static int send_blobs_tls(struct peer *p, struct blob *const *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int r = repl_tls_send(p, b[i]->data, b[i]->len);
        if (r < 0)
            return r;
    }
    p->last_tx = repl_now_ms(p->r);
    return 0;
}

int repl_conn_send_blobs(struct peer *p, struct blob *const *b, size_t n) {
    if (p->tls)
        return send_blobs_tls(p, b, n);
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
    p->last_tx = repl_now_ms(p->r);
    return 0;
}

int repl_conn_send_blob(struct peer *p, struct blob *b) {
    return repl_conn_send_blobs(p, &b, 1);
}

int repl_conn_send_msg(struct peer *p, const HaRepl *m) {
    struct blob *b = repl_conn_blob_pack(m);
    if (!b)
        return -ENOMEM;
    int r = repl_conn_send_blob(p, b);
    repl_conn_blob_unref(b);
    return r;
}

void repl_conn_send_error(struct peer *p, int error, const char *text) {
    Halo__Ha__Error e = HALO__HA__ERROR__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    char cut[LINK_NAME_MAX + 1]; /* a longer text would make the frame malformed (frame.c) */
    snprintf(cut, sizeof(cut), "%s", text);
    e.error = error;
    e.text = cut;
    m.body_case = HALO__HA__REPL__BODY_ERROR;
    m.error = &e;
    (void)repl_conn_send_msg(p, &m);
}

/* ---- lifetime ------------------------------------------------------------------ */

static void peer_release(struct peer *p) {
    struct repl *r = p->r;
    repl_serve_release(p);
    frame_reader_done(&p->reader);
    repl_tls_done(p);
    free(p->token);
    free(p->discarded);
    if (r->up == p)
        r->up = NULL;
    free(p);
    repl_unref(r);
}

static void on_handle_closed(uv_handle_t *h) {
    struct peer *p = h->data;
    if (--p->open_handles == 0)
        peer_release(p);
}

void repl_conn_close_handles(struct peer *p) {
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->tcp, on_handle_closed);
}

void repl_conn_close(struct peer *p, int error, const char *reason) {
    enum peer_phase was = p->phase;

    if (was == PHASE_CLOSING)
        return;
    p->phase = PHASE_CLOSING;
    if (p->role == PEER_DOWN)
        repl_serve_closed(p, was, reason);
    else
        repl_follow_closed(p, was, error, reason);
    repl_conn_close_handles(p);
}

int repl_conn_move(struct peer *p, struct repl *to) {
    struct repl *from = p->r;
    if (from == to)
        return 0;
    char *token = strdup(to->token ?: "");
    if (!token)
        return -ENOMEM;
    free(p->token);
    p->token = token;
    LIST_REMOVE(downs, &from->downs, p);
    LIST_PREPEND(downs, &to->downs, p);
    p->r = to;
    to->n_open++;
    uv_timer_set_repeat(&p->timer, repl_check_msec(to));
    repl_unref(from); /* not its last reference: a repl being freed holds no connection */
    return 0;
}

void repl_conn_authed(struct peer *p) {
    p->authed = true;
    p->reader.max = FRAME_REPL_MAX;
}

void repl_conn_on_timer(uv_timer_t *t) {
    struct peer *p = t->data;
    struct repl *r = p->r;
    uint64_t now = repl_now_ms(r);

    if (p->phase == PHASE_CONNECTING) {
        repl_conn_close(p, -HALO_ECONNECT, "no answer to the connection");
        return;
    }
    uint64_t auth_msec = MAX(r->dead_msec, REPL_AUTH_TIMEOUT_MIN_MSEC);
    if (!p->authed && now - p->started >= auth_msec) {
        char why[96];
        snprintf(why, sizeof(why), "not authenticated within %llu ms", (unsigned long long)auth_msec);
        repl_conn_close(p, -ETIMEDOUT, why);
        return;
    }
    if (now - p->last_rx >= r->dead_msec) {
        char why[96];
        snprintf(why, sizeof(why), "silent for %llu ms", (unsigned long long)(now - p->last_rx));
        repl_conn_close(p, -ETIMEDOUT, why);
        return;
    }
    if (now - p->last_tx >= r->tick_msec && p->phase != PHASE_HELLO) {
        Halo__Ha__Tick tick = HALO__HA__TICK__INIT;
        HaRepl m = HALO__HA__REPL__INIT;
        m.body_case = HALO__HA__REPL__BODY_TICK;
        m.tick = &tick;
        (void)repl_conn_send_msg(p, &m);
    }
}

struct peer *repl_conn_new(struct repl *r, enum peer_role role) {
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
    frame_reader_init(&p->reader, REPL_PREAUTH_FRAME_MAX);
    uv_tcp_init(r->loop, &p->tcp);
    uv_timer_init(r->loop, &p->timer);
    p->tcp.data = p->timer.data = p;
    p->open_handles = 2;
    r->n_open++;
    p->started = p->last_rx = p->last_tx = repl_now_ms(r);
    uv_timer_start(&p->timer, repl_conn_on_timer, repl_check_msec(r), repl_check_msec(r));
    return p;
}

/* ---- reading ------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    static char slab[65536]; /* one loop thread: the read callback consumes it before the next alloc */
    buf->base = slab;
    buf->len = sizeof(slab);
}

/* Whether the first bytes of a plaintext connection are a TLS record (a
 * handshake or an alert): the other node has TLS and this one has not. */
static bool looks_like_tls(const uint8_t *d, size_t n) {
    return n >= 2 && (d[0] == 0x15 || d[0] == 0x16) && d[1] == 0x03;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    struct peer *p = s->data;
    bool first = !p->received;

    if (n == 0)
        return;
    if (n < 0) {
        repl_conn_close(p, -HALO_ECLOSED,
                        tls_end_reason(p)
                            ?: n == UV_EOF ? "it closed the connection"
                                           : "the connection broke");
        return;
    }
    p->last_rx = repl_now_ms(p->r);
    p->received = true;
    if (p->tls) {
        repl_tls_feed(p, (const uint8_t *)buf->base, (size_t)n);
        return;
    }
    if (first && looks_like_tls((const uint8_t *)buf->base, (size_t)n)) {
        const char *why = "it speaks TLS and this node has no --cdb-tls-cert, --cdb-tls-key and --cdb-tls-ca";
        if (p->role == PEER_DOWN)
            log_warning("CDB replication connection from %s: %s", p->addr, why);
        repl_conn_close(p, -EPROTO, why);
        return;
    }
    repl_conn_feed(p, (const uint8_t *)buf->base, (size_t)n);
}

void repl_conn_feed(struct peer *p, const uint8_t *data, size_t n) {
    const uint8_t *body;
    size_t len;
    int k = frame_reader_feed(&p->reader, data, n);
    if (k < 0) {
        repl_conn_close(p, -EPROTO, k == -EMSGSIZE ? "a message over the size limit" : "out of memory");
        return;
    }
    while (p->phase != PHASE_CLOSING && (k = frame_reader_next(&p->reader, &body, &len)) > 0) {
        HaRepl *m = NULL;
        if (frame_unpack_repl(body, len, &m) < 0) {
            repl_conn_close(p, -EPROTO, "a malformed message");
            return;
        }
        if (m->body_case == HALO__HA__REPL__BODY_ERROR) {
            char why[LINK_NAME_MAX + 32];
            int error = m->error->error < 0 && m->error->error > -20000 ? m->error->error : -HALO_ECLOSED;
            snprintf(why, sizeof(why), "it said: %s", *m->error->text ? m->error->text : halo_strerror(error));
            frame_repl_free(m);
            p->explained = true;
            repl_conn_close(p, error, why);
            return;
        }
        if (p->role == PEER_DOWN)
            repl_serve_msg(p, m);
        else
            repl_follow_msg(p, m);
        frame_repl_free(m);
    }
    if (k < 0)
        repl_conn_close(p, -EPROTO, "a message over the size limit");
}

int repl_conn_start_reading(struct peer *p) {
    int r = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
    if (r >= 0 && p->r->hub->tls)
        r = repl_tls_start(p);
    return r;
}

void repl_conn_peer_addr(uv_tcp_t *tcp, char *out, size_t n) {
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
