/* SPDX-License-Identifier: MIT */
/* The HTTP/JSON bridge of halod: libmicrohttpd without threads, its epoll fd watched by the loop. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "http-assets.h"
#include "http-auth.h"
#include "http-conns.h"
#include "listener.h"
#include "log.h"
#include "macro.h"
#include "parse-util.h"

#define HTTP_CONNECTIONS_MAX 64
#define HTTP_PER_IP_MAX 32
#define HTTP_IDLE_TIMEOUT_SEC 10
#define HTTP_REQUEST_TIMEOUT_MS 30000
#define HTTP_HEADER_TIMEOUT_MS 5000
#define HTTP_CONNECTION_MEMORY (32 * 1024)
#define HTTP_LISTEN_BACKLOG 64

#define CT_JSON "application/json"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

/* ---- a growable string ---- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static int sbuf_add(struct sbuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = MAX(b->cap * 2, b->len + n + 1);
        cap = MAX(cap, (size_t)256);
        char *p = realloc(b->p, cap);
        if (!p)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static int sbuf_adds(struct sbuf *b, const char *s) {
    return sbuf_add(b, s, strlen(s));
}

/* ---- Prometheus text exposition ---- */

struct http_metrics_family {
    char *name;
    const char *type; /* one of the static names in metric_types */
    struct sbuf text; /* HELP and TYPE lines, then the samples */
};

static const char *const metric_types[] = {"counter", "gauge", "untyped", "histogram"};

static bool metric_name_valid(const char *s) {
    if (!s || !*s)
        return false;
    for (const char *c = s; *c; c++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || *c == ':';
        if (!alpha && !(c > s && *c >= '0' && *c <= '9'))
            return false;
    }
    return true;
}

