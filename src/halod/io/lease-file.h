/* SPDX-License-Identifier: MIT */
/*
 * The node lease as the local processes see it: a file next to halod's
 * socket ("<socket>.lease") holding one uint64_t, the CLOCK_MONOTONIC time in
 * microseconds until which this node's lease is known to be held, or
 * LINK_LEASE_NONE (0): no deadline runs (one node, halod fenced or starting).
 *
 * halod writes it after every renewal of the node lease; libhalo maps it and
 * stops its process at the deadline if it was not moved, so a process whose
 * halod is gone never outlives the lease that another node's standby waits
 * for (link.h, HelloReply.lease_file).  A restarted halod opens the same
 * file and leaves a deadline still to come alone until it holds the lease
 * again (it may take the previous halod's lease over).  A deadline already
 * past is the previous halod's alone: the file is replaced by a new one
 * without a deadline, so that a process that connects now does not kill
 * itself at once, while those that mapped the old one still stop at theirs.
 */
#pragma once

#include <stdint.h>

struct lease_file;

/* Opens (creating it, mode 0644, or replacing one whose deadline is past) and maps path.  0, or -errno. */
int lease_file_open(const char *path, struct lease_file **ret);
/* Publishes a deadline (CLOCK_MONOTONIC usec) or LINK_LEASE_NONE. */
void lease_file_set(struct lease_file *f, uint64_t deadline_usec);
const char *lease_file_path(const struct lease_file *f);
/* Unmaps; the file and its content stay for the next halod.  Accepts NULL. */
struct lease_file *lease_file_close(struct lease_file *f);
