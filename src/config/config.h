/* SPDX-License-Identifier: MIT */
/*
 * The cluster description: parsed from YAML, verified as a whole, then handed
 * to the AMF.  Plain data; no runtime state lives here.
 *
 * Defaults are inherited in this order (later wins):
 *   built-in defaults -> top-level `defaults.component` -> the SG's
 *   `component` template -> the SU's `component` -> the component's own keys.
 * An SU without a `components` map gets one component named after the SU.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "time-util.h"

#define CONFIG_NAME_MAX 255

/* Where an item came from, for error messages. */
struct config_pos {
    unsigned line;   /* 1-based; 0 = unknown */
    unsigned column; /* 1-based */
};

struct config_kv {
    char *name;
    char *value;
};

struct config_healthcheck {
    usec_t period;  /* how often halod asks (AMF-invoked) or expects a confirm */
    usec_t timeout; /* no answer or confirm within this: the component failed */
};

struct config_restart {
    unsigned max;     /* restarts allowed within window before the SU is disabled */
    usec_t window;    /* sliding window for max */
    usec_t delay;     /* first restart delay */
    usec_t delay_max; /* backoff doubles up to this */
    usec_t stable;    /* a run this long resets the backoff */
};

struct config_timeouts {
    usec_t instantiate; /* spawn -> registered */
    usec_t csi_set;     /* CSI set -> response */
    usec_t csi_remove;
    usec_t quiescing; /* QUIESCING -> quiescing complete */
    usec_t terminate; /* terminate callback -> exit; then SIGKILL (cleanup) */
};

/* What a failure of a component calls for first (docs/configuration.md, "Recovery"); in
 * the order of their strength: the AMF never does less than a component recommends. */
enum config_recovery {
    CONFIG_RECOVERY_COMPONENT_RESTART,  /* its process alone restarts, its unit keeps its role (the default) */
    CONFIG_RECOVERY_COMPONENT_FAILOVER, /* its unit fails over and restarts */
    CONFIG_RECOVERY_NODE_SWITCHOVER,    /* every unit of its node fails over (node switchover: partial) */
    CONFIG_RECOVERY_NODE_FAILOVER,      /* every unit of its node fails over */
    CONFIG_RECOVERY_NODE_FAILFAST,      /* every unit of its node is killed and fails over at once */
    _CONFIG_RECOVERY_MAX,
};
/* "component-restart", ... */
const char *config_recovery_to_string(enum config_recovery r);

/* A rung of the escalation ladder: more than max within probation climbs to the next. */
struct config_escalation {
    unsigned max;
    usec_t probation; /* the count restarts from 0 this long after its first */
    bool given;       /* in the description (a node's su-failover: absent means never) */
};

/* How halod runs a component (docs/configuration.md, "Component types"). */
enum config_comp_type {
    CONFIG_COMP_SA_AWARE,     /* links libhalo: registers, takes its CSIs by callbacks (the default) */
    CONFIG_COMP_NON_SA_AWARE, /* an unmodified program: its process runs while its unit holds its CSI ACTIVE */
    CONFIG_COMP_OCF,          /* an OCF resource agent: started while its unit holds its CSI ACTIVE, stopped else */
    CONFIG_COMP_PROXIED,      /* no process of halod's: its proxy (an SA-aware component) acts for it */
};

/* External active monitoring: a command halod runs every period while the component runs. */
struct config_monitor {
    char **command; /* argv[0] absolute; NULL-terminated; NULL: none (an OCF agent's own monitor action) */
    size_t n_command;
    usec_t period;  /* 0: not given (OCF: the agent's advertised monitor interval, else 10s) */
    usec_t timeout; /* 0: not given (OCF: the agent's advertised monitor timeout, else 20s) */
    bool given;     /* a 'monitor' key was given (an OCF component is monitored without one too) */
};