/* Skips a label name at *p: [a-zA-Z_][a-zA-Z0-9_]*. */
static bool label_name_skip(const char **p) {
    const char *s = *p, *c = s;
    for (; (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || (c > s && *c >= '0' && *c <= '9'); c++)
        ;
    *p = c;
    return c > s;
}

/* A labels string as the format wants it: name="value" pairs, values escaped, joined by commas. */
static bool labels_valid(const char *l) {
    if (!l || !*l)
        return true;
    for (;;) {
        if (!label_name_skip(&l) || *l++ != '=' || *l++ != '"')
            return false;
        for (;;) {
            char c = *l++;
            if (c == '\0' || c == '\n')
                return false;
            if (c == '"')
                break;
            if (c == '\\') {
                char e = *l++;
                if (e != '\\' && e != '"' && e != 'n')
                    return false;
            }
        }
        if (*l == '\0')
            return true;
        if (*l++ != ',')
            return false;
    }
}

/* Appends s with backslash and newline escaped, and double quotes too when quotes is set. */
static int add_escaped(struct sbuf *b, const char *s, bool quotes) {
    int r = 0;
    for (const char *c = s; *c && r >= 0; c++) {
        if (*c == '\\')
            r = sbuf_adds(b, "\\\\");
        else if (*c == '\n')
            r = sbuf_adds(b, "\\n");
        else if (*c == '"' && quotes)
            r = sbuf_adds(b, "\\\"");
        else
            r = sbuf_add(b, c, 1);
    }
    return r;
}

/* The shortest of %.15g/%.17g that reads back as v; NaN and ±Inf as the format spells them. */
static void format_value(char *buf, size_t size, double v) {
    if (isnan(v))
        snprintf(buf, size, "NaN");
    else if (isinf(v))
        snprintf(buf, size, "%s", v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(buf, size, "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, size, "%.17g", v);
    }
}

static struct http_metrics_family *family_get(struct http_metrics_buf *b, const char *name, const char *help,
                                              const char *type, int *ret_error) {
    for (size_t i = 0; i < b->n_families; i++)
        if (streq(b->families[i].name, name)) {
            if (!streq(b->families[i].type, type)) {
                *ret_error = -EINVAL;
                return NULL;
            }
            return &b->families[i];
        }

    if (b->n_families == b->cap_families) {
        size_t cap = b->cap_families ? b->cap_families * 2 : 16;
        struct http_metrics_family *f = realloc(b->families, cap * sizeof(*f));
        if (!f)
            goto oom;
        b->families = f;
        b->cap_families = cap;
    }
    struct http_metrics_family *f = &b->families[b->n_families];
    *f = (struct http_metrics_family){.type = type, .name = strdup(name)};
    if (!f->name)
        goto oom;
    int r = 0;
    if (help) {
        r = sbuf_adds(&f->text, "# HELP ");
        r = r < 0 ? r : sbuf_adds(&f->text, name);
        r = r < 0 ? r : sbuf_adds(&f->text, " ");
        r = r < 0 ? r : add_escaped(&f->text, help, false);
        r = r < 0 ? r : sbuf_adds(&f->text, "\n");
    }
    r = r < 0 ? r : sbuf_adds(&f->text, "# TYPE ");
    r = r < 0 ? r : sbuf_adds(&f->text, name);
    r = r < 0 ? r : sbuf_adds(&f->text, " ");
    r = r < 0 ? r : sbuf_adds(&f->text, type);
    r = r < 0 ? r : sbuf_adds(&f->text, "\n");
    if (r < 0) {
        free(f->name);
        free(f->text.p);
        goto oom;
    }
    b->n_families++;
    return f;

oom:
    *ret_error = -ENOMEM;
    return NULL;
}

/* Appends one sample line to f: NAME{LABELS,LE} VALUE (LE: an le="..." pair of a bucket, or NULL). */
static int sample_add(struct http_metrics_family *f, const char *name, const char *labels, const char *le,
                      double value) {
    char v[64];
    format_value(v, sizeof(v), value);
    bool has_labels = labels && *labels;
    size_t undo = f->text.len;
    int r = sbuf_adds(&f->text, name);
    if (has_labels || le) {
        r = r < 0 ? r : sbuf_adds(&f->text, "{");
        r = r < 0 || !has_labels ? r : sbuf_adds(&f->text, labels);
        r = r < 0 || !has_labels || !le ? r : sbuf_adds(&f->text, ",");
        r = r < 0 || !le ? r : sbuf_adds(&f->text, le);
        r = r < 0 ? r : sbuf_adds(&f->text, "}");
    }
    r = r < 0 ? r : sbuf_adds(&f->text, " ");
    r = r < 0 ? r : sbuf_adds(&f->text, v);
    r = r < 0 ? r : sbuf_adds(&f->text, "\n");
    if (r < 0 && f->text.p) {
        f->text.len = undo; /* no half sample */
        f->text.p[undo] = '\0';
    }
    return r;
}

static int metrics_add(struct http_metrics_buf *b, const char *name, const char *help, const char *type,
                       const char *labels, double value) {
    const char *t = NULL;
    for (size_t i = 0; i < ELEMENTSOF(metric_types); i++)
        if (type && streq(type, metric_types[i]))
            t = metric_types[i];
    if (!t || streq(t, "histogram") || !metric_name_valid(name) || !labels_valid(labels))
        return -EINVAL;

    int r = 0;
    struct http_metrics_family *f = family_get(b, name, help, t, &r);
    return f ? sample_add(f, name, labels, NULL, value) : r;
}

static int histogram_add(struct http_metrics_buf *b, const char *name, const char *help, const char *labels,
                         const double *bounds, const uint64_t *counts, size_t n, double sum, uint64_t count) {
    char sample[256], le[80], v[64];
    if (!metric_name_valid(name) || strlen(name) + sizeof("_bucket") > sizeof(sample) || !labels_valid(labels) ||
        (n > 0 && (!bounds || !counts)))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (isnan(bounds[i]) || (i > 0 && (bounds[i] <= bounds[i - 1] || counts[i] < counts[i - 1])) ||
            counts[i] > count)
            return -EINVAL;
    int r = 0;
    struct http_metrics_family *f = family_get(b, name, help, "histogram", &r);
    if (!f)
        return r;
    snprintf(sample, sizeof(sample), "%s_bucket", name);
    for (size_t i = 0; r >= 0 && i <= n; i++) {
        format_value(v, sizeof(v), i < n ? bounds[i] : INFINITY);
        snprintf(le, sizeof(le), "le=\"%s\"", v);
        r = sample_add(f, sample, labels, le, (double)(i < n ? counts[i] : count));
    }
    snprintf(sample, sizeof(sample), "%s_sum", name);
    r = r < 0 ? r : sample_add(f, sample, labels, NULL, sum);
    snprintf(sample, sizeof(sample), "%s_count", name);
    return r < 0 ? r : sample_add(f, sample, labels, NULL, (double)count);
}

int http_metrics_add_histogram(struct http_metrics_buf *b, const char *name, const char *help, const char *labels,
                               const double *bounds, const uint64_t *counts, size_t n, double sum, uint64_t count) {
    assert_return(b, -EINVAL);
    int r = histogram_add(b, name, help, labels, bounds, counts, n, sum, count);
    if (r < 0 && b->error == 0)
        b->error = r;
    return r;
}

int http_metrics_add(struct http_metrics_buf *b, const char *name, const char *help, const char *type,
                     const char *labels, double value) {
    assert_return(b, -EINVAL);
    int r = metrics_add(b, name, help, type, labels, value);
    if (r < 0 && b->error == 0)
        b->error = r;
    return r;
}

int http_metrics_labels(char *buf, size_t size, ...) {
    assert_return(buf && size > 0, -EINVAL);
    struct sbuf b = {0};
    int r = 0;
    va_list ap;
    va_start(ap, size);
    for (const char *k; r >= 0 && (k = va_arg(ap, const char *));) {
        const char *v = va_arg(ap, const char *), *end = k;
        if (!v || !label_name_skip(&end) || *end != '\0' || strncmp(k, "__", 2) == 0) {
            r = -EINVAL;
            break;
        }
        r = b.len > 0 ? sbuf_adds(&b, ",") : 0;
        r = r < 0 ? r : sbuf_adds(&b, k);
        r = r < 0 ? r : sbuf_adds(&b, "=\"");
        r = r < 0 ? r : add_escaped(&b, v, true);
        r = r < 0 ? r : sbuf_adds(&b, "\"");
    }
    va_end(ap);

    buf[0] = '\0';
    if (r >= 0 && b.len >= size)
        r = -ENOBUFS;
    if (r >= 0 && b.len > 0)
        memcpy(buf, b.p, b.len + 1);
    if (r >= 0)
        r = (int)MIN(b.len, (size_t)INT32_MAX);
    free(b.p);
    return r;
}

void http_metrics_done(struct http_metrics_buf *b) {
    if (!b)
        return;
    for (size_t i = 0; i < b->n_families; i++) {
        free(b->families[i].name);
        free(b->families[i].text.p);
    }
    free(b->families);
    *b = (struct http_metrics_buf){0};
}

int http_metrics_finish(struct http_metrics_buf *b, char **ret_text) {
    assert_return(b && ret_text, -EINVAL);
    int r = b->error;
    struct sbuf out = {0};
    for (size_t i = 0; r >= 0 && i < b->n_families; i++)
        r = sbuf_add(&out, b->families[i].text.p, b->families[i].text.len);
    if (r >= 0 && !out.p)
        r = (out.p = strdup("")) ? 0 : -ENOMEM;
    http_metrics_done(b);
    if (r < 0) {
        free(out.p);
        return r;
    }
    *ret_text = out.p;
    return 0;
}

/* ---- the server ---- */

enum route {
    ROUTE_NONE,
    ROUTE_STATUS,
    ROUTE_METRICS,
    ROUTE_EVENTS,
    ROUTE_ENTRYPOINT,
    ROUTE_HEALTH,
    ROUTE_LOG_LEVEL,
    ROUTE_ASSET, /* a file of the live page (http-assets.h) */
};

static const struct {
    const char *path;
    enum route route;
} routes[] = {
    {"/", ROUTE_STATUS},
    {"/v1/status", ROUTE_STATUS},
    {"/metrics", ROUTE_METRICS},
    {"/v1/events", ROUTE_EVENTS},
    {"/v1/entrypoint", ROUTE_ENTRYPOINT},
    {"/v1/health", ROUTE_HEALTH},
    {"/v1/log-level", ROUTE_LOG_LEVEL},
};

/* The status codes counted one by one in halo_http_requests_total; the rest count as "other". */
static const unsigned counted_codes[] = {200, 202, 400, 401, 404, 405, 413, 415, 500, 503};

/* One POST /v1/events or PUT /v1/log-level being received. */
struct req {
    enum route route;
    struct sbuf body;
    bool too_large; /* the rest is discarded, the answer is 413 */
};

struct http_server {
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    struct listener *listener;
    uv_poll_t poll;
    uv_timer_t timer;
    unsigned open_handles; /* freed when the last one's close callback ran */
    struct http_handlers h;
    void *userdata;
    struct http_limits limits;
    uint16_t port;
    enum http_writes writes; /* who may POST */
    char *token;             /* HTTP_WRITES_TOKEN: the bearer token */

    struct http_conns *conns;

    uint64_t requests[ELEMENTSOF(counted_codes) + 1];

    bool in_run;       /* inside MHD_run(): handlers may be on the stack */
    bool free_pending; /* http_server_free() was called from a handler */
    bool freed;
};

static void count_code(struct http_server *s, unsigned code) {
    size_t i = 0;
    while (i < ELEMENTSOF(counted_codes) && counted_codes[i] != code)
        i++;
    s->requests[i]++;
}

/* Queues body (malloc'ed, taken in every case) as the answer. */
static enum MHD_Result respond(struct http_server *s, struct MHD_Connection *mc, unsigned code, const char *type,
                               char *body, const char *allow, bool retry) {
    if (!body)
        return MHD_NO; /* out of memory: drop the connection rather than answer nothing */
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    bool ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) == MHD_YES &&
              MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES &&
              (!allow || MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) == MHD_YES) &&
              (!retry || MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1") == MHD_YES) &&
              /* RFC 9110: a 401 says how to authenticate. */
              (code != MHD_HTTP_UNAUTHORIZED ||
               MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"halo\"") == MHD_YES);
    enum MHD_Result r = ok ? MHD_queue_response(mc, code, resp) : MHD_NO;
    MHD_destroy_response(resp);
    if (r == MHD_YES)
        count_code(s, code);
    return r;
}

