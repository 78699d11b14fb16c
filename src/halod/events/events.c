/* SPDX-License-Identifier: MIT */
/*
 * HA events in halod: what this node reports to the event queue (EQ), the
 * coordinator's consumer, and the broadcast queue (BQ) delivered to the
 * local processes that asked for object states (queue.h has the queues).
 *
 * Reported: a component registered (process ONLINE) or failed (process
 * FAILED, with the reason), this node joined (node ONLINE), another node's
 * lease ended (node FAILED: every node that sees it reports it, the
 * coordinator publishes it once), and what external monitors POST to the
 * HTTP API.  Reports made in one loop iteration go out in one transaction.
 *
 * Delivery: the BQ entries delivered in one loop iteration are sent to each
 * interested process as ObjectStateNotes (LINK_OBJECTS_MAX states each),
 * packed once and handed to each process's socket together, so a burst costs
 * one wake-up per process, not one per event or per note.  Nothing here
 * waits: appends, consumption and delivery run on their own store calls and
 * never behind one another.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "cluster.h"
#include "log.h"
#include "macro.h"
#include "failvec.h"
#include "queue.h"
#include "recovery-model.h"
#include "strprintf.h"

#define EVENTS_PENDING_MAX 4096 /* reports waiting for the next flush */
#define EVENTS_PRUNE_MSEC 1000  /* the coordinator prunes the BQ this often */
/* BQ entries waiting to be sent to processes: past this (a long replay) they
 * go out at once.  A multiple of LINK_OBJECTS_MAX. */
#define EVENTS_NOTE_MAX 4096
/* Notes queued for one process (not yet read) past which the next are held back. */
#define EVENTS_QUEUE_SOFT (1024 * 1024)
/* haloctl events --follow at once. */
#define EVENTS_FOLLOWERS_MAX 16

/* What a process is told of a BQ entry. */
struct note {
    char object[QUEUE_OBJECT_MAX];
    enum queue_ha_state state;
    uint64_t hlc, seq;
};

struct events {
    struct amf *amf;
    struct queue *q;
    struct hlc clock;
    struct queue_event *pending; /* reports of this iteration */
    size_t n_pending;
    struct note *notes; /* delivered entries not yet sent to processes */
    size_t n_notes;
    uv_timer_t flush, prune;
    uint64_t dropped; /* reports lost to a full buffer or a failed append */
    /* A round of notes, packed once for every process: packets laid end to
     * end in pk_buf, pkts pointing at each; st and pst (EVENTS_NOTE_MAX each)
     * hold the round's states while it is packed. */
    uint8_t *pk_buf;
    size_t pk_cap;
    struct iovec *pkts;
    size_t n_pkts, pkts_cap;
    Halo__Link__ObjectState *st, **pst;
    struct recovery_model *model;
    struct failvec *fv;                           /* the coordinator's epochs and failure vectors; NULL without pools */
    struct admin_read *reads;                     /* haloctl's reads in flight */
    struct conn *followers[EVENTS_FOLLOWERS_MAX]; /* haloctl events --follow */
};

/* A read of the store for haloctl (events, failvec); conn NULL once it closed. */
struct admin_read {
    struct admin_read *next;
    struct events *e;
    struct conn *conn;
    uint64_t seq;
    int op;
    char object[QUEUE_OBJECT_MAX];
};

static void on_flush(uv_timer_t *t);

static void schedule(struct events *e) {
    if (!uv_is_active((uv_handle_t *)&e->flush))
        uv_timer_start(&e->flush, on_flush, 0, 0);
}

void amf_event(struct amf *a, const char *kind, const char *name, const char *state, const char *reason) {
    amf_event_epoch(a, kind, name, state, reason, QUEUE_EPOCH_NONE);
}

int amf_events_state(struct amf *a, const char *object) {
    return a->events ? queue_state_get(a->events->q, object) : -ENOENT;
}

const struct recovery_model *amf_events_model(struct amf *a) {
    return a->events ? a->events->model : NULL;
}

