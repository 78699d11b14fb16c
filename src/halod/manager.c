/* SPDX-License-Identifier: MIT */
/*
 * halod's context (manager.h): builds every subsystem, wires them, starts
 * them in the order the state is read back, stops them in reverse.
 *
 * Start: the AMF's own records (amf-persist) -> several nodes: the cluster's
 * keys (cluster-sync) -> the recovery states and the BQ reader -> the AMF is
 * ready: registrations are taken and this node's components start.
 */
#define LOG_AREA LOG_AREA_MAIN
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt.h"
#include "failfast.h"
#include "http-auth.h"
#include "keys.h"
#include "log-level.h"
#include "log.h"
#include "macro.h"
#include "manager-internal.h"
#include "parse-util.h"
#include "paths.h"

/* etcd takes longer passwords, but a file larger than this is no password file. */
#define ETCD_PASSWORD_MAX 1024

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

static const char *pick_node(const struct config *c, const char *want) {
    if (want)
        return config_find_node(c, want) ? want : NULL;
    if (c->n_nodes == 1)
        return c->nodes[0].name;
    static char host[HOST_NAME_MAX + 1];
    if (gethostname(host, sizeof(host)) == 0 && config_find_node(c, host))
        return host;
    return NULL;
}

/* "URL,URL,..." -> endpoints (pointers into s, which is modified). */
static size_t split_endpoints(char *s, const char **out, size_t max) {
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
        if (*t)
            out[n++] = t;
    return n;
}

/* ---- the HA link and the HTTP API, to their owners ---- */

static void on_server_msg(struct conn *c, const LinkMsg *msg, void *userdata) {
    struct manager *m = userdata;
    if (m->cdb_link && cdb_link_handle_msg(m->cdb_link, c, msg))
        return;
    if (m->names && name_service_handle_msg(m->names, c, msg))
        return;
    if (m->logsvc && logsvc_handle_msg(m->logsvc, c, msg))
        return;
    if (m->ckpt && ckpt_handle_msg(m->ckpt, c, msg))
        return;
    if (m->evt && evt_handle_msg(m->evt, c, msg))
        return;
    if (m->txnsvc && txnsvc_handle_msg(m->txnsvc, c, msg))
        return;
    dispatch_msg(m, c, msg);
}

static void on_server_close(struct conn *c, const char *reason, void *userdata) {
    struct manager *m = userdata;
    if (m->cdb_link)
        cdb_link_conn_closed(m->cdb_link, c);
    if (m->names)
        name_service_conn_closed(m->names, c);
    if (m->logsvc)
        logsvc_conn_closed(m->logsvc, c);
    if (m->ckpt)
        ckpt_conn_closed(m->ckpt, c);
    if (m->evt)
        evt_conn_closed(m->evt, c);
    if (m->txnsvc)
        txnsvc_conn_closed(m->txnsvc, c);
    dispatch_conn_closed(m, c, reason);
}

static void on_server_drained(struct conn *c, void *userdata) {
    dispatch_conn_drained(userdata, c);
}

static int on_http_status(void *userdata, char **json) {
    *json = status_json(userdata);
    return *json ? 0 : -ENOMEM;
}

static int on_http_metrics(void *userdata, char **text) {
    return status_metrics(userdata, text);
}

static int on_http_entrypoint(void *userdata, char **json) {
    return status_entrypoint(userdata, false, json);
}

/* An outside report that comp FAILED: an error report on its own node. */
static int owner_fail(void *userdata, const char *comp) {
    struct manager *m = userdata;
    const char *to = amf_op_where(m->amf, AMF_OP_FAIL, comp);
    if (to && m->forward)
        return cluster_forward_send(m->forward, NULL, 0, AMF_OP_FAIL, comp, to);
    return amf_run_op(m->amf, AMF_OP_FAIL, comp, NULL);
}

static int owner_node_alive(void *userdata, const char *node) {
    struct manager *m = userdata;
    if (!m->sync) /* one node: this one */
        return streq(node, amf_node(m->amf));
    return cluster_sync_node(m->sync, node) > 0;
}

static int on_http_events(void *userdata, const char *body, size_t len, char **reply, const char **error) {
    struct manager *m = userdata;
    const struct events_owners owners = {.fail = owner_fail, .node_alive = owner_node_alive, .userdata = m};
    return events_post(m->events, body, len, &owners, reply, error);
}

/* GET /v1/log-level (body NULL) and PUT (an operator's: http.c checked the token). */
static int on_http_log_level(void *userdata, const char *body, size_t len, char **reply, const char **error) {
    if (body) {
        _cleanup_free_ char *spec = NULL;
        int r = log_level_put(body, len, &spec, error);
        if (r < 0)
            return r;
        log_notice("Log level set to '%s' over HTTP", spec);
    }
    return (*reply = log_level_json()) ? 0 : -ENOMEM;
}