/* `user:` and `group:`, resolved when the description is loaded. */
struct config_ids {
    bool set_uid, set_gid;
    uid_t uid;
    gid_t gid;     /* the group's, else the user's primary group */
    gid_t *groups; /* supplementary groups: the user's, as initgroups() would set them; NULL: none */
    size_t n_groups;
};

/* "sa-aware", "non-sa-aware", "ocf", "proxied". */
const char *config_comp_type_to_string(enum config_comp_type t);

/* Where a component's stdout and stderr go (its `stdout` key, docs/logging.md). */
enum config_output {
    CONFIG_OUTPUT_INHERIT, /* halod's own stdout and stderr, as they are (the default) */
    CONFIG_OUTPUT_JOURNAL, /* each line into halod's log, tagged with the component's name */
    CONFIG_OUTPUT_FILE,    /* appended to output_file */
};

struct config_component {
    char *name;
    struct config_pos pos;
    char *command; /* absolute path, resolved and checked executable at load time */
    char **args;   /* NULL-terminated (never NULL), without argv[0] */
    size_t n_args;
    struct config_kv *env;
    size_t n_env;
    char *workdir; /* absolute; defaults to the description file's directory */
    enum config_output output;
    char *output_file; /* CONFIG_OUTPUT_FILE: absolute */
    char **csi_types;  /* CSI types this component takes (never empty); NULL: any */
    size_t n_csi_types;
    char **services; /* the services this process runs (recovery model), names unique in it */
    size_t n_services;
    char **devices; /* the storage devices it uses (recovery model), names unique in it */
    size_t n_devices;
    struct config_healthcheck healthcheck;
    struct config_restart restart;
    struct config_timeouts timeouts;
    enum config_comp_type type;
    /* Non-SA-aware only (each NULL when not given): */
    char **terminate; /* run instead of SIGTERM to stop it; argv[0] absolute; NULL-terminated */
    size_t n_terminate;
    char **cleanup; /* run once its process was killed or died, to release what it held */
    size_t n_cleanup;
    char *pidfile; /* absolute: the command forks a daemon and writes its pid here, then exits 0 */
    enum config_recovery recovery;
    char **hc_keys; /* health-check keys: AMF-invoked checks halod starts at registration; NULL: none */
    size_t n_hc_keys;
    struct config_monitor monitor;
    struct config_ids ids;
    /* OCF only: the agent (command is its absolute path), its provider and type, and its parameters. */
    char *ocf_provider, *ocf_type;
    struct config_kv *ocf_params;
    size_t n_ocf_params;
    /* Timeouts given in the description (else an OCF agent's advertised ones apply). */
    bool instantiate_given, terminate_given;
    /* Proxied only: the name of its proxy, an SA-aware component of another unit of its node. */
    char *proxy;
    struct config_pos proxy_pos;
};

struct config_su {
    char *name;
    struct config_pos pos;
    char *node;                 /* never NULL: defaults to the only node */
    struct config_pos node_pos; /* of the `node` value; line 0 when defaulted */
    unsigned rank;              /* order in the description; lower is preferred for ACTIVE */
    struct config_component *components;
    size_t n_components;
};

struct config_csi {
    char *name;
    struct config_pos pos;
    char *type;                 /* NULL: goes to the SU's only component */
    struct config_pos type_pos; /* of the `type` value; line 0 when absent */
    struct config_kv *attrs;
    size_t n_attrs;
};

struct config_si {
    char *name;
    struct config_pos pos;
    bool entrypoint; /* listed by the entrypoint query (the seeds' confd list) */
    struct config_csi *csis;
    size_t n_csis;
    unsigned rank;                /* lower is assigned first and dropped last; default: its position */
    unsigned active_assignments;  /* N-way-active: ACTIVEs wanted; 0: one per SU of the group */
    unsigned standby_assignments; /* N-way: STANDBYs wanted; 0: the default, 1 */
    struct config_pos active_assignments_pos, standby_assignments_pos; /* line 0 when absent */
    char **depends_on; /* SIs of the same group that must be ACTIVE before this one (names) */
    size_t n_depends_on;
    struct config_pos depends_on_pos;
};

