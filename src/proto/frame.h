/* SPDX-License-Identifier: MIT */
/* Length-prefixed protobuf messages on byte streams (the HA control socket and replication between nodes). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "ha.pb-c.h"

#define FRAME_HEADER 4                   /* big-endian length of what follows */
#define FRAME_CONTROL_MAX (64 * 1024)    /* a control message */
#define FRAME_REPL_MAX (2 * 1024 * 1024) /* a replication message (a full copy's rows) */
#define FRAME_ROWS_BYTES (1024 * 1024)   /* paths and values in one Rows message */
#define FRAME_NODES_MAX 64               /* nodes in a status reply */
#define FRAME_NONCE_LEN 32
#define FRAME_MAC_LEN 32
#define FRAME_REPL_VERSION 1    /* a Hello for the main database (its db is "") */
#define FRAME_REPL_VERSION_DB 2 /* a Hello that names a database (a cdb-roles group's subtree) */

typedef Halo__Ha__Control HaControl;
typedef Halo__Ha__Repl HaRepl;

/*
 * Encodes a message with its header into a new buffer (*ret, free() it) of
 * *ret_len bytes.  Returns 0, -EMSGSIZE (over max), -ENOMEM.
 */
int frame_pack_control(const HaControl *m, uint8_t **ret, size_t *ret_len);
int frame_pack_repl(const HaRepl *m, uint8_t **ret, size_t *ret_len);

/*
 * Decodes and validates one message body (without its header).  Returns 0
 * and *ret (free with frame_control_free() or frame_repl_free()), -EBADMSG
 * (malformed, out of range, or a type this version does not know).
 */
int frame_unpack_control(const uint8_t *buf, size_t len, HaControl **ret);
int frame_unpack_repl(const uint8_t *buf, size_t len, HaRepl **ret);
HaControl *frame_control_free(HaControl *m);
HaRepl *frame_repl_free(HaRepl *m);

/*
 * Gathers frames from a byte stream: feed what arrived, then take complete
 * frames one by one.  A header announcing more than max bytes is an error.
 */
struct frame_reader {
    uint8_t *buf;
    size_t len, cap, max;
    size_t consumed; /* the frame last handed out, dropped at the next call */
};
void frame_reader_init(struct frame_reader *r, size_t max);
void frame_reader_done(struct frame_reader *r);
/* Returns 0, -EMSGSIZE (a frame over max), -ENOMEM. */
int frame_reader_feed(struct frame_reader *r, const uint8_t *data, size_t n);
/* Returns 1 with *ret_body and *ret_len pointing into the reader (valid until the
 * next feed or next), 0 when no complete frame waits. */
int frame_reader_next(struct frame_reader *r, const uint8_t **ret_body, size_t *ret_len);
