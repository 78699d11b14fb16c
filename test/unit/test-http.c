/* SPDX-License-Identifier: MIT */
/* Tests of the HTTP/JSON bridge: a real client (libcurl, raw sockets) in a thread, the server on the test's loop. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "http.h"
#include "macro.h"
#include "tests.h"

/* ---- fixture: a server on its own loop, handlers that record what they saw ---- */

struct fixture {
    uv_loop_t loop;
    uv_async_t async;
    struct http_server *srv;
    const char *host; /* in URLs: "127.0.0.1" or "[::1]" */
    uint16_t port;
    bool client_done;

    /* What the handlers do. */
    int status_ret, events_ret, entrypoint_ret;
    const char *events_reply, *events_msg;
    bool free_in_status;

    /* What the handlers saw. */
    unsigned n_status, n_events;
    char *body;
    size_t len;
};

#define STATUS_JSON "{\"node\":\"n1\",\"state\":\"ONLINE\"}"

static int on_status(void *ud, char **ret_json) {
    struct fixture *f = ud;
    f->n_status++;
    if (f->free_in_status) {
        f->srv = http_server_free(f->srv);
        return -EAGAIN;
    }
    if (f->status_ret < 0)
        return f->status_ret;
    *ret_json = strdup(STATUS_JSON);
    return *ret_json ? 0 : -ENOMEM;
}

static int on_metrics(void *ud, char **ret_text) {
    struct http_metrics_buf m = {0};
    char l[128];
    ASSERT_OK(http_metrics_labels(l, sizeof(l), "node", "n\"1\\\n", NULL));
    ASSERT_OK(http_metrics_add(&m, "halo_nodes_up", "Nodes up.\nSecond \\ line", "gauge", l, 1));
    ASSERT_OK(http_metrics_add(&m, "halo_events_total", "Events.", "counter", NULL, 7));
    return http_metrics_finish(&m, ret_text);
}

static int on_events(void *ud, const char *body, size_t len, char **ret_reply_json, const char **ret_error_msg) {
    struct fixture *f = ud;
    f->n_events++;
    free(f->body);
    f->body = malloc(len + 1);
    ASSERT(f->body);
    memcpy(f->body, body, len + 1); /* body[len] must be '\0' */
    ASSERT_EQ(body[len], '\0');
    f->len = len;
    if (f->events_ret < 0) {
        *ret_error_msg = f->events_msg;
        return f->events_ret;
    }
    if (f->events_reply)
        *ret_reply_json = strdup(f->events_reply);
    return 0;
}

static int on_entrypoint(void *ud, char **ret_json) {
    struct fixture *f = ud;
    if (f->entrypoint_ret < 0)
        return f->entrypoint_ret;
    *ret_json = strdup("{\"leader\":\"n1\"}");
    return 0;
}

static const struct http_handlers handlers = {
    .status = on_status,
    .metrics = on_metrics,
    .events = on_events,
    .entrypoint = on_entrypoint,
};

static void on_async(uv_async_t *a) {
    struct fixture *f = a->data;
    f->client_done = true;
}

static void fixture_init(struct fixture *f) {
    *f = (struct fixture){.host = "127.0.0.1"};
    ASSERT_OK(uv_loop_init(&f->loop));
    ASSERT_OK(uv_async_init(&f->loop, &f->async, on_async));
    f->async.data = f;
    ASSERT_EQ(curl_global_init(CURL_GLOBAL_DEFAULT), CURLE_OK);
}

static void fixture_start(struct fixture *f, const struct http_handlers *h, const struct http_limits *l) {
    ASSERT_OK(http_server_new_with_limits(&f->loop, "127.0.0.1", 0, h, f, l, &f->srv));
    f->port = http_server_port(f->srv);
    ASSERT(f->port != 0);
}

static void fixture_done(struct fixture *f) {
    f->srv = http_server_free(f->srv);
    uv_close((uv_handle_t *)&f->async, NULL);
    ASSERT_OK(uv_run(&f->loop, UV_RUN_DEFAULT));
    ASSERT_EQ(uv_loop_close(&f->loop), 0); /* every handle of the server was closed */
    free(f->body);
    curl_global_cleanup();
}

/* ---- the client: runs in a thread while the test's thread runs the loop ---- */

typedef void (*client_fn)(struct fixture *f, void *arg);

struct client {
    struct fixture *f;
    client_fn fn;
    void *arg;
};

static void *client_main(void *p) {
    struct client *c = p;
    c->fn(c->f, c->arg);
    uv_async_send(&c->f->async);
    return NULL;
}

static void in_client(struct fixture *f, client_fn fn, void *arg) {
    struct client c = {f, fn, arg};
    pthread_t t;
    f->client_done = false;
    ASSERT_EQ(pthread_create(&t, NULL, client_main, &c), 0);
    while (!f->client_done)
        uv_run(&f->loop, UV_RUN_ONCE);
    ASSERT_EQ(pthread_join(t, NULL), 0);
}

struct buf {
    char *p;
    size_t len;
};

static void buf_add(struct buf *b, const char *p, size_t n) {
    b->p = realloc(b->p, b->len + n + 1);
    ASSERT(b->p);
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
}

struct call {
    /* in */
    const char *method; /* NULL: GET, or POST when body is set */
    const char *path;
    const char *ctype; /* NULL: no Content-Type at all */
    const char *body;
    size_t len;
    bool chunked;
    long timeout_ms; /* 0: 10 s */
    /* out */
    CURLcode rc;
    long code;
    struct buf resp, hdrs;
    size_t sent; /* chunked: bytes given to curl */
};

static size_t on_curl_write(char *p, size_t size, size_t n, void *ud) {
    buf_add(ud, p, size * n);
    return size * n;
}

