/* SPDX-License-Identifier: MIT */
/*
 * The name service's test client (test/integration/test_names.py).
 *
 *   nameclient comp LOG [CTX/NAME=REF@PRIO]... [--once FILE] [--track CTX/NAME]... [--deregister CTX/NAME]...
 *                  [--deregister-all]
 *       a component: registers with halod, then in the order given registers each name (only
 *       if FILE does not exist yet with --once, which it creates), tracks names, deregisters;
 *       writes what happens to LOG, one line each.
 *   nameclient lookup CTX NAME [all]   prints "comp node priority ref" per registration, or the error
 *   nameclient register CTX NAME REF   as an unregistered client: prints the error
 *   nameclient track CTX NAME          prints "NOTE change reason comp node ref" per change, until killed
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halo/halo.h"
#include "halo/name.h"

static FILE *out;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

static const char *const changes[] = {"?", "ADDED", "REMOVED"};
static const char *const reasons[] = {"?", "REGISTERED", "DEREGISTERED", "COMPONENT_FAILED", "NODE_LEFT"};

static void on_note(halo *h, unsigned track, halo_name_change change, halo_name_reason reason, const halo_name_entry *e,
                    void *userdata) {
    char attrs[1024] = "";
    size_t n = 0;
    for (size_t i = 0; i < e->n_attrs && n < sizeof(attrs); i++)
        n += (size_t)snprintf(attrs + n, sizeof(attrs) - n, " %s=%s", e->attrs[i].name, e->attrs[i].value);
    say("NOTE %s %s %s/%s %s %s %u %.*s%s", changes[change <= 2 ? change : 0], reasons[reason <= 4 ? reason : 0],
        e->context, e->name, *e->comp ? e->comp : "-", e->node, e->priority, (int)e->ref_len, (const char *)e->ref,
        attrs);
}

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state st, const halo_csi_descriptor *csi,
                       void *userdata) {
    halo_response(h, inv, 0);
}

static void on_csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi, unsigned flags,
                          void *userdata) {
    halo_response(h, inv, 0);
}

static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    halo_response(h, inv, 0);
    exit(0);
}

/* "CTX/NAME" into ctx and name (buffers of HALO_NAME_MAX + 1). */
static int split(const char *s, char *ctx, char *name) {
    const char *slash = strchr(s, '/');
    if (!slash || slash - s > HALO_NAME_MAX || strlen(slash + 1) > HALO_NAME_MAX)
        return -EINVAL;
    snprintf(ctx, HALO_NAME_MAX + 1, "%.*s", (int)(slash - s), s);
    snprintf(name, HALO_NAME_MAX + 1, "%s", slash + 1);
    return 0;
}

static int do_register(halo *h, const char *spec) {
    char ctx[HALO_NAME_MAX + 1], name[HALO_NAME_MAX + 1], ref[HALO_NAME_REF_MAX + 1];
    const char *eq = strchr(spec, '='), *at = strrchr(spec, '@');
    char target[2 * HALO_NAME_MAX + 2];
    if (!eq || !at || at < eq || (size_t)(eq - spec) >= sizeof(target))
        return -EINVAL;
    snprintf(target, sizeof(target), "%.*s", (int)(eq - spec), spec);
    snprintf(ref, sizeof(ref), "%.*s", (int)(at - eq - 1), eq + 1);
    if (split(target, ctx, name) < 0)
        return -EINVAL;
    halo_name_attr attrs[] = {{"pid", NULL}};
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    attrs[0].value = pid;
    int r = halo_name_register(h, ctx, name, ref, strlen(ref), attrs, 1, (unsigned)atoi(at + 1));
    say("REGISTER %s/%s %d", ctx, name, r);
    return r;
}

static int do_track(halo *h, const char *spec) {
    char ctx[HALO_NAME_MAX + 1], name[HALO_NAME_MAX + 1];
    unsigned id;
    if (split(spec, ctx, name) < 0)
        return -EINVAL;
    int r = halo_name_track(h, ctx, name, on_note, NULL, &id);
    say("TRACK %s/%s %d", ctx, name, r);
    return r;
}

