/* SPDX-License-Identifier: MIT */
/* The broadcast queue delivered to this node's processes, and the states they ask for (events.h). */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events-internal.h"
#include "log.h"
#include "macro.h"
#include "server.h"

/* BQ entries waiting to be sent to processes: past this (a long replay) they
 * go out at once.  A multiple of LINK_OBJECTS_MAX. */
#define EVENTS_NOTE_MAX 4096
/* Notes queued for one process (not yet read) past which the next are held back. */
#define EVENTS_QUEUE_SOFT (1024 * 1024)

static void on_flush(uv_timer_t *t);

static void schedule(struct events *e) {
    if (!uv_is_active((uv_handle_t *)&e->flush))
        uv_timer_start(&e->flush, on_flush, 0, 0);
}

/* A note only the pool's processes get (seed 003, "DTM participants"): a
 * pool process RECOVERING (its TRANSIENT goes to all, as in "DTM trigger
 * once").  Returns the pool, or NULL for a note for all. */
static const struct config_pool *note_pool(struct events *e, const char *object, enum queue_ha_state state) {
    if (!e->model || state != QUEUE_HA_RECOVERING || strncmp(object, "process:", 8) != 0)
        return NULL;
    const struct rm_process *p = rm_find(e->model, object);
    return p ? p->pool : NULL;
}

/* Whether a and b are one pool: by name, as a reload may run another description than the one the
 * recovery model was built from (amf_config() is the running one). */
static bool same_pool(const struct config_pool *a, const struct config_pool *b) {
    return a == b || (a && b && streq(a->name, b->name));
}

/* What object belongs to, for the interest filters: once per note, not per process. */
static struct interest_owner owner_of(struct events *e, const char *object) {
    const struct rm_process *p = e->model ? rm_owner(e->model, object) : NULL;
    if (!p)
        return (struct interest_owner){0};
    return (struct interest_owner){.group = e->proc_group ? e->proc_group[p->index] : 0, .pool = p->pool};
}

/* Packs states into e->pkts: notes of as many states as fit one packet.
 * Returns 0 or -ENOMEM. */
