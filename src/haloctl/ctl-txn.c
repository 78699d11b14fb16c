/* SPDX-License-Identifier: MIT */
/* haloctl txn (ctl-txn.h). */
#include "ctl-txn.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl-admin.h"
#include "ctl-exit.h"
#include "halo/halo.h"
#include "macro.h"

/* "a=yes b=pending+acked": each participant's vote, and whether it applied the outcome. */
static void print_parts(json_t *parts) {
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p)
        printf("%s%s=%s%s", i ? " " : "", json_string_value(json_object_get(p, "comp")) ?: "?",
               json_string_value(json_object_get(p, "vote")) ?: "?",
               json_is_true(json_object_get(p, "acked")) ? "+acked" : "");
}

/* One line: a transaction in flight (its participants), or finished (when, and who did not hear it). */
static void print_txn(json_t *t) {
    const char *reason = json_string_value(json_object_get(t, "reason"));
    json_t *finished = json_object_get(t, "finished"), *unacked = json_object_get(t, "unacked");
    printf("%-30s %-10s ", json_string_value(json_object_get(t, "id")) ?: "?",
           json_string_value(json_object_get(t, "state")) ?: "?");
    if (finished) {
        long long ago = ((long long)time(NULL) * 1000000 - json_integer_value(finished)) / 1000000;
        printf("finished %llds ago", MAX(ago, 0LL));
    } else
        print_parts(json_object_get(t, "participants"));
    printf("%s%s\n", reason && *reason ? "  -- " : "", reason ?: "");
    size_t i;
    json_t *c;
    json_array_foreach(unacked, i, c)
        printf("  %s did not hear it: forgotten by an operator\n", json_string_value(c) ?: "?");
}

static int print_list(const char *list) {
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
    json_array_foreach(doc, i, t) print_txn(t);
    json_decref(doc);
    return 0;
}

static int failed(const char *what, const char *txid, int r) {
    const char *why = r == -HALO_EUNKNOWN    ? "no such transaction in flight, nor finished in the last hour"
                      : r != -HALO_EBADSTATE ? halo_strerror(r)
                      : streq(what ?: "", "abort")
                          ? "decided already (haloctl txn forget ends it if a participant is gone for good)"
                          : "not decided yet: its prepare timeout, or haloctl txn abort, aborts it";
    if (r != -ECONNREFUSED)
        fprintf(stderr, "haloctl: txn%s%s '%s': %s\n", what ? " " : "", what ?: "", txid ?: "", why);
    return ctl_exit_code(r);
}

static Halo__Link__Admin__Op op_of(const char *verb, const char *txid) {
    if (!verb)
        return txid ? HALO__LINK__ADMIN__OP__TXN_SHOW : HALO__LINK__ADMIN__OP__TXN_LIST;
    return streq(verb, "forget") ? HALO__LINK__ADMIN__OP__TXN_FORGET : HALO__LINK__ADMIN__OP__TXN_ABORT;
}

int ctl_txn_main(int argc, char **argv, bool json) {
    const char *verb = argc == 3 && (streq(argv[1], "forget") || streq(argv[1], "abort")) ? argv[1] : NULL;
    if (argc > 2 && !verb) {
        fprintf(stderr, "haloctl: 'txn' takes no argument, a transaction's id, or 'abort' or 'forget' and an id.\n");
        return CTL_EXIT_USAGE;
    }
    const char *txid = verb ? argv[2] : argc == 2 ? argv[1] : NULL;
    _cleanup_free_ char *text = NULL;
    int r = ctl_request(op_of(verb, txid), txid, &text);
    if (r < 0)
        return failed(verb, txid, r);
    if (verb && json)
        printf("{\"ok\":true}\n");
    else if (verb)
        printf("Transaction %s %s: see haloctl txn %s\n", txid, streq(verb, "forget") ? "forgotten" : "aborted", txid);
    if (verb)
        return 0;
    if (json) {
        printf("%s\n", text ?: "[]");
        return 0;
    }
    if (!txid)
        return print_list(text ?: "[]");
    json_t *doc = json_loads(text ?: "", 0, NULL);
    print_txn(doc);
    json_decref(doc);
    return 0;
}