static int do_deregister(halo *h, const char *spec) {
    char ctx[HALO_NAME_MAX + 1], name[HALO_NAME_MAX + 1];
    if (split(spec, ctx, name) < 0)
        return -EINVAL;
    int r = halo_name_deregister(h, ctx, name);
    say("DEREGISTER %s/%s %d", ctx, name, r);
    return r;
}

static int run_comp(int argc, char **argv) {
    const char *once = NULL;
    halo_callbacks cb = {.csi_set = on_csi_set, .csi_remove = on_csi_remove, .terminate = on_terminate};
    halo *h;
    out = fopen(argv[0], "a");
    if (!out)
        return 1;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--once") == 0)
            once = argv[i + 1];
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r == 0)
        r = halo_register(h, NULL, NULL);
    if (r < 0) {
        say("ERROR %s", halo_strerror(r));
        return 1;
    }
    say("REGISTERED %d", (int)getpid());
    bool do_names = !once || access(once, F_OK) != 0;
    if (once && do_names)
        close(open(once, O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--once") == 0)
            i++;
        else if (strcmp(argv[i], "--track") == 0 && i + 1 < argc)
            do_track(h, argv[++i]);
        else if (strcmp(argv[i], "--deregister") == 0 && i + 1 < argc)
            do_deregister(h, argv[++i]);
        else if (strcmp(argv[i], "--deregister-all") == 0)
            say("DEREGISTER_ALL %d", halo_name_component_deregister(h));
        else if (do_names)
            do_register(h, argv[i]);
    }
    say("READY");
    for (;;)
        if (halo_dispatch(h, HALO_DISPATCH_BLOCKING) < 0 && halo_dispatch(h, HALO_DISPATCH_ALL) < 0)
            usleep(100 * 1000);
}

static int run_lookup(int argc, char **argv) {
    halo *h = NULL;
    halo_name_entry *e;
    size_t n;
    int r = halo_open(NULL, NULL, NULL, &h);
    if (r == 0)
        r = halo_name_lookup(h, argv[0], argv[1], argc > 2 ? HALO_NAME_LOOKUP_ALL : 0, &e, &n);
    if (r < 0) {
        printf("ERROR %d %s\n", r, halo_strerror(r));
        halo_close(h); /* accepts NULL; a leak would fail a sanitizer run at exit */
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s %s %u %.*s\n", *e[i].comp ? e[i].comp : "-", e[i].node, e[i].priority, (int)e[i].ref_len,
               (const char *)e[i].ref);
    free(e);
    halo_close(h);
    return 0;
}

int main(int argc, char **argv) {
    /* A line at a time: what was printed is read even if the process ends abnormally. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    out = stdout;
    if (argc >= 3 && strcmp(argv[1], "comp") == 0)
        return run_comp(argc - 2, argv + 2);
    if (argc >= 4 && strcmp(argv[1], "lookup") == 0)
        return run_lookup(argc - 2, argv + 2);
    if (argc == 5 && strcmp(argv[1], "register") == 0) {
        halo *h = NULL;
        int r = halo_open(NULL, NULL, NULL, &h);
        if (r == 0)
            r = halo_name_register(h, argv[2], argv[3], argv[4], strlen(argv[4]), NULL, 0, 1);
        printf("%s %d %s\n", r < 0 ? "ERROR" : "OK", r, r < 0 ? halo_strerror(r) : "");
        halo_close(h);
        return r < 0;
    }
    if (argc == 4 && strcmp(argv[1], "track") == 0) {
        halo *h;
        int r = halo_open(NULL, NULL, NULL, &h);
        char spec[2 * HALO_NAME_MAX + 2];
        snprintf(spec, sizeof(spec), "%s/%s", argv[2], argv[3]);
        if (r < 0 || do_track(h, spec) < 0)
            return 1;
        for (;;)
            if (halo_dispatch(h, HALO_DISPATCH_BLOCKING) < 0)
                usleep(100 * 1000);
    }
    fprintf(stderr, "usage: nameclient comp LOG [CTX/NAME=REF@PRIO]... | lookup CTX NAME [all] | register CTX NAME "
                    "REF | track CTX NAME\n");
    return 2;
}