static const struct http_handlers http_handlers = {
    .status = on_http_status,
    .events = on_http_events,
    .metrics = on_http_metrics,
    .entrypoint = on_http_entrypoint,
    .log_level = on_http_log_level,
};

/* ---- membership ---- */

static void on_cluster_joined(struct cluster *c, void *userdata) {
    struct manager *m = userdata;
    cluster_sync_joined(m->sync);
    name_service_joined(m->names);
}

/* The events of nodes that left are the coordinator's to delete (svc/evt.h): read again whenever
 * that may have changed. */
static void sweep_events(struct manager *m) {
    if (m->cluster && cluster_is_coordinator(m->cluster))
        evt_sweep_scan(m->evt);
}

static void on_cluster_coordinator(struct cluster *c, bool coordinator, void *userdata) {
    struct manager *m = userdata;
    recovery_coord_set(m->coord, coordinator);
    cluster_sync_coordinator(m->sync, coordinator);
    if (coordinator)
        sweep_events(m);
    else
        evt_sweep_stop(m->evt);
}

static void on_node_left(void *userdata, const char *node) {
    sweep_events(userdata);
}

static void on_cluster_fence(struct cluster *c, void *userdata) {
    struct manager *m = userdata;
    recovery_coord_set(m->coord, false);
    evt_sweep_stop(m->evt);
    cluster_sync_fenced(m->sync);
    /* Its ACTIVE processes are killed: the others may stay while halod is here. */
    lease_file_set(m->lease, LINK_LEASE_NONE);
}

static void on_cluster_renewed(struct cluster *c, uint64_t deadline_usec, void *userdata) {
    struct manager *m = userdata;
    lease_file_set(m->lease, deadline_usec);
}

static const struct cluster_handlers cluster_handlers = {
    .on_joined = on_cluster_joined,
    .on_coordinator = on_cluster_coordinator,
    .on_fence = on_cluster_fence,
    .on_renewed = on_cluster_renewed,
};

/* ---- building ---- */

/* A TLS file given on the command line: a readable regular file (libcurl
 * reads it at each connection, where a mistake would only show as failed
 * requests). */
static int check_tls_file(const char *option, const char *path) {
    struct stat st;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return log_error_errno(-errno, "%s %s: %m", option, path);
    int r = fstat(fd, &st) < 0 ? -errno : S_ISREG(st.st_mode) ? 0 : -EINVAL;
    close(fd);
    if (r == -EINVAL)
        return log_error("%s %s: not a regular file", option, path), r;
    if (r < 0)
        return log_error_errno(r, "%s %s: %m", option, path);
    return 0;
}

static int check_etcd_tls(const struct manager_options *o, const char *const *eps, size_t n) {
    const struct {
        const char *option, *path;
    } files[] = {{"--etcd-cacert", o->etcd_cacert}, {"--etcd-cert", o->etcd_cert}, {"--etcd-key", o->etcd_key}};
    bool any = false;
    int r;

    for (size_t i = 0; i < ELEMENTSOF(files); i++) {
        if (!files[i].path)
            continue;
        if (!o->etcd)
            return log_error("%s is for an etcd store: give --etcd too", files[i].option), -EINVAL;
        if ((r = check_tls_file(files[i].option, files[i].path)) < 0)
            return r;
        any = true;
    }
    if (!o->etcd_cert != !o->etcd_key)
        return log_error("--etcd-cert and --etcd-key go together: give both or neither"), -EINVAL;
    for (size_t i = 0; any && i < n; i++)
        if (strncmp(eps[i], "https://", 8) != 0)
            return log_error("--etcd-cacert, --etcd-cert and --etcd-key are for https:// endpoints, not %s", eps[i]),
                   -EINVAL;
    return 0;
}

/* --etcd-password-file: one line, readable by no one but its owner and
 * group (as ssh wants of a key: a password others can read is no secret). */
static int read_etcd_password(const struct manager_options *o, char **ret) {
    const char *path = o->etcd_password_file;
    _cleanup_free_ char *text = NULL;
    mode_t mode = 0;

    if (!o->etcd_user != !path)
        return log_error("--etcd-user and --etcd-password-file go together: give both or neither"), -EINVAL;
    if (!path)
        return 0;
    if (!o->etcd)
        return log_error("--etcd-user is for an etcd store: give --etcd too"), -EINVAL;
    int r = http_secret_file_read(path, ETCD_PASSWORD_MAX + 2, &text, NULL, &mode);
    if (r == -EFBIG)
        return log_error("--etcd-password-file %s: too large for a password (at most %d bytes)", path,
                         ETCD_PASSWORD_MAX),
               r;
    if (r == -EINVAL)
        return log_error("--etcd-password-file %s: not a regular file", path), r;
    if (r < 0)
        return log_error_errno(r, "--etcd-password-file %s: %m", path);
    if (mode & S_IRWXO) {
        explicit_bzero(text, strlen(text));
        return log_error("--etcd-password-file %s: permissions %04o are too open: others may read it; "
                         "chmod o-rwx %s",
                         path, (unsigned)mode, path),
               -EPERM;
    }
    size_t n = strcspn(text, "\n");
    bool one_line = text[n] == 0 || text[n + 1] == 0;
    text[n] = 0;
    if (n > 0 && text[n - 1] == '\r')
        text[--n] = 0;
    if (!one_line || n == 0) {
        explicit_bzero(text, strlen(text));
        return log_error("--etcd-password-file %s: want the password on one line, alone", path), -EINVAL;
    }
    *ret = TAKE_PTR(text);
    return 0;
}