static size_t on_curl_read(char *p, size_t size, size_t n, void *ud) {
    struct call *c = ud;
    size_t k = MIN(size * n, c->len - c->sent);
    memcpy(p, c->body + c->sent, k);
    c->sent += k;
    return k;
}

static void call_do(struct fixture *f, struct call *c) {
    CURL *e = curl_easy_init();
    ASSERT(e);
    char url[256];
    snprintf(url, sizeof(url), "http://%s:%u%s", f->host, f->port, c->path);
    struct curl_slist *h = NULL;
    char ct[128];
    snprintf(ct, sizeof(ct), "Content-Type:%s%s", c->ctype ? " " : "", c->ctype ? c->ctype : "");
    h = curl_slist_append(h, ct);
    if (c->chunked)
        h = curl_slist_append(h, "Transfer-Encoding: chunked");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, c->timeout_ms ? c->timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &c->resp);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &c->hdrs);
    if (c->body && c->chunked) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_curl_read);
        curl_easy_setopt(e, CURLOPT_READDATA, c);
    } else if (c->body) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->len);
    }
    if (c->method && streq(c->method, "HEAD"))
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (c->method)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, c->method);
    c->rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &c->code);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
}

static void call_fn(struct fixture *f, void *arg) {
    call_do(f, arg);
}

static void call_done(struct call *c) {
    free(c->resp.p);
    free(c->hdrs.p);
    *c = (struct call){0};
}

/* One request; the answer must have come (any status). */
static void request(struct fixture *f, struct call *c) {
    in_client(f, call_fn, c);
    if (c->rc != CURLE_OK)
        CHECK_FAIL("%s %s: %s", c->method ? c->method : "GET", c->path, curl_easy_strerror(c->rc));
}

static void get(struct fixture *f, struct call *c, const char *path) {
    *c = (struct call){.path = path};
    request(f, c);
}

static void post(struct fixture *f, struct call *c, const char *ctype, const char *body, size_t len) {
    *c = (struct call){.path = "/v1/events", .ctype = ctype, .body = body, .len = len};
    request(f, c);
}

/* The value of response header name ("" when absent), from the last header block. */
static const char *header(struct call *c, const char *name, char *out, size_t size) {
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *l = c->hdrs.p; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : l + strlen(l)) {
        if (strncasecmp(l, name, n) != 0 || l[n] != ':')
            continue;
        const char *v = l + n + 1 + strspn(l + n + 1, " ");
        size_t k = strcspn(v, "\r\n");
        snprintf(out, size, "%.*s", (int)MIN(k, size - 1), v);
    }
    return out;
}

/* The answer is the error object {"error": code, "message": "..."}. */
static void assert_error(struct call *c, long status, const char *code) {
    ASSERT_EQ(c->code, status);
    char v[128];
    ASSERT_STREQ(header(c, "Content-Type", v, sizeof(v)), "application/json");
    json_error_t err;
    json_t *j = json_loads(c->resp.p ? c->resp.p : "", 0, &err);
    if (!j)
        CHECK_FAIL("error body is not JSON: %s (%s)", c->resp.p, err.text);
    ASSERT(json_is_object(j));
    ASSERT_EQ(json_object_size(j), 2);
    ASSERT_STREQ(json_string_value(json_object_get(j, "error")), code);
    const char *msg = json_string_value(json_object_get(j, "message"));
    ASSERT(msg && *msg);
    json_decref(j);
}

/* ---- raw sockets ---- */

/* A connection from source address from (NULL: any). */
static int raw_connect_from(struct fixture *f, const char *from) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    if (from) {
        struct sockaddr_in src = {.sin_family = AF_INET};
        ASSERT_EQ(inet_pton(AF_INET, from, &src.sin_addr), 1);
        ASSERT_OK(bind(fd, (struct sockaddr *)&src, sizeof(src)));
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_OK(connect(fd, (struct sockaddr *)&a, sizeof(a)));
    return fd;
}

static int raw_connect(struct fixture *f) {
    return raw_connect_from(f, NULL);
}

static void raw_send(int fd, const void *p, size_t n) {
    /* The server may have closed already: errors are fine, SIGPIPE is not. */
    (void)send(fd, p, n, MSG_NOSIGNAL);
}

static void raw_sends(int fd, const char *s) {
    raw_send(fd, s, strlen(s));
}

/* Reads what the server sends until it closes (returns 1) or timeout_ms passes (returns 0). */
static int raw_read_until_close(int fd, struct buf *out, int timeout_ms) {
    uint64_t end = uv_hrtime() / 1000000 + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = uv_hrtime() / 1000000;
        if (now >= end)
            return 0;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        char b[4096];
        ssize_t k = recv(fd, b, sizeof(b), 0);
        if (k <= 0)
            return 1;
        if (out)
            buf_add(out, b, (size_t)k);
    }
}

/* ---- Prometheus exposition: the rules the format sets that a scraper relies on ---- */

static const char *skip_name(const char *p, bool colons) {
    const char *s = p;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (colons && *p == ':') ||
           (p > s && *p >= '0' && *p <= '9'))
        p++;
    ASSERT(p > s);
    return p;
}

