/* SPDX-License-Identifier: MIT */
/* Tests for the services' shared helpers (src/halod/svc/svc.h) and the log service's files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "logsvc-file.h"
#include "macro.h"
#include "svc.h"
#include "tests.h"

TEST(service_names) {
    ASSERT(svc_name_valid("seq-server", SVC_NAME_MAX));
    ASSERT(svc_name_valid("a.b:c@n1_x", SVC_NAME_MAX));
    ASSERT(!svc_name_valid("", SVC_NAME_MAX));
    ASSERT(!svc_name_valid(NULL, SVC_NAME_MAX));
    ASSERT(!svc_name_valid("a/b", SVC_NAME_MAX)); /* a store key's separator */
    ASSERT(!svc_name_valid("a b", SVC_NAME_MAX));
    ASSERT(!svc_name_valid("a\nb", SVC_NAME_MAX));
    ASSERT(!svc_name_valid("\xc3\xa9", SVC_NAME_MAX));
    ASSERT(svc_name_valid("abcd", 4));
    ASSERT(!svc_name_valid("abcde", 4));
    char long_name[SVC_NAME_MAX + 2];
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    ASSERT(!svc_name_valid(long_name, SVC_NAME_MAX + 100)); /* max is capped at SVC_NAME_MAX */
    long_name[SVC_NAME_MAX] = '\0';
    ASSERT(svc_name_valid(long_name, SVC_NAME_MAX));
}

/* ---- a log stream's file (logsvc-file.h) ---- */

static size_t count_file_lines(const char *path, unsigned *first, unsigned *last) {
    FILE *fp = fopen(path, "re");
    char line[256];
    size_t n = 0;
    unsigned k;
    if (!fp)
        return 0;
    while (fgets(line, sizeof(line), fp)) {
        ASSERT(sscanf(line, "line %u", &k) == 1);
        if (n++ == 0 && first)
            *first = k;
        if (last)
            *last = k;
    }
    fclose(fp);
    return n;
}

static void append_lines(struct logfile *f, unsigned from, unsigned to) {
    char line[128];
    for (unsigned i = from; i < to; i++) {
        int n = snprintf(line, sizeof(line), "line %04u %080d\n", i, 0);
        logfile_append(f, line, (size_t)n);
    }
}

TEST(log_file_rotates_keeps_reopens_and_closes) {
    char dir[] = "/tmp/halo-test-logfile.XXXXXX", path[64], p1[80], p2[80], p3[80];
    ASSERT(mkdtemp(dir));
    umask(022);
    snprintf(path, sizeof(path), "%s/s.log", dir);
    snprintf(p1, sizeof(p1), "%s.1", path);
    snprintf(p2, sizeof(p2), "%s.2", path);
    snprintf(p3, sizeof(p3), "%s.3", path);
    uv_loop_t loop;
    ASSERT_OK(uv_loop_init(&loop));
    struct config_log_stream c = {.name = (char *)"s", .file = path, .max_size = 16384, .keep = 2};
    struct logfile *f;
    ASSERT_OK(logfile_new(&loop, &c, &f));

    /* 1000 lines of 91 bytes: 180 to a file (16384 bytes), rotated 5 times; the last 3 files' lines stay, in order. */
    append_lines(f, 0, 1000);
    uv_run(&loop, UV_RUN_DEFAULT);
    unsigned first2 = 0, last2 = 0, first1 = 0, last1 = 0, first0 = 0, last0 = 0;
    ASSERT_EQ(count_file_lines(p2, &first2, &last2), 180u);
    ASSERT_EQ(count_file_lines(p1, &first1, &last1), 180u);
    ASSERT(count_file_lines(path, &first0, &last0) > 0);
    ASSERT_EQ(last0, 999u);
    ASSERT(last2 + 1 == first1 && last1 + 1 == first0);
    ASSERT(access(p3, F_OK) < 0);
    struct stat st;
    ASSERT_OK(stat(path, &st));
    ASSERT_EQ(st.st_mode & 0777, 0640u); /* under the umask set above */

    /* Moved away and reopened: a new file from the next line on. */
    char moved[80];
    snprintf(moved, sizeof(moved), "%s.moved", path);
    ASSERT_OK(rename(path, moved));
    logfile_reopen(f);
    append_lines(f, 1000, 1001);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(count_file_lines(path, &first0, NULL), 1u);
    ASSERT_EQ(first0, 1000u);

    /* Closed with lines queued, more than the file takes: they are written first, the file rotated,
     * then f frees itself. */
    append_lines(f, 1001, 1200);
    logfile_close(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(count_file_lines(path, &first0, &last0), 20u);
    ASSERT_EQ(first0, 1180u);
    ASSERT_EQ(last0, 1199u);
    ASSERT_EQ(count_file_lines(p1, &first1, &last1), 180u);
    ASSERT_EQ(first1, 1000u);

    /* A file that cannot be written: the lines are dropped, tried again a second later, closed. */
    c.file = (char *)"/dev/full";
    ASSERT_OK(logfile_new(&loop, &c, &f));
    append_lines(f, 0, 10);
    uv_run(&loop, UV_RUN_DEFAULT); /* the write fails; the retry a second later finds nothing queued */
    append_lines(f, 10, 20);
    logfile_close(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_OK(uv_loop_close(&loop));

    const char *const files[] = {path, p1, p2, moved};
    for (size_t i = 0; i < ELEMENTSOF(files); i++)
        (void)unlink(files[i]);
    ASSERT_OK(rmdir(dir));
}
