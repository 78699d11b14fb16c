/* SPDX-License-Identifier: MIT */
/*
 * Tests for process-util: what a spawned child starts with (signals, fds,
 * stdin, session, directory, environment, output), how exec failures show,
 * the pidfd and start-time helpers, and the scan for marked processes.  The children are /bin/sh and cat
 * reading their own /proc entries.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "process-util.h"
#include "tests.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* Runs argv with the given options, stdout to a pipe; returns what it printed (NUL-terminated) and its status. */
static char *run(struct process_spawn_options *o, char *const *argv, int *ret_status) {
    int p[2];
    static char out[16384];
    size_t len = 0;
    pid_t pid;

    ASSERT(pipe2(p, O_CLOEXEC) == 0);
    o->path = argv[0];
    o->argv = argv;
    if (!o->log)
        o->stdout_fd = p[1];
    ASSERT_OK(process_spawn(o, &pid));
    close(p[1]);
    for (;;) {
        ssize_t n = read(p[0], out + len, sizeof(out) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        ASSERT(n >= 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(p[0]);
    out[len] = '\0';
    ASSERT_OK(process_wait(pid, ret_status));
    return out;
}

static char *sh(struct process_spawn_options *o, const char *script, int *ret_status) {
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    return run(o, argv, ret_status);
}

/* The hex value of a "Name:\tvalue" line of a /proc/PID/status text. */
static unsigned long long status_field(const char *text, const char *name) {
    const char *p = strstr(text, name);
    ASSERT(p);
    return strtoull(p + strlen(name) + 1, NULL, 16);
}

TEST(spawn_resets_signals_and_mask) {
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1};
    char *argv[] = {"/bin/cat", "/proc/self/status", NULL};
    sigset_t block;
    int st;

    /* Ignored and blocked here, with glibc's internal signal 32 ignored through the raw syscall
     * (as a parent can pass it on): the child must start clean. */
    ASSERT(signal(SIGTERM, SIG_IGN) != SIG_ERR);
    ASSERT(signal(SIGUSR1, SIG_IGN) != SIG_ERR);
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } ksa = {SIG_IGN, 0, NULL, 0};
    ASSERT(syscall(SYS_rt_sigaction, 32, &ksa, NULL, sizeof(ksa.mask)) == 0);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR2);
    sigaddset(&block, SIGHUP);
    ASSERT(sigprocmask(SIG_BLOCK, &block, NULL) == 0);

    /* The parent's own state shows what the test set, so the child's zeros mean something. */
    _cleanup_close_ int self = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    char mine[4096];
    ssize_t n = read(self, mine, sizeof(mine) - 1);
    ASSERT(n > 0);
    mine[n] = '\0';
    ASSERT(status_field(mine, "SigIgn:") & (1ULL << (SIGTERM - 1)));
    ASSERT(status_field(mine, "SigIgn:") & (1ULL << (32 - 1)));
    ASSERT(status_field(mine, "SigBlk:") & (1ULL << (SIGUSR2 - 1)));

    char *out = run(&o, argv, &st);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_EQ(status_field(out, "SigIgn:"), 0);
    ASSERT_EQ(status_field(out, "SigBlk:"), 0);
    ASSERT_EQ(status_field(out, "SigCgt:"), 0);
    /* And the parent got its own mask back. */
    sigset_t now;
    ASSERT(sigprocmask(SIG_SETMASK, NULL, &now) == 0);
    ASSERT(sigismember(&now, SIGUSR2) && sigismember(&now, SIGHUP) && !sigismember(&now, SIGUSR1));
}

TEST(spawn_closes_fds_and_gives_null_stdin) {
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1};
    int st;

    /* An fd a library opened without O_CLOEXEC, high and low. */
    int leak = open("/dev/null", O_RDONLY);
    ASSERT(leak >= 3);
    ASSERT(fcntl(leak, F_DUPFD, 40) >= 40);
    /* ls lists the shell's fds (a glob in the shell would open one of its
     * own, and so would a pipeline: the shell holds the pipe until both ends
     * run, and ls saw it once in CI). */
    char *out = sh(&o, "ls /proc/$$/fd; readlink /proc/$$/fd/0", &st);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_STREQ(out, "0\n1\n2\n/dev/null\n");
}

