/* SPDX-License-Identifier: MIT */
/* Tests for replication (repl*.c, and the ha of each database on top): two nodes in one loop over loopback, each
 * with several databases on one listener. */
#include <arpa/inet.h>
#include <errno.h>
#include <nettle/hmac.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "cdb.h"
#include "frame.h"
#include "ha.h"
#include "halo/halo.h"
#include "macro.h"
#include "repl.h"
#include "tests.h"

#define TOKEN "repl-token"

/* One database of a node, with what its repl reported. */
struct side {
    struct cdb *db;
    struct repl *r;
    int joined, join_error, lost, caught_up;
    char reason[512];
};

struct node {
    const char *id;
    char addr[32];
    uint16_t port;
    struct side main, g, h;
};

struct fixture {
    char dir[64];
    uv_loop_t loop;
    uv_timer_t ticker; /* so that one turn of the loop never blocks for long */
    struct node a, b;
};

static void on_joined(void *userdata, int error, bool full_copy, const char *reason) {
    struct side *s = userdata;
    s->joined++;
    s->join_error = error;
    snprintf(s->reason, sizeof(s->reason), "%s", reason ?: "");
}

static void on_lost(void *userdata, int error, const char *reason) {
    struct side *s = userdata;
    s->lost++;
    snprintf(s->reason, sizeof(s->reason), "%s", reason ?: "");
}

static void on_caught_up(void *userdata) {
    struct side *s = userdata;
    s->caught_up++;
}

static const struct repl_handlers handlers = {.joined = on_joined, .lost = on_lost, .expected_caught_up = on_caught_up};

static void tick(uv_timer_t *t) {
}

#define RUN_UNTIL(f, cond)                                       \
    do {                                                         \
        uint64_t deadline_ = uv_now(&(f)->loop) + 10000;         \
        while (!(cond)) {                                        \
            if (uv_now(&(f)->loop) > deadline_)                  \
                CHECK_FAIL("timed out waiting until %s", #cond); \
            uv_run(&(f)->loop, UV_RUN_ONCE);                     \
        }                                                        \
    } while (0)

static uint16_t free_port(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&sa, &len));
    close(fd);
    return ntohs(sa.sin_port);
}

/* Opens a database of node n and its repl: name NULL is the main one (a hub of its own). */
static void open_side(struct fixture *f, struct node *n, struct side *s, const char *name, const char *subtree) {
    char path[128];
    snprintf(path, sizeof(path), "%s/%s-%s.db", f->dir, n->id, name ?: "main");
    ASSERT_OK(cdb_open(&f->loop, path, n->id, &s->db));
    struct repl_params p = {.loop = &f->loop,
                            .db = s->db,
                            .listen = n->addr,
                            .share = name ? n->main.r : NULL,
                            .name = name,
                            .subtree = subtree,
                            .tick_msec = 100,
                            .dead_msec = 3000,
                            .handlers = &handlers,
                            .userdata = s};
    ASSERT_OK(repl_new(&p, &s->r));
    ASSERT_OK(repl_set_token(s->r, TOKEN));
    ASSERT_OK(repl_set_nodeid(s->r, n->id));
}

static void setup_node(struct fixture *f, struct node *n, const char *id) {
    n->id = id;
    n->port = free_port();
    snprintf(n->addr, sizeof(n->addr), "127.0.0.1:%u", n->port);
    open_side(f, n, &n->main, NULL, NULL);
}

static void setup(struct fixture *f) {
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/halo-test-repl-XXXXXX");
    ASSERT(mkdtemp(f->dir));
    ASSERT_OK(uv_loop_init(&f->loop));
    uv_timer_init(&f->loop, &f->ticker);
    uv_timer_start(&f->ticker, tick, 10, 10);
    setup_node(f, &f->a, "n1");
    setup_node(f, &f->b, "n2");
}

static void close_side(struct side *s) {
    s->r = repl_free(s->r);
    s->db = cdb_close(s->db);
}

static void teardown(struct fixture *f) {
    char cmd[128];
    struct node *nodes[] = {&f->a, &f->b};
    /* The main repls first: the hub outlives them while the others hold it. */
    for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
        close_side(&nodes[i]->main);
        close_side(&nodes[i]->g);
        close_side(&nodes[i]->h);
    }
    uv_close((uv_handle_t *)&f->ticker, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&f->loop)); /* every listener and connection closed */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    ASSERT_EQ(system(cmd), 0);
}

