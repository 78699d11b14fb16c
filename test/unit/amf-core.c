/* SPDX-License-Identifier: MIT */
/* The AMF core on a loop of its own for unit tests (amf-core.h). */
#include <stdio.h>
#include <unistd.h>

#include "amf-core.h"
#include "tests.h"

void amf_core_start(uv_loop_t *loop, const char *yaml, char path[AMF_CORE_PATH_MAX], struct config **ret_cfg,
                    struct amf **ret_amf) {
    char *errors = NULL;
    snprintf(path, AMF_CORE_PATH_MAX, "/tmp/test-amf-%d.yaml", (int)getpid());
    FILE *fp = fopen(path, "w");
    ASSERT(fp);
    fputs(yaml, fp);
    fclose(fp);
    if (config_load(path, ret_cfg, &errors) < 0)
        CHECK_FAIL("the description does not load: %s", errors ? errors : "?");
    ASSERT_OK(uv_loop_init(loop));
    struct amf_params p = {.loop = loop, .config = *ret_cfg, .node = "n1", .socket_path = "/x"};
    ASSERT_OK(amf_new(&p, ret_amf));
}

void amf_core_stop(uv_loop_t *loop, const char *path, struct config **cfg, struct amf **amf) {
    amf_close(*amf);
    uv_run(loop, UV_RUN_DEFAULT);
    *amf = amf_free(*amf);
    *cfg = config_free(*cfg);
    ASSERT_OK(uv_loop_close(loop));
    unlink(path);
}
