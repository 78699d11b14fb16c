/* SPDX-License-Identifier: MIT */
/*
 * Health checks of components: AMF-invoked ones (halod asks every period and
 * waits up to the timeout for the answer) and component-invoked ones (the
 * component confirms every period; missing a period plus the timeout is a
 * failure).
 *
 * A timeout only counts when halod could have seen the answer.  If halod's
 * own loop stalled (halod SIGSTOPped, or starved), its timers run late and
 * before it reads what its sockets hold: the answers the components sent in
 * time.  A timeout that fires more than HC_STALL_MSEC after it was due gives
 * the check one more timeout instead (once until the next answer).
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amf-internal.h"
#include "link-pack.h"
#include "log.h"
#include "macro.h"

#define HC_STALL_MSEC 250

/* Both timers must be closed before the struct goes; libuv does not promise
 * the order of close callbacks. */
static void hc_close_cb(uv_handle_t *h) {
    struct hc *hc = h->data;
    if (--hc->closing == 0) {
        free(hc->key);
        free(hc);
    }
}

static void hc_free(struct hc *hc) {
    struct invocation *inv = hc->pending ? amf_inv_find(hc->comp->amf, hc->pending) : NULL;
    if (inv)
        amf_inv_free(inv);
    uv_timer_stop(&hc->period);
    uv_timer_stop(&hc->timeout);
    hc->closing = 2;
    uv_close((uv_handle_t *)&hc->period, hc_close_cb);
    uv_close((uv_handle_t *)&hc->timeout, hc_close_cb);
}

void amf_hc_stop_all(struct comp *c) {
    while (c->hcs) {
        struct hc *hc = c->hcs;
        c->hcs = hc->next;
        hc_free(hc);
    }
}

static void hc_arm(struct hc *hc, uint64_t msec);

static void on_hc_timeout(uv_timer_t *t) {
    struct hc *hc = t->data;
    char buf[160], d[32];
    uint64_t late = uv_now(t->loop) - hc->due;
    if (late > HC_STALL_MSEC && !hc->grace) {
        const struct config_healthcheck *h = &hc->comp->cfg->healthcheck;
        uint64_t again = (hc->invoked == HALO_HC_AMF_INVOKED ? h->timeout : h->period + h->timeout) / 1000;
        log_warning("halod's loop stalled for %" PRIu64 " ms: health check '%s' of '%s' gets another %" PRIu64 " ms",
                    late, hc->key, hc->comp->name, again);
        hc->grace = true;
        struct invocation *inv = hc->pending ? amf_inv_find(hc->comp->amf, hc->pending) : NULL;
        if (inv)
            amf_inv_extend(inv, (again + 1000) * USEC_PER_MSEC);
        hc_arm(hc, again);
        return;
    }
    snprintf(buf, sizeof(buf), "missed health check '%s' (no answer within %s)", hc->key,
             format_duration(d, sizeof(d), hc->comp->cfg->healthcheck.timeout));
    hc->comp->hc_failures++;
    amf_comp_recover(hc->comp, buf, hc->recovery);
}

static void on_hc_period(uv_timer_t *t) {
    struct hc *hc = t->data;
    struct comp *c = hc->comp;
    if (hc->pending || !c->conn)
        return; /* the previous check is still out; its timeout decides */
    struct invocation *inv = amf_inv_new(c, INV_HEALTHCHECK, c->cfg->healthcheck.timeout + USEC_PER_SEC);
    if (!inv)
        return;
    inv->hc = hc;
    hc->pending = inv->id;
    hc_arm(hc, c->cfg->healthcheck.timeout / 1000);
    uint8_t buf[LINK_MSG_MAX];
    amf_comp_send(c, buf, link_pack_healthcheck(inv->id, c->name, hc->key, buf, sizeof(buf)));
}

struct hc *amf_hc_find(struct comp *c, const char *key) {
    for (struct hc *hc = c->hcs; hc; hc = hc->next)
        if (streq(hc->key, key))
            return hc;
    return NULL;
}

static void hc_arm(struct hc *hc, uint64_t msec) {
    hc->due = uv_now(hc->comp->amf->loop) + msec;
    uv_timer_start(&hc->timeout, on_hc_timeout, msec, 0);
}

/* A component-invoked check was confirmed: the next must come within a period plus the timeout. */
void amf_hc_rearm(struct hc *hc) {
    const struct config_healthcheck *h = &hc->comp->cfg->healthcheck;
    hc->grace = false;
    hc_arm(hc, (h->period + h->timeout) / 1000);
}

/* An AMF-invoked check was answered. */
void amf_hc_answered(struct hc *hc) {
    hc->pending = 0;
    hc->grace = false;
    uv_timer_stop(&hc->timeout);
}

int amf_hc_add(struct comp *c, const char *key, halo_hc_invoked invoked, halo_recovery recovery) {
    if (amf_hc_find(c, key))
        return -HALO_EEXIST;
    struct hc *hc = calloc(1, sizeof(*hc));
    if (!hc || !(hc->key = strdup(key))) {
        free(hc);
        return -ENOMEM;
    }
    hc->comp = c;
    hc->invoked = invoked;
    hc->recovery = recovery;
    uv_timer_init(c->amf->loop, &hc->period);
    uv_timer_init(c->amf->loop, &hc->timeout);
    hc->period.data = hc->timeout.data = hc;
    hc->next = c->hcs;
    c->hcs = hc;
    uint64_t period = c->cfg->healthcheck.period / 1000;
    if (invoked == HALO_HC_AMF_INVOKED)
        uv_timer_start(&hc->period, on_hc_period, period, period);
    else
        amf_hc_rearm(hc);
    log_debug("Health check '%s' of '%s' started (%s-invoked)", key, c->name,
              invoked == HALO_HC_AMF_INVOKED ? "AMF" : "component");
    return 0;
}

int amf_hc_remove(struct comp *c, const char *key) {
    for (struct hc **p = &c->hcs; *p; p = &(*p)->next)
        if (streq((*p)->key, key)) {
            struct hc *hc = *p;
            *p = hc->next;
            hc_free(hc);
            return 0;
        }
    return -ENOENT;
}
