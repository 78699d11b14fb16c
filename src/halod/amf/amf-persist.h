/* SPDX-License-Identifier: MIT */
/*
 * The AMF's own records in the store (docs/store.md: assignments/<si>,
 * su/<su>, components/<comp>): written as the AMF announces changes, read
 * back at start to restore what a previous halod left (locked and disabled
 * units, processes to adopt, preferred ACTIVE units).  A spawned process is
 * recorded at once; the other records are grouped over a millisecond into
 * one transaction, off the turn of the loop that made them.
 */
#pragma once

#include <stdbool.h>

#include "amf.h"
#include "store.h"

struct amf_persist;

/* prefix "/halo/<cluster>/" is copied.  adopt_assignments: one node, where the
 * roles adopted units held are taken from assignments/ (several nodes take
 * them from confirmed/).  Registers itself as an observer of a.  0, -ENOMEM, -ENOSPC. */
int amf_persist_new(uv_loop_t *loop, struct amf *a, store *s, const char *prefix, bool adopt_assignments,
                    struct amf_persist **ret);
/* Writes what waits, stops observing; the memory goes once its timer has
 * closed (run the loop) and a read in flight has ended.  Accepts NULL; returns NULL. */
struct amf_persist *amf_persist_free(struct amf_persist *p);

/* Reads the records back into the AMF (before amf_set_ready()).  cb runs once,
 * with 0 or the error of a read that failed (then nothing was restored).
 * Returns 0, or -errno and cb does not run. */
typedef void (*amf_persist_loaded_cb)(void *userdata, int error);
int amf_persist_load(struct amf_persist *p, amf_persist_loaded_cb cb, void *userdata);
