/* SPDX-License-Identifier: MIT */
/*
 * What the parts of haloctl sim share: the simulation (struct sim) as sim.json
 * records it, and the calls between its files.  sim.c runs the verbs;
 * sim-layout.c names the processes and derives their paths and ports;
 * sim-describe.c writes and checks the cluster description; sim-proc.c starts
 * and stops the processes; sim-record.c keeps DIR/sim.json and clears DIR;
 * sim-wait.c waits until etcd and the halods have settled.
 *
 * Every function that fails says why on stderr (as "haloctl: ...") unless its
 * comment says otherwise, and returns -errno.
 */
#pragma once

#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "time-util.h"

#define SIM_NODES_MAX 16
/* The halods' lease TTL (seconds): short, so that a node killed is found dead within a second. */
#define SIM_LEASE_TTL_DEFAULT 1
#define SIM_LEASE_TTL_MAX 60
#define SIM_MEMBERS_MAX 7
#define SIM_PORTS_MAX (2 * SIM_MEMBERS_MAX + 1 + 2 * SIM_NODES_MAX)
#define UP_TIMEOUT_USEC (30 * USEC_PER_SEC)
#define STOP_TIMEOUT_MSEC 20000
#define KILL_TIMEOUT_MSEC 5000
#define POLL_INTERVAL_MSEC 100
#define ETCD_DEFAULT "/usr/bin/etcd"

/* One process of the simulation, as sim.json records it. */
struct sim_proc {
    char name[24];       /* m0.., n1.. */
    const char *kind;    /* "etcd", "halod" */
    pid_t pid;           /* 0: not started (or reaped by sim up) */
    uint64_t start_time; /* field 22 of /proc/PID/stat: tells our process from a later one with its pid */
    char *log;
};

struct member {
    struct sim_proc proc;
    int client_port, peer_port;
    char *data_dir;
};

struct node {
    struct sim_proc proc;
    char *state_dir, *socket;
    int http_port; /* its HTTP API on 127.0.0.1 */
};

struct sim {
    char *dir;
    char *config;       /* the cluster description the halods run */
    bool generated;     /* config is DIR/cluster.yaml, written by sim up */
    int port;           /* the counter SI's port; 0 with --config */
    unsigned lease_ttl; /* the halods' --lease-ttl, seconds */
    size_t n_members, n_nodes;
    struct member members[SIM_MEMBERS_MAX];
    struct node nodes[SIM_NODES_MAX];
};

/* The simulation's i-th process: its etcd members first, then its nodes. */
static inline struct sim_proc *sim_proc_nth(struct sim *s, size_t i) {
    return i < s->n_members ? &s->members[i].proc : &s->nodes[i - s->n_members].proc;
}

static inline void fclosep(FILE **f) {
    if (*f)
        fclose(*f);
}

/* A string member of a JSON object, "" if there is none. */
static inline const char *jstr(json_t *o, const char *k) {
    return json_string_value(json_object_get(o, k)) ?: "";
}

/* ---- sim-proc.c (the token) --------------------------------------------------- */

/* DIR/http.token, written if missing ($HALO_SIM_HTTP_TOKEN, else random); its path.  0, -EINVAL (a bad
 * $HALO_SIM_HTTP_TOKEN), -errno. */
int sim_proc_token(struct sim *s, char **ret_path);

/* ---- sim-layout.c ------------------------------------------------------------ */

/* Frees what s points to (not s). */
void sim_layout_done(struct sim *s);
/* Names the members and nodes and derives their paths from DIR. */
int sim_layout(struct sim *s);
/* The absolute simulation directory: --dir, else $XDG_RUNTIME_DIR/halo-sim, else /tmp/halo-sim-$UID. */
int sim_layout_dir(const char *arg, char **ret);
/* n distinct loopback TCP ports, free a moment ago.  Says nothing. */
int sim_layout_ports(size_t n, unsigned first, int *ret);
/* The etcd client URLs, comma-separated; NULL when out of memory. */
char *sim_layout_endpoints(const struct sim *s);

/* ---- sim-describe.c ---------------------------------------------------------- */

/* Writes s->config: the example counter service, 2N, one unit per node, each with its own standby port.
 * Says nothing. */
int sim_describe_write(const struct sim *s, const char *counter, const int *standby_ports);
/* Runs halod --check on path, whose complaints go to our stderr; then checks it names the nodes n1..nN. */
int sim_describe_check(const char *halod, const char *path, size_t n_nodes);

/* ---- sim-proc.c -------------------------------------------------------------- */

/* Whether p runs as the process sim up started (the pid has the start time recorded). */
bool sim_proc_alive(const struct sim_proc *p);
int sim_proc_start_member(struct sim *s, size_t i, const char *etcd);
int sim_proc_start_node(struct sim *s, size_t i, const char *halod, const char *eps);
/* Stops the halods first (they stop their components and leave the cluster), then etcd; says what it does unless
 * quiet. */
int sim_proc_stop_all(struct sim *s, bool quiet);

/* ---- sim-record.c ------------------------------------------------------------ */

/* Records s in DIR/sim.json.  Says nothing. */
int sim_record_save(const struct sim *s);
/* Reads DIR/sim.json into s (s->dir set by the caller).  -ENOENT, said nothing, when there is none; -EBADMSG when
 * it is not a record sim up wrote. */
int sim_record_load(struct sim *s);
/* Removes what a simulation keeps in DIR, and DIR unless keep_dir or other files stay in it.  1 if DIR is gone,
 * 0 if it stays.  Says nothing. */
int sim_record_remove(const struct sim *s, bool keep_dir);
/* Makes DIR ready for a new simulation. */
int sim_record_prepare(const struct sim *s);

/* ---- sim-wait.c -------------------------------------------------------------- */

/* Set by sim up's signal handler: the waits end with -EINTR. */
extern volatile sig_atomic_t sim_interrupted;

/* Sleeps ms, less if a signal arrives. */
void sim_wait_msec(unsigned ms);
/* Waits until every etcd member says it is healthy. */
int sim_wait_etcd(struct sim *s, usec_t deadline);
/* Waits until every halod answers and sees the cluster settled: 0 and the first node's status. */
int sim_wait_settled(struct sim *s, const char *self, usec_t deadline, json_t **ret);