/* Checks every line of text; returns the number of samples. */
static int check_exposition(const char *text) {
    char families[64][128], typed[64][128];
    int n_families = 0, n_typed = 0, samples = 0;
    ASSERT(*text == '\0' || text[strlen(text) - 1] == '\n');
    for (const char *l = text; *l; l = strchr(l, '\n') + 1) {
        char line[1024];
        size_t n = strcspn(l, "\n");
        ASSERT(n < sizeof(line));
        snprintf(line, sizeof(line), "%.*s", (int)n, l);
        if (strncmp(line, "# HELP ", 7) == 0 || strncmp(line, "# TYPE ", 7) == 0) {
            const char *name = line + 7, *end = skip_name(name, true);
            ASSERT(*end == ' ' || *end == '\0');
            for (int i = 0; i < n_families; i++) /* before the family's samples */
                ASSERT(strncmp(families[i], name, (size_t)(end - name)) != 0 || families[i][end - name] != '\0');
            if (line[2] == 'T') {
                for (int i = 0; i < n_typed; i++)
                    ASSERT(strncmp(typed[i], name, (size_t)(end - name)) != 0 || typed[i][end - name] != '\0');
                ASSERT(n_typed < 64);
                snprintf(typed[n_typed++], 128, "%.*s", (int)(end - name), name);
                ASSERT(streq(end, " counter") || streq(end, " gauge") || streq(end, " untyped"));
            } else
                for (const char *c = end; *c; c++) /* escapes: only \\ and \n */
                    if (*c == '\\') {
                        ASSERT(c[1] == '\\' || c[1] == 'n');
                        c++;
                    }
            continue;
        }
        ASSERT(line[0] != '#' || line[1] == ' ');
        if (line[0] == '#')
            continue;
        const char *end = skip_name(line, true);
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(end - line), line);
        /* One family's samples stay together. */
        if (n_families == 0 || !streq(families[n_families - 1], name)) {
            for (int i = 0; i < n_families; i++)
                ASSERT(!streq(families[i], name));
            ASSERT(n_families < 64);
            snprintf(families[n_families++], 128, "%s", name);
        }
        const char *p = end;
        if (*p == '{') {
            p++;
            while (*p != '}') {
                p = skip_name(p, false);
                ASSERT(*p++ == '=');
                ASSERT(*p++ == '"');
                for (; *p != '"'; p++) {
                    ASSERT(*p != '\0');
                    if (*p == '\\') {
                        p++;
                        ASSERT(*p == '\\' || *p == '"' || *p == 'n');
                    }
                }
                p++;
                ASSERT(*p == ',' || *p == '}');
                if (*p == ',')
                    p++;
            }
            p++;
        }
        ASSERT(*p++ == ' ');
        if (!streq(p, "NaN") && !streq(p, "+Inf") && !streq(p, "-Inf")) {
            char *e;
            (void)strtod(p, &e);
            ASSERT(e > p && *e == '\0');
        }
        samples++;
    }
    return samples;
}

/* ---- the tests ---- */

TEST(metrics_histogram) {
    struct http_metrics_buf m = {0};
    char *text = NULL;
    const double bounds[] = {0.5, 1, 2.5};
    const uint64_t counts[] = {1, 1, 3};

    ASSERT_OK(http_metrics_add(&m, "x_total", "Before.", "counter", NULL, 2));
    ASSERT_OK(http_metrics_add_histogram(&m, "x_seconds", "How long.", "sg=\"a\"", bounds, counts, 3, 4.25, 4));
    ASSERT_OK(http_metrics_add_histogram(&m, "x_seconds", NULL, NULL, NULL, NULL, 0, 0, 0));
    ASSERT_OK(http_metrics_finish(&m, &text));
    ASSERT_STREQ(text, "# HELP x_total Before.\n"
                       "# TYPE x_total counter\n"
                       "x_total 2\n"
                       "# HELP x_seconds How long.\n"
                       "# TYPE x_seconds histogram\n"
                       "x_seconds_bucket{sg=\"a\",le=\"0.5\"} 1\n"
                       "x_seconds_bucket{sg=\"a\",le=\"1\"} 1\n"
                       "x_seconds_bucket{sg=\"a\",le=\"2.5\"} 3\n"
                       "x_seconds_bucket{sg=\"a\",le=\"+Inf\"} 4\n"
                       "x_seconds_sum{sg=\"a\"} 4.25\n"
                       "x_seconds_count{sg=\"a\"} 4\n"
                       "x_seconds_bucket{le=\"+Inf\"} 0\n"
                       "x_seconds_sum 0\n"
                       "x_seconds_count 0\n");
    free(text);

    /* Bounds that do not ascend, counts that are not cumulative or exceed the count: refused. */
    const double down[] = {1, 0.5};
    const uint64_t c2[] = {1, 1}, shrinking[] = {2, 1};
    ASSERT_EQ(http_metrics_add_histogram(&m, "y", "h", NULL, down, c2, 2, 0, 2), -EINVAL);
    ASSERT_EQ(http_metrics_add_histogram(&m, "y", "h", NULL, bounds, shrinking, 2, 0, 2), -EINVAL);
    ASSERT_EQ(http_metrics_add_histogram(&m, "y", "h", NULL, bounds, c2, 2, 0, 0), -EINVAL);
    ASSERT_EQ(http_metrics_add_histogram(&m, "y", "h", "le=\"x", bounds, c2, 2, 0, 2), -EINVAL);
    /* A name already used by another type. */
    ASSERT_OK(http_metrics_add(&m, "z", "h", "gauge", NULL, 1));
    ASSERT_EQ(http_metrics_add_histogram(&m, "z", "h", NULL, bounds, c2, 2, 0, 2), -EINVAL);
    text = NULL;
    ASSERT_EQ(http_metrics_finish(&m, &text), -EINVAL);
    ASSERT(text == NULL);
}

TEST(health_answers_with_the_version) {
    struct fixture f;
    struct call c;
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);
    get(&f, &c, "/v1/health");
    ASSERT_EQ(c.code, 200);
    ASSERT_STREQ(c.resp.p, "{\"status\":\"ok\",\"version\":\"" HALO_VERSION_STRING "\"}");
    call_done(&c);
    ASSERT_EQ(f.n_status, 0);
    fixture_done(&f);
}

