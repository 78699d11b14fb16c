/* SPDX-License-Identifier: MIT */
/* halo_strerror(): names for errno values and the project's HALO_E* codes. */
#include <string.h>

#include "halo/halo.h"
#include "string-table.h"

/* Part of libhalo's ABI (src/libhalo/libhalo.sym): visible despite -fvisibility=hidden. */
#define HALO_EXPORT __attribute__((visibility("default")))

HALO_EXPORT const char *halo_strerror(int err) {
    int e = err < 0 ? -err : err;

    switch (e) {
#define HALO__ERRNO_CASE(name, value, text) \
    case value:                             \
        return text;
        HALO_ERRNO_MAP(HALO__ERRNO_CASE)
#undef HALO__ERRNO_CASE
    default:
        /* strerror() names every errno value in glibc and is thread-safe there
         * for known values; for unknown ones it returns a shared buffer, which
         * is acceptable for a diagnostic string. */
        return strerror(e);
    }
}

static const char *const ha_state_table[] = {
    [HALO_HA_ACTIVE] = "ACTIVE",
    [HALO_HA_STANDBY] = "STANDBY",
    [HALO_HA_QUIESCED] = "QUIESCED",
    [HALO_HA_QUIESCING] = "QUIESCING",
};
DEFINE_PRIVATE_STRING_TABLE_LOOKUP(ha_state, halo_ha_state);

HALO_EXPORT const char *halo_ha_state_to_string(halo_ha_state s) {
    return ha_state_to_string(s) ?: "UNKNOWN";
}
