/* SPDX-License-Identifier: MIT */
/* libFuzzer entry point for the HA control and replication framing (frame.h): any bytes in, frames or errors out. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_MAX 256 /* a reader limit the inputs do exceed, so that oversized frames are refused */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A packed frame: its header gives the body's length, and the body decodes again to the same frame. */
static void check_frame(const uint8_t *frame, size_t len, bool repl) {
    if (len < FRAME_HEADER || be32(frame) != len - FRAME_HEADER)
        abort();
    uint8_t *again;
    size_t again_len;
    if (repl) {
        HaRepl *m = NULL;
        if (frame_unpack_repl(frame + FRAME_HEADER, len - FRAME_HEADER, &m) < 0 ||
            frame_pack_repl(m, &again, &again_len) < 0)
            abort();
        frame_repl_free(m);
    } else {
        HaControl *m = NULL;
        if (frame_unpack_control(frame + FRAME_HEADER, len - FRAME_HEADER, &m) < 0 ||
            frame_pack_control(m, &again, &again_len) < 0)
            abort();
        frame_control_free(m);
    }
    /* Re-encoding is canonical: a second round changes nothing. */
    if (again_len != len || memcmp(again, frame, len) != 0)
        abort();
    free(again);
}

/* What decodes validates and re-encodes within the limits, and round-trips. */
static void decode_body(const uint8_t *body, size_t len) {
    HaControl *c = NULL;
    HaRepl *r = NULL;
    uint8_t *frame;
    size_t frame_len;

    if (frame_unpack_control(body, len, &c) == 0) {
        if (frame_pack_control(c, &frame, &frame_len) < 0)
            abort();
        frame_control_free(c);
        check_frame(frame, frame_len, false);
        free(frame);
    }
    if (frame_unpack_repl(body, len, &r) == 0) {
        if (frame_pack_repl(r, &frame, &frame_len) < 0)
            abort();
        frame_repl_free(r);
        check_frame(frame, frame_len, true);
        free(frame);
    }
}

/*
 * The input as a byte stream, fed in pieces (of sizes taken from the input
 * itself when chunked): the reader hands out exactly the frames the stream
 * holds, in order, each body decoded as above, and stops at the first one
 * over max.
 */
static void read_stream(const uint8_t *data, size_t size, size_t max, bool chunked) {
    struct frame_reader rd;
    const uint8_t *body;
    size_t fed = 0, off = 0, len;
    int k = 0;

    frame_reader_init(&rd, max);
    while (fed < size) {
        size_t n = chunked ? 1 + (size_t)data[fed] % 61 : size;
        n = n < size - fed ? n : size - fed;
        k = frame_reader_feed(&rd, data + fed, n);
        fed += n;
        if (k < 0)
            break;
        while ((k = frame_reader_next(&rd, &body, &len)) > 0) {
            /* The frame at off, header and all, within what was fed. */
            if (off + FRAME_HEADER + len > fed || be32(data + off) != len || len > max ||
                memcmp(body, data + off + FRAME_HEADER, len) != 0)
                abort();
            off += FRAME_HEADER + len;
            decode_body(body, len);
        }
    }
    if (k == -EMSGSIZE) {
        /* Refused for the frame waiting at off, whose header announces more than max. */
        if (size - off < FRAME_HEADER || be32(data + off) <= max)
            abort();
    } else if (k < 0)
        abort(); /* out of memory: not with these sizes */
    else if (size - off >= FRAME_HEADER && be32(data + off) <= max && be32(data + off) <= size - off - FRAME_HEADER)
        abort(); /* a complete frame within max left behind */
    frame_reader_done(&rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    decode_body(data, size);
    read_stream(data, size, FRAME_REPL_MAX, false);
    read_stream(data, size, SMALL_MAX, true);
    return 0;
}
