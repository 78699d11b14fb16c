/* SPDX-License-Identifier: MIT */
/* HA roles of the configuration database (NONE, SECONDARY, PRIMARY, SECONDARY_RELAY) and the HA control socket. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cdb-link.h"
#include "cdb.h"

/* The states of seed 002 (ConfD's numbers). */
enum ha_state {
    HA_STATE_NONE = 1,
    HA_STATE_SECONDARY = 2,
    HA_STATE_PRIMARY = 3,
    HA_STATE_SECONDARY_RELAY = 4,
};

struct ha_params {
    uv_loop_t *loop;
    struct cdb *db;
    /* Told whether writes are allowed, and to wait for replication; NULL: none (the database of a
     * subtree, which the link does not route to yet). */
    struct cdb_link *link;
    /* The HA control socket (AF_UNIX stream), mode 0600; NULL: none (a subtree's database, whose
     * roles only its service group drives): no role call, status or notification reaches it. */
    const char *control_path;
    const char *control_tcp; /* also on this loopback "ADDR:PORT", or NULL (needs control_path) */
    const char *repl_listen; /* where a primary listens for secondaries, "ADDR:PORT" (not with share) */
    /* The ha of another database of this node: replication shares its listener and TLS
     * credentials (repl_params.share), so name is needed.  NULL: the main database's. */
    struct ha *share;
    const char *name;    /* NULL or "": the main database; else the cdb-roles group whose subtree it holds */
    const char *subtree; /* that group's subtree */
    const char *token;   /* the nodes' token from the description, or NULL: see ha_new() */
    uint64_t tick_msec, dead_msec;
    bool async;
};

struct ha;

/*
 * With p->token, every control connection must prove it holds that token
 * (HMAC over fresh nonces, ha.proto) and none can replace it; without, a
 * CONNECT on the AF_UNIX socket (mode 0600) sets the token, as ConfD's does.
 * Returns 0, -ENOKEY (p->control_tcp without p->token: TCP needs a secret to
 * prove), -EINVAL (p->control_tcp without p->control_path), the errors of
 * repl_new(), or those of ha_control_listen().
 */
int ha_new(const struct ha_params *p, struct ha **ret);
struct ha *ha_free(struct ha *h);

enum ha_state ha_state(const struct ha *h);
const char *ha_state_name(enum ha_state s);

/*
 * The role calls, as the control socket runs them (and the AMF, for a
 * service group that drives the roles).  Each returns 0 or a negative
 * HALO_E* error: -HALO_EBADSTATE (not allowed in this state), -HALO_EBADNAME,
 * -HALO_EBIND, -HALO_ECONNECT, -EINVAL.  besecondary's outcome comes later
 * (done, if not NULL, and a BESECONDARY_RESULT notification).
 */
int ha_beprimary(struct ha *h, const char *nodeid);
int ha_besecondary(struct ha *h, const char *nodeid, const char *primary_id, const char *primary_addr,
                   void (*done)(void *arg, int error), void *arg);
int ha_berelay(struct ha *h);
int ha_benone(struct ha *h);
int ha_secondary_dead(struct ha *h, const char *nodeid);
/* The token the nodes authenticate each other with (copied). */
int ha_set_token(struct ha *h, const char *token);
/* The replication's tick and dead intervals and mode, from now on (a reload): see repl_set_timing(). */
void ha_set_replication(struct ha *h, uint64_t tick_msec, uint64_t dead_msec, bool async);
/* Replication over mutual TLS: see repl_set_tls() (for every ha sharing h's listener). */
int ha_set_tls(struct ha *h, const char *cert, const char *key, const char *ca, char *why, size_t n);

/*
 * Roles the AMF drives (a service group with cdb-roles): the token is fixed
 * (a control connection must present it), the control socket's role calls
 * are refused with -HALO_EBADSTATE, and ha_follow() sets the role.
 * changed(userdata) runs when the role ended by itself (a join failed, the
 * primary was lost), so that the AMF can look again.
 */
int ha_set_driven(struct ha *h, const char *sg, const char *token, void (*changed)(void *userdata), void *userdata);
/* Makes the role want (the primary named primary at addr, for SECONDARY),
 * doing nothing when it is already so. */
int ha_follow(struct ha *h, enum ha_state want, const char *self, const char *primary, const char *addr);
/* Driven roles, on the primary: every commit waits for secondary nodeid (the
 * standby's node) until it has it, connected or not; NULL: none expected. */
void ha_expect_secondary(struct ha *h, const char *nodeid);
/* hold: commits wait, acknowledged to nobody, until released. */
void ha_hold_commits(struct ha *h, bool hold);
/* PRIMARY, and the expected secondary has every commit so far. */
bool ha_expected_caught_up(const struct ha *h);

/* A JSON object for halod's status: {"state", "nodeid", "primary", "secondaries": [...], "last_txid"}. */
char *ha_status_json(struct ha *h);
