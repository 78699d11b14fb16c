/* SPDX-License-Identifier: MIT */
/* Fakes of halod's io layer for unit tests (fake-io.h). */
#include "fake-io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "http.h"
#include "macro.h"
#include "server.h"
#include "tests.h"

static pid_t next_pid = 1000;
int fake_spawn_error;
unsigned fake_spawn_calls;

char **fake_spawn_argv, **fake_spawn_env;
bool fake_adopt_ok;

static char **strv_copy(char *const *v) {
    size_t n = 0;
    while (v && v[n])
        n++;
    char **c = calloc(n + 1, sizeof(char *));
    ASSERT(c);
    for (size_t i = 0; i < n; i++)
        ASSERT((c[i] = strdup(v[i])));
    return c;
}

static char **strv_free(char **v) {
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
    return NULL;
}

void fake_io_done(void) {
    fake_spawn_argv = strv_free(fake_spawn_argv);
    fake_spawn_env = strv_free(fake_spawn_env);
}

const char *fake_spawn_getenv(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; fake_spawn_env && fake_spawn_env[i]; i++)
        if (strncmp(fake_spawn_env[i], name, n) == 0 && fake_spawn_env[i][n] == '=')
            return fake_spawn_env[i] + n + 1;
    return NULL;
}

unsigned fake_spawn_usec;

int supervisor_spawn(struct supervisor *s, const struct spawn_params *p, proc_exit_cb cb, void *userdata,
                     struct proc **ret) {
    fake_spawn_calls++;
    if (fake_spawn_usec)
        usleep(fake_spawn_usec);
    if (fake_spawn_error)
        return fake_spawn_error;
    fake_io_done();
    fake_spawn_argv = strv_copy(p->argv);
    fake_spawn_env = strv_copy(p->env);
    struct proc *pr = calloc(1, sizeof(*pr));
    ASSERT(pr);
    *pr = (struct proc){.pid = next_pid++, .cb = cb, .userdata = userdata};
    *ret = pr;
    return 0;
}

int supervisor_adopt(struct supervisor *s, pid_t pid, proc_exit_cb cb, void *userdata, struct proc **ret) {
    if (!fake_adopt_ok)
        return -ESRCH;
    struct proc *pr = calloc(1, sizeof(*pr));
    ASSERT(pr);
    *pr = (struct proc){.pid = pid, .cb = cb, .userdata = userdata};
    *ret = pr;
    return 0;
}

pid_t proc_pid(const struct proc *p) {
    return p->pid;
}

int proc_kill(struct proc *p, int sig) {
    p->killed = sig;
    return 0;
}

bool proc_has_exited(const struct proc *p) {
    return p->dead;
}

void proc_detach(struct proc *p) {
    /* The AMF forgets its process: the fake goes with it. */
    free(p);
}

char *proc_status_to_string(int status, char *buf, size_t n) {
    snprintf(buf, n, "status %d", status);
    return buf;
}

void fake_proc_exit(struct proc *p, int status) {
    ASSERT(p);
    p->cb(p, status, p->userdata);
    free(p); /* the supervisor frees it after the callback */
}

static void record_reply(struct conn *c, uint64_t seq, int error, const char *json) {
    ASSERT(c->n_replies < FAKE_CONN_MSGS_MAX);
    c->reply_seq[c->n_replies] = seq;
    c->reply_err[c->n_replies] = error;
    c->reply_json[c->n_replies] = json && *json ? strdup(json) : NULL;
    c->n_replies++;
}

int server_conn_send_packed(struct conn *c, const uint8_t *buf, size_t n) {
    LinkMsg *m = NULL;
    ASSERT_OK(link_decode(buf, n, &m));
    if (m->body_case == HALO__LINK__MSG__BODY_REPLY) {
        record_reply(c, m->reply->seq, m->reply->error, m->reply->json);
        /* Replies with more than an error (states, HA state) are kept as messages too. */
    }
    ASSERT(c->n_msgs < FAKE_CONN_MSGS_MAX);
    c->msgs[c->n_msgs++] = m;
    return 0;
}

