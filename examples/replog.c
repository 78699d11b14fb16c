/* SPDX-License-Identifier: MIT */
/*
 * replog: a replicated log, the example of recovery (docs/recovery.md).
 *
 * Instances of one pool keep the same numbered log.  The ACTIVE instance of
 * the group takes writes and sends each entry to the others before it
 * answers; an instance that is down misses them.  When one restarts it is
 * told by halod (its entrypoint answer says "recovery") and receives its
 * failure vector; it reports STARTING, fetches what it missed from a peer
 * whose process is ONLINE, reports RECOVERED, and only then serves again.
 * A recovery halod aborts (a device of its own, or too many peers, failed
 * meanwhile) is not over: it asks for its entrypoint again and starts over.
 *
 * Environment: REPLOG_PORT (its port on 127.0.0.1), REPLOG_PEERS ("name=port,
 * ..." of the others), REPLOG_DIR (where <name>.log lives; the "device").
 * Lines on the port:
 *   ADD text      (ACTIVE) append; "OK <seq>"
 *   COUNT         "<seq>" of the last entry, or "ERR recovering"
 *   GET seq       the entry's text
 *   REP seq text  (from the ACTIVE) apply the next entry; "OK", or "GAP <last>"
 *   FETCH seq     every entry after seq ("E <seq> <text>" lines), then "END"
 *
 * One thread, one poll() loop; a peer is asked with a short timeout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <halo/halo.h>

#define MAX_PEERS 8
#define MAX_CLIENTS 32
#define LINE_LEN 512
#define PEER_TIMEOUT_MS 300

struct peer {
    char name[64];
    int port;
};

struct client {
    int fd;
    size_t len;
    char buf[LINE_LEN];
};

static struct {
    halo *h;
    const char *name;
    bool active, serving, recovering, done;
    int port, listen_fd;
    struct peer peers[MAX_PEERS];
    size_t n_peers;
    char **entries; /* entries[i] is seq i + 1 */
    size_t n, cap;
    FILE *log;
    struct client clients[MAX_CLIENTS];
    size_t n_clients;
    long long entrypoint_at; /* ms; 0: asked */
    int recovery_step;       /* 1: the vector is here: catch up */
    uint64_t epoch, vector_len, peer_failures;
} R;

static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "replog %s: ", R.name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the log ---- */

static bool append(const char *text, bool to_file) {
    if (R.n == R.cap) {
        size_t cap = R.cap ? R.cap * 2 : 64;
        char **e = realloc(R.entries, cap * sizeof(*e));
        if (!e)
            return false;
        R.entries = e;
        R.cap = cap;
    }
    if (!(R.entries[R.n] = strdup(text)))
        return false;
    R.n++;
    if (to_file && R.log) {
        fprintf(R.log, "%zu %s\n", R.n, text);
        fflush(R.log);
    }
    return true;
}

static void log_open(void) {
    const char *dir = getenv("REPLOG_DIR") ?: ".";
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.log", dir, R.name);
    FILE *f = fopen(path, "r");
    char line[LINE_LEN + 32];
    while (f && fgets(line, sizeof(line), f)) {
        char *sp = strchr(line, ' ');
        line[strcspn(line, "\n")] = 0;
        if (sp && strtoull(line, NULL, 10) == R.n + 1)
            append(sp + 1, false);
    }
    if (f)
        fclose(f);
    R.log = fopen(path, "a");
    say("log %s: %zu entries", path, R.n);
}

/* ---- peers ---- */

/* Sends line to a peer and reads its answer lines until one equals end (or,
 * when end is NULL, one line) into out; returns the number of lines, -1. */
static int peer_call(const struct peer *p, const char *line, const char *end, char ***out) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_usec = PEER_TIMEOUT_MS * 1000};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(fd, line, strlen(line)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    FILE *f = fdopen(fd, "r");
    char buf[LINE_LEN + 32];
    int n = 0;
    size_t cap = 0;
    *out = NULL;
    while (f && fgets(buf, sizeof(buf), f)) {
        buf[strcspn(buf, "\n")] = 0;
        if ((size_t)n == cap) {
            cap = cap ? cap * 2 : 16;
            char **o = realloc(*out, cap * sizeof(*o));
            if (!o)
                break;
            *out = o;
        }
        (*out)[n++] = strdup(buf);
        if (!end || strcmp(buf, end) == 0 || strncmp(buf, "ERR", 3) == 0)
            break;
    }
    if (f)
        fclose(f);
    else
        close(fd);
    return n;
}

