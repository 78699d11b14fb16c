/* SPDX-License-Identifier: MIT */
/* haloctl's exit statuses, one per kind of outcome a script acts on (docs/haloctl.md, haloctl --help). */
#pragma once

enum {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAILURE = 1,     /* anything not below */
    CTL_EXIT_USAGE = 2,       /* bad command line: unknown command, option or argument count */
    CTL_EXIT_UNREACHABLE = 3, /* halod is not there: no socket, nobody listening, or the hello went unanswered */
    CTL_EXIT_NO_OBJECT = 4,   /* no such object: unit, SI, group, node, component, process or CDB path */
    CTL_EXIT_REFUSED = 5,     /* refused in this state: not allowed now, already so, read-only CDB */
    CTL_EXIT_TIMEOUT = 6,     /* halod took longer than --timeout to answer */
};

/* The exit status for a command's result r (0 or -errno / -HALO_E*). */
int ctl_exit_code(int r);
