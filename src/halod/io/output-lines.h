/* SPDX-License-Identifier: MIT */
/*
 * Components' output into halod's log: a pipe per process, read on the loop, each line logged at
 * info in the supervisor area as "NAME: line", with HALO_COMPONENT=NAME and SYSLOG_IDENTIFIER=NAME
 * for the journal.  A line longer than OUTPUT_LINE_MAX is logged in pieces of that size, so a
 * reader never holds more; each turn of the loop reads at most what libuv reads of a stream in one
 * go, into that buffer, so a process that floods its output delays halod by a bounded amount.
 */
#pragma once

#include <uv.h>

#define OUTPUT_LINE_MAX 4096

struct output_lines;

int output_lines_new(uv_loop_t *loop, struct output_lines **ret);
/* Closes every pipe still read (what is in them is lost).  Accepts NULL; returns NULL. */
struct output_lines *output_lines_free(struct output_lines *s);

/*
 * A new pipe whose lines are logged tagged with name (copied): *ret_fd is its write end (O_CLOEXEC),
 * for the child's stdout and stderr; the caller closes it once the child has it.  The read end is
 * read until every writer has closed it (the child and whatever it forked), then closed.
 * Returns 0, or -errno.
 */
int output_lines_open(struct output_lines *s, const char *name, int *ret_fd);