static void lines_free(char **l, int n) {
    for (int i = 0; i < n; i++)
        free(l[i]);
    free(l);
}

/* Applies "E <seq> <text>" lines; returns how many were new. */
static size_t apply_fetched(char **lines, int n) {
    size_t added = 0;
    for (int i = 0; i < n; i++) {
        char *sp;
        if (strncmp(lines[i], "E ", 2) != 0 || !(sp = strchr(lines[i] + 2, ' ')))
            continue;
        if (strtoull(lines[i] + 2, NULL, 10) == R.n + 1 && append(sp + 1, true))
            added++;
    }
    return added;
}

/* Catches up from the first peer whose process the cluster says is ONLINE. */
static bool catch_up(void) {
    for (size_t i = 0; i < R.n_peers; i++) {
        char object[96];
        snprintf(object, sizeof(object), "process:%s", R.peers[i].name);
        const char *objects[] = {object};
        halo_object_state st;
        if (halo_object_state_get(R.h, objects, 1, &st) < 0 || strcmp(st.state, "ONLINE") != 0)
            continue;
        char req[64], **lines;
        size_t before = R.n;
        snprintf(req, sizeof(req), "FETCH %zu\n", R.n);
        int n = peer_call(&R.peers[i], req, "END", &lines);
        if (n <= 0 || strcmp(lines[n - 1], "END") != 0) {
            if (n > 0)
                lines_free(lines, n);
            continue;
        }
        size_t added = apply_fetched(lines, n);
        lines_free(lines, n);
        say("caught up: replayed %zu entries (%zu -> %zu) from %s", added, before, R.n, R.peers[i].name);
        return true;
    }
    return false;
}

/* The ACTIVE sends seq to every peer; a peer with a gap gets what it lacks. */
static void replicate(size_t seq) {
    for (size_t i = 0; i < R.n_peers; i++) {
        char req[LINE_LEN + 32], **lines;
        snprintf(req, sizeof(req), "REP %zu %s\n", seq, R.entries[seq - 1]);
        int n = peer_call(&R.peers[i], req, NULL, &lines);
        if (n == 1 && strncmp(lines[0], "GAP ", 4) == 0) {
            for (size_t s = strtoull(lines[0] + 4, NULL, 10) + 1; s <= seq; s++) {
                char **l2;
                snprintf(req, sizeof(req), "REP %zu %s\n", s, R.entries[s - 1]);
                int k = peer_call(&R.peers[i], req, NULL, &l2);
                if (k > 0)
                    lines_free(l2, k);
            }
        }
        if (n > 0)
            lines_free(lines, n);
    }
}

/* ---- clients ---- */

static void reply(int fd, const char *fmt, ...) {
    char buf[LINE_LEN + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 2)
        n = (int)sizeof(buf) - 2;
    buf[n++] = '\n';
    (void)!write(fd, buf, (size_t)n);
}

static void command(int fd, char *line) {
    if (strncmp(line, "REP ", 4) == 0) {
        char *end, *text;
        size_t seq = strtoull(line + 4, &end, 10);
        text = *end == ' ' ? end + 1 : end;
        if (seq <= R.n)
            reply(fd, "OK");
        else if (seq == R.n + 1 && append(text, true))
            reply(fd, "OK");
        else
            reply(fd, "GAP %zu", R.n);
    } else if (strncmp(line, "FETCH ", 6) == 0) {
        for (size_t s = strtoull(line + 6, NULL, 10) + 1; s <= R.n; s++)
            reply(fd, "E %zu %s", s, R.entries[s - 1]);
        reply(fd, "END");
    } else if (!R.serving)
        reply(fd, "ERR recovering");
    else if (strcmp(line, "COUNT") == 0)
        reply(fd, "%zu", R.n);
    else if (strncmp(line, "GET ", 4) == 0) {
        size_t s = strtoull(line + 4, NULL, 10);
        if (s >= 1 && s <= R.n)
            reply(fd, "%s", R.entries[s - 1]);
        else
            reply(fd, "ERR no entry %zu", s);
    } else if (strncmp(line, "ADD ", 4) == 0) {
        if (!R.active)
            reply(fd, "ERR not ACTIVE");
        else if (!append(line + 4, true))
            reply(fd, "ERR out of memory");
        else {
            replicate(R.n);
            reply(fd, "OK %zu", R.n);
        }
    } else
        reply(fd, "ERR unknown command");
}

