/* SPDX-License-Identifier: MIT */
/* halod's log levels as operators see and change them (log-level.h). */
#include "log-level.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

char *log_level_json(void) {
    json_t *o = json_object();
    for (int i = 0; o && i < _LOG_AREA_MAX; i++)
        if (json_object_set_new(o, log_area_name(i), json_string(log_level_name(log_levels[i]))) < 0)
            json_decref(TAKE_PTR(o));
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return json;
}

int log_level_put(const char *body, size_t len, char **ret_spec, const char **ret_error_msg) {
    const char *area = NULL, *level = NULL;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    int r = -EINVAL;

    *ret_error_msg = "the body must be {\"level\": LEVEL} or {\"area\": AREA, \"level\": LEVEL}";
    if (!j || json_unpack(j, "{s:s, s?s !}", "level", &level, "area", &area) < 0)
        goto out;
    if (strchr(level, '=') || (area && strchr(area, '='))) {
        *ret_error_msg = "a level or area has no '=': give the area as \"area\"";
        goto out;
    }
    char *spec = NULL;
    if ((area ? asprintf(&spec, "%s=%s", area, level) : asprintf(&spec, "%s", level)) < 0) {
        r = -ENOMEM;
        goto out;
    }
    r = log_set_level_spec(spec);
    if (r < 0) {
        *ret_error_msg = r == -ENOENT ? "unknown area; areas: main amf link supervisor store cluster"
                                      : "unknown level; levels: error warning notice info debug";
        free(spec);
        r = -EINVAL;
        goto out;
    }
    *ret_spec = spec;
out:
    json_decref(j);
    return r;
}