static void password_free(char **p) {
    if (*p)
        explicit_bzero(*p, strlen(*p));
    free(*p);
}

static int open_store(struct manager *m) {
    _cleanup_(password_free) char *password = NULL;
    int r;
    if (!m->opt.etcd && (r = check_etcd_tls(&m->opt, NULL, 0)) < 0)
        return r; /* TLS options without --etcd */
    if ((r = read_etcd_password(&m->opt, &password)) < 0)
        return r;
    if (m->opt.etcd) {
        const char *eps[16];
        _cleanup_free_ char *copy = strdup(m->opt.etcd);
        size_t n = copy ? split_endpoints(copy, eps, ELEMENTSOF(eps)) : 0;
        if (n == 0)
            return log_error("--etcd wants one or more URLs separated by commas, like http://127.0.0.1:2379"), -EINVAL;
        if ((r = check_etcd_tls(&m->opt, eps, n)) < 0)
            return r;
        snprintf(m->store_name, sizeof(m->store_name), "etcd %s", m->opt.etcd);
        const store_etcd_options eo = {m->opt.etcd_cacert, m->opt.etcd_cert, m->opt.etcd_key, m->opt.etcd_user,
                                       password};
        r = store_etcd_new_with(m->loop, eps, n, &eo, &m->store);
    } else {
        snprintf(m->store_name, sizeof(m->store_name), "%s/store.db", m->opt.state_dir);
        r = store_sqlite_new(m->loop, m->store_name, &m->store);
    }
    if (r < 0)
        return log_error_errno(r, "Failed to open the store '%s': %m", m->store_name);
    return 0;
}

/* The socket path components get in their environment: absolute. */
static int socket_path(struct manager *m) {
    char *sock = m->socket;
    if (m->opt.socket)
        snprintf(sock, sizeof(m->socket), "%s", m->opt.socket);
    else if (m->opt.state_dir_given)
        snprintf(sock, sizeof(m->socket), "%s/halod.sock", m->opt.state_dir);
    else {
        /* Where haloctl looks first, and where halod.service puts it. */
        if (mkdir(HALO_RUNTIME_DIR, 0755) < 0 && errno != EEXIST)
            return log_error_errno(errno, "Failed to create '%s' for the socket: %m", HALO_RUNTIME_DIR);
        snprintf(sock, sizeof(m->socket), "%s/halod.sock", HALO_RUNTIME_DIR);
    }
    if (sock[0] == '/')
        return 0;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd)) || strlen(cwd) + 1 + strlen(sock) >= sizeof(m->socket))
        return log_error("Socket path '%s' is too long", sock), -ENAMETOOLONG;
    memmove(sock + strlen(cwd) + 1, sock, strlen(sock) + 1);
    memcpy(sock, cwd, strlen(cwd));
    sock[strlen(cwd)] = '/';
    return 0;
}

/* The service group whose assignments drive the CDB roles (config-verify.c allows one), or NULL. */
static const char *cdb_roles_group(const struct config *c) {
    for (size_t g = 0; g < c->n_sgs; g++)
        if (c->sgs[g].cdb_roles && !c->sgs[g].cdb_subtree) /* the main database's; the others: manager-cdb.c */
            return c->sgs[g].name;
    return NULL;
}

