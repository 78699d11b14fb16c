/* SPDX-License-Identifier: MIT */
/*
 * A component for the integration tests: it logs every callback it gets to
 * $TESTCOMP_LOG ("<comp> <EVENT> ..." one line each, one write(2) each) and
 * misbehaves on request.  $TESTCOMP holds comma-separated modes:
 *   refuse-active       answer CSI set ACTIVE with -EIO
 *   error-report        200 ms after becoming ACTIVE, report an error
 *   segv-on-active      200 ms after becoming ACTIVE, write through a NULL pointer (SIGSEGV)
 *   proxy               act as the proxy of proxied components: on the proxied-instantiate
 *                       callback register the component ("PROXIED_INSTANTIATE <result>"),
 *                       answer its CSI sets, removes and terminate, log its cleanup
 *                       ("PROXIED_CLEANUP"); each of these lines starts with the proxied
 *                       component's name, not the proxy's
 *   proxied-error-report  (with proxy) 200 ms after a proxied component became ACTIVE,
 *                       report an error of it
 *   proxied-unregister  (with proxy) likewise, but unregister it
 *   once                (with proxied-error-report or proxied-unregister) only the first time
 *   proxy-no-register   (with proxy) answer the instantiate without registering the component
 *   amf-hc              start an AMF-invoked health check (key "amf"), answered at once
 *                       (every health check halod asks for is answered and logged: "HC <key>")
 *   report=RECOVERY     when the file $TESTCOMP_LOG.<comp>.report appears, remove it and report an
 *                       error recommending RECOVERY (none, component-restart, component-failover,
 *                       node-switchover, node-failover, node-failfast); "ERROR_REPORT <r>"
 *   component-hc        run a component-invoked health check, confirming every
 *                       100 ms while the file $TESTCOMP_LOG.<comp>.stop-confirm is absent
 *   track=CSI           track CSI's protection group (current and changes)
 *   state-get           after each CSI set, log halo_ha_state_get()'s answer
 *   ignore-terminate    log the terminate callback but neither answer nor exit
 *   object-states       log every object state the broadcast queue delivers
 *                       ("OBJ <object> <state> <seq>"); and when the file
 *                       $TESTCOMP_LOG.<comp>.query holds object names (one per
 *                       line), ask halod for them once and log "QUERY <object> <state> <seq> <hlc>"
 *   interest=RULES      with object-states: before registering, ask only for the notes
 *                       RULES match ('+'-separated: all, group, pool, object:OBJ, prefix:P;
 *                       "none" for no rule); "INTEREST <result>".  Each callback then logs
 *                       "NOTES <n>" before its states (one line per wake-up)
 *   evt-sub=CHANNEL     after registering, open the node-local event channel CHANNEL and
 *                       subscribe to everything ("EVT_SUB <result>"); log each event's
 *                       payload ("EVT <payload>")
 *   stall-states        with object-states: while the file $TESTCOMP_LOG.<comp>.stall
 *                       exists, stay in the object-states callback (a process that
 *                       stops reading its link for a while)
 *   entrypoint          after registering, log halo_entrypoint()'s answer once there is a
 *                       coordinator ("ENTRYPOINT <json>"), retrying as it says; not while
 *                       the file $TESTCOMP_LOG.<comp>.entrypoint-hold exists (a process
 *                       that asked a halod that died since, and will not ask again)
 *   recovery            (with entrypoint) log the recovery notes ("RECOVERY <state> <epoch>
 *                       <nr_failures> <reason>", then "FV <object> <state> <seq>" for each
 *                       event of the vector); once the vector is complete (and the file
 *                       $TESTCOMP_LOG.<comp>.start-hold is absent) report STARTING,
 *                       then RECOVERED as soon as the file $TESTCOMP_LOG.<comp>.hold is
 *                       absent, or RECOVERY_FAILED if $TESTCOMP_LOG.<comp>.fail exists, and
 *                       then STARTING again once that file is gone (a new attempt)
 *                       ("PROCESS_EVENT <event> <result>" each)
 *                       The last "recover" note's participants are logged ("PARTICIPANT
 *                       <object> <name> <node> <state>" each).  After an "aborted" note, a
 *                       RECOVERED that halod refuses (or none pending) makes it report
 *                       STARTING again every second until halod takes it
 *   ask-again           (with recovery) after a "refused" note, ask for the entrypoint
 *                       again 1 s later, as a component should
 *   participant         (with object-states) when told another process is RECOVERING,
 *                       report having served it (halo_recovery_participant_done() with
 *                       the seq it was told) as soon as the file $TESTCOMP_LOG.<comp>.serve-hold
 *                       is absent, each RECOVERING in the order told ("DONE <object> <seq> <result>")
 *   lifecycle           right after registering (before the entrypoint), report every
 *                       process event once and log "LIFECYCLE <event> <result>" for each:
 *                       what halod accepts depends on where the process is
 *   intervals           log when this process holds an ACTIVE assignment, for an external
 *                       checker (test/chaos): "ACTIVE <ns> <pid> <csi>" before answering the
 *                       CSI set ACTIVE, "END <ns> <pid> <why> <csi>" before answering whatever
 *                       ends it (STANDBY, QUIESCED, the QUIESCING completion, a removal,
 *                       terminate, exit; one line per CSI it held), <ns> on CLOCK_MONOTONIC,
 *                       one O_APPEND write(2) each, to
 *                       $TESTCOMP_LOG.<comp>.intervals.  With $TESTCOMP_WATCH (a Unix stream
 *                       socket's path) it first connects there and sends "<comp> <pid>\n", and
 *                       keeps the connection open: the checker sees its end when the process
 *                       dies, SIGKILL included.
 *   quiesce-hold        complete a QUIESCING only once the file $TESTCOMP_LOG.<comp>.quiesce-hold
 *                       is absent (logs "QUIESCING_COMPLETE" then)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "halo/events.h"
#include "halo/halo.h"

static int log_fd = -1;
static const char *me;
static char stop_file[4096];
static bool refuse_active, error_report, component_hc, state_get, ignore_terminate, terminated, object_states;
static char query_file[4096], stall_file[4096], hold_file[4096], fail_file[4096];
static bool recovery, lifecycle;
/* 1: the vector is complete, report STARTING; 2: then RECOVERED; 3: failed, STARTING again once allowed;
 * 4: aborted, STARTING again every second until taken */
