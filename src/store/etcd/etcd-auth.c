/* SPDX-License-Identifier: MIT */
/* The etcd backend's user/password authentication: the token of /v3/auth/authenticate, and getting a new one. */

/*
 * An etcd with authentication on wants a token in the Authorization header
 * of its key-value, watch and lease grant/revoke calls.  POST
 * /v3/auth/authenticate {name, password} gives one; it ends (a "simple"
 * token --auth-token-ttl after its last use, a JWT at its expiry, every token
 * when the member restarts), and etcd then answers "invalid auth token".
 *
 * One authentication is in flight at a time.  A request that wants the token
 * while there is none is parked (no transfer, etcd-request.c and
 * etcd-watch.c) and sent when the token comes; if authentication fails, the
 * parked requests end with the error and the watches try again later.  A
 * request refused for its token has it dropped and goes again once, after a
 * new authentication (etcd_auth_refused()).
 *
 * Lease keepalives carry no token (etcd 3.4 does not check it there, and a
 * renewal must never wait for an authentication); neither do the members'
 * status calls.
 */

#include <stdlib.h>
#include <string.h>

#include "etcd-internal.h"
#include "log.h"
#include "macro.h"

bool etcd_auth_wanted(const struct store_etcd *s, const char *path) {
    return s->user && strcmp(path, "/v3/lease/keepalive") != 0 && strncmp(path, "/v3/maintenance/", 16) != 0 &&
           strncmp(path, "/v3/auth/", 9) != 0;
}

bool etcd_auth_ready(const struct store_etcd *s) {
    return !s->user || (s->token && !s->auth_easy);
}

static void auth_finish(struct store_etcd *s, int error) {
    etcd_request_auth_done(s, error);
    etcd_watch_auth_done(s, error);
}

static int auth_send(struct store_etcd *s) {
    _cleanup_free_ char *body = NULL;
    json_t *j = json_pack("{s:s, s:s}", "name", s->user, "password", s->password);

    if (j)
        body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!body)
        return -ENOMEM;
    s->auth_endpoint = s->endpoint;
    s->auth_easy = etcd_curl_post(s, s->endpoints[s->auth_endpoint], "/v3/auth/authenticate", body, &s->auth_resp,
                                  STORE_ETCD_AUTH_TIMEOUT_MSEC);
    explicit_bzero(body, strlen(body));
    if (!s->auth_easy)
        return -ENOMEM;
    s->auth_attempts++;
    return 0;
}

int etcd_auth_start(struct store_etcd *s) {
    if (!s->user || s->auth_easy || s->freeing)
        return 0;
    s->auth_attempts = 0;
    return auth_send(s);
}

void etcd_auth_refused(struct store_etcd *s, unsigned token_gen) {
    if (token_gen == s->token_gen && !s->auth_easy) {
        free(s->token);
        s->token = NULL;
        log_debug("etcd: the token for '%s' was refused: authenticating again", s->user);
    }
}

bool etcd_auth_token_refused(int64_t code, const char *message) {
    if (code == 16)
        return true; /* UNAUTHENTICATED: "invalid auth token" */
    return message && (strstr(message, "invalid auth token") || strstr(message, "auth store is old") ||
                       strstr(message, "user name is empty"));
}

/* Says once (until an authentication succeeds) why etcd refused the user. */
static void log_refused(struct store_etcd *s, const char *why) {
    if (s->auth_logged)
        return;
    s->auth_logged = true;
    log_error("etcd at %s: authentication as '%s' failed: %s (check --etcd-user and --etcd-password-file)",
              s->endpoints[s->auth_endpoint], s->user, why);
}

bool etcd_auth_transfer_done(struct store_etcd *s, CURL *e, CURLcode cc) {
    long status = 0;
    int error = 0;

    if (!s->auth_easy || s->auth_easy != e)
        return false;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    etcd_curl_remove(s, &s->auth_easy);
    json_t *j =
        cc == CURLE_OK ? json_loadb(s->auth_resp.data ? s->auth_resp.data : "", s->auth_resp.len, 0, NULL) : NULL;
    etcd_buf_done(&s->auth_resp);
    const char *token = json_string_value(json_object_get(j, "token"));
    const char *message = json_string_value(json_object_get(j, "error"));

    if (cc != CURLE_OK || (status != 200 && etcd_json_errno(j) == -EAGAIN)) {
        /* Not answered, or "unavailable" (no leader): the next endpoint. */
        error = etcd_request_failed(s, s->auth_endpoint, cc);
        if (error == -EAGAIN && s->auth_attempts < 2 * s->n_endpoints && auth_send(s) >= 0) {
            json_decref(j);
            return true; /* the next endpoint */
        }
        if (error == -EAGAIN)
            error = -EIO;
    } else if (status == 200 && token && *token) {
        char *t = strdup(token);
        if (!t)
            error = -ENOMEM;
        else {
            free(s->token);
            s->token = t;
            s->token_gen++;
            if (s->auth_logged)
                log_info("etcd at %s: authenticated as '%s'", s->endpoints[s->auth_endpoint], s->user);
            s->auth_logged = false;
        }
    } else if (message && strstr(message, "authentication is not enabled")) {
        /* No token to send: requests go without one (and authenticate if
         * etcd turns authentication on later: "user name is empty"). */
        free(s->token);
        s->token = strdup("");
        s->token_gen++;
        error = s->token ? 0 : -ENOMEM;
        if (!s->auth_off_logged)
            log_warning("etcd at %s has authentication off: --etcd-user '%s' is not needed",
                        s->endpoints[s->auth_endpoint], s->user);
        s->auth_off_logged = true;
    } else {
        log_refused(s, message ? message : "no token in the answer");
        error = -EACCES;
    }
    json_decref(j);
    auth_finish(s, error);
    return true;
}

void etcd_auth_release(struct store_etcd *s) {
    etcd_curl_remove(s, &s->auth_easy);
    etcd_buf_done(&s->auth_resp);
}

void etcd_auth_free(struct store_etcd *s) {
    free(s->user);
    if (s->password)
        explicit_bzero(s->password, strlen(s->password));
    free(s->password);
    free(s->token);
}