static void on_commit(struct cdb *c, int error, const cdb_txid *id, void *userdata) {
    int *done = userdata;
    ASSERT_OK(error);
    *done = 1;
}

static void set(struct fixture *f, struct side *s, const char *path, const char *value) {
    struct cdb_op op = {.path = path, .value = (const uint8_t *)value, .len = strlen(value)};
    int done = 0;
    ASSERT_OK(cdb_commit(s->db, NULL, &op, 1, on_commit, &done));
    RUN_UNTIL(f, done);
}

/* Whether db holds path with value (NULL: does not hold path). */
static bool has(struct side *s, const char *path, const char *value) {
    uint8_t *v = NULL;
    size_t n = 0;
    int k = cdb_get(s->db, path, &v, &n);
    bool same = k == -ENOENT ? !value : k >= 0 && value && n == strlen(value) && memcmp(v, value, n) == 0;
    free(v);
    return same;
}

static bool connectable(uint16_t port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}

static void follow(struct fixture *f, struct side *s, const char *primary, const char *addr) {
    s->joined = 0;
    ASSERT_OK(repl_follow(s->r, primary, addr));
    RUN_UNTIL(f, s->joined);
}

/* a serves its main database and g (/g); b follows both. */
static void two_databases_replicating(struct fixture *f) {
    open_side(f, &f->a, &f->a.g, "g", "/g");
    open_side(f, &f->b, &f->b.g, "g", "/g");
    ASSERT_OK(repl_serve(f->a.main.r));
    ASSERT_OK(repl_serve(f->a.g.r));
    follow(f, &f->b.main, "n1", f->a.addr);
    ASSERT_OK(f->b.main.join_error);
    follow(f, &f->b.g, "n1", f->a.addr);
    ASSERT_OK(f->b.g.join_error);
}

static void count(const char *nodeid, const char *addr, void *ud) {
    (*(int *)ud)++;
}

static int secondaries(struct side *s) {
    int n = 0;
    repl_secondaries(s->r, count, &n);
    return n;
}

TEST(two_repls_share_one_listener) {
    struct fixture f;
    setup(&f);
    open_side(&f, &f.a, &f.a.g, "g", "/g");
    /* A second repl of a hub needs a name of its own. */
    struct repl *r;
    struct repl_params p = {.loop = &f.loop, .db = f.a.g.db, .share = f.a.main.r, .name = "g", .handlers = &handlers};
    ASSERT_EQ(repl_new(&p, &r), -EEXIST);
    p.name = "";
    ASSERT_EQ(repl_new(&p, &r), -EINVAL);

    ASSERT(!connectable(f.a.port));
    ASSERT_OK(repl_serve(f.a.main.r));
    ASSERT_OK(repl_serve(f.a.g.r)); /* the same port: the listener is shared, not bound again */
    ASSERT(repl_serving(f.a.main.r) && repl_serving(f.a.g.r));
    ASSERT(connectable(f.a.port));
    /* Open while any of them serves. */
    repl_stop_serving(f.a.main.r, "test");
    ASSERT(!repl_serving(f.a.main.r) && repl_serving(f.a.g.r));
    ASSERT(connectable(f.a.port));
    repl_stop_serving(f.a.g.r, "test");
    uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT(!connectable(f.a.port));
    ASSERT_OK(repl_serve(f.a.g.r));
    ASSERT(connectable(f.a.port));

    /* A repl of another hub on the same address is another listener: it cannot bind. */
    struct repl_params q = {.loop = &f.loop, .db = f.b.main.db, .listen = f.a.addr, .handlers = &handlers};
    ASSERT_OK(repl_new(&q, &r));
    ASSERT_EQ(repl_serve(r), -HALO_EBIND);
    repl_free(r);
    teardown(&f);
}