static enum MHD_Result respond_error_full(struct http_server *s, struct MHD_Connection *mc, unsigned code,
                                          const char *error, const char *message, const char *allow, bool retry) {
    json_t *o = json_pack("{s:s, s:s}", "error", error, "message", message);
    if (!o) /* a handler's message that is not UTF-8 */
        o = json_pack("{s:s, s:s}", "error", error, "message", "(the message is not valid UTF-8)");
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return respond(s, mc, code, CT_JSON, body, allow, retry);
}

static enum MHD_Result respond_error(struct http_server *s, struct MHD_Connection *mc, unsigned code, const char *error,
                                     const char *message) {
    return respond_error_full(s, mc, code, error, message, NULL, false);
}

/* The live page's files: read-only, no token; scripts and styles only from halod itself (no inline
 * script, no other origin), never framed, no referrer sent on. */
#define UI_CSP                                                                                                   \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri " \
    "'none'; form-action 'none'"

static enum MHD_Result serve_asset(struct http_server *s, struct MHD_Connection *mc, const struct http_asset *a) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(a->size, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    bool ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, a->type) == MHD_YES &&
              MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") == MHD_YES &&
              MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP) == MHD_YES &&
              MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") == MHD_YES &&
              MHD_add_response_header(resp, "Referrer-Policy", "no-referrer") == MHD_YES;
    enum MHD_Result r = ok ? MHD_queue_response(mc, MHD_HTTP_OK, resp) : MHD_NO;
    MHD_destroy_response(resp);
    if (r == MHD_YES)
        count_code(s, MHD_HTTP_OK);
    return r;
}