static int pack_states(struct events *e, const struct link_object_state *states, size_t n_states) {
    size_t used = 0;
    e->n_pkts = 0;
    for (size_t off = 0, n = 1; off < n_states; off += n) {
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
        n = 1;
        int len = link_pack_object_states(states + off, n_states - off, &n, e->pk_buf + used, LINK_MSG_MAX);
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

/* Who a round of notes goes to. */
enum audience {
    TO_CONN, /* one connection (a snapshot, a follower) */
    TO_ALL,  /* every process that asked and filters nothing: everything */
    TO_POOL, /* the processes of one pool (or of none) that filter nothing: the other pools' RECOVERING left out */
    TO_SUB,  /* one process, its filtered round */
};

/* Sends the packed round to a process, unless it has not read the last ones. */
static void send_packed_to(struct events *e, struct sub *s) {
    if (server_conn_queued(s->c->conn) > EVENTS_QUEUE_SOFT) {
        /* Not read for a while (busy, stopped in a debugger): hold the
         * notes back rather than queue without end; it gets the current
         * states once it has read the rest. */
        log_notice("'%s' reads its object states slowly: a snapshot follows when it catches up", s->c->name);
        s->resync = true;
        return;
    }
    (void)server_conn_send_packets(s->c->conn, e->pkts, e->n_pkts);
}

static bool wants_notes(const struct sub *s) {
    return s->c->conn && s->c->object_states && !s->resync;
}

/* Sends states (at most EVENTS_NOTE_MAX) to conn, to sub, or to every local
 * process that asked for them and filters nothing (of pool, for TO_POOL).  The
 * notes are packed once and the same bytes go to every process, all of them
 * at once: one wake-up per process for a round, not one per note. */
static void send_states(struct events *e, enum audience to, struct conn *conn, struct sub *sub,
                        const struct config_pool *pool, const struct link_object_state *states, size_t n_states) {
    if (pack_states(e, states, n_states) < 0) {
        log_warning("Out of memory: %zu object states not sent", n_states);
        return;
    }
    if (e->n_pkts == 0)
        return;
    if (to == TO_CONN) {
        (void)server_conn_send_packets(conn, e->pkts, e->n_pkts);
        return;
    }
    if (to == TO_SUB) {
        e->notes_sent += n_states;
        send_packed_to(e, sub);
        return;
    }
    for (size_t i = 0; i < e->n_subs; i++) {
        struct sub *s = &e->subs[i];
        if (!wants_notes(s) || s->interest || (to == TO_POOL && !same_pool(s->me.pool, pool)))
            continue;
        e->notes_sent += n_states;
        send_packed_to(e, s);
    }
}

/* Each process that filters its notes gets what matches, halod's filter
 * applied before anything wakes it: a process none of the round concerns is
 * not woken at all. */
static void send_filtered(struct events *e) {
    for (size_t i = 0; i < e->n_subs; i++) {
        struct sub *s = &e->subs[i];
        if (!s->interest || !wants_notes(s))
            continue;
        size_t n = 0;
        for (size_t k = 0; k < e->n_notes; k++) {
            const struct note *nt = &e->notes[k];
            if (nt->only && nt->only != s->me.pool)
                continue;
            if (!interest_match(s->interest, nt->object, &nt->owner, &s->me)) {
                e->notes_filtered++;
                continue;
            }
            e->st[n++] = (struct link_object_state){
                .object = nt->object, .state = queue_ha_state_to_string(nt->state), .hlc = nt->hlc, .seq = nt->seq};
        }
        if (n)
            send_states(e, TO_SUB, NULL, s, NULL, e->st, n);
    }
}

/* The delivered notes to an audience, in one round. */
static void send_notes_to(struct events *e, enum audience to, struct conn *conn, const struct config_pool *pool) {
    size_t n = 0;
    for (size_t i = 0; i < e->n_notes; i++) {
        const struct note *nt = &e->notes[i];
        if (to == TO_POOL && nt->only && !same_pool(nt->only, pool))
            continue;
        e->st[n++] = (struct link_object_state){
            .object = nt->object, .state = queue_ha_state_to_string(nt->state), .hlc = nt->hlc, .seq = nt->seq};
    }
    if (n)
        send_states(e, to, conn, NULL, pool, e->st, n);
}

static void send_notes(struct events *e) {
    bool restricted = false;
    for (size_t i = 0; i < EVENTS_FOLLOWERS_MAX; i++)
        if (e->followers[i])
            send_notes_to(e, TO_CONN, e->followers[i], NULL);
    for (size_t i = 0; i < e->n_notes && !restricted; i++)
        restricted = e->notes[i].only != NULL;
    if (restricted) {
        const struct config *cfg = amf_config(e->amf);
        send_notes_to(e, TO_POOL, NULL, NULL);
        for (size_t p = 0; p < cfg->n_pools; p++)
            send_notes_to(e, TO_POOL, NULL, &cfg->pools[p]);
    } else
        send_notes_to(e, TO_ALL, NULL, NULL);
    send_filtered(e);
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

/* Keeps the entries sub's filter lets through, in order; returns how many. */
static size_t snapshot_filter(struct events *e, struct snap_entry *en, size_t n, const struct sub *sub) {
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct interest_owner o = owner_of(e, en[i].object);
        if (interest_match(sub->interest, en[i].object, &o, &sub->me))
            en[kept++] = en[i];
    }
    return kept;
}

/* A process that asked for object states gets what is known now (what its
 * filter lets through), in BQ order, then the BQ as it goes. */
static void snapshot(struct events *e, struct conn *conn, const struct sub *sub) {
    struct snapshot s = {0};
    /* Entries delivered but not sent yet go to the others first: the snapshot has them. */
    if (e->n_notes)
        send_notes(e);
    queue_state_foreach(e->q, snapshot_add, &s);
    if (s.failed)
        log_warning("Out of memory: a process gets no snapshot of the object states");
    else if (s.n > 0)
        qsort(s.e, s.n, sizeof(*s.e), snap_cmp);
    if (!s.failed && sub && sub->interest)
        s.n = snapshot_filter(e, s.e, s.n, sub);
    for (size_t off = 0; !s.failed && off < s.n; off += EVENTS_NOTE_MAX) {
        size_t n = MIN(s.n - off, (size_t)EVENTS_NOTE_MAX);
        for (size_t k = 0; k < n; k++)
            e->st[k] = (struct link_object_state){.object = s.e[off + k].object,
                                                  .state = queue_ha_state_to_string(s.e[off + k].state),
                                                  .seq = s.e[off + k].seq};
        send_states(e, TO_CONN, conn, NULL, NULL, e->st, n);
    }
    free(s.e);
}

static struct sub *sub_of(struct events *e, const struct comp *c) {
    for (size_t i = 0; i < e->n_subs; i++)
        if (e->subs[i].c == c)
            return &e->subs[i];
    return NULL;
}

/* The id of a service group, for GROUP interests; a group a reload added gets the next one. */
static unsigned group_id(struct events *e, const char *sg) {
    uintptr_t id = (uintptr_t)hashmap_get(&e->group_ids, sg);
    if (!id) {
        id = hashmap_size(&e->group_ids) + 1;
        if (hashmap_put(&e->group_ids, sg, (void *)id) < 0)
            return 0; /* out of memory: its GROUP interest matches nothing */
    }
    return (unsigned)id;
}

static struct sub sub_make(struct events *e, struct comp *c) {
    const struct config *cfg = amf_config(e->amf);
    return (struct sub){
        .c = c,
        .me = {.group = group_id(e, c->su->sg->name), .pool = cfg->n_pools ? config_find_pool_of(cfg, c->name) : NULL}};
}

/* A component of this node the subscriptions do not know yet: one of a group a reload added. */
static struct sub *sub_add(struct events *e, struct comp *c) {
    struct sub *subs = realloc(e->subs, (e->n_subs + 1) * sizeof(*subs));
    if (!subs)
        return NULL;
    e->subs = subs;
    subs[e->n_subs] = sub_make(e, c);
    return &subs[e->n_subs++];
}

/* ---- interest filters ---- */

static struct conn_interest *conn_interest(struct events *e, const struct conn *conn) {
    for (size_t i = 0; i < e->n_interests; i++)
        if (e->interests[i].conn == conn)
            return &e->interests[i];
    return NULL;
}

static const struct interest *interest_of(struct events *e, const struct conn *conn) {
    struct conn_interest *ci = conn ? conn_interest(e, conn) : NULL;
    return ci ? ci->in : NULL;
}

/* The subscriptions of conn's component follow its rules (NULL: everything). */
static void subs_follow(struct events *e, const struct conn *conn, const struct interest *old,
                        const struct interest *in) {
    for (size_t i = 0; i < e->n_subs; i++)
        if ((conn && e->subs[i].c->conn == conn) || (old && e->subs[i].interest == old))
            e->subs[i].interest = in;
}

static void interest_forget(struct events *e, struct conn *conn) {
    struct conn_interest *ci = conn_interest(e, conn);
    if (!ci)
        return;
    subs_follow(e, NULL, ci->in, NULL);
    interest_free(ci->in);
    *ci = e->interests[--e->n_interests];
}

void events_interest_set(struct events *e, struct conn *conn, uint64_t seq, Halo__Link__InterestRule *const *rules,
                         size_t n) {
    const char *error = NULL;
    struct interest *in = NULL;
    int r = interest_new(rules, n, &in, &error);
    if (r == -EINVAL)
        log_warning("%s asked for object states with a bad rule: %s; refused", server_conn_name(conn), error);
    if (r < 0) {
        (void)server_conn_reply(conn, seq, r, NULL);
        return;
    }
    interest_forget(e, conn);
    if (n == 0 || in->all) /* everything: no filter */
        in = interest_free(in);
    else {
        struct conn_interest *v = reallocarray(e->interests, e->n_interests + 1, sizeof(*v));
        if (!v) {
            interest_free(in);
            (void)server_conn_reply(conn, seq, -ENOMEM, NULL);
            return;
        }
        e->interests = v;
        v[e->n_interests++] = (struct conn_interest){.conn = conn, .in = in};
    }
    subs_follow(e, conn, NULL, in);
    (void)server_conn_reply(conn, seq, 0, NULL);
}

static void on_comp_event(void *userdata, struct comp *c, enum amf_comp_event ev, const char *reason) {
    struct events *e = userdata;
    struct sub *s = sub_of(e, c);
    if (!s && ev == AMF_COMP_SPAWNED && c->su->local)
        s = sub_add(e, c);
    if (!s)
        return;
    if (ev == AMF_COMP_SPAWNED || ev == AMF_COMP_EXITED) {
        s->resync = false;
        s->interest = NULL; /* a new process, a new connection: its own rules */
    } else if (ev == AMF_COMP_REGISTERED && c->object_states) {
        s->resync = false;
        s->interest = interest_of(e, c->conn);
        snapshot(e, c->conn, s); /* what is known now; the BQ follows */
    }
}

static const struct amf_observer observer = {
    .comp_event = on_comp_event,
};

void events_conn_drained(struct events *e, struct conn *conn) {
    for (size_t i = 0; i < e->n_subs; i++)
        if (e->subs[i].c->conn == conn && e->subs[i].resync) {
            e->subs[i].resync = false;
            log_info("'%s' caught up: sending it the current object states", e->subs[i].c->name);
            snapshot(e, conn, &e->subs[i]);
            return;
        }
}

void events_conn_closed(struct events *e, struct conn *conn) {
    events_admin_conn_closed(e, conn);
    interest_forget(e, conn);
}

void events_object_state_get(struct events *e, struct conn *conn, uint64_t seq, char *const *objects, size_t n) {
    struct link_object_state st[LINK_OBJECTS_MAX];
    n = MIN(n, (size_t)LINK_OBJECTS_MAX);
    for (size_t i = 0; i < n; i++) {
        uint64_t seq_i, hlc;
        int s = queue_state_info(e->q, objects[i], &seq_i, &hlc);
        st[i] = (struct link_object_state){.object = objects[i],
                                           .state = s >= 0 ? queue_ha_state_to_string((enum queue_ha_state)s) : "",
                                           .hlc = s >= 0 ? hlc : 0,
                                           .seq = s >= 0 ? seq_i : 0};
    }
    uint8_t buf[LINK_MSG_MAX];
    int len = link_pack_reply_states(seq, st, n, buf, sizeof(buf));
    if (len < 0)
        (void)server_conn_reply(conn, seq, len, NULL);
    else
        (void)server_conn_send_packed(conn, buf, (size_t)len);
}

static void on_flush(uv_timer_t *t) {
    struct events *e = t->data;
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
    nt->owner = owner_of(e, nt->object);
    nt->only = note_pool(e, nt->object, nt->state);
    schedule(e);
}

int events_start(struct events *e) {
    return bq_reader_start(e->q, on_deliver, NULL, e);
}

/* The group of each process of the recovery model, by its index: a note's
 * group is then an array read, not a search of the AMF's components. */
static int groups_index(struct events *e) {
    size_t n = e->model ? rm_n_processes(e->model) : 0;
    if (n == 0)
        return 0;
    e->proc_group = calloc(n, sizeof(*e->proc_group));
    if (!e->proc_group)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const struct rm_process *p = rm_process_at(e->model, i);
        const struct comp *c = amf_find_comp(e->amf, p->name);
        e->proc_group[p->index] = c ? group_id(e, c->su->sg->name) : 0;
    }
    return 0;
}

static void events_data_free(struct events *e) {
    for (size_t i = 0; i < e->n_interests; i++)
        interest_free(e->interests[i].in);
    free(e->interests);
    hashmap_done(&e->group_ids, NULL);
    free(e->proc_group);
    free(e->prefix);
    free(e->notes);
    free(e->st);
    free(e->subs);
    free(e->pk_buf);
    free(e->pkts);
    free(e);
}

int events_new(const struct events_params *p, struct events **ret) {
    struct events *e = calloc(1, sizeof(*e));
    if (!e)
        return -ENOMEM;
    *e = (struct events){.amf = p->amf, .store = p->store, .q = p->queue, .model = p->model};
    e->prefix = strdup(p->prefix);
    e->notes = calloc(EVENTS_NOTE_MAX, sizeof(*e->notes));
    e->st = calloc(EVENTS_NOTE_MAX, sizeof(*e->st));
    size_t n_sgs, n = 0;
    struct sg *sgs = amf_sgs(p->amf, &n_sgs);
    for (size_t g = 0; g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++)
            n += sgs[g].sus[u].local ? sgs[g].sus[u].n_comps : 0;
    e->subs = calloc(n ?: 1, sizeof(*e->subs));
    for (size_t g = 0; e->subs && g < n_sgs; g++)
        for (size_t u = 0; u < sgs[g].n_sus; u++)
            for (size_t i = 0; sgs[g].sus[u].local && i < sgs[g].sus[u].n_comps; i++)
                e->subs[e->n_subs++] = sub_make(e, &sgs[g].sus[u].comps[i]);
    int r = e->prefix && e->notes && e->st && e->subs ? groups_index(e) : -ENOMEM;
    if (r >= 0)
        r = amf_observe(p->amf, &observer, e);
    if (r < 0) {
        events_data_free(e);
        return r;
    }
    uv_timer_init(p->loop, &e->flush);
    e->flush.data = e;
    *ret = e;
    return 0;
}

static void on_closed(uv_handle_t *h) {
    events_data_free(h->data);
}

struct events *events_free(struct events *e) {
    if (!e)
        return NULL;
    events_admin_free(e);
    amf_unobserve(e->amf, &observer, e);
    uv_close((uv_handle_t *)&e->flush, on_closed);
    return NULL;
}

uint64_t events_lost(const struct events *e) {
    return e ? e->lost : 0;
}
