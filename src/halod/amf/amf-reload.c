/* SPDX-License-Identifier: MIT */
/*
 * A reloaded description, as far as the AMF applies it live: a CSI whose attributes changed
 * goes again, by a CSI set with the state it holds, to the components of this node that hold
 * it; a new service group joins the model and starts.  What else a reload may change is
 * decided above (manager-reload.c), which refuses it.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"

/* Whether a holds a role that a CSI set may repeat: confirmed ACTIVE or STANDBY, nothing in flight. */
static bool steady(const struct assignment *a) {
    return a->su && a->su->local && a->confirmed && !a->pending && !a->removing && a->state == a->target &&
           (a->state == HALO_HA_ACTIVE || a->state == HALO_HA_STANDBY);
}

int amf_csi_reload_check(struct amf *a, const char *si_name) {
    struct si *si = amf_find_si(a, si_name);
    if (!si)
        return -HALO_EUNKNOWN;
    for (size_t i = 0; i < si->n_asg; i++) {
        const struct assignment *as = &si->asg[i];
        if (as->su && as->su->local && (as->pending || as->removing || as->state != as->target))
            return -EBUSY;
    }
    return 0;
}

int amf_csi_reload(struct amf *a, const char *si_name, const char *csi_name) {
    const struct config_csi *csi = NULL;
    struct si *si = amf_find_csi(a, csi_name, &csi);
    if (!si || !streq(si->name, si_name))
        return -HALO_EUNKNOWN;
    int sent = 0;
    for (size_t i = 0; i < si->n_asg; i++) {
        struct assignment *as = &si->asg[i];
        if (!steady(as))
            continue;
        struct comp *c = amf_csi_comp(as->su, csi);
        /* A non-SA-aware or OCF component reads its CSI's attributes when it starts: not told now. */
        if (!c || !amf_comp_sa_aware(c) || !c->conn)
            continue;
        log_info("CSI '%s' of '%s' changed: CSI set %s to '%s' again", csi->name, si->name,
                 halo_ha_state_to_string(as->state), c->name);
        as->pending++;
        int r = amf_asg_send_csi_set(si, c, csi, as->state, HALO_CSI_STILL_ACTIVE,
                                     as->state == HALO_HA_STANDBY ? amf_asg_active_comp(si, csi) : NULL);
        if (r < 0) {
            as->pending--;
            return r;
        }
        if (as->su) /* else the send failed, which failed the unit and dropped its assignment */
            sent++;
    }
    return sent;
}

int amf_sg_add(struct amf *a, const struct config *config, const struct config_sg *cg) {
    if (a->n_sgs >= a->cap_sgs)
        return -ENOSPC;
    for (size_t g = 0; g < a->n_sgs; g++)
        if (streq(a->sgs[g].name, cg->name))
            return -HALO_EEXIST;
    struct sg *sg = &a->sgs[a->n_sgs];
    int r = amf_sg_alloc(sg, cg);
    if (r < 0) {
        amf_sg_free(sg);
        *sg = (struct sg){0};
        return r;
    }
    amf_sg_init(a, sg, cg);
    a->n_sgs++;
    a->config = config; /* the same nodes; the new group's description lives there */
    for (size_t u = 0; u < sg->n_sus; u++)
        for (size_t i = 0; i < sg->sus[u].n_comps; i++) {
            struct comp *c = &sg->sus[u].comps[i];
            c->proxy = c->cfg->proxy ? amf_find_comp(a, c->cfg->proxy) : NULL;
        }
    log_info("Service group '%s' added (%s, %zu units, %zu SIs)", sg->name, sg->ops->name, sg->n_sus, sg->n_sis);
    if (a->ready && !a->stopping)
        for (size_t u = 0; u < sg->n_sus; u++)
            for (size_t i = 0; sg->sus[u].local && i < sg->sus[u].n_comps; i++)
                amf_comp_instantiate(&sg->sus[u].comps[i]);
    amf_sg_evaluate(sg);
    return 0;
}
