/* SPDX-License-Identifier: MIT */
/*
 * `halod --check`: every OCF component's agent runs its validate-all action
 * with the component's params, as Pacemaker's crm_resource --validate does.
 * A command-line tool waiting for its children: no loop runs here.
 */
#define LOG_AREA LOG_AREA_AMF
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amf-internal.h"
#include "macro.h"
#include "process-util.h"

#define VALIDATE_TIMEOUT (20 * USEC_PER_SEC)

/* Runs validate-all for cc; 0 when it passed, else its exit status (or -errno) and the agent's words in out. */
static int validate(const struct config_component *cc, char *out, size_t n) {
    char **env = NULL, *argv[] = {cc->command, (char *)"validate-all", NULL};
    size_t n_env = 0;
    int status = 0;
    int r = amf_ocf_env(cc, cc->name, VALIDATE_TIMEOUT, 0, &env, &n_env);
    if (r < 0)
        return r;
    _cleanup_close_ int fd = memfd_create("halo-validate", MFD_CLOEXEC);
    struct process_spawn_options o = {
        .path = cc->command, .argv = argv, .env = env, .stdout_fd = fd, .stderr_fd = fd, .new_session = true};
    pid_t pid = 0;
    r = fd < 0 ? -errno : process_spawn(&o, &pid);
    amf_env_free(env, n_env);
    if (r < 0)
        return r;
    _cleanup_close_ int pidfd = process_pidfd_open(pid);
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    if (pidfd >= 0 && poll(&pfd, 1, (int)(VALIDATE_TIMEOUT / USEC_PER_MSEC)) == 0) {
        (void)kill(-pid, SIGKILL);
        snprintf(out, n, "no answer within %llus", (unsigned long long)(VALIDATE_TIMEOUT / USEC_PER_SEC));
        (void)process_wait(pid, NULL);
        return -ETIMEDOUT;
    }
    r = process_wait(pid, &status);
    if (r < 0)
        return r;
    ssize_t k = pread(fd, out, n - 1, 0);
    out[k > 0 ? k : 0] = '\0';
    return status;
}

int amf_ocf_check(const struct config *c, FILE *err) {
    int failed = 0;
    for (size_t g = 0; g < c->n_sgs; g++)
        for (size_t u = 0; u < c->sgs[g].n_sus; u++) {
            const struct config_su *su = &c->sgs[g].sus[u];
            for (size_t i = 0; i < su->n_components; i++) {
                const struct config_component *cc = &su->components[i];
                char out[4096], reason[512], code[128];
                if (cc->type != CONFIG_COMP_OCF)
                    continue;
                int r = validate(cc, out, sizeof(out));
                if (r == 0)
                    continue;
                failed++;
                if (r == -ETIMEDOUT)
                    snprintf(reason, sizeof(reason), "%.*s", (int)sizeof(reason) - 1, out);
                else if (r < 0)
                    snprintf(reason, sizeof(reason), "%s", strerror(-r));
                else
                    amf_ocf_reason(out, reason, sizeof(reason));
                fprintf(err, "%s:%u:%u: component '%s': agent %s:%s refused its params (validate-all: %s)%s%s\n",
                        c->path, cc->pos.line, cc->pos.column, cc->name, cc->ocf_provider, cc->ocf_type,
                        r > 0 ? amf_ocf_status_to_string(r, code, sizeof(code)) : "not run", *reason ? ": " : "",
                        reason);
            }
        }
    return failed;
}
