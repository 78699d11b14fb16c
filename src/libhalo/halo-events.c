/* SPDX-License-Identifier: MIT */
/* Interest filters on the object-state notes (include/halo/events.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "halo-internal.h"
#include "halo/events.h"
#include "macro.h"

/* What halod's link check and rule check accept, checked here so the caller hears -EINVAL at once. */
static bool rule_ok(const halo_interest_rule *r) {
    const char *v = r->value ? r->value : "";
    if (r->kind == HALO_INTEREST_ALL || r->kind == HALO_INTEREST_GROUP || r->kind == HALO_INTEREST_POOL)
        return !*v;
    if (r->kind != HALO_INTEREST_OBJECT && r->kind != HALO_INTEREST_PREFIX)
        return false;
    if (!*v || strlen(v) >= HALO_OBJECT_MAX || (r->kind == HALO_INTEREST_OBJECT && !strchr(v, ':')))
        return false;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '/')
            return false;
    return true;
}

static void rules_free(Halo__Link__InterestRule **rules, size_t n) {
    for (size_t i = 0; rules && i < n; i++) {
        if (rules[i])
            free(rules[i]->value);
        free(rules[i]);
    }
    free(rules);
}

/* A copy as the link message wants it, kept by the handle for a reconnection. */
static int rules_copy(const halo_interest_rule *rules, size_t n, Halo__Link__InterestRule ***ret) {
    Halo__Link__InterestRule **v = calloc(n ?: 1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        v[i] = malloc(sizeof(*v[i]));
        if (!v[i]) {
            rules_free(v, n);
            return -ENOMEM;
        }
        halo__link__interest_rule__init(v[i]);
        v[i]->kind = (Halo__Link__InterestRule__Kind)rules[i].kind;
        v[i]->value = strdup(rules[i].value ? rules[i].value : "");
        if (!v[i]->value) {
            rules_free(v, n);
            return -ENOMEM;
        }
    }
    *ret = v;
    return 0;
}

struct interest_commit {
    Halo__Link__InterestRule **rules;
    size_t n;
};

/* halod took the rules: the handle keeps them (under the lock). */
static void commit_interest(halo *h, int error, const Halo__Link__Reply *reply, void *arg) {
    struct interest_commit *c = arg;
    if (error < 0)
        return;
    rules_free(h->interest, h->n_interest);
    h->interest = c->rules;
    h->n_interest = c->n;
    h->interest_set = true;
    c->rules = NULL;
}

HALO_EXPORT int halo_object_interest(halo *h, const halo_interest_rule *rules, size_t n) {
    Halo__Link__ObjectInterest oi = HALO__LINK__OBJECT_INTEREST__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;

    assert_return(h, -EINVAL);
    assert_return(n <= HALO_INTEREST_RULES_MAX && (rules || n == 0), -EINVAL);
    for (size_t i = 0; i < n; i++)
        if (!rule_ok(&rules[i]))
            return -EINVAL;
    struct interest_commit c = {.n = n};
    int r = rules_copy(rules, n, &c.rules);
    if (r < 0)
        return r;
    oi.rules = c.rules;
    oi.n_rules = n;
    m.body_case = HALO__LINK__MSG__BODY_OBJECT_INTEREST;
    m.object_interest = &oi;
    r = halo__request_full(h, &m, &oi.seq, NULL, commit_interest, &c, NULL);
    rules_free(c.rules, c.n);
    return r;
}

int halo__events_resume(halo *h, const struct timespec *deadline) {
    Halo__Link__ObjectInterest oi = HALO__LINK__OBJECT_INTEREST__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    int e = 0;

    if (!h->interest_set)
        return 0;
    oi.rules = h->interest;
    oi.n_rules = h->n_interest;
    m.body_case = HALO__LINK__MSG__BODY_OBJECT_INTEREST;
    m.object_interest = &oi;
    return halo__request_resume(h, &m, &oi.seq, deadline, &e);
}

void halo__events_free(halo *h) {
    rules_free(h->interest, h->n_interest);
    h->interest = NULL;
    h->n_interest = 0;
}
