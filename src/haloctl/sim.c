/* SPDX-License-Identifier: MIT */
/*
 * haloctl sim: a whole halo cluster on this one machine, to try halo on several nodes and to test it.
 *
 * "sim up" starts an etcd of M members and N halods (nodes n1..nN) as daemons of their own (a new session,
 * stdin /dev/null, output to a log file), records every process with its start time in DIR/sim.json and waits
 * until the cluster has settled.  "sim down" stops the recorded processes, signalling a pid only while it still
 * has the start time recorded for it (the pid may belong to another process by then), and removes DIR.
 *
 * What a simulation keeps in DIR, and all "sim down" removes there:
 *
 *   sim.json  cluster.yaml  counter.state  etcd/mK/ (data)  etcd/mK.log  nK/ (state dir: halod.sock, halod.log)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "macro.h"
#include "sim.h"
#include "strprintf.h"
#include "time-util.h"

#define SIM_NODES_MAX 16
#define SIM_MEMBERS_MAX 7
#define SIM_PORTS_MAX (2 * SIM_MEMBERS_MAX + 1 + 2 * SIM_NODES_MAX)
#define UP_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define STOP_TIMEOUT_MSEC 20000
#define KILL_TIMEOUT_MSEC 5000
#define POLL_INTERVAL_MSEC 100
#define ETCD_DEFAULT "/usr/bin/etcd"

extern char **environ;

/* One process of the simulation, as sim.json records it. */
struct proc {
    char name[24];                 /* m0.., n1.. */
    const char *kind;              /* "etcd", "halod" */
    pid_t pid;                     /* 0: not started (or reaped by sim up) */
    unsigned long long start_time; /* field 22 of /proc/PID/stat: tells our process from a later one with its pid */
    char *log;
};

struct member {
    struct proc proc;
    int client_port, peer_port;
    char *data_dir;
};

struct node {
    struct proc proc;
    char *state_dir, *socket;
    int http_port; /* its HTTP API on 127.0.0.1 */
};

struct sim {
    char *dir;
    char *config;   /* the cluster description the halods run */
    bool generated; /* config is DIR/cluster.yaml, written by sim up */
    int port;       /* the counter SI's port; 0 with --config */
    size_t n_members, n_nodes;
    struct member members[SIM_MEMBERS_MAX];
    struct node nodes[SIM_NODES_MAX];
};

struct sim_args {
    unsigned nodes, members;
    const char *dir, *config;
    const char *node; /* start-node */
    bool json;
};

/* A signal handler's only way out: sim up stops what it started when it is interrupted. */
static volatile sig_atomic_t interrupted;

static void fclosep(FILE **f) {
    if (*f)
        fclose(*f);
}

static void sleep_msec(unsigned ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    (void)nanosleep(&ts, NULL); /* a signal cuts it short: the caller checks 'interrupted' */
}

static const char *jstr(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k)) ?: "";
}

static void sim_done(struct sim *s) {
    free(s->dir);
    free(s->config);
    for (size_t i = 0; i < SIM_MEMBERS_MAX; i++) {
        free(s->members[i].proc.log);
        free(s->members[i].data_dir);
    }
    for (size_t i = 0; i < SIM_NODES_MAX; i++) {
        free(s->nodes[i].proc.log);
        free(s->nodes[i].state_dir);
        free(s->nodes[i].socket);
    }
}

/* Names the members and nodes and derives their paths from DIR.  Returns 0 or -errno (after saying why). */
static int sim_layout(struct sim *s) {
    assert_return(s->n_members <= SIM_MEMBERS_MAX && s->n_nodes <= SIM_NODES_MAX, -EINVAL);
    for (size_t i = 0; i < s->n_members; i++) {
        struct member *m = &s->members[i];
        snprintf(m->proc.name, sizeof(m->proc.name), "m%zu", i);
        m->proc.kind = "etcd";
        m->data_dir = strprintf("%s/etcd/%s", s->dir, m->proc.name);
        m->proc.log = strprintf("%s/etcd/%s.log", s->dir, m->proc.name);
        if (!m->data_dir || !m->proc.log)
            return -ENOMEM;
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        struct node *n = &s->nodes[i];
        snprintf(n->proc.name, sizeof(n->proc.name), "n%zu", i + 1);
        n->proc.kind = "halod";
        n->state_dir = strprintf("%s/%s", s->dir, n->proc.name);
        n->socket = strprintf("%s/%s/halod.sock", s->dir, n->proc.name);
        n->proc.log = strprintf("%s/%s/halod.log", s->dir, n->proc.name);
        if (!n->state_dir || !n->socket || !n->proc.log)
            return -ENOMEM;
        if (strlen(n->socket) >= sizeof(((struct sockaddr_un *)NULL)->sun_path)) {
            fprintf(stderr, "haloctl: '%s' is too long for a socket path; choose a shorter --dir\n", n->socket);
            return -ENAMETOOLONG;
        }
    }
    return 0;
}

/* The absolute simulation directory: --dir, else $XDG_RUNTIME_DIR/halo-sim, else /tmp/halo-sim-$UID. */
static int resolve_dir(const char *arg, char **ret) {
    _cleanup_free_ char *d = NULL;
    if (arg && arg[0] == '/')
        d = strdup(arg);
    else if (arg) {
        _cleanup_free_ char *cwd = getcwd(NULL, 0);
        if (!cwd)
            return -errno;
        d = strprintf("%s/%s", cwd, arg);
    } else {
        const char *x = getenv("XDG_RUNTIME_DIR");
        d = x && x[0] == '/' ? strprintf("%s/halo-sim", x) : strprintf("/tmp/halo-sim-%u", (unsigned)getuid());
    }
    if (!d)
        return -ENOMEM;
    size_t n = strlen(d);
    while (n > 1 && d[n - 1] == '/')
        d[--n] = '\0';
    if (streq(d, "/")) {
        fprintf(stderr, "haloctl: '/' cannot be a simulation's directory\n");
        return -EINVAL;
    }
    *ret = TAKE_PTR(d);
    return 0;
}

