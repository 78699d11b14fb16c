/* SPDX-License-Identifier: MIT */
/* The HTTP/JSON bridge of halod: status, events, entrypoint and Prometheus metrics, driven by the loop. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The largest request body POST /v1/events accepts; more is answered 413. */
/* halod's HTTP API port when --http does not say (as a string, for messages). */
#define HTTP_DEFAULT_PORT "7680"

#define HTTP_BODY_MAX (64 * 1024)

struct http_server;

/*
 * What the caller serves.  Every handler is optional: a missing one makes its path answer 404
 * (not provided by this node), except /metrics, which then carries http.c's own counters only.
 * Handlers run on the loop, inside http.c's processing; they must not block.  A handler may call
 * http_server_free() on its server: the server is then freed once the current processing returns.
 *
 * Returns of status, metrics and entrypoint: 0 with *ret_json / *ret_text set to a malloc'ed
 * NUL-terminated string that http.c frees (200); -EAGAIN → 503 with "Retry-After: 1"; -ENOENT → 404;
 * -EINVAL → 400; any other negative value → 500.
 *
 * events gets the body of POST /v1/events once it is complete, at most HTTP_BODY_MAX bytes, known to be
 * well-formed JSON (no duplicate keys) whose top level is an object or an array; body[len] is '\0'.
 * It returns 0 → 202 with *ret_reply_json (malloc'ed, freed by http.c) or {"accepted":true} if it
 * left it NULL; -EINVAL → 400, -ENOENT → 404 "unknown_object", -EAGAIN → 503 with "Retry-After: 1",
 * anything else → 500.  On failure it may point *ret_error_msg at a static string that becomes the
 * "message" of the error answer.
 *
 * log_level gets the body of PUT /v1/log-level as events gets its own (well-formed JSON, an object or
 * an array), or body NULL for GET /v1/log-level; it returns 0 → 200 with *ret_reply_json (malloc'ed,
 * freed by http.c: the levels), failures as events.  PUT is a write: it needs the token as POST does.
 */
struct http_handlers {
    int (*status)(void *userdata, char **ret_json);  /* GET /v1/status and GET / */
    int (*metrics)(void *userdata, char **ret_text); /* GET /metrics, exposition format 0.0.4 */
    int (*events)(void *userdata, const char *body, size_t len, char **ret_reply_json,
                  const char **ret_error_msg);          /* POST /v1/events */
    int (*entrypoint)(void *userdata, char **ret_json); /* GET /v1/entrypoint */
    int (*log_level)(void *userdata, const char *body, size_t len, char **ret_reply_json,
                     const char **ret_error_msg); /* GET and PUT /v1/log-level */
};

/* Bounds on what one client can hold.  A field left 0 takes the default named next to it. */
struct http_limits {
    unsigned connections_max;    /* 64: connections served at once.  One more makes room: the
                                  * connection that has waited longest for its request, of the
                                  * address that holds the most, is closed */
    unsigned per_ip_max;         /* 32: connections from one address (127.0.0.1 and 127.0.0.2 are
                                  * two); one more closes the one of that address that has waited
                                  * longest, so that others always have room */
    unsigned idle_timeout_sec;   /* 10: a connection silent that long is closed */
    unsigned request_timeout_ms; /* 30000: a request must be read and answered within this, counted
                                  * from the connection's start or its previous request's end;
                                  * a client that trickles bytes (slowloris) is cut off after it */
    unsigned header_timeout_ms;  /* 5000: the same for the request line and headers alone */
    size_t connection_memory;    /* 32 KiB: per connection; bounds the request line and headers */
    const char *tls_cert_pem;    /* with tls_key_pem: HTTPS (libmicrohttpd's GnuTLS), the PEM text of */
    const char *tls_key_pem;     /* the certificate (chain) and of its unencrypted key; NULL: HTTP */
};

/* Who may write (POST /v1/events, PUT /v1/log-level).  A new server starts HTTP_WRITES_OPEN; halod sets TOKEN or
 * REFUSED. */
enum http_writes {
    HTTP_WRITES_OPEN,    /* anyone who can connect */
    HTTP_WRITES_TOKEN,   /* "Authorization: Bearer TOKEN"; otherwise 401 */
    HTTP_WRITES_REFUSED, /* nobody: 401, saying a token must be configured */
};

