/* SPDX-License-Identifier: MIT */
/*
 * halo_dispatch(): the queue of what halod sent for the application, the
 * selection object that says when there is some, and the callbacks that
 * deliver it.
 *
 * The selection object is an epoll fd watching the socket and an eventfd that
 * is kept signalled exactly while the queue is non-empty, so it polls readable
 * while a callback is pending, whether or not its packet was read already.
 * The link-state callbacks are not queued but kept as two pending flags (lost,
 * then the outcome), delivered before any queued message: everything queued
 * belongs to the newest link.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include "halo-internal.h"
#include "macro.h"

/* ---- the queue and the selection object ---------------------------------- */

/*
 * Keeps the eventfd signalled exactly while halo_dispatch() has something to
 * do at once: a link-state callback, a queued message (held back while the
 * link is not up: it belongs to a link still being resumed), the link gone
 * for good, or halo_close() (which wants every poller awake).
 */
void halo__dispatch_update(halo *h) {
    bool on = h->closed || h->state == LINK_DOWN || h->lost_pending || h->outcome_pending ||
              (!LIST_IS_EMPTY(&h->queue) && h->state == LINK_UP);
    eventfd_t v;

    /* A dispatcher takes what is queued itself; signalling it on every push and clearing it on every
     * pop would cost two system calls per message. */
    if (h->dispatching && !h->closed)
        return;
    if (on == h->evfd_on || h->evfd < 0)
        return;
    if (on)
        (void)eventfd_write(h->evfd, 1);
    else
        (void)eventfd_read(h->evfd, &v);
    h->evfd_on = on;
}

void halo__dispatch_push(halo *h, struct queued *q, LinkMsg *m) {
    q->msg = m;
    LIST_APPEND(queue, &h->queue, q);
    halo__dispatch_update(h);
}

static LinkMsg *queue_pop(halo *h) {
    struct queued *q = LIST_POP(queue, &h->queue);
    if (!q)
        return NULL;
    halo__dispatch_update(h);
    LinkMsg *m = q->msg;
    free(q);
    return m;
}

/* Drops every queued message: its link is gone, so nobody could hear an answer. */
void halo__dispatch_flush(halo *h) {
    LinkMsg *m;
    while ((m = queue_pop(h)))
        link_msg_free(m);
}

/* Records a link-state callback for halo_dispatch(). */
void halo__dispatch_notify(halo *h, halo_link_state state, int error) {
    if (!h->cb.link_state)
        return;
    if (state != HALO_LINK_LOST) {
        h->outcome_pending = state;
        h->outcome_error = error;
    } else if (h->outcome_pending == HALO_LINK_RESTORED)
        /* The application has not heard of the restoration yet: for it, this
         * is the same outage going on, and it hears of its end later. */
        h->outcome_pending = 0;
    else {
        h->lost_pending = true;
        h->lost_error = error;
    }
    halo__dispatch_update(h);
}

/* Takes the next pending link-state callback, if any. */
static bool take_link_event(halo *h, halo_link_state *ret_state, int *ret_error) {
    if (h->lost_pending) {
        h->lost_pending = false;
        *ret_state = HALO_LINK_LOST;
        *ret_error = h->lost_error;
    } else if (h->outcome_pending) {
        *ret_state = h->outcome_pending;
        *ret_error = h->outcome_error;
        h->outcome_pending = 0;
    } else
        return false;
    halo__dispatch_update(h);
    return true;
}

/* ---- dispatch ------------------------------------------------------------ */

/* Answers a callback message on the application's behalf, without waiting for a Reply. */
static void auto_respond(halo *h, uint64_t invocation, int error) {
    Halo__Link__Response resp = HALO__LINK__RESPONSE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    struct timespec deadline = deadline_after_msec(CALL_TIMEOUT_MSEC);

    resp.invocation = invocation;
    resp.error = error;
    m.body_case = HALO__LINK__MSG__BODY_RESPONSE;
    m.response = &resp;
    pthread_mutex_lock(&h->lock);
    if (h->state == LINK_UP)
        (void)halo__link_send(h, &m, &deadline);
    pthread_mutex_unlock(&h->lock);
}

static const char *empty_to_null(const char *s) {
    return s && *s ? s : NULL;
}

