/* SPDX-License-Identifier: MIT */
/* haloctl sim: where a simulation's processes keep their files and which loopback ports they listen on. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "macro.h"
#include "sim-internal.h"
#include "strprintf.h"

void sim_layout_done(struct sim *s) {
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
int sim_layout(struct sim *s) {
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
int sim_layout_dir(const char *arg, char **ret) {
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

/* n distinct loopback TCP ports, free a moment ago.  They are taken below the kernel's ephemeral range, so that none
 * of the many connections the daemons open to etcd can take one before the component that listens on it starts;
 * with first, they are first .. first + n - 1 (a block the caller keeps for this cluster), each free or an error. */
int sim_layout_ports(size_t n, unsigned first, int *ret) {
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
        if (first)
            a.sin_port = htons((uint16_t)(first + k));
        else if (span >= 1000 && tries++ < 1000)
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
            if (r == -EADDRINUSE && first) {
                fprintf(stderr, "haloctl: port %u of --ports %u..%u is in use\n", first + (unsigned)k, first,
                        first + (unsigned)n - 1);
                break;
            }
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

char *sim_layout_endpoints(const struct sim *s) {
    char buf[SIM_MEMBERS_MAX * 32] = "";
    for (size_t i = 0; i < s->n_members; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof(buf) - len, "%shttp://127.0.0.1:%d", i ? "," : "", s->members[i].client_port);
    }
    return strdup(buf);
}
