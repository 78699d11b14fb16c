/* SPDX-License-Identifier: MIT */
/* Tests for the checkpoint service's local logic: its keys, its attributes, and the link's bounds on its messages. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt-internal.h"
#include "link.h"
#include "macro.h"
#include "store.h"
#include "tests.h"

static struct ckpt_svc *svc_new(store **st) {
    struct ckpt_svc *s = NULL;
    ASSERT_OK(store_memory_new(uv_default_loop(), st));
    struct ckpt_params p = {.loop = uv_default_loop(), .store = *st, .prefix = "/halo/c/", .node = "n1"};
    ASSERT_OK(ckpt_svc_new(&p, &s));
    return s;
}

TEST(keys_follow_the_layout) {
    char k[STORE_KEY_MAX];
    store *st;
    struct ckpt_svc *s = svc_new(&st);
    ASSERT_OK(ckpt_key_meta(s, k, "seq"));
    ASSERT_STREQ(k, "/halo/c/ckpt/seq");
    ASSERT_OK(ckpt_key_sections(s, k, "seq"));
    ASSERT_STREQ(k, "/halo/c/ckpt/seq/");
    ASSERT_OK(ckpt_key_section(s, k, "seq", "state"));
    ASSERT_STREQ(k, "/halo/c/ckpt/seq/state");
    ASSERT_OK(ckpt_key_stamp(s, k, "seq"));
    ASSERT_STREQ(k, "/halo/c/ckpt-open/seq");
    ASSERT_OK(ckpt_key_openers(s, k, "seq"));
    ASSERT_STREQ(k, "/halo/c/ckpt-open/seq/");
    ASSERT_OK(ckpt_key_opener(s, k, "seq", "n1"));
    ASSERT_STREQ(k, "/halo/c/ckpt-open/seq/n1");
    /* A name that does not fit a key is refused, not cut. */
    char *huge = malloc(STORE_KEY_MAX + 1);
    memset(huge, 'x', STORE_KEY_MAX);
    huge[STORE_KEY_MAX] = '\0';
    ASSERT_EQ(ckpt_key_section(s, k, "seq", huge), -ENAMETOOLONG);
    free(huge);
    ckpt_svc_free(s);
    store_free(st);
    uv_run(uv_default_loop(), UV_RUN_DEFAULT);
}

TEST(attributes_parse) {
    struct ckpt_attrs a;
    const char *good =
        "{\"flags\":1,\"retention_msec\":60000,\"max_sections\":8,\"max_section_size\":100,\"csi\":\"seq\"}";
    ASSERT_OK(ckpt_attrs_parse(good, strlen(good), &a));
    ASSERT_EQ(a.flags, 1);
    ASSERT_EQ(a.retention_msec, 60000);
    ASSERT_EQ(a.max_sections, 8);
    ASSERT_EQ(a.max_section_size, 100);
    ASSERT_STREQ(a.csi, "seq");
    const char *bad[] = {"", "[]", "{\"flags\":1}",
                         "{\"flags\":\"1\",\"retention_msec\":0,\"max_sections\":8,"
                         "\"max_section_size\":100,\"csi\":\"\"}"};
    for (size_t i = 0; i < ELEMENTSOF(bad); i++)
        ASSERT_EQ(ckpt_attrs_parse(bad[i], strlen(bad[i]), &a), -EBADMSG);
}

TEST(link_bounds_checkpoint_messages) {
    static uint8_t data[LINK_CKPT_SECTION_MAX + 1];
    LinkMsg m = HALO__LINK__MSG__INIT;
    Halo__Link__CkptWrite w = HALO__LINK__CKPT_WRITE__INIT;
    m.body_case = HALO__LINK__MSG__BODY_CKPT_WRITE;
    m.ckpt_write = &w;
    w.name = (char *)"seq";
    w.section = (char *)"state";
    w.data.data = data;
    w.data.len = LINK_CKPT_SECTION_MAX;
    ASSERT_EQ(link_validate(&m), 0);
    w.data.len++;
    ASSERT_EQ(link_validate(&m), -EBADMSG); /* over a section's limit */
    w.data.len = 1;
    w.mode = LINK_CKPT_MODE_MAX + 1;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    w.mode = 0;
    /* An empty or odd name passes the link: halod answers it with EINVAL, the client stays. */
    w.section = (char *)"";
    ASSERT_EQ(link_validate(&m), 0);
    w.section = (char *)"a b/c";
    ASSERT_EQ(link_validate(&m), 0);
    w.section = (char *)"a\nb"; /* control characters never pass */
    ASSERT_EQ(link_validate(&m), -EBADMSG);

    Halo__Link__Reply r = HALO__LINK__REPLY__INIT;
    Halo__Link__CkptSection sec = HALO__LINK__CKPT_SECTION__INIT, *secs[] = {&sec};
    m.body_case = HALO__LINK__MSG__BODY_REPLY;
    m.reply = &r;
    r.json = (char *)"";
    r.txid = (char *)"";
    r.ckpt_sections = secs;
    r.n_ckpt_sections = 1;
    sec.id = (char *)"s";
    sec.data.len = LINK_CKPT_SECTION_MAX + 1;
    sec.data.data = data;
    ASSERT_EQ(link_validate(&m), -EBADMSG);
    sec.data.len = 1;
    ASSERT_EQ(link_validate(&m), 0);

    Halo__Link__Admin a = HALO__LINK__ADMIN__INIT;
    m.body_case = HALO__LINK__MSG__BODY_ADMIN;
    m.admin = &a;
    a.op = HALO__LINK__ADMIN__OP__CKPT;
    a.target = (char *)"";
    ASSERT_EQ(link_validate(&m), 0);
}