/* Runs the callback for m, lock not held.  Returns true if an application callback ran. */
static bool run_callback(halo *h, const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_CSI_SET: {
        const Halo__Link__CsiSet *c = m->csi_set;
        halo_csi_attr attrs[LINK_ATTRS_MAX]; /* link_validate() bounds n_attrs */
        halo__lease_refresh();
        for (size_t i = 0; i < c->n_attrs; i++)
            attrs[i] = (halo_csi_attr){.name = c->attrs[i]->name, .value = c->attrs[i]->value};
        halo_csi_descriptor d = {
            .flags = c->flags,
            .csi_name = (c->flags & HALO_CSI_TARGET_ALL) ? NULL : c->csi,
            .si_name = empty_to_null(c->si),
            .n_attrs = c->n_attrs,
            .attrs = c->n_attrs ? attrs : NULL,
            .transition = (halo_csi_transition)c->transition,
            .active_comp = empty_to_null(c->active_comp),
        };
        h->cb.csi_set(h, c->invocation, c->comp, (halo_ha_state)c->ha_state, &d, h->userdata);
        return true;
    }
    case HALO__LINK__MSG__BODY_CSI_REMOVE: {
        const Halo__Link__CsiRemove *c = m->csi_remove;
        if (!h->cb.csi_remove) {
            /* A component without the callback holds nothing to release. */
            auto_respond(h, c->invocation, 0);
            return false;
        }
        h->cb.csi_remove(h, c->invocation, c->comp, (c->flags & HALO_CSI_TARGET_ALL) ? NULL : c->csi, c->flags,
                         h->userdata);
        return true;
    }
    case HALO__LINK__MSG__BODY_TERMINATE:
        h->cb.terminate(h, m->terminate->invocation, m->terminate->comp, h->userdata);
        return true;
    case HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE:
    case HALO__LINK__MSG__BODY_PROXIED_CLEANUP: {
        bool cleanup = m->body_case == HALO__LINK__MSG__BODY_PROXIED_CLEANUP;
        halo_proxied_cb cb = cleanup ? h->proxied_cleanup : h->proxied_instantiate;
        uint64_t inv = cleanup ? m->proxied_cleanup->invocation : m->proxied_instantiate->invocation;
        const char *comp = cleanup ? m->proxied_cleanup->comp : m->proxied_instantiate->comp;
        if (!cb) {
            /* Not a proxy, or one with nothing to clean up. */
            auto_respond(h, inv, cleanup ? 0 : -EOPNOTSUPP);
            return false;
        }
        cb(h, inv, comp, h->userdata);
        return true;
    }
    case HALO__LINK__MSG__BODY_HEALTHCHECK:
        if (!h->cb.healthcheck) {
            /* halod runs a check nobody can answer: say so, so it recovers now
             * rather than after the timeout. */
            auto_respond(h, m->healthcheck->invocation, -EOPNOTSUPP);
            return false;
        }
        h->cb.healthcheck(h, m->healthcheck->invocation, m->healthcheck->comp, m->healthcheck->key, h->userdata);
        return true;
    case HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY: {
        const Halo__Link__PgTrackNotify *p = m->pg_track_notify;
        halo_pg_member members[LINK_ATTRS_MAX]; /* link_validate() bounds n_members */
        if (!h->cb.pg_track)
            return false;
        for (size_t i = 0; i < p->n_members; i++)
            members[i] = (halo_pg_member){
                .comp_name = p->members[i]->comp,
                .ha_state = (halo_ha_state)p->members[i]->ha_state,
                .change = (halo_pg_change)p->members[i]->change,
            };
        h->cb.pg_track(h, p->csi, p->n_members ? members : NULL, p->n_members, negative(p->error), h->userdata);
        return true;
    }
    case HALO__LINK__MSG__BODY_OBJECT_STATE_NOTE: {
        const Halo__Link__ObjectStateNote *note = m->object_state_note;
        if (!h->cb.object_states || note->n_states == 0)
            return false;
        halo_object_state *st = malloc(note->n_states * sizeof(*st)); /* link_validate() bounds it */
        if (!st)
            return false;
        for (size_t i = 0; i < note->n_states; i++)
            halo__amf_object_state_copy(&st[i], note->states[i]);
        h->cb.object_states(h, st, note->n_states, h->userdata);
        free(st);
        return true;
    }
    case HALO__LINK__MSG__BODY_CDB_CHANGE:
        return halo__cdb_change(h, m->cdb_change);
    case HALO__LINK__MSG__BODY_CKPT_UPDATE:
        return halo__ckpt_update(h, m->ckpt_update);
    case HALO__LINK__MSG__BODY_NAME_NOTE:
        return halo__name_note(h, m->name_note);
    case HALO__LINK__MSG__BODY_EVT_EVENT:
        return halo__evt_event(h, m->evt_event);
    case HALO__LINK__MSG__BODY_TXN_DONE:
        return halo__txn_done(h, m->txn_done);
    case HALO__LINK__MSG__BODY_TXN_PREPARE:
        return halo__txn_prepare(h, m->txn_prepare);
    case HALO__LINK__MSG__BODY_TXN_OUTCOME:
        return halo__txn_outcome(h, m->txn_outcome);
    case HALO__LINK__MSG__BODY_RECOVERY_NOTE: {
        const Halo__Link__RecoveryNote *rn = m->recovery_note;
        if (!h->recovery_cb)
            return false;
        halo_object_state *st =
            rn->n_events ? malloc(rn->n_events * sizeof(*st)) : NULL; /* bounded by link_validate() */
        if (rn->n_events && !st)
            return false;
        for (size_t i = 0; i < rn->n_events; i++)
            halo__amf_object_state_copy(&st[i], rn->events[i]);
        halo_participant pa[LINK_PARTICIPANTS_MAX]; /* bounded by link_validate() */
        for (size_t i = 0; i < rn->n_participants; i++)
            pa[i] = (halo_participant){.object = rn->participants[i]->object,
                                       .name = rn->participants[i]->name,
                                       .node = rn->participants[i]->node,
                                       .state = rn->participants[i]->state};
        halo_recovery_note note = {.epoch = rn->epoch,
                                   .state = rn->state,
                                   .reason = rn->reason,
                                   .events = st,
                                   .n_events = rn->n_events,
                                   .nr_failures = rn->nr_failures,
                                   .last = rn->last,
                                   .participants = rn->n_participants ? pa : NULL,
                                   .n_participants = rn->n_participants};
        h->recovery_cb(h, &note, h->userdata);
        free(st);
        return true;
    }
    default:
        return false; /* is_callback() let nothing else in */
    }
}

