/* SPDX-License-Identifier: MIT */
/*
 * Tests of libhalo against a fake halod: a thread serving a real AF_UNIX
 * SOCK_SEQPACKET socket in a temporary directory, which records every request
 * and answers it as the test's hook says.  fake_die() and fake_respawn() play
 * a halod that crashes and one that is started again on the same socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "halo/halo.h"
#include "link.h"
#include "macro.h"
#include "tests.h"

/* ---- the fake halod ------------------------------------------------------ */

#define LOG_MAX 4096

struct fake;
/* Called for each request with a seq; fills *reply, returns false to send no Reply. May fake_send(). */
typedef bool (*fake_hook)(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply);

struct fake {
    char dir[64];
    char path[128];
    int lfd;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int cfd;             /* the accepted connection, -1 before */
    bool hung_up;        /* fake_hangup() was called: sends may fail */
    int32_t hello_error; /* sent in HelloReply */
    uint32_t hello_version;
    bool hello_hangup; /* close instead of answering Hello */
    bool reverse;      /* answer each batch of requests in reverse order */
    fake_hook hook;
    void *data;            /* for hooks */
    LinkMsg *log[LOG_MAX]; /* everything received, Hello first */
    size_t n_log;
};

static uint64_t request_seq(const LinkMsg *m) {
    switch (m->body_case) {
    case HALO__LINK__MSG__BODY_REGISTER:
        return m->register_->seq;
    case HALO__LINK__MSG__BODY_UNREGISTER:
        return m->unregister->seq;
    case HALO__LINK__MSG__BODY_RESPONSE:
        return m->response->seq;
    case HALO__LINK__MSG__BODY_HC_START:
        return m->hc_start->seq;
    case HALO__LINK__MSG__BODY_HC_CONFIRM:
        return m->hc_confirm->seq;
    case HALO__LINK__MSG__BODY_HC_STOP:
        return m->hc_stop->seq;
    case HALO__LINK__MSG__BODY_ERROR_REPORT:
        return m->error_report->seq;
    case HALO__LINK__MSG__BODY_PG_TRACK:
        return m->pg_track->seq;
    case HALO__LINK__MSG__BODY_PG_TRACK_STOP:
        return m->pg_track_stop->seq;
    case HALO__LINK__MSG__BODY_HA_STATE_GET:
        return m->ha_state_get->seq;
    default:
        return 0;
    }
}

static void fake_send(struct fake *f, const LinkMsg *m) {
    pthread_mutex_lock(&f->lock);
    int fd = f->cfd;
    bool hung_up = f->hung_up;
    pthread_mutex_unlock(&f->lock);
    ASSERT(fd >= 0);
    int r = link_send(fd, m);
    if (r == -EPIPE && hung_up)
        return;
    ASSERT_EQ(r, 0);
}

static void send_reply(struct fake *f, const Halo__Link__Reply *r) {
    LinkMsg m = HALO__LINK__MSG__INIT;
    m.body_case = HALO__LINK__MSG__BODY_REPLY;
    m.reply = (Halo__Link__Reply *)r;
    fake_send(f, &m);
}

static void *fake_main(void *arg) {
    struct fake *f = arg;
    int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    ASSERT(fd >= 0);
    pthread_mutex_lock(&f->lock);
    f->cfd = fd;
    pthread_mutex_unlock(&f->lock);

    bool hello_done = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, -1) < 0)
            continue;

        /* Read a batch: everything available now. */
        LinkMsg *batch[256];
        size_t n = 0;
        int r;
        while (n < ELEMENTSOF(batch) && (r = link_recv(fd, &batch[n])) != -EAGAIN) {
            if (r == 0 || (r < 0 && r != -EBADMSG))
                goto done;
            if (r == 1)
                n++;
        }
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < n && f->n_log < LOG_MAX; i++)
            f->log[f->n_log++] = batch[i];
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);

        for (size_t k = 0; k < n; k++) {
            const LinkMsg *m = batch[f->reverse ? n - 1 - k : k];
            if (!hello_done) {
                ASSERT_EQ(m->body_case, HALO__LINK__MSG__BODY_HELLO);
                hello_done = true;
                if (f->hello_hangup)
                    goto done;
                Halo__Link__HelloReply hr = HALO__LINK__HELLO_REPLY__INIT;
                LinkMsg out = HALO__LINK__MSG__INIT;
                hr.error = f->hello_error;
                hr.version = f->hello_version;
                hr.node = (char *)"local";
                out.body_case = HALO__LINK__MSG__BODY_HELLO_REPLY;
                out.hello_reply = &hr;
                fake_send(f, &out);
                continue;
            }
            uint64_t seq = request_seq(m);
            Halo__Link__Reply reply = HALO__LINK__REPLY__INIT;
            reply.seq = seq;
            bool answer = f->hook ? f->hook(f, m, &reply) : true;
            if (seq && answer)
                send_reply(f, &reply);
        }
    }
done:
    pthread_mutex_lock(&f->lock);
    shutdown(fd, SHUT_RDWR);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
    return NULL;
}

/* A failed ASSERT exits the test process: remove the current fake's directory anyway. */
static struct fake *current_fake;

static void fake_cleanup_at_exit(void) {
    if (current_fake) {
        unlink(current_fake->path);
        rmdir(current_fake->dir);
    }
}

/* A listening SOCK_SEQPACKET socket at path. */
static int listen_at(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    ASSERT(strlen(path) < sizeof(sa.sun_path));
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    ASSERT_OK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)));
    ASSERT_OK(listen(fd, 4));
    return fd;
}

