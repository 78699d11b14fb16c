/* SPDX-License-Identifier: MIT */
/* halod: the halo node daemon.  Parses options, builds the manager, runs the loop. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "amf.h"
#include "cdb-link.h"
#include "cdb.h"
#include "ha.h"
#include "cluster.h"
#include "http.h"
#include "lease-file.h"
#include "config.h"
#include "halo/halo.h"
#include "log.h"
#include "macro.h"
#include "server.h"
#include "store.h"
#include "supervisor.h"

/* The daemon's context: owns the loop and one pointer per module. */
struct manager {
    uv_loop_t *loop;
    struct config *config;
    const char *node;
    store *store;
    struct supervisor *sup;
    struct server *server;
    struct amf *amf;
    struct cluster *cluster; /* several nodes (etcd) */
    struct http_server *http;
    struct lease_file *lease; /* several nodes: the deadline the processes enforce */
    struct cdb *cdb;
    struct cdb_link *cdb_link;
    struct ha *ha;
    uv_signal_t sigterm, sigint;
    unsigned n_term;
    int lock_fd;
};

static const char *arg_check;
static const char *arg_config;
static const char *arg_state_dir = "/var/lib/halo";
static const char *arg_socket;
static const char *arg_node;
static char *arg_etcd;
static int64_t arg_lease_ttl = 2;
static const char *arg_http = "127.0.0.1:" HTTP_DEFAULT_PORT;
static bool arg_http_given;
static const char *arg_ha_socket;
static const char *arg_ha_control;
static const char *arg_cdb_listen; /* default: this node's cdb-address, else 0.0.0.0:4570 */

static void help(void) {
    printf("Usage: halod [OPTIONS] CLUSTER.yaml\n"
           "       halod --check CLUSTER.yaml\n\n"
           "The halo node daemon: supervises the components of this node and assigns their roles.\n\n"
           "  -n, --check             validate the description, print 'configuration OK' or every error\n"
           "  -d, --state-dir DIR     where the store and the socket live (default /var/lib/halo)\n"
           "  -s, --socket PATH       HA link socket (default STATE_DIR/halod.sock)\n"
           "      --node NAME         this node's name (default: the only node of the description)\n"
           "      --etcd URL[,URL...] share the cluster through etcd (several nodes) instead of the\n"
           "                          local SQLite store; also $HALO_ETCD\n"
           "      --lease-ttl SEC     node lease TTL asked of etcd (default 2; etcd may grant more)\n"
           "      --http ADDR:PORT    the HTTP/JSON API (default 127.0.0.1:" HTTP_DEFAULT_PORT "; 'none': off)\n"
           "      --ha-socket PATH    the HA control socket of the CDB roles (default: ha.sock next to the\n"
           "                          HA link socket)\n"
           "      --ha-control ADDR:PORT  the HA control socket on TCP too (loopback addresses only)\n"
           "      --cdb-listen ADDR:PORT  where this node, as CDB primary, takes secondaries\n"
           "                          (default: the node's cdb-address, else 0.0.0.0:4570)\n"
           "  -l, --log-level LEVEL   error|warning|notice|info|debug, or AREA=LEVEL\n"
           "                          (areas: main amf link supervisor store); may be repeated\n"
           "  -h, --help              this text\n"
           "      --version           print the version\n");
}