static int self_exe(char **ret) {
    char buf[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    char *s = strdup(buf);
    if (!s)
        return -ENOMEM;
    *ret = s;
    return 0;
}

/* The program $env names, else the first of rels (relative to haloctl's own directory) that can be run.
 * Returns 0 and its absolute path, or -ENOENT. */
static int find_program(const char *env, const char *self, const char *const *rels, size_t n_rels, char **ret) {
    const char *e = getenv(env);
    if (e && *e) {
        char *p = realpath(e, NULL);
        if (!p || access(p, X_OK) < 0) {
            free(p);
            return -ENOENT;
        }
        *ret = p;
        return 0;
    }
    for (size_t i = 0; i < n_rels; i++) {
        const char *slash = strrchr(self, '/');
        _cleanup_free_ char *rel = strprintf("%.*s/%s", (int)(slash ? slash - self : 1), slash ? self : ".", rels[i]);
        if (!rel)
            return -ENOMEM;
        char *p = realpath(rel, NULL);
        if (p && access(p, X_OK) == 0) {
            *ret = p;
            return 0;
        }
        free(p);
    }
    return -ENOENT;
}

/* n distinct loopback TCP ports, free a moment ago.  They are taken below the kernel's ephemeral range, so that none
 * of the many connections the daemons open to etcd can take one before the component that listens on it starts. */
static int pick_ports(size_t n, int *ret) {
    int fds[SIM_PORTS_MAX], ports[SIM_PORTS_MAX], r = 0;
    size_t k = 0;
    unsigned lo = 32768, tries = 0;
    assert_return(n <= SIM_PORTS_MAX, -EINVAL);

    _cleanup_(fclosep) FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (!f || fscanf(f, "%u", &lo) != 1)
        lo = 32768;
    unsigned base = lo > 11024 ? lo - 10000 : 1024, span = lo > base ? lo - base : 0;
    uint32_t x = (uint32_t)getpid() ^ (uint32_t)now_monotonic_usec();
    while (k < n) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift32: spread the guesses */
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (span >= 1000 && tries++ < 1000)
            a.sin_port = htons((uint16_t)(base + x % span));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            r = -errno;
            break;
        }
        socklen_t len = sizeof(a);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            r = -errno;
            safe_close(fd);
            if (r == -EADDRINUSE && a.sin_port != 0) {
                r = 0;
                continue;
            }
            break;
        }
        if (getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
            r = -errno;
            safe_close(fd);
            break;
        }
        fds[k] = fd; /* held until every port is picked: no port twice */
        ports[k++] = ntohs(a.sin_port);
    }
    for (size_t i = 0; i < k; i++)
        safe_close(fds[i]);
    if (r < 0)
        return r;
    memcpy(ret, ports, n * sizeof(*ret));
    return 0;
}

/* ---- the cluster description ---------------------------------------------- */

static void yaml_quoted(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* Writes s->config: the example counter service, 2N, one service unit per node, each with its own standby port. */
static int write_cluster_yaml(const struct sim *s, const char *counter, const int *standby_ports) {
    _cleanup_free_ char *tmp = strprintf("%s.tmp", s->config);
    _cleanup_free_ char *state = strprintf("%s/counter.state", s->dir);
    if (!tmp || !state)
        return -ENOMEM;
    _cleanup_(fclosep) FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f, "# Written by 'haloctl sim up': the example counter service, 2N, one service unit per node.\n"
               "cluster: sim\n\nnodes:\n");
    for (size_t i = 0; i < s->n_nodes; i++)
        fprintf(f, "  %s: {}\n", s->nodes[i].proc.name);
    fprintf(f, "\ndefaults:\n  component:\n    health-check: {period: 500ms, timeout: 1s}\n\n"
               "service-groups:\n  counter:\n    redundancy: 2N\n    component:\n      command: ");
    yaml_quoted(f, counter);
    fprintf(f, "\n    service-units:\n");
    for (size_t i = 0; i < s->n_nodes; i++)
        fprintf(
            f,
            "      counter-%s:\n        node: %s\n        component:\n          args: [\"--standby-port\", \"%d\"]\n",
            s->nodes[i].proc.name, s->nodes[i].proc.name, standby_ports[i]);
    fprintf(f,
            "    service-instances:\n      counter:\n        entrypoint: true\n        csis:\n          counter:\n     "
            "       attributes:\n"
            "              port: \"%d\"\n              bind: 127.0.0.1\n              state-file: ",
            s->port);
    yaml_quoted(f, state);
    fputc('\n', f);
    if (fflush(f) != 0 || ferror(f))
        return -EIO;
    if (rename(tmp, s->config) < 0)
        return -errno;
    return 0;
}

/* Checks that the description at path names exactly the nodes n1..nN.  Returns 0, or -EINVAL after saying what is
 * wrong (halod --check has found the file valid already). */
static int config_check_nodes(const char *path, size_t n_nodes) {
    _cleanup_(fclosep) FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    yaml_parser_t p;
    yaml_document_t d;
    if (!yaml_parser_initialize(&p))
        return -ENOMEM;
    yaml_parser_set_input_file(&p, f);
    int ok = yaml_parser_load(&p, &d);
    yaml_parser_delete(&p);
    if (!ok)
        return -EBADMSG;

    bool seen[SIM_NODES_MAX] = {}, good = true;
    char names[512] = "";
    yaml_node_t *root = yaml_document_get_root_node(&d), *nodes = NULL;
    if (root && root->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(&d, pr->key);
            if (k && k->type == YAML_SCALAR_NODE && streq((char *)k->data.scalar.value, "nodes"))
                nodes = yaml_document_get_node(&d, pr->value);
        }
    if (nodes && nodes->type == YAML_MAPPING_NODE)
        for (yaml_node_pair_t *pr = nodes->data.mapping.pairs.start; pr < nodes->data.mapping.pairs.top; pr++) {
            yaml_node_t *k = yaml_document_get_node(&d, pr->key);
            const char *name = k && k->type == YAML_SCALAR_NODE ? (char *)k->data.scalar.value : "?";
            size_t i = 0;
            for (char want[24]; i < n_nodes; i++) {
                snprintf(want, sizeof(want), "n%zu", i + 1);
                if (streq(name, want))
                    break;
            }
            if (i < n_nodes)
                seen[i] = true;
            else
                good = false;
            size_t len = strlen(names);
            snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "", name);
        }
    else
        good = false; /* no 'nodes': one node, 'local' */
    for (size_t i = 0; i < n_nodes; i++)
        good = good && seen[i];
    yaml_document_delete(&d);
    if (!good) {
        fprintf(stderr,
                "haloctl: '%s' must name exactly the nodes n1..n%zu of the simulation (--nodes %zu); it names %s\n",
                path, n_nodes, n_nodes, *names ? names : "none ('local' by default)");
        return -EINVAL;
    }
    return 0;
}

/* ---- processes ------------------------------------------------------------ */

struct spawn_io {
    const char *log; /* stdin /dev/null, stdout and stderr appended to log; without one: */
    int out, err;    /* stdout, stderr to these fds (-1: ours) */
    bool session;    /* a session of its own, in /: a daemon that outlives haloctl and its terminal */
};

/* Starts path with default signal handling and no fd but 0, 1 and 2.  Returns 0 and the pid, or -errno. */
static int spawn(const char *path, char *const argv[], const struct spawn_io *io, pid_t *ret_pid) {
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t all, none;
    pid_t pid;

    sigfillset(&all);
    sigemptyset(&none);
    int r = posix_spawn_file_actions_init(&fa);
    if (r)
        return -r;
    r = posix_spawnattr_init(&attr);
    if (r) {
        posix_spawn_file_actions_destroy(&fa);
        return -r;
    }
    r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
                                            (io->session ? POSIX_SPAWN_SETSID : 0))
            ?: posix_spawnattr_setsigdefault(&attr, &all) ?: posix_spawnattr_setsigmask(&attr, &none);
    if (!r && io->log)
        r = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)
                ?: posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, io->log, O_WRONLY | O_CREAT | O_APPEND, 0644)
                ?: posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    if (!r && !io->log && io->out >= 0)
        r = posix_spawn_file_actions_adddup2(&fa, io->out, STDOUT_FILENO);
    if (!r && !io->log && io->err >= 0)
        r = posix_spawn_file_actions_adddup2(&fa, io->err, STDERR_FILENO);
    if (!r && io->session)
        r = posix_spawn_file_actions_addchdir_np(&fa, "/");
    /* Ours are O_CLOEXEC; whatever our caller let us inherit, a daemon must not hold on to. */
    if (!r)
        r = posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
    if (!r)
        r = posix_spawn(&pid, path, &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (r)
        return -r;
    *ret_pid = pid;
    return 0;
}

