/* SPDX-License-Identifier: MIT */
/*
 * Typed builders of the HA-link messages halod sends: plain C arguments in,
 * one packed packet out, so that no module above src/proto handles the
 * protobuf structures.  Each returns the packet's length, or -EMSGSIZE when
 * it would not fit size (or LINK_MSG_MAX), -EINVAL for a NULL name.  Strings
 * are only read during the call.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "halo/halo.h"
#include "link.h"

struct link_csi_set {
    uint64_t invocation;
    const char *comp, *csi, *si;
    halo_ha_state state;
    unsigned flags;                 /* HALO_CSI_* */
    halo_csi_transition transition; /* ACTIVE only; 0 otherwise */
    const char *active_comp;        /* STANDBY: the ACTIVE's component, or NULL */
    const halo_csi_attr *attrs;     /* at most LINK_ATTRS_MAX are sent */
    size_t n_attrs;
};
int link_pack_csi_set(const struct link_csi_set *m, uint8_t *buf, size_t size);
int link_pack_csi_remove(uint64_t invocation, const char *comp, const char *csi, unsigned flags, uint8_t *buf,
                         size_t size);
int link_pack_terminate(uint64_t invocation, const char *comp, uint8_t *buf, size_t size);
/* ProxiedInstantiate, or with cleanup ProxiedCleanup, of the proxied component comp, to its proxy. */
int link_pack_proxied(uint64_t invocation, const char *comp, bool cleanup, uint8_t *buf, size_t size);
int link_pack_healthcheck(uint64_t invocation, const char *comp, const char *key, uint8_t *buf, size_t size);
/* The members of csi's protection group (at most LINK_OBJECTS_MAX). */
int link_pack_pg_notify(const char *csi, const halo_pg_member *members, size_t n, uint8_t *buf, size_t size);

/* An object's HA state as halod tells it (ObjectState). */
struct link_object_state {
    const char *object;
    const char *state; /* "" = unknown */
    uint64_t hlc, seq;
};
/*
 * An ObjectStateNote with as many of states[0..n) as fit one packet (at most
 * LINK_OBJECTS_MAX; fewer when names are long): the length, and in
 * *ret_taken how many it holds (>= 1).  -EMSGSIZE if not even one fits.
 */
int link_pack_object_states(const struct link_object_state *states, size_t n, size_t *ret_taken, uint8_t *buf,
                            size_t size);
/* A participant of a recovery, as a RecoveryNote lists it. */
struct link_participant {
    const char *object, *name, *node, *state;
};
/* A RecoveryNote: state "recover" with the vector's events (at most
 * LINK_OBJECTS_MAX) and, on the last part, the participants (at most
 * LINK_PARTICIPANTS_MAX); "refused" or "aborted" with reason. */
struct link_recovery_note {
    uint64_t epoch;
    const char *state, *reason;
    const struct link_object_state *events;
    size_t n_events;
    bool last;
    uint64_t nr_failures;
    const struct link_participant *participants;
    size_t n_participants;
};
int link_pack_recovery_note(const struct link_recovery_note *m, uint8_t *buf, size_t size);

/* Replies: a plain one (error, optional JSON), an HA state, object states in the order asked, an entrypoint. */
int link_pack_reply(uint64_t seq, int error, const char *json, uint8_t *buf, size_t size);
int link_pack_reply_ha_state(uint64_t seq, halo_ha_state state, uint8_t *buf, size_t size);
int link_pack_reply_states(uint64_t seq, const struct link_object_state *states, size_t n, uint8_t *buf, size_t size);
int link_pack_reply_retry(uint64_t seq, int error, const char *json, unsigned retry_msec, uint8_t *buf, size_t size);
