/* SPDX-License-Identifier: MIT */
/* Whether a lease that ended ended by the rules: the raft term, and every member seen in it. */

/*
 * A lease ends when its holder revokes it or when the etcd leader that tracks
 * its TTL finds it expired; either way its holder could not renew it for a
 * TTL, and halod builds its fencing on that (docs/design.md, "Self-fencing").
 * etcd before the fix of its issues #12528 and #15247 (PR #16822; Debian 12
 * ships 3.4.23) breaks it: a leader that stalls (SIGSTOP, a long fsync, a
 * frozen VM) while the others elect a new one still believes, when it runs
 * again, that it is the leader, finds every lease it tracked expired by its
 * stale clock, and its revocations are forwarded to the new leader and
 * applied.  A node whose lease ends that way may have renewed it a moment
 * before and still run its ACTIVE processes.
 *
 * Such a revocation is committed in a raft term later than the one the stale
 * leader led, and only within a short time of that member running again.  So:
 * every answer's header carries the raft term; when it grows (and at the
 * start), the lease ends stop being trusted; each member is asked its status
 * (POST /v3/maintenance/status, every STORE_ETCD_MEMBER_RETRY_MSEC until it
 * answers) until every one has answered in the new term (a member that has
 * stepped down, or never led); STORE_ETCD_SETTLE_MSEC later a linearizable
 * read gives the revision from which lease ends are trusted again.  A member
 * that does not answer (stopped, down, cut off) keeps them untrusted: it may
 * be a stalled leader.  The caller then waits a TTL before it counts a node
 * whose lease ended as fenced (cluster-sync.c).
 */

#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "macro.h"

static void members_check(struct store_etcd *s);

static int64_t header_term(const json_t *response) {
    return etcd_json_int64(json_object_get(response, "header"), "raft_term");
}

static void term_seen(struct store_etcd *s, int64_t term) {
    if (term <= s->term)
        return;
    s->term = term;
    s->settled_rev = 0;
    s->grace_term = 0;
    s->settle_term = 0;
    if (s->members)
        members_check(s);
}

void etcd_members_seen(struct store_etcd *s, const json_t *response) {
    term_seen(s, header_term(response));
}

bool etcd_members_trusted(const struct store_etcd *s, int64_t revision) {
    return s->settled_rev > 0 && revision > s->settled_rev;
}

static void on_members_timer(uv_timer_t *t);

static bool all_in_term(const struct store_etcd *s) {
    for (size_t i = 0; i < s->n_endpoints; i++)
        if (s->members[i].term < s->term)
            return false;
    return true;
}

static void member_ask(struct store_etcd *s, size_t i) {
    struct etcd_member *m = &s->members[i];
    if (m->easy || s->freeing)
        return;
    etcd_buf_done(&m->resp);
    m->easy =
        etcd_curl_post(s, s->endpoints[i], "/v3/maintenance/status", "{}", &m->resp, STORE_ETCD_READ_TIMEOUT_MSEC);
}

/* Asks the members not seen in the current term; once all are, waits the
 * grace before the settling read. */
static void members_check(struct store_etcd *s) {
    if (s->freeing || s->term == 0)
        return;
    if (!all_in_term(s)) {
        for (size_t i = 0; i < s->n_endpoints; i++)
            if (s->members[i].term < s->term)
                member_ask(s, i);
        (void)uv_timer_start(&s->members_timer, on_members_timer, STORE_ETCD_MEMBER_RETRY_MSEC, 0);
        return;
    }
    if (s->grace_term == s->term)
        return; /* the grace runs, or is over */
    s->grace_term = s->term;
    (void)uv_timer_start(&s->members_timer, on_members_timer, STORE_ETCD_SETTLE_MSEC, 0);
}

static void on_settled(store *st, int error, const store_result *r, void *userdata) {
    struct store_etcd *s = (struct store_etcd *)st;
    int64_t term = (int64_t)(intptr_t)userdata;
    if (error == -ECANCELED || s->freeing)
        return;
    if (term != s->term || s->settle_term != term)
        return; /* the term moved meanwhile: a new check runs */
    s->settle_term = 0;
    if (error < 0 || r->revision <= 0) {
        s->grace_term = 0; /* read again after the retry delay */
        (void)uv_timer_start(&s->members_timer, on_members_timer, STORE_ETCD_MEMBER_RETRY_MSEC, 0);
        return;
    }
    s->settled_rev = r->revision;
}

static void on_members_timer(uv_timer_t *t) {
    struct store_etcd *s = t->data;
    if (s->freeing)
        return;
    if (!all_in_term(s) || s->grace_term != s->term) {
        members_check(s);
        store_etcd_dispatch(s);
        return;
    }
    /* The grace is over: what the store holds now is the line; a lease end
     * after it is no stale leader's. */
    struct etcd_request *r;
    if (s->settle_term == s->term || etcd_request_new(s, REQ_RANGE, "/v3/kv/range", etcd_json_revision_body(), &r) < 0)
        return;
    r->cb = on_settled;
    r->userdata = (void *)(intptr_t)s->term;
    s->settle_term = s->term;
    etcd_request_enqueue(r);
    store_etcd_dispatch(s);
}

bool etcd_members_transfer_done(struct store_etcd *s, CURL *e, CURLcode cc) {
    struct etcd_member *m = NULL;
    for (size_t i = 0; s->members && i < s->n_endpoints && !m; i++)
        if (s->members[i].easy == e)
            m = &s->members[i];
    if (!m)
        return false;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    etcd_curl_remove(s, &m->easy);
    if (cc == CURLE_OK && status == 200) {
        json_t *j = json_loadb(m->resp.data ? m->resp.data : "", m->resp.len, 0, NULL);
        int64_t term = header_term(j);
        json_decref(j);
        if (term > m->term)
            m->term = term;
        term_seen(s, term);
    }
    etcd_buf_done(&m->resp);
    if (cc == CURLE_OK && status == 200)
        members_check(s);
    else if (!uv_is_active((uv_handle_t *)&s->members_timer))
        /* Asked again at the retry, not now: a member that is down refuses at once, and asking it
         * again from here spun the loop (both halods at 100% CPU while a member was down, their
         * components missing health checks for want of a CPU: CI, 2026-12-08). */
        (void)uv_timer_start(&s->members_timer, on_members_timer, STORE_ETCD_MEMBER_RETRY_MSEC, 0);
    return true;
}

int etcd_members_new(struct store_etcd *s) {
    s->members = calloc(s->n_endpoints, sizeof(*s->members));
    if (!s->members)
        return -ENOMEM;
    (void)uv_timer_init(s->head.loop, &s->members_timer);
    s->members_timer.data = s;
    s->n_handles++;
    return 0;
}

static void on_members_timer_closed(uv_handle_t *h) {
    store_etcd_handle_closed(h->data);
}

void etcd_members_release(struct store_etcd *s) {
    for (size_t i = 0; s->members && i < s->n_endpoints; i++) {
        etcd_curl_remove(s, &s->members[i].easy);
        etcd_buf_done(&s->members[i].resp);
    }
    if (s->members)
        uv_close((uv_handle_t *)&s->members_timer, on_members_timer_closed);
}
