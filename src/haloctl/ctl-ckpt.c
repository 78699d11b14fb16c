/* SPDX-License-Identifier: MIT */
/* haloctl ckpt: the checkpoints of the cluster, or one checkpoint's sections (docs/checkpoints.md). */
#include "ctl-ckpt.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-admin.h"
#include "ctl-exit.h"
#include "halo/halo.h"
#include "macro.h"

/* What a checkpoint's name is made of (src/halod/svc/svc.c). */
#define NAME_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@"

static json_int_t jint(json_t *o, const char *k) {
    return json_integer_value(json_object_get(o, k));
}

static const char *jstr(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : "-";
}

/* The nodes that hold it open, joined by ','. */
static const char *open_on(json_t *c, char *buf, size_t size) {
    size_t i, len = 0;
    json_t *v;
    buf[0] = '\0';
    json_array_foreach(json_object_get(c, "open_on"), i, v) {
        if (len < size)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "," : "", json_string_value(v) ?: "?");
    }
    return buf[0] ? buf : "-";
}

static void print_all(json_t *list) {
    char nodes[512];
    size_t i;
    json_t *c;
    printf("%-32s %8s %10s %-20s %10s  %s\n", "CHECKPOINT", "SECTIONS", "BYTES", "COLLOCATED WITH", "RETENTION",
           "OPEN ON");
    json_array_foreach(list, i, c) {
        json_t *a = json_object_get(c, "attributes");
        printf("%-32s %8lld %10lld %-20s %9.1fs  %s\n", jstr(c, "name"), (long long)jint(c, "sections"),
               (long long)jint(c, "bytes"), jstr(a, "csi"), (double)jint(a, "retention_msec") / 1000.0,
               open_on(c, nodes, sizeof(nodes)));
    }
}

static void print_one(json_t *c) {
    char nodes[512];
    size_t i;
    json_t *s, *a = json_object_get(c, "attributes");
    printf("Checkpoint %s: %lld sections, %lld bytes\n", jstr(c, "name"), (long long)jint(c, "sections"),
           (long long)jint(c, "bytes"));
    printf("  collocated with CSI %s; retention %.1f s; at most %lld sections of %lld bytes\n", jstr(a, "csi"),
           (double)jint(a, "retention_msec") / 1000.0, (long long)jint(a, "max_sections"),
           (long long)jint(a, "max_section_size"));
    printf("  open on %s (%lld here)\n", open_on(c, nodes, sizeof(nodes)), (long long)jint(c, "open_here"));
    json_t *r = json_object_get(c, "replica_here");
    if (json_is_object(r))
        printf("  replica here: %lld sections at revision %lld\n", (long long)jint(r, "sections"),
               (long long)jint(r, "revision"));
    printf("\n");
    printf("%-40s %10s %12s\n", "SECTION", "BYTES", "REVISION");
    json_array_foreach(json_object_get(c, "section_list"), i, s)
        printf("%-40s %10lld %12lld\n", jstr(s, "id"), (long long)jint(s, "size"), (long long)jint(s, "revision"));
}

int ctl_ckpt_main(int argc, char **argv, bool json) {
    _cleanup_free_ char *text = NULL;
    if (argc > 2) {
        fprintf(stderr, "haloctl: 'ckpt' takes at most one argument, a checkpoint's name.\n");
        return CTL_EXIT_USAGE;
    }
    const char *name = argc == 2 ? argv[1] : NULL;
    if (name && (!*name || strlen(name) > 255 || name[strspn(name, NAME_CHARS)])) {
        fprintf(stderr, "haloctl: ckpt '%s': not a valid checkpoint name (letters, digits and -_.:@)\n", name);
        return CTL_EXIT_USAGE;
    }
    int r = ctl_request(HALO__LINK__ADMIN__OP__CKPT, name, &text);
    if (r < 0) {
        if (r != -ECONNREFUSED)
            fprintf(stderr, "haloctl: ckpt%s%s%s: %s\n", name ? " '" : "", name ?: "", name ? "'" : "",
                    r == -ENOENT ? "no such checkpoint" : halo_strerror(r));
        return ctl_exit_code(r);
    }
    if (json) {
        printf("%s\n", text);
        return 0;
    }
    json_t *doc = json_loads(text, 0, NULL);
    json_t *list = json_object_get(doc, "checkpoints");
    if (name && json_array_size(list) == 1)
        print_one(json_array_get(list, 0));
    else
        print_all(list);
    json_decref(doc);
    return 0;
}