static struct fake *fake_new(fake_hook hook) {
    struct fake *f = calloc(1, sizeof(*f));
    ASSERT(f);
    strcpy(f->dir, "/tmp/test-libhalo.XXXXXX");
    ASSERT(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/halo.sock", f->dir);
    if (!current_fake)
        atexit(fake_cleanup_at_exit);
    current_fake = f;
    f->cfd = -1;
    f->hello_version = LINK_PROTOCOL_VERSION;
    f->hook = hook;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->lfd = listen_at(f->path);
    return f;
}

/* Starts serving; separate from fake_new() so a test can set options first. */
static void fake_start(struct fake *f) {
    ASSERT_EQ(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

/* Closes the server's end of the link, as a dying halod would. */
static void fake_hangup(struct fake *f) {
    pthread_mutex_lock(&f->lock);
    ASSERT(f->cfd >= 0);
    f->hung_up = true;
    shutdown(f->cfd, SHUT_RDWR);
    pthread_mutex_unlock(&f->lock);
    pthread_join(f->thread, NULL);
    f->thread = 0;
}

/* halod dies: its end of the link closes, and nobody listens on the socket any more. */
static void fake_die(struct fake *f) {
    pthread_mutex_lock(&f->lock);
    f->hung_up = true;
    if (f->cfd >= 0)
        shutdown(f->cfd, SHUT_RDWR);
    pthread_mutex_unlock(&f->lock);
    if (f->thread) {
        pthread_join(f->thread, NULL);
        f->thread = 0;
    }
    f->lfd = safe_close(f->lfd);
    unlink(f->path);
}

/* After fake_die(): a new halod on the same socket, with the same hook and an empty log; fake_start() it. */
static void fake_respawn(struct fake *f) {
    ASSERT(!f->thread);
    f->cfd = safe_close(f->cfd);
    f->hung_up = false;
    for (size_t i = 0; i < f->n_log; i++)
        link_msg_free(f->log[i]);
    f->n_log = 0;
    f->lfd = listen_at(f->path);
}

static void fake_free(struct fake *f) {
    if (f->thread) {
        pthread_mutex_lock(&f->lock);
        if (f->cfd >= 0)
            shutdown(f->cfd, SHUT_RDWR);
        pthread_mutex_unlock(&f->lock);
        pthread_join(f->thread, NULL);
    }
    safe_close(f->cfd);
    safe_close(f->lfd);
    for (size_t i = 0; i < f->n_log; i++)
        link_msg_free(f->log[i]);
    unlink(f->path);
    rmdir(f->dir);
    if (current_fake == f)
        current_fake = NULL;
    free(f);
}

/* Waits until the log holds at least n messages of body case c; returns the n-th (1-based). */
static const LinkMsg *fake_wait(struct fake *f, int c, size_t n) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&f->lock);
    for (;;) {
        size_t k = 0;
        for (size_t i = 0; i < f->n_log; i++)
            if ((int)f->log[i]->body_case == c && ++k == n) {
                const LinkMsg *m = f->log[i];
                pthread_mutex_unlock(&f->lock);
                return m;
            }
        if (pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == ETIMEDOUT)
            CHECK_FAIL("fake halod never received %zu messages of case %d", n, c);
    }
}

static size_t fake_count(struct fake *f) {
    pthread_mutex_lock(&f->lock);
    size_t n = f->n_log;
    pthread_mutex_unlock(&f->lock);
    return n;
}

static const LinkMsg *fake_log(struct fake *f, size_t i) {
    pthread_mutex_lock(&f->lock);
    ASSERT(i < f->n_log);
    const LinkMsg *m = f->log[i];
    pthread_mutex_unlock(&f->lock);
    return m;
}

static void send_csi_set(struct fake *f, uint64_t inv, halo_ha_state state) {
    Halo__Link__CsiSet cs = HALO__LINK__CSI_SET__INIT;
    Halo__Link__Attr a1 = HALO__LINK__ATTR__INIT, a2 = HALO__LINK__ATTR__INIT;
    Halo__Link__Attr *attrs[] = {&a1, &a2};
    LinkMsg m = HALO__LINK__MSG__INIT;
    a1.name = (char *)"port";
    a1.value = (char *)"7700";
    a2.name = (char *)"bind";
    a2.value = (char *)"127.0.0.1";
    cs.invocation = inv;
    cs.comp = (char *)"comp-a";
    cs.ha_state = state;
    cs.flags = HALO_CSI_ADD_ONE;
    cs.csi = (char *)"csi-1";
    cs.si = (char *)"si-1";
    cs.n_attrs = 2;
    cs.attrs = attrs;
    cs.transition = state == HALO_HA_ACTIVE ? HALO_CSI_NOT_QUIESCED : 0;
    cs.active_comp = (char *)(state == HALO_HA_STANDBY ? "comp-b" : "");
    m.body_case = HALO__LINK__MSG__BODY_CSI_SET;
    m.csi_set = &cs;
    fake_send(f, &m);
}

static void send_healthcheck(struct fake *f, uint64_t inv) {
    Halo__Link__Healthcheck hc = HALO__LINK__HEALTHCHECK__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    hc.invocation = inv;
    hc.comp = (char *)"comp-a";
    hc.key = (char *)"default";
    m.body_case = HALO__LINK__MSG__BODY_HEALTHCHECK;
    m.healthcheck = &hc;
    fake_send(f, &m);
}

static void send_terminate(struct fake *f, uint64_t inv) {
    Halo__Link__Terminate t = HALO__LINK__TERMINATE__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    t.invocation = inv;
    t.comp = (char *)"comp-a";
    m.body_case = HALO__LINK__MSG__BODY_TERMINATE;
    m.terminate = &t;
    fake_send(f, &m);
}

/* ---- the component side -------------------------------------------------- */

/* What the callbacks saw; the test's userdata. */
struct seen {
    int csi_set, csi_remove, terminate, healthcheck, pg_track;
    int response_result; /* what halo_response() returned inside the callback */
    halo_invocation last_inv;
    bool close_in_terminate;
    pthread_mutex_t lock; /* the concurrency test dispatches on another thread */
    int lost, restored, failed, link_error;
    char order[64]; /* L, R, F: link states; P: pg_track; C: csi_set, in the order they ran */
};

static void seen_append(struct seen *s, char c) {
    size_t n = strlen(s->order);
    ASSERT(n + 1 < sizeof(s->order));
    s->order[n] = c;
}

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state,
                       const halo_csi_descriptor *csi, void *userdata) {
    struct seen *s = userdata;
    ASSERT_STREQ(comp, "comp-a");
    ASSERT_EQ(csi->flags, HALO_CSI_ADD_ONE);
    ASSERT_STREQ(csi->csi_name, "csi-1");
    ASSERT_STREQ(csi->si_name, "si-1");
    ASSERT_EQ(csi->n_attrs, 2);
    ASSERT_STREQ(csi->attrs[0].name, "port");
    ASSERT_STREQ(csi->attrs[0].value, "7700");
    ASSERT_STREQ(csi->attrs[1].name, "bind");
    ASSERT_STREQ(csi->attrs[1].value, "127.0.0.1");
    if (state == HALO_HA_ACTIVE) {
        ASSERT_EQ(csi->transition, HALO_CSI_NOT_QUIESCED);
        ASSERT(csi->active_comp == NULL);
    } else if (state == HALO_HA_STANDBY)
        ASSERT_STREQ(csi->active_comp, "comp-b");
    int r = halo_response(h, inv, 0);
    pthread_mutex_lock(&s->lock);
    s->csi_set++;
    s->last_inv = inv;
    s->response_result = r;
    seen_append(s, 'C');
    pthread_mutex_unlock(&s->lock);
}

static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    struct seen *s = userdata;
    s->terminate++;
    s->response_result = halo_response(h, inv, 0);
    if (s->close_in_terminate)
        ASSERT(halo_close(h) == NULL);
}

static void on_healthcheck(halo *h, halo_invocation inv, const char *comp, const char *key, void *userdata) {
    struct seen *s = userdata;
    ASSERT_STREQ(key, "default");
    int r = halo_response(h, inv, 0);
    pthread_mutex_lock(&s->lock);
    s->healthcheck++;
    if (r < 0)
        s->response_result = r;
    pthread_mutex_unlock(&s->lock);
}

static void on_pg_track(halo *h, const char *csi_name, const halo_pg_member *members, size_t n_members, int error,
                        void *userdata) {
    struct seen *s = userdata;
    ASSERT_STREQ(csi_name, "csi-1");
    ASSERT_EQ(n_members, 2);
    ASSERT_STREQ(members[0].comp_name, "comp-a");
    ASSERT_EQ(members[0].ha_state, HALO_HA_ACTIVE);
    ASSERT_EQ(members[1].change, HALO_PG_ADDED);
    ASSERT_EQ(error, 0);
    pthread_mutex_lock(&s->lock);
    s->pg_track++;
    seen_append(s, 'P');
    pthread_mutex_unlock(&s->lock);
}

static void on_link_state(halo *h, halo_link_state state, int error, void *userdata) {
    struct seen *s = userdata;
    pthread_mutex_lock(&s->lock);
    switch (state) {
    case HALO_LINK_LOST:
        s->lost++;
        seen_append(s, 'L');
        break;
    case HALO_LINK_RESTORED:
        ASSERT_EQ(error, 0);
        s->restored++;
        seen_append(s, 'R');
        break;
    case HALO_LINK_FAILED:
        s->failed++;
        seen_append(s, 'F');
        break;
    default:
        CHECK_FAIL("link state %d", state);
    }
    s->link_error = error;
    pthread_mutex_unlock(&s->lock);
}

static const halo_callbacks all_callbacks = {
    .csi_set = on_csi_set,
    .terminate = on_terminate,
    .healthcheck = on_healthcheck,
    .pg_track = on_pg_track,
};

static const halo_callbacks reconnect_callbacks = {
    .csi_set = on_csi_set,
    .terminate = on_terminate,
    .healthcheck = on_healthcheck,
    .pg_track = on_pg_track,
    .link_state = on_link_state,
};