TEST(a_group_s_secondary_replicates_its_database_and_the_main_one_still_replicates) {
    struct fixture f;
    setup(&f);
    two_databases_replicating(&f);
    ASSERT_EQ(secondaries(&f.a.main), 1);
    ASSERT_EQ(secondaries(&f.a.g), 1);

    /* Each commit reaches its own database on the secondary, and only that one. */
    set(&f, &f.a.g, "/g/x", "1");
    RUN_UNTIL(&f, has(&f.b.g, "/g/x", "1"));
    set(&f, &f.a.main, "/m", "2");
    RUN_UNTIL(&f, has(&f.b.main, "/m", "2"));
    ASSERT(has(&f.b.main, "/g/x", NULL) && has(&f.b.g, "/m", NULL));

    /* The main database stops serving; g goes on, on the same listener. */
    repl_stop_serving(f.a.main.r, "test");
    RUN_UNTIL(&f, f.b.main.lost);
    set(&f, &f.a.g, "/g/y", "3");
    RUN_UNTIL(&f, has(&f.b.g, "/g/y", "3"));
    ASSERT_EQ(f.b.g.lost, 0);
    /* A new connection of g gets there (it waits in the main repl, which serves nothing, until its Hello). */
    repl_unfollow(f.b.g.r);
    follow(&f, &f.b.g, "n1", f.a.addr);
    ASSERT_OK(f.b.g.join_error);
    set(&f, &f.a.g, "/g/z", "4");
    RUN_UNTIL(&f, has(&f.b.g, "/g/z", "4"));
    /* The main database's secondary is told the node does not serve it now. */
    follow(&f, &f.b.main, "n1", f.a.addr);
    ASSERT_EQ(f.b.main.join_error, -HALO_ECONNECT);
    ASSERT(strstr(f.b.main.reason, "does not serve the CDB now"));
    /* It serves again: the main database's secondary joins and catches up. */
    set(&f, &f.a.main, "/m", "5");
    ASSERT_OK(repl_serve(f.a.main.r));
    follow(&f, &f.b.main, "n1", f.a.addr);
    ASSERT_OK(f.b.main.join_error);
    RUN_UNTIL(&f, has(&f.b.main, "/m", "5"));
    teardown(&f);
}

TEST(a_hello_naming_a_database_not_served_is_refused) {
    struct fixture f;
    setup(&f);
    two_databases_replicating(&f);
    /* b has a database h that a does not have. */
    open_side(&f, &f.b, &f.b.h, "h", "/h");
    follow(&f, &f.b.h, "n1", f.a.addr);
    ASSERT_EQ(f.b.h.join_error, -HALO_ECONNECT);
    ASSERT(strstr(f.b.h.reason, "does not serve the CDB of group 'h' now"));
    /* a has g but no longer serves it. */
    repl_stop_serving(f.a.g.r, "test");
    RUN_UNTIL(&f, f.b.g.lost);
    follow(&f, &f.b.g, "n1", f.a.addr);
    ASSERT_EQ(f.b.g.join_error, -HALO_ECONNECT);
    ASSERT(strstr(f.b.g.reason, "does not serve the CDB of group 'g' now"));
    /* The main database's secondary never noticed. */
    ASSERT_EQ(f.b.main.lost, 0);
    set(&f, &f.a.main, "/m", "1");
    RUN_UNTIL(&f, has(&f.b.main, "/m", "1"));
    teardown(&f);
}

TEST(a_join_with_another_subtree_is_refused) {
    struct fixture f;
    setup(&f);
    open_side(&f, &f.a, &f.a.g, "g", "/g");
    open_side(&f, &f.b, &f.b.g, "g", "/other");
    ASSERT_OK(repl_serve(f.a.main.r));
    ASSERT_OK(repl_serve(f.a.g.r));
    set(&f, &f.a.g, "/g/x", "1");
    follow(&f, &f.b.g, "n1", f.a.addr);
    ASSERT_EQ(f.b.g.join_error, -HALO_EBADNAME);
    ASSERT(strstr(f.b.g.reason, "the primary's subtree for group 'g' is /g, this node's /other"));
    ASSERT(has(&f.b.g, "/g/x", NULL));
    ASSERT_EQ(secondaries(&f.a.g), 0);
    teardown(&f);
}

/* A halod from before databases had names: it closes at a version-2 Hello without a word (and,
 * for this test, at any Hello). */
struct old_primary {
    int listener, conn;
    char addr[32];
};