static int recovery_step;
static bool aborted;
static long long restart_at; /* step 4: ms */
static bool participant;
static halo_recovery report_recovery; /* report=: 0 when not asked */
static char report_file[4096];
static char serve_hold_file[4096], start_hold_file[4096], entrypoint_hold_file[4096];
static struct {
    char object[HALO_OBJECT_MAX];
    uint64_t seq;
} served[32]; /* participant: RECOVERING states told, not reported yet */
static size_t n_served;
static bool stall_states;
static bool entrypoint;
static bool ask_again;          /* a refused recovery asks for the entrypoint again (as api.md says to) */
static long long ask_again_at;  /* ms, 0 = not now */
static long long entrypoint_at; /* ms, 0 = done */
static const char *track;
static long long report_at; /* ms, 0 = none */
static bool proxied_error_report, proxied_unregister, proxy_no_register, report_once;
static const char *self;      /* this process's component (me changes while speaking for a proxied one) */
static char report_comp[256]; /* the component the error report is for; "" = this one */
static bool segv_on_active, proxy;
static long long segv_at;      /* ms, 0 = none */
static int *volatile null_ptr; /* volatile: the compiler cannot know it is NULL and make the store a trap */
static int intervals_fd = -1;  /* intervals: the log, and the CSIs whose ACTIVE line has no END yet */
static char held_csis[16][256];
static bool amf_hc;
static bool quiesce_hold;
static char quiesce_hold_file[4096];
static halo_invocation quiescing; /* quiesce-hold: the QUIESCING not completed yet (0: none) */

/* A store through NULL, the fault a crash test wants (SIGSEGV at 0x0).  Not checked by
 * UndefinedBehaviorSanitizer: under the sanitizer build its null check would report the store
 * first and, with UBSAN_OPTIONS=halt_on_error=1 (test/run-all), end the process with status 1
 * before any signal, and there would be no crash to capture. */