/* Maps a handler's failure to its answer. */
static enum MHD_Result respond_handler_error(struct http_server *s, struct MHD_Connection *mc, int r,
                                             const char *message) {
    switch (r) {
    case -EINVAL:
        return respond_error(s, mc, MHD_HTTP_BAD_REQUEST, "invalid", message ? message : "the request is invalid");
    case -ENOENT:
        return respond_error(s, mc, MHD_HTTP_NOT_FOUND, "unknown_object", message ? message : "unknown object");
    case -EPERM:
        return respond_error(s, mc, MHD_HTTP_CONFLICT, "contradicts_halo",
                             message ? message : "the request contradicts what halo knows");
    case -EAGAIN:
        return respond_error_full(s, mc, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                  message ? message : "not available yet, try again", NULL, true);
    default:
        return respond_error(s, mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", message ? message : "internal error");
    }
}

static enum MHD_Result serve_json(struct http_server *s, struct MHD_Connection *mc,
                                  int (*fn)(void *userdata, char **ret_json)) {
    if (!fn)
        return respond_error(s, mc, MHD_HTTP_NOT_FOUND, "not_found", "not provided by this node");
    char *json = NULL;
    int r = fn(s->userdata, &json);
    if (r < 0)
        return respond_handler_error(s, mc, r, NULL);
    if (!json)
        return respond_error(s, mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "the handler produced nothing");
    return respond(s, mc, MHD_HTTP_OK, CT_JSON, json, NULL, false);
}

/* http.c's own families, appended to what the handler wrote. */
static int own_metrics(struct http_server *s, char **ret_text) {
    struct http_metrics_buf m = {0};
    for (size_t i = 0; i < ELEMENTSOF(s->requests); i++) {
        if (s->requests[i] == 0)
            continue;
        char code[16], labels[32];
        if (i < ELEMENTSOF(counted_codes))
            snprintf(code, sizeof(code), "%u", counted_codes[i]);
        else
            snprintf(code, sizeof(code), "other");
        (void)http_metrics_labels(labels, sizeof(labels), "code", code, NULL);
        (void)http_metrics_add(&m, "halo_http_requests_total", "HTTP requests answered by halod, by status code.",
                               "counter", labels, (double)s->requests[i]);
    }
    (void)http_metrics_add(&m, "halo_http_connections", "HTTP connections open now.", "gauge", NULL,
                           (double)http_conns_open(s->conns));
    (void)http_metrics_add(&m, "halo_http_connections_cut_total",
                           "HTTP connections closed for not completing a request in time, or to make room for another.",
                           "counter", NULL, (double)http_conns_cut_total(s->conns));
    return http_metrics_finish(&m, ret_text);
}

static enum MHD_Result serve_metrics(struct http_server *s, struct MHD_Connection *mc) {
    _cleanup_free_ char *text = NULL, *own = NULL;
    if (s->h.metrics) {
        int r = s->h.metrics(s->userdata, &text);
        if (r < 0)
            return respond_handler_error(s, mc, r, NULL);
    }
    if (own_metrics(s, &own) < 0)
        return MHD_NO;

    struct sbuf out = {0};
    size_t n = text ? strlen(text) : 0;
    int r = sbuf_add(&out, "", 0);
    r = r < 0 || n == 0 ? r : sbuf_add(&out, text, n);
    r = r < 0 || n == 0 || text[n - 1] == '\n' ? r : sbuf_adds(&out, "\n");
    r = r < 0 ? r : sbuf_adds(&out, own);
    if (r < 0) {
        free(out.p);
        return MHD_NO;
    }
    return respond(s, mc, MHD_HTTP_OK, CT_METRICS, out.p, NULL, false);
}

/* "application/json", any case, optionally followed by parameters ("; charset=utf-8"). */
static bool is_json_type(const char *ct) {
    static const char json[] = CT_JSON;
    if (!ct)
        return false;
    ct += strspn(ct, " \t");
    if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
        return false;
    ct += sizeof(json) - 1;
    ct += strspn(ct, " \t");
    return *ct == '\0' || *ct == ';';
}

static enum MHD_Result body_start(struct http_server *s, struct MHD_Connection *mc, enum route route, void **con_cls) {
    if (route == ROUTE_EVENTS ? !s->h.events : !s->h.log_level)
        return respond_error(s, mc, MHD_HTTP_NOT_FOUND, "not_found", "not provided by this node");
    if (!is_json_type(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return respond_error(s, mc, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                             "the body must be sent as Content-Type: application/json");

    /* A declared length over the limit is refused before any of the body is read (and before
     * "100 Continue" is sent to a client that asked for it). */
    const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t declared = 0;
    if (cl && (parse_u64(cl, &declared) == -ERANGE || declared > HTTP_BODY_MAX))
        return respond_error(s, mc, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the body is larger than 64 KiB");

    struct req *r = calloc(1, sizeof(*r));
    if (!r)
        return MHD_NO;
    r->route = route;
    *con_cls = r;
    return MHD_YES;
}

static void body_data(struct req *r, const char *data, size_t n) {
    if (r->too_large)
        return;
    if (r->body.len + n > HTTP_BODY_MAX || sbuf_add(&r->body, data, n) < 0) {
        /* A chunked body has no declared length: keep reading, discard, answer 413 at the end (an
         * answer cannot be queued in the middle of the body).  The request deadline bounds how long. */
        r->too_large = true;
        free(r->body.p);
        r->body = (struct sbuf){0};
    }
}

static enum MHD_Result body_end(struct http_server *s, struct MHD_Connection *mc, struct req *r) {
    if (r->too_large)
        return respond_error(s, mc, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", "the body is larger than 64 KiB");

    json_error_t err;
    json_t *j = json_loadb(r->body.p ? r->body.p : "", r->body.len, JSON_REJECT_DUPLICATES, &err);
    bool shape = j && (json_is_object(j) || json_is_array(j));
    json_decref(j);
    if (!j) {
        char msg[256 + JSON_ERROR_TEXT_LENGTH];
        snprintf(msg, sizeof(msg), "the body is not valid JSON: %s at line %d column %d", err.text, err.line,
                 err.column);
        return respond_error(s, mc, MHD_HTTP_BAD_REQUEST, "bad_json", msg);
    }
    if (!shape)
        return respond_error(s, mc, MHD_HTTP_BAD_REQUEST, "bad_json", "the body must be a JSON object or array");

    char *reply = NULL;
    const char *msg = NULL;
    int k = r->route == ROUTE_EVENTS ? s->h.events(s->userdata, r->body.p, r->body.len, &reply, &msg)
                                     : s->h.log_level(s->userdata, r->body.p, r->body.len, &reply, &msg);
    if (k < 0) {
        free(reply);
        return respond_handler_error(s, mc, k, msg);
    }
    if (r->route == ROUTE_LOG_LEVEL)
        return reply ? respond(s, mc, MHD_HTTP_OK, CT_JSON, reply, NULL, false)
                     : respond_error(s, mc, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "the handler produced nothing");
    return respond(s, mc, MHD_HTTP_ACCEPTED, CT_JSON, reply ? reply : strdup("{\"accepted\":true}"), NULL, false);
}

/* GET /v1/log-level: the handler without a body answers the levels. */
static enum MHD_Result serve_log_levels(struct http_server *s, struct MHD_Connection *mc) {
    char *json = NULL;
    const char *msg = NULL;
    int r = s->h.log_level(s->userdata, NULL, 0, &json, &msg);
    if (r < 0) {
        free(json);
        return respond_handler_error(s, mc, r, msg);
    }
    return json ? respond(s, mc, MHD_HTTP_OK, CT_JSON, json, NULL, false) : MHD_NO;
}

static struct hconn *hconn_of(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls) {
    struct http_server *s = cls;
    struct req *r = *con_cls;

    /* http_server_free() ran from a handler earlier in this MHD_run(): call no more handlers. */
    if (s->free_pending)
        return MHD_NO;

    if (r) { /* the body of POST /v1/events, then its end */
        if (*upload_data_size > 0) {
            body_data(r, upload_data, *upload_data_size);
            *upload_data_size = 0;
            return MHD_YES;
        }
        return body_end(s, mc, r);
    }

    /* The headers are in: route, then answer at once unless a body must be read. */
    http_conns_headers_in(s->conns, hconn_of(mc));
    enum route route = ROUTE_NONE;
    for (size_t i = 0; i < ELEMENTSOF(routes) && route == ROUTE_NONE; i++)
        if (streq(url, routes[i].path))
            route = routes[i].route;
    const struct http_asset *asset = NULL;
    for (size_t i = 0; i < http_n_assets && route == ROUTE_NONE; i++)
        if (streq(url, http_assets[i].path)) {
            asset = &http_assets[i];
            route = ROUTE_ASSET;
        }
    if (route == ROUTE_NONE)
        return respond_error(s, mc, MHD_HTTP_NOT_FOUND, "not_found", "no such path");

    bool get = streq(method, MHD_HTTP_METHOD_GET) || streq(method, MHD_HTTP_METHOD_HEAD);
    bool write = route == ROUTE_EVENTS || (route == ROUTE_LOG_LEVEL && streq(method, MHD_HTTP_METHOD_PUT));
    if (route == ROUTE_EVENTS && !streq(method, MHD_HTTP_METHOD_POST))
        return respond_error_full(s, mc, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "this path takes POST only",
                                  "POST", false);
    if (route == ROUTE_LOG_LEVEL && !get && !write)
        return respond_error_full(s, mc, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                  "this path takes GET, HEAD and PUT only", "GET, HEAD, PUT", false);
    if (!write && !get)
        return respond_error_full(s, mc, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
                                  "this path takes GET and HEAD only", "GET, HEAD", false);

    if (write) {
        if (s->writes == HTTP_WRITES_REFUSED)
            return respond_error(s, mc, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                 "writes over HTTP need a token: start halod with --http-token-file");
        if (s->writes == HTTP_WRITES_TOKEN &&
            !http_bearer_ok(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION), s->token))
            return respond_error(s, mc, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                                 "this path needs the header 'Authorization: Bearer TOKEN' with halod's token");
    }

    switch (route) {
    case ROUTE_STATUS:
        return serve_json(s, mc, s->h.status);
    case ROUTE_ENTRYPOINT:
        return serve_json(s, mc, s->h.entrypoint);
    case ROUTE_METRICS:
        return serve_metrics(s, mc);
    case ROUTE_HEALTH: /* halod's loop answers: it is alive (docs/http.md) */
        return respond(s, mc, MHD_HTTP_OK, CT_JSON,
                       strdup("{\"status\":\"ok\",\"version\":\"" HALO_VERSION_STRING "\"}"), NULL, false);
    case ROUTE_EVENTS:
        return body_start(s, mc, route, con_cls);
    case ROUTE_LOG_LEVEL:
        if (write)
            return body_start(s, mc, route, con_cls);
        if (!s->h.log_level)
            return respond_error(s, mc, MHD_HTTP_NOT_FOUND, "not_found", "not provided by this node");
        return serve_log_levels(s, mc);
    case ROUTE_ASSET:
        return serve_asset(s, mc, asset);
    case ROUTE_NONE:
        break;
    }
    return MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls, enum MHD_RequestTerminationCode toe) {
    struct http_server *s = cls;
    struct req *r = *con_cls;
    if (r) {
        free(r->body.p);
        free(r);
        *con_cls = NULL;
    }
    /* The next request on this connection has its own time. */
    http_conns_request_done(s->conns, hconn_of(mc), uv_now(s->loop));
}

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    struct http_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = http_conns_started(s->conns);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        http_conns_closed(s->conns, *socket_context);
        *socket_context = NULL;
        listener_resume(s->listener); /* a descriptor is free again */
    }
}

static void on_timer(uv_timer_t *t);

/* Arms the timer for libmicrohttpd's own timeout or the nearest request deadline, whichever is first;
 * cuts off the connections past theirs. */
static void arm(struct http_server *s) {
    uint64_t wait = http_conns_cut_late(s->conns, uv_now(s->loop));
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(s->mhd, &t) == MHD_YES)
        wait = MIN(wait, (uint64_t)t);
    if (wait == UINT64_MAX)
        (void)uv_timer_stop(&s->timer);
    else
        (void)uv_timer_start(&s->timer, on_timer, wait, 0);
}

static void run(struct http_server *s) {
    s->in_run = true;
    (void)MHD_run(s->mhd);
    s->in_run = false;
    if (s->free_pending)
        (void)http_server_free(s);
    else
        arm(s);
}

static void on_poll(uv_poll_t *p, int status, int events) {
    run(p->data);
}

static void on_timer(uv_timer_t *t) {
    run(t->data);
}

/* A connection came: room is made for it, libmicrohttpd takes it, and serves it on the next turn of the
 * loop (not here: a handler may free the server, and the listener is still on the stack). */
static void on_accept(int fd, const struct sockaddr *addr, socklen_t len, void *userdata) {
    struct http_server *s = userdata;
    if (http_conns_admit(s->conns, uv_now(s->loop), fd, addr, len) < 0) {
        close(fd);
        return;
    }
    if (MHD_add_connection(s->mhd, fd, addr, len) != MHD_YES) /* it closed fd */
        http_conns_abandon(s->conns);
    (void)uv_timer_start(&s->timer, on_timer, 0, 0);
}

static void on_close(uv_handle_t *h) {
    struct http_server *s = h->data;
    if (--s->open_handles == 0) {
        http_conns_free(s->conns);
        free(s->token);
        free(s);
    }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    if (log_levels[LOG_AREA] < LOG_DEBUG_)
        return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_debug("libmicrohttpd: %s", msg);
}
#pragma GCC diagnostic pop

/* A bound, listening, non-blocking socket on address:port. */
static int listen_on(const char *address, uint16_t port, int *ret_fd, uint16_t *ret_port) {
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(port);
        len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        len = sizeof(*in6);
    } else
        return -EINVAL;

    _cleanup_close_ int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* SO_REUSEADDR: a restarted halod gets its port back despite connections in TIME_WAIT; it does not
     * let two listeners share a port on Linux. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&ss, len) < 0)
        return -errno;
    if (listen(fd, HTTP_LISTEN_BACKLOG) < 0)
        return -errno;
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    *ret_port = ntohs(ss.ss_family == AF_INET ? in4->sin_port : in6->sin6_port);
    *ret_fd = TAKE_FD(fd);
    return 0;
}

