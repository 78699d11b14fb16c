/* SPDX-License-Identifier: MIT */
/*
 * ckptclient: a checkpoint client for the integration tests; its words run in order on one
 * handle (the socket is $HALO_SOCKET), each printing one line, flushed:
 *
 *   open NAME [create] [watch] [local] [csi=CSI] [retention=MS] [sections=N] [size=N]
 *                              "ok open <max_sections> <max_section_size> <retention> <csi>"
 *   write SEC DATA | new SEC DATA (create only) | overwrite SEC DATA     "ok write SEC"
 *   fill SEC BYTES             writes BYTES bytes of 'x' to SEC
 *   writes PREFIX N            writes PREFIX<i> = <i>, i in 0..N-1: "ok <i>" once each is acknowledged;
 *                              a write that fails prints "retry <i> <errno>" and is written again
 *                              (at most 20 times: a timeout does not say whether it was written)
 *   echo SEC N                 writes SEC = <i> and reads it back at once, i in 0..N-1: "ok echo N",
 *                              or "echo <i> read <data>" at the first read that is not <i>
 *   read SEC                   "data SEC <data>"
 *   list                       "section <id> <len>" per section, then "ok list <n>"
 *   delete SEC | unlink NAME | close
 *   updates N                  waits for N updates: "update <section> <data, or N-bytes past 32, or -deleted>
 * <revision>"
 *
 * A failed word prints "err <word> <errno> <message>" and the run goes on; the exit status is 1
 * if any failed.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "halo/ckpt.h"

static int updates_seen;

static void on_update(halo_ckpt *c, const char *section, const void *data, size_t len, int deleted, uint64_t revision,
                      void *userdata) {
    if (deleted || len <= 32)
        printf("update %s %s %llu\n", section, deleted ? "-deleted" : (const char *)data, (unsigned long long)revision);
    else
        printf("update %s %zu-bytes %llu\n", section, len, (unsigned long long)revision);
    updates_seen++;
}

static int open_word(halo *h, int argc, char **argv, int *i, halo_ckpt **c) {
    halo_ckpt_attrs a = {0};
    unsigned flags = 0;
    const char *name = argv[++*i];
    while (*i + 1 < argc) {
        const char *w = argv[*i + 1];
        if (strcmp(w, "create") == 0)
            flags |= HALO_CKPT_CREATE;
        else if (strcmp(w, "watch") == 0)
            flags |= HALO_CKPT_UPDATES;
        else if (strcmp(w, "local") == 0)
            flags |= HALO_CKPT_LOCAL_READS;
        else if (strncmp(w, "csi=", 4) == 0) {
            a.csi = w + 4;
            a.flags |= HALO_CKPT_COLLOCATED;
        } else if (strncmp(w, "retention=", 10) == 0)
            a.retention_msec = strtoull(w + 10, NULL, 10);
        else if (strncmp(w, "sections=", 9) == 0)
            a.max_sections = (uint32_t)strtoul(w + 9, NULL, 10);
        else if (strncmp(w, "size=", 5) == 0)
            a.max_section_size = (uint32_t)strtoul(w + 5, NULL, 10);
        else
            break;
        ++*i;
    }
    int r = halo_ckpt_open(h, name, flags, &a, on_update, NULL, c);
    if (r >= 0) {
        const halo_ckpt_attrs *at = halo_ckpt_attributes(*c);
        printf("ok open %u %u %llu %s\n", at->max_sections, at->max_section_size,
               (unsigned long long)at->retention_msec, *at->csi ? at->csi : "-");
    }
    return r;
}

static int wait_updates(halo *h, int n) {
    while (updates_seen < n) {
        struct pollfd p = {.fd = halo_fd(h), .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            return -ETIMEDOUT;
        int r = halo_dispatch(h, HALO_DISPATCH_ALL);
        if (r < 0)
            return r;
    }
    return 0;
}

static int word(halo *h, halo_ckpt **c, int argc, char **argv, int *i) {
    const char *w = argv[*i];
    bool more = *i + 1 < argc, two = *i + 2 < argc;
    int r = -EINVAL;
    if (strcmp(w, "open") == 0 && more)
        return open_word(h, argc, argv, i, c);
    if (strcmp(w, "unlink") == 0 && more)
        return halo_ckpt_unlink(h, argv[++*i]);
    if (strcmp(w, "updates") == 0 && more)
        return wait_updates(h, atoi(argv[++*i]));
    if (!*c)
        return -EBADF;
    if (strcmp(w, "close") == 0) {
        *c = halo_ckpt_close(*c);
        return 0;
    }
    if ((strcmp(w, "write") == 0 || strcmp(w, "new") == 0 || strcmp(w, "overwrite") == 0) && two) {
        halo_ckpt_write_mode m = w[0] == 'w'   ? HALO_CKPT_WRITE
                                 : w[0] == 'n' ? HALO_CKPT_CREATE_ONLY
                                               : HALO_CKPT_OVERWRITE;
        r = halo_ckpt_write(*c, argv[*i + 1], argv[*i + 2], strlen(argv[*i + 2]), m);
        *i += 2;
        if (r >= 0)
            printf("ok write %s\n", argv[*i - 1]);
    } else if (strcmp(w, "fill") == 0 && two) {
        size_t n = strtoul(argv[*i + 2], NULL, 10);
        char *buf = malloc(n + 1);
        if (!buf)
            return -ENOMEM;
        memset(buf, 'x', n);
        r = halo_ckpt_write(*c, argv[*i + 1], buf, n, HALO_CKPT_WRITE);
        free(buf);
        *i += 2;
        if (r >= 0)
            printf("ok fill %zu\n", n);
    } else if (strcmp(w, "writes") == 0 && two) {
        long n = strtol(argv[*i + 2], NULL, 10);
        for (long k = 0; k < n; k++) {
            char sec[HALO_CKPT_NAME_MAX + 1], val[32];
            snprintf(sec, sizeof(sec), "%s%ld", argv[*i + 1], k);
            snprintf(val, sizeof(val), "%ld", k);
            for (int tries = 0; tries < 20; tries++) {
                r = halo_ckpt_write(*c, sec, val, strlen(val), HALO_CKPT_WRITE);
                if (r >= 0)
                    break;
                printf("retry %ld %d\n", k, -r);
            }
            if (r < 0)
                break;
            printf("ok %ld\n", k);
        }
        *i += 2;
    } else if (strcmp(w, "echo") == 0 && two) {
        long n = strtol(argv[*i + 2], NULL, 10);
        r = 0;
        for (long k = 0; k < n && r >= 0; k++) {
            char val[32];
            void *data = NULL;
            size_t len;
            snprintf(val, sizeof(val), "%ld", k);
            r = halo_ckpt_write(*c, argv[*i + 1], val, strlen(val), HALO_CKPT_WRITE);
            if (r >= 0)
                r = halo_ckpt_read(*c, argv[*i + 1], &data, &len);
            if (r >= 0 && strcmp(data, val) != 0) {
                printf("echo %ld read %s\n", k, (char *)data);
                r = -EIO;
            }
            free(data);
        }
        if (r >= 0)
            printf("ok echo %ld\n", n);
        *i += 2;
    } else if (strcmp(w, "read") == 0 && more) {
        void *data;
        size_t len;
        r = halo_ckpt_read(*c, argv[++*i], &data, &len);
        if (r >= 0) {
            printf("data %s %s\n", argv[*i], (char *)data);
            free(data);
        }
    } else if (strcmp(w, "list") == 0) {
        halo_ckpt_section *s;
        size_t n;
        r = halo_ckpt_sections(*c, &s, &n);
        if (r >= 0) {
            for (size_t k = 0; k < n; k++)
                printf("section %s %zu\n", s[k].id, s[k].len);
            printf("ok list %zu\n", n);
            free(s);
        }
    } else if (strcmp(w, "delete") == 0 && more)
        r = halo_ckpt_delete(*c, argv[++*i]);
    return r;
}

int main(int argc, char **argv) {
    static const halo_callbacks cb = {0};
    halo_ckpt *c = NULL;
    halo *h = NULL;
    int failed = 0;

    setvbuf(stdout, NULL, _IOLBF, 0);
    int r = halo_open(NULL, &cb, NULL, &h);
    if (r < 0) {
        fprintf(stderr, "ckptclient: halo_open: %s\n", halo_strerror(r));
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *w = argv[i];
        r = word(h, &c, argc, argv, &i);
        if (r < 0) {
            printf("err %s %d %s\n", w, -r, halo_strerror(r));
            failed = 1;
        }
    }
    halo_ckpt_close(c);
    halo_close(h);
    return failed;
}
