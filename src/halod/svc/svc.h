/* SPDX-License-Identifier: MIT */
/*
 * The services a component calls besides the AMF (seed 001's SAFplus infrastructure):
 * checkpoints, names, event channels, the log service, transactions.  One file or a few per
 * service in this folder, each served by halod over the HA link (src/proto/halo.proto: the
 * service's own range of message numbers) and built on the layers below: the store, the queue,
 * the AMF's observers, the configuration database.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The longest name of a service's object: a checkpoint, a name, a channel, a log stream. */
#define SVC_NAME_MAX 255

/*
 * Whether s is a valid name of a service's object: 1 to max bytes (at most SVC_NAME_MAX), of
 * letters, digits and "-_.:@", so that it can be a store key's component, a log field and a
 * command-line argument as it is.
 */
bool svc_name_valid(const char *s, size_t max);
