/* SPDX-License-Identifier: MIT */
/*
 * OCF resource agents (the Open Cluster Framework's, as Pacemaker runs them):
 * the environment of an action, the exit codes, the timeouts an agent
 * advertises in its meta-data, and that meta-data read once before the
 * component's unit is first in service (or, for one a reload adds to a running
 * unit, while that unit stays in service: ocf.joining), and the probe that follows it (the
 * monitor action, run once before anything is started, as Pacemaker does: a
 * resource a killed halod left running is adopted or stopped).  The life cycle
 * (start while ACTIVE, stop, cleanup) is the non-SA-aware one (amf-nsa.c); the
 * periodic monitor action is the external monitor (amf-monitor.c).
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "amf-internal.h"
#include "log.h"
#include "macro.h"
#include "strprintf.h"

/* What halod runs when the agent advertises nothing. */
#define OCF_DEFAULT_TIMEOUT (20 * USEC_PER_SEC)
#define OCF_DEFAULT_INTERVAL (10 * USEC_PER_SEC)
#define OCF_META_DATA_TIMEOUT (5 * USEC_PER_SEC)

static const char *const ocf_codes[][2] = {
    {"OCF_SUCCESS", "success"},
    {"OCF_ERR_GENERIC", "generic error"},
    {"OCF_ERR_ARGS", "invalid parameters"},
    {"OCF_ERR_UNIMPLEMENTED", "unimplemented action"},
    {"OCF_ERR_PERM", "insufficient privileges"},
    {"OCF_ERR_INSTALLED", "not installed: a program or file the agent needs is missing"},
    {"OCF_ERR_CONFIGURED", "not configured: the parameters are wrong"},
    {"OCF_NOT_RUNNING", "not running"},
    {"OCF_RUNNING_PROMOTED", "running promoted"},
    {"OCF_FAILED_PROMOTED", "failed promoted"},
};

char *amf_ocf_status_to_string(int status, char *buf, size_t n) {
    if (!WIFEXITED(status))
        return proc_status_to_string(status, buf, n);
    int code = WEXITSTATUS(status);
    if (code < (int)ELEMENTSOF(ocf_codes))
        snprintf(buf, n, "%s (%d: %s)", ocf_codes[code][0], code, ocf_codes[code][1]);
    else
        snprintf(buf, n, "exit code %d (not an OCF code)", code);
    return buf;
}

