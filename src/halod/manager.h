/* SPDX-License-Identifier: MIT */
/*
 * halod's context: the one object that knows every subsystem.  It builds them
 * in dependency order, wires the AMF's observers and the membership's events,
 * starts them in the order the state is read back, and stops them.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"

struct config;
struct manager;

struct manager_options {
    const char *config_path;
    const char *state_dir;
    bool state_dir_given;   /* --state-dir: the socket's default goes there */
    const char *socket;     /* NULL: STATE_DIR/halod.sock with --state-dir, else /run/halo/halod.sock */
    const char *node;       /* NULL: the only node, or this host's name */
    const char *etcd;       /* "URL,URL,...": several nodes; NULL: SQLite */
    int64_t lease_ttl;      /* seconds */
    const char *http;       /* ADDR:PORT or "none" */
    bool http_given;        /* --http was given: failing to serve it is an error */
    const char *ha_socket;  /* NULL: ha.sock next to the socket */
    const char *ha_control; /* loopback ADDR:PORT, or NULL */
    const char *cdb_listen; /* NULL: the node's cdb-address, else 0.0.0.0:4570 */
    const char *cdb_tls_cert, *cdb_tls_key, *cdb_tls_ca; /* CDB replication over mutual TLS (all three), or NULL */

    const char *etcd_cacert, *etcd_cert, *etcd_key; /* TLS towards https:// etcd endpoints, or NULL */
    const char *etcd_user, *etcd_password_file;     /* etcd authentication (both or neither), or NULL */
    const char *http_token_file;                    /* the bearer token writes over HTTP need, or NULL */
    const char *http_cert, *http_key;               /* HTTPS, or NULL */
};

/* Builds every subsystem (logging what fails).  0 or -errno. */
int manager_new(const struct manager_options *o, struct manager **ret);
/* Reads the previous state back and runs the loop until halod stops.  0 or -errno. */
int manager_run(struct manager *m);
/* Accepts NULL; returns NULL. */
struct manager *manager_free(struct manager *m);