TEST(status_answers_json) {
    struct fixture f;
    struct call c;
    char v[128];
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    get(&f, &c, "/v1/status");
    ASSERT_EQ(c.code, 200);
    ASSERT_STREQ(header(&c, "Content-Type", v, sizeof(v)), "application/json");
    ASSERT_STREQ(c.resp.p, STATUS_JSON);
    call_done(&c);

    get(&f, &c, "/");
    ASSERT_EQ(c.code, 200);
    ASSERT_STREQ(c.resp.p, STATUS_JSON);
    call_done(&c);

    c = (struct call){.method = "HEAD", .path = "/v1/status"};
    request(&f, &c);
    ASSERT_EQ(c.code, 200);
    ASSERT(c.resp.len == 0);
    call_done(&c);

    get(&f, &c, "/v1/entrypoint");
    ASSERT_EQ(c.code, 200);
    ASSERT_STREQ(c.resp.p, "{\"leader\":\"n1\"}");
    call_done(&c);

    ASSERT_EQ(f.n_status, 3);
    fixture_done(&f);
}

TEST(metrics_exposition) {
    struct fixture f;
    struct call c;
    char v[128];
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    get(&f, &c, "/nowhere");
    ASSERT_EQ(c.code, 404);
    call_done(&c);
    get(&f, &c, "/v1/status");
    call_done(&c);

    get(&f, &c, "/metrics");
    ASSERT_EQ(c.code, 200);
    ASSERT(strncmp(header(&c, "Content-Type", v, sizeof(v)), "text/plain; version=0.0.4", 25) == 0);
    ASSERT(strstr(c.resp.p, "# HELP halo_nodes_up Nodes up.\\nSecond \\\\ line\n"
                            "# TYPE halo_nodes_up gauge\n"
                            "halo_nodes_up{node=\"n\\\"1\\\\\\n\"} 1\n"
                            "# HELP halo_events_total Events.\n"
                            "# TYPE halo_events_total counter\n"
                            "halo_events_total 7\n"));
    ASSERT(strstr(c.resp.p, "# TYPE halo_http_requests_total counter\n"));
    ASSERT(strstr(c.resp.p, "halo_http_requests_total{code=\"200\"} 1\n"));
    ASSERT(strstr(c.resp.p, "halo_http_requests_total{code=\"404\"} 1\n"));
    ASSERT(strstr(c.resp.p, "halo_http_connections 1\n"));
    ASSERT(check_exposition(c.resp.p) >= 5);
    call_done(&c);

    /* The scrape itself counts. */
    get(&f, &c, "/metrics");
    ASSERT(strstr(c.resp.p, "halo_http_requests_total{code=\"200\"} 2\n"));
    ASSERT(check_exposition(c.resp.p) >= 5);
    call_done(&c);

    fixture_done(&f);

    /* Without a metrics handler, the server's own counters still come. */
    fixture_init(&f);
    fixture_start(&f, &(struct http_handlers){.status = on_status}, NULL);
    get(&f, &c, "/metrics");
    ASSERT_EQ(c.code, 200);
    ASSERT(strncmp(c.resp.p, "# HELP halo_http_", 17) == 0);
    ASSERT(check_exposition(c.resp.p) >= 1);
    call_done(&c);
    fixture_done(&f);
}