void amf_event_epoch(struct amf *a, const char *kind, const char *name, const char *state, const char *reason,
                     int64_t epoch) {
    struct events *e = a->events;
    if (!e)
        return;
    if (e->n_pending >= EVENTS_PENDING_MAX) {
        e->dropped++;
        return;
    }
    char object[QUEUE_OBJECT_MAX], n[QUEUE_NAME_MAX + 1];
    rm_object_part(n, sizeof(n), name);
    snprintf(object, sizeof(object), "%s:%s", kind, n);
    struct queue_event *ev = &e->pending[e->n_pending];
    int st = queue_ha_state_from_string(state);
    if (st < 0 || queue_event_init(ev, object, (enum queue_ha_state)st) < 0)
        return;
    snprintf(ev->node, sizeof(ev->node), "%s", a->node);
    ev->epoch = epoch;
    if (reason)
        snprintf(ev->reason, sizeof(ev->reason), "%s", reason);
    e->n_pending++;
    schedule(e);
}

static void on_appended(struct queue *q, int error, size_t n, void *userdata) {
    struct events *e = userdata;
    if (error < 0 && error != -ECANCELED) {
        log_warning_errno(error, "Failed to append HA events to the event queue: %m");
        e->dropped++;
    }
}

/* The pool of a local component's process, NULL if none. */
static const struct config_pool *comp_pool(struct events *e, const struct comp *cp) {
    return e->amf->config->n_pools ? config_find_pool_of(e->amf->config, cp->name) : NULL;
}

/* A note only the pool's processes get (seed 003, "DTM participants"): a
 * pool process RECOVERING (its TRANSIENT goes to all, as in "DTM trigger
 * once").  Returns the pool, or NULL for a note for all. */
static const struct config_pool *note_pool(struct events *e, const char *object, const char *state) {
    if (!e->model || !streq(state, "RECOVERING") || strncmp(object, "process:", 8) != 0)
        return NULL;
    const struct rm_process *p = rm_find(e->model, object);
    return p ? p->pool : NULL;
}

/* Packs states into e->pkts: notes of as many states as fit one packet.
 * Returns 0 or -ENOMEM. */
static int pack_states(struct events *e, Halo__Link__ObjectState **states, size_t n_states) {
    size_t used = 0;
    e->n_pkts = 0;
    for (size_t off = 0, n; off < n_states; off += n) {
        if (e->pk_cap - used < LINK_MSG_MAX) {
            size_t cap = MAX(e->pk_cap * 2, used + LINK_MSG_MAX);
            uint8_t *b = realloc(e->pk_buf, cap);
            if (!b)
                return -ENOMEM;
            e->pk_buf = b;
            e->pk_cap = cap;
        }
        if (e->n_pkts == e->pkts_cap) {
            size_t cap = e->pkts_cap ? e->pkts_cap * 2 : 16;
            struct iovec *v = reallocarray(e->pkts, cap, sizeof(*v));
            if (!v)
                return -ENOMEM;
            e->pkts = v;
            e->pkts_cap = cap;
        }
        Halo__Link__ObjectStateNote note = HALO__LINK__OBJECT_STATE_NOTE__INIT;
        LinkMsg m = HALO__LINK__MSG__INIT;
        m.body_case = HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE;
        m.object_state_note = &note;
        note.states = states + off;
        n = MIN(n_states - off, (size_t)LINK_OBJECTS_MAX);
        int len;
        for (;;) { /* long object names: fewer per note */
            note.n_states = n;
            len = link_encode(&m, e->pk_buf + used, LINK_MSG_MAX);
            if (len != -EMSGSIZE || n == 1)
                break;
            n /= 2;
        }
        if (len < 0) {
            log_warning_errno(len, "Failed to encode an object state note: %m");
            continue;
        }
        e->pkts[e->n_pkts++].iov_len = (size_t)len;
        used += (size_t)len;
    }
    /* Laid end to end: pointed at once pk_buf has stopped moving. */
    used = 0;
    for (size_t i = 0; i < e->n_pkts; i++) {
        e->pkts[i].iov_base = e->pk_buf + used;
        used += e->pkts[i].iov_len;
    }
    return 0;
}

/* Sends states (at most EVENTS_NOTE_MAX) to conn, or to every local process
 * that asked for them and whose pool is `pool` (any pool when all is true).
 * The notes are packed once and the same bytes go to every process, all of
 * them at once: one wake-up per process for a round, not one per note. */
