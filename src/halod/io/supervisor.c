/* SPDX-License-Identifier: MIT */
/* Spawns and watches child processes: one pidfd each, a new process group each, and orphan reaping. */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

struct proc {
    struct supervisor *sup;
    struct proc *next, **pprev;
    pid_t pid;
    int pidfd;
    uv_poll_t poll;
    proc_exit_cb cb;
    void *userdata;
    bool exited;
    bool adopted; /* not our child: its exit shows on the pidfd, someone else reaps it */
};

struct supervisor {
    uv_loop_t *loop;
    uv_signal_t sigchld;
    struct proc *procs;
    unsigned n_procs;
};

extern char **environ;

static int pidfd_open_(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void proc_close_cb(uv_handle_t *h) {
    free(h->data);
}

/* Unlinks and schedules the free of a proc whose exit was handled. */
static void proc_finish(struct proc *p, int status) {
    if (p->exited)
        return;
    p->exited = true;
    *p->pprev = p->next;
    if (p->next)
        p->next->pprev = p->pprev;
    p->sup->n_procs--;
    uv_poll_stop(&p->poll);
    if (p->cb)
        p->cb(p, status, p->userdata);
    p->pidfd = safe_close(p->pidfd);
    uv_close((uv_handle_t *)&p->poll, proc_close_cb);
}

static void on_pidfd(uv_poll_t *h, int status, int events) {
    struct proc *p = h->data;
    siginfo_t si = {0};

    if (p->adopted) {
        /* A pidfd of a process that is not our child polls readable once it has exited. */
        proc_finish(p, PROC_STATUS_UNKNOWN);
        return;
    }
    if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0) {
        /* Already reaped by the SIGCHLD path, which handled it. */
        return;
    }
    if (si.si_pid == 0)
        return; /* spurious */
    int ws = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status & 0x7f;
    proc_finish(p, ws);
}

static struct proc *find_proc(struct supervisor *s, pid_t pid) {
    for (struct proc *p = s->procs; p; p = p->next)
        if (p->pid == pid)
            return p;
    return NULL;
}

static void on_sigchld(uv_signal_t *h, int signum) {
    struct supervisor *s = h->data;
    int status;
    pid_t pid;

    /* Reaps orphans re-parented to us (we are a subreaper); our own children
     * are normally reaped through their pidfd first, but whichever path sees
     * an exit first handles it. */
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct proc *p = find_proc(s, pid);
        if (p)
            proc_finish(p, status);
        else
            log_debug("Reaped orphan %d", (int)pid);
    }
}

int supervisor_new(uv_loop_t *loop, struct supervisor **ret) {
    struct supervisor *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        log_warning_errno(errno, "Failed to become a child subreaper, orphans may linger: %m");
    int r = uv_signal_init(loop, &s->sigchld);
    if (r < 0) {
        free(s);
        return r;
    }
    s->sigchld.data = s;
    r = uv_signal_start(&s->sigchld, on_sigchld, SIGCHLD);
    if (r < 0) {
        uv_close((uv_handle_t *)&s->sigchld, NULL);
        free(s); /* safe: the loop is not run again before exit on this path */
        return r;
    }
    *ret = s;
    return 0;
}

static void sup_close_cb(uv_handle_t *h) {
    free(h->data);
}

struct supervisor *supervisor_free(struct supervisor *s) {
    if (!s)
        return NULL;
    for (struct proc *p = s->procs; p; p = p->next)
        p->cb = NULL;
    uv_close((uv_handle_t *)&s->sigchld, sup_close_cb);
    return NULL;
}

/* Runs in the child: only async-signal-safe calls until execve. */
static _Noreturn void child_exec(const struct spawn_params *p, char **envp) {
    sigset_t all;
    sigemptyset(&all);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)signal(sig, SIG_DFL);
    /* glibc's signal() refuses its internal signals (32, 33), which halod may have
     * inherited as ignored; ignored, they would break pthread_cancel() and setuid()
     * in the component.  The raw syscall resets them. */
    for (int sig = 32; sig < SIGRTMIN; sig++) {
        struct {
            void *handler;
            unsigned long flags;
            void *restorer;
            unsigned long mask;
        } ksa = {SIG_DFL, 0, NULL, 0};
        (void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
    }
    sigprocmask(SIG_SETMASK, &all, NULL);
    (void)setsid();
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null > 0)
        (void)dup2(null, 0); /* dup2 clears O_CLOEXEC on the copy */
    else if (null == 0)
        (void)fcntl(0, F_SETFD, 0); /* halod ran with fd 0 closed */
    /* Everything of ours is O_CLOEXEC, but fds a library opened without it must not leak. */
    (void)syscall(SYS_close_range, 3U, ~0U, 0U);
    if (p->workdir && chdir(p->workdir) < 0)
        _exit(126);
    execve(p->path, p->argv, envp);
    _exit(127);
}