static int parse_argv(int argc, char **argv) {
    static const struct option opts[] = {
        {"check", required_argument, NULL, 'n'},      {"state-dir", required_argument, NULL, 'd'},
        {"socket", required_argument, NULL, 's'},     {"node", required_argument, NULL, 'N'},
        {"log-level", required_argument, NULL, 'l'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},          {"etcd", required_argument, NULL, 'E'},
        {"lease-ttl", required_argument, NULL, 'T'},  {"http", required_argument, NULL, 'H'},
        {"ha-socket", required_argument, NULL, 'A'},  {"ha-control", required_argument, NULL, 'C'},
        {"cdb-listen", required_argument, NULL, 'L'}, {},
    };
    int c;
    while ((c = getopt_long(argc, argv, "n:d:s:l:h", opts, NULL)) >= 0) {
        switch (c) {
        case 'n':
            arg_check = optarg;
            break;
        case 'd':
            arg_state_dir = optarg;
            break;
        case 's':
            arg_socket = optarg;
            break;
        case 'N':
            arg_node = optarg;
            break;
        case 'E':
            arg_etcd = optarg;
            break;
        case 'H':
            arg_http = optarg;
            arg_http_given = true;
            break;
        case 'A':
            arg_ha_socket = optarg;
            break;
        case 'C':
            arg_ha_control = optarg;
            break;
        case 'L':
            arg_cdb_listen = optarg;
            break;
        case 'T': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 3600) {
                fprintf(stderr, "halod: --lease-ttl wants whole seconds from 1 to 3600, not '%s'\n", optarg);
                return -EINVAL;
            }
            arg_lease_ttl = v;
            break;
        }
        case 'l': {
            char *eq = strchr(optarg, '=');
            int lvl = log_level_from_string(eq ? eq + 1 : optarg);
            if (lvl < 0) {
                fprintf(stderr, "halod: unknown log level '%s'\n", eq ? eq + 1 : optarg);
                return -EINVAL;
            }
            if (eq) {
                *eq = 0;
                if (log_set_level_area(optarg, lvl) < 0) {
                    fprintf(stderr, "halod: unknown log area '%s'\n", optarg);
                    return -EINVAL;
                }
            } else
                log_set_level(lvl);
            break;
        }
        case 'h':
            help();
            return 0;
        case 'V':
            printf("halod %d.%d\n", HALO_VERSION_MAJOR, HALO_VERSION_MINOR);
            return 0;
        default:
            fprintf(stderr, "Try 'halod --help'.\n");
            return -EINVAL;
        }
    }
    if (!arg_check) {
        if (optind != argc - 1) {
            fprintf(stderr, "halod: expected one cluster description file. Try 'halod --help'.\n");
            return -EINVAL;
        }
        arg_config = argv[optind];
    } else if (optind != argc) {
        fprintf(stderr, "halod: --check takes the file as its argument.\n");
        return -EINVAL;
    }
    return 1;
}

/* The token file: one line of 1 to LINK_NAME_MAX printable bytes (a trailing newline is dropped). */
static int read_token(const char *path, char *buf, size_t size) {
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    if (n == 0 || (size_t)n > LINK_NAME_MAX)
        return -EINVAL;
    for (ssize_t i = 0; i < n; i++)
        if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            return -EINVAL;
    return 0;
}

static int run_check(void) {
    struct config *c = NULL;
    _cleanup_free_ char *errors = NULL;
    int r = config_load(arg_check, &c, &errors);
    if (r < 0) {
        if (errors && *errors)
            fputs(errors, stderr);
        else
            fprintf(stderr, "%s: %s\n", arg_check, halo_strerror(r));
        return EXIT_FAILURE;
    }
    config_free(c);
    printf("configuration OK\n");
    return EXIT_SUCCESS;
}

static void on_server_msg(struct conn *c, const LinkMsg *m, void *userdata) {
    struct manager *mgr = userdata;
    if (mgr->cdb_link && cdb_link_handle_msg(mgr->cdb_link, c, m))
        return;
    amf_handle_msg(mgr->amf, c, m);
}

static void on_server_close(struct conn *c, const char *reason, void *userdata) {
    struct manager *mgr = userdata;
    if (mgr->cdb_link)
        cdb_link_conn_closed(mgr->cdb_link, c);
    if (mgr->amf)
        amf_conn_closed(mgr->amf, c, reason);
}

/* Every write queued before this read has completed (the backends run
 * requests in order): the store may close now.  A networked store keeps
 * idle connections polled, so the loop would not end by itself. */
static void on_flushed(store *s, int error, const store_result *r, void *userdata) {
    struct manager *m = userdata;
    m->cluster = cluster_free(m->cluster);
    m->store = store_free(m->store);
}

static void on_stopped(struct amf *a, void *userdata) {
    struct manager *m = userdata;
    log_info("All components stopped; exiting");
    m->http = http_server_free(m->http);
    if (m->cluster) {
        cluster_leave(m->cluster); /* the others take over now, not when the lease runs out */
        cluster_close(m->cluster);
    }
    m->ha = ha_free(m->ha); /* commits waiting for secondaries are answered while their clients are there */
    m->server = server_free(m->server);
    amf_close(m->amf);
    m->sup = supervisor_free(m->sup);
    uv_close((uv_handle_t *)&m->sigterm, NULL);
    uv_close((uv_handle_t *)&m->sigint, NULL);
    /* The store goes last: pending writes of the final state complete first. */
    if (store_get(m->store, "/halo/", on_flushed, m) < 0)
        on_flushed(m->store, -ECANCELED, NULL, m);
}

