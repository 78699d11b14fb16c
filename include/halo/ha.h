/* SPDX-License-Identifier: MIT */
/*
 * The HA control API of the configuration database (since 0.3), shaped like
 * NCS/ConfD's HA API (confd_lib_ha, the _ncs.ha Python module): an
 * application tells each node's halod its role, PRIMARY, SECONDARY (of a
 * named primary), SECONDARY_RELAY (a secondary that serves secondaries of
 * its own) or NONE, and halod replicates the database from the primary to
 * the secondaries.  docs/api.md has the transitions and their errors.
 *
 * The calls work on a socket the application creates (AF_UNIX or, with
 * `halod --ha-control`, AF_INET/AF_INET6; SOCK_STREAM, blocking) and
 * connects with halo_ha_connect().  The token is the secret every node of
 * the HA cluster shares: nodes prove they hold it when they connect to each
 * other, and a control connection proves it to its halod (HMAC over fresh
 * nonces, both ways), so it never crosses the wire.  With the description's
 * `cdb: {token-file}` that token is fixed; without one (AF_UNIX only) the
 * token given is sent to halod and becomes the token, as with ConfD.  One
 * control connection per halod: a new one closes the previous one.
 *
 * Every call returns 0 or a negative error: -HALO_EBADSTATE (not allowed in
 * the node's state), -HALO_EBADTOKEN, -HALO_EBADNAME, -HALO_ECONNECT,
 * -HALO_EBIND, -HALO_ECLOSED (halod closed the connection: another
 * controlling connection took over), -EINVAL, or -errno of the socket.
 */
#ifndef HALO_HA_H
#define HALO_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "halo/halo.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A node's HA state (the values are ConfD's). */
typedef enum halo_ha_role {
    HALO_HA_STATE_NONE = 1,
    HALO_HA_STATE_SECONDARY = 2,
    HALO_HA_STATE_PRIMARY = 3,
    HALO_HA_STATE_SECONDARY_RELAY = 4,
} halo_ha_role;

/* Deprecated names, as in seed 002. */
#define HALO_HA_STATE_MASTER HALO_HA_STATE_PRIMARY
#define HALO_HA_STATE_SLAVE HALO_HA_STATE_SECONDARY
#define HALO_HA_STATE_SLAVE_RELAY HALO_HA_STATE_SECONDARY_RELAY

#define HALO_HA_NAME_MAX 256 /* a node id or address and its NUL */
#define HALO_HA_NODES_MAX 64

/* Connects sock to halod's HA control socket at addr (NULL: sock is
 * connected already) and makes it the controlling connection with token.
 * -HALO_EBADTOKEN: halod holds another token (from its description), or
 * holds none and sock is not AF_UNIX (the token is never sent over TCP). */
int halo_ha_connect(int sock, const char *token, const struct sockaddr *addr, socklen_t addrlen);

/* Be the primary, named nodeid; halod listens for secondaries. */
int halo_ha_beprimary(int sock, const char *nodeid);
/*
 * Be a secondary named nodeid of the primary primary_id at primary_addr
 * ("ip", "ip:port", "[ipv6]:port"; the port defaults to this node's
 * replication port).  waitreply: return once the database is initialized
 * (copied whole from the primary if their last transactions differ), or
 * with the reason it could not be (-HALO_ECONNECT, -HALO_EBADTOKEN,
 * -HALO_EBADNAME, -HALO_ECLOSED); otherwise return at once, and the outcome
 * comes as a HALO_HA_INFO_BESECONDARY_RESULT notification.  Arguments are
 * checked before the node's role changes: -EINVAL (primary_addr is no
 * address) and -HALO_EBADNAME leave the node as it was.
 */
int halo_ha_besecondary(int sock, const char *nodeid, const char *primary_id, const char *primary_addr, bool waitreply);
/* An initialized secondary also serves secondaries of its own. */
int halo_ha_berelay(int sock);
/* Back to no role: the database is this node's own again. */
int halo_ha_benone(int sock);
/* The application knows secondary nodeid is dead: a primary or relay drops it now; accepted in any state. */
int halo_ha_secondary_dead(int sock, const char *nodeid);

typedef struct halo_ha_node {
    char nodeid[HALO_HA_NAME_MAX];
    char addr[HALO_HA_NAME_MAX];
} halo_ha_node;

typedef struct halo_ha_status {
    halo_ha_role state;
    size_t n_nodes; /* the primary (on a secondary) or the secondaries */
    halo_ha_node nodes[HALO_HA_NODES_MAX];
} halo_ha_status;

int halo_ha_status_get(int sock, halo_ha_status *ret);

/* Deprecated names of beprimary, besecondary, secondary_dead. */
int halo_ha_bemaster(int sock, const char *nodeid);
int halo_ha_beslave(int sock, const char *nodeid, const char *primary_id, const char *primary_addr, bool waitreply);
int halo_ha_slave_dead(int sock, const char *nodeid);

/* ---- notifications ---------------------------------------------------------- */

typedef enum halo_ha_info_type {
    HALO_HA_INFO_NOPRIMARY = 1,             /* this secondary lost its primary (error, reason: why) */
    HALO_HA_INFO_SECONDARY_DIED = 2,        /* nodeid */
    HALO_HA_INFO_SECONDARY_ARRIVED = 3,     /* nodeid */
    HALO_HA_INFO_SECONDARY_INITIALIZED = 4, /* this secondary's database is in sync; full_copy */
    HALO_HA_INFO_IS_PRIMARY = 5,
    HALO_HA_INFO_IS_NONE = 6,
    HALO_HA_INFO_BESECONDARY_RESULT = 7, /* nodeid: the primary; error 0 or why not */
} halo_ha_info_type;

typedef struct halo_ha_info {
    halo_ha_info_type type;
    char nodeid[HALO_HA_NAME_MAX];
    int error;
    bool full_copy;
    char reason[HALO_HA_NAME_MAX];
} halo_ha_info;

/* Connects sock as a notifications stream (token: the one in force, if any; proved as by halo_ha_connect()). */
int halo_ha_notifications_connect(int sock, const char *token, const struct sockaddr *addr, socklen_t addrlen);
/* Blocks for the next notification.  Returns 0, -HALO_ECLOSED, -EBADMSG,
 * -EINTR (a signal came before any of it), -errno. */
int halo_ha_notification_read(int sock, halo_ha_info *ret);

/* "NONE", "SECONDARY", "PRIMARY", "SECONDARY_RELAY"; "UNKNOWN" otherwise. */
const char *halo_ha_role_to_string(halo_ha_role state);

#ifdef __cplusplus
}
#endif

#endif