static struct seen *seen_new(void) {
    struct seen *s = calloc(1, sizeof(*s));
    ASSERT(s);
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

/* Opens a handle to f, registered as comp-a. */
static halo *open_registered(struct fake *f, const halo_callbacks *cb, struct seen *s) {
    halo *h = NULL;
    ASSERT_EQ(halo_open(f->path, cb, s, &h), 0);
    ASSERT(h);
    ASSERT_EQ(halo_register(h, "comp-a", NULL), 0);
    return h;
}

static int readable(halo *h) {
    struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
    int r = poll(&p, 1, 0);
    ASSERT(r >= 0);
    return r;
}

/* ---- tests --------------------------------------------------------------- */

TEST(open_sends_hello) {
    struct fake *f = fake_new(NULL);
    halo *h = NULL;
    fake_start(f);

    ASSERT_EQ(halo_open(f->path, &all_callbacks, NULL, &h), 0);
    const LinkMsg *m = fake_log(f, 0);
    ASSERT_EQ(m->body_case, HALO__LINK__MSG__BODY_HELLO);
    ASSERT_EQ(m->hello->version, LINK_PROTOCOL_VERSION);
    ASSERT_EQ(m->hello->pid, getpid());
    char client[32]; /* the version halo.h declares, not one written down by hand */
    snprintf(client, sizeof(client), "libhalo/%d.%d", HALO_VERSION_MAJOR, HALO_VERSION_MINOR);
    ASSERT_STREQ(m->hello->client, client);

    int fd = halo_fd(h);
    ASSERT(fd >= 0);
    ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ(readable(h), 0);
    ASSERT(halo_close(h) == NULL);
    ASSERT(halo_close(NULL) == NULL);
    fake_free(f);
}

TEST(open_socket_from_environment) {
    struct fake *f = fake_new(NULL);
    halo *h = NULL;
    fake_start(f);

    ASSERT_EQ(halo_open(NULL, NULL, NULL, NULL), -EINVAL);
    unsetenv("HALO_SOCKET");
    ASSERT_EQ(halo_open(NULL, &all_callbacks, NULL, &h), -ENOENT);
    ASSERT(!h);
    setenv("HALO_SOCKET", "/nonexistent/halo.sock", 1);
    ASSERT_EQ(halo_open(NULL, &all_callbacks, NULL, &h), -ENOENT);
    ASSERT(!h);
    setenv("HALO_SOCKET", f->path, 1);
    ASSERT_EQ(halo_open(NULL, &all_callbacks, NULL, &h), 0);
    ASSERT(h);
    halo_close(h);
    fake_free(f);
}

TEST(open_version_mismatch) {
    halo *h = NULL;

    struct fake *f = fake_new(NULL);
    f->hello_error = -HALO_EVERSION;
    fake_start(f);
    ASSERT_EQ(halo_open(f->path, &all_callbacks, NULL, &h), -HALO_EVERSION);
    ASSERT(!h);
    fake_free(f);

    /* A halod that answers with another version without saying it is an error. */
    f = fake_new(NULL);
    f->hello_version = LINK_PROTOCOL_VERSION + 1;
    fake_start(f);
    ASSERT_EQ(halo_open(f->path, &all_callbacks, NULL, &h), -HALO_EVERSION);
    ASSERT(!h);
    fake_free(f);

    /* A halod that hangs up instead of answering. */
    f = fake_new(NULL);
    f->hello_hangup = true;
    fake_start(f);
    ASSERT_EQ(halo_open(f->path, &all_callbacks, NULL, &h), -ECONNRESET);
    ASSERT(!h);
    fake_free(f);

    ASSERT_STREQ(halo_strerror(-HALO_EVERSION), "HA link protocol version not supported");
    ASSERT_STREQ(halo_ha_state_to_string(HALO_HA_QUIESCING), "QUIESCING");
}

static bool register_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    if (req->body_case == HALO__LINK__MSG__BODY_REGISTER && streq(req->register_->comp, "not-in-model"))
        reply->error = -HALO_EUNKNOWN;
    if (req->body_case == HALO__LINK__MSG__BODY_HC_START && streq(req->hc_start->key, "twice"))
        reply->error = HALO_EEXIST; /* a positive error from halod still reaches the caller negative */
    return true;
}

TEST(register_and_use_registered_name) {
    struct fake *f = fake_new(register_hook);
    halo *h = NULL;
    fake_start(f);
    ASSERT_EQ(halo_open(f->path, &all_callbacks, NULL, &h), 0);

    ASSERT_EQ(halo_register(h, "not-in-model", NULL), -HALO_EUNKNOWN);
    /* Not registered: calls that default to the registered component cannot run. */
    ASSERT_EQ(halo_healthcheck_start(h, NULL, NULL, HALO_HC_AMF_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER),
              -HALO_ENOTREG);

    setenv("HALO_COMPONENT", "comp-a", 1);
    ASSERT_EQ(halo_register(h, NULL, NULL), 0);
    const LinkMsg *m = fake_wait(f, HALO__LINK__MSG__BODY_REGISTER, 2);
    ASSERT_STREQ(m->register_->comp, "comp-a");
    ASSERT(m->register_->seq != 0);
    ASSERT_EQ(halo_register(h, "comp-a", NULL), -HALO_EEXIST);

    ASSERT_EQ(halo_healthcheck_start(h, NULL, NULL, HALO_HC_AMF_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER), 0);
    m = fake_wait(f, HALO__LINK__MSG__BODY_HC_START, 1);
    ASSERT_STREQ(m->hc_start->comp, "comp-a");
    ASSERT_STREQ(m->hc_start->key, "default");
    ASSERT_EQ(m->hc_start->invoked, HALO_HC_AMF_INVOKED);
    ASSERT_EQ(m->hc_start->recovery, HALO_RECOVERY_COMPONENT_FAILOVER);
    ASSERT_EQ(halo_healthcheck_start(h, NULL, "twice", HALO_HC_COMPONENT_INVOKED, HALO_RECOVERY_NONE), -HALO_EEXIST);

    ASSERT_EQ(halo_healthcheck_confirm(h, NULL, "twice", -EIO), 0);
    m = fake_wait(f, HALO__LINK__MSG__BODY_HC_CONFIRM, 1);
    ASSERT_EQ(m->hc_confirm->result, -EIO);
    ASSERT_EQ(halo_healthcheck_stop(h, NULL, "twice"), 0);
    ASSERT_EQ(halo_error_report(h, NULL, HALO_RECOVERY_COMPONENT_RESTART), 0);
    m = fake_wait(f, HALO__LINK__MSG__BODY_ERROR_REPORT, 1);
    ASSERT_STREQ(m->error_report->comp, "comp-a");
    ASSERT_EQ(m->error_report->recovery, HALO_RECOVERY_COMPONENT_RESTART);

    ASSERT_EQ(halo_unregister(h, NULL), 0);
    m = fake_wait(f, HALO__LINK__MSG__BODY_UNREGISTER, 1);
    ASSERT_STREQ(m->unregister->comp, "comp-a");
    ASSERT_EQ(halo_unregister(h, NULL), -HALO_ENOTREG);

    /* Seqs are fresh for every request. */
    uint64_t last = 0;
    for (size_t i = 1; i < fake_count(f); i++) {
        uint64_t s = request_seq(fake_log(f, i));
        ASSERT(s > last);
        last = s;
    }
    halo_close(h);
    fake_free(f);
}