TEST(metrics_builder) {
    struct http_metrics_buf m = {0};
    char *text = NULL, l[64];

    /* Interleaved calls still give one block per name, in first-seen order. */
    ASSERT_EQ(http_metrics_labels(l, sizeof(l), "node", "a", "role", "ACTIVE", NULL), 22);
    ASSERT_STREQ(l, "node=\"a\",role=\"ACTIVE\"");
    ASSERT_OK(http_metrics_add(&m, "x_up", "Up.", "gauge", l, 1));
    ASSERT_OK(http_metrics_add(&m, "x_total", "Count\\ed.\nTwice.", "counter", NULL, 3));
    ASSERT_OK(http_metrics_add(&m, "x_up", "ignored the second time", "gauge", "node=\"b\"", 0.1));
    ASSERT_OK(http_metrics_add(&m, "x_ratio", NULL, "untyped", "", NAN));
    ASSERT_OK(http_metrics_add(&m, "x_ratio", NULL, "untyped", NULL, INFINITY));
    ASSERT_OK(http_metrics_add(&m, "x_ratio", NULL, "untyped", NULL, -INFINITY));
    ASSERT_OK(http_metrics_add(&m, "x_ratio", NULL, "untyped", NULL, 1e21));
    ASSERT_OK(http_metrics_finish(&m, &text));
    ASSERT_STREQ(text, "# HELP x_up Up.\n"
                       "# TYPE x_up gauge\n"
                       "x_up{node=\"a\",role=\"ACTIVE\"} 1\n"
                       "x_up{node=\"b\"} 0.1\n"
                       "# HELP x_total Count\\\\ed.\\nTwice.\n"
                       "# TYPE x_total counter\n"
                       "x_total 3\n"
                       "# TYPE x_ratio untyped\n"
                       "x_ratio NaN\n"
                       "x_ratio +Inf\n"
                       "x_ratio -Inf\n"
                       "x_ratio 1e+21\n");
    ASSERT_EQ(check_exposition(text), 7);
    free(text);

    /* Nothing added: empty text. */
    ASSERT_OK(http_metrics_finish(&m, &text));
    ASSERT_STREQ(text, "");
    free(text);

    /* Label values are escaped; bad label names refused; a short buffer is an error, not a cut. */
    ASSERT_OK(http_metrics_labels(l, sizeof(l), "v", "a\"b\\c\nd", NULL));
    ASSERT_STREQ(l, "v=\"a\\\"b\\\\c\\nd\"");
    ASSERT_EQ(http_metrics_labels(l, sizeof(l), "__name__", "x", NULL), -EINVAL);
    ASSERT_EQ(http_metrics_labels(l, sizeof(l), "1x", "x", NULL), -EINVAL);
    ASSERT_EQ(http_metrics_labels(l, sizeof(l), "a-b", "x", NULL), -EINVAL);
    ASSERT_EQ(http_metrics_labels(l, 8, "node", "abcdef", NULL), -ENOBUFS);
    ASSERT_STREQ(l, "");

    /* Anything that would make the exposition invalid is refused, and finish reports it. */
    ASSERT_EQ(http_metrics_add(&m, "1x", "h", "gauge", NULL, 1), -EINVAL);
    ASSERT_EQ(http_metrics_add(&m, "a-b", "h", "gauge", NULL, 1), -EINVAL);
    ASSERT_EQ(http_metrics_add(&m, "ok", "h", "histogram", NULL, 1), -EINVAL);
    ASSERT_EQ(http_metrics_add(&m, "ok", "h", NULL, NULL, 1), -EINVAL);
    ASSERT_OK(http_metrics_add(&m, "ok", "h", "gauge", NULL, 1));
    ASSERT_EQ(http_metrics_add(&m, "ok", "h", "counter", NULL, 1), -EINVAL);
    const char *bad_labels[] = {"node=\"x",    "node=x", "node=\"a\"b\"", "node=\"\\q\"",
                                "node=\"a\",", "=\"a\"", "node=\"a\nb\"", "no de=\"a\""};
    for (size_t i = 0; i < ELEMENTSOF(bad_labels); i++)
        if (http_metrics_add(&m, "ok", "h", "gauge", bad_labels[i], 1) != -EINVAL)
            CHECK_FAIL("labels '%s' were accepted", bad_labels[i]);
    text = NULL;
    ASSERT_EQ(http_metrics_finish(&m, &text), -EINVAL);
    ASSERT(text == NULL);
    ASSERT(m.n_families == 0);

    /* Abandoned builders free with done. */
    ASSERT_OK(http_metrics_add(&m, "ok", "h", "gauge", NULL, 1));
    http_metrics_done(&m);
    http_metrics_done(NULL);
}

TEST(events_accepted) {
    struct fixture f;
    struct call c;
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    static const char body[] = "{\n  \"kind\": \"process\", \"id\": \"0x7200000000000001:0x15\",\n"
                               "  \"state\": \"FAILED\", \"note\": \"caf\\u00e9 \xc3\xa9\" }\n";
    post(&f, &c, "application/json", body, strlen(body));
    ASSERT_EQ(c.code, 202);
    ASSERT_STREQ(c.resp.p, "{\"accepted\":true}");
    ASSERT_EQ(f.n_events, 1);
    ASSERT_EQ(f.len, strlen(body));
    ASSERT(memcmp(f.body, body, f.len) == 0);
    call_done(&c);

    /* The handler's reply, a top-level array, and a media type with parameters. */
    f.events_reply = "{\"seq\":42}";
    post(&f, &c, "Application/JSON; charset=utf-8", "[1,2,3]", 7);
    ASSERT_EQ(c.code, 202);
    ASSERT_STREQ(c.resp.p, "{\"seq\":42}");
    ASSERT_EQ(f.n_events, 2);
    ASSERT_STREQ(f.body, "[1,2,3]");
    call_done(&c);

    /* Exactly the limit is still accepted. */
    char *big = malloc(HTTP_BODY_MAX + 1);
    ASSERT(big);
    memset(big, 'a', HTTP_BODY_MAX);
    big[0] = '[', big[1] = '"', big[HTTP_BODY_MAX - 2] = '"', big[HTTP_BODY_MAX - 1] = ']';
    post(&f, &c, "application/json", big, HTTP_BODY_MAX);
    ASSERT_EQ(c.code, 202);
    ASSERT_EQ(f.len, HTTP_BODY_MAX);
    ASSERT(memcmp(f.body, big, HTTP_BODY_MAX) == 0);
    call_done(&c);
    free(big);

    fixture_done(&f);
}

TEST(events_bad_json) {
    struct fixture f;
    struct call c;
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    const char *bad[] = {"{\"a\":",     "{\"a\":1,\"a\":2}", "42",  "\"str\"", "",
                         "{\"a\":1} x", "{\"a\":\"\xff\"}",  "[1,]"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
        post(&f, &c, "application/json", bad[i], strlen(bad[i]));
        if (c.code != 400)
            CHECK_FAIL("body '%s': %ld", bad[i], c.code);
        assert_error(&c, 400, "bad_json");
        call_done(&c);
    }
    ASSERT_EQ(f.n_events, 0);
    fixture_done(&f);
}

TEST(events_wrong_content_type) {
    struct fixture f;
    struct call c;
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    post(&f, &c, "text/plain", "{}", 2);
    assert_error(&c, 415, "unsupported_media_type");
    call_done(&c);
    post(&f, &c, "application/jsonp", "{}", 2);
    assert_error(&c, 415, "unsupported_media_type");
    call_done(&c);
    post(&f, &c, NULL, "{}", 2);
    assert_error(&c, 415, "unsupported_media_type");
    call_done(&c);

    ASSERT_EQ(f.n_events, 0);
    fixture_done(&f);
}

static void raw_huge_declared(struct fixture *f, void *arg) {
    int fd = raw_connect(f);
    static const char req[] = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                              "Content-Length: 100000000\r\n\r\n";
    raw_send(fd, req, sizeof(req) - 1);
    ASSERT_EQ(raw_read_until_close(fd, arg, 5000), 1);
    close(fd);
}