static void client_read(size_t i) {
    struct client *c = &R.clients[i];
    ssize_t k = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
    if (k <= 0) {
        close(c->fd);
        R.clients[i] = R.clients[--R.n_clients];
        return;
    }
    c->len += (size_t)k;
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        *nl = 0;
        command(c->fd, c->buf);
        c->len -= (size_t)(nl + 1 - c->buf);
        memmove(c->buf, nl + 1, c->len);
    }
    if (c->len == sizeof(c->buf)) {
        reply(c->fd, "ERR line too long");
        close(c->fd);
        R.clients[i] = R.clients[--R.n_clients];
    }
}

/* ---- halo ---- */

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state,
                       const halo_csi_descriptor *csi, void *userdata) {
    R.active = state == HALO_HA_ACTIVE;
    say("%s", halo_ha_state_to_string(state));
    halo_response(h, inv, 0);
}

static void on_csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi, unsigned flags,
                          void *userdata) {
    R.active = false;
    halo_response(h, inv, 0);
}

static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    halo_response(h, inv, 0);
    R.done = true;
}

static void on_recovery(halo *h, const halo_recovery_note *note, void *userdata) {
    if (strcmp(note->state, "refused") == 0) {
        say("recovery refused: %s (asking again in 2 s)", note->reason);
        R.entrypoint_at = now_ms() + 2000;
        return;
    }
    if (strcmp(note->state, "aborted") == 0) {
        /* A device of ours or too many peers failed meanwhile: not caught up after all. */
        say("recovery aborted: %s (asking again in 1 s)", note->reason);
        R.serving = false;
        R.recovering = true;
        R.recovery_step = 0;
        R.entrypoint_at = now_ms() + 1000;
        return;
    }
    R.epoch = note->epoch;
    R.vector_len = note->nr_failures;
    for (size_t i = 0; i < note->n_events; i++)
        if (strcmp(note->events[i].state, "FAILED") == 0 && strncmp(note->events[i].object, "process:", 8) == 0 &&
            strcmp(note->events[i].object + 8, R.name) != 0)
            R.peer_failures++;
    char parts[256] = "";
    for (size_t i = 0, len = 0; i < note->n_participants && len < sizeof(parts); i++) {
        int k = snprintf(parts + len, sizeof(parts) - len, "%s%s on %s", i ? ", " : "", note->participants[i].name,
                         note->participants[i].node);
        len += k > 0 ? (size_t)k : 0;
    }
    if (note->n_participants)
        say("the participants of my recovery: %s", parts);
    if (note->last)
        R.recovery_step = 1;
}

static void ask_entrypoint(void) {
    char *json = NULL;
    unsigned retry = 0;
    int r = halo_entrypoint(R.h, &json, &retry);
    if (r == -HALO_ETRYAGAIN) {
        R.entrypoint_at = now_ms() + (retry ? retry : 100);
        return;
    }
    R.entrypoint_at = 0;
    if (r < 0) {
        say("entrypoint: %s", halo_strerror(r));
        R.serving = true;
        return;
    }
    R.recovering = strstr(json, "\"recovery\":true") != NULL;
    free(json);
    if (!R.recovering) {
        catch_up(); /* a first start may find others ahead */
        R.serving = true;
        say("serving %zu entries", R.n);
    } else
        say("restarted after a failure: waiting for my failure vector");
}