static int open_cdb(struct manager *m) {
    const struct manager_options *o = &m->opt;
    char cdb_path[PATH_MAX], ha_path[PATH_MAX];
    if ((o->cdb_tls_cert || o->cdb_tls_key || o->cdb_tls_ca) && !(o->cdb_tls_cert && o->cdb_tls_key && o->cdb_tls_ca))
        return log_error("--cdb-tls-cert, --cdb-tls-key and --cdb-tls-ca go together: give all three or none"), -EINVAL;
    snprintf(cdb_path, sizeof(cdb_path), "%s/cdb.db", m->opt.state_dir);
    int r = cdb_open(m->loop, cdb_path, m->node, &m->cdb);
    if (r >= 0)
        r = cdb_link_new(m->cdb, &m->cdb_link);
    if (r < 0)
        return log_error_errno(r, "Failed to open the configuration database '%s': %m", cdb_path);
    /* Next to the HA link's socket by default, where haloctl looks for it. */
    if (m->opt.ha_socket)
        snprintf(ha_path, sizeof(ha_path), "%s", m->opt.ha_socket);
    else {
        const char *slash = strrchr(m->socket, '/');
        snprintf(ha_path, sizeof(ha_path), "%.*s/ha.sock", slash ? (int)(slash - m->socket) : 1,
                 slash ? m->socket : ".");
    }
    const struct config_node *self = config_find_node(m->config, m->node);
    const char *listen = m->opt.cdb_listen ?: self && self->cdb_address ? self->cdb_address : "0.0.0.0:4570";
    struct ha_params hp = {.loop = m->loop,
                           .db = m->cdb,
                           .link = m->cdb_link,
                           .control_path = ha_path,
                           .control_tcp = m->opt.ha_control,
                           .repl_listen = listen,
                           .token = m->config->cdb.token,
                           .tick_msec = m->config->cdb.tick / USEC_PER_MSEC,
                           .dead_msec = m->config->cdb.dead_after / USEC_PER_MSEC,
                           .async = m->config->cdb.async};
    r = ha_new(&hp, &m->ha);
    if (r == -EINVAL)
        return log_error("--cdb-listen and --ha-control want ADDR:PORT with a numeric address, like "
                         "127.0.0.1:4570 or [::1]:4570"),
               r;
    if (r == -EADDRNOTAVAIL)
        return log_error("--ha-control must be a loopback address (127.0.0.0/8 or ::1)"), r;
    if (r == -ENOKEY)
        return log_error("--ha-control needs the nodes' token, which a TCP client must prove: set 'token-file' "
                         "in the description's 'cdb' section"),
               r;
    if (r < 0)
        return log_error_errno(r, "Failed to open the HA control socket '%s': %m", ha_path);
    if (m->opt.cdb_tls_cert) {
        char why[512];
        r = ha_set_tls(m->ha, m->opt.cdb_tls_cert, m->opt.cdb_tls_key, m->opt.cdb_tls_ca, why, sizeof(why));
        if (r == -EINVAL)
            return log_error("%s", why), r;
        if (r < 0)
            return log_error_errno(r, "Failed to set up TLS for the CDB replication: %m");
        log_info("CDB replication over TLS: certificates both ways, signed by %s", m->opt.cdb_tls_ca);
    }
    const char *sg = cdb_roles_group(m->config);
    r = sg ? amf_roles_new(m->loop, m->amf, sg, m->ha, m->config->cdb.token, m->opt.etcd ? m->store : NULL, m->prefix,
                           &m->roles)
           : 0;
    if (r < 0)
        return log_error_errno(r, "Failed to set up the CDB roles of service group '%s': %m", sg);
    return manager_cdb_groups_open(m, listen);
}

static void on_amf_failfast(struct amf *a, const char *why, void *userdata);

/* The AMF, the event queues and the recovery around it. */
static int build_amf(struct manager *m) {
    char crash_dir[PATH_MAX];
    /* The state directory names this halod and its successors alone: the lock says one halod at a time. */
    _cleanup_free_ char *owner = realpath(m->opt.state_dir, NULL);
    if (!owner)
        return log_error_errno(errno, "Failed to resolve the state directory '%s': %m", m->opt.state_dir);
    struct amf_params ap = {
        .loop = m->loop, .config = m->config, .node = m->node, .socket_path = m->socket, .owner = owner, .sup = m->sup};
    /* Where libhalo writes a crash for halod to read (amf-crash.c): without it, only the signal is known. */
    int n = snprintf(crash_dir, sizeof(crash_dir), "%s/crash", m->opt.state_dir);
    if (n >= (int)sizeof(crash_dir))
        errno = ENAMETOOLONG;
    else if (mkdir(crash_dir, 0700) == 0 || errno == EEXIST)
        ap.crash_dir = crash_dir;
    if (!ap.crash_dir)
        (void)log_warning_errno(errno, "Failed to create '%s/crash'; crashes are recorded without a backtrace: %m",
                                m->opt.state_dir);
    int r = amf_new(&ap, &m->amf);
    if (r >= 0)
        amf_set_failfast(m->amf, on_amf_failfast, m);
    if (r >= 0)
        r = amf_persist_new(m->loop, m->amf, m->store, m->prefix, !m->opt.etcd, &m->persist);
    if (r >= 0)
        r = metrics_new(m->amf, &m->metrics);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the AMF: %m");
    struct evt_params vp = {.loop = m->loop,
                            .store = m->store,
                            .prefix = m->prefix,
                            .node = m->node,
                            .takes_over = manager_takes_over,
                            .userdata = m};
    r = evt_new(&vp, &m->evt);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the event channels: %m");
    return manager_build_observers(m);
}

/* Several nodes: membership, the forwarded commands, the sync of the AMF. */
static int set_up_guard(struct manager *m, const char *lease);