static void old_primary_start(struct old_primary *o) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    o->conn = -1;
    o->listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT(o->listener >= 0);
    ASSERT_OK(bind(o->listener, (struct sockaddr *)&sa, sizeof(sa)));
    ASSERT_OK(listen(o->listener, 4));
    ASSERT_OK(getsockname(o->listener, (struct sockaddr *)&sa, &len));
    snprintf(o->addr, sizeof(o->addr), "127.0.0.1:%u", ntohs(sa.sin_port));
}

/* True once it took a connection, read its Hello and closed it. */
static bool old_primary_closed_a_hello(struct old_primary *o) {
    char buf[256];
    if (o->conn < 0)
        o->conn = accept4(o->listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (o->conn < 0 || recv(o->conn, buf, sizeof(buf), 0) <= 0)
        return false;
    close(o->conn);
    o->conn = -1;
    return true;
}

TEST(a_group_s_secondary_of_an_older_halod_is_told_to_upgrade) {
    struct fixture f;
    struct old_primary o;
    setup(&f);
    open_side(&f, &f.b, &f.b.g, "g", "/g");
    old_primary_start(&o);
    ASSERT_OK(repl_follow(f.b.g.r, "n1", o.addr));
    RUN_UNTIL(&f, old_primary_closed_a_hello(&o));
    RUN_UNTIL(&f, f.b.g.joined);
    ASSERT_EQ(f.b.g.join_error, -HALO_ECLOSED);
    ASSERT(strstr(f.b.g.reason, "it closed the connection (is it a halod without cdb-subtree? upgrade every node"));
    /* The main database's secondary gets no such hint: an older halod serves it. */
    ASSERT_OK(repl_follow(f.b.main.r, "n1", o.addr));
    RUN_UNTIL(&f, old_primary_closed_a_hello(&o));
    RUN_UNTIL(&f, f.b.main.joined);
    ASSERT_STREQ(f.b.main.reason, "it closed the connection");
    close(o.listener);
    teardown(&f);
}

/* ---- the handshake's bytes, as a stranger sees them ---------------------------------- */

struct raw {
    int fd;
    uint8_t buf[16384];
    size_t len;
    bool eof;
};

static void raw_connect(struct raw *c, uint16_t port) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    c->len = 0;
    c->eof = false;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(c->fd >= 0);
    ASSERT_OK(connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)));
}

static void raw_send(struct raw *c, const HaRepl *m) {
    uint8_t *b;
    size_t n;
    ASSERT_OK(frame_pack_repl(m, &b, &n));
    ASSERT_EQ(write(c->fd, b, n), (ssize_t)n);
    free(b);
}

static void raw_hello(struct raw *c, uint32_t version, const char *db) {
    static uint8_t nonce[FRAME_NONCE_LEN]; /* zeros */
    Halo__Ha__Hello h = HALO__HA__HELLO__INIT;
    HaRepl m = HALO__HA__REPL__INIT;
    h.version = version;
    h.nodeid = "x";
    h.nonce.data = nonce;
    h.nonce.len = sizeof(nonce);
    h.db = (char *)db;
    m.body_case = HALO__HA__REPL__BODY_HELLO;
    m.hello = &h;
    raw_send(c, &m);
}

/* Reads what came without blocking; true once a whole frame or the end is there. */
static bool raw_ready(struct raw *c) {
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN))
        c->eof = true;
    else if (n > 0)
        c->len += (size_t)n;
    if (c->len >= FRAME_HEADER) {
        size_t want = (size_t)c->buf[0] << 24 | (size_t)c->buf[1] << 16 | (size_t)c->buf[2] << 8 | c->buf[3];
        if (c->len >= FRAME_HEADER + want)
            return true;
    }
    return c->eof;
}

/* The next frame, its bytes (with the header) in ret_raw; NULL when the connection ended first. */
static HaRepl *raw_next(struct fixture *f, struct raw *c, uint8_t *ret_raw, size_t *ret_len) {
    RUN_UNTIL(f, raw_ready(c));
    if (c->len < FRAME_HEADER)
        return NULL;
    size_t body = (size_t)c->buf[0] << 24 | (size_t)c->buf[1] << 16 | (size_t)c->buf[2] << 8 | c->buf[3];
    if (c->len < FRAME_HEADER + body)
        return NULL;
    HaRepl *m = NULL;
    ASSERT_OK(frame_unpack_repl(c->buf + FRAME_HEADER, body, &m));
    if (ret_raw) {
        memcpy(ret_raw, c->buf, FRAME_HEADER + body);
        *ret_len = FRAME_HEADER + body;
    }
    memmove(c->buf, c->buf + FRAME_HEADER + body, c->len - FRAME_HEADER - body);
    c->len -= FRAME_HEADER + body;
    return m;
}