int http_server_new_with_limits(uv_loop_t *loop, const char *address, uint16_t port, const struct http_handlers *h,
                                void *userdata, const struct http_limits *limits, struct http_server **ret) {
    assert_return(loop, -EINVAL);
    assert_return(ret, -EINVAL);

    struct http_limits l = limits ? *limits : (struct http_limits){0};
    l.connections_max = l.connections_max ? l.connections_max : HTTP_CONNECTIONS_MAX;
    l.per_ip_max = l.per_ip_max ? l.per_ip_max : HTTP_PER_IP_MAX;
    l.idle_timeout_sec = l.idle_timeout_sec ? l.idle_timeout_sec : HTTP_IDLE_TIMEOUT_SEC;
    l.request_timeout_ms = l.request_timeout_ms ? l.request_timeout_ms : HTTP_REQUEST_TIMEOUT_MS;
    l.header_timeout_ms = l.header_timeout_ms ? l.header_timeout_ms : HTTP_HEADER_TIMEOUT_MS;
    l.connection_memory = l.connection_memory ? l.connection_memory : HTTP_CONNECTION_MEMORY;
    assert_return(l.connections_max <= 65536, -EINVAL);

    _cleanup_close_ int fd = -1;
    uint16_t bound = 0;
    int r = listen_on(address ? address : "127.0.0.1", port, &fd, &bound);
    if (r < 0)
        return r;
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s || http_conns_new(&l, &s->conns) < 0) {
        free(s);
        return -ENOMEM;
    }
    s->loop = loop;
    s->h = h ? *h : (struct http_handlers){0};
    s->userdata = userdata;
    s->limits = l;
    s->port = bound;

    /* The connections come from our own listener (io/listener.c), which makes room for each and pauses
     * when out of descriptors; libmicrohttpd's own accept would spin on EMFILE with no connection open. */
    errno = 0;
    bool tls = l.tls_cert_pem && l.tls_key_pem;
    s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG | (tls ? MHD_USE_TLS : 0), 0,
                              NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                              MHD_OPTION_CONNECTION_LIMIT, l.connections_max + HTTP_CONNS_CLOSING_MAX,
                              MHD_OPTION_CONNECTION_TIMEOUT, l.idle_timeout_sec, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                              l.connection_memory, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_STRICT_FOR_CLIENT, 1,
                              /* The key and certificate: their PEM text, read by the caller. */
                              tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, l.tls_key_pem, MHD_OPTION_HTTPS_MEM_CERT,
                              l.tls_cert_pem, MHD_OPTION_END);
    const union MHD_DaemonInfo *di = s->mhd ? MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    r = !s->mhd ? (errno == ENOMEM || errno == EMFILE || errno == ENFILE ? -errno : -EIO)
        : di    ? uv_poll_init(loop, &s->poll, di->epoll_fd)
                : -EIO;
    if (r < 0) {
        if (s->mhd)
            MHD_stop_daemon(s->mhd);
        http_conns_free(s->conns);
        free(s);
        return r;
    }
    s->poll.data = s;
    (void)uv_timer_init(loop, &s->timer); /* cannot fail */
    s->timer.data = s;
    s->open_handles = 2;
    r = uv_poll_start(&s->poll, UV_READABLE, on_poll);
    if (r >= 0)
        r = listener_new(loop, TAKE_FD(fd), "HTTP", on_accept, s, &s->listener);
    if (r < 0) {
        (void)http_server_free(s);
        return r;
    }
    arm(s);
    *ret = s;
    return 0;
}

