/* SPDX-License-Identifier: MIT */
/* Spawns and watches child processes: one pidfd each, a new process group each, and orphan reaping. */
#define LOG_AREA LOG_AREA_SUPERVISOR
#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "list.h"
#include "log.h"
#include "macro.h"
#include "output-lines.h"
#include "process-util.h"

struct proc {
    struct supervisor *sup;
    LIST_FIELDS(struct proc, procs);
    pid_t pid;
    int pidfd;
    int output_fd; /* capture: a memfd the child wrote to; -1 */
    uv_poll_t poll;
    proc_exit_cb cb;
    void *userdata;
    bool exited;
    bool adopted; /* not our child: its exit shows on the pidfd, someone else reaps it */
};

struct supervisor {
    uv_loop_t *loop;
    uv_signal_t sigchld;
    unsigned long nofile_soft; /* the soft RLIMIT_NOFILE halod started with, its children's; 0: unchanged */
    LIST_HEAD(struct proc) procs;
    unsigned n_procs;
    struct output_lines *lines; /* the pipes of spawn_params.output_tag */
};

static void proc_close_cb(uv_handle_t *h) {
    free(h->data);
}

/* Unlinks and schedules the free of a proc whose exit was handled. */
static void proc_finish(struct proc *p, int status) {
    if (p->exited)
        return;
    p->exited = true;
    LIST_REMOVE(procs, &p->sup->procs, p);
    p->sup->n_procs--;
    uv_poll_stop(&p->poll);
    if (p->cb)
        p->cb(p, status, p->userdata);
    p->pidfd = safe_close(p->pidfd);
    p->output_fd = safe_close(p->output_fd);
    uv_close((uv_handle_t *)&p->poll, proc_close_cb);
}

static void on_pidfd(uv_poll_t *h, int status, int events) {
    struct proc *p = h->data;
    int ws;

    if (p->adopted) {
        /* A pidfd of a process that is not our child polls readable once it has exited. */
        proc_finish(p, PROC_STATUS_UNKNOWN);
        return;
    }
    /* < 0: already reaped by the SIGCHLD path, which handled it; 0: spurious. */
    if (process_pidfd_reap(p->pidfd, &ws) > 0)
        proc_finish(p, ws);
}

bool proc_has_exited(const struct proc *p) {
    struct pollfd pfd = {.fd = p->pidfd, .events = POLLIN};
    return p->exited || (p->pidfd >= 0 && poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN));
}

static struct proc *find_proc(struct supervisor *s, pid_t pid) {
    struct proc *p;
    LIST_FOREACH (procs, p, &s->procs)
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

/* More than halod can use (server.h keeps 4096 connections at most); what
 * systemd raises its own limit to. */
#define SUPERVISOR_NOFILE_MAX ((rlim_t)512 * 1024)

/* Raises the soft open-file limit to the hard one, as systemd does for
 * itself: halod's connections are bounded by it (server.h).  Returns the soft
 * limit it was, for the children (select() cannot take fds past 1024), or 0
 * when it did not change. */
static unsigned long raise_nofile(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= MIN(rl.rlim_max, SUPERVISOR_NOFILE_MAX))
        return 0;
    rlim_t was = rl.rlim_cur;
    rl.rlim_cur = MIN(rl.rlim_max, SUPERVISOR_NOFILE_MAX);
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        log_warning_errno(errno, "Failed to raise the open-file limit from %llu to %llu: %m", (unsigned long long)was,
                          (unsigned long long)rl.rlim_cur);
        return 0;
    }
    log_debug("Open-file limit raised from %llu to %llu", (unsigned long long)was, (unsigned long long)rl.rlim_cur);
    return (unsigned long)was;
}