static void send_states_to(struct events *e, struct conn *conn, bool all, const struct config_pool *pool,
                           Halo__Link__ObjectState **states, size_t n_states) {
    struct amf *a = e->amf;
    if (pack_states(e, states, n_states) < 0) {
        log_warning("Out of memory: %zu object states not sent", n_states);
        return;
    }
    if (e->n_pkts == 0)
        return;
    if (conn) {
        (void)server_conn_send_packets(conn, e->pkts, e->n_pkts);
        return;
    }
    for (size_t g = 0; g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t c = 0; su->local && c < su->n_comps; c++) {
                struct comp *cp = &su->comps[c];
                if (!cp->conn || !cp->object_states || cp->states_resync || (!all && comp_pool(e, cp) != pool))
                    continue;
                if (server_conn_queued(cp->conn) > EVENTS_QUEUE_SOFT) {
                    /* Not read for a while (busy, stopped in a debugger): hold the
                     * notes back rather than queue without end; it gets the current
                     * states once it has read the rest. */
                    log_notice("'%s' reads its object states slowly: a snapshot follows when it catches up", cp->name);
                    cp->states_resync = true;
                    continue;
                }
                (void)server_conn_send_packets(cp->conn, e->pkts, e->n_pkts);
            }
        }
}

static void send_states(struct events *e, struct conn *conn, Halo__Link__ObjectState **states, size_t n_states) {
    send_states_to(e, conn, true, NULL, states, n_states);
}

/* Sends the delivered entries to the processes that asked for object states. */
/* Who a round of notes goes to. */
enum audience {
    TO_FOLLOWERS, /* haloctl events --follow: everything */
    TO_ALL,       /* every process that asked: everything */
    TO_POOL,      /* the processes of one pool (or of none): the other pools' RECOVERING left out */
};

static void send_round(struct events *e, enum audience to, const struct config_pool *pool,
                       Halo__Link__ObjectState **pst, size_t n) {
    if (to == TO_FOLLOWERS) {
        for (size_t f = 0; f < EVENTS_FOLLOWERS_MAX; f++)
            if (e->followers[f])
                send_states(e, e->followers[f], pst, n);
    } else
        send_states_to(e, NULL, to == TO_ALL, pool, pst, n);
}

/* The delivered notes to an audience, in one round. */
static void send_notes_to(struct events *e, enum audience to, const struct config_pool *pool) {
    size_t n = 0;
    for (size_t i = 0; i < e->n_notes; i++) {
        const struct note *nt = &e->notes[i];
        const char *state = queue_ha_state_to_string(nt->state);
        const struct config_pool *only = to == TO_POOL ? note_pool(e, nt->object, state) : NULL;
        if (only && only != pool)
            continue;
        Halo__Link__ObjectState *st = &e->st[n];
        halo__link__object_state__init(st);
        st->object = (char *)nt->object;
        st->state = (char *)state;
        st->hlc = nt->hlc;
        st->seq = nt->seq;
        e->pst[n++] = st;
    }
    if (n)
        send_round(e, to, pool, e->pst, n);
}

static void send_notes(struct events *e) {
    bool restricted = false, following = false;
    for (size_t i = 0; i < EVENTS_FOLLOWERS_MAX; i++)
        following |= e->followers[i] != NULL;
    if (following)
        send_notes_to(e, TO_FOLLOWERS, NULL);
    for (size_t i = 0; i < e->n_notes && !restricted; i++)
        restricted = note_pool(e, e->notes[i].object, queue_ha_state_to_string(e->notes[i].state)) != NULL;
    if (restricted) {
        send_notes_to(e, TO_POOL, NULL);
        for (size_t p = 0; p < e->amf->config->n_pools; p++)
            send_notes_to(e, TO_POOL, &e->amf->config->pools[p]);
    } else
        send_notes_to(e, TO_ALL, NULL);
    e->n_notes = 0;
}

struct snap_entry {
    char object[QUEUE_OBJECT_MAX];
    enum queue_ha_state state;
    uint64_t seq;
};

struct snapshot {
    struct snap_entry *e;
    size_t n, cap;
    bool failed;
};

static void snapshot_add(const char *object, enum queue_ha_state state, uint64_t seq, void *userdata) {
    struct snapshot *s = userdata;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct snap_entry *e = realloc(s->e, cap * sizeof(*e));
        if (!e) {
            s->failed = true;
            return;
        }
        s->e = e;
        s->cap = cap;
    }
    snprintf(s->e[s->n].object, sizeof(s->e[s->n].object), "%s", object);
    s->e[s->n].state = state;
    s->e[s->n].seq = seq;
    s->n++;
}

