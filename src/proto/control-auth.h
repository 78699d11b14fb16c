/* SPDX-License-Identifier: MIT */
/*
 * The proof of the token on the HA control socket (src/proto/ha.proto): each
 * side sends a fresh nonce, then HMAC-SHA256 keyed with the token over its
 * label and both nonces.  The token never crosses the socket, and a proof is
 * worth nothing on another connection or from the other side.  Used by
 * halod (src/halod/cdb/ha-control.c) and libhalo (src/libhalo/halo-ha.c).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

#define CONTROL_AUTH_HALOD "halod"   /* halod's proof, in its Reply */
#define CONTROL_AUTH_CLIENT "client" /* the client's, in its AUTH */

/* FRAME_NONCE_LEN random bytes.  0, or -EIO. */
int control_auth_nonce(uint8_t out[FRAME_NONCE_LEN]);
/* HMAC-SHA256(token, label, first, second), each field length-prefixed. */
void control_auth_mac(const char *token, const char *label, const uint8_t first[FRAME_NONCE_LEN],
                      const uint8_t second[FRAME_NONCE_LEN], uint8_t out[FRAME_MAC_LEN]);
/* Whether mac (len bytes) is the proof label over first, second with token, in constant time. */
bool control_auth_check(const char *token, const char *label, const uint8_t first[FRAME_NONCE_LEN],
                        const uint8_t second[FRAME_NONCE_LEN], const uint8_t *mac, size_t len);
/* Whether a equals b, in a time that depends on their lengths only. */
bool control_auth_equal(const char *a, const char *b);