enum config_redundancy {
    CONFIG_REDUNDANCY_2N,
    CONFIG_REDUNDANCY_N_PLUS_M,
    CONFIG_REDUNDANCY_N_WAY,
    CONFIG_REDUNDANCY_N_WAY_ACTIVE,
    CONFIG_REDUNDANCY_NO_REDUNDANCY,
    _CONFIG_REDUNDANCY_MAX,
};
/* The canonical spelling of a model ("2N", "N+M", "N-way", "N-way-active", "no-redundancy"). */
const char *config_redundancy_to_string(enum config_redundancy r);

struct config_sg {
    char *name;
    struct config_pos pos;
    enum config_redundancy redundancy;
    struct config_pos redundancy_pos;
    unsigned active_sus, standby_sus; /* N+M: N and M (0: not given) */
    struct config_pos active_sus_pos, standby_sus_pos;
    unsigned max_active_sis_per_su, max_standby_sis_per_su; /* 0: no limit */
    struct config_pos max_active_pos, max_standby_pos;
    bool auto_failback; /* auto-adjust (alias auto-failback): ACTIVE back to the most preferred SU when it returns */
    usec_t auto_adjust_probation; /* how long a unit must be back before a role moves onto it */
    bool cdb_roles;               /* the ACTIVE SU's node is the CDB primary, the STANDBY's its secondary */
    char *cdb_subtree;            /* with cdb_roles: the CDB subtree whose roles it drives (NULL: the main database) */
    struct config_escalation comp_restart; /* component restarts of one SU before an SU restart */
    struct config_escalation su_restart;   /* SU restarts before an SU failover */
    struct config_pos cdb_roles_pos;
    struct config_pos cdb_subtree_pos;
    struct config_su *sus;
    size_t n_sus;
    struct config_si *sis;
    size_t n_sis;
};

/* What a node failfast does once every component of the node is killed (docs/configuration.md). */
enum config_failfast {
    CONFIG_FAILFAST_NONE,    /* not given: a node failover (every unit fails over and restarts) */
    CONFIG_FAILFAST_HALT,    /* sync(), then reboot(RB_POWER_OFF) */
    CONFIG_FAILFAST_REBOOT,  /* sync(), then reboot(RB_AUTOBOOT) */
    CONFIG_FAILFAST_COMMAND, /* failfast_command is run, then halod exits */
};

struct config_node {
    char *name;
    struct config_pos pos;
    char *cdb_address;                    /* where its halod takes CDB secondaries, "ADDR:PORT"; NULL if not given */
    struct config_escalation su_failover; /* SU failovers on it before a node failover (given: else never) */
    enum config_failfast failfast;
    char **failfast_command; /* CONFIG_FAILFAST_COMMAND: argv, argv[0] an absolute path, NULL-terminated */
    size_t n_failfast_command;
};

/* Most processes in one pool: a pool member's event is written to every
 * member's failure vector in the transaction that publishes it. */
#define CONFIG_POOL_PROCESSES_MAX 32
/* Most pool processes on one node: the node's failure is written to each
 * one's failure vector (two writes each) in the transaction that publishes
 * it, which holds at most 128 operations (etcd's --max-txn-ops) with its own
 * three (failvec.c checks the sums). */
#define CONFIG_NODE_POOL_PROCESSES_MAX 62

/* A recovery pool: processes that take part in each other's recovery. */
struct config_pool {
    char *name;
    struct config_pos pos;
    char **processes; /* component names ("su" or "su/comp"), each in one pool at most */
    size_t n_processes;
    unsigned tolerate; /* failures among the others the pool survives (default 1) */
    bool report;       /* participants: report (each participant reports its completion); default list */
};

/* The configuration database's replication (the 'cdb' section). */
struct config_cdb {
    bool async;        /* replication: async (default sync: a commit waits for the secondaries) */
    usec_t tick;       /* a replication peer idle this long sends a tick (default 500ms) */
    usec_t dead_after; /* a peer silent this long is dead (default 2s) */
    char *token_file;  /* where the token was read from, as written; NULL if not given */
    char *token;       /* the nodes' shared token, read from token_file at load; NULL if not given */
};