static int build_cluster(struct manager *m) {
    struct cluster_params cp = {.loop = m->loop,
                                .store = m->store,
                                .prefix = m->prefix,
                                .node = m->node,
                                .ttl = m->opt.lease_ttl,
                                .handlers = &cluster_handlers,
                                .userdata = m};
    int r = cluster_new(&cp, &m->cluster);
    if (r >= 0) {
        struct cluster_forward_params fp = {.store = m->store,
                                            .prefix = m->prefix,
                                            .node = m->node,
                                            .amf = m->amf,
                                            .cluster = m->cluster,
                                            .run_other = dispatch_run_other,
                                            .userdata = m};
        r = cluster_forward_new(&fp, &m->forward);
    }
    if (r >= 0) {
        struct cluster_sync_params sp = {.store = m->store,
                                         .prefix = m->prefix,
                                         .node = m->node,
                                         .amf = m->amf,
                                         .cluster = m->cluster,
                                         .forward = m->forward,
                                         .reporter = m->reporter};
        r = cluster_sync_new(&sp, &m->sync);
        if (r >= 0)
            cluster_sync_on_node_left(m->sync, on_node_left, m);
    }
    if (r < 0)
        return log_error_errno(r, "Failed to set up the membership: %m");
    /* Next to the socket, which the processes reach; the same file across restarts. */
    char lease[PATH_MAX];
    if (snprintf(lease, sizeof(lease), "%s.lease", m->socket) >= (int)sizeof(lease))
        return log_error("The socket path '%s' is too long", m->socket), -ENAMETOOLONG;
    r = lease_file_open(lease, &m->lease);
    if (r >= 0)
        r = server_set_lease_file(m->server, lease);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the lease file '%s': %m", lease);
    return set_up_guard(m, lease);
}

/* The services a component calls besides the AMF (svc/). */
static int build_services(struct manager *m) {
    struct name_params np = {
        .loop = m->loop, .store = m->store, .prefix = m->prefix, .node = m->node, .amf = m->amf, .cluster = m->cluster};
    int r = name_service_new(&np, &m->names);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the name service: %m");
    return 0;
}

/* halo-guard: next to halod in the build tree (src/halod/halod, src/halo-guard/halo-guard), else installed. */
static int find_guard(char *buf, size_t n) {
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (k > 0) {
        exe[k] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            if (snprintf(buf, n, "%s/../halo-guard/halo-guard", exe) < (int)n && access(buf, X_OK) == 0)
                return 0;
        }
    }
    if (snprintf(buf, n, "%s/halo/halo-guard", HALO_LIBEXECDIR) < (int)n && access(buf, X_OK) == 0)
        return 0;
    return -ENOENT;
}

/* On several nodes the non-SA-aware and OCF components of this node are guarded (amf-guard.c). */
static int set_up_guard(struct manager *m, const char *lease) {
    char guard[PATH_MAX], dir[PATH_MAX];
    bool needed = false;
    for (size_t g = 0; g < m->config->n_sgs && !needed; g++)
        for (size_t u = 0; u < m->config->sgs[g].n_sus && !needed; u++) {
            const struct config_su *su = &m->config->sgs[g].sus[u];
            for (size_t c = 0; c < su->n_components && streq(su->node, m->node); c++)
                needed = needed || su->components[c].type == CONFIG_COMP_NON_SA_AWARE ||
                         su->components[c].type == CONFIG_COMP_OCF;
        }
    if (!needed)
        return 0;
    if (find_guard(guard, sizeof(guard)) < 0)
        return log_error("halo-guard is missing (next to halod, or in %s/halo): without it a non-SA-aware or OCF "
                         "component of this node could outlive a killed halod into another node's ACTIVE",
                         HALO_LIBEXECDIR),
               -ENOENT;
    if (snprintf(dir, sizeof(dir), "%s/guards", m->opt.state_dir) >= (int)sizeof(dir))
        return -ENAMETOOLONG;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return log_error_errno(errno, "Failed to create '%s': %m", dir);
    char abs_lease[PATH_MAX];
    if (!realpath(lease, abs_lease))
        return log_error_errno(errno, "Failed to resolve '%s': %m", lease);
    int r = amf_set_guard(m->amf, guard, abs_lease, dir);
    if (r < 0)
        return log_error_errno(r, "Failed to set up the guards: %m");
    log_debug("Non-SA-aware and OCF components are guarded by %s", guard);
    return 0;
}