TEST(spawn_new_session_or_not) {
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1, .new_session = true};
    int st;

    /* Fields 1 (pid) and 6 (session) of the shell's own stat. */
    const char *script = "read -r pid comm state ppid pgrp sid rest < /proc/$$/stat; echo $pid $pgrp $sid";
    char *out = sh(&o, script, &st);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    long pid, pgrp, sid;
    ASSERT(sscanf(out, "%ld %ld %ld", &pid, &pgrp, &sid) == 3);
    ASSERT_EQ(sid, pid);
    ASSERT_EQ(pgrp, pid);

    o.new_session = false;
    out = sh(&o, script, &st);
    ASSERT(sscanf(out, "%ld %ld %ld", &pid, &pgrp, &sid) == 3);
    ASSERT_EQ(sid, getsid(0));
    ASSERT_EQ(pgrp, getpgrp());
}

TEST(spawn_workdir_env_and_fds) {
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1, .workdir = "/proc"};
    char *env[] = {"HALO_TEST_A=new", "HALO_TEST_C=added", NULL};
    int st;

    setenv("HALO_TEST_A", "old", 1);
    setenv("HALO_TEST_B", "kept", 1);
    o.env = env;
    char *out = sh(&o, "pwd; echo $HALO_TEST_A $HALO_TEST_B $HALO_TEST_C; env | grep -c ^HALO_TEST_A=", &st);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    ASSERT_STREQ(out, "/proc\nnew kept added\n1\n");

    /* Without env: ours as it is. */
    o.env = NULL;
    out = sh(&o, "echo $HALO_TEST_A", &st);
    ASSERT_STREQ(out, "old\n");

    /* stderr to an fd of ours. */
    int p[2];
    ASSERT(pipe2(p, O_CLOEXEC) == 0);
    o.stderr_fd = p[1];
    out = sh(&o, "echo out; echo err >&2", &st);
    close(p[1]);
    ASSERT_STREQ(out, "out\n");
    char buf[16] = "";
    ASSERT_EQ(read(p[0], buf, sizeof(buf) - 1), 4);
    ASSERT_STREQ(buf, "err\n");
    close(p[0]);
}

TEST(spawn_log_appends_both_outputs) {
    char dir[] = "/tmp/test-process-XXXXXX", path[64], buf[64] = "";
    ASSERT(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/out.log", dir);
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1, .log = path};
    int st;

    sh(&o, "echo one; echo two >&2", &st);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    sh(&o, "echo three", &st);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ASSERT(fd >= 0);
    ASSERT(read(fd, buf, sizeof(buf) - 1) > 0);
    ASSERT_STREQ(buf, "one\ntwo\nthree\n");
    unlink(path);
    rmdir(dir);
}

TEST(exec_failure_is_exit_127_or_an_error) {
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1};
    char *argv[] = {"/nonexistent/program", NULL};
    pid_t pid;
    int st;

    o.path = argv[0];
    o.argv = argv;
    ASSERT_OK(process_spawn(&o, &pid));
    ASSERT_OK(process_wait(pid, &st));
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 127);

    /* A directory that cannot be entered: 126. */
    char *sh_argv[] = {"/bin/sh", "-c", "exit 0", NULL};
    o.path = sh_argv[0];
    o.argv = sh_argv;
    o.workdir = "/nonexistent";
    ASSERT_OK(process_spawn(&o, &pid));
    ASSERT_OK(process_wait(pid, &st));
    ASSERT(WIFEXITED(st));
    ASSERT_EQ(WEXITSTATUS(st), 126);

    /* With exec_error the caller hears why, and no child is left to reap. */
    o.exec_error = true;
    ASSERT_EQ(process_spawn(&o, &pid), -ENOENT);
    o.workdir = NULL;
    o.path = argv[0];
    o.argv = argv;
    ASSERT_EQ(process_spawn(&o, &pid), -ENOENT);
    o.path = "/dev/null"; /* not executable */
    ASSERT_EQ(process_spawn(&o, &pid), -EACCES);
    ASSERT(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD);

    /* And a good one still runs. */
    o.path = sh_argv[0];
    o.argv = sh_argv;
    ASSERT_OK(process_spawn(&o, &pid));
    ASSERT_OK(process_wait(pid, &st));
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(start_time_and_pidfd_of_a_running_child) {
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1};
    char *argv[] = {"/bin/sleep", "30", NULL};
    uint64_t mine, start, again;
    pid_t pid;
    char state;
    int st;

    o.path = argv[0];
    o.argv = argv;
    ASSERT_OK(process_get_stat(getpid(), &state, &mine));
    ASSERT_EQ(state, 'R');
    ASSERT_OK(process_spawn(&o, &pid));
    ASSERT_OK(process_get_stat(pid, &state, &start));
    ASSERT(start >= mine);
    /* Running, asleep, or in exec's disk wait under load. */
    if (state != 'R' && state != 'S' && state != 'D')
        CHECK_FAIL("a new child's state is %c", state);
    ASSERT_EQ(process_start_time(pid), start);
    ASSERT_OK(process_get_stat(pid, NULL, &again));
    ASSERT_EQ(again, start);

    int fd = process_pidfd_open(pid);
    ASSERT_OK(fd);
    ASSERT(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ(process_pidfd_reap(fd, &st), 0); /* still running */
    ASSERT_OK(process_pidfd_send_signal(fd, SIGKILL));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, 10000), 1);
    /* The pidfd turns readable a moment before the kernel marks the
     * task a zombie (CI under sanitizers saw the gap): wait for the
     * zombie itself, without reaping it. */
    siginfo_t si = {0};
    ASSERT_OK(waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOWAIT));
    ASSERT_EQ(si.si_pid, pid);
    /* Ended but not reaped: a zombie, with its start time still there. */
    ASSERT_OK(process_get_stat(pid, &state, &again));
    ASSERT_EQ(state, 'Z');
    ASSERT_EQ(again, start);
    ASSERT_EQ(process_pidfd_reap(fd, &st), 1);
    ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    ASSERT_EQ(process_pidfd_reap(fd, &st), -ECHILD);
    ASSERT_EQ(process_get_stat(pid, &state, &again), -ESRCH);
    ASSERT_EQ(process_start_time(pid), 0);
    ASSERT_EQ(process_pidfd_send_signal(fd, SIGKILL), -ESRCH);
    close(fd);
    ASSERT_EQ(process_pidfd_open(pid), -ESRCH);
}

