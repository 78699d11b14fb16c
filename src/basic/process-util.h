/* SPDX-License-Identifier: MIT */
/* Starting a process with nothing of ours but what it is given, and knowing it again later: pidfds, start times. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* What process_spawn() starts, and how. */
struct process_spawn_options {
    const char *path;          /* the executable (not looked up in $PATH) */
    char *const *argv;         /* argv[0] included, NULL-terminated */
    char *const *env;          /* "NAME=value" entries over our environment, replacing those of the same names;
                                * NULL-terminated, or NULL: our environment as it is */
    const char *workdir;       /* the child's working directory; NULL: ours */
    const char *log;           /* stdout and stderr appended to this file (created 0644); NULL: as below */
    int stdout_fd;             /* without log: the fd of ours the child gets as stdout; -1: our stdout */
    int stderr_fd;             /* likewise for stderr */
    const char *env_first;     /* "NAME=value" put first in the child's environment (any other NAME dropped), where
                                * process_scan_env()'s bounded read finds it; NULL: none */
    bool new_session;          /* setsid(): the child leads a session and a process group of its own */
    unsigned long nofile_soft; /* the child's soft RLIMIT_NOFILE (at most the hard one); 0: ours */
    bool exec_error;           /* see process_spawn() */
    /* The user and groups the child runs as (set_uid, set_gid: else ours); groups replace our
     * supplementary groups whenever set_gid is. */
    bool set_uid, set_gid;
    uid_t uid;
    gid_t gid;
    const gid_t *groups;
    size_t n_groups;
};

/*
 * Forks and execs o->path.  The child starts with every signal at its
 * default disposition (glibc's internal ones too), an empty signal mask,
 * stdin from /dev/null, stdout and stderr as o says, and no other fd of ours
 * open: whatever the caller's libraries opened without O_CLOEXEC does not
 * leak.  No signal handler of ours runs in the child.
 *
 * Returns 0 and the child's pid (the caller reaps it), or -errno when the
 * fork fails.  What fails in the child shows as its exit status: 126 when it
 * cannot take its user or groups or enter workdir, 127 when it cannot open the
 * log or exec.  With
 * o->exec_error, process_spawn() waits instead until the child has exec'd,
 * and returns such a failure as -errno, the child reaped.
 */
int process_spawn(const struct process_spawn_options *o, pid_t *ret_pid);

/* waitpid() for one child, again after EINTR.  Returns 0 and its wait status, or -errno. */
int process_wait(pid_t pid, int *ret_status);

/* A pidfd for pid (O_CLOEXEC).  Returns the fd, or -errno (-ESRCH: no such process). */
int process_pidfd_open(pid_t pid);
/* Sends sig to the process of pidfd, which cannot be another process with a reused pid.  0 or -errno. */
int process_pidfd_send_signal(int pidfd, int sig);
/*
 * Reaps the process of pidfd if it has ended.  Returns 1 and its wait status
 * (as from waitpid(): exit code, or the signal that killed it), 0 while it
 * runs, or -errno (-ECHILD: not our child, or reaped already).
 */
int process_pidfd_reap(int pidfd, int *ret_status);

/*
 * The state letter ('R', 'S', 'Z', ...) and the start time (field 22 of
 * /proc/PID/stat: clock ticks after boot) of pid.  The start time tells a
 * process from a later one that got its pid.  Returns 0 (either out-parameter
 * may be NULL), -ESRCH when there is no such process, -EIO when the file is
 * not what the kernel writes, -errno.
 */
int process_get_stat(pid_t pid, char *ret_state, uint64_t *ret_start_time);
/*
 * One pass over /proc: cb runs for each process that leads its process group
 * (or whose group's leader has ended: a daemon that outlived the command that
 * started it), is not a zombie, and has an environment entry that starts with prefix (NAME=
 * and perhaps the start of the value), with the rest of that entry (the first
 * such), the process's start time and its real user (whoever can start a
 * process can put any entry in its environment: the user tells who did).  At
 * most PROCESS_ENV_SCAN_MAX bytes of each environment are read (an entry
 * beyond is not seen: process_spawn_options.env_first puts one first, where a
 * program that keeps its environment's order keeps it), and an entry whose
 * rest is longer than PROCESS_ENV_ENTRY_MAX - 1 is passed over.  Processes
 * whose environment cannot be read (another user's, a kernel thread's) are
 * passed over.  Returns the number of processes cb saw, or -errno when /proc
 * cannot be read.
 */
#define PROCESS_ENV_SCAN_MAX (64 * 1024)
#define PROCESS_ENV_ENTRY_MAX 8192
typedef void (*process_scan_cb)(pid_t pid, const char *rest, uint64_t start_time, uid_t uid, void *userdata);
int process_scan_env(const char *prefix, process_scan_cb cb, void *userdata);

/* pid's start time as process_get_stat() reads it, or 0 when it cannot (no such process): a drop-in for
 * callers that record 0 for "none". */
uint64_t process_start_time(pid_t pid);
