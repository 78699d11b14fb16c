/* SPDX-License-Identifier: MIT */
/*
 * Invocations: the callbacks halod asks of a component (CSI set, CSI remove,
 * terminate, health check; a proxy's instantiate and cleanup of a proxied
 * component), each with an id, a timeout, and the answer that completes it
 * (amf_response()).
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "amf-internal.h"
#include "log.h"
#include "server.h"

static void inv_close_cb(uv_handle_t *h) {
    free(h->data);
}

void amf_inv_free(struct invocation *inv) {
    LIST_REMOVE(invs, &inv->amf->invs, inv);
    uv_timer_stop(&inv->timer);
    uv_close((uv_handle_t *)&inv->timer, inv_close_cb);
}

struct invocation *amf_inv_find(struct amf *a, uint64_t id) {
    struct invocation *i;
    LIST_FOREACH (invs, i, &a->invs)
        if (i->id == id)
            return i;
    return NULL;
}

static void on_inv_timeout(uv_timer_t *t) {
    struct invocation *inv = t->data;
    struct comp *c = inv->comp;
    char buf[128];
    switch (inv->kind) {
    case INV_CSI_SET:
        snprintf(buf, sizeof(buf), "did not answer CSI set %s in time", halo_ha_state_to_string(inv->state));
        amf_comp_fail(c, buf);
        break;
    case INV_CSI_REMOVE:
        amf_comp_fail(c, "did not answer CSI remove in time");
        break;
    case INV_TERMINATE:
    case INV_HEALTHCHECK:
    case INV_PROXIED_INSTANTIATE:
    case INV_PROXIED_CLEANUP:
        amf_inv_free(inv); /* the instantiate, terminate and health check timers decide */
        break;
    }
}

struct invocation *amf_inv_new(struct comp *c, enum inv_kind kind, usec_t timeout) {
    struct amf *a = c->amf;
    struct invocation *inv = calloc(1, sizeof(*inv));
    if (!inv)
        return NULL;
    inv->amf = a;
    inv->id = a->next_inv++;
    inv->kind = kind;
    inv->comp = c;
    uv_timer_init(a->loop, &inv->timer);
    inv->timer.data = inv;
    uv_timer_start(&inv->timer, on_inv_timeout, (timeout + 999) / 1000, 0);
    LIST_PREPEND(invs, &a->invs, inv);
    return inv;
}

static void on_inv_succeeded(uv_timer_t *t) {
    amf_inv_complete(t->data, 0, true);
}

void amf_inv_succeed_soon(struct invocation *inv) {
    inv->answered = true;
    uv_timer_start(&inv->timer, on_inv_succeeded, 0, 0);
}

/* Gives an invocation in flight timeout more from now. */
void amf_inv_extend(struct invocation *inv, usec_t timeout) {
    uv_timer_start(&inv->timer, on_inv_timeout, (timeout + 999) / 1000, 0);
}

void amf_inv_cancel_comp(struct comp *c) {
    struct invocation *i, *next;
    LIST_FOREACH_SAFE (invs, i, next, &c->amf->invs)
        if (i->comp == c)
            amf_inv_free(i);
}

void amf_response(struct amf *a, struct conn *conn, uint64_t seq, uint64_t invocation, int error,
                  bool quiescing_complete) {
    struct invocation *inv = amf_inv_find(a, invocation);
    if (!inv || amf_proxied_conn(inv->comp, inv->kind) != conn) {
        log_debug("Response for unknown invocation %" PRIu64 " from %s", invocation, server_conn_name(conn));
        if (seq)
            (void)server_conn_reply(conn, seq, -HALO_EBADINVOCATION, NULL);
        return;
    }
    if (seq) {
        (void)server_conn_reply(conn, seq, 0, NULL);
        /* A reply that cannot be sent closes the link, which fails the
         * component and frees its invocations, this one among them. */
        inv = amf_inv_find(a, invocation);
        if (!inv)
            return;
    }
    amf_inv_complete(inv, error, quiescing_complete);
}

void amf_inv_complete(struct invocation *inv, int error, bool quiescing_complete) {
    struct comp *c = inv->comp;
    struct si *si = inv->si;
    struct su *su = inv->su;
    char buf[160];

    switch (inv->kind) {
    case INV_CSI_SET:
        if (error != 0) {
            snprintf(buf, sizeof(buf), "answered CSI set %s with error: %s", halo_ha_state_to_string(inv->state),
                     halo_strerror(error));
            amf_comp_fail(c, buf);
            return;
        }
        if (inv->state == HALO_HA_QUIESCING && !quiescing_complete) {
            inv->acked = true; /* wait for quiescing complete */
            return;
        }
        amf_inv_free(inv);
        amf_asg_step_done(si, su);
        return;
    case INV_CSI_REMOVE:
        amf_inv_free(inv);
        if (error != 0) {
            amf_comp_fail(c, "failed a CSI remove");
            return;
        }
        amf_asg_step_done(si, su);
        amf_comp_removal_step(c); /* a reload removes it: its stop follows its CSI removes */
        return;
    case INV_TERMINATE:
        amf_inv_free(inv);
        /* Now it should exit; the terminate timer still runs and kills it if not. */
        if (amf_comp_proxied(c))
            amf_proxied_answered(c, INV_TERMINATE, error); /* no process to exit: done */
        return;
    case INV_PROXIED_INSTANTIATE:
    case INV_PROXIED_CLEANUP: {
        enum inv_kind kind = inv->kind;
        amf_inv_free(inv);
        amf_proxied_answered(c, kind, error);
        return;
    }
    case INV_HEALTHCHECK: {
        struct hc *hc = inv->hc;
        amf_inv_free(inv);
        amf_hc_answered(hc);
        if (error != 0) {
            snprintf(buf, sizeof(buf), "failed health check '%s'", hc->key);
            c->hc_failures++;
            amf_comp_recover(c, buf, hc->recovery);
        }
        return;
    }
    }
}