static int wait_child(pid_t pid, int *ret_status) {
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -errno;
    *ret_status = st;
    return 0;
}

/* The state letter and start time of pid, from /proc/PID/stat.  Returns 0, -ESRCH if there is no such process. */
static int proc_stat(pid_t pid, char *ret_state, unsigned long long *ret_start) {
    char path[64], buf[1024];
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
        p = strchr(p, ' ');
        if (!p)
            return -EIO;
        p++;
    }
    *ret_state = state;
    *ret_start = strtoull(p, NULL, 10);
    return 0;
}

/* Reaps the process of pidfd if it is a child of ours and has ended; of any other process, the pidfd alone tells
 * the end. */
static void reap(int pidfd) {
    siginfo_t si;
    (void)waitid(P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG);
}

/* Opens a pidfd for p while it runs as the process sim up started.  Returns 0 and the pidfd; -ESRCH if it has
 * ended (a zombie has); -ESTALE if its pid belongs to another process now; -errno. */
static int proc_open(const struct proc *p, int *ret_fd) {
    if (p->pid <= 0)
        return -ESRCH;
    /* The pidfd first: if the start time matches after it is open, the pidfd is our process, whatever happens. */
    _cleanup_close_ int fd = pidfd_open(p->pid, 0);
    if (fd < 0)
        return -errno;
    char state;
    unsigned long long start;
    int r = proc_stat(p->pid, &state, &start);
    if (r < 0)
        return r;
    if (start != p->start_time)
        return -ESTALE;
    if (state == 'Z' || state == 'X') {
        reap(fd); /* if it is a child of ours (sim up stopping what it started) */
        return -ESRCH;
    }
    *ret_fd = TAKE_FD(fd);
    return 0;
}

static bool proc_alive(const struct proc *p) {
    _cleanup_close_ int fd = -1;
    return proc_open(p, &fd) == 0;
}

static int start_proc(struct proc *p, const char *path, char *const argv[]) {
    struct spawn_io io = {.log = p->log, .out = -1, .err = -1, .session = true};
    pid_t pid;
    char state;
    int r = spawn(path, argv, &io, &pid);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot start %s %s ('%s'): %s\n", p->kind, p->name, path, strerror(-r));
        return r;
    }
    p->pid = pid;
    /* Our child until we exit: its /proc entry stays, a zombie at worst, until we reap it. */
    r = proc_stat(pid, &state, &p->start_time);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot read the start time of %s %s (pid %d): %s\n", p->kind, p->name, (int)pid,
                strerror(-r));
        return r;
    }
    return 0;
}

/* Waits up to timeout_ms for the processes with an open pidfd in fds to end; says so of each that does. */
static void wait_ends(struct proc **procs, int *fds, size_t n, int timeout_ms, const char *what, bool quiet) {
    usec_t deadline = now_monotonic_usec() + (usec_t)timeout_ms * USEC_PER_MSEC;
    for (;;) {
        struct pollfd pfd[SIM_NODES_MAX];
        size_t idx[SIM_NODES_MAX], k = 0;
        for (size_t i = 0; i < n; i++)
            if (fds[i] >= 0) {
                pfd[k] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                idx[k++] = i;
            }
        usec_t now = now_monotonic_usec();
        if (k == 0 || now >= deadline)
            return;
        int r = poll(pfd, k, (int)((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
        if (r < 0 && errno != EINTR)
            return;
        for (size_t j = 0; r > 0 && j < k; j++) {
            if (!pfd[j].revents)
                continue;
            struct proc *p = procs[idx[j]];
            reap(fds[idx[j]]);
            fds[idx[j]] = safe_close(fds[idx[j]]);
            if (!quiet)
                printf("%-5s %-3s pid %-8d %s\n", p->kind, p->name, (int)p->pid, what);
        }
    }
}

/* Stops procs together: SIGTERM to each, up to STOP_TIMEOUT_MSEC for them to end, SIGKILL after that.  A process is
 * signalled only through a pidfd opened while its pid has the start time sim up recorded.  Says what it does unless
 * quiet.  Returns 0, or -errno when a process could not be stopped. */
static int stop_procs(struct proc **procs, size_t n, bool quiet) {
    int fds[SIM_NODES_MAX], ret = 0;
    assert_return(n <= SIM_NODES_MAX, -EINVAL);

    for (size_t i = 0; i < n; i++) {
        struct proc *p = procs[i];
        fds[i] = -1;
        int r = proc_open(p, &fds[i]);
        if (r == 0 && pidfd_send_signal(fds[i], SIGTERM, NULL, 0) < 0) {
            r = errno == ESRCH ? -ESRCH : -errno;
            fds[i] = safe_close(fds[i]);
        }
        if (r == -ESRCH && p->pid > 0 && !quiet)
            printf("%-5s %-3s pid %-8d was not running\n", p->kind, p->name, (int)p->pid);
        else if (r == -ESTALE && !quiet)
            printf("%-5s %-3s pid %-8d was not running (the pid is another process's now; left alone)\n", p->kind,
                   p->name, (int)p->pid);
        else if (r < 0 && r != -ESRCH && r != -ESTALE) {
            fprintf(stderr, "haloctl: cannot stop %s %s (pid %d): %s\n", p->kind, p->name, (int)p->pid, strerror(-r));
            ret = r;
        }
    }
    wait_ends(procs, fds, n, STOP_TIMEOUT_MSEC, "stopped", quiet);
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0 && pidfd_send_signal(fds[i], SIGKILL, NULL, 0) < 0 && errno != ESRCH)
            ret = -errno;
    wait_ends(procs, fds, n, KILL_TIMEOUT_MSEC, "killed: it did not stop within 20 s", quiet);
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) {
            fprintf(stderr, "haloctl: %s %s (pid %d) does not end, even killed\n", procs[i]->kind, procs[i]->name,
                    (int)procs[i]->pid);
            fds[i] = safe_close(fds[i]);
            ret = -ETIMEDOUT;
        }
    return ret;
}

/* Stops the halods first (they stop their components and leave the cluster), then etcd. */
static int sim_stop(struct sim *s, bool quiet) {
    struct proc *procs[SIM_NODES_MAX];
    for (size_t i = 0; i < s->n_nodes; i++)
        procs[i] = &s->nodes[i].proc;
    int r = stop_procs(procs, s->n_nodes, quiet);
    for (size_t i = 0; i < s->n_members; i++)
        procs[i] = &s->members[i].proc;
    int q = stop_procs(procs, s->n_members, quiet);
    return r < 0 ? r : q;
}

/* ---- the record: DIR/sim.json ------------------------------------------------ */

static char *endpoints(const struct sim *s) {
    char buf[SIM_MEMBERS_MAX * 32] = "";
    for (size_t i = 0; i < s->n_members; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof(buf) - len, "%shttp://127.0.0.1:%d", i ? "," : "", s->members[i].client_port);
    }
    return strdup(buf);
}

