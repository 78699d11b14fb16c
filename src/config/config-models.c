/* SPDX-License-Identifier: MIT */
/* Checks of each service group's redundancy model: the keys it takes, numbers that add up, SI dependencies. */
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"

/* A key of a model given to a group of another model. */
static void key_of_model(struct loader *l, const struct config_sg *sg, struct config_pos pos, const char *key,
                         const char *models) {
    if (pos.line > 0)
        config_diag_at(l, pos, "'%s' is for redundancy %s only; service group '%s' is %s", key, models, Q(sg->name),
                       config_redundancy_to_string(sg->redundancy));
}

static void keys_verify(struct loader *l, const struct config_sg *sg) {
    enum config_redundancy m = sg->redundancy;
    if (m != CONFIG_REDUNDANCY_N_PLUS_M) {
        key_of_model(l, sg, sg->active_sus_pos, "active-sus", "N+M");
        key_of_model(l, sg, sg->standby_sus_pos, "standby-sus", "N+M");
    }
    if (m == CONFIG_REDUNDANCY_2N || m == CONFIG_REDUNDANCY_NO_REDUNDANCY)
        key_of_model(l, sg, sg->max_active_pos, "max-active-sis-per-su", "N+M, N-way and N-way-active");
    if (m != CONFIG_REDUNDANCY_N_PLUS_M && m != CONFIG_REDUNDANCY_N_WAY)
        key_of_model(l, sg, sg->max_standby_pos, "max-standby-sis-per-su", "N+M and N-way");
    for (size_t i = 0; i < sg->n_sis; i++) {
        if (m != CONFIG_REDUNDANCY_N_WAY_ACTIVE)
            key_of_model(l, sg, sg->sis[i].active_assignments_pos, "active-assignments", "N-way-active");
        if (m != CONFIG_REDUNDANCY_N_WAY)
            key_of_model(l, sg, sg->sis[i].standby_assignments_pos, "standby-assignments", "N-way");
    }
}

static void numbers_verify(struct loader *l, const struct config_sg *sg) {
    const char *name = Q(sg->name);
    size_t n = sg->n_sus;
    switch (sg->redundancy) {
    case CONFIG_REDUNDANCY_2N:
        if (n == 1)
            config_diag_at(l, sg->pos, "service group '%s': redundancy 2N needs at least 2 service units, found 1",
                           name);
        break;
    case CONFIG_REDUNDANCY_N_PLUS_M:
        if (sg->active_sus == 0 || (size_t)sg->active_sus + sg->standby_sus > n)
            config_diag_at(l, sg->active_sus_pos.line ? sg->active_sus_pos : sg->redundancy_pos,
                           "service group '%s': redundancy N+M with %u active and %u standby service units needs %u "
                           "service units, found %zu",
                           name, sg->active_sus ?: 1, sg->standby_sus, (sg->active_sus ?: 1) + sg->standby_sus, n);
        break;
    case CONFIG_REDUNDANCY_N_WAY:
        if (n == 1)
            config_diag_at(l, sg->pos, "service group '%s': redundancy N-way needs at least 2 service units, found 1",
                           name);
        for (size_t i = 0; i < sg->n_sis && n > 1; i++)
            if (sg->sis[i].standby_assignments >= n)
                config_diag_at(l, sg->sis[i].standby_assignments_pos,
                               "service instance '%s': 'standby-assignments' %u needs %u service units besides the "
                               "ACTIVE one; service group '%s' has %zu in all",
                               Q(sg->sis[i].name), sg->sis[i].standby_assignments, sg->sis[i].standby_assignments, name,
                               n);
        break;
    case CONFIG_REDUNDANCY_N_WAY_ACTIVE:
        for (size_t i = 0; i < sg->n_sis; i++)
            if (sg->sis[i].active_assignments > n)
                config_diag_at(l, sg->sis[i].active_assignments_pos,
                               "service instance '%s': 'active-assignments' %u is more than the %zu service units of "
                               "service group '%s'",
                               Q(sg->sis[i].name), sg->sis[i].active_assignments, n, name);
        break;
    case CONFIG_REDUNDANCY_NO_REDUNDANCY:
        if (sg->n_sis > n)
            config_diag_at(l, sg->pos,
                           "service group '%s': with redundancy no-redundancy a service unit takes one service "
                           "instance at most: %zu service instances need at least %zu service units, found %zu",
                           name, sg->n_sis, sg->n_sis, n);
        break;
    default:
        break;
    }
}

static const struct config_si *si_named(const struct config_sg *sg, const char *name) {
    for (size_t i = 0; i < sg->n_sis; i++)
        if (streq(sg->sis[i].name, name))
            return &sg->sis[i];
    return NULL;
}

/* Depth-first from si along depends-on; state: 0 new, 1 on the path, 2 done.  Reports the first cycle. */
static bool cycle_from(struct loader *l, const struct config_sg *sg, size_t si, unsigned char *state) {
    state[si] = 1;
    const struct config_si *s = &sg->sis[si];
    for (size_t d = 0; d < s->n_depends_on; d++) {
        const struct config_si *sp = si_named(sg, s->depends_on[d]);
        if (!sp)
            continue;
        size_t j = (size_t)(sp - sg->sis);
        if (state[j] == 1) {
            config_diag_at(l, s->depends_on_pos, "service instance '%s': 'depends-on' makes a cycle through '%s'",
                           Q(s->name), Q(sp->name));
            return true;
        }
        if (state[j] == 0 && cycle_from(l, sg, j, state))
            return true;
    }
    state[si] = 2;
    return false;
}

static int depends_verify(struct loader *l, const struct config *c, const struct config_sg *sg) {
    for (size_t i = 0; i < sg->n_sis; i++) {
        const struct config_si *si = &sg->sis[i];
        for (size_t d = 0; d < si->n_depends_on; d++) {
            const char *name = si->depends_on[d];
            if (streq(name, si->name))
                config_diag_at(l, si->depends_on_pos, "service instance '%s' depends on itself", Q(name));
            else if (!si_named(sg, name))
                config_diag_at(l, si->depends_on_pos,
                               "service instance '%s': 'depends-on' names '%s', which is not a service instance of "
                               "service group '%s'",
                               Q(si->name), Q(name), Q(sg->name));
        }
    }
    _cleanup_free_ unsigned char *state = calloc(sg->n_sis ?: 1, 1);
    if (!state)
        return -ENOMEM;
    for (size_t i = 0; i < sg->n_sis; i++)
        if (state[i] == 0 && cycle_from(l, sg, i, state))
            break;
    return 0;
}

int config_models_verify(struct loader *l, const struct config *c) {
    for (size_t g = 0; g < c->n_sgs && !l->too_big; g++) {
        const struct config_sg *sg = &c->sgs[g];
        if (!config_diag_charge(l, sg->n_sis + 1))
            return 0;
        keys_verify(l, sg);
        numbers_verify(l, sg);
        int r = depends_verify(l, c, sg);
        if (r < 0)
            return r;
    }
    return 0;
}
