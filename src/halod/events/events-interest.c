/* SPDX-License-Identifier: MIT */
/* Interest rules for the object-state notes (events-interest.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "events-interest.h"
#include "macro.h"

/* Like the link's objects: printable, no space or '/'; a prefix may lack the ':'. */
static bool object_chars_ok(const char *s) {
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '/')
            return false;
    return true;
}

static int add_rule(struct interest *in, const Halo__Link__InterestRule *r, const char **error) {
    const char *v = r->value ? r->value : "";
    switch (r->kind) {
    case HALO__LINK__INTEREST_RULE__KIND__ALL:
    case HALO__LINK__INTEREST_RULE__KIND__GROUP:
    case HALO__LINK__INTEREST_RULE__KIND__POOL:
        if (*v) {
            *error = "an ALL, GROUP or POOL rule takes no value";
            return -EINVAL;
        }
        in->all |= r->kind == HALO__LINK__INTEREST_RULE__KIND__ALL;
        in->group |= r->kind == HALO__LINK__INTEREST_RULE__KIND__GROUP;
        in->pool |= r->kind == HALO__LINK__INTEREST_RULE__KIND__POOL;
        return 0;
    case HALO__LINK__INTEREST_RULE__KIND__OBJECT: {
        if (!*v || !strchr(v, ':') || !object_chars_ok(v)) {
            *error = "an OBJECT rule takes \"kind:name\" (printable, no space or '/')";
            return -EINVAL;
        }
        int r2 = hashmap_put(&in->objects, v, NULL);
        return r2 == -EEXIST ? 0 : r2;
    }
    case HALO__LINK__INTEREST_RULE__KIND__PREFIX: {
        if (!*v || !object_chars_ok(v)) {
            *error = "a PREFIX rule takes the non-empty start of \"kind:name\" (printable, no space or '/')";
            return -EINVAL;
        }
        char **p = reallocarray(in->prefixes, in->n_prefixes + 1, sizeof(*p));
        if (!p)
            return -ENOMEM;
        in->prefixes = p;
        p[in->n_prefixes] = strdup(v);
        if (!p[in->n_prefixes])
            return -ENOMEM;
        in->n_prefixes++;
        return 0;
    }
    default:
        *error = "unknown rule kind";
        return -EINVAL;
    }
}

int interest_new(Halo__Link__InterestRule *const *rules, size_t n, struct interest **ret, const char **error) {
    if (n > LINK_INTEREST_RULES_MAX) {
        *error = "too many rules";
        return -EINVAL;
    }
    struct interest *in = calloc(1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int r = add_rule(in, rules[i], error);
        if (r < 0) {
            interest_free(in);
            return r;
        }
    }
    *ret = in;
    return 0;
}

struct interest *interest_free(struct interest *in) {
    if (!in)
        return NULL;
    hashmap_done(&in->objects, NULL);
    for (size_t i = 0; i < in->n_prefixes; i++)
        free(in->prefixes[i]);
    free(in->prefixes);
    free(in);
    return NULL;
}

bool interest_match(const struct interest *in, const char *object, const struct interest_owner *owner,
                    const struct interest_owner *me) {
    if (!in || in->all)
        return true;
    if (in->group && me->group && owner->group == me->group)
        return true;
    if (in->pool && me->pool && owner->pool == me->pool)
        return true;
    if (hashmap_size(&in->objects) && hashmap_contains(&in->objects, object))
        return true;
    for (size_t i = 0; i < in->n_prefixes; i++)
        if (strncmp(object, in->prefixes[i], strlen(in->prefixes[i])) == 0)
            return true;
    return false;
}
