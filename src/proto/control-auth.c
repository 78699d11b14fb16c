/* SPDX-License-Identifier: MIT */
/* The proof of the token on the HA control socket: HMAC-SHA256 over fresh nonces (control-auth.h). */
#include "control-auth.h"

#include <errno.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <string.h>
#include <sys/random.h>

int control_auth_nonce(uint8_t out[FRAME_NONCE_LEN]) {
    ssize_t n;
    do
        n = getrandom(out, FRAME_NONCE_LEN, 0);
    while (n < 0 && errno == EINTR);
    return n == FRAME_NONCE_LEN ? 0 : -EIO;
}

static void field(struct hmac_sha256_ctx *ctx, const void *data, size_t len) {
    uint8_t n[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    hmac_sha256_update(ctx, sizeof(n), n);
    hmac_sha256_update(ctx, len, data);
}

void control_auth_mac(const char *token, const char *label, const uint8_t first[FRAME_NONCE_LEN],
                      const uint8_t second[FRAME_NONCE_LEN], uint8_t out[FRAME_MAC_LEN]) {
    struct hmac_sha256_ctx ctx;
    hmac_sha256_set_key(&ctx, strlen(token), (const uint8_t *)token);
    field(&ctx, "halo ha-control", 15);
    field(&ctx, label, strlen(label));
    field(&ctx, first, FRAME_NONCE_LEN);
    field(&ctx, second, FRAME_NONCE_LEN);
    hmac_sha256_digest(&ctx, FRAME_MAC_LEN, out);
}

bool control_auth_check(const char *token, const char *label, const uint8_t first[FRAME_NONCE_LEN],
                        const uint8_t second[FRAME_NONCE_LEN], const uint8_t *mac, size_t len) {
    uint8_t want[FRAME_MAC_LEN];
    control_auth_mac(token, label, first, second, want);
    return len == FRAME_MAC_LEN && memeql_sec(want, mac, FRAME_MAC_LEN);
}

bool control_auth_equal(const char *a, const char *b) {
    size_t n = strlen(a);
    return n == strlen(b) && memeql_sec(a, b, n);
}
