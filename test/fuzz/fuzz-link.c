/* SPDX-License-Identifier: MIT */
/* libFuzzer entry point for the HA link decoder: any bytes in, a valid message or an error out. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    LinkMsg *m = NULL;
    if (link_decode(data, size, &m) == 0) {
        /* What decodes must validate and re-encode within the size limit. */
        uint8_t buf[LINK_MSG_MAX];
        if (link_validate(m) < 0 || link_encode(m, buf, sizeof(buf)) < 0)
            abort();
        link_msg_free(m);
    }
    return 0;
}
