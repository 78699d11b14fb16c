/* SPDX-License-Identifier: MIT */
/*
 * Runs a libFuzzer entry point without libFuzzer, so that `make check` (and its
 * sanitizer pass) exercises every fuzz target on each build: the seed files
 * given as arguments, then deterministic random inputs and mutations of the
 * seeds.  With clang, build the same target with -fsanitize=fuzzer instead for
 * coverage-guided fuzzing.  HALO_FUZZ_RUNS sets the number of generated inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

#define SEEDS_MAX 64
#define INPUT_MAX 4096

int main(int argc, char **argv) {
    static uint8_t seeds[SEEDS_MAX][INPUT_MAX], buf[INPUT_MAX];
    size_t seed_len[SEEDS_MAX], n_seeds = 0;
    const char *e = getenv("HALO_FUZZ_RUNS");
    long runs = e ? atol(e) : 20000;

    for (int i = 1; i < argc && n_seeds < SEEDS_MAX; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            perror(argv[i]);
            return 1;
        }
        seed_len[n_seeds] = fread(seeds[n_seeds], 1, INPUT_MAX, f);
        fclose(f);
        LLVMFuzzerTestOneInput(seeds[n_seeds], seed_len[n_seeds]);
        n_seeds++;
    }
    for (long r = 0; r < runs; r++) {
        size_t len;
        if (n_seeds && (r & 1)) {
            /* Mutate a seed: flip, overwrite, truncate or duplicate bytes. */
            size_t s = next() % n_seeds;
            len = seed_len[s];
            memcpy(buf, seeds[s], len);
            for (int k = 0, n = 1 + (int)(next() % 8); k < n && len; k++) {
                size_t at = next() % len;
                switch (next() % 4) {
                case 0:
                    buf[at] ^= (uint8_t)(1u << (next() % 8));
                    break;
                case 1:
                    buf[at] = (uint8_t)next();
                    break;
                case 2:
                    len = at;
                    break;
                default:
                    if (len < INPUT_MAX) {
                        memmove(buf + at + 1, buf + at, len - at);
                        len++;
                    }
                }
            }
        } else {
            len = next() % 256;
            for (size_t k = 0; k < len; k++)
                buf[k] = (uint8_t)next();
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("%ld inputs, no crash\n1 passed, 0 failed\n", runs + (long)n_seeds);
    return 0;
}