__attribute__((no_sanitize("undefined"))) static void segv_now(void) {
    *null_ptr = 1;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(const char *fmt, ...) {
    char line[2048];
    int n = snprintf(line, sizeof(line), "%s ", me);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    if (log_fd >= 0)
        (void)!write(log_fd, line, (size_t)n);
}

static void interval_line(const char *kind, const char *what, const char *csi) {
    struct timespec ts;
    char line[512];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    int n = snprintf(line, sizeof(line), "%s %lld %d %s%s%s\n", kind, (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
                     (int)getpid(), what, csi ? " " : "", csi ?: "");
    if (n > 0 && n < (int)sizeof(line))
        (void)!write(intervals_fd, line, (size_t)n);
}

/* intervals: one line per change of "this process holds csi ACTIVE", written before halod hears
 * of it; an end with no csi ends every CSI held. */
static void interval(bool active, const char *csi, const char *what) {
    if (intervals_fd < 0)
        return;
    for (size_t i = 0; i < sizeof(held_csis) / sizeof(held_csis[0]); i++) {
        if (!held_csis[i][0] || (csi && strcmp(held_csis[i], csi) != 0))
            continue;
        if (active)
            return; /* held already */
        interval_line("END", what, held_csis[i]);
        held_csis[i][0] = '\0';
    }
    if (!active || !csi)
        return;
    for (size_t i = 0; i < sizeof(held_csis) / sizeof(held_csis[0]); i++)
        if (!held_csis[i][0]) {
            snprintf(held_csis[i], sizeof(held_csis[i]), "%s", csi);
            interval_line("ACTIVE", csi, NULL);
            return;
        }
}

/* intervals: a connection to the checker's watcher, held open until this process ends. */
static void watch_connect(const char *path) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char hello[512];

    if (strlen(path) >= sizeof(sa.sun_path))
        return;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    int n = snprintf(hello, sizeof(hello), "%s %d\n", me, (int)getpid());
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || n <= 0 || n >= (int)sizeof(hello) ||
        write(fd, hello, (size_t)n) != n) {
        fprintf(stderr, "testcomp: cannot reach the watcher at %s\n", path);
        close(fd);
    } /* else: deliberately left open */
}

static void csi_set(halo *h, halo_invocation inv, halo_ha_state state, const halo_csi_descriptor *csi);

/* proxy: the lines of a callback for a proxied component start with its name. */
static const char *speak_for(const char *comp) {
    const char *was = me;
    if (comp && strcmp(comp, me) != 0)
        me = comp;
    return was;
}

static void on_proxied_instantiate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    const char *was = speak_for(comp);
    int r = proxy_no_register ? 0 : halo_register(h, comp, was);
    logf_("PROXIED_INSTANTIATE %d", r);
    me = was;
    halo_response(h, inv, r);
}

static void on_proxied_cleanup(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    const char *was = speak_for(comp);
    logf_("PROXIED_CLEANUP");
    me = was;
    halo_response(h, inv, 0);
}

static void on_csi_set(halo *h, halo_invocation inv, const char *comp, halo_ha_state state,
                       const halo_csi_descriptor *csi, void *userdata) {
    const char *was = speak_for(comp);
    csi_set(h, inv, state, csi);
    me = was;
}

static void csi_set(halo *h, halo_invocation inv, halo_ha_state state, const halo_csi_descriptor *csi) {
    /* The attributes follow as NAME=VALUE words (the reload tests read them). */
    char values[512] = "";
    for (size_t i = 0, n = 0; i < csi->n_attrs && n < sizeof(values); i++)
        n += (size_t)snprintf(values + n, sizeof(values) - n, " %s=%s", csi->attrs[i].name, csi->attrs[i].value);
    logf_("CSI_SET %s %s transition=%d active_comp=%s attrs=%zu%s", csi->csi_name ?: "-",
          halo_ha_state_to_string(state), (int)csi->transition, csi->active_comp ?: "-", csi->n_attrs, values);
    if (state == HALO_HA_QUIESCING) {
        if (quiesce_hold) {
            halo_response(h, inv, 0); /* answered; complete once allowed (main loop) */
            quiescing = inv;
            return;
        }
        interval(false, csi->csi_name, "QUIESCING-done");
        halo_quiescing_complete(h, inv, 0);
        return;
    }
    int r = state == HALO_HA_ACTIVE && refuse_active ? -EIO : 0;
    if (state == HALO_HA_ACTIVE && r == 0)
        interval(true, csi->csi_name ?: "-", NULL);
    else if (state != HALO_HA_ACTIVE)
        interval(false, csi->csi_name, halo_ha_state_to_string(state));
    halo_response(h, inv, r);
    if (state == HALO_HA_ACTIVE && error_report && r == 0)
        report_at = now_ms() + 200;
    if (state == HALO_HA_ACTIVE && (proxied_error_report || proxied_unregister) && r == 0 && me != self) {
        snprintf(report_comp, sizeof(report_comp), "%s", me);
        report_at = now_ms() + 200;
    }
    if (state == HALO_HA_ACTIVE && segv_on_active && r == 0)
        segv_at = now_ms() + 200;
    if (state_get && csi->csi_name) {
        halo_ha_state s = 0;
        r = halo_ha_state_get(h, NULL, csi->csi_name, &s);
        logf_("STATE_GET %s %s %d", csi->csi_name, r == 0 ? halo_ha_state_to_string(s) : "-", r);
    }
}