/* --http-token-file, --http-cert, --http-key: read once, at start. */
static int read_http_secrets(struct manager *m) {
    const struct manager_options *o = &m->opt;
    int r;
    if (!o->http_cert != !o->http_key)
        return log_error("--http-cert and --http-key go together: give both or neither"), -EINVAL;
    if (o->http_token_file) {
        r = http_secret_file_read(o->http_token_file, HTTP_TOKEN_MAX + 2, &m->http_token, NULL, NULL);
        if (r >= 0 && (r = http_token_parse(m->http_token)) < 0)
            return log_error("--http-token-file %s: want one line of %d to %d printable bytes without spaces",
                             o->http_token_file, HTTP_TOKEN_MIN, HTTP_TOKEN_MAX),
                   r;
        if (r == -EFBIG)
            return log_error("--http-token-file %s: too large for a token", o->http_token_file), r;
        if (r == -EINVAL)
            return log_error("--http-token-file %s: not a regular file", o->http_token_file), r;
        if (r < 0)
            return log_error_errno(r, "--http-token-file %s: %m", o->http_token_file);
    }
    const struct {
        const char *option, *path;
        char **ret;
    } pem[] = {{"--http-cert", o->http_cert, &m->http_cert_pem}, {"--http-key", o->http_key, &m->http_key_pem}};
    for (size_t i = 0; i < ELEMENTSOF(pem); i++) {
        if (!pem[i].path)
            continue;
        r = http_secret_file_read(pem[i].path, 1024 * 1024, pem[i].ret, NULL, NULL);
        if (r == -EINVAL || r == -EFBIG)
            return log_error("%s %s: not a regular file of at most 1 MiB", pem[i].option, pem[i].path), r;
        if (r < 0)
            return log_error_errno(r, "%s %s: %m", pem[i].option, pem[i].path);
    }
    return 0;
}

static int open_http(struct manager *m) {
    char addr[128];
    uint16_t port = 0;
    if (streq(m->opt.http, "none"))
        return 0;
    if (parse_host_port(m->opt.http, addr, sizeof(addr), &port) < 0 || !*addr)
        return log_error("--http wants ADDR:PORT (like 127.0.0.1:7680 or [::1]:7680) or 'none', not '%s'", m->opt.http),
               -EINVAL;
    int r = read_http_secrets(m);
    if (r < 0)
        return r;
    bool tls = m->http_cert_pem;
    if (!address_is_loopback(addr) && !(tls && m->http_token))
        return log_error("--http %s is not a loopback address: serving it needs --http-cert and --http-key (TLS) "
                         "and --http-token-file",
                         m->opt.http),
               -EINVAL;
    const struct http_limits limits = {.tls_cert_pem = m->http_cert_pem, .tls_key_pem = m->http_key_pem};
    r = http_server_new_with_limits(m->loop, addr, port, &http_handlers, m, &limits, &m->http);
    if (r >= 0)
        r = http_server_set_writes(m->http, m->http_token ? HTTP_WRITES_TOKEN : HTTP_WRITES_REFUSED, m->http_token);
    if (r < 0 && m->opt.http_given)
        return log_error_errno(r, "Failed to serve HTTP on %s: %m", m->opt.http);
    if (r < 0)
        log_warning_errno(r, "No HTTP API: cannot listen on %s (another halod?): %m; pick one with --http",
                          m->opt.http);
    else
        log_info("HTTP API on %s://%s:%u/ (writes %s)", tls ? "https" : "http", addr,
                 (unsigned)http_server_port(m->http), m->http_token ? "with the token" : "refused: no token");
    return 0;
}

static void on_signal(uv_signal_t *h, int signum);

/* The usual "reload" signal (systemctl reload): the description is read again (manager-reload.c). */
static void on_sighup(uv_signal_t *h, int signum) {
    (void)manager_reload(h->data, "SIGHUP", NULL);
}