/* The longest token (the 'token-file' holds one line of 1 to this many printable bytes). */
#define CONFIG_TOKEN_MAX 255
/* cdb-roles groups with a cdb-subtree: each a database file of its own on every node. */
#define CONFIG_CDB_SUBTREES_MAX 16
#define CONFIG_CDB_SUBTREE_MAX 255 /* the longest cdb-subtree path, in bytes */

/* A log stream halod writes to a file of its own (the 'log-streams' section, docs/logging.md). */
struct config_log_stream {
    char *name; /* the stream's name, as components give it to halo_log() */
    struct config_pos pos;
    char *file;        /* absolute; its directory existed and was writable at load */
    uint64_t max_size; /* bytes: a record that would take the file past it rotates it first */
    unsigned keep;     /* rotated files kept: FILE.1 (the newest) to FILE.KEEP */
};

#define CONFIG_LOG_STREAMS_MAX 64
#define CONFIG_LOG_STREAM_NAME_MAX 64 /* the longest name a component's record carries (LINK_LOG_STREAM_MAX) */
#define CONFIG_LOG_SIZE_DEFAULT (10 * 1024 * 1024)
#define CONFIG_LOG_SIZE_MIN (16 * 1024)     /* four records of the longest text */
#define CONFIG_LOG_SIZE_MAX (1024ULL << 30) /* 1024 GiB */
#define CONFIG_LOG_KEEP_DEFAULT 5
#define CONFIG_LOG_KEEP_MAX 99

struct config {
    char *path;    /* the description file */
    char *basedir; /* its directory, for relative commands */
    char *text;    /* the file's bytes as read (not NUL-terminated), for config_diff() and the digest */
    size_t text_size;
    char *cluster; /* cluster name, default "halo" */
    struct config_node *nodes;
    size_t n_nodes;
    struct config_sg *sgs;
    size_t n_sgs;
    struct config_cdb cdb;
    struct config_pool *pools;
    size_t n_pools;
    struct config_log_stream *log_streams;
    size_t n_log_streams;
};

/*
 * Parses and verifies a description.  On success returns 0 and *ret (the
 * caller frees it with config_free()).  On failure returns -EINVAL for a
 * description with problems, -EFBIG for a file larger than 1 MiB, -errno when
 * the file cannot be read (-ENOENT, -EISDIR, ...), or -ENOMEM; and, when errors
 * is not NULL, appends one line per problem to *errors (NULL or a malloc'ed
 * string; realloc'ed, caller frees), sorted by position:
 *   "FILE:LINE:COLUMN: message\n"   (LINE and COLUMN 1-based)
 *   "FILE: message\n"               (the file cannot be opened or read)
 * Every problem is reported, not only the first.  Nothing is started.
 */
int config_load(const char *path, struct config **ret, char **errors);

struct config *config_free(struct config *c); /* accepts NULL; returns NULL */

/* A copy of n attributes (0, -ENOMEM); free with config_kv_free(), which accepts NULL. */
int config_kv_dup(const struct config_kv *kv, size_t n, struct config_kv **ret);
void config_kv_free(struct config_kv *kv, size_t n);

/* Lookups; NULL when absent. */
const struct config_node *config_find_node(const struct config *c, const char *name);
/* The component named "su" or "su/comp", and its SU's node. */
const struct config_component *config_find_component(const struct config *c, const char *name, const char **ret_node);
/* The index in su->components of the component that takes csi: the SU's only
 * component, else the first whose csi-types lists the CSI's type, else the
 * first that takes any type; SIZE_MAX when none does. */
size_t config_csi_component(const struct config_su *su, const struct config_csi *csi);
/* The log stream written to a file of that name. */
const struct config_log_stream *config_find_log_stream(const struct config *c, const char *name);
/* The pool a component belongs to. */
const struct config_pool *config_find_pool_of(const struct config *c, const char *component);