static void on_csi_remove(halo *h, halo_invocation inv, const char *comp, const char *csi, unsigned flags,
                          void *userdata) {
    const char *was = speak_for(comp);
    logf_("CSI_REMOVE %s", csi ?: "-");
    me = was;
    interval(false, csi, "REMOVE");
    halo_response(h, inv, 0);
}

static void on_terminate(halo *h, halo_invocation inv, const char *comp, void *userdata) {
    if (comp && strcmp(comp, me) != 0) { /* proxy: a proxied component's, which has nothing to stop */
        const char *was = speak_for(comp);
        logf_("TERMINATE");
        me = was;
        halo_response(h, inv, 0);
        return;
    }
    logf_("TERMINATE");
    if (ignore_terminate)
        return;
    interval(false, NULL, "TERMINATE");
    halo_response(h, inv, 0);
    terminated = true;
}

static void on_healthcheck(halo *h, halo_invocation inv, const char *comp, const char *key, void *userdata) {
    logf_("HC %s", key ?: "-");
    halo_response(h, inv, 0);
}

static void on_pg(halo *h, const char *csi, const halo_pg_member *m, size_t n, int error, void *userdata) {
    char buf[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(buf) - 100; i++)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, " %s:%s:%d", m[i].comp_name,
                                halo_ha_state_to_string(m[i].ha_state), (int)m[i].change);
    logf_("PG %s n=%zu error=%d%s", csi, n, error, buf);
}

static const char *interest, *evt_channel;

static void on_evt(halo *h, const halo_evt_event *ev, void *userdata) {
    logf_("EVT %.*s", (int)ev->payload_len, (const char *)ev->payload);
}

/* interest=RULES: "all", "group", "pool", "object:OBJ", "prefix:P", '+'-separated; "none": no rule. */
static int set_interest(halo *h, const char *spec) {
    halo_interest_rule rules[HALO_INTEREST_RULES_MAX + 2];
    size_t n = 0;
    char *copy = strdup(spec);
    for (char *save = NULL, *t = strtok_r(copy, "+", &save); t && n < sizeof(rules) / sizeof(rules[0]);
         t = strtok_r(NULL, "+", &save)) {
        if (strcmp(t, "none") == 0)
            continue;
        rules[n].value = NULL;
        if (strcmp(t, "all") == 0)
            rules[n].kind = HALO_INTEREST_ALL;
        else if (strcmp(t, "group") == 0)
            rules[n].kind = HALO_INTEREST_GROUP;
        else if (strcmp(t, "pool") == 0)
            rules[n].kind = HALO_INTEREST_POOL;
        else if (strncmp(t, "object:", 7) == 0) {
            rules[n].kind = HALO_INTEREST_OBJECT;
            rules[n].value = t + 7;
        } else if (strncmp(t, "prefix:", 7) == 0) {
            rules[n].kind = HALO_INTEREST_PREFIX;
            rules[n].value = t + 7;
        } else
            rules[n].kind = (halo_interest_kind)99; /* a bad rule: the call must refuse it */
        n++;
    }
    int r = halo_object_interest(h, rules, n);
    free(copy);
    return r;
}

static void on_object_states(halo *h, const halo_object_state *st, size_t n, void *userdata) {
    while (stall_states && access(stall_file, F_OK) == 0)
        usleep(20000);
    char mine[HALO_OBJECT_MAX];
    snprintf(mine, sizeof(mine), "process:%s", me);
    if (interest)
        logf_("NOTES %zu", n);
    for (size_t i = 0; i < n; i++) {
        logf_("OBJ %s %s %llu", st[i].object, st[i].state, (unsigned long long)st[i].seq);
        if (participant && strcmp(st[i].state, "RECOVERING") == 0 && strcmp(st[i].object, mine) != 0 &&
            n_served < sizeof(served) / sizeof(served[0])) {
            snprintf(served[n_served].object, sizeof(served[n_served].object), "%s", st[i].object);
            served[n_served++].seq = st[i].seq;
        }
    }
}

