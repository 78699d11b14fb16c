/* SPDX-License-Identifier: MIT */
/* Spawns and watches child processes: one pidfd each, a new process group each, and orphan reaping. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

struct supervisor;
struct proc;

struct spawn_params {
    const char *path;      /* absolute path of the executable */
    char *const *argv;     /* argv[0] included, NULL-terminated */
    char *const *env;      /* extra "NAME=value" entries over halod's environment; NULL-terminated or NULL */
    const char *env_first; /* "NAME=value" first in its environment, to find it again (process_spawn_options) */
    const char *workdir;   /* NULL: inherit */
    bool capture;          /* stdout and stderr kept for proc_output(), instead of halod's */
    /* Else (each NULL: halod's stdout and stderr): */
    const char *output_tag;  /* each line of stdout and stderr into halod's log, tagged so (output-lines.h) */
    const char *output_file; /* stdout and stderr appended to this file, created 0640 */
    bool set_uid, set_gid;   /* run as uid, and as gid with groups (process_spawn_options) */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t n_groups;
};

/* status is a wait status as from waitpid(); the proc is freed after the callback returns. */
typedef void (*proc_exit_cb)(struct proc *p, int status, void *userdata);

/* Makes halod a child subreaper and starts reaping orphans on SIGCHLD.
 * Raises halod's soft open-file limit to the hard one; the children it spawns
 * get the soft limit halod was started with. */
int supervisor_new(uv_loop_t *loop, struct supervisor **ret);
struct supervisor *supervisor_free(struct supervisor *s);

/*
 * Forks and execs.  The child gets a new session (so its whole tree can be
 * killed as a group), default signal dispositions, an empty signal mask,
 * stdin from /dev/null, and no fds but 0-2.  Returns 0 and *ret (owned by the
 * supervisor until the exit callback returned), or -errno (e.g. when fork
 * fails, or p->output_file cannot be opened; an exec failure shows as exit
 * status 127 instead).
 */
int supervisor_spawn(struct supervisor *s, const struct spawn_params *p, proc_exit_cb cb, void *userdata,
                     struct proc **ret);

/* The exit status passed for an adopted process: it was not our child, so
 * its wait status goes to whoever reaps it. */
#define PROC_STATUS_UNKNOWN (-1)

/*
 * Watches a running process that a previous halod started (found by pid and
 * start time in the store): its exit shows on a pidfd; it is not reaped here.
 * Returns 0 and *ret, or -errno (-ESRCH: it is gone).
 */
int supervisor_adopt(struct supervisor *s, pid_t pid, proc_exit_cb cb, void *userdata, struct proc **ret);

pid_t proc_pid(const struct proc *p);
/* Sends sig to the process group (the child and what it forked). Returns 0 or -errno. */
int proc_kill(struct proc *p, int sig);
/* Whether the process has ended (it may not be reaped yet: its exit callback
 * is still to come).  Asks the kernel now, without waiting for the loop to
 * tell: the pidfd polls readable from the moment the process is a zombie. */
bool proc_has_exited(const struct proc *p);
/* What a process spawned with capture wrote to stdout and stderr, NUL-terminated in buf (from its
 * exit callback: the proc is freed after it): its first n - 1 bytes at most, or with last its last
 * ones, from the start of a line.  The length, or -errno. */
ssize_t proc_output(struct proc *p, char *buf, size_t n, bool last);
/* Forgets the exit callback (used when its owner goes away; the proc is still reaped). */
void proc_detach(struct proc *p);

/* Number of live children (for status). */
unsigned supervisor_count(const struct supervisor *s);

/* Describes a wait status: "exited with status 3", "killed by signal 9 (KILL)". */
char *proc_status_to_string(int status, char *buf, size_t n);