int manager_new(const struct manager_options *o, struct manager **ret) {
    _cleanup_free_ char *errors = NULL;
    struct manager *m = calloc(1, sizeof(*m));
    if (!m)
        return log_error_errno(-ENOMEM, "Out of memory");
    m->opt = *o;
    m->lock_fd = -1;
    *ret = m; /* manager_free() takes what was built, whatever fails below */
    int r = config_load(o->config_path, &m->config, &errors);
    if (r < 0) {
        if (errors && *errors)
            fputs(errors, stderr);
        return log_error_errno(r, "Failed to load the cluster description '%s': %m", o->config_path);
    }
    manager_digest(m->config, m->digest);
    m->node = pick_node(m->config, o->node);
    if (!m->node)
        return log_error(o->node ? "Node '%s' is not in the cluster description"
                                 : "Cannot tell which node this is; pass --node NAME%s",
                         o->node ?: ""),
               -ENOENT;
    if (key_prefix(m->prefix, m->config->cluster) < 0)
        return log_error("The cluster name '%s' is too long", m->config->cluster), -ENAMETOOLONG;
    if (mkdir(o->state_dir, 0700) < 0 && errno != EEXIST)
        return log_error_errno(errno, "Failed to create the state directory '%s': %m", o->state_dir);
    r = take_lock(o->state_dir, &m->lock_fd);
    if (r < 0)
        return log_error_errno(r,
                               r == -EBUSY ? "Another halod runs on state directory '%s'"
                                           : "Failed to lock the state directory '%s': %m",
                               o->state_dir);
    m->loop = uv_default_loop();
    if ((r = open_store(m)) < 0 || (r = socket_path(m)) < 0)
        return r;
    r = supervisor_new(m->loop, &m->sup);
    if (r < 0)
        return log_error_errno(r, "Failed to start the supervisor: %m");
    if ((r = build_amf(m)) < 0 || (r = open_cdb(m)) < 0)
        return r;
    struct ckpt_params kp = {.loop = m->loop, .store = m->store, .prefix = m->prefix, .node = m->node, .amf = m->amf};
    if ((r = ckpt_svc_new(&kp, &m->ckpt)) < 0)
        return log_error_errno(r, "Failed to set up the checkpoint service: %m");
    /* The HTTP port before the control socket: a client that waits for the socket (a test, a unit
     * file's ExecStartPost) finds the port bound too. */
    if ((r = open_http(m)) < 0)
        return r;
    struct server_handlers h = {.on_msg = on_server_msg, .on_close = on_server_close, .on_drained = on_server_drained};
    r = server_new(m->loop, m->socket, m->node, &h, m, &m->server);
    if (r < 0)
        return log_error_errno(r, "Failed to listen on '%s': %m", m->socket);
    if (o->etcd && (r = build_cluster(m)) < 0)
        return r;
    if ((r = build_services(m)) < 0)
        return r;
    manager_publish_description(m);
    if ((r = manager_build_coord(m)) < 0)
        return r;
    if ((r = notifier_new(m->loop, &m->notify)) < 0)
        return log_error_errno(r, "Out of memory");
    uv_signal_init(m->loop, &m->sigterm);
    uv_signal_init(m->loop, &m->sigint);
    uv_signal_init(m->loop, &m->sighup);
    m->signals = true;
    m->sigterm.data = m->sigint.data = m->sighup.data = m;
    uv_signal_start(&m->sigterm, on_signal, SIGTERM);
    uv_signal_start(&m->sigint, on_signal, SIGINT);
    uv_signal_start(&m->sighup, on_sighup, SIGHUP);
    return 0;
}

/* ---- starting ---- */

static void ready(struct manager *m) {
    int r = events_start(m->events);
    if (r < 0)
        log_error_errno(r, "Failed to start the event queues: %m");
    else if ((r = recovery_local_start(m->recovery)) < 0)
        log_error_errno(r, "Failed to start the recovery of this node's pool processes: %m");
    /* One node decides everything, and consumes the queue it alone appends to. */
    if (!m->cluster)
        recovery_coord_set(m->coord, true);
    amf_set_ready(m->amf);
    /* After the AMF restored its adopted processes: the registrations of the others are stale. */
    if ((r = name_service_start(m->names)) < 0)
        log_error_errno(r, "Failed to start the name service: %m");
    _cleanup_free_ char *status = NULL;
    if (asprintf(&status, "Serving node '%s' of cluster '%s' on %s (store %s)", m->node, m->config->cluster, m->socket,
                 m->store_name) >= 0)
        notifier_ready(m->notify, status);
}

static void on_synced(void *userdata, int error) {
    ready(userdata);
    sweep_events(userdata); /* the live nodes are known now */
}

static void on_restored(void *userdata, int error) {
    struct manager *m = userdata;
    if (!m->sync) {
        ready(m);
        return;
    }
    int r = cluster_sync_start(m->sync, on_synced, m);
    if (r < 0) {
        log_error_errno(r, "Failed to read the cluster's keys: %m");
        ready(m);
    }
}

/* ---- stopping ---- */

/* Every write queued before this read has completed (the backends run
 * requests in order): the store may close now.  A networked store keeps
 * idle connections polled, so the loop would not end by itself. */
static void on_flushed(store *s, int error, const store_result *r, void *userdata) {
    struct manager *m = userdata;
    m->cluster = cluster_free(m->cluster);
    m->store = store_free(m->store);
    failfast_act(m->failfast); /* a node failfast: the lease is given up, the last records are written */
}

/* Closes what holds the loop, in order; the store stays for the last writes. */
static void close_all(struct manager *m) {
    m->http = http_server_free(m->http);
    /* close_all() runs on stop and again at manager_free(). */
    free(m->http_token);
    m->http_token = NULL;
    free(m->http_cert_pem);
    m->http_cert_pem = NULL;
    if (m->http_key_pem)
        explicit_bzero(m->http_key_pem, strlen(m->http_key_pem));
    free(m->http_key_pem);
    m->http_key_pem = NULL;
    if (m->cluster && !m->cluster_closed) {
        cluster_leave(m->cluster); /* the others take over now, not when the lease runs out */
        cluster_close(m->cluster);
        m->cluster_closed = true;
    }
    m->roles = amf_roles_free(m->roles);
    manager_cdb_groups_stop(m); /* before the main ha: theirs share its replication listener */
    m->ha = ha_free(m->ha);     /* commits waiting for secondaries are answered while their clients are there */
    m->server = server_free(m->server);
    m->ckpt = ckpt_svc_free(m->ckpt); /* its requests' answers had nobody to go to */
    m->sync = cluster_sync_free(m->sync);
    m->queue = queue_free(m->queue); /* before the failure vectors, its consumer's writer */
    m->coord = recovery_coord_free(m->coord);
    m->logsvc = logsvc_free(m->logsvc);
    m->txnsvc = txnsvc_free(m->txnsvc);
    m->events = events_free(m->events);
    m->evt = evt_free(m->evt); /* before the store: its watch and writes end here */
    m->recovery = recovery_local_free(m->recovery);
    m->reporter = queue_reporter_free(m->reporter);
    m->persist = amf_persist_free(m->persist); /* its last records go before the store's final flush */
    if (m->amf && !m->amf_closed)
        amf_close(m->amf);
    m->amf_closed = true;
    m->sup = supervisor_free(m->sup);
    if (m->signals) {
        uv_close((uv_handle_t *)&m->sigterm, NULL);
        uv_close((uv_handle_t *)&m->sigint, NULL);
        uv_close((uv_handle_t *)&m->sighup, NULL);
        m->signals = false;
    }
}

