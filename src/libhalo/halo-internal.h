/* SPDX-License-Identifier: MIT */
/* What the parts of libhalo share: halo.c owns the handle and the link, cdb.c the database calls. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "halo/halo.h"
#include "link.h"

#define HALO_EXPORT __attribute__((visibility("default")))

/* Sends req, whose seq field is *seq, and waits for halod's Reply: returns its
 * error (0 or negative) and, on success, *ret_reply if asked for (free with
 * link_msg_free()); or -ETIMEDOUT, -ENOTCONN, -HALO_ETRYAGAIN, -EBADF, -ENOMEM. */
int halo__request(halo *h, LinkMsg *req, uint64_t *seq, LinkMsg **ret_reply);

/* The handle's lock, for the lists cdb.c keeps in the handle. */
void halo__lock(halo *h);
void halo__unlock(halo *h);

/* The head of the handle's CDB subscription list (lock held). */
struct halo_cdb_sub;
struct halo_cdb_sub **halo__cdb_subs(halo *h);

/* cdb.c, called by halo.c: */
/* Runs the subscription's callback for a CdbChange (lock not held); false if none ran. */
bool halo__cdb_change(halo *h, const Halo__Link__CdbChange *m);
/* Subscribes again on a new link (lock held, RESUMING); sends with send_call. */
typedef int (*halo__resume_call_fn)(halo *h, LinkMsg *req, uint64_t *seq, const struct timespec *deadline,
                                    int *ret_error);
int halo__cdb_resume(halo *h, halo__resume_call_fn call, const struct timespec *deadline);
/* Frees the subscription list (lock not needed: the handle is going). */
void halo__cdb_free(halo *h);