int server_conn_send_packets(struct conn *c, const struct iovec *pkts, size_t n) {
    for (size_t i = 0; i < n; i++)
        (void)server_conn_send_packed(c, pkts[i].iov_base, pkts[i].iov_len);
    return 0;
}

size_t server_conn_queued(const struct conn *c) {
    return 0;
}

int server_conn_reply(struct conn *c, uint64_t seq, int error, const char *json) {
    if (c->broken) {
        void (*broken)(struct conn *) = c->broken;
        c->broken = NULL;
        c->closed = true;
        broken(c);
        return -EPIPE;
    }
    record_reply(c, seq, error, json);
    return 0;
}

int server_conn_reply_parts(struct conn *c, uint64_t seq, char *json) {
    record_reply(c, seq, 0, json);
    free(json);
    return 0;
}

int server_conn_reply_next_part(struct conn *c, uint64_t seq) {
    record_reply(c, seq, -ENOENT, NULL);
    return 0;
}

void server_conn_close(struct conn *c, const char *reason) {
    c->closed = true;
}

pid_t server_conn_pid(const struct conn *c) {
    return c->pid;
}

uint64_t server_cut_off_total(const struct server *s) {
    return 0;
}

bool server_conn_is_privileged(const struct conn *c) {
    return c->uid == 0 || c->uid == geteuid();
}

bool server_conn_is_admin(const struct conn *c) {
    return c->admin;
}

const char *server_conn_name(const struct conn *c) {
    return "fake";
}

void server_conn_set_data(struct conn *c, void *data) {
    c->data = data;
}

/* Metrics are the io layer's text builder: counted here, not written. */
int http_metrics_add(struct http_metrics_buf *b, const char *name, const char *help, const char *type,
                     const char *labels, double value) {
    return 0;
}

int http_metrics_add_histogram(struct http_metrics_buf *b, const char *name, const char *help, const char *labels,
                               const double *bounds, const uint64_t *counts, size_t n, double sum, uint64_t count) {
    return 0;
}

int http_metrics_labels(char *buf, size_t size, ...) {
    if (size)
        buf[0] = 0;
    return 0;
}

LinkMsg *fake_conn_next(struct conn *c) {
    return c->taken < c->n_msgs ? c->msgs[c->taken++] : NULL;
}

int fake_conn_last_reply(const struct conn *c, uint64_t *ret_seq, const char **ret_json) {
    if (c->n_replies == 0)
        CHECK_FAIL("no reply");
    if (ret_seq)
        *ret_seq = c->reply_seq[c->n_replies - 1];
    if (ret_json)
        *ret_json = c->reply_json[c->n_replies - 1];
    return c->reply_err[c->n_replies - 1];
}

void fake_conn_done(struct conn *c) {
    for (size_t i = 0; i < c->n_msgs; i++)
        link_msg_free(c->msgs[i]);
    for (size_t i = 0; i < c->n_replies; i++)
        free(c->reply_json[i]);
    *c = (struct conn){0};
}

/* What the layers that are linked but not under test (the CDB's link) call. */
int server_conn_send(struct conn *c, const LinkMsg *m) {
    uint8_t buf[LINK_MSG_MAX];
    int n = link_encode(m, buf, sizeof(buf));
    return n < 0 ? n : server_conn_send_packed(c, buf, (size_t)n);
}

int server_conn_send_reply(struct conn *c, Halo__Link__Reply *r) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    m.body_case = HALO__LINK__MSG__BODY_REPLY;
    m.reply = r;
    return server_conn_send(c, &m);
}

void *server_conn_get_data(const struct conn *c) {
    return c->data;
}

int http_metrics_finish(struct http_metrics_buf *b, char **ret_text) {
    *ret_text = strdup("");
    return *ret_text ? 0 : -ENOMEM;
}

void http_metrics_done(struct http_metrics_buf *b) {
}

ssize_t proc_output(struct proc *p, char *buf, size_t n, bool last) {
    if (n > 0)
        buf[0] = '\0';
    return 0;
}