static int sim_save(const struct sim *s) {
    _cleanup_free_ char *eps = endpoints(s), *path = strprintf("%s/sim.json", s->dir),
                        *tmp = strprintf("%s/sim.json.tmp", s->dir);
    if (!eps || !path || !tmp)
        return -ENOMEM;
    json_t *etcd = json_array(), *nodes = json_array();
    for (size_t i = 0; i < s->n_members; i++) {
        const struct member *m = &s->members[i];
        char client[64], peer[64];
        snprintf(client, sizeof(client), "http://127.0.0.1:%d", m->client_port);
        snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
        json_array_append_new(etcd,
                              json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s}", "name", m->proc.name, "pid",
                                        (int)m->proc.pid, "start_time", (json_int_t)m->proc.start_time, "client_url",
                                        client, "peer_url", peer, "data_dir", m->data_dir, "log", m->proc.log));
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        const struct node *n = &s->nodes[i];
        char http[64];
        snprintf(http, sizeof(http), "http://127.0.0.1:%d/", n->http_port);
        json_array_append_new(nodes, json_pack("{s:s, s:i, s:I, s:s, s:s, s:s, s:s}", "name", n->proc.name, "pid",
                                               (int)n->proc.pid, "start_time", (json_int_t)n->proc.start_time, "socket",
                                               n->socket, "state_dir", n->state_dir, "log", n->proc.log, "http", http));
    }
    json_t *root = json_pack("{s:i, s:s, s:s, s:b, s:s, s:o, s:o, s:o}", "version", 1, "dir", s->dir, "config",
                             s->config, "generated", s->generated, "endpoints", eps, "counter_port",
                             s->port ? json_integer(s->port) : json_null(), "etcd", etcd, "nodes", nodes);
    if (!root)
        return -ENOMEM;
    int r = json_dump_file(root, tmp, JSON_INDENT(2));
    json_decref(root);
    if (r < 0)
        return -EIO;
    if (rename(tmp, path) < 0)
        return -errno;
    return 0;
}

/* Reads DIR/sim.json into s (s->dir set by the caller).  Returns 0; -ENOENT when there is none; -EBADMSG, after
 * saying why, when it is not a record sim up wrote. */
static int sim_load(struct sim *s) {
    _cleanup_free_ char *path = strprintf("%s/sim.json", s->dir);
    if (!path)
        return -ENOMEM;
    if (access(path, F_OK) < 0)
        return -errno;
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e), *etcd = NULL, *nodes = NULL, *port = NULL;
    const char *config = NULL, *why = e.text;
    int generated = 0, r = -EBADMSG;
    if (!root)
        goto out;
    why = "the fields of a simulation record are missing";
    if (json_unpack(root, "{s:s, s:b, s:o, s:o, s:o}", "config", &config, "generated", &generated, "counter_port",
                    &port, "etcd", &etcd, "nodes", &nodes) < 0 ||
        !json_is_array(etcd) || !json_is_array(nodes) || json_array_size(etcd) < 1 ||
        json_array_size(etcd) > SIM_MEMBERS_MAX || json_array_size(nodes) < 1 || json_array_size(nodes) > SIM_NODES_MAX)
        goto out;
    s->n_members = json_array_size(etcd);
    s->n_nodes = json_array_size(nodes);
    s->generated = generated;
    s->port = json_is_integer(port) ? (int)json_integer_value(port) : 0;
    s->config = strdup(config);
    if (!s->config || (r = sim_layout(s)) < 0) {
        r = r == -EBADMSG ? -ENOMEM : r;
        why = strerror(-r);
        goto out;
    }
    r = -EBADMSG;
    why = "a process's record is not what sim up writes";
    for (size_t i = 0; i < s->n_members + s->n_nodes; i++) {
        bool member = i < s->n_members;
        json_t *o = member ? json_array_get(etcd, i) : json_array_get(nodes, i - s->n_members);
        struct proc *p = member ? &s->members[i].proc : &s->nodes[i - s->n_members].proc;
        const char *name, *client = "";
        int pid;
        json_int_t start;
        if (json_unpack(o, "{s:s, s:i, s:I}", "name", &name, "pid", &pid, "start_time", &start) < 0 ||
            !streq(name, p->name) || pid < 0 || start < 0)
            goto out;
        if (member && (json_unpack(o, "{s:s}", "client_url", &client) < 0 ||
                       sscanf(client, "http://127.0.0.1:%d", &s->members[i].client_port) != 1))
            goto out;
        if (!member && (json_unpack(o, "{s:s}", "http", &client) < 0 ||
                        sscanf(client, "http://127.0.0.1:%d", &s->nodes[i - s->n_members].http_port) != 1))
            goto out;
        p->pid = pid;
        p->start_time = (unsigned long long)start;
    }
    r = 0;
out:
    if (r == -EBADMSG)
        fprintf(stderr, "haloctl: '%s' is not a simulation record: %s\n", path, why);
    json_decref(root);
    return r;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Removes path and everything under it, on its file system only, following no symbolic link. */
static int remove_tree(const char *path) {
    if (nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Removes what a simulation keeps in DIR, nothing else there; then DIR itself unless keep_dir or other files stay
 * in it.  Returns 1 if DIR is gone, 0 if it stays, -errno. */
static int sim_remove(const struct sim *s, bool keep_dir) {
    _cleanup_free_ char *etcd = strprintf("%s/etcd", s->dir), *state = strprintf("%s/counter.state", s->dir),
                        *record = strprintf("%s/sim.json", s->dir), *tmp = strprintf("%s/sim.json.tmp", s->dir);
    if (!etcd || !state || !record || !tmp)
        return -ENOMEM;
    int r = remove_tree(etcd);
    for (size_t i = 0; r >= 0 && i < s->n_nodes; i++)
        r = remove_tree(s->nodes[i].state_dir);
    if (r < 0)
        return r;
    if (s->generated && ((unlink(s->config) < 0 && errno != ENOENT) || (unlink(state) < 0 && errno != ENOENT)))
        return -errno;
    if ((unlink(tmp) < 0 && errno != ENOENT) || unlink(record) < 0)
        return -errno;
    if (keep_dir)
        return 0;
    if (rmdir(s->dir) < 0)
        return errno == ENOTEMPTY || errno == EEXIST ? 0 : -errno;
    return 1;
}

/* ---- waiting for the cluster ------------------------------------------------ */

/* Whether etcd answers on port that it is healthy (it has a leader): GET /health over plain HTTP/1.0. */
static bool etcd_healthy(int port) {
    static const char req[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 1};
    char buf[4096];
    size_t len = 0;
    _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) < 0)
        return false;
    for (;;) {
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof(buf) - 1)
            break;
    }
    buf[len] = '\0';
    return strstr(buf, "\"health\":\"true\"") != NULL;
}