/* participant: report each RECOVERING served, once allowed. */
static void serve(halo *h) {
    if (!n_served || access(serve_hold_file, F_OK) == 0)
        return;
    for (size_t i = 0; i < n_served; i++)
        logf_("DONE %s %llu %d", served[i].object, (unsigned long long)served[i].seq,
              halo_recovery_participant_done(h, served[i].object, served[i].seq));
    n_served = 0;
}

static void run_query(halo *h) {
    FILE *f = fopen(query_file, "re");
    if (!f)
        return;
    char lines[16][300];
    const char *names[16];
    size_t n = 0;
    while (n < 16 && fgets(lines[n], sizeof(lines[n]), f)) {
        lines[n][strcspn(lines[n], "\n")] = 0;
        if (*lines[n]) {
            names[n] = lines[n];
            n++;
        }
    }
    fclose(f);
    unlink(query_file);
    halo_object_state st[16];
    int r = n ? halo_object_state_get(h, names, n, st) : -EINVAL;
    if (r < 0)
        logf_("QUERY_FAILED %d", r);
    for (size_t i = 0; r == 0 && i < n; i++)
        logf_("QUERY %s %s %llu %llu", st[i].object, *st[i].state ? st[i].state : "-", (unsigned long long)st[i].seq,
              (unsigned long long)st[i].hlc);
}

static void on_recovery(halo *h, const halo_recovery_note *n, void *userdata) {
    logf_("RECOVERY %s %llu %llu %s", n->state, (unsigned long long)n->epoch, (unsigned long long)n->nr_failures,
          *n->reason ? n->reason : "-");
    for (size_t i = 0; i < n->n_events; i++)
        logf_("FV %s %s %llu", n->events[i].object, n->events[i].state, (unsigned long long)n->events[i].seq);
    for (size_t i = 0; i < n->n_participants; i++)
        logf_("PARTICIPANT %s %s %s %s", n->participants[i].object, n->participants[i].name, n->participants[i].node,
              n->participants[i].state);
    if (n->last && strcmp(n->state, "recover") == 0)
        recovery_step = 1;
    if (strcmp(n->state, "aborted") == 0) {
        aborted = true;
        if (recovery_step != 2) { /* no RECOVERED pending: start again */
            recovery_step = 4;
            restart_at = now_ms();
        }
    }
    if (ask_again && strcmp(n->state, "refused") == 0)
        ask_again_at = now_ms() + 1000;
}

static void recovery_run(halo *h) {
    if (recovery_step == 1 && access(start_hold_file, F_OK) != 0) {
        int r = halo_process_event(h, HALO_PROCESS_STARTING, NULL);
        logf_("PROCESS_EVENT STARTING %d", r);
        recovery_step = r == 0 ? 2 : 0;
    } else if (recovery_step == 2 && access(hold_file, F_OK) != 0) {
        bool fail = access(fail_file, F_OK) == 0;
        int r = halo_process_event(h, fail ? HALO_PROCESS_RECOVERY_FAILED : HALO_PROCESS_RECOVERED,
                                   fail ? "testcomp was told to fail" : NULL);
        logf_("PROCESS_EVENT %s %d", fail ? "RECOVERY_FAILED" : "RECOVERED", r);
        recovery_step = fail && r == 0 ? 3 : 0;
        if (r < 0 && aborted) {
            recovery_step = 4;
            restart_at = now_ms() + 1000;
        }
    } else if (recovery_step == 3 && access(fail_file, F_OK) != 0)
        recovery_step = 1;
    else if (recovery_step == 4 && now_ms() >= restart_at && access(fail_file, F_OK) != 0) {
        int r = halo_process_event(h, HALO_PROCESS_STARTING, NULL);
        logf_("PROCESS_EVENT STARTING %d", r);
        aborted = r < 0;
        recovery_step = r == 0 ? 2 : 4;
        restart_at = now_ms() + 1000;
    }
}