TEST(bad_arguments_send_nothing) {
    struct fake *f = fake_new(NULL);
    halo *h = NULL;
    halo_ha_state st;
    char long_name[LINK_NAME_MAX + 2];
    fake_start(f);

    halo_callbacks no_csi_set = all_callbacks, no_terminate = all_callbacks;
    no_csi_set.csi_set = NULL;
    no_terminate.terminate = NULL;

    ASSERT_EQ(halo_open(f->path, &no_csi_set, NULL, &h), 0);
    ASSERT_EQ(halo_register(h, "comp-a", NULL), -EINVAL);
    halo_close(h);
    pthread_join(f->thread, NULL); /* the fake saw the link close... */
    f->thread = 0;
    ASSERT_EQ(fake_count(f), 1); /* ...and nothing but Hello */
    fake_free(f);

    f = fake_new(NULL);
    fake_start(f);
    ASSERT_EQ(halo_open(f->path, &no_terminate, NULL, &h), 0);
    ASSERT_EQ(halo_register(h, "comp-a", NULL), -EINVAL);
    halo_close(h);
    pthread_join(f->thread, NULL);
    f->thread = 0;
    ASSERT_EQ(fake_count(f), 1);
    fake_free(f);

    f = fake_new(NULL);
    fake_start(f);
    ASSERT_EQ(halo_open(f->path, &all_callbacks, NULL, &h), 0);
    memset(long_name, 'n', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    unsetenv("HALO_COMPONENT");
    ASSERT_EQ(halo_register(h, NULL, NULL), -EINVAL);
    ASSERT_EQ(halo_register(h, NULL, "proxy"), -EINVAL); /* a proxied component is named */
    ASSERT_EQ(halo_register(h, "comp-a", "bad\nproxy"), -EINVAL);
    ASSERT_EQ(halo_register(h, "", NULL), -EINVAL);
    ASSERT_EQ(halo_register(h, "bad\nname", NULL), -EINVAL);
    ASSERT_EQ(halo_register(h, long_name, NULL), -ENAMETOOLONG);
    ASSERT_EQ(halo_register(NULL, "comp-a", NULL), -EINVAL);
    ASSERT_EQ(halo_response(h, 0, 0), -EINVAL);
    ASSERT_EQ(halo_response(h, 1, 5), -EINVAL);
    ASSERT_EQ(halo_healthcheck_start(h, "c", "k", 0, HALO_RECOVERY_NONE), -EINVAL);
    ASSERT_EQ(halo_healthcheck_start(h, "c", "k", HALO_HC_AMF_INVOKED, 9), -EINVAL);
    ASSERT_EQ(halo_healthcheck_stop(h, "c", long_name), -ENAMETOOLONG);
    ASSERT_EQ(halo_error_report(h, "c", 0), -EINVAL);
    ASSERT_EQ(halo_pg_track(h, "csi-1", 0), -EINVAL);
    ASSERT_EQ(halo_pg_track(h, "csi-1", HALO_TRACK_CHANGES | HALO_TRACK_CHANGES_ONLY), -EINVAL);
    ASSERT_EQ(halo_pg_track_stop(h, NULL), -EINVAL);
    ASSERT_EQ(halo_ha_state_get(h, "c", "csi-1", NULL), -EINVAL);
    ASSERT_EQ(halo_ha_state_get(h, "c", NULL, &st), -EINVAL);
    ASSERT_EQ(halo_recovery_participant_done(h, NULL, 0), -EINVAL);
    ASSERT_EQ(halo_recovery_participant_done(h, "ios-b", 0), -EINVAL); /* not an object name */
    ASSERT_EQ(halo_recovery_participant_done(NULL, "process:ios-b", 0), -EINVAL);
    ASSERT_EQ(halo_dispatch(h, 0), -EINVAL);
    ASSERT_EQ(halo_dispatch(NULL, HALO_DISPATCH_ALL), -EINVAL);
    ASSERT_EQ(halo_fd(NULL), -EINVAL);

    /* One valid request to synchronise: it must be the first thing after Hello. */
    ASSERT_EQ(halo_ha_state_get(h, "c", "csi-1", &st), -HALO_EPROTO); /* the fake answers ha_state 0 */
    ASSERT_EQ(fake_count(f), 2);
    ASSERT_EQ(fake_log(f, 1)->body_case, HALO__LINK__MSG__BODY_HA_STATE_GET);
    halo_close(h);
    fake_free(f);
}

static bool response_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    if (req->body_case == HALO__LINK__MSG__BODY_RESPONSE && req->response->invocation == 999)
        reply->error = -HALO_EBADINVOCATION;
    return true;
}

TEST(csi_set_dispatch_and_response) {
    struct fake *f = fake_new(response_hook);
    struct seen *s = seen_new();
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    ASSERT_EQ(readable(h), 0);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 0);
    send_csi_set(f, 77, HALO_HA_ACTIVE);
    ASSERT_EQ(readable(h), 1); /* a callback is pending */
    ASSERT_EQ(s->csi_set, 0);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ONE), 1);
    ASSERT_EQ(s->csi_set, 1);
    ASSERT_EQ(s->last_inv, 77);
    ASSERT_EQ(s->response_result, 0);
    ASSERT_EQ(readable(h), 0); /* nothing left */
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ONE), 0);

    const LinkMsg *m = fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 1);
    ASSERT_EQ(m->response->invocation, 77);
    ASSERT_EQ(m->response->error, 0);
    ASSERT(!m->response->quiescing_complete);
    ASSERT(m->response->seq != 0);

    /* halod's verdict on an answer reaches the caller. */
    ASSERT_EQ(halo_response(h, 999, 0), -HALO_EBADINVOCATION);
    ASSERT_EQ(halo_quiescing_complete(h, 78, -HALO_ECOMPFAILED), 0);
    m = fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 3);
    ASSERT_EQ(m->response->invocation, 78);
    ASSERT_EQ(m->response->error, -HALO_ECOMPFAILED);
    ASSERT(m->response->quiescing_complete);

    /* STANDBY carries the active component. */
    send_csi_set(f, 79, HALO_HA_STANDBY);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 1);
    ASSERT_EQ(s->csi_set, 2);
    halo_close(h);
    fake_free(f);
    free(s);
}

static bool queue_during_call_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    /* halod assigns the CSI and starts checking before it answers the request. */
    if (req->body_case == HALO__LINK__MSG__BODY_HC_START) {
        send_csi_set(f, 5, HALO_HA_ACTIVE);
        send_healthcheck(f, 6);
    }
    return true;
}

TEST(callbacks_received_during_a_call_are_dispatched_after) {
    struct fake *f = fake_new(queue_during_call_hook);
    struct seen *s = seen_new();
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    ASSERT_EQ(halo_healthcheck_start(h, NULL, NULL, HALO_HC_AMF_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER), 0);
    /* Both were read by the call, which ran neither; the selection object says they wait. */
    ASSERT_EQ(s->csi_set + s->healthcheck, 0);
    ASSERT_EQ(readable(h), 1);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ONE), 1);
    ASSERT_EQ(s->csi_set, 1);
    ASSERT_EQ(s->healthcheck, 0);
    ASSERT_EQ(readable(h), 1);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 1);
    ASSERT_EQ(s->healthcheck, 1);
    ASSERT_EQ(s->response_result, 0);
    ASSERT_EQ(readable(h), 0);
    halo_close(h);
    fake_free(f);
    free(s);
}

TEST(healthcheck_without_callback_is_answered) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    halo_callbacks cb = {.csi_set = on_csi_set, .terminate = on_terminate};
    fake_start(f);
    halo *h = open_registered(f, &cb, s);

    send_healthcheck(f, 41);
    ASSERT_EQ(readable(h), 1);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 0); /* no application callback ran */
    const LinkMsg *m = fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 1);
    ASSERT_EQ(m->response->invocation, 41);
    ASSERT(m->response->error < 0);
    ASSERT_EQ(m->response->seq, 0);
    ASSERT_EQ(readable(h), 0);

    /* Without a pg_track callback there is nothing to deliver to. */
    ASSERT_EQ(halo_pg_track(h, "csi-1", HALO_TRACK_CURRENT), -EINVAL);
    halo_close(h);
    fake_free(f);
    free(s);
}

static void send_proxied(struct fake *f, uint64_t inv, bool cleanup) {
    Halo__Link__ProxiedInstantiate pi = HALO__LINK__PROXIED_INSTANTIATE__INIT;
    Halo__Link__ProxiedCleanup pc = HALO__LINK__PROXIED_CLEANUP__INIT;
    LinkMsg m = HALO__LINK__MSG__INIT;
    pi.invocation = pc.invocation = inv;
    pi.comp = pc.comp = (char *)"px-a";
    m.body_case = cleanup ? HALO__LINK__MSG__BODY_PROXIED_CLEANUP : HALO__LINK__MSG__BODY_PROXIED_INSTANTIATE;
    if (cleanup)
        m.proxied_cleanup = &pc;
    else
        m.proxied_instantiate = &pi;
    fake_send(f, &m);
}

static uint64_t proxied_inv;
static char proxied_comp[64];

static void on_proxied(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    proxied_inv = inv;
    snprintf(proxied_comp, sizeof(proxied_comp), "%s", comp);
}

