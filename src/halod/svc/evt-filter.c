/* SPDX-License-Identifier: MIT */
/* The event channels' filters (evt.h): SA Forum EVT's prefix / suffix / exact / pass-all, RBE's mask/value. */
#include <errno.h>
#include <string.h>

#include "evt.h"

int evt_filters_parse(Halo__Link__EvtFilter *const *in, size_t n, struct evt_filter *out, const char **error) {
    if (n > LINK_EVT_FIELDS_MAX) {
        *error = "too many filters";
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const Halo__Link__EvtFilter *f = in[i];
        if (f->value.len > LINK_EVT_FIELD_MAX || f->mask.len > LINK_EVT_FIELD_MAX) {
            *error = "a filter's value or mask is too long";
            return -EINVAL;
        }
        if (f->type == HALO__LINK__EVT_FILTER__TYPE__PASS_ALL && (f->value.len || f->mask.len)) {
            *error = "a PASS_ALL filter takes no value";
            return -EINVAL;
        }
        if (f->type == HALO__LINK__EVT_FILTER__TYPE__MASK ? f->mask.len != f->value.len || f->mask.len == 0
                                                          : f->mask.len != 0) {
            *error = "a MASK filter takes a mask as long as its value (and only MASK takes a mask)";
            return -EINVAL;
        }
        if (f->type > HALO__LINK__EVT_FILTER__TYPE__MASK) {
            *error = "unknown filter type";
            return -EINVAL;
        }
        out[i] = (struct evt_filter){.type = f->type, .len = f->value.len};
        if (f->value.len)
            memcpy(out[i].value, f->value.data, f->value.len);
        if (f->mask.len)
            memcpy(out[i].mask, f->mask.data, f->mask.len);
    }
    return 0;
}

static bool filter_match(const struct evt_filter *f, const uint8_t *d, size_t len) {
    switch (f->type) {
    case HALO__LINK__EVT_FILTER__TYPE__PASS_ALL:
        return true;
    case HALO__LINK__EVT_FILTER__TYPE__PREFIX:
        return len >= f->len && memcmp(d, f->value, f->len) == 0;
    case HALO__LINK__EVT_FILTER__TYPE__SUFFIX:
        return len >= f->len && memcmp(d + len - f->len, f->value, f->len) == 0;
    case HALO__LINK__EVT_FILTER__TYPE__EXACT:
        return len == f->len && memcmp(d, f->value, f->len) == 0;
    case HALO__LINK__EVT_FILTER__TYPE__MASK:
        if (len < f->len)
            return false;
        for (size_t k = 0; k < f->len; k++)
            if ((d[k] & f->mask[k]) != (f->value[k] & f->mask[k]))
                return false;
        return true;
    default:
        return false;
    }
}

bool evt_filters_match(const struct evt_filter *f, size_t n_filters, const ProtobufCBinaryData *pattern,
                       size_t n_fields) {
    static const uint8_t empty[1];
    for (size_t i = 0; i < n_filters; i++) {
        const uint8_t *d = i < n_fields && pattern[i].len ? pattern[i].data : empty;
        size_t len = i < n_fields ? pattern[i].len : 0;
        if (!filter_match(&f[i], d, len))
            return false;
    }
    return true;
}