static void mac_field(struct hmac_sha256_ctx *ctx, const void *data, size_t len) {
    uint8_t n[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    hmac_sha256_update(ctx, 2, n);
    hmac_sha256_update(ctx, len, data);
}

/* The primary's MAC as ha.proto documents it: over db only when it is not "". */
static void primary_mac(const uint8_t *nonce_p, const char *db, uint8_t out[FRAME_MAC_LEN]) {
    static const uint8_t zeros[FRAME_NONCE_LEN];
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, strlen(TOKEN), (const uint8_t *)TOKEN);
    mac_field(&ctx, "primary", 7);
    mac_field(&ctx, zeros, FRAME_NONCE_LEN);
    mac_field(&ctx, nonce_p, FRAME_NONCE_LEN);
    mac_field(&ctx, "n1", 2);
    mac_field(&ctx, "x", 1);
    if (*db)
        mac_field(&ctx, db, strlen(db));
    hmac_sha256_digest(&ctx, FRAME_MAC_LEN, out);
}

/* Sends a Hello for db and checks the primary's Hello and Auth. */
static void check_answer(struct fixture *f, uint32_t version, const char *db) {
    struct raw c;
    uint8_t bytes[256], mac[FRAME_MAC_LEN];
    size_t n;
    raw_connect(&c, f->a.port);
    raw_hello(&c, version, db);
    HaRepl *m = raw_next(f, &c, bytes, &n);
    ASSERT(m && m->body_case == HALO__HA__REPL__BODY_HELLO);
    ASSERT_EQ(m->hello->version, version);
    ASSERT_STREQ(m->hello->db, db);
    ASSERT_STREQ(m->hello->nodeid, "n1");
    uint8_t nonce_p[FRAME_NONCE_LEN];
    memcpy(nonce_p, m->hello->nonce.data, FRAME_NONCE_LEN);
    if (!*db) {
        /* Byte for byte the Hello of a halod before databases had names: version, nodeid, nonce. */
        uint8_t want[] = {0, 0, 0, 42, 0x0a, 40, 0x08, 1, 0x12, 2, 'n', '1', 0x1a, 32};
        ASSERT_EQ(n, sizeof(want) + FRAME_NONCE_LEN);
        ASSERT(memcmp(bytes, want, sizeof(want)) == 0);
    }
    frame_repl_free(m);
    m = raw_next(f, &c, NULL, NULL);
    ASSERT(m && m->body_case == HALO__HA__REPL__BODY_AUTH);
    primary_mac(nonce_p, db, mac);
    ASSERT(m->auth->mac.len == FRAME_MAC_LEN && memcmp(m->auth->mac.data, mac, FRAME_MAC_LEN) == 0);
    frame_repl_free(m);
    close(c.fd);
}

/* Sends a Hello and expects the connection to end, after an Error with error if it is not 0. */
static void check_refused(struct fixture *f, uint32_t version, const char *db, int error, const char *text) {
    struct raw c;
    raw_connect(&c, f->a.port);
    raw_hello(&c, version, db);
    HaRepl *m = raw_next(f, &c, NULL, NULL);
    if (error) {
        ASSERT(m && m->body_case == HALO__HA__REPL__BODY_ERROR);
        ASSERT_EQ(m->error->error, error);
        ASSERT(strstr(m->error->text, text));
        frame_repl_free(m);
        m = raw_next(f, &c, NULL, NULL);
    }
    ASSERT(!m);
    ASSERT(c.eof);
    close(c.fd);
}

TEST(the_main_handshake_is_unchanged_and_a_named_one_covers_its_name) {
    struct fixture f;
    setup(&f);
    open_side(&f, &f.a, &f.a.g, "g", "/g");
    ASSERT_OK(repl_serve(f.a.main.r));
    ASSERT_OK(repl_serve(f.a.g.r));
    check_answer(&f, FRAME_REPL_VERSION, "");
    check_answer(&f, FRAME_REPL_VERSION_DB, "g");
    check_refused(&f, FRAME_REPL_VERSION_DB, "nosuch", -HALO_ECONNECT,
                  "this node does not serve the CDB of group 'nosuch' now");
    /* Malformed: a version-2 Hello without a database, a version-1 Hello with one. */
    check_refused(&f, FRAME_REPL_VERSION_DB, "", 0, NULL);
    check_refused(&f, FRAME_REPL_VERSION, "g", 0, NULL);
    /* A later version is closed before anything is sent, as an older halod closes at a version 2. */
    check_refused(&f, 3, "g", 0, NULL);
    teardown(&f);
}