TEST(a_proxy_gets_its_proxied_components_and_registers_them) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    /* Not a proxy (yet): an instantiate is refused, a cleanup has nothing to do. */
    send_proxied(f, 51, false);
    send_proxied(f, 52, true);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 0);
    const LinkMsg *m = fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 1);
    ASSERT(m->response->invocation == 51 && m->response->error == -EOPNOTSUPP);
    m = fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 2);
    ASSERT(m->response->invocation == 52 && m->response->error == 0);

    ASSERT_EQ(halo_proxy_set_callbacks(h, NULL, on_proxied), -EINVAL);
    ASSERT_EQ(halo_proxy_set_callbacks(h, on_proxied, on_proxied), 0);
    send_proxied(f, 53, false);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 1);
    ASSERT_EQ(proxied_inv, 53);
    ASSERT_STREQ(proxied_comp, "px-a");
    send_proxied(f, 54, true);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 1);
    ASSERT_EQ(proxied_inv, 54);

    /* The proxy registers it by name, for itself; the handle's own component stays its own. */
    ASSERT_EQ(halo_register(h, "px-a", "comp-a"), 0);
    m = fake_wait(f, HALO__LINK__MSG__BODY_REGISTER, 2);
    ASSERT_STREQ(m->register_->comp, "px-a");
    ASSERT_STREQ(m->register_->proxy, "comp-a");
    ASSERT_EQ(halo_unregister(h, NULL), 0);
    m = fake_wait(f, HALO__LINK__MSG__BODY_UNREGISTER, 1);
    ASSERT_STREQ(m->unregister->comp, "comp-a");
    halo_close(h);
    fake_free(f);
    free(s);
}

TEST(malformed_packets_are_dropped) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0x01};
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    ASSERT_EQ(send(f->cfd, junk, sizeof(junk), 0), (long long)sizeof(junk));
    send_csi_set(f, 8, HALO_HA_ACTIVE);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 1);
    ASSERT_EQ(s->csi_set, 1);
    ASSERT_EQ(s->response_result, 0);
    halo_close(h);
    fake_free(f);
    free(s);
}

static bool pg_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    if (req->body_case == HALO__LINK__MSG__BODY_HA_STATE_GET) {
        if (streq(req->ha_state_get->csi, "none"))
            reply->error = -ENOENT;
        reply->ha_state = streq(req->ha_state_get->csi, "bogus") ? 9 : HALO_HA_STANDBY;
    }
    if (req->body_case != HALO__LINK__MSG__BODY_PG_TRACK)
        return true;
    /* The current members go first, so that they are queued by the time
     * halo_pg_track() returns: "delivered by the next dispatch". */
    Halo__Link__PgTrackNotify pn = HALO__LINK__PG_TRACK_NOTIFY__INIT;
    Halo__Link__PgMember a = HALO__LINK__PG_MEMBER__INIT, b = HALO__LINK__PG_MEMBER__INIT;
    Halo__Link__PgMember *members[] = {&a, &b};
    LinkMsg m = HALO__LINK__MSG__INIT;
    a.comp = (char *)"comp-a";
    a.ha_state = HALO_HA_ACTIVE;
    a.change = HALO_PG_NO_CHANGE;
    b.comp = (char *)"comp-b";
    b.ha_state = HALO_HA_STANDBY;
    b.change = HALO_PG_ADDED;
    pn.csi = req->pg_track->csi;
    pn.n_members = 2;
    pn.members = members;
    m.body_case = HALO__LINK__MSG__BODY_PG_TRACK_NOTIFY;
    m.pg_track_notify = &pn;
    fake_send(f, &m);
    return true;
}

TEST(pg_track_and_ha_state_get) {
    struct fake *f = fake_new(pg_hook);
    struct seen *s = seen_new();
    halo_ha_state st = 0;
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    ASSERT_EQ(halo_pg_track(h, "csi-1", HALO_TRACK_CURRENT | HALO_TRACK_CHANGES), 0);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 1);
    ASSERT_EQ(s->pg_track, 1);
    ASSERT_EQ(halo_pg_track_stop(h, "csi-1"), 0);

    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), 0);
    ASSERT_EQ(st, HALO_HA_STANDBY);
    const LinkMsg *m = fake_wait(f, HALO__LINK__MSG__BODY_HA_STATE_GET, 1);
    ASSERT_STREQ(m->ha_state_get->comp, "comp-a");
    st = 0;
    ASSERT_EQ(halo_ha_state_get(h, "comp-b", "none", &st), -ENOENT);
    ASSERT_EQ(halo_ha_state_get(h, "comp-b", "bogus", &st), -HALO_EPROTO);
    ASSERT_EQ(st, 0); /* written only on success */
    halo_close(h);
    fake_free(f);
    free(s);
}

TEST(link_closed_is_enotconn) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    halo_ha_state st;
    halo *h = NULL;
    fake_start(f);
    /* Without a registered component there is nothing to reconnect for. */
    ASSERT_EQ(halo_open(f->path, &reconnect_callbacks, s, &h), 0);

    /* A CSI set that arrives just before the link dies is never run: nobody could hear the answer. */
    send_csi_set(f, 3, HALO_HA_ACTIVE);
    fake_hangup(f);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), -ENOTCONN);
    ASSERT_EQ(s->csi_set, 0);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ONE), -ENOTCONN);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_BLOCKING), -ENOTCONN);
    ASSERT_EQ(halo_response(h, 3, 0), -ENOTCONN);
    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), -ENOTCONN);
    ASSERT_EQ(halo_unregister(h, NULL), -ENOTCONN);
    ASSERT_EQ(s->csi_set, 0);
    ASSERT_EQ(s->lost + s->failed, 0); /* and no link-state callback */
    /* The application's loop keeps waking up to notice. */
    ASSERT_EQ(readable(h), 1);
    halo_close(h);
    fake_free(f);
    free(s);
}

/* Runs halo_dispatch(BLOCKING) on a thread; the result lands in .r. */
struct dispatcher {
    halo *h;
    pthread_t thread;
    int r;
};

static void *dispatch_blocking(void *arg) {
    struct dispatcher *d = arg;
    d->r = halo_dispatch(d->h, HALO_DISPATCH_BLOCKING);
    return NULL;
}

static void dispatcher_start(struct dispatcher *d, halo *h) {
    d->h = h;
    d->r = 1;
    ASSERT_EQ(pthread_create(&d->thread, NULL, dispatch_blocking, d), 0);
}

TEST(blocking_dispatch_runs_callbacks_until_link_loss) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    struct dispatcher d;
    halo *h = NULL;
    fake_start(f);
    /* Not registered: the link loss is final (a registered one reconnects, see below). */
    ASSERT_EQ(halo_open(f->path, &all_callbacks, s, &h), 0);

    dispatcher_start(&d, h);
    send_csi_set(f, 3, HALO_HA_ACTIVE);
    send_healthcheck(f, 4);
    /* Both callbacks ran on the dispatcher thread and answered. */
    ASSERT_EQ(fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 2)->response->invocation, 4);
    fake_hangup(f);
    pthread_join(d.thread, NULL);
    ASSERT_EQ(d.r, -ENOTCONN);
    ASSERT_EQ(s->csi_set, 1);
    ASSERT_EQ(s->healthcheck, 1);
    halo_close(h);
    fake_free(f);
    free(s);
}

TEST(close_from_another_thread_ends_blocking_dispatch) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    struct dispatcher d;
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    dispatcher_start(&d, h);
    usleep(50 * 1000); /* let it block */
    ASSERT(halo_close(h) == NULL);
    pthread_join(d.thread, NULL);
    ASSERT_EQ(d.r, -EBADF);
    /* halod sees the link go down. */
    pthread_join(f->thread, NULL);
    f->thread = 0;
    fake_free(f);
    free(s);
}

TEST(close_from_a_callback) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    s->close_in_terminate = true;
    send_terminate(f, 9);
    send_csi_set(f, 10, HALO_HA_ACTIVE); /* must not run after the close */
    ASSERT_EQ(fake_wait(f, HALO__LINK__MSG__BODY_HELLO, 1)->body_case, HALO__LINK__MSG__BODY_HELLO);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), -EBADF); /* the handle is gone now */
    ASSERT_EQ(s->terminate, 1);
    ASSERT_EQ(s->response_result, 0);
    ASSERT_EQ(s->csi_set, 0);
    ASSERT_EQ(fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 1)->response->invocation, 9);
    fake_free(f);
    free(s);
}