/* A halod's status, asked through our own binary (haloctl --socket S status --json) so that this module needs no
 * HA link of its own; its complaints while halod starts go to /dev/null.  Returns 0 and the JSON, or -errno. */
static int node_status(const char *self, const char *socket, json_t **ret) {
    char *argv[] = {"haloctl", "--socket", (char *)socket, "--timeout", "2", "--json", "status", NULL};
    int pipefd[2], st;
    pid_t pid;
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return -errno;
    _cleanup_close_ int rfd = pipefd[0], wfd = pipefd[1];
    _cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null < 0)
        return -errno;
    struct spawn_io io = {.out = wfd, .err = null};
    int r = spawn(self, argv, &io, &pid);
    if (r < 0)
        return r;
    wfd = safe_close(wfd);

    _cleanup_free_ char *buf = NULL;
    size_t len = 0, size = 0;
    for (;;) {
        if (len + 1 >= size) {
            char *b = realloc(buf, size = size ? 2 * size : 16384);
            if (!b) {
                r = -ENOMEM;
                break;
            }
            buf = b;
        }
        ssize_t n = read(rfd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = n < 0 ? -errno : 0;
            break;
        }
        len += (size_t)n;
    }
    rfd = safe_close(rfd);
    int q = wait_child(pid, &st);
    if (r < 0 || q < 0)
        return r < 0 ? r : q;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -ECONNREFUSED;
    buf[len] = '\0';
    json_t *j = json_loads(buf, 0, NULL);
    if (!j)
        return -EBADMSG;
    *ret = j;
    return 0;
}

static void print_log_tail(const char *path) {
    char buf[2048];
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t size = lseek(fd, 0, SEEK_END), from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = size > 0 ? pread(fd, buf, sizeof(buf) - 1, from) : 0;
    if (n <= 0)
        return;
    buf[n] = '\0';
    char *p = buf;
    if (from > 0) { /* from the first whole line */
        p = strchr(buf, '\n');
        if (!p)
            return;
        p++;
    }
    fprintf(stderr, "  %s ends with:\n", path);
    for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(stderr, "  | %s\n", line);
}

/* Reaps those of our children among the simulation's processes that have ended already.  Returns 0, or -ECHILD after
 * saying which one ended and how. */
static int check_exits(struct sim *s) {
    for (size_t i = 0; i < s->n_members + s->n_nodes; i++) {
        struct proc *p = i < s->n_members ? &s->members[i].proc : &s->nodes[i - s->n_members].proc;
        int st;
        if (p->pid <= 0 || waitpid(p->pid, &st, WNOHANG) <= 0)
            continue;
        if (WIFEXITED(st))
            fprintf(stderr, "haloctl: %s %s exited with status %d while the cluster started\n", p->kind, p->name,
                    WEXITSTATUS(st));
        else
            fprintf(stderr, "haloctl: %s %s was killed by signal %s while the cluster started\n", p->kind, p->name,
                    sigabbrev_np(WTERMSIG(st)) ?: "?");
        p->pid = 0; /* reaped: the pid is free for others now */
        print_log_tail(p->log);
        return -ECHILD;
    }
    return 0;
}

static int wait_etcd(struct sim *s, usec_t deadline) {
    for (;;) {
        int r = check_exits(s);
        if (r < 0)
            return r;
        size_t healthy = 0;
        for (size_t i = 0; i < s->n_members; i++)
            healthy += etcd_healthy(s->members[i].client_port);
        if (healthy == s->n_members)
            return 0;
        if (interrupted)
            return -EINTR;
        if (now_monotonic_usec() >= deadline) {
            fprintf(stderr,
                    "haloctl: etcd did not become healthy within %llu s (%zu of %zu members are); see %s/etcd/\n",
                    (unsigned long long)(UP_TIMEOUT_USEC / USEC_PER_SEC), healthy, s->n_members, s->dir);
            return -ETIMEDOUT;
        }
        sleep_msec(POLL_INTERVAL_MSEC);
    }
}

/* Whether a node's status shows the cluster settled: a coordinator, every node ONLINE, every SI fully assigned with
 * no change pending.  If not, says why in why. */
static bool view_settled(json_t *st, const char *node, char *why, size_t n) {
    size_t i, j, k;
    json_t *x, *sg, *si, *a;
    if (!json_is_string(json_object_get(st, "coordinator"))) {
        snprintf(why, n, "%s sees no coordinator", node);
        return false;
    }
    json_array_foreach(json_object_get(st, "nodes"), i, x) {
        if (!streq(jstr(x, "state"), "ONLINE")) {
            snprintf(why, n, "%s sees node %s %s", node, jstr(x, "name"), jstr(x, "state"));
            return false;
        }
    }
    json_array_foreach(json_object_get(st, "service_groups"), i, sg) {
        json_array_foreach(json_object_get(sg, "service_instances"), j, si) {
            if (!streq(jstr(si, "assignment"), "FULLY-ASSIGNED")) {
                snprintf(why, n, "%s sees SI '%s' %s", node, jstr(si, "name"), jstr(si, "assignment"));
                return false;
            }
            json_array_foreach(json_object_get(si, "assignments"), k, a) {
                if (json_is_true(json_object_get(a, "pending"))) {
                    snprintf(why, n, "%s sees a change of SI '%s' pending", node, jstr(si, "name"));
                    return false;
                }
            }
        }
    }
    return true;
}

/* Waits until every halod answers 'status', they agree on the coordinator and each sees the cluster settled.
 * Returns 0 and the first node's status, or -errno after saying why. */
static int wait_settled(struct sim *s, const char *self, usec_t deadline, json_t **ret) {
    char why[256] = "no halod answers yet";
    for (;;) {
        json_t *views[SIM_NODES_MAX] = {};
        int r = check_exits(s);
        bool settled = r >= 0;
        for (size_t i = 0; settled && i < s->n_nodes; i++)
            if (node_status(self, s->nodes[i].socket, &views[i]) < 0) {
                snprintf(why, sizeof(why), "halod %s does not answer 'status'", s->nodes[i].proc.name);
                settled = false;
            }
        for (size_t i = 0; settled && i < s->n_nodes; i++) {
            settled = view_settled(views[i], s->nodes[i].proc.name, why, sizeof(why));
            if (settled && !streq(jstr(views[i], "coordinator"), jstr(views[0], "coordinator"))) {
                snprintf(why, sizeof(why), "%s and %s name different coordinators", s->nodes[0].proc.name,
                         s->nodes[i].proc.name);
                settled = false;
            }
        }
        if (settled)
            *ret = json_incref(views[0]);
        for (size_t i = 0; i < s->n_nodes; i++)
            json_decref(views[i]);
        if (r < 0 || settled)
            return r;
        if (interrupted)
            return -EINTR;
        if (now_monotonic_usec() >= deadline) {
            fprintf(stderr, "haloctl: the cluster did not settle within %llu s: %s\n",
                    (unsigned long long)(UP_TIMEOUT_USEC / USEC_PER_SEC), why);
            return -ETIMEDOUT;
        }
        sleep_msec(POLL_INTERVAL_MSEC);
    }
}