TEST(pidfd_reap_of_an_exit_status) {
    struct process_spawn_options o = {.stdout_fd = -1, .stderr_fd = -1};
    char *argv[] = {"/bin/sh", "-c", "exit 3", NULL};
    pid_t pid;
    int st;

    o.path = argv[0];
    o.argv = argv;
    ASSERT_OK(process_spawn(&o, &pid));
    _cleanup_close_ int fd = process_pidfd_open(pid);
    ASSERT(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ASSERT_EQ(poll(&p, 1, 10000), 1);
    ASSERT_EQ(process_pidfd_reap(fd, &st), 1);
    ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 3);
}

struct scanned {
    pid_t pids[8];
    char rests[8][64];
    uint64_t starts[8];
    size_t n;
};

static void on_scanned(pid_t pid, const char *rest, uint64_t start_time, uid_t uid, void *userdata) {
    struct scanned *s = userdata;
    ASSERT_EQ(uid, getuid());
    if (s->n < ELEMENTSOF(s->pids)) {
        s->pids[s->n] = pid;
        snprintf(s->rests[s->n], sizeof(s->rests[0]), "%s", rest);
        s->starts[s->n++] = start_time;
    }
}

/* Whether pid's environment holds entry (once it has exec'd, it does). */
static bool env_has(pid_t pid, const char *entry) {
    static char env[PROCESS_ENV_SCAN_MAX * 2];
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, env, sizeof(env));
    return n > 0 && memmem(env, (size_t)n, entry, strlen(entry) + 1);
}

static pid_t spawn_marked(char *const *argv, const char *first, char *const *extra, bool leader) {
    struct process_spawn_options o = {.path = argv[0],
                                      .argv = argv,
                                      .env = extra,
                                      .env_first = first,
                                      .new_session = leader,
                                      .stdout_fd = -1,
                                      .stderr_fd = -1};
    pid_t pid;
    ASSERT_OK(process_spawn(&o, &pid));
    return pid;
}