/* The value of attribute name in the tag starting at tag (up to its '>'), or NULL; *ret_n its length. */
static const char *xml_attr(const char *tag, const char *end, const char *name, size_t *ret_n) {
    size_t len = strlen(name);
    for (const char *p = tag; p + len + 2 < end; p++) {
        if ((p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n') || strncmp(p, name, len) != 0 || p[len] != '=')
            continue;
        char q = p[len + 1];
        if (q != '"' && q != '\'')
            continue;
        const char *v = p + len + 2, *e = memchr(v, q, (size_t)(end - v));
        if (!e)
            return NULL;
        *ret_n = (size_t)(e - v);
        return v;
    }
    return NULL;
}

/* An OCF duration: "20s", "100ms", "2m", "1h", or seconds ("20"). */
static bool ocf_duration(const char *v, size_t n, usec_t *ret) {
    char buf[32];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, v, n);
    buf[n] = '\0';
    if (n > 3 && strcmp(buf + n - 3, "min") == 0)
        buf[n - 2] = '\0'; /* "2min": "2m" */
    return parse_duration(buf, ret) >= 0;
}

void amf_ocf_meta_parse(const char *xml, struct ocf_meta *ret) {
    *ret = (struct ocf_meta){0};
    for (const char *p = xml; (p = strstr(p, "<action")); p++) {
        const char *end = strchr(p, '>');
        size_t n;
        if (!end)
            break;
        if (p[7] != ' ' && p[7] != '\t' && p[7] != '\n')
            continue; /* <actions> */
        const char *name = xml_attr(p + 7, end, "name", &n);
        usec_t *timeout = NULL;
        if (!name)
            continue;
        if (n == 5 && strncmp(name, "start", 5) == 0)
            timeout = &ret->start;
        else if (n == 4 && strncmp(name, "stop", 4) == 0)
            timeout = &ret->stop;
        else if (n == 7 && strncmp(name, "monitor", 7) == 0) {
            const char *role = xml_attr(p + 7, end, "role", &n);
            const char *iv = xml_attr(p + 7, end, "interval", &n);
            if (role || ret->monitor_timeout)
                continue; /* the first role-less monitor: the one of a resource that is not promoted */
            timeout = &ret->monitor_timeout;
            if (iv)
                (void)ocf_duration(iv, n, &ret->monitor_interval);
        } else
            continue;
        const char *t = xml_attr(p + 7, end, "timeout", &n);
        if (t)
            (void)ocf_duration(t, n, timeout);
    }
}

int amf_ocf_env(const struct config_component *cc, const char *instance, usec_t timeout, usec_t interval, char ***ret,
                size_t *ret_n) {
    size_t n = 0, max = cc->n_ocf_params + 9;
    char **env = calloc(max + 1, sizeof(char *));
    if (!env)
        return -ENOMEM;
    env[n++] = strdup("OCF_ROOT=/usr/lib/ocf");
    env[n++] = strdup("OCF_RA_VERSION_MAJOR=1");
    env[n++] = strdup("OCF_RA_VERSION_MINOR=1");
    env[n++] = strprintf("OCF_RESOURCE_INSTANCE=%s", instance);
    env[n++] = strprintf("OCF_RESOURCE_TYPE=%s", cc->ocf_type);
    env[n++] = strprintf("OCF_RESOURCE_PROVIDER=%s", cc->ocf_provider);
    env[n++] = strprintf("OCF_RESKEY_CRM_meta_timeout=%llu", (unsigned long long)(timeout / USEC_PER_MSEC));
    env[n++] = strprintf("OCF_RESKEY_CRM_meta_interval=%llu", (unsigned long long)(interval / USEC_PER_MSEC));
    env[n++] = strdup("HA_LOGTAG=halo-ocf");
    for (size_t i = 0; i < cc->n_ocf_params; i++)
        env[n++] = strprintf("OCF_RESKEY_%s=%s", cc->ocf_params[i].name, cc->ocf_params[i].value);
    return amf_env_finish(env, n, ret, ret_n);
}

int amf_ocf_run(struct comp *c, const char *action, usec_t timeout, usec_t interval, proc_exit_cb cb,
                struct proc **ret) {
    char **env;
    size_t n;
    char *argv[] = {c->cfg->command, (char *)action, NULL};
    int r = amf_ocf_env(c->cfg, c->name, timeout, interval, &env, &n);
    if (r < 0)
        return r;
    r = amf_comp_spawn_capture(c, argv, env, n, true, cb, ret);
    amf_env_free(env, n);
    if (r >= 0)
        log_debug("OCF %s of component '%s' (pid %d)", action, c->name, (int)proc_pid(*ret));
    return r;
}

/* The agent's own words on a failure, in buf: its "ERROR:" lines and its ocf-exit-reason, else its last line. */
const char *amf_ocf_reason(char *out, char *buf, size_t n) {
    const char *last = NULL;
    char *save = NULL;
    size_t k = 0;
    buf[0] = '\0';
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *e = strstr(line, "ERROR: "), *x = strstr(line, "ocf-exit-reason:");
        const char *text = e ? e + strlen("ERROR: ") : x ? x + strlen("ocf-exit-reason:") : NULL;
        if (text && k < n)
            k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "; " : "", text);
        last = line;
    }
    if (k == 0 && last)
        snprintf(buf, n, "%s", last);
    return buf;
}

char *amf_ocf_failure(struct proc *p, const char *action, int status, char *buf, size_t n) {
    char code[128], out[4096], reason[256];
    amf_ocf_status_to_string(status, code, sizeof(code));
    if (proc_output(p, out, sizeof(out), true) > 0 && *amf_ocf_reason(out, reason, sizeof(reason)))
        snprintf(buf, n, "OCF %s failed: %s: %s", action, code, reason);
    else
        snprintf(buf, n, "OCF %s failed: %s", action, code);
    return buf;
}

void amf_ocf_timeouts(struct comp *c) {
    const struct config_component *cc = c->cfg;
    c->ocf.start = cc->instantiate_given ? cc->timeouts.instantiate : c->ocf.meta[0] ?: OCF_DEFAULT_TIMEOUT;
    c->ocf.stop = cc->terminate_given ? cc->timeouts.terminate : c->ocf.meta[1] ?: OCF_DEFAULT_TIMEOUT;
    c->ocf.monitor_timeout = cc->monitor.timeout ?: c->ocf.meta[2] ?: OCF_DEFAULT_TIMEOUT;
    c->ocf.monitor_interval = cc->monitor.period ?: c->ocf.meta[3] ?: OCF_DEFAULT_INTERVAL;
}

usec_t amf_ocf_stop_timeout(const struct comp *c) {
    /* Before its meta-data is read: what amf_ocf_timeouts() will say without it. */
    return c->ocf.stop ?: c->cfg->terminate_given ? c->cfg->timeouts.terminate : OCF_DEFAULT_TIMEOUT;
}