/* ---- sim up ------------------------------------------------------------------ */

static void on_signal(int sig) {
    interrupted = 1;
}

/* Runs halod --check on path, whose complaints go to our stderr; then checks its node names. */
static int check_config(const char *halod, const char *path, size_t n_nodes) {
    char *argv[] = {"halod", "--check", (char *)path, NULL};
    _cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    struct spawn_io io = {.out = null, .err = -1};
    pid_t pid;
    int st;
    if (null < 0)
        return -errno;
    int r = spawn(halod, argv, &io, &pid);
    if (r < 0 || (r = wait_child(pid, &st)) < 0) {
        fprintf(stderr, "haloctl: cannot run '%s --check': %s\n", halod, strerror(-r));
        return r;
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "haloctl: '%s' is not a valid cluster description (see above)\n", path);
        return -EINVAL;
    }
    return config_check_nodes(path, n_nodes);
}

/* Makes DIR ready for a new simulation: refuses while a recorded one runs, clears the files of one that has ended,
 * and refuses to write over files no simulation recorded. */
static int prepare_dir(const struct sim *s) {
    struct stat st;
    if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
        int r = -errno;
        fprintf(stderr, "haloctl: cannot create '%s': %s\n", s->dir, strerror(-r));
        return r;
    }
    if (stat(s->dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "haloctl: '%s' is not a directory\n", s->dir);
        return -ENOTDIR;
    }
    _cleanup_(sim_done) struct sim old = {.dir = strdup(s->dir)};
    if (!old.dir)
        return -ENOMEM;
    int r = sim_load(&old);
    if (r < 0 && r != -ENOENT && r != -EBADMSG)
        fprintf(stderr, "haloctl: cannot read '%s/sim.json': %s\n", s->dir, strerror(-r));
    if (r == -ENOENT) {
        _cleanup_free_ char *etcd = strprintf("%s/etcd", s->dir), *state = strprintf("%s/counter.state", s->dir);
        const char *mine[SIM_NODES_MAX + 3] = {etcd, s->generated ? s->config : NULL, s->generated ? state : NULL};
        for (size_t i = 0; i < s->n_nodes; i++)
            mine[3 + i] = s->nodes[i].state_dir;
        for (size_t i = 0; i < s->n_nodes + 3; i++)
            if (mine[i] && lstat(mine[i], &st) == 0) {
                fprintf(stderr,
                        "haloctl: '%s' exists, and no simulation recorded in '%s' made it; choose another --dir\n",
                        mine[i], s->dir);
                return -EEXIST;
            }
        return 0;
    }
    if (r < 0)
        return r;
    for (size_t i = 0; i < old.n_members + old.n_nodes; i++)
        if (proc_alive(i < old.n_members ? &old.members[i].proc : &old.nodes[i - old.n_members].proc)) {
            fprintf(stderr, "haloctl: a simulation already runs in '%s'; haloctl sim down first\n", s->dir);
            return -EBUSY;
        }
    /* The record of a simulation that has ended (its processes died, or sim up failed): start afresh. */
    r = sim_remove(&old, true);
    if (r < 0)
        fprintf(stderr, "haloctl: cannot clear the ended simulation in '%s': %s\n", s->dir, strerror(-r));
    return r;
}

static int start_member(struct sim *s, size_t i, const char *etcd) {
    struct member *m = &s->members[i];
    char cluster[SIM_MEMBERS_MAX * 48] = "", client[64], peer[64];
    for (size_t k = 0; k < s->n_members; k++) {
        size_t len = strlen(cluster);
        snprintf(cluster + len, sizeof(cluster) - len, "%s%s=http://127.0.0.1:%d", k ? "," : "",
                 s->members[k].proc.name, s->members[k].peer_port);
    }
    snprintf(client, sizeof(client), "http://127.0.0.1:%d", m->client_port);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", m->peer_port);
    /* Tuned as the tests and benchmarks tune it: with a 500 ms election timeout a lease of 1 s is safe. */
    char *argv[] = {"etcd", "--name", m->proc.name, "--data-dir", m->data_dir, "--listen-client-urls", client,
                    "--advertise-client-urls", client, "--listen-peer-urls", peer, "--initial-advertise-peer-urls",
                    peer, "--initial-cluster", cluster, "--initial-cluster-state", "new", "--heartbeat-interval=50",
                    "--election-timeout=500",
                    /* halod writes all the time (events, offsets): keep etcd's history bounded. */
                    "--auto-compaction-mode=periodic", "--auto-compaction-retention=5m", "--logger=zap",
                    "--log-level=warn", NULL};
    return start_proc(&m->proc, etcd, argv);
}

static int start_node(struct sim *s, size_t i, const char *halod, const char *eps) {
    struct node *n = &s->nodes[i];
    char http[64];
    snprintf(http, sizeof(http), "127.0.0.1:%d", n->http_port);
    char *argv[] = {"halod",      "--node",   n->proc.name, "--etcd", (char *)eps, "--lease-ttl", "1", "--state-dir",
                    n->state_dir, "--socket", n->socket,    "--http", http,        s->config,     NULL};
    return start_proc(&n->proc, halod, argv);
}

/* The node an SU runs on, from a status. */
static const char *su_node(json_t *sg, const char *su) {
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(sg, "service_units"), i, u) {
        if (streq(jstr(u, "name"), su))
            return jstr(u, "node");
    }
    return "?";
}

static void print_summary(const struct sim *s, json_t *st, const char *dir_opt) {
    size_t i, j;
    json_t *sg, *si;
    const char *coord = jstr(st, "coordinator");
    printf("A halo cluster runs in '%s': %zu nodes on %zu etcd member%s.\n\n", s->dir, s->n_nodes, s->n_members,
           s->n_members == 1 ? "" : "s");
    for (i = 0; i < s->n_members; i++)
        printf("  etcd  %-3s pid %-8d http://127.0.0.1:%d\n", s->members[i].proc.name, (int)s->members[i].proc.pid,
               s->members[i].client_port);
    for (i = 0; i < s->n_nodes; i++)
        printf("  halod %-3s pid %-8d %s  http://127.0.0.1:%d/%s\n", s->nodes[i].proc.name, (int)s->nodes[i].proc.pid,
               s->nodes[i].socket, s->nodes[i].http_port, streq(coord, s->nodes[i].proc.name) ? "  (coordinator)" : "");
    printf("\n");
    json_array_foreach(json_object_get(st, "service_groups"), i, sg) {
        json_array_foreach(json_object_get(sg, "service_instances"), j, si) {
            printf("  SI %s: ACTIVE %s on %s, STANDBY %s on %s\n", jstr(si, "name"), jstr(si, "active"),
                   su_node(sg, jstr(si, "active")), jstr(si, "standby"), su_node(sg, jstr(si, "standby")));
        }
    }
    if (s->port)
        printf("  The counter's ACTIVE answers on 127.0.0.1:%d (INCR key, GET key, PING).\n", s->port);
    printf("\nLogs:        %s/etcd/mK.log, %s/nK/halod.log\n"
           "Look at it:  haloctl --socket %s status\n"
           "             haloctl sim status%s\n"
           "Stop it:     haloctl sim down%s\n",
           s->dir, s->dir, s->nodes[0].socket, dir_opt, dir_opt);
}

