/* SPDX-License-Identifier: MIT */
/* The files halod serves as they are (the live status page, /ui), embedded at build time by tools/embed-files. */
#pragma once

#include <stddef.h>

struct http_asset {
    const char *path; /* the URL path, "/ui" */
    const char *type; /* the Content-Type */
    const unsigned char *data;
    size_t size;
};

/* Generated from src/halod/io/ui/ (src/halod/meson.build). */
extern const struct http_asset http_assets[];
extern const size_t http_n_assets;