TEST(events_too_large) {
    struct fixture f;
    struct call c;
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    size_t n = 70 * 1024;
    char *big = malloc(n);
    ASSERT(big);
    memset(big, ' ', n);
    big[0] = '[', big[n - 1] = ']';

    /* Declared length. */
    post(&f, &c, "application/json", big, n);
    assert_error(&c, 413, "too_large");
    call_done(&c);

    /* Chunked: no length known in advance. */
    c = (struct call){.path = "/v1/events", .ctype = "application/json", .body = big, .len = n, .chunked = true};
    request(&f, &c);
    assert_error(&c, 413, "too_large");
    ASSERT_EQ(c.sent, n);
    call_done(&c);

    /* A declared 100 MB is refused before any of it is sent, and the connection closed. */
    struct buf out = {0};
    in_client(&f, raw_huge_declared, &out);
    ASSERT(out.p && strncmp(out.p, "HTTP/1.1 413 ", 13) == 0);
    free(out.p);

    ASSERT_EQ(f.n_events, 0);

    /* The server still serves. */
    post(&f, &c, "application/json", "{}", 2);
    ASSERT_EQ(c.code, 202);
    call_done(&c);
    free(big);
    fixture_done(&f);
}

TEST(wrong_method_and_path) {
    struct fixture f;
    struct call c;
    char v[64];
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    get(&f, &c, "/v1/events");
    assert_error(&c, 405, "method_not_allowed");
    ASSERT_STREQ(header(&c, "Allow", v, sizeof(v)), "POST");
    call_done(&c);

    c = (struct call){.path = "/v1/status", .ctype = "application/json", .body = "{}", .len = 2};
    request(&f, &c);
    assert_error(&c, 405, "method_not_allowed");
    ASSERT_STREQ(header(&c, "Allow", v, sizeof(v)), "GET, HEAD");
    call_done(&c);

    c = (struct call){.method = "DELETE", .path = "/metrics"};
    request(&f, &c);
    assert_error(&c, 405, "method_not_allowed");
    call_done(&c);

    const char *unknown[] = {"/v2/status", "/v1/status/", "/v1", "/metricsx"};
    for (size_t i = 0; i < ELEMENTSOF(unknown); i++) {
        get(&f, &c, unknown[i]);
        assert_error(&c, 404, "not_found");
        call_done(&c);
    }
    ASSERT_EQ(f.n_status, 0);
    ASSERT_EQ(f.n_events, 0);
    fixture_done(&f);
}

TEST(handler_errors) {
    struct fixture f;
    struct call c;
    char v[64];
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    f.entrypoint_ret = -EAGAIN;
    get(&f, &c, "/v1/entrypoint");
    assert_error(&c, 503, "unavailable");
    ASSERT_STREQ(header(&c, "Retry-After", v, sizeof(v)), "1");
    call_done(&c);

    f.status_ret = -EIO;
    get(&f, &c, "/v1/status");
    assert_error(&c, 500, "internal");
    ASSERT_STREQ(header(&c, "Retry-After", v, sizeof(v)), "");
    call_done(&c);

    f.events_ret = -EAGAIN;
    post(&f, &c, "application/json", "{}", 2);
    assert_error(&c, 503, "unavailable");
    ASSERT_STREQ(header(&c, "Retry-After", v, sizeof(v)), "1");
    call_done(&c);

    f.events_ret = -ENOENT;
    post(&f, &c, "application/json", "{\"id\":\"nope\"}", 13);
    assert_error(&c, 404, "unknown_object");
    call_done(&c);

    f.events_ret = -EINVAL;
    f.events_msg = "state: \"BOGUS\" is not a state";
    post(&f, &c, "application/json", "{\"state\":\"BOGUS\"}", 17);
    assert_error(&c, 400, "invalid");
    ASSERT(strstr(c.resp.p, "\"message\":\"state: \\\"BOGUS\\\" is not a state\""));
    call_done(&c);

    f.events_ret = -EPERM; /* contradicts what halo knows */
    f.events_msg = NULL;
    post(&f, &c, "application/json", "{}", 2);
    assert_error(&c, 409, "contradicts_halo");
    call_done(&c);

    f.events_ret = -EIO;
    post(&f, &c, "application/json", "{}", 2);
    assert_error(&c, 500, "internal");
    call_done(&c);
    ASSERT_EQ(f.n_events, 5);
    fixture_done(&f);

    /* Missing handlers: those paths do not exist on this node. */
    fixture_init(&f);
    fixture_start(&f, &(struct http_handlers){0}, NULL);
    const char *paths[] = {"/v1/status", "/", "/v1/entrypoint"};
    for (size_t i = 0; i < ELEMENTSOF(paths); i++) {
        get(&f, &c, paths[i]);
        assert_error(&c, 404, "not_found");
        call_done(&c);
    }
    post(&f, &c, "application/json", "{}", 2);
    assert_error(&c, 404, "not_found");
    call_done(&c);
    fixture_done(&f);
}