unsigned amf_su_ocf_stop_msec(const struct su *su) {
    usec_t longest = 0;
    for (size_t i = 0; i < su->n_comps; i++) {
        const struct comp *c = &su->comps[i];
        if (!amf_comp_ocf(c))
            continue;
        longest = MAX(longest, amf_ocf_stop_timeout(c));
    }
    return (unsigned)MIN((longest + USEC_PER_MSEC - 1) / USEC_PER_MSEC, (usec_t)UINT_MAX);
}

static void meta_data_done(struct proc *p, int status, void *userdata) {
    struct comp *c = userdata;
    struct ocf_meta meta = {0};
    char *xml = malloc(64 * 1024), buf[512];

    c->ocf.prep = NULL;
    uv_timer_stop(&c->timer);
    if (status == 0 && xml && proc_output(p, xml, 64 * 1024, false) > 0)
        amf_ocf_meta_parse(xml, &meta);
    else
        log_warning("Component '%s': %s; its timeouts are halod's defaults", c->name,
                    amf_ocf_failure(p, "meta-data", status, buf, sizeof(buf)));
    free(xml);
    const struct config_component *cc = c->cfg;
    c->ocf.meta[0] = meta.start;
    c->ocf.meta[1] = meta.stop;
    c->ocf.meta[2] = meta.monitor_timeout;
    c->ocf.meta[3] = meta.monitor_interval;
    amf_ocf_timeouts(c);
    c->ocf.ready = true;
    char a[32], b[32], d[32], e[32];
    log_info("Component '%s' is OCF agent %s:%s: start %s, stop %s, monitor every %s within %s", c->name,
             cc->ocf_provider, cc->ocf_type, format_duration(a, sizeof(a), c->ocf.start),
             format_duration(b, sizeof(b), c->ocf.stop), format_duration(d, sizeof(d), c->ocf.monitor_interval),
             format_duration(e, sizeof(e), c->ocf.monitor_timeout));
    if (!c->amf->stopping)
        amf_nsa_ready(c);
    else
        amf_stop_check(c->amf);
}

/* The probe: OCF_SUCCESS (running) and OCF_NOT_RUNNING are answers, anything else a failure. */
static void probe_done(struct proc *p, int status, void *userdata) {
    struct comp *c = userdata;
    char why[640], code[128];

    c->ocf.prep = NULL;
    uv_timer_stop(&c->timer);
    bool answer = WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 7);
    log_info("The probe of component '%s' ended: %s", c->name, amf_ocf_status_to_string(status, code, sizeof(code)));
    amf_nsa_probed(c, answer && WEXITSTATUS(status) == 0,
                   answer ? NULL : amf_ocf_failure(p, "probe (monitor)", status, why, sizeof(why)));
}

static void probe(struct comp *c) {
    /* Interval 0: a probe, for the agent as for Pacemaker (ocf_is_probe). */
    int r = amf_ocf_run(c, "monitor", c->ocf.monitor_timeout, 0, probe_done, &c->ocf.prep);
    if (r < 0) {
        log_error_errno(r, "Failed to run the probe (monitor action) of component '%s': %m", c->name);
        c->ocf.prep = NULL;
        amf_nsa_probed(c, false, "could not run its OCF probe (monitor)");
        return;
    }
    log_info("Probing component '%s': is its resource running? (OCF monitor, pid %d)", c->name,
             (int)proc_pid(c->ocf.prep));
    c->presence = PRESENCE_INSTANTIATING;
    uv_timer_start(&c->timer, amf_comp_on_timer, c->ocf.monitor_timeout / 1000, 0);
}

bool amf_ocf_prepare(struct comp *c) {
    if (c->ocf.prep)
        return false;
    if (c->ocf.ready && c->ocf.probed)
        return true;
    if (c->ocf.ready) {
        probe(c);
        return false;
    }
    int r = amf_ocf_run(c, "meta-data", OCF_META_DATA_TIMEOUT, 0, meta_data_done, &c->ocf.prep);
    if (r < 0) {
        log_error_errno(r, "Failed to run the meta-data action of component '%s': %m", c->name);
        c->ocf.prep = NULL;
        c->ocf.ready = true; /* the defaults, as for an agent that cannot tell */
        c->ocf.start = c->ocf.stop = c->ocf.monitor_timeout = OCF_DEFAULT_TIMEOUT;
        c->ocf.monitor_interval = OCF_DEFAULT_INTERVAL;
        return amf_ocf_prepare(c);
    }
    /* Instantiating meanwhile: the models wait for a unit preferred for ACTIVE whose agent has not answered yet. */
    c->presence = PRESENCE_INSTANTIATING;
    uv_timer_start(&c->timer, amf_comp_on_timer, OCF_META_DATA_TIMEOUT / 1000, 0);
    return false;
}