/* ---- reload: what changed between two descriptions (config-diff.c) ---- */

enum config_change_kind { CONFIG_CHANGE_ADDED, CONFIG_CHANGE_REMOVED, CONFIG_CHANGE_CHANGED };
const char *config_change_kind_to_string(enum config_change_kind k); /* "added", "removed", "changed" */

struct config_change {
    enum config_change_kind kind;
    char *key;             /* the key's path, "service-groups.web.service-units.a.node", a list's item as "args[2]" */
    struct config_pos pos; /* in the new description (removed: in the old one) */
    /* A key under service-groups.SG.service-instances.SI.csis.CSI.attributes: these are its names. */
    bool csi_attributes;
    /* A whole service group added or removed (the key service-groups.SG): sg is its name. */
    bool service_group;
    /* A CSI added to or removed from an SI of both (service-groups.SG.service-instances.SI.csis.CSI). */
    bool whole_csi;
    /* An SI added to or removed from a group of both (service-groups.SG.service-instances.SI): sg, si. */
    bool whole_si;
    /* A unit added to or removed from a group of both (service-groups.SG.service-units.SU): sg, su. */
    bool whole_su;
    /* A setting of a component (any key of a component map: command, health-check, restart, type...)
     * under the group's component template or a unit's components (sg); what it changes shows in the
     * components' resolved settings (config_component_differ()). */
    bool component_setting;
    /* A setting of a group of both (service-groups.SG.KEY..., KEY none of component, service-units,
     * service-instances): sg. */
    bool group_setting;
    /* The node of a unit of both changed (service-groups.SG.service-units.SU.node): sg, su. */
    bool unit_node;
    /* A component added to or removed from a unit of both (service-groups.SG.service-units.SU.components.C):
     * sg, su, comp ("SU/C", its name). */
    bool whole_comp;
    /* Any other key under defaults or a group's or unit's component template, or such a template
     * added or removed: what it changes shows only in the components' resolved settings
     * (config_component_differ()).  No name is set. */
    bool template;
    char *sg, *si, *csi, *su, *comp;
};

/* The most changes one diff lists; more set truncated. */
#define CONFIG_DIFF_MAX 64

struct config_diff {
    struct config_change *changes; /* in the order of the old description's keys, then the new one's */
    size_t n_changes;
    bool truncated;
};

/*
 * Compares the texts two config_load() calls read (their YAML trees, key by key): 0 and *ret
 * (free with config_diff_free(); no change: n_changes 0), -EINVAL when a description was not
 * loaded from a file, -ENOMEM.  Files the descriptions name (commands, token files) are not read.
 */
int config_diff(const struct config *old, const struct config *new, struct config_diff **ret);
struct config_diff *config_diff_free(struct config_diff *d); /* accepts NULL; returns NULL */
/* What differs between a and b, one component as two descriptions resolve it: a set of these.  The
 * AMF applies RESTART by a restart in place, LIVE and CSI_TYPES without one; the others not live. */
enum {
    CONFIG_DIFFER_RESTART = 1 << 0,   /* command, args, env, workdir, stdout, timeouts, health-check, terminate,
                                         cleanup, pidfile, monitor, user, group, an OCF agent's params */
    CONFIG_DIFFER_LIVE = 1 << 1,      /* restart (its policy), recovery: read when it fails */
    CONFIG_DIFFER_CSI_TYPES = 1 << 2, /* csi-types: live while no CSI moves to another component */
    CONFIG_DIFFER_TYPE = 1 << 3,
    CONFIG_DIFFER_PROXY = 1 << 4,
    CONFIG_DIFFER_RECOVERY_MODEL = 1 << 5, /* services, devices: the recovery model is built at start */
    CONFIG_DIFFER_AGENT = 1 << 6,          /* an OCF component's agent (its meta-data is read once) */
};
unsigned config_component_differ(const struct config_component *a, const struct config_component *b);
