/* SPDX-License-Identifier: MIT */
/* libcurl loaded on first use (see curl-dl.h). */
#define LOG_AREA LOG_AREA_STORE
#include "curl-dl.h"

#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "log.h"

#define CURL_LIBRARY "libcurl.so.4"

struct curl_dl curl_dl;

static const struct {
    const char *name;
    size_t offset;
} symbols[] = {
#define SYM(field, name) \
    { name, offsetof(struct curl_dl, field) }
    SYM(global_init, "curl_global_init"),
    SYM(easy_init, "curl_easy_init"),
    SYM(easy_setopt, "curl_easy_setopt"),
    SYM(easy_getinfo, "curl_easy_getinfo"),
    SYM(easy_perform, "curl_easy_perform"),
    SYM(easy_cleanup, "curl_easy_cleanup"),
    SYM(easy_strerror, "curl_easy_strerror"),
    SYM(multi_init, "curl_multi_init"),
    SYM(multi_setopt, "curl_multi_setopt"),
    SYM(multi_add_handle, "curl_multi_add_handle"),
    SYM(multi_remove_handle, "curl_multi_remove_handle"),
    SYM(multi_socket_action, "curl_multi_socket_action"),
    SYM(multi_assign, "curl_multi_assign"),
    SYM(multi_info_read, "curl_multi_info_read"),
    SYM(multi_cleanup, "curl_multi_cleanup"),
    SYM(slist_append, "curl_slist_append"),
    SYM(slist_free_all, "curl_slist_free_all"),
#undef SYM
};

int curl_dl_load(void) {
    static void *lib;
    if (lib)
        return 0;
    void *h = dlopen(CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        log_error("The etcd store needs %s (Debian: libcurl4): %s", CURL_LIBRARY, dlerror());
        return -ELIBACC;
    }
    struct curl_dl api;
    for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++) {
        void *p = dlsym(h, symbols[i].name);
        if (!p) {
            log_error("%s has no %s: %s", CURL_LIBRARY, symbols[i].name, dlerror());
            dlclose(h);
            return -ELIBACC;
        }
        /* POSIX: a data pointer from dlsym() converts to the function pointer it names. */
        memcpy((char *)&api + symbols[i].offset, &p, sizeof(p));
    }
    curl_dl = api;
    lib = h;
    return 0;
}