/* Builds environ + extra, extra overriding entries with the same name. */
static char **build_env(char *const *extra) {
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    if (extra)
        while (extra[m])
            m++;
    char **e = calloc(n + m + 1, sizeof(char *));
    if (!e)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        bool overridden = false;
        for (size_t j = 0; j < m && !overridden; j++)
            overridden = strncmp(extra[j], environ[i], len) == 0 && extra[j][len] == '=';
        if (!overridden)
            e[k++] = environ[i];
    }
    for (size_t j = 0; j < m; j++)
        e[k++] = extra[j];
    e[k] = NULL;
    return e;
}

static void proc_link(struct supervisor *s, struct proc *pr) {
    pr->next = s->procs;
    if (s->procs)
        s->procs->pprev = &pr->next;
    pr->pprev = &s->procs;
    s->procs = pr;
    s->n_procs++;
}

/* Watches pr->pidfd from the loop and links pr into the supervisor. */
static int proc_watch(struct supervisor *s, struct proc *pr, pid_t pid, proc_exit_cb cb, void *userdata) {
    int r = uv_poll_init(s->loop, &pr->poll, pr->pidfd);
    if (r < 0)
        return r;
    pr->poll.data = pr;
    pr->sup = s;
    pr->pid = pid;
    pr->cb = cb;
    pr->userdata = userdata;
    uv_poll_start(&pr->poll, UV_READABLE, on_pidfd);
    proc_link(s, pr);
    return 0;
}

int supervisor_spawn(struct supervisor *s, const struct spawn_params *p, proc_exit_cb cb, void *userdata,
                     struct proc **ret) {
    _cleanup_free_ char **envp = build_env(p->env);
    if (!envp)
        return -ENOMEM;
    struct proc *pr = calloc(1, sizeof(*pr));
    if (!pr)
        return -ENOMEM;

    pid_t pid = fork();
    if (pid < 0) {
        free(pr);
        return -errno;
    }
    if (pid == 0)
        child_exec(p, envp);

    /* The child cannot be reaped before we open its pidfd: only we wait for it,
     * and the SIGCHLD handler runs from this same loop thread later. */
    pr->pidfd = pidfd_open_(pid);
    if (pr->pidfd < 0) {
        int r = -errno;
        kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        free(pr);
        return r;
    }
    (void)fcntl(pr->pidfd, F_SETFD, FD_CLOEXEC);
    int r = proc_watch(s, pr, pid, cb, userdata);
    if (r < 0) {
        kill(pid, SIGKILL);
        (void)waitpid(pid, NULL, 0);
        close(pr->pidfd);
        free(pr);
        return r;
    }
    *ret = pr;
    return 0;
}

int supervisor_adopt(struct supervisor *s, pid_t pid, proc_exit_cb cb, void *userdata, struct proc **ret) {
    struct proc *pr = calloc(1, sizeof(*pr));
    if (!pr)
        return -ENOMEM;
    pr->pidfd = pidfd_open_(pid);
    if (pr->pidfd < 0) {
        int r = -errno;
        free(pr);
        return r;
    }
    (void)fcntl(pr->pidfd, F_SETFD, FD_CLOEXEC);
    pr->adopted = true;
    int r = proc_watch(s, pr, pid, cb, userdata);
    if (r < 0) {
        close(pr->pidfd);
        free(pr);
        return r;
    }
    *ret = pr;
    return 0;
}

pid_t proc_pid(const struct proc *p) {
    return p->pid;
}

int proc_kill(struct proc *p, int sig) {
    if (p->exited)
        return -ESRCH;
    /* The group first (the child's whole tree); fall back to the pid if the
     * child has not yet called setsid(). */
    if (p->adopted) {
        /* The pid may have been reused once the process ended and its new
         * parent reaped it: signal it through the pidfd, which cannot hit
         * another process; then its group (our component made it). */
        if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0)
            return -errno;
        (void)kill(-p->pid, sig);
        return 0;
    }
    if (kill(-p->pid, sig) < 0 && kill(p->pid, sig) < 0)
        return -errno;
    return 0;
}

void proc_detach(struct proc *p) {
    p->cb = NULL;
    p->userdata = NULL;
}

unsigned supervisor_count(const struct supervisor *s) {
    return s->n_procs;
}

char *proc_status_to_string(int status, char *buf, size_t n) {
    if (status == PROC_STATUS_UNKNOWN)
        snprintf(buf, n, "ended (status unknown: started by a previous halod)");
    else if (WIFEXITED(status))
        snprintf(buf, n, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, n, "killed by signal %d (%s)", WTERMSIG(status), sigabbrev_np(WTERMSIG(status)) ?: "?");
    else
        snprintf(buf, n, "ended with wait status 0x%x", (unsigned)status);
    return buf;
}
