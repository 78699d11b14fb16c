/* SPDX-License-Identifier: MIT */
/* haloctl event-channels (ctl-evt.h). */
#include "ctl-evt.h"

#include <jansson.h>
#include <stdio.h>

#include "ctl-admin.h"
#include "ctl-exit.h"
#include "halo/halo.h"
#include "macro.h"

static long long num(json_t *o, const char *k) {
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *str(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k)) ?: "?";
}

int ctl_evt_main(int argc, char **argv, bool json) {
    if (argc != 0) {
        fprintf(stderr, "haloctl: 'event-channels' takes no argument.\n");
        return CTL_EXIT_USAGE;
    }
    _cleanup_free_ char *text = NULL;
    int r = ctl_request(HALO__LINK__ADMIN__OP__EVT_CHANNELS, NULL, &text);
    if (r < 0) {
        fprintf(stderr, "haloctl: event-channels: %s\n", halo_strerror(r));
        return ctl_exit_code(r);
    }
    if (json) {
        printf("%s\n", text ?: "{}");
        return 0;
    }
    json_t *doc = json_loads(text ?: "", 0, NULL);
    if (!doc)
        return CTL_EXIT_FAILURE;
    json_t *chans = json_object_get(doc, "channels");
    if (json_array_size(chans) == 0)
        printf("no event channel on %s\n", str(doc, "node"));
    size_t i, k;
    json_t *ch, *s;
    json_array_foreach(chans, i, ch) {
        printf("%s (%s): published %lld, delivered %lld, filtered out %lld, retained %lld\n", str(ch, "name"),
               str(ch, "scope"), num(ch, "published"), num(ch, "delivered"), num(ch, "filtered"), num(ch, "retained"));
        json_array_foreach(json_object_get(ch, "subscribers"), k, s) printf(
            "  %s subscription %lld: %lld filters, delivered %lld, lost %lld, %lld bytes unread\n", str(s, "client"),
            num(s, "id"), num(s, "filters"), num(s, "delivered"), num(s, "lost"), num(s, "queued_bytes"));
    }
    json_decref(doc);
    return 0;
}