/* ---- an ha per database (ha-roles.c) ---------------------------------------------------- */

static void on_besecondary(void *arg, int error) {
    int *result = arg;
    *result = error < 0 ? error : 1;
}

static struct ha *new_ha(struct fixture *f, struct node *n, struct side *s, struct ha *share, const char *name) {
    char path[128];
    struct ha *h;
    snprintf(path, sizeof(path), "%s/%s-%s.db", f->dir, n->id, name ?: "main");
    ASSERT_OK(cdb_open(&f->loop, path, n->id, &s->db));
    struct ha_params p = {.loop = &f->loop,
                          .db = s->db,
                          .repl_listen = n->addr,
                          .share = share,
                          .name = name,
                          .subtree = name ? "/g" : NULL,
                          .token = TOKEN,
                          .tick_msec = 100,
                          .dead_msec = 3000};
    ASSERT_OK(ha_new(&p, &h));
    return h;
}

TEST(an_ha_per_database_shares_the_listener_and_has_no_control_socket) {
    struct fixture f;
    setup(&f);
    /* The fixture's repls are not used here: each ha makes its own. */
    close_side(&f.a.main);
    close_side(&f.b.main);
    struct ha *a = new_ha(&f, &f.a, &f.a.main, NULL, NULL), *ag = new_ha(&f, &f.a, &f.a.g, a, "g");
    struct ha *b = new_ha(&f, &f.b, &f.b.main, NULL, NULL), *bg = new_ha(&f, &f.b, &f.b.g, b, "g");
    struct ha *bad;
    struct ha_params p = {.loop = &f.loop, .db = f.a.g.db, .control_tcp = "127.0.0.1:1", .token = TOKEN};
    ASSERT_EQ(ha_new(&p, &bad), -EINVAL); /* a TCP control socket needs the AF_UNIX one */

    ASSERT_OK(ha_beprimary(ag, "n1"));
    ASSERT_OK(ha_beprimary(a, "n1")); /* on the port g's ha opened */
    int joined = 0, joined_g = 0;
    ASSERT_OK(ha_besecondary(b, "n2", "n1", f.a.addr, on_besecondary, &joined));
    ASSERT_OK(ha_besecondary(bg, "n2", "n1", f.a.addr, on_besecondary, &joined_g));
    RUN_UNTIL(&f, joined && joined_g);
    ASSERT(joined == 1 && joined_g == 1);
    ASSERT_EQ(ha_state(bg), HA_STATE_SECONDARY);
    set(&f, &f.a.g, "/g/x", "1");
    RUN_UNTIL(&f, has(&f.b.g, "/g/x", "1"));
    set(&f, &f.a.main, "/m", "2");
    RUN_UNTIL(&f, has(&f.b.main, "/m", "2"));
    ASSERT(has(&f.b.main, "/g/x", NULL));

    /* The main database's ha leaves its role: g's goes on. */
    ASSERT_OK(ha_benone(a));
    RUN_UNTIL(&f, ha_state(b) == HA_STATE_NONE);
    set(&f, &f.a.g, "/g/y", "3");
    RUN_UNTIL(&f, has(&f.b.g, "/g/y", "3"));
    ASSERT_EQ(ha_state(bg), HA_STATE_SECONDARY);

    /* Freed in any order: the main database's first. */
    a = ha_free(a);
    ag = ha_free(ag);
    b = ha_free(b);
    bg = ha_free(bg);
    teardown(&f);
}

