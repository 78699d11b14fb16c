/* SPDX-License-Identifier: MIT */
/* haloctl txn (ctl-txn.h). */
#include "ctl-txn.h"

#include <jansson.h>
#include <stdio.h>

#include "ctl-exit.h"

/* "a=yes b=pending+acked": each participant's vote, and whether it applied the outcome. */
static void print_parts(json_t *parts) {
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
        printf("%s%s=%s%s", i ? " " : "", json_string_value(json_object_get(p, "comp")) ?: "?",
               json_string_value(json_object_get(p, "vote")) ?: "?",
               json_is_true(json_object_get(p, "acked")) ? "+acked" : "");
}

int ctl_txn_print(const char *list, bool json) {
    if (json) {
        printf("%s\n", list);
        return 0;
    }
    json_t *doc = json_loads(list, 0, NULL);
    if (!json_is_array(doc)) {
        json_decref(doc);
        fprintf(stderr, "haloctl: txn: halod's answer is not a list\n");
        return CTL_EXIT_FAILURE;
    }
    if (json_array_size(doc) == 0)
        printf("No transaction in flight.\n");
    size_t i;
    json_t *t;
    json_array_foreach(doc, i, t) {
        const char *reason = json_string_value(json_object_get(t, "reason"));
        printf("%-30s %-10s ", json_string_value(json_object_get(t, "id")) ?: "?",
               json_string_value(json_object_get(t, "state")) ?: "?");
        print_parts(json_object_get(t, "participants"));
        printf("%s%s\n", reason && *reason ? "  -- " : "", reason ?: "");
    }
    json_decref(doc);
    return 0;
}