TEST(scan_finds_the_marked_processes_first_in_their_group) {
    char prefix[64], lead[96], member[96], later[96], beyond[96], replaced[96];
    static char big[PROCESS_ENV_SCAN_MAX + 64];
    char *shell[] = {"/bin/sh", "-c", "sleep 30 & wait", NULL};
    char *sleeper[] = {"/bin/sleep", "30", NULL};
    struct scanned s = {0};

    /* Ours alone: a test running beside this one marks with its own pid. */
    snprintf(prefix, sizeof(prefix), "HALO_TEST_MARK=%d:", (int)getpid());
    /* The follower below joins our process group: we lead it, alive, whatever group we were started
     * in (under CI its leader had ended, and the follower passed for a daemon whose starter ended). */
    if (getpgrp() != getpid())
        ASSERT_OK(setpgid(0, 0));
    snprintf(lead, sizeof(lead), "%sleader", prefix);
    snprintf(member, sizeof(member), "%sfollower", prefix);
    snprintf(later, sizeof(later), "%slater", prefix);
    snprintf(beyond, sizeof(beyond), "%sbeyond", prefix);
    snprintf(replaced, sizeof(replaced), "%sreplaced", prefix);
    int k = snprintf(big, sizeof(big), "TEST_BIG=");
    memset(big + k, 'x', sizeof(big) - (size_t)k - 1);
    char *const with_replaced[] = {replaced, "TEST_MARK_OTHER=1", NULL};
    char *const with_later[] = {later, NULL};
    char *const with_beyond[] = {beyond, NULL};
    /* A group leader marked first (its sleep, of its group, inherits the mark), one that leads no group, one
     * marked last (a shell that exec'd reorders its environment), one marked past the bound. */
    pid_t leader = spawn_marked(shell, lead, with_replaced, true);
    pid_t follower = spawn_marked(sleeper, member, NULL, false);
    pid_t last = spawn_marked(sleeper, NULL, with_later, true);
    pid_t past = spawn_marked(sleeper, big, with_beyond, true);
    /* A daemon whose starter ended: of a group whose leader is gone. */
    char orphan[96];
    snprintf(orphan, sizeof(orphan), "%sdaemon", prefix);
    struct process_spawn_options od = {.env_first = orphan, .new_session = true, .stdout_fd = -1, .stderr_fd = -1};
    int st;
    pid_t daemon = (pid_t)atoi(sh(&od, "sleep 30 >/dev/null & echo $!", &st));
    ASSERT(daemon > 0 && st == 0);

    for (int i = 0; i < 1000 && !(env_has(leader, lead) && env_has(follower, member) && env_has(last, later) &&
                                  env_has(past, beyond) && env_has(daemon, orphan));
         i++)
        usleep(10000);
    ASSERT(env_has(leader, lead) && env_has(follower, member) && env_has(last, later) && env_has(past, beyond) &&
           env_has(daemon, orphan));
    /* The leader's sleep has the mark too, but leads no group.  Give it time to be there. */
    usleep(100000);
    ASSERT(process_scan_env(prefix, on_scanned, &s) >= 0);
    ASSERT_EQ(s.n, 3u);
    bool seen_leader = false, seen_last = false, seen_daemon = false;
    for (size_t i = 0; i < s.n; i++)
        if (s.pids[i] == leader) {
            seen_leader = streq(s.rests[i], "leader") && s.starts[i] == process_start_time(leader);
        } else if (s.pids[i] == last)
            seen_last = streq(s.rests[i], "later");
        else if (s.pids[i] == daemon)
            seen_daemon = streq(s.rests[i], "daemon");
    ASSERT(seen_leader && seen_last && seen_daemon);
    /* An entry of the same name among the others was dropped: the first one is the only one. */
    ASSERT(!env_has(leader, replaced) && env_has(leader, "TEST_MARK_OTHER=1"));

    /* A zombie is no survivor. */
    ASSERT_OK(kill(-leader, SIGKILL));
    _cleanup_close_ int fd = process_pidfd_open(leader);
    ASSERT(fd >= 0);
    siginfo_t si = {0};
    ASSERT_OK(waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOWAIT));
    /* The leader's sleep got the same SIGKILL, but may not have died of it yet: while it runs it is
     * the first marked process of the group (CI: 3 != 2).  The zombie leader stays a zombie until we
     * reap it: were it counted, the count would never come down to 2. */
    for (int i = 0; i < 500; i++) {
        s = (struct scanned){0};
        ASSERT(process_scan_env(prefix, on_scanned, &s) >= 0);
        if (s.n == 2)
            break;
        usleep(10000);
    }
    ASSERT_EQ(s.n, 2u);
    ASSERT((s.pids[0] == last && s.pids[1] == daemon) || (s.pids[0] == daemon && s.pids[1] == last));

    ASSERT_OK(process_wait(leader, NULL));
    pid_t rest[] = {follower, last, past};
    for (size_t j = 0; j < ELEMENTSOF(rest); j++) {
        ASSERT_OK(kill(rest[j], SIGKILL));
        ASSERT_OK(process_wait(rest[j], NULL));
    }
    /* Not our child: whoever reaps orphans here reaps it. */
    ASSERT_OK(kill(daemon, SIGKILL));
}