/* Garbage, a close mid-headers, a close mid-body; then a well-behaved request. */
static void raw_misbehave(struct fixture *f, void *arg) {
    struct call *c = arg;

    int fd = raw_connect(f);
    unsigned char junk[512];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 131 + 7);
    raw_send(fd, junk, sizeof(junk));
    raw_sends(fd, "\r\n\r\n");
    ASSERT_EQ(raw_read_until_close(fd, NULL, 5000), 1); /* the server hangs up on it */
    close(fd);

    fd = raw_connect(f);
    raw_sends(fd, "GET /v1/status HTTP/1.1\r\nHost: x\r\nContent-");
    close(fd);

    fd = raw_connect(f);
    static const char part[] = "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                               "Content-Length: 100\r\n\r\n{\"state\": \"FAILED\", \"id\": \"abc\", ";
    raw_send(fd, part, sizeof(part) - 1);
    usleep(50 * 1000);
    close(fd);

    /* One that stays open, half-way through its headers, while another client is served. */
    fd = raw_connect(f);
    raw_sends(fd, "GET /v1/status HTTP/1.1\r\nHo");
    call_do(f, c);
    close(fd);
}

TEST(misbehaving_clients_do_not_stop_service) {
    struct fixture f;
    struct call c = {.path = "/v1/status"};
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    in_client(&f, raw_misbehave, &c);
    ASSERT_EQ(c.rc, CURLE_OK);
    ASSERT_EQ(c.code, 200);
    ASSERT_STREQ(c.resp.p, STATUS_JSON);
    call_done(&c);
    ASSERT_EQ(f.n_events, 0); /* never with a partial body */
    ASSERT_EQ(f.n_status, 1);

    post(&f, &c, "application/json", "{}", 2);
    ASSERT_EQ(c.code, 202);
    call_done(&c);
    fixture_done(&f);
}

/* A request line or headers larger than a connection's memory; then a well-behaved request. */
static void raw_oversized(struct fixture *f, void *arg) {
    struct buf *out = arg;
    size_t n = 40 * 1024;
    char *big = malloc(n);
    ASSERT(big);
    memset(big, 'a', n);

    int fd = raw_connect(f);
    raw_sends(fd, "GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ");
    raw_send(fd, big, n);
    raw_sends(fd, "\r\n\r\n");
    ASSERT_EQ(raw_read_until_close(fd, &out[0], 5000), 1);
    close(fd);

    fd = raw_connect(f);
    raw_sends(fd, "GET /v1/status?");
    raw_send(fd, big, n);
    raw_sends(fd, " HTTP/1.1\r\nHost: x\r\n\r\n");
    ASSERT_EQ(raw_read_until_close(fd, &out[1], 5000), 1);
    close(fd);
    free(big);
}

TEST(oversized_headers_and_url) {
    struct fixture f;
    struct call c;
    struct buf out[2] = {0};
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);

    in_client(&f, raw_oversized, out);
    ASSERT(out[0].p && strncmp(out[0].p, "HTTP/1.1 431 ", 13) == 0);
    ASSERT(out[1].p && strncmp(out[1].p, "HTTP/1.1 414 ", 13) == 0);
    free(out[0].p);
    free(out[1].p);
    ASSERT_EQ(f.n_status, 0);

    get(&f, &c, "/v1/status");
    ASSERT_EQ(c.code, 200);
    call_done(&c);
    fixture_done(&f);
}

struct slow {
    struct call c;
    int closed;
    uint64_t elapsed_ms;
};

/* Trickles a header byte every 50 ms, never idle long, until the server cuts it off. */
static void raw_slowloris(struct fixture *f, void *arg) {
    struct slow *s = arg;
    int fd = raw_connect(f);
    uint64_t start = uv_hrtime() / 1000000;
    raw_sends(fd, "GET /v1/status HTTP/1.1\r\n");
    call_do(f, &s->c); /* served meanwhile */
    for (int i = 0; i < 100 && !s->closed; i++) {
        raw_sends(fd, "X");
        s->closed = raw_read_until_close(fd, NULL, 50);
    }
    s->elapsed_ms = uv_hrtime() / 1000000 - start;
    close(fd);
}

TEST(slowloris_is_cut_off) {
    struct fixture f;
    struct call c;
    struct slow s = {.c = {.path = "/v1/status"}};
    fixture_init(&f);
    fixture_start(&f, &handlers, &(struct http_limits){.request_timeout_ms = 400});

    in_client(&f, raw_slowloris, &s);
    ASSERT_EQ(s.c.code, 200);
    call_done(&s.c);
    ASSERT_EQ(s.closed, 1);
    ASSERT(s.elapsed_ms >= 350);
    ASSERT(s.elapsed_ms < 3000);

    get(&f, &c, "/metrics");
    ASSERT(strstr(c.resp.p, "halo_http_connections_cut_total 1\n"));
    call_done(&c);
    fixture_done(&f);
}

struct hold {
    struct call c;
    int n_raw;
    const char *first_from; /* the first connection's source address (NULL: 127.0.0.1) */
    int closed[8];          /* whether the server closed each, after the call */
};

/* Holds n_raw connections that started a request and never finish it while one more client tries. */
static void raw_hold(struct fixture *f, void *arg) {
    struct hold *h = arg;
    int fds[8];
    ASSERT(h->n_raw <= 8);
    for (int i = 0; i < h->n_raw; i++) {
        fds[i] = raw_connect_from(f, i == 0 ? h->first_from : NULL);
        raw_sends(fds[i], "GET");
    }
    call_do(f, &h->c);
    for (int i = 0; i < h->n_raw; i++) {
        h->closed[i] = raw_read_until_close(fds[i], NULL, 300);
        close(fds[i]);
    }
}

TEST(connection_limits_make_room_for_a_new_client) {
    struct fixture f;
    fixture_init(&f);
    fixture_start(&f, &handlers, &(struct http_limits){.connections_max = 2});
    /* Both slots held by clients that never finish a request: the one that waited longest makes room. */
    struct hold h = {.c = {.path = "/v1/status", .timeout_ms = 2000}, .n_raw = 2};
    in_client(&f, raw_hold, &h);
    ASSERT_EQ(h.c.rc, CURLE_OK);
    ASSERT_EQ(h.c.code, 200);
    ASSERT_EQ(h.closed[0], 1);
    ASSERT_EQ(h.closed[1], 0);
    call_done(&h.c);
    fixture_done(&f);
}