int main(void) {
    me = self = getenv("HALO_COMPONENT") ?: "?";
    const char *path = getenv("TESTCOMP_LOG");
    if (path) {
        log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        snprintf(stop_file, sizeof(stop_file), "%s.%s.stop-confirm", path, me);
        snprintf(query_file, sizeof(query_file), "%s.%s.query", path, me);
        snprintf(stall_file, sizeof(stall_file), "%s.%s.stall", path, me);
        snprintf(hold_file, sizeof(hold_file), "%s.%s.hold", path, me);
        snprintf(start_hold_file, sizeof(start_hold_file), "%s.%s.start-hold", path, me);
        snprintf(entrypoint_hold_file, sizeof(entrypoint_hold_file), "%s.%s.entrypoint-hold", path, me);
        snprintf(fail_file, sizeof(fail_file), "%s.%s.fail", path, me);
        snprintf(serve_hold_file, sizeof(serve_hold_file), "%s.%s.serve-hold", path, me);
        snprintf(quiesce_hold_file, sizeof(quiesce_hold_file), "%s.%s.quiesce-hold", path, me);
    }
    char *modes = strdup(getenv("TESTCOMP") ?: "");
    for (char *save = NULL, *t = strtok_r(modes, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "refuse-active") == 0)
            refuse_active = true;
        else if (strcmp(t, "error-report") == 0)
            error_report = true;
        else if (strcmp(t, "segv-on-active") == 0)
            segv_on_active = true;
        else if (strcmp(t, "proxy") == 0)
            proxy = true;
        else if (strcmp(t, "proxied-error-report") == 0)
            proxied_error_report = true;
        else if (strcmp(t, "proxied-unregister") == 0)
            proxied_unregister = true;
        else if (strcmp(t, "once") == 0)
            report_once = true;
        else if (strcmp(t, "proxy-no-register") == 0)
            proxy_no_register = true;
        else if (strcmp(t, "amf-hc") == 0)
            amf_hc = true;
        else if (strcmp(t, "component-hc") == 0)
            component_hc = true;
        else if (strcmp(t, "state-get") == 0)
            state_get = true;
        else if (strcmp(t, "ignore-terminate") == 0)
            ignore_terminate = true;
        else if (strcmp(t, "object-states") == 0)
            object_states = true;
        else if (strcmp(t, "entrypoint") == 0)
            entrypoint = true;
        else if (strcmp(t, "ask-again") == 0)
            ask_again = true;
        else if (strcmp(t, "stall-states") == 0)
            stall_states = true;
        else if (strcmp(t, "recovery") == 0)
            recovery = true;
        else if (strcmp(t, "lifecycle") == 0)
            lifecycle = true;
        else if (strcmp(t, "participant") == 0)
            participant = true;
        else if (strcmp(t, "quiesce-hold") == 0)
            quiesce_hold = true;
        else if (strcmp(t, "intervals") == 0 && path) {
            char ipath[4096];
            snprintf(ipath, sizeof(ipath), "%s.%s.intervals", path, me);
            intervals_fd = open(ipath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
            if (getenv("TESTCOMP_WATCH"))
                watch_connect(getenv("TESTCOMP_WATCH"));
        } else if (strncmp(t, "interest=", 9) == 0)
            interest = t + 9;
        else if (strncmp(t, "evt-sub=", 8) == 0)
            evt_channel = t + 8;
        else if (strncmp(t, "track=", 6) == 0)
            track = t + 6;
        else if (strncmp(t, "report=", 7) == 0 && path) {
            static const char *const names[] = {
                "none", "component-restart", "component-failover", "node-switchover", "node-failover", "node-failfast"};
            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(t + 7, names[i]) == 0)
                    report_recovery = (halo_recovery)(HALO_RECOVERY_NONE + i);
            snprintf(report_file, sizeof(report_file), "%s.%s.report", path, me);
        }
    }

    halo_callbacks cb = {.csi_set = on_csi_set,
                         .csi_remove = on_csi_remove,
                         .terminate = on_terminate,
                         .healthcheck = on_healthcheck,
                         .pg_track = on_pg,
                         .object_states = object_states ? on_object_states : NULL};
    halo *h;
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r == 0 && recovery)
        r = halo_recovery_set_callback(h, on_recovery);
    if (r == 0 && proxy)
        r = halo_proxy_set_callbacks(h, on_proxied_instantiate, on_proxied_cleanup);
    if (r == 0 && interest)
        logf_("INTEREST %d", set_interest(h, interest));
    if (r == 0)
        r = halo_register(h, NULL, NULL);
    if (r < 0) {
        fprintf(stderr, "testcomp: %s\n", halo_strerror(r));
        return 1;
    }
    logf_("REGISTERED");
    if (evt_channel) {
        unsigned sub;
        int e = halo_evt_open(h, evt_channel, HALO_EVT_LOCAL);
        logf_("EVT_SUB %d",
              e < 0 ? e : halo_evt_subscribe(h, evt_channel, HALO_EVT_LOCAL, NULL, 0, on_evt, NULL, &sub));
    }
    if (lifecycle) {
        static const struct {
            halo_lifecycle ev;
            const char *name;
        } evs[] = {{HALO_PROCESS_STARTING, "STARTING"},
                   {HALO_PROCESS_RECOVERED, "RECOVERED"},
                   {HALO_PROCESS_RECOVERY_FAILED, "RECOVERY_FAILED"},
                   {HALO_PROCESS_STARTED, "STARTED"},
                   {HALO_PROCESS_STOPPING, "STOPPING"},
                   {HALO_PROCESS_STOPPED, "STOPPED"}};
        for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
            logf_("LIFECYCLE %s %d", evs[i].name, halo_process_event(h, evs[i].ev, NULL));
        logf_("LIFECYCLE BAD %d", halo_process_event(h, (halo_lifecycle)99, NULL));
    }
    if (component_hc &&
        (r = halo_healthcheck_start(h, NULL, "self", HALO_HC_COMPONENT_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER)) < 0)
        logf_("HC_START_FAILED %d", r);
    if (amf_hc &&
        (r = halo_healthcheck_start(h, NULL, "amf", HALO_HC_AMF_INVOKED, HALO_RECOVERY_COMPONENT_FAILOVER)) < 0)
        logf_("HC_START_FAILED %d", r);
    if (track) {
        r = halo_pg_track(h, track, HALO_TRACK_CURRENT | HALO_TRACK_CHANGES);
        logf_("TRACK %s %d", track, r);
    }
    long long next_confirm = now_ms();
    while (!terminated) {
        long long now = now_ms();
        if (component_hc && now >= next_confirm) {
            if (access(stop_file, F_OK) != 0)
                halo_healthcheck_confirm(h, NULL, "self", 0);
            next_confirm = now + 100;
        }
        if (object_states && query_file[0])
            run_query(h);
        if (ask_again_at && now >= ask_again_at) {
            ask_again_at = 0;
            entrypoint = true;
        }
        if (entrypoint && !entrypoint_at)
            entrypoint_at = now;
        if (entrypoint_at && now >= entrypoint_at && access(entrypoint_hold_file, F_OK) != 0) {
            char *json = NULL;
            unsigned retry = 0;
            r = halo_entrypoint(h, &json, &retry);
            if (r == 0) {
                logf_("ENTRYPOINT %s", json);
                free(json);
                entrypoint = false;
                entrypoint_at = 0;
            } else if (r == -HALO_ETRYAGAIN) {
                logf_("ENTRYPOINT_RETRY %u", retry);
                entrypoint_at = now + (retry ? retry : 100);
            } else {
                logf_("ENTRYPOINT_FAILED %d", r);
                entrypoint = false;
                entrypoint_at = 0;
            }
        }
        if (recovery)
            recovery_run(h);
        if (participant)
            serve(h);
        if (report_recovery && access(report_file, F_OK) == 0 && unlink(report_file) == 0) {
            r = halo_error_report(h, NULL, report_recovery);
            logf_("ERROR_REPORT %d", r);
        }
        if (quiescing && access(quiesce_hold_file, F_OK) != 0) {
            logf_("QUIESCING_COMPLETE");
            halo_quiescing_complete(h, quiescing, 0);
            quiescing = 0;
        }
        if (report_at && now >= report_at) {
            report_at = 0;
            if (proxied_unregister) {
                r = halo_unregister(h, report_comp);
                logf_("UNREGISTER %s %d", report_comp, r);
            } else {
                r = halo_error_report(h, report_comp[0] ? report_comp : NULL, HALO_RECOVERY_COMPONENT_FAILOVER);
                logf_("ERROR_REPORT %d", r);
            }
            if (report_once)
                proxied_error_report = proxied_unregister = false;
        }
        if (segv_at && now >= segv_at) {
            logf_("SEGV");
            segv_now();
        }
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, 50) < 0 && errno != EINTR)
            break;
        if (halo_dispatch(h, HALO_DISPATCH_ALL) < 0)
            break;
    }
    interval(false, NULL, "EXIT");
    halo_close(h);
    free(modes);
    return 0;
}