static void on_signal(uv_signal_t *h, int signum) {
    struct manager *m = h->data;
    if (m->n_term++ == 0) {
        log_info("Received %s, stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        amf_stop(m->amf, on_stopped, m);
    } else {
        log_warning("Received %s again, killing every component now", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        amf_kill_all(m->amf);
    }
}

static void on_cluster_joined(struct cluster *c, void *userdata) {
    struct manager *m = userdata;
    amf_cluster_joined(m->amf);
}

static void on_cluster_coordinator(struct cluster *c, bool coordinator, void *userdata) {
    struct manager *m = userdata;
    amf_cluster_coordinator(m->amf, coordinator);
}

static void on_cluster_fence(struct cluster *c, void *userdata) {
    struct manager *m = userdata;
    amf_cluster_fence(m->amf);
    /* Its ACTIVE processes are killed: the others may stay while halod is here. */
    lease_file_set(m->lease, LINK_LEASE_NONE);
}

static void on_cluster_renewed(struct cluster *c, uint64_t deadline_usec, void *userdata) {
    struct manager *m = userdata;
    lease_file_set(m->lease, deadline_usec);
}

static int on_http_status(void *userdata, char **json) {
    struct manager *m = userdata;
    *json = amf_status_json(m->amf);
    return *json ? 0 : -ENOMEM;
}

static int on_http_metrics(void *userdata, char **text) {
    struct manager *m = userdata;
    return amf_metrics_text(m->amf, text);
}

static int on_http_entrypoint(void *userdata, char **json) {
    struct manager *m = userdata;
    return amf_entrypoint_json(m->amf, json);
}

static int on_http_events(void *userdata, const char *body, size_t len, char **reply, const char **error) {
    struct manager *m = userdata;
    return amf_events_post(m->amf, body, len, reply, error);
}

static const struct http_handlers http_handlers = {
    .status = on_http_status,
    .events = on_http_events,
    .metrics = on_http_metrics,
    .entrypoint = on_http_entrypoint,
};

/* "ADDR:PORT", "[::1]:PORT" or "none".  Returns 0 (off), 1, or -EINVAL. */
static int parse_http(const char *s, char *addr, size_t n, uint16_t *port) {
    if (streq(s, "none"))
        return 0;
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -EINVAL;
    const char *a = s, *e = colon;
    if (*a == '[' && e[-1] == ']')
        a++, e--;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || p < 0 || p > 65535 || (size_t)(e - a) >= n || e == a)
        return -EINVAL;
    memcpy(addr, a, (size_t)(e - a));
    addr[e - a] = 0;
    *port = (uint16_t)p;
    return 1;
}

static void on_server_drained(struct conn *c, void *userdata) {
    struct manager *m = userdata;
    if (m->amf)
        amf_conn_drained(m->amf, c);
}

static const struct cluster_handlers cluster_handlers = {
    .on_joined = on_cluster_joined,
    .on_coordinator = on_cluster_coordinator,
    .on_fence = on_cluster_fence,
    .on_renewed = on_cluster_renewed,
};

/* "URL,URL,..." -> endpoints (pointers into s, which is modified). */
static size_t split_endpoints(char *s, const char **out, size_t max) {
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
        if (*t)
            out[n++] = t;
    return n;
}

/* Exactly one halod per state directory. */
static int take_lock(const char *dir, int *ret_fd) {
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/halod.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int r = errno == EWOULDBLOCK ? -EBUSY : -errno;
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

static const char *pick_node(const struct config *c) {
    if (arg_node)
        return config_find_node(c, arg_node) ? arg_node : NULL;
    if (c->n_nodes == 1)
        return c->nodes[0].name;
    static char host[HOST_NAME_MAX + 1];
    if (gethostname(host, sizeof(host)) == 0 && config_find_node(c, host))
        return host;
    return NULL;
}

int main(int argc, char **argv) {
    struct manager m = {.lock_fd = -1};
    _cleanup_free_ char *errors = NULL;
    char path[PATH_MAX], sock[PATH_MAX];
    int r;

    log_set_prefix("halod");
    r = parse_argv(argc, argv);
    if (r <= 0)
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
    if (arg_check)
        return run_check();

    signal(SIGPIPE, SIG_IGN);
    r = config_load(arg_config, &m.config, &errors);
    if (r < 0) {
        if (errors && *errors)
            fputs(errors, stderr);
        log_error_errno(r, "Failed to load the cluster description '%s': %m", arg_config);
        return EXIT_FAILURE;
    }
    m.node = pick_node(m.config);
    if (!m.node) {
        log_error(arg_node ? "Node '%s' is not in the cluster description"
                           : "Cannot tell which node this is; pass --node NAME%s",
                  arg_node ?: "");
        return EXIT_FAILURE;
    }
    if (mkdir(arg_state_dir, 0700) < 0 && errno != EEXIST) {
        log_error_errno(errno, "Failed to create the state directory '%s': %m", arg_state_dir);
        return EXIT_FAILURE;
    }
    r = take_lock(arg_state_dir, &m.lock_fd);
    if (r < 0) {
        log_error_errno(r,
                        r == -EBUSY ? "Another halod runs on state directory '%s'"
                                    : "Failed to lock the state directory '%s': %m",
                        arg_state_dir);
        return EXIT_FAILURE;
    }

    m.loop = uv_default_loop();
    if (!arg_etcd && getenv("HALO_ETCD") && *getenv("HALO_ETCD"))
        arg_etcd = getenv("HALO_ETCD");
    if (arg_etcd) {
        const char *eps[16];
        _cleanup_free_ char *copy = strdup(arg_etcd);
        size_t n = copy ? split_endpoints(copy, eps, ELEMENTSOF(eps)) : 0;
        if (n == 0) {
            log_error("--etcd wants one or more URLs separated by commas, like http://127.0.0.1:2379");
            return EXIT_FAILURE;
        }
        snprintf(path, sizeof(path), "etcd %s", arg_etcd);
        r = store_etcd_new(m.loop, eps, n, &m.store);
    } else {
        snprintf(path, sizeof(path), "%s/store.db", arg_state_dir);
        r = store_sqlite_new(m.loop, path, &m.store);
    }
    if (r < 0) {
        log_error_errno(r, "Failed to open the store '%s': %m", path);
        return EXIT_FAILURE;
    }
    r = supervisor_new(m.loop, &m.sup);
    if (r < 0)
        return log_error_errno(r, "Failed to start the supervisor: %m"), EXIT_FAILURE;

    if (arg_socket)
        snprintf(sock, sizeof(sock), "%s", arg_socket);
    else
        snprintf(sock, sizeof(sock), "%s/halod.sock", arg_state_dir);
    /* Components get the socket path in their environment: make it absolute. */
    if (sock[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd)) || strlen(cwd) + 1 + strlen(sock) >= sizeof(sock)) {
            log_error("Socket path '%s' is too long", sock);
            return EXIT_FAILURE;
        }
        memmove(sock + strlen(cwd) + 1, sock, strlen(sock) + 1);
        memcpy(sock, cwd, strlen(cwd));
        sock[strlen(cwd)] = '/';
    }

    {
        char cdb_path[PATH_MAX];
        snprintf(cdb_path, sizeof(cdb_path), "%s/cdb.db", arg_state_dir);
        r = cdb_open(m.loop, cdb_path, m.node, &m.cdb);
        if (r >= 0)
            r = cdb_link_new(m.cdb, &m.cdb_link);
        if (r < 0)
            return log_error_errno(r, "Failed to open the configuration database '%s': %m", cdb_path), EXIT_FAILURE;
        /* Next to the HA link's socket by default, where haloctl looks for it. */
        char ha_path[PATH_MAX];
        if (arg_ha_socket)
            snprintf(ha_path, sizeof(ha_path), "%s", arg_ha_socket);
        else {
            const char *slash = strrchr(sock, '/');
            snprintf(ha_path, sizeof(ha_path), "%.*s/ha.sock", slash ? (int)(slash - sock) : 1, slash ? sock : ".");
        }
        const struct config_node *self = config_find_node(m.config, m.node);
        const char *listen = arg_cdb_listen ?: self && self->cdb_address ? self->cdb_address : "0.0.0.0:4570";
        struct ha_params hp = {.loop = m.loop,
                               .db = m.cdb,
                               .link = m.cdb_link,
                               .control_path = ha_path,
                               .control_tcp = arg_ha_control,
                               .repl_listen = listen,
                               .tick_msec = m.config->cdb.tick / USEC_PER_MSEC,
                               .dead_msec = m.config->cdb.dead_after / USEC_PER_MSEC,
                               .async = m.config->cdb.async};
        r = ha_new(&hp, &m.ha);
        if (r == -EINVAL)
            return log_error("--cdb-listen and --ha-control want ADDR:PORT with a numeric address, like "
                             "127.0.0.1:4570 or [::1]:4570"),
                   EXIT_FAILURE;
        if (r == -EADDRNOTAVAIL)
            return log_error("--ha-control must be a loopback address (127.0.0.0/8 or ::1): it sets the "
                             "cluster's token"),
                   EXIT_FAILURE;
        if (r < 0)
            return log_error_errno(r, "Failed to open the HA control socket '%s': %m", ha_path), EXIT_FAILURE;
    }
    struct amf_params ap = {
        .loop = m.loop, .config = m.config, .node = m.node, .socket_path = sock, .sup = m.sup, .store = m.store};
    r = amf_new(&ap, &m.amf);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the AMF: %m"), EXIT_FAILURE;
    char token[LINK_NAME_MAX + 2] = "";
    if (m.config->cdb.token_file) {
        r = read_token(m.config->cdb.token_file, token, sizeof(token));
        if (r < 0)
            return log_error_errno(r, "Failed to read the CDB token from '%s': %m", m.config->cdb.token_file),
                   EXIT_FAILURE;
    }
    r = amf_set_cdb(m.amf, m.ha, *token ? token : NULL);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the CDB roles: %m"), EXIT_FAILURE;
    if (arg_etcd) {
        char prefix[512];
        snprintf(prefix, sizeof(prefix), "/halo/%s/", m.config->cluster);
        struct cluster_params cp = {.loop = m.loop,
                                    .store = m.store,
                                    .prefix = prefix,
                                    .node = m.node,
                                    .ttl = arg_lease_ttl,
                                    .handlers = &cluster_handlers,
                                    .userdata = &m};
        r = cluster_new(&cp, &m.cluster);
        if (r < 0)
            return log_error_errno(r, "Failed to set up the membership: %m"), EXIT_FAILURE;
        amf_set_cluster(m.amf, m.cluster);
    }

    struct server_handlers h = {.on_msg = on_server_msg, .on_close = on_server_close, .on_drained = on_server_drained};
    r = server_new(m.loop, sock, m.node, &h, &m, &m.server);
    if (r < 0)
        return log_error_errno(r, "Failed to listen on '%s': %m", sock), EXIT_FAILURE;
    if (m.cluster) {
        /* Next to the socket, which the processes reach; the same file across restarts. */
        char lease[PATH_MAX];
        if (snprintf(lease, sizeof(lease), "%s.lease", sock) >= (int)sizeof(lease))
            return log_error("The socket path '%s' is too long", sock), EXIT_FAILURE;
        r = lease_file_open(lease, &m.lease);
        if (r >= 0)
            r = server_set_lease_file(m.server, lease);
        if (r < 0)
            return log_error_errno(r, "Failed to set up the lease file '%s': %m", lease), EXIT_FAILURE;
    }

    uv_signal_init(m.loop, &m.sigterm);
    uv_signal_init(m.loop, &m.sigint);
    m.sigterm.data = m.sigint.data = &m;
    uv_signal_start(&m.sigterm, on_signal, SIGTERM);
    uv_signal_start(&m.sigint, on_signal, SIGINT);

    char http_addr[128];
    uint16_t http_port = 0;
    r = parse_http(arg_http, http_addr, sizeof(http_addr), &http_port);
    if (r < 0)
        return log_error("--http wants ADDR:PORT (like 127.0.0.1:7680 or [::1]:7680) or 'none', not '%s'", arg_http),
               EXIT_FAILURE;
    if (r > 0) {
        r = http_server_new(m.loop, http_addr, http_port, &http_handlers, &m, &m.http);
        if (r < 0 && arg_http_given)
            return log_error_errno(r, "Failed to serve HTTP on %s: %m", arg_http), EXIT_FAILURE;
        if (r < 0)
            log_warning_errno(r, "No HTTP API: cannot listen on %s (another halod?): %m; pick one with --http",
                              arg_http);
        else
            log_info("HTTP API on http://%s:%u/", http_addr, (unsigned)http_server_port(m.http));
    }

    r = amf_start(m.amf);
    if (r >= 0 && m.cluster)
        r = cluster_start(m.cluster);
    if (r < 0)
        return log_error_errno(r, "Failed to start: %m"), EXIT_FAILURE;
    log_info("halod %d.%d on node '%s', cluster '%s', socket '%s', store '%s'", HALO_VERSION_MAJOR, HALO_VERSION_MINOR,
             m.node, m.config->cluster, sock, path);

    uv_run(m.loop, UV_RUN_DEFAULT);

    /* Every handle but the store's is closed; flush the store and leave. */
    m.cluster = cluster_free(m.cluster);
    m.store = store_free(m.store);
    /* The link goes first (its connections are closed: nobody waits for an answer), then the
     * database, which commits what is still queued. */
    m.cdb_link = cdb_link_free(m.cdb_link);
    m.cdb = cdb_close(m.cdb);
    uv_run(m.loop, UV_RUN_DEFAULT);
    m.amf = amf_free(m.amf);
    m.lease = lease_file_close(m.lease);
    m.config = config_free(m.config);
    (void)uv_loop_close(m.loop);
    safe_close(m.lock_fd);
    return EXIT_SUCCESS;
}
