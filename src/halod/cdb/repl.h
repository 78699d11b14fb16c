/* SPDX-License-Identifier: MIT */
/* Replication of the configuration database between nodes: primary (and relay) to secondaries over TCP. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cdb.h"

struct repl;

struct repl_handlers {
    /* Serving side (primary or relay). */
    void (*secondary_arrived)(void *userdata, const char *nodeid);
    void (*secondary_died)(void *userdata, const char *nodeid, const char *reason);
    /* Serving side: the expected secondary (repl_expect) has every commit so far. */
    void (*expected_caught_up)(void *userdata);
    /* Following side: the join ended, 0 once the database is initialized
     * (full_copy says how), or why it failed. */
    void (*joined)(void *userdata, int error, bool full_copy, const char *reason);
    /* Following side, after joined(0): the primary is gone. */
    void (*lost)(void *userdata, int error, const char *reason);
};

struct repl_params {
    uv_loop_t *loop;
    struct cdb *db;
    const char *listen; /* "ADDR:PORT" the primary listens on for secondaries (not with share) */
    /* Another repl of this node: this one shares its listener and TLS credentials (its hub), and
     * needs a name of its own.  NULL: a new hub, on listen, that this repl hosts (its main). */
    struct repl *share;
    const char *name;    /* the database, named in the Hello: NULL or "" the main one, else its cdb-roles group */
    const char *subtree; /* a named database's subtree, which its secondaries must have too */
    uint64_t tick_msec;  /* send a tick when idle this long */
    uint64_t dead_msec;  /* a peer silent this long is dead */
    bool async;          /* commits do not wait for the secondaries */
    const struct repl_handlers *handlers;
    void *userdata;
};

/*
 * Returns 0, -EINVAL (a bad listen address, a name or subtree too long, a share without a name),
 * -EEXIST (share already has a repl of that name), -ENOMEM, or cdb_observe()'s error.  A hub
 * lives until its last repl is released, so the repls of a hub are freed in any order.
 */
int repl_new(const struct repl_params *p, struct repl **ret);
struct repl *repl_free(struct repl *r);

/* The shared secret (copied); never sent.  Connections made before keep theirs. */
int repl_set_token(struct repl *r, const char *token);
/* The tick and dead intervals and the replication mode, from now on (a reload): a commit made from
 * now on waits for the secondaries unless async; every connection keeps its peer with the new
 * intervals. */
void repl_set_timing(struct repl *r, uint64_t tick_msec, uint64_t dead_msec, bool async);
/* The tick and dead intervals in force; whether the replication is async. */
bool repl_timing(const struct repl *r, uint64_t *ret_tick_msec, uint64_t *ret_dead_msec);
/* Every connection made from now on over mutual TLS (repl-tls.c): this
 * node's certificate and key, and the CA that signed every node's (PEM
 * files, read now).  For every repl of the hub.  0, -ENOMEM, or -EINVAL
 * with why (n bytes) saying which file is wrong. */
int repl_set_tls(struct repl *r, const char *cert, const char *key, const char *ca, char *why, size_t n);
/* This node's name in the HA cluster (copied). */
int repl_set_nodeid(struct repl *r, const char *nodeid);

/* Takes secondaries of this database: the hub's listener is open while a repl of it serves.
 * Returns 0, -HALO_EBIND, -ENOMEM. */
int repl_serve(struct repl *r);
/* Closes every secondary's connection of this database (reason sent to them), and the listener
 * once no repl of the hub serves. */
void repl_stop_serving(struct repl *r, const char *reason);
bool repl_serving(const struct repl *r);

/* Joins primary_id at addr ("host", "host:port", "[v6]:port"; the port
 * defaults to this node's listen port).  The result comes through joined().
 * Returns 0, -EINVAL (bad address), -ENOMEM. */
int repl_follow(struct repl *r, const char *primary_id, const char *addr);
/* Leaves the primary; no callback follows. */
void repl_unfollow(struct repl *r);
/* The primary followed, joined or joining; NULL if none. */
const char *repl_primary(const struct repl *r, const char **ret_addr);

/* The application says a secondary is dead: its connection is closed. */
void repl_secondary_dead(struct repl *r, const char *nodeid);
/* Synchronous replication with a known standby (roles driven by the AMF): no
 * commit is acknowledged until secondary nodeid has it durably, whether it is
 * connected or not.  NULL or "": none expected (a secondary that goes away
 * then no longer holds commits back). */
void repl_expect(struct repl *r, const char *nodeid);
/* hold: no commit is acknowledged (they wait) until it is released. */
void repl_hold(struct repl *r, bool hold);
/* Whether the expected secondary has every commit so far. */
bool repl_expected_caught_up(const struct repl *r);
/* The connected secondaries: calls fn for each. */
void repl_secondaries(struct repl *r, void (*fn)(const char *nodeid, const char *addr, void *ud), void *ud);

/* done(arg, 0) once every secondary in sync has the transaction this node
 * committed as id (at once when asynchronous or without secondaries; a
 * secondary that dies no longer counts), and the expected secondary has it
 * (repl_expect); done(arg, -HALO_ECLOSED) if this node stops serving first,
 * -ESHUTDOWN if the engine goes away: the commit is durable here, its
 * replication is not known. */
void repl_wait(struct repl *r, const cdb_txid *id, void (*done)(void *arg, int error), void *arg);
