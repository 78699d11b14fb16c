/* SPDX-License-Identifier: MIT */
/* The HA link codec: size-checked, validated protobuf messages over SOCK_SEQPACKET. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "halo.pb-c.h"

#define LINK_PROTOCOL_VERSION 1
#define LINK_MSG_MAX (64 * 1024)   /* largest packet either side accepts */
#define LINK_NAME_MAX 255          /* longest object name (component, CSI, SI, key) */
#define LINK_VALUE_MAX 4096        /* longest CSI attribute value */
#define LINK_ATTRS_MAX 256         /* most attributes per CSI */
#define LINK_OBJECT_MAX 272        /* longest "kind:name" of a cluster object */
#define LINK_OBJECTS_MAX 256       /* most objects in one state note, query or reply */
#define LINK_INTEREST_RULES_MAX 64 /* most rules in one ObjectInterest */
/* Event channels: an event's pattern fields, a payload, a filter list, retention. */
#define LINK_EVT_FIELDS_MAX 16
#define LINK_EVT_FIELD_MAX 255
#define LINK_EVT_PAYLOAD_MAX 4096
#define LINK_EVT_RETENTION_MAX_MS (24u * 3600 * 1000)
#define LINK_REASON_MAX 511             /* longest reason in a process event or recovery note */
#define LINK_PARTICIPANTS_MAX 32        /* most participants in a recovery note (CONFIG_POOL_PROCESSES_MAX) */
#define LINK_REPLY_PART_MAX (60 * 1024) /* JSON bytes per part of a reply sent in parts */
/* The configuration database (CDB): a path is "/a/b" (LINK_CDB_PATH_MAX
 * bytes at most), a transaction at most LINK_CDB_OPS_MAX ops whose paths,
 * values and LINK_CDB_OP_FRAMING each take at most LINK_CDB_TXN_MAX bytes, so
 * that the commit and any change note fit one packet. */
#define LINK_CDB_PATH_MAX 1024
#define LINK_CDB_OPS_MAX 1024
#define LINK_CDB_TXN_MAX (LINK_MSG_MAX - 4096)
#define LINK_CDB_OP_FRAMING 16  /* what an op costs on top of its path and value, counted in LINK_CDB_TXN_MAX */
#define LINK_CDB_SUBS_MAX 64    /* subscriptions per connection */
#define LINK_LOG_TEXT_MAX 4096  /* longest text of a log record */
#define LINK_LOG_STREAM_MAX 64  /* longest log stream name */
#define LINK_LOG_STREAMS_MAX 64 /* most streams with a level of their own */
#define LINK_CDB_TXID_MAX (20 + 1 + LINK_NAME_MAX) /* "<hlc decimal>@<node>" */
/* Checkpoints (docs/checkpoints.md): a section's data, at most LINK_CKPT_SECTION_MAX bytes, fits
 * one packet with its names; a list reply holds at most LINK_CKPT_LIST_MAX sections. */
#define LINK_CKPT_SECTION_MAX (60 * 1024)
#define LINK_CKPT_LIST_MAX 1024
#define LINK_CKPT_MODE_MAX 2 /* CkptWrite.mode: 0 create or replace, 1 create, 2 replace */
/* The name service (docs/names.md): the packet's own bounds, above the service's
 * (include/halo/name.h), so that halod answers a name, reference or attribute too long with an
 * error instead of cutting the client off; a packet past these is malformed. */
#define LINK_NAME_TEXT_MAX 1024  /* a context, name, component, node or attribute name */
#define LINK_NAME_REF_MAX 8192   /* an object reference */
#define LINK_NAME_ENTRIES_MAX 64 /* registrations in one lookup's answer */

/* Transactions (src/halod/svc/txnsvc.c). */
#define LINK_TXN_PARTS_MAX 16                /* participants of one transaction */
#define LINK_TXN_DATA_MAX (16 * 1024)        /* what one participant is asked to apply */
#define LINK_TXN_ID_MAX (LINK_NAME_MAX + 21) /* "<node>.<n>" */
#define LINK_TXN_REASON_MAX 512              /* a no vote's or an abort's reason */
/* Reply.txn_state of a TxnQuery. */
enum { LINK_TXN_STATE_UNDECIDED = 1, LINK_TXN_STATE_COMMITTED = 2, LINK_TXN_STATE_ABORTED = 3 };

/* The lease file's value when no deadline runs (one node, halod fenced or starting). */
#define LINK_LEASE_NONE 0

typedef Halo__Link__Msg LinkMsg;

/*
 * Encodes msg into buf (at least LINK_MSG_MAX bytes).  Returns the length, or
 * -EMSGSIZE when the message would not fit, -EINVAL when it has no body.
 */
int link_encode(const LinkMsg *msg, uint8_t *buf, size_t size);

/* Encodes and sends one packet.  Returns 0, -EMSGSIZE, -EINVAL, -EAGAIN, or -errno of send(). */
int link_send(int fd, const LinkMsg *msg);
/* Sends a message link_encode() packed (one packet to many peers: encode once). */
int link_send_packed(int fd, const uint8_t *buf, size_t n);
/* Sends packed messages, one packet each, with as few system calls as it can
 * (sendmmsg(2)): a peer woken by the first finds the rest already there.
 * Returns how many were sent, fewer than n when the socket filled up (the
 * caller keeps the rest), or -errno when none could be, -EMSGSIZE for an
 * empty or oversized packet. */
int link_send_packed_many(int fd, const struct iovec *pkts, size_t n);

/*
 * Decodes and validates one packet.  Returns 0 and *ret (free with
 * link_msg_free()), or -EBADMSG (malformed, truncated or a field out of range),
 * -EPROTONOSUPPORT (well-formed, but of a message type this version does not
 * know: drop it and go on), -EMSGSIZE (over LINK_MSG_MAX), -ENOMEM.
 */
int link_decode(const uint8_t *buf, size_t len, LinkMsg **ret);

/* Validates the fields of a decoded message: names non-empty where required and
 * within LINK_NAME_MAX, enums in range, sizes bounded.  Returns 0 or -EBADMSG. */
int link_validate(const LinkMsg *msg);

/*
 * Receives one packet (MSG_DONTWAIT) into a LINK_MSG_MAX+1 buffer and decodes
 * it.  Returns 1 and *ret, 0 on orderly EOF, -EAGAIN, -EMSGSIZE (packet was
 * truncated: too big), -EBADMSG, or -errno.
 */
int link_recv(int fd, LinkMsg **ret);

LinkMsg *link_msg_free(LinkMsg *m);

/* A CDB path: "/" (only when root_ok) or '/'-separated non-empty components,
 * no trailing '/', no control characters, at most LINK_CDB_PATH_MAX bytes.
 * Returns 0 or -EINVAL. */
int link_cdb_path_check(const char *path, int root_ok);

/* A log stream's name: empty (the default stream), or up to LINK_LOG_STREAM_MAX letters, digits and
 * "-_.".  0 or -EINVAL. */
int link_log_stream_check(const char *s);

/* Name of the oneof case, for logs ("csi_set"). */
const char *link_msg_type_name(const LinkMsg *m);
