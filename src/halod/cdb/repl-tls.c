/* SPDX-License-Identifier: MIT */
/* Replication over TLS: GnuTLS sessions driven by the connections' libuv reads and writes, mutual certificates. */

/*
 * With --cdb-tls-cert, --cdb-tls-key and --cdb-tls-ca every replication
 * connection is TLS with certificates both ways: the primary requires a
 * client certificate, and each side verifies the other's against the CA
 * (the cluster's own CA: any certificate it signed is accepted, names are not
 * checked, as nodes are reached by address).  The HMAC handshake of
 * repl-auth.c runs inside, unchanged.
 *
 * GnuTLS never touches the socket.  Its push function copies each record
 * into a uv_write (so the write queue, which the full copy's pump watches,
 * counts ciphertext); its pull function takes from the bytes the read
 * callback buffered, and says EAGAIN when they run out.  The handshake and
 * gnutls_record_recv() are called again whenever bytes arrive; a partial
 * record simply stays in GnuTLS until the rest comes.  Nothing blocks.
 */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/halo.h"
#include "log.h"
#include "repl-internal.h"

struct repl_tls {
    gnutls_certificate_credentials_t cred;
};

struct tls_write {
    uv_write_t req;
    struct peer *peer;
    char data[];
};

void repl_tls_free(struct repl_tls *t) {
    if (!t)
        return;
    gnutls_certificate_free_credentials(t->cred);
    free(t);
}

int repl_tls_new(const char *cert, const char *key, const char *ca, struct repl_tls **ret, char *why, size_t n) {
    struct repl_tls *t = calloc(1, sizeof(*t));
    int k;
    if (!t)
        return -ENOMEM;
    if ((k = gnutls_certificate_allocate_credentials(&t->cred)) < 0) {
        free(t);
        return -ENOMEM;
    }
    k = gnutls_certificate_set_x509_trust_file(t->cred, ca, GNUTLS_X509_FMT_PEM);
    if (k <= 0) {
        snprintf(why, n, "--cdb-tls-ca %s: %s", ca, k == 0 ? "no certificate in it" : gnutls_strerror(k));
        repl_tls_free(t);
        return -EINVAL;
    }
    k = gnutls_certificate_set_x509_key_file(t->cred, cert, key, GNUTLS_X509_FMT_PEM);
    if (k < 0) {
        snprintf(why, n, "--cdb-tls-cert %s, --cdb-tls-key %s: %s", cert, key, gnutls_strerror(k));
        repl_tls_free(t);
        return -EINVAL;
    }
    *ret = t;
    return 0;
}

/* ---- transport: GnuTLS's records to and from the libuv stream ---- */

static void on_tls_written(uv_write_t *req, int status) {
    struct tls_write *w = (struct tls_write *)req;
    struct peer *p = w->peer;
    free(w);
    repl_conn_written(p, status);
}

static ssize_t tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len) {
    struct peer *p = ptr;
    struct tls_write *w = malloc(sizeof(*w) + len);
    if (!w) {
        gnutls_transport_set_errno(p->tls, ENOMEM);
        return -1;
    }
    w->peer = p;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_tls_written) < 0) {
        free(w);
        gnutls_transport_set_errno(p->tls, EIO);
        return -1;
    }
    return (ssize_t)len;
}

static ssize_t tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len) {
    struct peer *p = ptr;
    size_t have = p->tls_in.len - p->tls_in.off;
    if (have == 0) {
        gnutls_transport_set_errno(p->tls, EAGAIN);
        return -1;
    }
    size_t k = MIN(have, len);
    memcpy(data, p->tls_in.data + p->tls_in.off, k);
    p->tls_in.off += k;
    if (p->tls_in.off == p->tls_in.len)
        p->tls_in.off = p->tls_in.len = 0;
    return (ssize_t)k;
}

int repl_tls_start(struct peer *p) {
    bool client = p->role == PEER_UP;
    int k = gnutls_init(&p->tls, (client ? GNUTLS_CLIENT : GNUTLS_SERVER) | GNUTLS_NONBLOCK | GNUTLS_NO_TICKETS);
    if (k < 0) {
        p->tls = NULL;
        return -ENOMEM;
    }
    if (gnutls_set_default_priority(p->tls) < 0 ||
        gnutls_credentials_set(p->tls, GNUTLS_CRD_CERTIFICATE, p->r->hub->tls->cred) < 0)
        return -ENOMEM;
    if (!client)
        gnutls_certificate_server_set_request(p->tls, GNUTLS_CERT_REQUIRE);
    /* The chain against the CA, during the handshake; no name (nodes are reached by address). */
    gnutls_session_set_verify_cert(p->tls, NULL, 0);
    gnutls_transport_set_ptr(p->tls, p);
    gnutls_transport_set_push_function(p->tls, tls_push);
    gnutls_transport_set_pull_function(p->tls, tls_pull);
    if (client) {
        k = gnutls_handshake(p->tls); /* sends the ClientHello */
        if (k < 0 && k != GNUTLS_E_AGAIN && k != GNUTLS_E_INTERRUPTED)
            return -EIO;
    }
    return 0;
}