/* Records s in DIR/sim.json, or says why it cannot. */
static int save_or_say(const struct sim *s) {
    int r = sim_save(s);
    if (r < 0)
        fprintf(stderr, "haloctl: cannot write '%s/sim.json': %s\n", s->dir, strerror(-r));
    return r;
}

static int cmd_up(const struct sim_args *a) {
    static const char *const halod_paths[] = {"../halod/halod", "halod"};
    static const char *const counter_paths[] = {"../../examples/counter"};
    _cleanup_(sim_done) struct sim s = {.n_nodes = a->nodes, .n_members = a->members};
    _cleanup_free_ char *self = NULL, *halod = NULL, *counter = NULL, *eps = NULL, *dir_opt = NULL;
    int ports[SIM_PORTS_MAX], r;
    json_t *status = NULL;

    r = resolve_dir(a->dir, &s.dir);
    if (r < 0)
        return r;
    r = self_exe(&self);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot tell where haloctl is: %s\n", strerror(-r));
        return r;
    }
    if (find_program("HALO_HALOD", self, halod_paths, ELEMENTSOF(halod_paths), &halod) < 0) {
        fprintf(stderr, "haloctl: cannot find halod beside '%s'; set $HALO_HALOD\n", self);
        return -ENOENT;
    }
    const char *etcd = getenv("HALO_ETCD_BINARY") ?: ETCD_DEFAULT;
    if (access(etcd, X_OK) < 0) {
        r = -errno;
        fprintf(stderr,
                "haloctl: cannot run etcd '%s': %s; install it (Debian: etcd-server) or set $HALO_ETCD_BINARY\n", etcd,
                strerror(-r));
        return r;
    }
    if (a->config) {
        s.config = realpath(a->config, NULL);
        if (!s.config) {
            r = -errno;
            fprintf(stderr, "haloctl: cannot open '%s': %s\n", a->config, strerror(-r));
            return r;
        }
        r = check_config(halod, s.config, s.n_nodes);
        if (r < 0)
            return r;
    } else {
        if (s.n_nodes < 2) {
            fprintf(stderr, "haloctl: the example service (2N, one unit per node) needs --nodes 2 or more; "
                            "describe another layout with --config\n");
            return -EINVAL;
        }
        if (find_program("HALO_COUNTER", self, counter_paths, ELEMENTSOF(counter_paths), &counter) < 0) {
            fprintf(stderr,
                    "haloctl: cannot find the example counter (build/examples/counter) beside '%s'; "
                    "set $HALO_COUNTER or pass --config\n",
                    self);
            return -ENOENT;
        }
        s.generated = true;
        s.config = strprintf("%s/cluster.yaml", s.dir);
        if (!s.config)
            return -ENOMEM;
    }
    dir_opt = a->dir ? strprintf(" --dir %s", s.dir) : strdup("");
    if (!dir_opt)
        return -ENOMEM;
    r = sim_layout(&s);
    if (r < 0)
        return r;
    r = prepare_dir(&s);
    if (r < 0)
        return r;

    /* Ports: each member's client and peer port, the SI's port, each unit's
     * standby port, each node's HTTP API. */
    r = pick_ports(2 * s.n_members + 1 + 2 * s.n_nodes, ports);
    if (r < 0) {
        fprintf(stderr, "haloctl: cannot find free loopback ports: %s\n", strerror(-r));
        return r;
    }
    for (size_t i = 0; i < s.n_members; i++) {
        s.members[i].client_port = ports[2 * i];
        s.members[i].peer_port = ports[2 * i + 1];
    }
    for (size_t i = 0; i < s.n_nodes; i++)
        s.nodes[i].http_port = ports[2 * s.n_members + 1 + s.n_nodes + i];
    if (s.generated) {
        s.port = ports[2 * s.n_members];
        r = write_cluster_yaml(&s, counter, ports + 2 * s.n_members + 1);
        if (r < 0) {
            fprintf(stderr, "haloctl: cannot write '%s': %s\n", s.config, strerror(-r));
            return r;
        }
    }
    _cleanup_free_ char *etcd_dir = strprintf("%s/etcd", s.dir);
    if (!etcd_dir)
        return -ENOMEM;
    for (size_t i = 0; i <= s.n_nodes; i++) {
        const char *d = i == 0 ? etcd_dir : s.nodes[i - 1].state_dir;
        if (mkdir(d, 0700) < 0 && errno != EEXIST) {
            r = -errno;
            fprintf(stderr, "haloctl: cannot create '%s': %s\n", d, strerror(-r));
            return r;
        }
    }
    eps = endpoints(&s);
    if (!eps)
        return -ENOMEM;

    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a signal cuts the waits short */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    usec_t deadline = now_monotonic_usec() + UP_TIMEOUT_USEC;

    /* Recorded before anything starts and after each start, so that sim down finds whatever a crash of ours would
     * leave behind. */
    r = save_or_say(&s);
    for (size_t i = 0; r >= 0 && i < s.n_members; i++)
        if ((r = start_member(&s, i, etcd)) >= 0)
            r = save_or_say(&s);
    if (r >= 0)
        r = wait_etcd(&s, deadline);
    for (size_t i = 0; r >= 0 && i < s.n_nodes; i++)
        if ((r = start_node(&s, i, halod, eps)) >= 0)
            r = save_or_say(&s);
    if (r >= 0)
        r = wait_settled(&s, self, deadline, &status);
    if (r < 0) {
        if (r == -EINTR)
            fprintf(stderr, "haloctl: interrupted\n");
        fprintf(stderr,
                "haloctl: stopping what sim up started; the logs stay in '%s' (haloctl sim down%s removes it)\n", s.dir,
                dir_opt);
        (void)sim_stop(&s, true);
        (void)sim_save(&s);
        return r;
    }
    print_summary(&s, status, dir_opt);
    json_decref(status);
    return 0;
}

/* ---- sim down, sim status ------------------------------------------------------ */

static int load_or_say(struct sim *s, const struct sim_args *a) {
    int r = resolve_dir(a->dir, &s->dir);
    if (r < 0)
        return r;
    r = sim_load(s);
    if (r == -ENOENT)
        fprintf(stderr, "haloctl: no simulation in '%s' (it has no sim.json)\n", s->dir);
    else if (r < 0 && r != -EBADMSG)
        fprintf(stderr, "haloctl: cannot read '%s/sim.json': %s\n", s->dir, strerror(-r));
    return r;
}

static int cmd_down(const struct sim_args *a) {
    _cleanup_(sim_done) struct sim s = {};
    int r = load_or_say(&s, a);
    if (r < 0)
        return r;
    r = sim_stop(&s, false);
    if (r < 0) {
        fprintf(stderr, "haloctl: not every process of the simulation stopped; '%s' stays\n", s.dir);
        return r;
    }
    r = sim_remove(&s, false);
    if (r < 0)
        fprintf(stderr, "haloctl: cannot remove the simulation's files in '%s': %s\n", s.dir, strerror(-r));
    else if (r == 0)
        printf("removed the simulation's files; '%s' stays: it holds files of someone else's\n", s.dir);
    else
        printf("removed '%s'\n", s.dir);
    return r < 0 ? r : 0;
}