/*
 * Starts serving on address ("127.0.0.1" when NULL, or "::1", or any numeric IPv4/IPv6 address) and
 * port (0: the kernel picks a free one, see http_server_port()).  h is copied; userdata is passed to
 * every handler.  No thread is created: the server is driven by loop.
 *
 * Returns 0 and *ret, or -EINVAL (bad argument or address), -EADDRINUSE (the port is taken),
 * -EADDRNOTAVAIL (no such local address), -EACCES, -EMFILE, -ENOMEM, or -EIO when libmicrohttpd
 * refuses to start without saying why.
 */
int http_server_new(uv_loop_t *loop, const char *address, uint16_t port, const struct http_handlers *h, void *userdata,
                    struct http_server **ret);
/* The same with explicit limits (NULL: all defaults). */
int http_server_new_with_limits(uv_loop_t *loop, const char *address, uint16_t port, const struct http_handlers *h,
                                void *userdata, const struct http_limits *limits, struct http_server **ret);

/* Sets who may write; token (copied) for HTTP_WRITES_TOKEN.  0, -EINVAL or -ENOMEM. */
int http_server_set_writes(struct http_server *s, enum http_writes writes, const char *token);

/* The port the server listens on (the one picked when it was started with port 0). */
uint16_t http_server_port(const struct http_server *s);

/*
 * Closes every connection and the listening socket at once (no handler runs after this returns),
 * and the loop handles; the memory goes when the loop has run their close callbacks.  Safe from any
 * loop callback, including a handler of this server.  Accepts NULL; returns NULL.
 */
struct http_server *http_server_free(struct http_server *s);

/*
 * A builder of Prometheus text exposition (format 0.0.4) for metrics handlers.
 *
 *     struct http_metrics_buf m = {0};
 *     char l[128];
 *     http_metrics_labels(l, sizeof l, "node", name, NULL);
 *     http_metrics_add(&m, "halo_node_up", "Whether the node is up.", "gauge", l, 1);
 *     r = http_metrics_finish(&m, &text);
 *
 * Samples of one metric are kept together under one "# HELP" and one "# TYPE" line, in the order names
 * were first added, even when the calls interleave.  The fields are private.
 */
struct http_metrics_family;
struct http_metrics_buf {
    struct http_metrics_family *families;
    size_t n_families, cap_families;
    int error; /* the first failure of http_metrics_add(), returned by http_metrics_finish() */
};

/*
 * Adds one sample.  name: [a-zA-Z_:][a-zA-Z0-9_:]*; help: any text (backslashes and newlines are
 * escaped), used the first time name is seen; type: "counter", "gauge" or "untyped" (a histogram: the
 * next call), and the same on
 * every call for one name; labels: NULL, "" or comma-separated name="value" pairs with values escaped
 * as the format says (what http_metrics_labels() writes); value: any double (NaN and ±Inf too).
 * Returns 0, -EINVAL (bad name, type or labels; a type that differs from the name's first), -ENOMEM.
 */
int http_metrics_add(struct http_metrics_buf *b, const char *name, const char *help, const char *type,
                     const char *labels, double value);

/*
 * Adds a histogram (its family's type is "histogram"): NAME_bucket{LABELS,le="B"} for each of the n
 * ascending bounds with counts[i] the observations <= bounds[i] (cumulative), NAME_bucket{le="+Inf"}
 * with count, then NAME_sum and NAME_count.  labels as for http_metrics_add(), without "le".
 * Returns 0, -EINVAL (bad name or labels, bounds not ascending, counts not cumulative or above count,
 * the name already used by another type), -ENOMEM.
 */
int http_metrics_add_histogram(struct http_metrics_buf *b, const char *name, const char *help, const char *labels,
                               const double *bounds, const uint64_t *counts, size_t n, double sum, uint64_t count);

/*
 * Writes name="value" pairs, given as a NULL-terminated list of name, value strings, into buf as one
 * labels string for http_metrics_add(), escaping backslashes, double quotes and newlines in values.
 * Returns the length written (without the NUL), -EINVAL (a bad label name, or one starting "__"),
 * or -ENOBUFS when buf is too small (buf then holds "").
 */
int http_metrics_labels(char *buf, size_t size, ...) __attribute__((sentinel));

/*
 * Hands over the text (malloc'ed, the caller frees it; "" when nothing was added) and empties b.
 * Returns 0, the first error of an earlier http_metrics_add() (then *ret_text is untouched), or -ENOMEM.
 * b is empty after it either way.
 */
int http_metrics_finish(struct http_metrics_buf *b, char **ret_text);

/* Frees what b holds, for a builder abandoned before http_metrics_finish(). */
void http_metrics_done(struct http_metrics_buf *b);