/* The concurrency test: each request names its thread and round; the answer encodes both. */
#define N_THREADS 4
#define N_ROUNDS 300

static uint32_t expected_state(unsigned t, unsigned i) {
    return (t + i) % 4 + 1;
}

static bool concurrent_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    static unsigned n;
    unsigned t, i;
    if (req->body_case == HALO__LINK__MSG__BODY_HA_STATE_GET) {
        ASSERT_EQ(sscanf(req->ha_state_get->csi, "csi-%u-%u", &t, &i), 2);
        reply->ha_state = expected_state(t, i);
        /* Now and then halod interjects a health check, to be dispatched meanwhile. */
        if (++n % 16 == 0)
            send_healthcheck(f, 100000 + n);
    } else if (req->body_case == HALO__LINK__MSG__BODY_HC_CONFIRM) {
        ASSERT_EQ(sscanf(req->hc_confirm->key, "key-%u-%u", &t, &i), 2);
        reply->error = -(int)(1000 + t * N_ROUNDS + i);
    }
    return true;
}

static void *hammer(void *arg) {
    halo *h = ((void **)arg)[0];
    unsigned t = (unsigned)(uintptr_t)((void **)arg)[1];
    char name[64];
    for (unsigned i = 0; i < N_ROUNDS; i++) {
        halo_ha_state st;
        snprintf(name, sizeof(name), "csi-%u-%u", t, i);
        ASSERT_EQ(halo_ha_state_get(h, NULL, name, &st), 0);
        ASSERT_EQ(st, expected_state(t, i));
        snprintf(name, sizeof(name), "key-%u-%u", t, i);
        ASSERT_EQ(halo_healthcheck_confirm(h, NULL, name, 0), -(int)(1000 + t * N_ROUNDS + i));
    }
    return NULL;
}

TEST(four_threads_concurrently) {
    struct fake *f = fake_new(concurrent_hook);
    struct seen *s = seen_new();
    struct dispatcher d;
    pthread_t th[N_THREADS];
    void *args[N_THREADS][2];
    f->reverse = true; /* replies arrive out of order */
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    dispatcher_start(&d, h);
    for (unsigned t = 0; t < N_THREADS; t++) {
        args[t][0] = h;
        args[t][1] = (void *)(uintptr_t)t;
        ASSERT_EQ(pthread_create(&th[t], NULL, hammer, args[t]), 0);
    }
    for (unsigned t = 0; t < N_THREADS; t++)
        pthread_join(th[t], NULL);

    /* Every interjected health check was run once and answered. */
    unsigned n_hc = N_THREADS * N_ROUNDS / 16;
    fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, n_hc);
    for (int waited = 0;; waited++) {
        pthread_mutex_lock(&s->lock);
        int n = s->healthcheck;
        pthread_mutex_unlock(&s->lock);
        if (n == (int)n_hc)
            break;
        ASSERT(waited < 5000);
        usleep(1000); /* the last callback is between its answer and its return */
    }
    ASSERT_EQ(s->response_result, 0);
    usleep(10 * 1000);
    ASSERT_EQ(fake_count(f) - 1 - 1, 2 * N_THREADS * N_ROUNDS + n_hc); /* Hello, Register; nothing twice */

    halo_close(h);
    pthread_join(d.thread, NULL);
    ASSERT_EQ(d.r, -EBADF);
    fake_free(f);
    free(s);
}

static bool slow_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    static uint64_t held;
    if (req->body_case != HALO__LINK__MSG__BODY_HA_STATE_GET)
        return true;
    reply->ha_state = HALO_HA_ACTIVE;
    if (!held) {
        held = reply->seq; /* never answered in time */
        return false;
    }
    /* The late answer to the first request arrives first; it must not satisfy this one. */
    Halo__Link__Reply late = *reply;
    late.seq = held;
    late.ha_state = HALO_HA_QUIESCED;
    send_reply(f, &late);
    return true;
}

TEST(call_times_out_and_late_reply_is_ignored) {
    struct fake *f = fake_new(slow_hook);
    struct seen *s = seen_new();
    halo_ha_state st;
    struct timespec a, b;
    fake_start(f);
    halo *h = open_registered(f, &all_callbacks, s);

    clock_gettime(CLOCK_MONOTONIC, &a);
    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), -ETIMEDOUT);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    ASSERT(ms >= 4900 && ms < 7000);

    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), 0);
    ASSERT_EQ(st, HALO_HA_ACTIVE);
    ASSERT_EQ(readable(h), 0);
    halo_close(h);
    fake_free(f);
    free(s);
}

/* ---- reconnecting to a restarted halod ------------------------------------ */

static long long now_msec(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool restored(struct seen *s) {
    pthread_mutex_lock(&s->lock);
    bool r = s->restored > 0;
    pthread_mutex_unlock(&s->lock);
    return r;
}

static bool failed(struct seen *s) {
    pthread_mutex_lock(&s->lock);
    bool r = s->failed > 0;
    pthread_mutex_unlock(&s->lock);
    return r;
}

/*
 * The application's loop: polls the selection object and dispatches when it
 * is readable, until done(s) or msec passed.  Returns how often it woke up.
 */
static int run_loop(halo *h, struct seen *s, bool (*done)(struct seen *), int msec) {
    long long end = now_msec() + msec;
    int wakeups = 0;
    for (;;) {
        if (done && done(s))
            return wakeups;
        long long left = end - now_msec();
        if (left <= 0)
            return wakeups;
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        int r = poll(&p, 1, (int)left);
        ASSERT(r >= 0);
        if (r == 0)
            continue;
        wakeups++;
        r = halo_dispatch(h, HALO_DISPATCH_ALL);
        ASSERT(r >= 0 || r == -ENOTCONN);
    }
}

/* A restarted halod: refuses a resumed registration with *(int *)f->data if set, tracks as pg_hook. */
static bool resume_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    if (req->body_case == HALO__LINK__MSG__BODY_REGISTER && req->register_->resume && f->data)
        reply->error = *(int *)f->data;
    return pg_hook(f, req, reply);
}

