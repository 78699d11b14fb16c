/* SPDX-License-Identifier: MIT */
/* Unit tests of what halod reads of an OCF agent: the timeouts of its meta-data, its exit codes, its messages. */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "amf-internal.h"
#include "tests.h"

TEST(meta_data_timeouts_and_interval) {
    /* As heartbeat:Dummy and IPaddr2 write them, with a promoted monitor first and "min" for minutes. */
    const char *xml = "<?xml version=\"1.0\"?>\n<resource-agent name=\"Dummy\">\n<actions>\n"
                      "<action name=\"start\"        timeout=\"20s\" />\n"
                      "<action name=\"stop\" timeout='2min' />\n"
                      "<action name=\"monitor\" role=\"Promoted\" timeout=\"9s\" interval=\"5s\" />\n"
                      "<action name=\"monitor\"      timeout=\"30s\" interval=\"10s\" depth=\"0\" />\n"
                      "<action name=\"monitor\"      timeout=\"99s\" interval=\"99s\" />\n"
                      "<action name=\"meta-data\"    timeout=\"5s\" />\n"
                      "</actions>\n</resource-agent>\n";
    struct ocf_meta m;
    amf_ocf_meta_parse(xml, &m);
    ASSERT_EQ(m.start, 20 * USEC_PER_SEC);
    ASSERT_EQ(m.stop, 120 * USEC_PER_SEC);
    ASSERT_EQ(m.monitor_timeout, 30 * USEC_PER_SEC);
    ASSERT_EQ(m.monitor_interval, 10 * USEC_PER_SEC);
}

TEST(meta_data_without_actions_or_broken) {
    struct ocf_meta m;
    amf_ocf_meta_parse("<resource-agent><actions><action name=\"start\" timeout=\"bad\"/><action name=", &m);
    ASSERT_EQ(m.start, 0u);
    ASSERT_EQ(m.stop, 0u);
    ASSERT_EQ(m.monitor_interval, 0u);
    amf_ocf_meta_parse("", &m);
    ASSERT_EQ(m.monitor_timeout, 0u);
}

TEST(exit_codes_in_words) {
    char buf[128];
    ASSERT_STREQ(amf_ocf_status_to_string(W_EXITCODE(7, 0), buf, sizeof(buf)), "OCF_NOT_RUNNING (7: not running)");
    ASSERT(
        strstr(amf_ocf_status_to_string(W_EXITCODE(6, 0), buf, sizeof(buf)), "OCF_ERR_CONFIGURED (6: not configured"));
    ASSERT(strstr(amf_ocf_status_to_string(W_EXITCODE(5, 0), buf, sizeof(buf)), "OCF_ERR_INSTALLED (5: not installed"));
    ASSERT_STREQ(amf_ocf_status_to_string(W_EXITCODE(42, 0), buf, sizeof(buf)), "exit code 42 (not an OCF code)");
    ASSERT(!strstr(amf_ocf_status_to_string(9 /* killed by SIGKILL */, buf, sizeof(buf)), "OCF_"));
}

TEST(the_agents_words) {
    char out[] = "INFO: something\nDec 06 ERROR: IP address [999.1.1.1] not valid.\nocf-exit-reason:[findif] failed\n";
    char buf[128];
    ASSERT_STREQ(amf_ocf_reason(out, buf, sizeof(buf)), "IP address [999.1.1.1] not valid.; [findif] failed");
    char plain[] = "first\nthe last line\n";
    ASSERT_STREQ(amf_ocf_reason(plain, buf, sizeof(buf)), "the last line");
    char none[] = "";
    ASSERT_STREQ(amf_ocf_reason(none, buf, sizeof(buf)), "");
}
