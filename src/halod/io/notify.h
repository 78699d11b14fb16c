/* SPDX-License-Identifier: MIT */
/*
 * The service manager's notification protocol (sd_notify(3)): READY=1 once
 * halod serves, STATUS= lines, STOPPING=1, and WATCHDOG=1 from the loop at
 * half the interval systemd asks for (WatchdogSec=).  Without
 * $NOTIFY_SOCKET, or in a build without libsystemd, every call does nothing
 * (the latter says so once if systemd is listening).
 */
#pragma once

#include <uv.h>

struct notifier;

/* Reads what the service manager set (and takes WATCHDOG_* out of the
 * environment: it is halod's, not its components'); 0 or -errno. */
int notifier_new(uv_loop_t *loop, struct notifier **ret);
/* halod serves: READY=1, with status as STATUS=. */
void notifier_ready(struct notifier *n, const char *status);
/* halod is stopping: STOPPING=1, and the watchdog goes on until it exits. */
void notifier_stopping(struct notifier *n);
struct notifier *notifier_free(struct notifier *n);