TEST(reconnects_to_a_restarted_halod_and_resumes) {
    struct fake *f = fake_new(resume_hook);
    struct seen *s = seen_new();
    halo_ha_state st;
    fake_start(f);
    halo *h = open_registered(f, &reconnect_callbacks, s);

    ASSERT_EQ(halo_healthcheck_start(h, NULL, "self", HALO_HC_COMPONENT_INVOKED, HALO_RECOVERY_COMPONENT_RESTART), 0);
    ASSERT_EQ(halo_healthcheck_start(h, NULL, NULL, HALO_HC_AMF_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER), 0);
    ASSERT_EQ(halo_healthcheck_start(h, NULL, "stopped", HALO_HC_COMPONENT_INVOKED, HALO_RECOVERY_NONE), 0);
    ASSERT_EQ(halo_healthcheck_stop(h, NULL, "stopped"), 0);
    ASSERT_EQ(halo_pg_track(h, "csi-1", HALO_TRACK_CURRENT | HALO_TRACK_CHANGES), 0);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 1);
    ASSERT_STREQ(s->order, "P");
    int fd = halo_fd(h);

    /* A CSI set the dying halod sent is dropped: nobody could take the answer. */
    send_csi_set(f, 3, HALO_HA_ACTIVE);
    fake_die(f);
    ASSERT_EQ(run_loop(h, s, NULL, 30) >= 1, 1);
    ASSERT_EQ(s->lost, 1);
    ASSERT_EQ(s->link_error, -ECONNRESET);
    ASSERT_EQ(s->csi_set, 0);

    /* While it reconnects, calls that need halod say "try again"; answers to the old halod are moot. */
    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), -HALO_ETRYAGAIN);
    ASSERT_EQ(halo_error_report(h, NULL, HALO_RECOVERY_COMPONENT_RESTART), -HALO_ETRYAGAIN);
    ASSERT_EQ(halo_healthcheck_confirm(h, NULL, "self", 0), -HALO_ETRYAGAIN);
    ASSERT_EQ(halo_pg_track(h, "csi-2", HALO_TRACK_CURRENT), -HALO_ETRYAGAIN);
    ASSERT_EQ(halo_unregister(h, NULL), -HALO_ETRYAGAIN);
    ASSERT_EQ(halo_response(h, 3, 0), -HALO_EBADINVOCATION);
    ASSERT_EQ(halo_quiescing_complete(h, 3, 0), -HALO_EBADINVOCATION);
    ASSERT_EQ(halo_register(h, "comp-a", NULL), -HALO_EEXIST);

    /* No halod for a while: attempts fail quietly. */
    run_loop(h, s, NULL, 100);
    ASSERT_EQ(s->restored + s->failed, 0);

    fake_respawn(f);
    fake_start(f);
    run_loop(h, s, restored, 5000);
    ASSERT_EQ(s->restored, 1);
    ASSERT_EQ(s->lost, 1);
    ASSERT_EQ(halo_fd(h), fd);

    /* The new halod heard exactly: Hello, Register with resume, both checks
     * still running (a restarted halod knows nothing of its predecessor's
     * AMF-invoked checks either; the stopped one is not among them), the track. */
    ASSERT_EQ(fake_count(f), 5);
    ASSERT_EQ(fake_log(f, 0)->body_case, HALO__LINK__MSG__BODY_HELLO);
    const LinkMsg *m = fake_log(f, 1);
    ASSERT_EQ(m->body_case, HALO__LINK__MSG__BODY_REGISTER);
    ASSERT_STREQ(m->register_->comp, "comp-a");
    ASSERT(m->register_->resume);
    bool self = false, amf = false;
    for (size_t i = 2; i < 4; i++) {
        m = fake_log(f, i);
        ASSERT_EQ(m->body_case, HALO__LINK__MSG__BODY_HC_START);
        ASSERT_STREQ(m->hc_start->comp, "comp-a");
        if (streq(m->hc_start->key, "self")) {
            ASSERT_EQ(m->hc_start->invoked, HALO_HC_COMPONENT_INVOKED);
            ASSERT_EQ(m->hc_start->recovery, HALO_RECOVERY_COMPONENT_RESTART);
            self = true;
        } else {
            ASSERT_EQ(m->hc_start->invoked, HALO_HC_AMF_INVOKED);
            ASSERT_EQ(m->hc_start->recovery, HALO_RECOVERY_COMPONENT_FAILOVER);
            amf = true;
        }
    }
    ASSERT(self && amf);
    m = fake_log(f, 4);
    ASSERT_EQ(m->body_case, HALO__LINK__MSG__BODY_PG_TRACK);
    ASSERT_STREQ(m->pg_track->csi, "csi-1");
    ASSERT_EQ(m->pg_track->flags, HALO_TRACK_CURRENT | HALO_TRACK_CHANGES);

    /* RESTORED came before what the new halod sent meanwhile (the current members). */
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 0);
    ASSERT_STREQ(s->order, "PLRP");
    ASSERT_EQ(readable(h), 0); /* the dead link is out of the selection object */

    /* Business as usual with the new halod. */
    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), 0);
    ASSERT_EQ(st, HALO_HA_STANDBY);
    send_csi_set(f, 4, HALO_HA_ACTIVE);
    ASSERT_EQ(run_loop(h, s, NULL, 50) >= 1, 1);
    ASSERT_EQ(s->csi_set, 1);
    ASSERT_EQ(s->response_result, 0);
    ASSERT_EQ(fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 1)->response->invocation, 4);
    halo_close(h);
    fake_free(f);
    free(s);
}

TEST(refused_resume_fails_for_good) {
    const int refusals[] = {-HALO_EBADSTATE, -EPERM};
    for (size_t i = 0; i < ELEMENTSOF(refusals); i++) {
        struct fake *f = fake_new(resume_hook);
        struct seen *s = seen_new();
        halo_ha_state st;
        f->data = (void *)&refusals[i];
        fake_start(f);
        halo *h = open_registered(f, &reconnect_callbacks, s);

        fake_die(f);
        fake_respawn(f);
        fake_start(f);
        run_loop(h, s, failed, 5000);
        ASSERT_STREQ(s->order, "LF");
        ASSERT_EQ(s->link_error, refusals[i]);
        ASSERT(fake_wait(f, HALO__LINK__MSG__BODY_REGISTER, 1)->register_->resume);

        ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), -ENOTCONN);
        ASSERT_EQ(halo_response(h, 3, 0), -ENOTCONN);
        ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), -ENOTCONN);
        ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_BLOCKING), -ENOTCONN);
        ASSERT_EQ(readable(h), 1); /* the loop keeps waking up to notice */
        ASSERT_EQ(s->failed, 1);
        /* libhalo hung up on the halod that refused it. */
        pthread_join(f->thread, NULL);
        f->thread = 0;
        halo_close(h);
        fake_free(f);
        free(s);
    }
}

TEST(gives_up_after_the_bound) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    halo_ha_state st;
    setenv("HALO_RECONNECT_MAX_MSEC", "300", 1); /* read by halo_open() */
    fake_start(f);
    halo *h = open_registered(f, &reconnect_callbacks, s);
    unsetenv("HALO_RECONNECT_MAX_MSEC");

    long long start = now_msec();
    fake_die(f);
    run_loop(h, s, failed, 5000);
    long long ms = now_msec() - start;
    ASSERT_STREQ(s->order, "LF");
    ASSERT_EQ(s->link_error, -ETIMEDOUT);
    ASSERT(ms >= 300 && ms < 1500);
    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), -ENOTCONN);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), -ENOTCONN);
    halo_close(h);
    fake_free(f);
    free(s);
}

/* A halod that accepts and closes at once, counting the connections. */
struct slammer {
    int lfd;
    pthread_t thread;
    pthread_mutex_t lock;
    int n;
    bool stop;
};

static void *slammer_main(void *arg) {
    struct slammer *sl = arg;
    for (;;) {
        pthread_mutex_lock(&sl->lock);
        bool stop = sl->stop;
        pthread_mutex_unlock(&sl->lock);
        if (stop)
            return NULL;
        struct pollfd p = {.fd = sl->lfd, .events = POLLIN};
        if (poll(&p, 1, 5) <= 0)
            continue;
        int fd = accept4(sl->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        close(fd);
        pthread_mutex_lock(&sl->lock);
        sl->n++;
        pthread_mutex_unlock(&sl->lock);
    }
}

TEST(reconnect_backs_off) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    struct slammer sl = {.n = 0};
    fake_start(f);
    halo *h = open_registered(f, &reconnect_callbacks, s);

    fake_die(f);
    sl.lfd = listen_at(f->path);
    pthread_mutex_init(&sl.lock, NULL);
    ASSERT_EQ(pthread_create(&sl.thread, NULL, slammer_main, &sl), 0);

    /* Attempts after about 10, 30, 70 and 150 ms (the next at 310): not a busy loop. */
    int wakeups = run_loop(h, s, NULL, 300);
    pthread_mutex_lock(&sl.lock);
    int n = sl.n;
    sl.stop = true;
    pthread_mutex_unlock(&sl.lock);
    pthread_join(sl.thread, NULL);
    fprintf(stderr, "%d connections, %d wakeups in 300 ms\n", n, wakeups);
    ASSERT(n >= 3 && n <= 6);
    ASSERT(wakeups <= 2 * n + 2);
    ASSERT_STREQ(s->order, "L");
    safe_close(sl.lfd);
    halo_close(h);
    fake_free(f);
    free(s);
}

/* halod dies while it handles an HaStateGet for "die", or the answer to invocation 66. */
static bool dying_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    if ((req->body_case == HALO__LINK__MSG__BODY_HA_STATE_GET && streq(req->ha_state_get->csi, "die")) ||
        (req->body_case == HALO__LINK__MSG__BODY_RESPONSE && req->response->invocation == 66)) {
        pthread_mutex_lock(&f->lock);
        f->hung_up = true;
        shutdown(f->cfd, SHUT_RDWR);
        pthread_mutex_unlock(&f->lock);
        return false;
    }
    return pg_hook(f, req, reply);
}

