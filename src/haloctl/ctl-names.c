/* SPDX-License-Identifier: MIT */
/* haloctl registrations [CONTEXT]: the live name registrations this node's halod follows, best first per name. */
#include "ctl-names.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "ctl-admin.h"
#include "ctl-exit.h"
#include "halo/halo.h"
#include "macro.h"

static void print_row(json_t *e) {
    const char *ref = json_string_value(json_object_get(e, "ref"));
    const char *hex = json_string_value(json_object_get(e, "ref_hex"));
    printf("%-16s %-24s %8lld  %-12s %-16s %s%s\n", json_string_value(json_object_get(e, "context")) ?: "?",
           json_string_value(json_object_get(e, "name")) ?: "?",
           (long long)json_integer_value(json_object_get(e, "priority")),
           json_string_value(json_object_get(e, "node")) ?: "?",
           *(json_string_value(json_object_get(e, "comp")) ?: "") ? json_string_value(json_object_get(e, "comp"))
                                                                  : "-",
           ref ? ref : "0x", ref ? "" : hex ?: "");
}

int ctl_names_main(int argc, char **argv, bool json) {
    if (argc > 2) {
        fprintf(stderr, "haloctl: 'registrations' takes at most one argument, a context.\n");
        return CTL_EXIT_USAGE;
    }
    _cleanup_free_ char *text = NULL;
    int r = ctl_request(HALO__LINK__ADMIN__OP__NAMES, argc == 2 ? argv[1] : NULL, &text);
    if (r < 0) {
        fprintf(stderr, "haloctl: registrations: %s\n", halo_strerror(r));
        return ctl_exit_code(r);
    }
    if (json) {
        printf("%s\n", text ?: "{}");
        return 0;
    }
    json_t *doc = json_loads(text ?: "", 0, NULL);
    if (!doc) {
        fprintf(stderr, "haloctl: registrations: halod's answer is not JSON\n");
        return CTL_EXIT_FAILURE;
    }
    size_t i;
    json_t *e;
    printf("%-16s %-24s %8s  %-12s %-16s %s\n", "CONTEXT", "NAME", "PRIORITY", "NODE", "COMPONENT", "REFERENCE");
    json_array_foreach(json_object_get(doc, "names"), i, e) print_row(e);
    json_decref(doc);
    return 0;
}
