/* SPDX-License-Identifier: MIT */
/* The etcd backend's transport: one libcurl multi handle per store, driven by the store's libuv loop. */

/*
 * The libcurl "multi_socket" style: CURLMOPT_SOCKETFUNCTION maps each socket
 * curl wants watched to a uv_poll handle, CURLMOPT_TIMERFUNCTION to one
 * uv_timer; their callbacks call curl_multi_socket_action() and then
 * store_etcd_dispatch().  Nothing blocks the loop.  Curl callbacks (socket,
 * timer, write) only record data; user callbacks run from the dispatch step
 * after curl_multi_socket_action() returned, where removing easy handles is
 * allowed.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "macro.h"

static size_t on_curl_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
    struct etcd_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = MAX(b->cap * 2, b->len + n + 1);
        char *d = realloc(b->data, cap);
        if (!d)
            return 0; /* curl fails the transfer with CURLE_WRITE_ERROR */
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

void etcd_buf_done(struct etcd_buf *b) {
    free(b->data);
    *b = (struct etcd_buf){0};
}

/* The headers of a call that carries the token: the common ones and its
 * Authorization, owned by the transfer (CURLOPT_PRIVATE, freed by
 * etcd_curl_remove()): a new token must not change the list of a transfer
 * in flight. */
static struct curl_slist *token_headers(struct store_etcd *s) {
    struct curl_slist *l = NULL, *n;
    char *auth = malloc(strlen(s->token) + sizeof("Authorization: "));
    if (!auth)
        return NULL;
    strcpy(auth, "Authorization: ");
    strcat(auth, s->token);
    for (const struct curl_slist *h = s->headers; h; h = h->next) {
        if (!(n = curl_slist_append(l, h->data)))
            goto fail;
        l = n;
    }
    if (!(n = curl_slist_append(l, auth)))
        goto fail;
    free(auth);
    return n;
fail:
    free(auth);
    curl_slist_free_all(l);
    return NULL;
}

CURL *etcd_curl_post(struct store_etcd *s, const char *endpoint, const char *path, const char *body,
                     struct etcd_buf *resp, long timeout_msec) {
    struct curl_slist *own = NULL;
    char url[512];
    CURL *e;

    if (etcd_auth_wanted(s, path) && s->token && *s->token && !(own = token_headers(s)))
        return NULL;
    snprintf(url, sizeof(url), "%s%s", endpoint, path);
    e = curl_easy_init();
    if (!e) {
        curl_slist_free_all(own);
        return NULL;
    }
    if (curl_easy_setopt(e, CURLOPT_PRIVATE, own) != CURLE_OK) {
        curl_slist_free_all(own);
        curl_easy_cleanup(e);
        return NULL;
    }
    if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, own ? own : s->headers) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, resp) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, STORE_ETCD_CONNECT_TIMEOUT_MSEC) != CURLE_OK ||
        /* A watch stream (no timeout) lasts as long as the watch: TCP
         * keepalives find a dead peer, the keepalives of leases a stopped one
         * (etcd_endpoint_failed()). */
        (timeout_msec == 0 ? curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L)
                           : curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_msec)) != CURLE_OK ||
        (s->cacert && curl_easy_setopt(e, CURLOPT_CAINFO, s->cacert) != CURLE_OK) ||
        (s->cert && curl_easy_setopt(e, CURLOPT_SSLCERT, s->cert) != CURLE_OK) ||
        (s->key && curl_easy_setopt(e, CURLOPT_SSLKEY, s->key) != CURLE_OK) ||
        curl_multi_add_handle(s->multi, e) != CURLM_OK) {
        curl_slist_free_all(own);
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

void etcd_curl_remove(struct store_etcd *s, CURL **e) {
    char *own = NULL;
    if (!*e)
        return;
    curl_multi_remove_handle(s->multi, *e);
    (void)curl_easy_getinfo(*e, CURLINFO_PRIVATE, &own);
    curl_easy_cleanup(*e);
    curl_slist_free_all((struct curl_slist *)own);
    *e = NULL;
}

/* ---- sockets ---- */

static void on_poll(uv_poll_t *h, int status, int events) {
    struct etcd_poll *p = h->data;
    struct store_etcd *s = p->s;
    int flags = 0, running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    s->depth++;
    (void)curl_multi_socket_action(s->multi, p->fd, flags, &running);
    s->depth--;
    store_etcd_dispatch(s);
}

static void on_poll_closed(uv_handle_t *h) {
    struct etcd_poll *p = h->data;
    struct store_etcd *s = p->s;
    free(p);
    store_etcd_handle_closed(s);
}

static void poll_close(struct store_etcd *s, struct etcd_poll *p) {
    LIST_REMOVE(polls, &s->polls, p);
    uv_poll_stop(&p->poll);
    uv_close((uv_handle_t *)&p->poll, on_poll_closed);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp) {
    struct store_etcd *s = userp;
    struct etcd_poll *p = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (p) {
            curl_multi_assign(s->multi, fd, NULL);
            poll_close(s, p);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return -1;
        if (uv_poll_init_socket(s->head.loop, &p->poll, fd) < 0) {
            free(p);
            return -1;
        }
        s->n_handles++;
        p->poll.data = p;
        p->s = s;
        p->fd = fd;
        LIST_PREPEND(polls, &s->polls, p);
        curl_multi_assign(s->multi, fd, p);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&p->poll, events, on_poll) < 0 ? -1 : 0;
}

/* ---- curl's timer ---- */

static void on_timer(uv_timer_t *t) {
    struct store_etcd *s = t->data;
    int running;
    s->depth++;
    (void)curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    s->depth--;
    store_etcd_dispatch(s);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp) {
    struct store_etcd *s = userp;
    if (timeout_ms < 0)
        return uv_timer_stop(&s->timer) < 0 ? -1 : 0;
    return uv_timer_start(&s->timer, on_timer, (uint64_t)timeout_ms, 0) < 0 ? -1 : 0;
}

static void on_timer_closed(uv_handle_t *h) {
    store_etcd_handle_closed(h->data);
}

/* ---- life cycle ---- */

int etcd_curl_new(struct store_etcd *s) {
    int k;

    s->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (!s->headers)
        return -ENOMEM;
    /* No "Expect: 100-continue" wait for large bodies. */
    struct curl_slist *h = curl_slist_append(s->headers, "Expect:");
    if (!h)
        return -ENOMEM;
    s->headers = h;
    s->multi = curl_multi_init();
    if (!s->multi)
        return -ENOMEM;
    if (curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s) != CURLM_OK)
        return -ENOMEM;
    k = uv_timer_init(s->head.loop, &s->timer);
    if (k < 0)
        return k;
    s->timer.data = s;
    s->n_handles++;
    return 0;
}

void etcd_curl_release(struct store_etcd *s) {
    /* The cleanup closes curl's cached connections through on_curl_socket(). */
    curl_multi_cleanup(s->multi);
    s->multi = NULL;
    while (s->polls.first)
        poll_close(s, s->polls.first);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
