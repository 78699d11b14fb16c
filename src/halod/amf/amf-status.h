/* SPDX-License-Identifier: MIT */
/* The AMF's part of the status document and of the metrics (status.c composes the rest). */
#pragma once

#include <jansson.h>

#include "amf.h"

struct http_metrics_buf;

/* Adds a layer's fields to a component's object (the recovery of a pool process). */
typedef void (*amf_status_decorate_cb)(void *userdata, const struct comp *c, json_t *obj);
/* The "service_groups" array (a new reference, NULL on -ENOMEM); decorate may be NULL. */
json_t *amf_status_sgs(struct amf *a, amf_status_decorate_cb decorate, void *userdata);
/* The units', components' and SIs' metrics.  0 or -ENOMEM. */
int amf_status_metrics(struct amf *a, struct http_metrics_buf *b);