TEST(connection_limits_per_address_leave_the_others_alone) {
    struct fixture f;
    fixture_init(&f);
    fixture_start(&f, &handlers, &(struct http_limits){.connections_max = 4, .per_ip_max = 2});
    /* One client of 127.0.0.2, then more of 127.0.0.1 than it may hold: 127.0.0.1's make room among
     * themselves, and 127.0.0.2's stays. */
    struct hold h = {.c = {.path = "/v1/status", .timeout_ms = 2000}, .n_raw = 5, .first_from = "127.0.0.2"};
    in_client(&f, raw_hold, &h);
    ASSERT_EQ(h.c.rc, CURLE_OK);
    ASSERT_EQ(h.c.code, 200);
    ASSERT_EQ(h.closed[0], 0);
    ASSERT_EQ(h.closed[1] + h.closed[2] + h.closed[3] + h.closed[4], 3);
    ASSERT_EQ(h.closed[4], 0);
    call_done(&h.c);
    fixture_done(&f);
}

TEST(headers_not_in_within_their_timeout_are_cut_off) {
    struct fixture f;
    struct call c;
    struct slow s = {.c = {.path = "/v1/status"}};
    fixture_init(&f);
    fixture_start(&f, &handlers, &(struct http_limits){.header_timeout_ms = 300, .request_timeout_ms = 10000});
    in_client(&f, raw_slowloris, &s);
    ASSERT_EQ(s.c.code, 200);
    call_done(&s.c);
    ASSERT_EQ(s.closed, 1);
    ASSERT(s.elapsed_ms >= 250 && s.elapsed_ms < 3000);
    get(&f, &c, "/metrics");
    ASSERT(strstr(c.resp.p, "halo_http_connections_cut_total 1\n"));
    call_done(&c);
    fixture_done(&f);
}

TEST(port_zero_and_ipv6) {
    struct fixture f;
    struct call c;
    fixture_init(&f);
    ASSERT_OK(http_server_new(&f.loop, NULL, 0, &handlers, &f, &f.srv));
    f.port = http_server_port(f.srv);
    ASSERT(f.port != 0);
    get(&f, &c, "/v1/status");
    ASSERT_EQ(c.code, 200);
    call_done(&c);
    f.srv = http_server_free(f.srv);

    int r = http_server_new(&f.loop, "::1", 0, &handlers, &f, &f.srv);
    if (r == -EADDRNOTAVAIL || r == -EAFNOSUPPORT) {
        fprintf(stderr, "  (no IPv6 loopback here: that part skipped)\n");
    } else {
        ASSERT_OK(r);
        f.port = http_server_port(f.srv);
        f.host = "[::1]";
        get(&f, &c, "/v1/status");
        ASSERT_EQ(c.code, 200);
        call_done(&c);
    }
    fixture_done(&f);
}

TEST(bind_errors) {
    struct fixture f;
    struct http_server *s = NULL;
    fixture_init(&f);

    /* A port some other socket listens on. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    ASSERT_OK(bind(fd, (struct sockaddr *)&a, sizeof(a)));
    ASSERT_OK(listen(fd, 1));
    ASSERT_OK(getsockname(fd, (struct sockaddr *)&a, &len));
    ASSERT_EQ(http_server_new(&f.loop, "127.0.0.1", ntohs(a.sin_port), &handlers, &f, &s), -EADDRINUSE);
    ASSERT(s == NULL);
    close(fd);

    /* A port another server of ours holds; freed, the port can be taken again. */
    fixture_start(&f, &handlers, NULL);
    ASSERT_EQ(http_server_new(&f.loop, "127.0.0.1", f.port, &handlers, &f, &s), -EADDRINUSE);
    f.srv = http_server_free(f.srv);
    ASSERT_OK(uv_run(&f.loop, UV_RUN_NOWAIT));
    ASSERT_OK(http_server_new(&f.loop, "127.0.0.1", f.port, &handlers, &f, &f.srv));

    ASSERT_EQ(http_server_new(&f.loop, "localhost", 0, &handlers, &f, &s), -EINVAL);
    ASSERT_EQ(http_server_new(&f.loop, "127.0.0.1:80", 0, &handlers, &f, &s), -EINVAL);
    ASSERT_EQ(http_server_new(&f.loop, "192.0.2.1", 0, &handlers, &f, &s), -EADDRNOTAVAIL);
    ASSERT_EQ(http_server_new(NULL, NULL, 0, &handlers, &f, &s), -EINVAL);
    ASSERT_EQ(http_server_new(&f.loop, NULL, 0, &handlers, &f, NULL), -EINVAL);
    ASSERT(s == NULL);
    fixture_done(&f);
}

static void refused(struct fixture *f, void *arg) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *(int *)arg = connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ? -errno : 0;
    close(fd);
}

TEST(free_from_a_handler) {
    struct fixture f;
    struct call c = {.path = "/v1/status", .timeout_ms = 3000};
    fixture_init(&f);
    fixture_start(&f, &handlers, NULL);
    f.free_in_status = true;

    in_client(&f, call_fn, &c);
    ASSERT(f.srv == NULL);
    ASSERT_EQ(f.n_status, 1);
    /* The 503 may or may not have left before the connection went with the server. */
    ASSERT(c.rc != CURLE_OK || c.code == 503);
    call_done(&c);

    int r = 0;
    in_client(&f, refused, &r);
    ASSERT_EQ(r, -ECONNREFUSED);
    fixture_done(&f);
}