static void on_stopped(struct amf *a, void *userdata) {
    struct manager *m = userdata;
    log_info("All components stopped; exiting");
    close_all(m);
    /* The store goes last: pending writes of the final state complete first. */
    if (store_get(m->store, m->prefix, on_flushed, m) < 0)
        on_flushed(m->store, -ECANCELED, NULL, m);
}

static void on_failfast_done(void *userdata) {
    struct manager *m = userdata;
    m->failfast = failfast_free(m->failfast); /* the loop ends once the store is closed too */
}

/* A node failfast: every component of this node is gone (amf_set_failfast()).  The others take
 * over once this node has left the cluster (its lease given up: close_all()); then the action. */
static void on_amf_failfast(struct amf *a, const char *why, void *userdata) {
    struct manager *m = userdata;
    m->failed_fast = true;
    notifier_stopping(m->notify);
    int r = failfast_new(m->loop, config_find_node(m->config, m->node), why, on_failfast_done, m, &m->failfast);
    if (r < 0)
        log_error_errno(r, "Node failfast: cannot run the failfast action: %m; halod exits");
    else
        log_notice("Node failfast: giving up this node's place in the cluster, then the failfast action");
    close_all(m);
    if (store_get(m->store, m->prefix, on_flushed, m) < 0)
        on_flushed(m->store, -ECANCELED, NULL, m);
}

static void on_signal(uv_signal_t *h, int signum) {
    struct manager *m = h->data;
    if (m->n_term++ == 0) {
        log_info("Received %s, stopping", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        notifier_stopping(m->notify);
        amf_stop(m->amf, on_stopped, m);
    } else {
        log_warning("Received %s again, killing every component now", signum == SIGTERM ? "SIGTERM" : "SIGINT");
        amf_kill_all(m->amf);
    }
}

int manager_run(struct manager *m) {
    int r = amf_persist_load(m->persist, on_restored, m);
    if (r >= 0 && m->cluster)
        r = cluster_start(m->cluster);
    if (r < 0)
        return log_error_errno(r, "Failed to start: %m");
    log_info("halod %d.%d on node '%s', cluster '%s', socket '%s', store '%s'", HALO_VERSION_MAJOR, HALO_VERSION_MINOR,
             m->node, m->config->cluster, m->socket, m->store_name);
    uv_run(m->loop, UV_RUN_DEFAULT);
    /* A node failfast whose action did not end halod (a command, or a reboot that failed). */
    return m->failed_fast ? -ESHUTDOWN : 0;
}

struct manager *manager_free(struct manager *m) {
    if (!m)
        return NULL;
    /* Every handle but the store's is closed (after a failed start: closed
     * here); flush the store and leave. */
    close_all(m);
    m->failfast = failfast_free(m->failfast);
    m->forward = cluster_forward_free(m->forward);
    m->cluster = cluster_free(m->cluster);
    m->store = store_free(m->store);
    /* The link goes first (its connections are closed: nobody waits for an answer), then the
     * database, which commits what is still queued. */
    m->cdb_link = cdb_link_free(m->cdb_link);
    m->names = name_service_free(m->names);
    manager_cdb_groups_close(m);
    m->cdb = cdb_close(m->cdb);
    if (m->loop)
        uv_run(m->loop, UV_RUN_DEFAULT);
    dispatch_free(m);
    m->metrics = metrics_free(m->metrics);
    m->amf = amf_free(m->amf);
    m->model = rm_free(m->model);
    m->lease = lease_file_close(m->lease);
    m->notify = notifier_free(m->notify);
    if (m->loop)
        uv_run(m->loop, UV_RUN_DEFAULT); /* its watchdog timer closes */
    m->config = config_free(m->config);
    for (size_t i = 0; i < m->n_retired; i++)
        config_free(m->retired[i]);
    free(m->retired);
    if (m->loop)
        (void)uv_loop_close(m->loop);
    safe_close(m->lock_fd);
    free(m);
    return NULL;
}
