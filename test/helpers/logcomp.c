/* SPDX-License-Identifier: MIT */
/*
 * A component for the log service's tests (test_log_service.py): it registers, answers every
 * CSI set and terminate, and every 100 ms writes tick N's records through halo_log(): one at
 * error, info, debug and trace into the stream "app", one at debug into "audit", and one whose
 * text holds a newline ("tick N forged\nFAKE"); then it appends to $LOGCOMP_FILE the line
 * "tick N debug=D trace=T audit-debug=A", each the answer of halo_log_enabled().
 * $LOGCOMP=flood: instead, 20,000 info records at once every tick (a component that floods).
 */
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "halo/halo.h"
#include "halo/log.h"

static bool stop;
static int fd = -1;

/* A line into $LOGCOMP_FILE, in one write(2). */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (fd >= 0 && k > 0 && write(fd, line, (size_t)k) != k)
        _exit(3);
}

static void csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state, const halo_csi_descriptor *csi,
                    void *userdata) {
    (void)comp, (void)csi, (void)userdata;
    /* A QUIESCING is answered by its completion (include/halo/halo.h). */
    int r = state == HALO_HA_QUIESCING ? halo_quiescing_complete(h, inv, 0) : halo_response(h, inv, 0);
    note("csi-set %s %d\n", halo_ha_state_to_string(state), r);
}

static void csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi_name, unsigned flags,
                       void *userdata) {
    (void)comp, (void)csi_name, (void)flags, (void)userdata;
    halo_response(h, inv, 0);
}

static void terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    (void)comp, (void)userdata;
    halo_response(h, inv, 0);
    stop = true;
}

static void tick(halo *h, unsigned n, bool flood) {
    if (flood) {
        for (int i = 0; i < 20000; i++)
            (void)halo_log(h, HALO_LOG_INFO, NULL, "flood %u.%d", n, i);
        return;
    }
    (void)halo_log(h, HALO_LOG_ERROR, NULL, "tick %u error", n);
    (void)halo_log(h, HALO_LOG_INFO, NULL, "tick %u info", n);
    (void)halo_log(h, HALO_LOG_DEBUG, NULL, "tick %u debug", n);
    (void)halo_log(h, HALO_LOG_TRACE, NULL, "tick %u trace", n);
    (void)halo_log(h, HALO_LOG_DEBUG, "audit", "tick %u audit-debug", n);
    (void)halo_log(h, HALO_LOG_WARNING, NULL, "tick %u forged\nFAKE", n);
    note("tick %u debug=%d trace=%d audit-debug=%d\n", n, halo_log_enabled(h, HALO_LOG_DEBUG, NULL),
         halo_log_enabled(h, HALO_LOG_TRACE, NULL), halo_log_enabled(h, HALO_LOG_DEBUG, "audit"));
}

int main(void) {
    const char *comp = getenv("HALO_COMPONENT"), *file = getenv("LOGCOMP_FILE");
    bool flood = getenv("LOGCOMP") && strcmp(getenv("LOGCOMP"), "flood") == 0;
    fd = file ? open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    halo_callbacks cb = {.csi_set = csi_set, .csi_remove = csi_remove, .terminate = terminate};
    halo *h;
    if (!comp || halo_open(NULL, &cb, NULL, &h) < 0 || halo_register(h, comp, NULL) < 0)
        return 1;
    for (unsigned n = 1; !stop; n++) {
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, 100) > 0 && halo_dispatch(h, HALO_DISPATCH_ALL) < 0)
            break;
        tick(h, n, flood);
    }
    halo_close(h);
    return 0;
}
