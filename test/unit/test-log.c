/* SPDX-License-Identifier: MIT */
/* Tests for log.c: records with fields, the journal sink, and stderr when there is none. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "tests.h"

static struct {
    int calls, level, line;
    char area[16], message[256], fields[256];
    int result;
} sink;

static int fake_sink(int level, const char *area, const char *message, const char *file, int line,
                     const struct log_field *fields) {
    sink.calls++;
    sink.level = level;
    sink.line = line;
    snprintf(sink.area, sizeof(sink.area), "%s", area);
    snprintf(sink.message, sizeof(sink.message), "%s", message);
    sink.fields[0] = 0;
    for (size_t i = 0; fields && fields[i].name; i++)
        snprintf(sink.fields + strlen(sink.fields), sizeof(sink.fields) - strlen(sink.fields), "%s=%s;", fields[i].name,
                 fields[i].value ? fields[i].value : "-");
    return sink.result;
}

/* stderr into a new file; journal: $JOURNAL_STREAM names it, as systemd sets it. */
static FILE *stderr_to_file(bool journal) {
    FILE *f = tmpfile();
    struct stat st;
    char v[64];
    ASSERT(f);
    ASSERT(dup2(fileno(f), STDERR_FILENO) == STDERR_FILENO);
    ASSERT_OK(fstat(STDERR_FILENO, &st));
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
    if (journal)
        ASSERT_OK(setenv("JOURNAL_STREAM", v, 1));
    else
        ASSERT_OK(unsetenv("JOURNAL_STREAM"));
    log_set_prefix("t");
    log_set_journal_sink(fake_sink);
    return f;
}

static const char *text_of(FILE *f) {
    static char buf[1024];
    fflush(stderr);
    size_t n = (size_t)pread(fileno(f), buf, sizeof(buf) - 1, 0);
    buf[n < sizeof(buf) ? n : 0] = 0;
    return buf;
}

TEST(fields_reach_the_sink_and_not_stderr) {
    FILE *f = stderr_to_file(true);
    log_warning_fields(LOG_FIELDS({"HALO_SU", "web-a"}, {"MESSAGE_ID", NULL}, {"HALO_NODE", "n1"}),
                       "Service unit '%s' failed: %m", "web-a");
    ASSERT_EQ(sink.calls, 1);
    ASSERT_EQ(sink.level, LOG_WARNING_);
    ASSERT_STREQ(sink.area, "main");
    ASSERT_STREQ(sink.message, "Service unit 'web-a' failed: Success");
    ASSERT_STREQ(sink.fields, "HALO_SU=web-a;MESSAGE_ID=-;HALO_NODE=n1;"); /* as given: journal.c skips NULL */
    ASSERT(sink.line > 0);
    ASSERT_STREQ(text_of(f), "");
    log_info("no fields"); /* every record goes through the sink */
    ASSERT_EQ(sink.calls, 2);
    ASSERT_STREQ(sink.fields, "");
}

TEST(a_sink_that_fails_leaves_the_record_on_stderr) {
    FILE *f = stderr_to_file(true);
    sink.result = -ECONNREFUSED;
    log_error_fields(LOG_FIELDS({"HALO_SU", "a"}), "lost? %d", 1);
    ASSERT_EQ(sink.calls, 1);
    ASSERT_STREQ(text_of(f), "<3>[main] lost? 1\n");
}

TEST(without_the_journal_the_text_is_unchanged) {
    FILE *f = stderr_to_file(false);
    log_notice_fields(LOG_FIELDS({"HALO_SI", "s"}), "Failing over '%s'", "s");
    ASSERT_EQ(sink.calls, 0);
    const char *t = text_of(f);
    ASSERT(strstr(t, " t[main] notice: Failing over 's'\n"));
    ASSERT(!strstr(t, "HALO_SI"));
}

TEST(levels_are_checked_before_the_sink) {
    (void)stderr_to_file(true);
    log_set_level(LOG_WARNING_);
    log_info_fields(LOG_FIELDS({"HALO_SU", "a"}), "quiet");
    ASSERT_EQ(sink.calls, 0);
}
