/* SPDX-License-Identifier: MIT */
/*
 * Fakes of halod's io layer (io/server.h, io/supervisor.h, io/http.h's
 * metrics) for unit tests of the layers above it: a test links these instead
 * of libhalod-io, and drives processes and HA links by hand.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "link.h"
#include "supervisor.h"

/* A process "started" by supervisor_spawn(). */
struct proc {
    pid_t pid;
    proc_exit_cb cb;
    void *userdata;
    int killed; /* the last signal sent */
    bool detached;
    bool dead; /* it has ended, its exit not told yet (proc_has_exited()) */
};

/* An HA link: what halod sent on it, decoded, and its replies. */
#define FAKE_CONN_MSGS_MAX 128
struct conn {
    pid_t pid;
    uid_t uid; /* 0 (root) unless a test says otherwise */
    bool admin;
    bool closed;
    /* Set: the next reply cannot be sent (the peer is gone); the fake calls
     * it, as the server calls its close handler, and the reply fails. */
    void (*broken)(struct conn *c);
    LinkMsg *msgs[FAKE_CONN_MSGS_MAX];
    size_t n_msgs, taken;
    uint64_t reply_seq[FAKE_CONN_MSGS_MAX];
    int reply_err[FAKE_CONN_MSGS_MAX];
    char *reply_json[FAKE_CONN_MSGS_MAX];
    size_t n_replies;
    void *data;
};

/* supervisor_spawn() fails with this while it is non-zero; how often it was called. */
extern int fake_spawn_error;
extern unsigned fake_spawn_calls;
/* How long each fake spawn takes (as a fork() of a large halod may), in microseconds; 0: none. */
extern unsigned fake_spawn_usec;
/* The argv and the env entries of the last supervisor_spawn() (copies, NULL-terminated). */
extern char **fake_spawn_argv, **fake_spawn_env;
/* The env entry NAME=... of the last spawn, or NULL. */
const char *fake_spawn_getenv(const char *name);
/* supervisor_adopt() watches any pid (a fake process) while this is set; else -ESRCH. */
extern bool fake_adopt_ok;
/* Frees what the fakes keep between calls. */
void fake_io_done(void);

/* The process of userdata's owner ends with status, as its pidfd would tell. */
void fake_proc_exit(struct proc *p, int status);
/* The next message halod sent on c that the test has not looked at, or NULL. */
LinkMsg *fake_conn_next(struct conn *c);
/* The last reply on c: its error (and seq, json when asked); fails the test if there is none. */
int fake_conn_last_reply(const struct conn *c, uint64_t *ret_seq, const char **ret_json);
void fake_conn_done(struct conn *c);
