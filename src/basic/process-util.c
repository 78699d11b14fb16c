/* SPDX-License-Identifier: MIT */
/* Starting a process with nothing of ours but what it is given, and knowing it again later: pidfds, start times. */
#include "process-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "parse-util.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir);

/* The service manager's variables for halod itself (sd_notify(3), sd_listen_fds(3)): a component that
 * found them would talk to systemd in halod's name. */
static bool env_private(const char *e) {
    static const char *const names[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                        "LISTEN_FDS",    "LISTEN_PID",    "LISTEN_FDNAMES"};
    size_t len = strcspn(e, "=");
    for (size_t i = 0; i < ELEMENTSOF(names); i++)
        if (strlen(names[i]) == len && strncmp(names[i], e, len) == 0)
            return true;
    return false;
}

/* Whether the entry e is named as the entry named (both "NAME=..."). */
static bool env_same_name(const char *e, const char *named) {
    size_t len = strcspn(named, "=");
    return strncmp(e, named, len) == 0 && e[len] == '=';
}

/* Builds first + environ + extra, extra overriding entries with the same name, first overriding any, without the
 * service manager's (env_private()).  The strings are not copied. */
static char **env_merge(const char *first, char *const *extra) {
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (extra[m])
        m++;
    char **e = calloc(n + m + 2, sizeof(char *));
    if (!e)
        return NULL;
    size_t k = 0;
    if (first)
        e[k++] = (char *)first;
    for (size_t i = 0; i < n; i++) {
        bool overridden = first && env_same_name(environ[i], first);
        for (size_t j = 0; j < m && !overridden; j++)
            overridden = env_same_name(environ[i], extra[j]);
        if (!overridden && !env_private(environ[i]))
            e[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        if (!first || !env_same_name(extra[j], first))
            e[k++] = extra[j];
    e[k] = NULL;
    return e;
}

/* The rest runs in the child: only async-signal-safe calls until execve. */

/* Ends the child with status, telling the parent why through errfd if it listens. */
static _Noreturn void child_fail(int errfd, int error, int status) {
    if (errfd >= 0)
        (void)!write(errfd, &error, sizeof(error));
    _exit(status);
}

/* Makes fd the child's fd target, open across exec. */
static int child_move_fd(int fd, int target) {
    if (fd == target)
        return fcntl(fd, F_SETFD, 0) < 0 ? -1 : 0; /* dup2() would leave O_CLOEXEC set */
    return dup2(fd, target) < 0 ? -1 : 0;          /* the copy has no O_CLOEXEC */
}

static _Noreturn void child_exec(const struct process_spawn_options *o, char **envp, int errfd, pid_t parent) {
    sigset_t none;

    /* Out of the way of the fds the child is given. */
    if (errfd >= 0 && errfd <= STDERR_FILENO)
        errfd = fcntl(errfd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);

    /* Every signal is blocked (process_spawn() forked so): no handler of the parent runs here. */
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)signal(sig, SIG_DFL);
    /* glibc's signal() refuses its internal signals (32, 33), which the parent may have
     * inherited as ignored; ignored, they would break pthread_cancel() and setuid()
     * in the child.  The raw syscall resets them. */
    for (int sig = 32; sig < SIGRTMIN; sig++) {
        struct {
            void *handler;
            unsigned long flags;
            void *restorer;
            unsigned long mask;
        } ksa = {SIG_DFL, 0, NULL, 0};
        (void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    if (o->new_session)
        (void)setsid();
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0)
        (void)child_move_fd(null, STDIN_FILENO); /* the parent may run with fd 0 closed: null is 0 then */
    if (o->log) {
        int fd = open(o->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 || child_move_fd(fd, STDOUT_FILENO) < 0 || child_move_fd(STDOUT_FILENO, STDERR_FILENO) < 0)
            child_fail(errfd, errno, 127);
    } else {
        if (o->stdout_fd >= 0 && child_move_fd(o->stdout_fd, STDOUT_FILENO) < 0)
            child_fail(errfd, errno, 127);
        if (o->stderr_fd >= 0 && child_move_fd(o->stderr_fd, STDERR_FILENO) < 0)
            child_fail(errfd, errno, 127);
    }
    /* Everything of ours is O_CLOEXEC, but fds a library opened without it must not leak.  errfd stays
     * open until the exec closes it, which tells the parent that the exec succeeded. */
    if (errfd > STDERR_FILENO + 1)
        (void)syscall(SYS_close_range, (unsigned)STDERR_FILENO + 1, (unsigned)errfd - 1, 0U);
    (void)syscall(SYS_close_range, errfd >= 0 ? (unsigned)errfd + 1 : (unsigned)STDERR_FILENO + 1, ~0U, 0U);

    struct rlimit rl;
    if (o->nofile_soft && getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = MIN((rlim_t)o->nofile_soft, rl.rlim_max);
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    /* Groups first, while we may still change them; the workdir is entered as the user. */
    if (o->set_gid && (setgroups(o->n_groups, o->groups) < 0 || setgid(o->gid) < 0))
        child_fail(errfd, errno, 126);
    if (o->set_uid && setuid(o->uid) < 0)
        child_fail(errfd, errno, 126);
    if (o->workdir && chdir(o->workdir) < 0)
        child_fail(errfd, errno, 126);
    /* A marked child whose parent died before this point would run unknown to the parent's successor,
     * which may have looked for it already: it does not start. */
    if (o->env_first && getppid() != parent)
        child_fail(errfd, ESRCH, 127);
    execve(o->path, o->argv, envp);
    child_fail(errfd, errno, 127);
}

int process_spawn(const struct process_spawn_options *o, pid_t *ret_pid) {
    _cleanup_free_ char **envp = NULL;
    _cleanup_close_ int errfd_read = -1;
    int errfd_write = -1;
    sigset_t all, saved;

    assert_return(o && o->path && o->argv && ret_pid, -EINVAL);
    static char *const none[] = {NULL};
    envp = env_merge(o->env_first, o->env ? o->env : none);
    if (!envp)
        return -ENOMEM;
    if (o->exec_error) {
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0)
            return -errno;
        errfd_read = p[0];
        errfd_write = p[1];
    }

    /* Blocked across fork(), so that no handler of ours (a loop's self-pipe, say) runs in the child before
     * it has reset them; the child unblocks them then. */
    sigfillset(&all);
    (void)pthread_sigmask(SIG_SETMASK, &all, &saved);
    pid_t parent = getpid();
    pid_t pid = fork();
    int fork_errno = errno;
    if (pid == 0)
        child_exec(o, envp, errfd_write, parent);
    (void)pthread_sigmask(SIG_SETMASK, &saved, NULL);
    safe_close(errfd_write);
    if (pid < 0)
        return -fork_errno;

    if (o->exec_error) {
        int error = 0;
        ssize_t n;
        do
            n = read(errfd_read, &error, sizeof(error));
        while (n < 0 && errno == EINTR);
        if (n == (ssize_t)sizeof(error)) {
            (void)process_wait(pid, NULL);
            return error > 0 ? -error : -EIO;
        }
        /* 0 bytes: the exec closed the pipe. */
    }
    *ret_pid = pid;
    return 0;
}

int process_wait(pid_t pid, int *ret_status) {
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    if (ret_status)
        *ret_status = st;
    return 0;
}

int process_pidfd_open(pid_t pid) {
    /* pidfd_open() always sets O_CLOEXEC. */
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : fd;
}

int process_pidfd_send_signal(int pidfd, int sig) {
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

int process_pidfd_reap(int pidfd, int *ret_status) {
    siginfo_t si = {0};
    if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0)
        return -errno;
    if (si.si_pid == 0)
        return 0; /* still running */
    if (ret_status)
        *ret_status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status & 0x7f;
    return 1;
}

/* The state (field 3), process group (5) and start time (22) of /proc/PID/stat.  0, -ESRCH, -EIO, -errno. */
static int stat_read(pid_t pid, char *ret_state, pid_t *ret_pgrp, uint64_t *ret_start_time) {
    char path[64], buf[1024];
    uint64_t start, pgrp;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? -ESRCH : -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return errno == ESRCH ? -ESRCH : -errno;
    buf[n] = '\0';
    /* "pid (comm) state ppid ...": comm may hold anything, so count the fields from its last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -EIO;
    p += 2;
    char state = *p;
    for (int field = 3; field < 22; field++) {
        if (field == 5 && parse_u64_n(p, strcspn(p, " "), &pgrp) < 0)
            return -EIO;
        p = strchr(p, ' ');
        if (!p)
            return -EIO;
        p++;
    }
    if (parse_u64_n(p, strcspn(p, " \n"), &start) < 0)
        return -EIO;
    *ret_state = state;
    *ret_pgrp = (pid_t)pgrp;
    *ret_start_time = start;
    return 0;
}

int process_get_stat(pid_t pid, char *ret_state, uint64_t *ret_start_time) {
    char state;
    pid_t pgrp;
    uint64_t start;
    int r = stat_read(pid, &state, &pgrp, &start);
    if (r < 0)
        return r;
    if (ret_state)
        *ret_state = state;
    if (ret_start_time)
        *ret_start_time = start;
    return 0;
}

/* The rest after prefix of pid's first environment entry that starts with it, into ret (NUL-terminated); false:
 * none within the first size - 1 bytes, or longer than ret_size - 1.  env: size bytes to read into. */
static bool env_entry(pid_t pid, const char *prefix, char *env, size_t size, char *ret, size_t ret_size) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    /* One read: the kernel copies the environment from its start up to the size asked. */
    ssize_t n = read(fd, env, size - 1);
    if (n <= 0)
        return false;
    env[n] = '\0';
    size_t len = strlen(prefix);
    /* Entries whole within what was read: the last one may be cut by the bound. */
    for (const char *e = env, *end = env + n; e < end;) {
        const char *nul = memchr(e, '\0', (size_t)(end - e));
        if (!nul)
            return false;
        if (strncmp(e, prefix, len) == 0) {
            if ((size_t)(nul - e) - len >= ret_size)
                return false;
            memcpy(ret, e + len, (size_t)(nul - e) - len + 1);
            return true;
        }
        e = nul + 1;
    }
    return false;
}

/* pid's real user, from /proc/PID/status: the owner of /proc/PID is not it (a process that is not dumpable shows
 * root's).  0 or -errno. */
static int real_uid(pid_t pid, uid_t *ret) {
    char path[64], buf[4096];
    uint64_t uid;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    const char *p = strstr(buf, "\nUid:\t");
    if (!p || parse_u64_n(p + 6, strcspn(p + 6, "\t\n"), &uid) < 0 || uid > UINT32_MAX)
        return -EIO;
    *ret = (uid_t)uid;
    return 0;
}

/* Whether pid leads its process group pgrp, or that group's leader is gone (ended, perhaps not yet reaped): a
 * daemon that outlived the command that started it, or what a process that ended left behind. */
static bool group_first(pid_t pid, pid_t pgrp) {
    char state;
    pid_t leader_pgrp;
    uint64_t start;
    if (pgrp == pid)
        return true;
    if (pgrp <= 1)
        return false;
    if (stat_read(pgrp, &state, &leader_pgrp, &start) < 0)
        return true;
    return state == 'Z' || leader_pgrp != pgrp;
}

int process_scan_env(const char *prefix, process_scan_cb cb, void *userdata) {
    struct dirent *de;
    char rest[PROCESS_ENV_ENTRY_MAX], again[PROCESS_ENV_ENTRY_MAX];
    int seen = 0;

    _cleanup_(closedirp) DIR *d = opendir("/proc");
    if (!d)
        return -errno;
    _cleanup_free_ char *env = malloc(PROCESS_ENV_SCAN_MAX + 1);
    if (!env)
        return -ENOMEM;
    while ((de = readdir(d))) {
        uint64_t v, start;
        char state;
        pid_t pgrp;
        uid_t uid = (uid_t)-1; /* real_uid() */
        if (parse_u64_n(de->d_name, strlen(de->d_name), &v) < 0 || v < 2 || v > INT32_MAX)
            continue;
        pid_t pid = (pid_t)v;
        if (!env_entry(pid, prefix, env, PROCESS_ENV_SCAN_MAX + 1, rest, sizeof(rest)) ||
            stat_read(pid, &state, &pgrp, &start) < 0)
            continue;
        /* Read again after the start time: a pid reused in between shows another environment. */
        if (!group_first(pid, pgrp) || state == 'Z' || real_uid(pid, &uid) < 0 ||
            !env_entry(pid, prefix, env, PROCESS_ENV_SCAN_MAX + 1, again, sizeof(again)) || !streq(rest, again))
            continue;
        cb(pid, rest, start, uid, userdata);
        seen++;
    }
    return seen;
}

uint64_t process_start_time(pid_t pid) {
    uint64_t t;
    return process_get_stat(pid, NULL, &t) < 0 ? 0 : t;
}
