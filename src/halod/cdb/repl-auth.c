/* SPDX-License-Identifier: MIT */
/* The replication handshake: both sides prove they hold the token with HMAC-SHA256 over fresh nonces. */

/*
 * Each side sends a Hello with a fresh nonce, then an Auth: HMAC-SHA256
 * keyed with the token over its role, both nonces and both names, and the
 * database the Hello names when it is not the main one (so that the main
 * database's handshake is the one of halods before databases had names).
 * The token never crosses the wire, and a MAC made for one connection,
 * direction or database is worth nothing on another.  The sequence is in
 * src/proto/ha.proto.
 */
#include <errno.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <string.h>
#include <sys/random.h>

#include "repl-internal.h"

static void mac_field(struct hmac_sha256_ctx *ctx, const void *data, size_t len) {
    uint8_t n[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    hmac_sha256_update(ctx, 2, n);
    hmac_sha256_update(ctx, len, data);
}

/* HMAC-SHA256(token, role, nonce a, nonce b, name a, name b[, db if not ""]), each field length-prefixed. */
static void mac_compute(const char *token, const char *role, const uint8_t *na, const uint8_t *nb, const char *ida,
                        const char *idb, const char *db, uint8_t out[FRAME_MAC_LEN]) {
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, strlen(token), (const uint8_t *)token);
    mac_field(&ctx, role, strlen(role));
    mac_field(&ctx, na, FRAME_NONCE_LEN);
    mac_field(&ctx, nb, FRAME_NONCE_LEN);
    mac_field(&ctx, ida, strlen(ida));
    mac_field(&ctx, idb, strlen(idb));
    if (*db)
        mac_field(&ctx, db, strlen(db));
    hmac_sha256_digest(&ctx, FRAME_MAC_LEN, out);
}

static int fresh_nonce(uint8_t out[FRAME_NONCE_LEN]) {
    ssize_t n = getrandom(out, FRAME_NONCE_LEN, 0);
    return n == FRAME_NONCE_LEN ? 0 : -EIO;
}

int repl_auth_send_hello(struct peer *p) {
    Halo__Ha__Hello h = HALO__HA__HELLO__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    int r = fresh_nonce(p->nonce_mine);
    if (r < 0)
        return r;
    /* The database of p->r: a secondary's Hello names it, the primary's answer repeats it. */
    h.version = *p->r->name ? FRAME_REPL_VERSION_DB : FRAME_REPL_VERSION;
    h.db = p->r->name;
    h.nodeid = p->r->nodeid;
    h.nonce.data = p->nonce_mine;
    h.nonce.len = FRAME_NONCE_LEN;
    m.body_case = HALO__HA__REPL__BODY_HELLO;
    m.hello = &h;
    return repl_conn_send_msg(p, &m);
}

int repl_auth_send(struct peer *p, const char *role, const char *me, const char *them) {
    Halo__Ha__Auth a = HALO__HA__AUTH__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    uint8_t mac[FRAME_MAC_LEN];
    mac_compute(p->token, role, p->nonce_theirs, p->nonce_mine, me, them, p->r->name, mac);
    a.mac.data = mac;
    a.mac.len = FRAME_MAC_LEN;
    m.body_case = HALO__HA__REPL__BODY_AUTH;
    m.auth = &a;
    return repl_conn_send_msg(p, &m);
}

bool repl_auth_ok(struct peer *p, const Halo__Ha__Auth *a, const char *role, const char *them, const char *me) {
    uint8_t want[FRAME_MAC_LEN];
    /* They computed it over (our nonce, their nonce, their name, our name). */
    mac_compute(p->token, role, p->nonce_mine, p->nonce_theirs, them, me, p->r->name, want);
    return a->mac.len == FRAME_MAC_LEN && memeql_sec(want, a->mac.data, FRAME_MAC_LEN);
}