int supervisor_new(uv_loop_t *loop, struct supervisor **ret) {
    struct supervisor *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->loop = loop;
    if (output_lines_new(loop, &s->lines) < 0) {
        free(s);
        return -ENOMEM;
    }
    s->nofile_soft = raise_nofile();
    if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
        log_warning_errno(errno, "Failed to become a child subreaper, orphans may linger: %m");
    int r = uv_signal_init(loop, &s->sigchld);
    if (r < 0) {
        output_lines_free(s->lines);
        free(s);
        return r;
    }
    s->sigchld.data = s;
    r = uv_signal_start(&s->sigchld, on_sigchld, SIGCHLD);
    if (r < 0) {
        uv_close((uv_handle_t *)&s->sigchld, NULL);
        output_lines_free(s->lines);
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
    /* What still runs (a guard, halo-guard, outlives halod on purpose) is left running and no
     * longer watched: no callback, and nothing of it refers to the supervisor any more. */
    while (s->procs.first) {
        struct proc *p = s->procs.first;
        LIST_REMOVE(procs, &s->procs, p);
        s->n_procs--;
        p->cb = NULL;
        p->exited = true;
        uv_poll_stop(&p->poll);
        p->pidfd = safe_close(p->pidfd);
        p->output_fd = safe_close(p->output_fd);
        uv_close((uv_handle_t *)&p->poll, proc_close_cb);
    }
    s->lines = output_lines_free(s->lines);
    uv_close((uv_handle_t *)&s->sigchld, sup_close_cb);
    return NULL;
}

static void proc_link(struct supervisor *s, struct proc *pr) {
    LIST_PREPEND(procs, &s->procs, pr);
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
    struct process_spawn_options o = {
        .path = p->path,
        .argv = p->argv,
        .env = p->env,
        .env_first = p->env_first,
        .workdir = p->workdir,
        .stdout_fd = -1,
        .stderr_fd = -1,
        .new_session = true, /* so that its whole tree can be killed as a group */
        .nofile_soft = s->nofile_soft,
        .set_uid = p->set_uid,
        .set_gid = p->set_gid,
        .uid = p->uid,
        .gid = p->gid,
        .groups = p->groups,
        .n_groups = p->n_groups,
    };
    struct proc *pr = calloc(1, sizeof(*pr));
    if (!pr)
        return -ENOMEM;
    pr->output_fd = -1;
    if (p->capture) {
        /* In memory, never full: the child never blocks on it, and it is read once it has exited. */
        pr->output_fd = memfd_create("halo-output", MFD_CLOEXEC);
        if (pr->output_fd < 0) {
            free(pr);
            return -errno;
        }
        o.stdout_fd = o.stderr_fd = pr->output_fd;
    }
    _cleanup_close_ int out = -1; /* the child's stdout and stderr, its own once it runs */
    int r = 0;
    if (!p->capture && p->output_tag)
        r = output_lines_open(s->lines, p->output_tag, &out);
    else if (!p->capture && p->output_file &&
             (out = open(p->output_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640)) < 0)
        r = log_error_errno(errno, "Failed to open '%s' for the output of '%s': %m", p->output_file, p->argv[0]);
    if (r < 0) {
        free(pr);
        return r;
    }
    if (out >= 0)
        o.stdout_fd = o.stderr_fd = out;

    pid_t pid;
    r = process_spawn(&o, &pid);
    if (r < 0) {
        safe_close(pr->output_fd);
        free(pr);
        return r;
    }

    /* The child cannot be reaped before we open its pidfd: only we wait for it,
     * and the SIGCHLD handler runs from this same loop thread later. */
    pr->pidfd = process_pidfd_open(pid);
    if (pr->pidfd < 0) {
        r = pr->pidfd;
        kill(pid, SIGKILL);
        (void)process_wait(pid, NULL);
        safe_close(pr->output_fd);
        free(pr);
        return r;
    }
    r = proc_watch(s, pr, pid, cb, userdata);
    if (r < 0) {
        kill(pid, SIGKILL);
        (void)process_wait(pid, NULL);
        close(pr->pidfd);
        safe_close(pr->output_fd);
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
    pr->pidfd = process_pidfd_open(pid);
    if (pr->pidfd < 0) {
        int r = pr->pidfd;
        free(pr);
        return r;
    }
    pr->adopted = true;
    pr->output_fd = -1;
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
        int r = process_pidfd_send_signal(p->pidfd, sig);
        if (r < 0)
            return r;
        (void)kill(-p->pid, sig);
        return 0;
    }
    if (kill(-p->pid, sig) < 0 && kill(p->pid, sig) < 0)
        return -errno;
    return 0;
}

ssize_t proc_output(struct proc *p, char *buf, size_t n, bool last) {
    struct stat st;
    off_t from = 0;
    if (n == 0)
        return -EINVAL;
    buf[0] = '\0';
    if (p->output_fd < 0)
        return 0;
    if (last && fstat(p->output_fd, &st) == 0 && st.st_size > (off_t)(n - 1))
        from = st.st_size - (off_t)(n - 1);
    ssize_t k = pread(p->output_fd, buf, n - 1, from);
    if (k < 0)
        return -errno;
    buf[k] = '\0';
    char *nl = from > 0 ? memchr(buf, '\n', (size_t)k) : NULL;
    if (nl) { /* a line cut in two: from the next one */
        k -= nl + 1 - buf;
        memmove(buf, nl + 1, (size_t)k + 1);
    }
    return k;
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