TEST(the_connection_cap_counts_every_database_of_the_node) {
    enum { CAP = 64 }; /* REPL_DOWNS_MAX */
    struct fixture f;
    static struct raw c[CAP];
    setup(&f);
    two_databases_replicating(&f); /* one connection in each database */
    /* Strangers, each accepted into the main repl until its Hello: 62 more make the 64. */
    for (int i = 0; i < CAP - 1; i++) {
        raw_connect(&c[i], f.a.port);
        uv_run(&f.loop, UV_RUN_NOWAIT); /* accepted before the next (the backlog is short) */
    }
    RUN_UNTIL(&f, raw_ready(&c[CAP - 2]) && c[CAP - 2].eof);
    for (int i = 0; i < CAP - 2; i++)
        ASSERT(!raw_ready(&c[i]));
    /* The secondaries of both databases are still served. */
    set(&f, &f.a.g, "/g/x", "1");
    RUN_UNTIL(&f, has(&f.b.g, "/g/x", "1"));
    set(&f, &f.a.main, "/m", "2");
    RUN_UNTIL(&f, has(&f.b.main, "/m", "2"));
    for (int i = 0; i < CAP - 1; i++)
        close(c[i].fd);
    teardown(&f);
}

TEST(a_connection_before_its_hello_outlives_the_stop_of_the_database_that_holds_it) {
    struct fixture f;
    struct raw c, d;
    setup(&f);
    open_side(&f, &f.a, &f.a.g, "g", "/g");
    ASSERT_OK(repl_serve(f.a.main.r));
    ASSERT_OK(repl_serve(f.a.g.r));
    raw_connect(&c, f.a.port);
    uv_run(&f.loop, UV_RUN_NOWAIT); /* accepted: it waits in the main database's repl */
    /* The main database stops serving: the connection may be headed for g, which is still served. */
    repl_stop_serving(f.a.main.r, "test");
    raw_hello(&c, FRAME_REPL_VERSION_DB, "g");
    HaRepl *m = raw_next(&f, &c, NULL, NULL);
    ASSERT(m && m->body_case == HALO__HA__REPL__BODY_HELLO);
    ASSERT_STREQ(m->hello->db, "g");
    frame_repl_free(m);
    close(c.fd);
    /* Once nothing is served, a connection before its Hello is told and closed. */
    raw_connect(&d, f.a.port);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    repl_stop_serving(f.a.g.r, "stopped");
    m = raw_next(&f, &d, NULL, NULL);
    ASSERT(m && m->body_case == HALO__HA__REPL__BODY_ERROR);
    ASSERT_EQ(m->error->error, -HALO_ECLOSED);
    ASSERT_STREQ(m->error->text, "stopped");
    frame_repl_free(m);
    ASSERT(!raw_next(&f, &d, NULL, NULL) && d.eof);
    close(d.fd);
    teardown(&f);
}

/* The expected secondary counts as caught up only once it has joined, even when the primary has
 * committed nothing in this stream (it may lack what was acknowledged before: alone, or before a
 * restart), and the word comes whichever comes first, the naming or the join (amf-roles.c lets
 * its cdb-alone record go on it: CI once waited 20 s for a word that never came). */
TEST(the_expected_secondary_is_caught_up_once_joined_whatever_the_order) {
    struct fixture f;
    setup(&f);
    ASSERT_OK(repl_serve(f.a.main.r));
    /* Named first, with nothing committed: not caught up before its join. */
    repl_expect(f.a.main.r, "n2");
    uv_run(&f.loop, UV_RUN_NOWAIT);
    ASSERT(!repl_expected_caught_up(f.a.main.r));
    ASSERT_EQ(f.a.main.caught_up, 0);
    follow(&f, &f.b.main, "n1", f.a.addr);
    ASSERT_OK(f.b.main.join_error);
    RUN_UNTIL(&f, f.a.main.caught_up == 1);
    ASSERT(repl_expected_caught_up(f.a.main.r));
    /* Named again once it streams: caught up at once, and said so. */
    repl_expect(f.a.main.r, NULL);
    ASSERT(!repl_expected_caught_up(f.a.main.r));
    repl_expect(f.a.main.r, "n2");
    ASSERT(repl_expected_caught_up(f.a.main.r));
    ASSERT_EQ(f.a.main.caught_up, 2);
    /* A commit: caught up again once the secondary acknowledged it, and said so again. */
    set(&f, &f.a.main, "/x", "1");
    RUN_UNTIL(&f, f.a.main.caught_up == 3);
    ASSERT(repl_expected_caught_up(f.a.main.r) && has(&f.b.main, "/x", "1"));
    teardown(&f);
}
