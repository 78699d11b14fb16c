/* SPDX-License-Identifier: MIT */
/* The memory store backend: the engine without persistence, for unit tests and throwaway state. */
#include "macro.h"
#include "store-engine.h"
#include "store.h"

static const store_ops store_memory_ops = STORE_ENGINE_OPS("memory");

/* Returns 0 and a store at revision 1, -EINVAL or -ENOMEM.  Free with store_free(). */
int store_memory_new(uv_loop_t *loop, store **ret) {
    store_engine *e;
    int r;

    assert_return(loop, -EINVAL);
    assert_return(ret, -EINVAL);

    r = store_engine_new(loop, &store_memory_ops, NULL, NULL, &e);
    if (r < 0)
        return r;
    r = store_engine_start(e, 1, 1, 0);
    if (r < 0) {
        store_engine_free(store_engine_store(e));
        return r;
    }
    *ret = store_engine_store(e);
    return 0;
}