HALO_EXPORT int halo_dispatch(halo *h, halo_dispatch_flags flags) {
    int n = 0, r;

    assert_return(h, -EINVAL);
    assert_return(flags == HALO_DISPATCH_ONE || flags == HALO_DISPATCH_ALL || flags == HALO_DISPATCH_BLOCKING, -EINVAL);
    r = halo__enter(h);
    if (r < 0)
        return r;
    h->dispatching++;
    /* The socket was read to its end (EAGAIN) in this call: what arrives later wakes the caller's
     * poll again, so there is no need to ask the socket once more before returning. */
    bool drained = false;

    for (;;) {
        halo_link_state state;
        LinkMsg *m = NULL;
        bool ran = false;
        int error;

        if (h->closed) {
            r = -EBADF;
            break;
        }
        /* Link-state changes first: every queued message belongs to the newest link. */
        if (take_link_event(h, &state, &error)) {
            pthread_mutex_unlock(&h->lock);
            h->cb.link_state(h, state, error, h->userdata);
            pthread_mutex_lock(&h->lock);
            ran = true;
        } else if (h->state == LINK_UP && (m = queue_pop(h))) {
            pthread_mutex_unlock(&h->lock);
            ran = run_callback(h, m);
            link_msg_free(m);
            pthread_mutex_lock(&h->lock);
        }
        if (ran || m) {
            n += ran;
            if (h->closed) {
                r = -EBADF;
                break;
            }
            if (ran && flags == HALO_DISPATCH_ONE) {
                r = n;
                break;
            }
            continue;
        }
        if (h->state == LINK_DOWN) {
            r = -ENOTCONN;
            break;
        }

        if (h->state == LINK_RECONNECTING && !h->reading && msec_until(&h->next_attempt) == 0) {
            halo__link_reconnect(h);
            continue;
        }

        if (h->state == LINK_UP && !h->reading && !drained) {
            /* Non-blocking, under the lock: nobody else reads meanwhile. */
            r = halo__link_pump(h);
            if (r == -ENOMEM) {
                r = n > 0 ? n : -ENOMEM;
                break;
            }
            drained = r >= 0 && r < PUMP_BATCH;
            if (r != 0)
                continue; /* read something, or the link is gone */
        }
        if (flags != HALO_DISPATCH_BLOCKING) {
            r = n;
            break;
        }

        if ((h->state == LINK_UP || h->state == LINK_RECONNECTING) && !h->reading) {
            /* Wait for a packet, a callback queued by another thread's call,
             * the next reconnection attempt, or halo_close(). */
            h->dispatching--;
            halo__dispatch_update(h); /* others polling must see what is queued while this thread sleeps */
            pthread_mutex_unlock(&h->lock);
            r = poll_one(h->epfd, POLLIN, NULL);
            pthread_mutex_lock(&h->lock);
            h->dispatching++;
            drained = false;
            if (r < 0)
                break;
            continue;
        }

        /* Another thread reads or reconnects: it queues what arrives and wakes us when done. */
        h->dispatching--;
        halo__dispatch_update(h);
        pthread_cond_wait(&h->cond, &h->lock);
        h->dispatching++;
        drained = false;
    }

    h->dispatching--;
    halo__dispatch_update(h); /* what is left (HALO_DISPATCH_ONE) keeps the selection object readable */
    halo__leave(h);
    return r;
}
