/* SPDX-License-Identifier: MIT */
/* The service manager's notification protocol (notify.h). */
#define LOG_AREA LOG_AREA_MAIN
#include "notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"

#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

struct notifier {
    uv_timer_t watchdog;
    bool have_watchdog;
};

static void send_state(const char *state) {
#if HAVE_LIBSYSTEMD
    int r = sd_notify(0, state);
    if (r < 0)
        log_warning_errno(r, "Failed to notify the service manager: %m");
#else
    (void)state;
#endif
}

static void on_closed(uv_handle_t *h) {
    free(h->data);
}

static void on_watchdog(uv_timer_t *t) {
    send_state("WATCHDOG=1");
}

int notifier_new(uv_loop_t *loop, struct notifier **ret) {
    struct notifier *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
#if HAVE_LIBSYSTEMD
    uint64_t usec = 0;
    /* 1: WATCHDOG_USEC and WATCHDOG_PID leave the environment the components inherit. */
    int r = sd_watchdog_enabled(1, &usec);
    if (r < 0)
        log_warning_errno(r, "Ignoring the service manager's watchdog settings: %m");
    else if (r > 0 && usec > 0) {
        uv_timer_init(loop, &n->watchdog);
        n->have_watchdog = true;
        uint64_t every = MAX(usec / 2 / 1000, 1);
        uv_timer_start(&n->watchdog, on_watchdog, 0, every);
        uv_unref((uv_handle_t *)&n->watchdog); /* it does not keep halod from exiting */
        log_info("Watchdog: telling the service manager every %llu ms", (unsigned long long)every);
    }
#else
    (void)loop;
    if (getenv("NOTIFY_SOCKET"))
        log_warning("The service manager waits for a notification, but this halod was built without libsystemd: "
                    "use Type=simple");
#endif
    *ret = n;
    return 0;
}

/* A status line: one line of at most STATUS_MAX bytes (a longer one is cut). */
#define STATUS_MAX 400

void notifier_ready(struct notifier *n, const char *status) {
    char buf[STATUS_MAX + 32];
    snprintf(buf, sizeof(buf), "READY=1\nSTATUS=%.*s", STATUS_MAX, status);
    send_state(buf);
}

void notifier_stopping(struct notifier *n) {
    send_state("STOPPING=1\nSTATUS=Stopping: terminating the components");
}

struct notifier *notifier_free(struct notifier *n) {
    if (!n)
        return NULL;
    if (n->have_watchdog) {
        n->watchdog.data = n; /* freed once the loop has closed the handle */
        uv_close((uv_handle_t *)&n->watchdog, on_closed);
        return NULL;
    }
    free(n);
    return NULL;
}