void repl_tls_done(struct peer *p) {
    if (p->tls)
        gnutls_deinit(p->tls);
    p->tls = NULL;
    free(p->tls_in.data);
    p->tls_in.data = NULL;
    p->tls_in.len = p->tls_in.off = p->tls_in.cap = 0;
}

/* Why the handshake failed, for the log and the other side's owner. */
static void handshake_failed(struct peer *p, int k) {
    char why[512];
    if (k == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t text = {0};
        unsigned status = gnutls_session_get_verify_cert_status(p->tls);
        (void)gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0);
        size_t n = text.data ? strlen((char *)text.data) : 0;
        while (n > 0 && text.data[n - 1] == ' ')
            n--;
        snprintf(why, sizeof(why), "TLS: its certificate is refused: %.*s (check --cdb-tls-ca)", (int)n,
                 text.data ? (char *)text.data : "");
        gnutls_free(text.data);
    } else if (k == GNUTLS_E_FATAL_ALERT_RECEIVED)
        snprintf(why, sizeof(why),
                 "TLS handshake failed: it says '%s' (do both nodes' certificates come from "
                 "the CA of --cdb-tls-ca?)",
                 gnutls_alert_get_name(gnutls_alert_get(p->tls)) ?: "?");
    else
        snprintf(why, sizeof(why), "TLS handshake failed: %s%s", gnutls_strerror(k),
                 k == GNUTLS_E_PREMATURE_TERMINATION || k == GNUTLS_E_UNEXPECTED_PACKET_LENGTH ||
                         k == GNUTLS_E_UNEXPECTED_PACKET
                     ? " (does the other node have --cdb-tls-cert, --cdb-tls-key and --cdb-tls-ca?)"
                     : "");
    if (p->role == PEER_DOWN)
        log_warning("CDB replication connection from %s: %s", p->addr, why);
    /* An alert tells the other side why (written at once: the socket is idle). */
    (void)gnutls_alert_send_appropriate(p->tls, k);
    repl_conn_close(p, -EPROTO, why);
}

int repl_tls_send(struct peer *p, const uint8_t *data, size_t len) {
    if (!p->tls_ready)
        return -ENOTCONN;
    for (unsigned tries = 0; len > 0;) {
        ssize_t k = gnutls_record_send(p->tls, data, len);
        if ((k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) && ++tries < 8)
            continue; /* the push never says EAGAIN; an interrupted one goes again */
        if (k < 0)
            return -EIO;
        data += k;
        len -= (size_t)k;
    }
    return 0;
}

void repl_tls_feed(struct peer *p, const uint8_t *data, size_t n) {
    static uint8_t plain[65536]; /* one loop thread: consumed before the next read */
    struct peer_tls_in *in = &p->tls_in;

    if (in->len + n > in->cap) {
        size_t cap = MAX(in->cap * 2, in->len + n);
        uint8_t *d = realloc(in->data, cap);
        if (!d) {
            repl_conn_close(p, -ENOMEM, "out of memory");
            return;
        }
        in->data = d;
        in->cap = cap;
    }
    memcpy(in->data + in->len, data, n);
    in->len += n;

    if (!p->tls_ready) {
        int k = gnutls_handshake(p->tls);
        if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
            return;
        if (k < 0) {
            handshake_failed(p, k);
            return;
        }
        p->tls_ready = true;
        if (p->role == PEER_UP && repl_auth_send_hello(p) < 0) {
            repl_conn_close(p, -HALO_ECONNECT, "cannot use the connection");
            return;
        }
    }
    for (unsigned warnings = 0; p->phase != PHASE_CLOSING;) {
        ssize_t k = gnutls_record_recv(p->tls, plain, sizeof(plain));
        if (k > 0)
            repl_conn_feed(p, plain, (size_t)k);
        else if (k == 0) {
            repl_conn_close(p, -HALO_ECLOSED, "it closed the connection");
            return;
        } else if (k == GNUTLS_E_AGAIN)
            return;
        else if ((k == GNUTLS_E_INTERRUPTED || !gnutls_error_is_fatal((int)k)) && ++warnings < 8)
            continue; /* a warning alert, or a TLS 1.3 key update */
        else {
            char why[256];
            if (k == GNUTLS_E_FATAL_ALERT_RECEIVED && p->role == PEER_UP && !p->authed)
                /* TLS 1.3: the client's handshake is over before the server has checked its certificate. */
                snprintf(why, sizeof(why), "it refused the TLS session ('%s'): %s",
                         gnutls_alert_get_name(gnutls_alert_get(p->tls)) ?: "?", REPL_TLS_CERT_HINT);
            else
                snprintf(why, sizeof(why), "TLS: %s", gnutls_strerror((int)k));
            repl_conn_close(p, -EPROTO, why);
            return;
        }
    }
}