static bool socket_answers(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return false;
    strcpy(sa.sun_path, path);
    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    return fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

static int cmd_status(const struct sim_args *a) {
    _cleanup_(sim_done) struct sim s = {};
    _cleanup_free_ char *self = NULL;
    int r = load_or_say(&s, a);
    if (r < 0)
        return r;
    r = self_exe(&self);
    if (r < 0)
        return r;
    for (size_t i = 0; i < s.n_nodes; i++) {
        if (!socket_answers(s.nodes[i].socket))
            continue;
        char *argv[] = {"haloctl", "--socket", s.nodes[i].socket, "status", a->json ? "--json" : NULL, NULL};
        fflush(stdout);
        execv(self, argv);
        r = -errno;
        fprintf(stderr, "haloctl: cannot run '%s': %s\n", self, strerror(-r));
        return r;
    }
    fprintf(stderr, "haloctl: no halod of the simulation in '%s' answers (tried n1..n%zu)\n", s.dir, s.n_nodes);
    return -ECONNREFUSED;
}

/* Starts a node's halod again (after it died or was killed), as sim up started it. */
static int cmd_start_node(const struct sim_args *a) {
    static const char *const halod_paths[] = {"../halod/halod", "halod"};
    _cleanup_(sim_done) struct sim s = {};
    _cleanup_free_ char *self = NULL, *halod = NULL, *eps = NULL;
    int r = load_or_say(&s, a);
    if (r < 0)
        return r;
    struct node *n = NULL;
    for (size_t i = 0; i < s.n_nodes; i++)
        if (streq(s.nodes[i].proc.name, a->node))
            n = &s.nodes[i];
    if (!n) {
        fprintf(stderr, "haloctl: the simulation in '%s' has no node '%s' (n1..n%zu)\n", s.dir, a->node, s.n_nodes);
        return -ENOENT;
    }
    if (proc_alive(&n->proc)) {
        fprintf(stderr, "haloctl: the halod of node '%s' runs already (pid %d)\n", a->node, (int)n->proc.pid);
        return -EEXIST;
    }
    r = self_exe(&self);
    if (r >= 0 && find_program("HALO_HALOD", self, halod_paths, ELEMENTSOF(halod_paths), &halod) < 0) {
        fprintf(stderr, "haloctl: cannot find halod beside '%s'; set $HALO_HALOD\n", self);
        r = -ENOENT;
    }
    if (r < 0)
        return r;
    if (!(eps = endpoints(&s)))
        return -ENOMEM;
    (void)unlink(n->socket); /* a killed halod leaves it: wait for the new one's */
    r = start_node(&s, (size_t)(n - s.nodes), halod, eps);
    if (r < 0 || (r = save_or_say(&s)) < 0)
        return r;
    for (int i = 0; i < 200 && !socket_answers(n->socket); i++) {
        if (!proc_alive(&n->proc)) {
            fprintf(stderr, "haloctl: the halod of node '%s' exited at start; see '%s'\n", a->node, n->proc.log);
            return -ECHILD;
        }
        sleep_msec(50);
    }
    if (!socket_answers(n->socket)) {
        fprintf(stderr, "haloctl: the halod of node '%s' does not answer on '%s'\n", a->node, n->socket);
        return -ETIMEDOUT;
    }
    printf("started the halod of node '%s' (pid %d)\n", a->node, (int)n->proc.pid);
    return 0;
}

/* ---- the command ----------------------------------------------------------------- */

struct sim_verb {
    const char *name;
    const char *options; /* the short names of the options it takes */
    int (*run)(const struct sim_args *a);
};

static const struct sim_verb sim_verbs[] = {
    {"up", "nmdc", cmd_up},
    {"down", "d", cmd_down},
    {"status", "dj", cmd_status},
    {"start-node", "d", cmd_start_node},
};

static int parse_count(const char *s, const char *opt, unsigned max, unsigned *ret) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < 1 || v > max) {
        fprintf(stderr, "haloctl: %s wants a number from 1 to %u, not '%s'\n", opt, max, s);
        return -EINVAL;
    }
    *ret = (unsigned)v;
    return 0;
}

int sim_main(int argc, char **argv, bool json) {
    static const struct option opts[] = {
        {"nodes", required_argument, NULL, 'n'}, {"etcd-members", required_argument, NULL, 'm'},
        {"dir", required_argument, NULL, 'd'},   {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},        {},
    };
    const struct sim_verb *v = NULL;
    struct sim_args a = {.nodes = 3, .members = 1, .json = json};
    int c;

    if (argc < 2) {
        fprintf(stderr, "haloctl: 'sim' wants up, down, status or start-node. Try 'haloctl --help'.\n");
        return 2;
    }
    for (size_t i = 0; i < ELEMENTSOF(sim_verbs); i++)
        if (streq(sim_verbs[i].name, argv[1]))
            v = &sim_verbs[i];
    if (!v) {
        fprintf(stderr, "haloctl: unknown command 'sim %s'. Try 'haloctl --help'.\n", argv[1]);
        return 2;
    }
    /* The verb's own options, anywhere after it. */
    argc--, argv++;
    optind = 0;
    opterr = 0;
    for (;;) {
        int li = -1;
        c = getopt_long(argc, argv, ":n:m:d:c:j", opts, &li);
        if (c < 0)
            break;
        if (c == '?' || c == ':') {
            fprintf(stderr,
                    c == ':' ? "haloctl: 'sim %s': option '%s' needs a value\n"
                             : "haloctl: 'sim %s': unknown option '%s'. Try 'haloctl --help'.\n",
                    v->name, argv[optind - 1]);
            return 2;
        }
        if (!strchr(v->options, c)) {
            for (li = 0; opts[li].val != c; li++)
                ;
            fprintf(stderr, "haloctl: 'sim %s' takes no option '--%s'\n", v->name, opts[li].name);
            return 2;
        }
        switch (c) {
        case 'n':
            if (parse_count(optarg, "--nodes", SIM_NODES_MAX, &a.nodes) < 0)
                return 2;
            break;
        case 'm':
            if (parse_count(optarg, "--etcd-members", SIM_MEMBERS_MAX, &a.members) < 0)
                return 2;
            break;
        case 'd':
            a.dir = optarg;
            break;
        case 'c':
            a.config = optarg;
            break;
        case 'j':
            a.json = true;
            break;
        }
    }
    if (v->run == cmd_start_node) {
        if (optind + 1 != argc) {
            fprintf(stderr, "haloctl: 'sim start-node' takes one node name (n1, n2, ...)\n");
            return 2;
        }
        a.node = argv[optind++];
    }
    if (optind < argc) {
        fprintf(stderr, "haloctl: 'sim %s' takes no argument '%s'\n", v->name, argv[optind]);
        return 2;
    }
    return v->run(&a) < 0 ? 1 : 0;
}