static void recover(void) {
    R.recovery_step = 0;
    say("recovering in epoch %llu: my failure vector holds %llu events (%llu failures of peers)",
        (unsigned long long)R.epoch, (unsigned long long)R.vector_len, (unsigned long long)R.peer_failures);
    int r = halo_process_event(R.h, HALO_PROCESS_STARTING, NULL);
    if (r < 0) {
        say("STARTING: %s", halo_strerror(r));
        return;
    }
    if (!catch_up()) {
        say("no ONLINE peer to catch up from; the recovery fails for now");
        (void)halo_process_event(R.h, HALO_PROCESS_RECOVERY_FAILED, "no ONLINE peer to catch up from");
        R.recovery_step = 0;
        R.entrypoint_at = now_ms() + 1000; /* try again */
        return;
    }
    r = halo_process_event(R.h, HALO_PROCESS_RECOVERED, NULL);
    if (r < 0) {
        say("RECOVERED: %s", halo_strerror(r)); /* aborted meanwhile: its note says so, and we ask again */
        return;
    }
    R.recovering = false;
    R.serving = true;
    say("recovered: serving %zu entries", R.n);
}

static void on_sigterm(int sig) {
    R.done = true;
}

int main(void) {
    R.name = getenv("HALO_COMPONENT") ?: "replog";
    R.port = atoi(getenv("REPLOG_PORT") ?: "0");
    char *peers = strdup(getenv("REPLOG_PEERS") ?: "");
    for (char *save = NULL, *t = strtok_r(peers, ",", &save); t && R.n_peers < MAX_PEERS;
         t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq)
            continue;
        *eq = 0;
        snprintf(R.peers[R.n_peers].name, sizeof(R.peers[0].name), "%s", t);
        R.peers[R.n_peers++].port = atoi(eq + 1);
    }
    free(peers);
    if (R.port <= 0) {
        fprintf(stderr, "replog: set REPLOG_PORT\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_sigterm);
    log_open();

    R.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)R.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (R.listen_fd < 0 || setsockopt(R.listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(R.listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(R.listen_fd, 16) < 0) {
        fprintf(stderr, "replog: cannot listen on 127.0.0.1:%d: %s\n", R.port, strerror(errno));
        return 1;
    }

    halo_callbacks cb = {.csi_set = on_csi_set, .csi_remove = on_csi_remove, .terminate = on_terminate};
    int r = halo_open(NULL, &cb, NULL, &R.h);
    if (r == 0)
        r = halo_recovery_set_callback(R.h, on_recovery);
    if (r == 0)
        r = halo_register(R.h, NULL, NULL);
    if (r < 0) {
        fprintf(stderr, "replog: %s\n", halo_strerror(r));
        return 1;
    }
    R.entrypoint_at = now_ms();
    while (!R.done) {
        if (R.entrypoint_at && now_ms() >= R.entrypoint_at)
            ask_entrypoint();
        if (R.recovery_step == 1)
            recover();
        struct pollfd p[2 + MAX_CLIENTS] = {{.fd = halo_fd(R.h), .events = POLLIN},
                                            {.fd = R.listen_fd, .events = POLLIN}};
        for (size_t i = 0; i < R.n_clients; i++)
            p[2 + i] = (struct pollfd){.fd = R.clients[i].fd, .events = POLLIN};
        size_t n_clients = R.n_clients;
        if (poll(p, 2 + n_clients, 50) < 0 && errno != EINTR)
            break;
        if ((p[0].revents & POLLIN) && halo_dispatch(R.h, HALO_DISPATCH_ALL) < 0)
            break;
        if (p[1].revents & POLLIN) {
            int fd = accept4(R.listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0 && R.n_clients < MAX_CLIENTS)
                R.clients[R.n_clients++] = (struct client){.fd = fd};
            else if (fd >= 0)
                close(fd);
        }
        for (size_t i = n_clients; i-- > 0;)
            if (p[2 + i].revents & (POLLIN | POLLHUP | POLLERR))
                client_read(i);
    }
    halo_close(R.h);
    return 0;
}