TEST(call_in_flight_when_halod_dies) {
    struct fake *f = fake_new(dying_hook);
    struct seen *s = seen_new();
    halo_ha_state st;
    fake_start(f);
    halo *h = open_registered(f, &reconnect_callbacks, s);

    ASSERT_EQ(halo_ha_state_get(h, NULL, "die", &st), -HALO_ETRYAGAIN);
    fake_die(f);
    fake_respawn(f);
    fake_start(f);
    run_loop(h, s, restored, 5000);
    ASSERT_STREQ(s->order, "LR");

    ASSERT_EQ(halo_ha_state_get(h, NULL, "csi-1", &st), 0);
    ASSERT_EQ(halo_response(h, 66, 0), -HALO_EBADINVOCATION);
    halo_close(h);
    fake_free(f);
    free(s);
}

TEST(unregistered_component_does_not_reconnect) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    fake_start(f);
    halo *h = open_registered(f, &reconnect_callbacks, s);

    ASSERT_EQ(halo_unregister(h, NULL), 0);
    fake_die(f);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), -ENOTCONN);
    ASSERT_EQ(s->lost + s->failed, 0);
    halo_close(h);
    fake_free(f);
    free(s);
}

TEST(blocking_dispatch_carries_on_across_a_restart) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    struct dispatcher d;
    fake_start(f);
    halo *h = open_registered(f, &reconnect_callbacks, s);

    dispatcher_start(&d, h);
    fake_die(f);
    usleep(50 * 1000);
    fake_respawn(f);
    fake_start(f);
    for (int waited = 0; !restored(s); waited++) {
        ASSERT(waited < 5000);
        usleep(1000);
    }
    fake_wait(f, HALO__LINK__MSG__BODY_REGISTER, 1);
    send_csi_set(f, 8, HALO_HA_ACTIVE);
    ASSERT_EQ(fake_wait(f, HALO__LINK__MSG__BODY_RESPONSE, 1)->response->invocation, 8);
    /* The callback is done once halo_response() got its Reply. */
    for (int waited = 0;; waited++) {
        pthread_mutex_lock(&s->lock);
        int n = s->csi_set;
        pthread_mutex_unlock(&s->lock);
        if (n == 1)
            break;
        ASSERT(waited < 5000);
        usleep(1000);
    }
    ASSERT_EQ(s->response_result, 0);
    halo_close(h);
    pthread_join(d.thread, NULL);
    ASSERT_EQ(d.r, -EBADF);
    ASSERT_STREQ(s->order, "LRC");
    fake_free(f);
    free(s);
}

/* halo_open as programs built against the 0.1 header were linked to it. */
int halo_open_0_1(const char *socket_path, const halo_callbacks *callbacks, void *userdata, halo **ret);
__asm__(".symver halo_open_0_1, halo_open@HALO_0.1");

TEST(old_binaries_pass_a_shorter_callbacks_struct) {
    struct fake *f = fake_new(NULL);
    struct seen *s = seen_new();
    halo_ha_state st;
    halo *h = NULL;
    /* Exactly the 0.1 struct: reading past it is caught by AddressSanitizer. */
    size_t size = offsetof(halo_callbacks, link_state);
    halo_callbacks *old = malloc(size);
    ASSERT(old);
    memcpy(old, &reconnect_callbacks, size);
    fake_start(f);
    ASSERT_EQ(halo_open_0_1(f->path, old, s, &h), 0);
    free(old);
    ASSERT_EQ(halo_register(h, "comp-a", NULL), 0);

    /* It reconnects all the same, without telling (no link_state in its struct). */
    fake_die(f);
    fake_respawn(f);
    fake_start(f);
    long long end = now_msec() + 5000;
    int r;
    while ((r = halo_ha_state_get(h, NULL, "csi-1", &st)) == -HALO_ETRYAGAIN) {
        ASSERT(now_msec() < end);
        run_loop(h, s, NULL, 5);
    }
    ASSERT_EQ(r, -HALO_EPROTO); /* the fake answers ha_state 0: it did get there */
    ASSERT(fake_log(f, 1)->register_->resume);
    ASSERT_EQ(s->lost + s->restored, 0);
    halo_close(h);
    fake_free(f);
    free(s);
}

/* A restarted halod that no longer knows the check "gone" nor the group "csi-gone", once f->data is set. */
static bool forgetful_hook(struct fake *f, const LinkMsg *req, Halo__Link__Reply *reply) {
    if (f->data && req->body_case == HALO__LINK__MSG__BODY_HC_START && streq(req->hc_start->key, "gone")) {
        reply->error = -HALO_EUNKNOWN;
        return true;
    }
    if (f->data && req->body_case == HALO__LINK__MSG__BODY_PG_TRACK && streq(req->pg_track->csi, "csi-gone")) {
        reply->error = -HALO_EUNKNOWN;
        return true;
    }
    return pg_hook(f, req, reply);
}

/* Records P for members of any group, E and the error for a group that can no longer be tracked. */
static void on_pg_any(halo *h, const char *csi_name, const halo_pg_member *members, size_t n_members, int error,
                      void *userdata) {
    struct seen *s = userdata;
    pthread_mutex_lock(&s->lock);
    if (error < 0) {
        ASSERT_STREQ(csi_name, "csi-gone");
        ASSERT_EQ(n_members, 0);
        s->link_error = error;
        seen_append(s, 'E');
    } else {
        ASSERT_EQ(n_members, 2);
        seen_append(s, 'P');
    }
    pthread_mutex_unlock(&s->lock);
}

TEST(what_the_new_halod_refuses_is_dropped_and_told) {
    static int forgetful = 1;
    const halo_callbacks cb = {
        .csi_set = on_csi_set, .terminate = on_terminate, .pg_track = on_pg_any, .link_state = on_link_state};
    struct fake *f = fake_new(forgetful_hook);
    struct seen *s = seen_new();
    fake_start(f);
    halo *h = open_registered(f, &cb, s);

    ASSERT_EQ(halo_healthcheck_start(h, NULL, "gone", HALO_HC_COMPONENT_INVOKED, HALO_RECOVERY_NONE), 0);
    ASSERT_EQ(halo_healthcheck_start(h, NULL, "kept", HALO_HC_COMPONENT_INVOKED, HALO_RECOVERY_NONE), 0);
    ASSERT_EQ(halo_pg_track(h, "csi-gone", HALO_TRACK_CHANGES_ONLY), 0);
    ASSERT_EQ(halo_pg_track(h, "csi-1", HALO_TRACK_CHANGES), 0);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 2);

    f->data = &forgetful;
    fake_die(f);
    fake_respawn(f);
    fake_start(f);
    run_loop(h, s, restored, 5000);
    ASSERT_EQ(halo_dispatch(h, HALO_DISPATCH_ALL), 0);
    /* Restored, the members of csi-1 again, then the news that csi-gone is no more. */
    ASSERT_STREQ(s->order, "PPLRPE");
    ASSERT_EQ(s->link_error, -HALO_EUNKNOWN);
    ASSERT_EQ(fake_count(f), 6); /* Hello, Register, both checks, both tracks */

    /* The next restart asks only for what is left. */
    fake_die(f);
    fake_respawn(f);
    fake_start(f);
    s->restored = 0;
    run_loop(h, s, restored, 5000);
    ASSERT_EQ(fake_count(f), 4);
    ASSERT_EQ(fake_log(f, 1)->body_case, HALO__LINK__MSG__BODY_REGISTER);
    ASSERT_STREQ(fake_log(f, 2)->hc_start->key, "kept");
    ASSERT_STREQ(fake_log(f, 3)->pg_track->csi, "csi-1");
    ASSERT_EQ(fake_log(f, 3)->pg_track->flags, HALO_TRACK_CHANGES);
    halo_close(h);
    fake_free(f);
    free(s);
}