static int snap_cmp(const void *x, const void *y) {
    const struct snap_entry *a = x, *b = y;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* A process that asked for object states gets what is known now, in BQ
 * order, then the BQ as it goes. */
void amf_events_snapshot(struct amf *a, struct conn *conn) {
    struct events *e = a->events;
    struct snapshot s = {0};
    if (!e)
        return;
    /* Entries delivered but not sent yet go to the others first: the snapshot has them. */
    if (e->n_notes)
        send_notes(e);
    queue_state_foreach(e->q, snapshot_add, &s);
    if (s.failed)
        log_warning("Out of memory: a process gets no snapshot of the object states");
    else if (s.n > 0)
        qsort(s.e, s.n, sizeof(*s.e), snap_cmp);
    for (size_t off = 0; !s.failed && off < s.n; off += EVENTS_NOTE_MAX) {
        size_t n = MIN(s.n - off, (size_t)EVENTS_NOTE_MAX);
        for (size_t k = 0; k < n; k++) {
            Halo__Link__ObjectState *st = &e->st[k];
            halo__link__object_state__init(st);
            st->object = s.e[off + k].object;
            st->state = (char *)queue_ha_state_to_string(s.e[off + k].state);
            st->seq = s.e[off + k].seq;
            e->pst[k] = st;
        }
        send_states(e, conn, e->pst, n);
    }
    free(s.e);
}

void amf_events_drained(struct amf *a, struct conn *conn) {
    for (size_t g = 0; a->events && g < a->n_sgs; g++)
        for (size_t u = 0; u < a->sgs[g].n_sus; u++) {
            struct su *su = &a->sgs[g].sus[u];
            for (size_t c = 0; c < su->n_comps; c++)
                if (su->comps[c].conn == conn && su->comps[c].states_resync) {
                    su->comps[c].states_resync = false;
                    log_info("'%s' caught up: sending it the current object states", su->comps[c].name);
                    amf_events_snapshot(a, conn);
                    return;
                }
        }
}

static void on_flush(uv_timer_t *t) {
    struct events *e = t->data;
    if (e->n_pending) {
        int r = eq_append(e->q, e->pending, e->n_pending, on_appended, e);
        if (r < 0 && r != -ECANCELED) {
            log_warning_errno(r, "Failed to append %zu HA events to the event queue: %m", e->n_pending);
            e->dropped += e->n_pending;
        }
        e->n_pending = 0;
    }
    if (e->n_notes)
        send_notes(e);
}

static void on_deliver(struct queue *q, uint64_t seq, const struct queue_event *ev, void *userdata) {
    struct events *e = userdata;
    char object[QUEUE_OBJECT_MAX];
    (void)queue_event_object(ev, object);
    log_debug("BQ %llu: %s is %s (reported by %s)", (unsigned long long)seq, object,
              queue_ha_state_to_string(ev->state), ev->node);
    if (e->n_notes >= EVENTS_NOTE_MAX)
        send_notes(e); /* a long replay: send what we have now */
    struct note *nt = &e->notes[e->n_notes++];
    memcpy(nt->object, object, sizeof(nt->object));
    nt->state = ev->state;
    nt->hlc = ev->hlc;
    nt->seq = seq;
    schedule(e);
}

static void on_stopped(struct queue *q, int error, void *userdata) {
    struct events *e = userdata;
    if (error == -EPERM && e->amf->cluster)
        cluster_deposed(e->amf->cluster);
}

/* The coordinator's rules (recovery.h); a refused event is logged and dropped. */
static int on_decide(struct queue *q, const struct queue_event *ev, int current, enum queue_ha_state *ret_state,
                     void *userdata) {
    struct events *e = userdata;
    const char *why = NULL;
    char object[QUEUE_OBJECT_MAX];
    (void)queue_event_object(ev, object);
    int r = rm_decide(e->model, ev, current, failvec_epoch(e->fv, rm_owner(e->model, object)), &why);
    if (r == 0) {
        log_info("Refused %s %s -> %s (reported by %s): %s", object,
                 current >= 0 ? queue_ha_state_to_string((enum queue_ha_state)current) : "(none)",
                 queue_ha_state_to_string(ev->state), ev->node, why);
    }
    *ret_state = ev->state;
    return r;
}

static size_t on_expand(struct queue *q, const struct queue_event *ev, struct queue_event *out, size_t max,
                        void *userdata) {
    struct events *e = userdata;
    return rm_expand(e->model, ev, out, max);
}

static void on_pruned(struct queue *q, int error, uint64_t n, void *userdata) {
    if (error < 0 && error != -ECANCELED && error != -EBUSY)
        log_debug_errno(error, "Pruning the broadcast queue stopped: %m");
}

static void on_prune(uv_timer_t *t) {
    struct events *e = t->data;
    struct amf *a = e->amf;
    const char *live[64];
    size_t n = 0;
    if (!a->cluster)
        live[n++] = a->node;
    for (size_t i = 0; a->cluster && i < a->n_nodes && n < ELEMENTSOF(live); i++)
        if (a->nodes[i].alive)
            live[n++] = a->nodes[i].name;
    if (n)
        (void)bq_prune(e->q, live, n, on_pruned, e);
}

int amf_events_start(struct amf *a) {
    struct events *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->amf = a;
    e->pending = calloc(EVENTS_PENDING_MAX, sizeof(*e->pending));
    e->notes = calloc(EVENTS_NOTE_MAX, sizeof(*e->notes));
    e->st = calloc(EVENTS_NOTE_MAX, sizeof(*e->st));
    e->pst = calloc(EVENTS_NOTE_MAX, sizeof(*e->pst));
    int rm = rm_new(a->config, &e->model);
    if (rm < 0)
        log_warning_errno(rm, "No recovery model (HA state rules and failure expansion are off): %m");
    hlc_init(&e->clock, NULL, NULL);
    struct queue_params p = {
        .loop = a->loop, .store = a->store, .prefix = a->prefix, .node = a->node, .clock = &e->clock};
    int r = !e->pending || !e->notes || !e->st || !e->pst ? -ENOMEM : queue_new(&p, &e->q);
    if (r < 0) {
        free(e->st);
        free(e->pst);
        free(e->pending);
        free(e->notes);
        free(e);
        return r;
    }
    if (e->model && a->config->n_pools > 0 && failvec_new(a->store, e->q, a->prefix, e->model, &e->fv) < 0)
        log_warning("Out of memory: no failure vectors");
    uv_timer_init(a->loop, &e->flush);
    uv_timer_init(a->loop, &e->prune);
    e->flush.data = e->prune.data = e;
    a->events = e;
    r = bq_reader_start(e->q, on_deliver, on_stopped, e);
    if (r < 0)
        return r;
    if (a->coordinator)
        amf_events_coordinator(a, true);
    return 0;
}

void amf_events_coordinator(struct amf *a, bool on) {
    struct events *e = a->events;
    if (!e)
        return;
    if (!on) {
        eq_consumer_stop(e->q);
        uv_timer_stop(&e->prune);
        return;
    }
    store_compare guard;
    if (a->cluster)
        cluster_guard(a->cluster, &guard);
    eq_consumer_set_expand(e->q, e->model ? on_expand : NULL);
    eq_consumer_set_writer(e->q, e->fv ? &failvec_writer : NULL, e->fv);
    int r = eq_consumer_start(e->q, a->cluster ? &guard : NULL, e->model ? on_decide : NULL, on_stopped, e);
    if (r < 0 && r != -EBUSY)
        log_error_errno(r, "Failed to start consuming the event queue: %m");
    uv_timer_start(&e->prune, on_prune, EVENTS_PRUNE_MSEC, EVENTS_PRUNE_MSEC);
}

/* The objects an outside report may name. */
static bool object_known(struct amf *a, const struct queue_event *ev) {
    switch (ev->kind) {
    case QUEUE_KIND_NODE:
        return config_find_node(a->config, ev->name) != NULL;
    case QUEUE_KIND_SERVICE:
    case QUEUE_KIND_DEVICE: {
        char object[QUEUE_OBJECT_MAX];
        return a->events->model && queue_event_object(ev, object) == 0 && rm_known(a->events->model, object);
    }
    case QUEUE_KIND_SU:
        return amf_find_su(a, ev->name) != NULL;
    case QUEUE_KIND_PROCESS:
    case QUEUE_KIND_COMP:
        for (size_t g = 0; g < a->n_sgs; g++)
            for (size_t u = 0; u < a->sgs[g].n_sus; u++)
                for (size_t c = 0; c < a->sgs[g].sus[u].n_comps; c++) {
                    char n[QUEUE_NAME_MAX + 1];
                    rm_object_part(n, sizeof(n), a->sgs[g].sus[u].comps[c].name);
                    if (streq(n, ev->name))
                        return true;
                }
        return false;
    default:
        return false;
    }
}

int amf_events_post(struct amf *a, const char *body, size_t len, char **reply, const char **error) {
    struct events *e = a->events;
    if (!e) {
        *error = "events are not available";
        return -EAGAIN;
    }
    json_error_t jerr;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *list = json_is_array(j) ? j : json_object_get(j, "events");
    if (!list && json_is_object(j) && json_object_get(j, "object"))
        list = j;
    size_t n = json_is_array(list) ? json_array_size(list) : list ? 1 : 0;
    if (n == 0 || n > EVENTS_PENDING_MAX) {
        json_decref(j);
        *error = n ? "too many events in one request" : "expected an event, an array of events, or {\"events\": [...]}";
        return -EINVAL;
    }
    struct queue_event *evs = calloc(n, sizeof(*evs));
    if (!evs) {
        json_decref(j);
        return -ENOMEM;
    }
    int r = 0;
    for (size_t i = 0; i < n && r == 0; i++) {
        json_t *o = json_is_array(list) ? json_array_get(list, i) : list;
        /* The reporting node defaults to this one. */
        if (json_is_object(o) && !json_object_get(o, "node"))
            json_object_set_new(o, "node", json_string(a->node));
        /* Epochs are halo's own (the recovery protocol's steps carry them): one posted from
         * outside could pass for a step of the local recovery, so it is ignored. */
        if (json_is_object(o))
            json_object_del(o, "epoch");
        if (queue_event_from_json(o, &evs[i]) < 0) {
            *error =
                "an event is not valid: it needs \"object\" (kind:name; kind node, process, service, device, su) and "
                "\"state\" (ONLINE, FAILED, ...)";
            r = -EINVAL;
        } else if (!object_known(a, &evs[i])) {
            *error = "an event names an object that is not in the cluster description";
            r = -ENOENT;
        }
    }
    json_decref(j);
    if (r == 0) {
        r = eq_append(e->q, evs, n, on_appended, e);
        if (r == -EBUSY || r == -ERANGE) {
            *error = r == -EBUSY ? "the event queue is busy; retry" : "an event's hlc is too far ahead";
            r = r == -EBUSY ? -EAGAIN : -EINVAL;
        }
    }
    free(evs);
    if (r == 0) {
        json_t *ok = json_pack("{s:b, s:i}", "accepted", 1, "events", (int)n);
        *reply = ok ? json_dumps(ok, JSON_COMPACT) : NULL;
        json_decref(ok);
    }
    return r;
}

int amf_object_states(struct amf *a, char *const *objects, size_t n, Halo__Link__ObjectState *out) {
    struct events *e = a->events;
    for (size_t i = 0; i < n; i++) {
        halo__link__object_state__init(&out[i]);
        out[i].object = objects[i];
        int st = e ? queue_state_get(e->q, objects[i]) : -ENOENT;
        out[i].state = st >= 0 ? (char *)queue_ha_state_to_string((enum queue_ha_state)st) : "";
    }
    return 0;
}

void amf_events_stats(struct amf *a, struct queue_stats *ret, uint64_t *dropped) {
    *ret = (struct queue_stats){0};
    *dropped = 0;
    if (a->events) {
        queue_get_stats(a->events->q, ret);
        *dropped = a->events->dropped;
    }
}

static void noop_close(uv_handle_t *h) {
}

void amf_events_close(struct amf *a) {
    struct events *e = a->events;
    if (!e)
        return;
    e->q = queue_free(e->q);
    failvec_free(e->fv);
    e->fv = NULL;
    uv_close((uv_handle_t *)&e->flush, noop_close);
    uv_close((uv_handle_t *)&e->prune, noop_close);
}

void amf_events_free(struct amf *a) {
    struct events *e = a->events;
    if (!e)
        return;
    free(e->pending);
    free(e->notes);
    free(e->st);
    free(e->pst);
    free(e->pk_buf);
    free(e->pkts);
    rm_free(e->model);
    free(e);
    a->events = NULL;
}

/* ---- haloctl: events and failure vectors, read from the store ---- */

static void admin_read_free(struct admin_read *r) {
    for (struct admin_read **p = &r->e->reads; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    free(r);
}

/* The published events of BQ entries or failure-vector chunks (JSON arrays), appended to out. */
static void append_events(json_t *out, const char *value, size_t len) {
    json_t *arr = json_loadb(value, len, 0, NULL);
    size_t i;
    json_t *ev;
    json_array_foreach(arr, i, ev) {
        struct queue_event qe;
        if (!json_is_object(ev) || queue_event_from_json(ev, &qe) < 0)
            continue;
        char when[HLC_STRING_MAX];
        json_t *copy = json_deep_copy(ev);
        if (copy && qe.hlc)
            json_object_set_new(copy, "time", json_string(hlc_format(qe.hlc, when)));
        json_array_append_new(out, copy);
    }
    json_decref(arr);
}

static bool key_ends(const store_kv *kv, const char *suffix) {
    size_t n = strlen(suffix);
    return kv->key_len >= n && memcmp(kv->key + kv->key_len - n, suffix, n) == 0;
}

static int64_t key_number_after(const store_kv *kv, size_t prefix_len) {
    char buf[32];
    size_t n = 0;
    while (prefix_len + n < kv->key_len && n < sizeof(buf) - 1 && kv->key[prefix_len + n] != '/') {
        buf[n] = kv->key[prefix_len + n];
        n++;
    }
    buf[n] = 0;
    char *end;
    long long v = strtoll(buf, &end, 10);
    return n && !*end ? v : -1;
}

static int epoch_cmp(const void *x, const void *y) {
    json_int_t a = json_integer_value(json_object_get(*(json_t *const *)x, "epoch"));
    json_int_t b = json_integer_value(json_object_get(*(json_t *const *)y, "epoch"));
    return a < b ? -1 : a > b;
}

static json_t *failvec_json(struct events *e, const char *object, const store_result *res) {
    struct amf *a = e->amf;
    char prefix[STORE_KEY_MAX + 1];
    snprintf(prefix, sizeof(prefix), "%sfailvec/%s/", a->prefix, object);
    size_t plen = strlen(prefix);
    json_t *epochs = json_object(), *root = json_pack("{s:s, s:n}", "process", object, "current_epoch");
    for (size_t i = 0; i < res->n_kvs; i++) {
        const store_kv *kv = &res->kvs[i];
        if (key_ends(kv, "/current_epoch")) {
            json_t *v = json_loadb(kv->value, kv->value_len, JSON_DECODE_ANY, NULL);
            json_object_set_new(root, "current_epoch", json_is_integer(v) ? v : json_null());
            if (!json_is_integer(v))
                json_decref(v);
            continue;
        }
        if (kv->key_len <= plen || memcmp(kv->key, prefix, plen) != 0)
            continue;
        int64_t ep = key_number_after(kv, plen);
        if (ep < 0)
            continue;
        char name[32];
        snprintf(name, sizeof(name), "%lld", (long long)ep);
        json_t *o = json_object_get(epochs, name);
        if (!o) {
            o = json_pack("{s:I, s:n, s:I, s:[]}", "epoch", (json_int_t)ep, "record", "nr_failures", (json_int_t)0,
                          "events");
            json_object_set_new(epochs, name, o);
        }
        const char *rest = kv->key + plen + strlen(name);
        size_t rest_len = kv->key_len - plen - strlen(name);
        if (rest_len == 0)
            json_object_set_new(o, "record", json_loadb(kv->value, kv->value_len, 0, NULL) ?: json_null());
        else if (rest_len == strlen("/nr_failures") && memcmp(rest, "/nr_failures", rest_len) == 0) {
            json_t *v = json_loadb(kv->value, kv->value_len, JSON_DECODE_ANY, NULL);
            if (json_is_integer(v))
                json_object_set(o, "nr_failures", v);
            json_decref(v);
        } else
            append_events(json_object_get(o, "events"), kv->value, kv->value_len);
    }
    /* The epochs in order (the store's key order puts 10 before 9). */
    json_t *list = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(epochs, k, v) json_array_append(list, v);
    size_t n = json_array_size(list);
    json_t **sorted = n ? calloc(n, sizeof(*sorted)) : NULL;
    for (size_t i = 0; sorted && i < n; i++)
        sorted[i] = json_array_get(list, i);
    if (sorted)
        qsort(sorted, n, sizeof(*sorted), epoch_cmp);
    json_t *out = json_array();
    for (size_t i = 0; sorted && i < n; i++)
        json_array_append(out, sorted[i]);
    free(sorted);
    json_decref(list);
    json_decref(epochs);
    json_object_set_new(root, "epochs", out);
    return root;
}

static void on_admin_read(store *s, int error, const store_result *res, void *userdata) {
    struct admin_read *r = userdata;
    struct conn *conn = r->conn;
    if (!conn) {
        admin_read_free(r);
        return;
    }
    if (error < 0) {
        (void)server_conn_reply(conn, r->seq, error, NULL);
        admin_read_free(r);
        return;
    }
    json_t *j;
    if (r->op == HALO__LINK__ADMIN__OP__FAILVEC)
        j = failvec_json(r->e, r->object, res);
    else {
        json_t *evs = json_array();
        for (size_t i = 0; i < res->n_kvs; i++)
            append_events(evs, res->kvs[i].value, res->kvs[i].value_len);
        j = json_pack("{s:o}", "events", evs);
    }
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text)
        (void)server_conn_reply_parts(conn, r->seq, text);
    else
        (void)server_conn_reply(conn, r->seq, -ENOMEM, NULL);
    admin_read_free(r);
}

void amf_events_admin(struct amf *a, struct conn *conn, int op, uint64_t seq, const char *target) {
    struct events *e = a->events;
    if (!e) {
        (void)server_conn_reply(conn, seq, -EAGAIN, NULL);
        return;
    }
    if (op == HALO__LINK__ADMIN__OP__EVENTS_FOLLOW) {
        for (size_t i = 0; i < EVENTS_FOLLOWERS_MAX; i++)
            if (!e->followers[i] || e->followers[i] == conn) {
                e->followers[i] = conn;
                (void)server_conn_reply(conn, seq, 0, NULL);
                return;
            }
        (void)server_conn_reply(conn, seq, -EBUSY, NULL);
        return;
    }
    struct admin_read *r = calloc(1, sizeof(*r));
    if (!r) {
        (void)server_conn_reply(conn, seq, -ENOMEM, NULL);
        return;
    }
    *r = (struct admin_read){.e = e, .conn = conn, .seq = seq, .op = op};
    int ret;
    if (op == HALO__LINK__ADMIN__OP__FAILVEC) {
        /* A process by its component name ("su/comp") or its object name. */
        char name[QUEUE_OBJECT_MAX];
        snprintf(name, sizeof(name), "%s%s", strncmp(target, "process:", 8) == 0 ? "" : "process:", target);
        rm_object_part(r->object, sizeof(r->object), name);
        const struct rm_process *p = e->model ? rm_find(e->model, r->object) : NULL;
        if (!p || !p->pool) {
            free(r);
            (void)server_conn_reply(conn, seq, p ? -EINVAL : -HALO_EUNKNOWN, NULL);
            return;
        }
        char *ek = failvec_epoch_key(a->prefix, r->object), *under = strprintf("%sfailvec/%s/", a->prefix, r->object);
        store_op ops[] = {{.type = STORE_OP_GET, .key = ek, .key_len = ek ? strlen(ek) : 0},
                          {.type = STORE_OP_GET_PREFIX, .key = under, .key_len = under ? strlen(under) : 0}};
        store_txn txn = {.success = ops, .n_success = ELEMENTSOF(ops)};
        ret = ek && under ? store_transaction(a->store, &txn, on_admin_read, r) : -ENOMEM;
        free(ek);
        free(under);
    } else {
        char *bq = strprintf("%sbq/", a->prefix);
        ret = bq ? store_range(a->store, bq, on_admin_read, r) : -ENOMEM;
        free(bq);
    }
    if (ret < 0) {
        free(r);
        (void)server_conn_reply(conn, seq, ret, NULL);
        return;
    }
    r->next = e->reads;
    e->reads = r;
}

void amf_events_conn_closed(struct amf *a, struct conn *conn) {
    struct events *e = a->events;
    if (!e)
        return;
    for (struct admin_read *r = e->reads; r; r = r->next)
        if (r->conn == conn)
            r->conn = NULL;
    for (size_t i = 0; i < EVENTS_FOLLOWERS_MAX; i++)
        if (e->followers[i] == conn)
            e->followers[i] = NULL;
}