int http_server_new(uv_loop_t *loop, const char *address, uint16_t port, const struct http_handlers *h, void *userdata,
                    struct http_server **ret) {
    return http_server_new_with_limits(loop, address, port, h, userdata, NULL, ret);
}

int http_server_set_writes(struct http_server *s, enum http_writes writes, const char *token) {
    assert_return(s, -EINVAL);
    assert_return(writes != HTTP_WRITES_TOKEN || token, -EINVAL);
    char *t = NULL;
    if (writes == HTTP_WRITES_TOKEN && !(t = strdup(token)))
        return -ENOMEM;
    free(s->token);
    s->token = t;
    s->writes = writes;
    return 0;
}

uint16_t http_server_port(const struct http_server *s) {
    return s ? s->port : 0;
}

struct http_server *http_server_free(struct http_server *s) {
    if (!s || s->freed)
        return NULL;
    if (s->in_run) {
        /* Called from a handler: libmicrohttpd is on the stack; finish when MHD_run() returns. */
        s->free_pending = true;
        return NULL;
    }
    s->freed = true;
    s->listener = listener_free(s->listener);
    /* Stop watching the epoll fd before libmicrohttpd closes it. */
    uv_close((uv_handle_t *)&s->poll, on_close);
    uv_close((uv_handle_t *)&s->timer, on_close);
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    return NULL;
}
