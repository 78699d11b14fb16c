/* SPDX-License-Identifier: MIT */
/*
 * The store layout of docs/store.md, spelled in one place: every key halod
 * reads or writes under its prefix "/halo/<cluster>/" is built (and
 * recognised) here and nowhere else.  The layout is a public contract.
 *
 * Every builder writes a NUL-terminated key into buf (STORE_KEY_MAX bytes)
 * and returns its length, or -ENAMETOOLONG when it would not fit (names come
 * from the description and the wire, bounded, but never trusted to fit).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Key numbers (hlc, seq) are 20 decimal digits, zero-padded, so byte order is numeric order. */
#define KEY_NUMBER_DIGITS 20

enum key_dir {
    KEY_ASSIGNMENTS,  /* assignments/<si>          the SI's confirmed assignments */
    KEY_SU,           /* su/<su>                   admin and oper state */
    KEY_COMPONENTS,   /* components/<comp>         its process (pid, start time) */
    KEY_NODES,        /* nodes/<node>              a member, under its lease */
    KEY_ADMIN,        /* admin/<node>/<n>          a forwarded operator command */
    KEY_SUSTATE,      /* sustate/<su>              what a unit's node publishes of it */
    KEY_TARGET,       /* target/<si>/<su>          the coordinator's decision */
    KEY_CONFIRMED,    /* confirmed/<si>/<su>       what the unit's node applied */
    KEY_EQ,           /* eq/<node>/<hlc>           an event queue entry */
    KEY_BQ,           /* bq/<seq>                  a broadcast queue entry */
    KEY_BQ_DELIVERED, /* bq-delivered/<node>       how far a node has read */
    KEY_STATE,        /* state/<kind>:<name>       an object's published state */
    KEY_FAILVEC,      /* failvec/<process>/...     epochs and failure vectors */
    KEY_RECOVERY,     /* recovery/<process>        a local recovery's state */
    KEY_CDB_ALONE,    /* cdb-alone/<sg>            the node whose CDB acknowledged commits alone */
    KEY_COMPLETED,    /* completed/<process>/<p>   a participant served a recovery's attempt */
    KEY_DOOM,         /* doom/<node>               another node declared it dead: its beats stopped */
    KEY_ADMINSTATE,   /* adminstate/<kind>:<name>  an SI's administrative state */
    KEY_CKPT,         /* ckpt/<name>, ckpt/<name>/<section>: a checkpoint's attributes, its sections */
    KEY_CKPT_OPEN,    /* ckpt-open/<name>, ckpt-open/<name>/<node>: its last open, the nodes holding it open */
    KEY_NAMES,        /* names/<ctx>/<name>/<node>/<comp>  a name registration (svc/name.c) */
    KEY_TXN,          /* txn/<txid>/...            a transaction across participants (key_txn()) */
    _KEY_DIR_MAX,
};

/* "/halo/<cluster>/". */
int key_prefix(char *buf, const char *cluster);

/* "<prefix><dir>/": every key of a directory. */
int key_dir(char *buf, const char *prefix, enum key_dir d);
/* "<prefix><dir>/<name>". */
int key_name(char *buf, const char *prefix, enum key_dir d, const char *name);
/* "<prefix><dir>/<name>/": what is under an object (a checkpoint's sections, its openers). */
int key_name_dir(char *buf, const char *prefix, enum key_dir d, const char *name);
/* "<prefix><dir>/<a>/<b>" (target/<si>/<su>, confirmed/<si>/<su>, eq/<node>/...). */
int key_pair(char *buf, const char *prefix, enum key_dir d, const char *a, const char *b);

int key_leader(char *buf, const char *prefix);    /* "<prefix>leader" */
int key_bq_seq(char *buf, const char *prefix);    /* "<prefix>bq-seq" */
int key_state_seq(char *buf, const char *prefix); /* "<prefix>state-seq" */
int key_admin(char *buf, const char *prefix, const char *node, uint64_t n);
int key_eq_node(char *buf, const char *prefix, const char *node); /* eq/<node>/: a node's entries */
int key_eq_entry(char *buf, const char *prefix, const char *node, uint64_t hlc);
int key_bq_entry(char *buf, const char *prefix, uint64_t seq);
/* The event service's cluster-wide channels (svc/evt.h): evt/<channel>/<node>/<hlc>, one event each. */
int key_evt_dir(char *buf, const char *prefix);
int key_evt_entry(char *buf, const char *prefix, const char *channel, const char *node, uint64_t hlc);

/* Recovery (docs/recovery.md): <process> is an object name, "process:<P>". */
int key_current_epoch(char *buf, const char *prefix, const char *process);
/* failvec/<process>/ (every epoch), failvec/<process>/<epoch> (its record),
 * failvec/<process>/<epoch>/ (its chunks and count), .../<seq>, .../nr_failures. */
int key_failvec_dir(char *buf, const char *prefix, const char *process);
int key_failvec_epoch(char *buf, const char *prefix, const char *process, int64_t epoch);
int key_failvec_chunks(char *buf, const char *prefix, const char *process, int64_t epoch);
int key_failvec_chunk(char *buf, const char *prefix, const char *process, int64_t epoch, uint64_t seq);
int key_failvec_count(char *buf, const char *prefix, const char *process, int64_t epoch);
/* Whether a key (or what follows failvec/<process>/<epoch> in it) is an epoch's nr_failures. */
bool key_failvec_is_count(const char *key, size_t len);

/* The name service (docs/names.md): "names/<ctx>/<name>/" (every registration of a name) and
 * "names/<ctx>/<name>/<node>/<comp>" (one component's). */
int key_names_of(char *buf, const char *prefix, const char *ctx, const char *name);
int key_names_reg(char *buf, const char *prefix, const char *ctx, const char *name, const char *node, const char *comp);
/* Splits what follows "names/" into its four parts (buffers of STORE_KEY_MAX bytes), each non-empty, the
 * component's the rest (a component of a unit with a components map is "SU/name"): 0 or -EINVAL. */
int key_names_split(const char *rest, size_t len, char *ctx, char *name, char *node, char *comp);
/* A transaction's keys (docs/transactions.md): txn/<txid>/ (all of them), txn/<txid>/record,
 * txn/<txid>/decision, and the participant's txn/<txid>/data/<comp>, vote/<comp>, ack/<comp>.
 * part is one of KEY_TXN_PARTS; comp NULL for the first three. */
#define KEY_TXN_PARTS "record", "decision", "data", "vote", "ack"
int key_txn(char *buf, const char *prefix, const char *txid, const char *part, const char *comp);
/* A finished transaction's outcome, kept a while: txn/done/<txid> ("done" is no txid: every txid
 * has a '.'). */
int key_txn_done(char *buf, const char *prefix, const char *txid);
/* What follows "txn/" in a key: the txid, the part and the comp ("" for record and decision; part
 * "done" for txn/done/<txid>), into buffers of STORE_KEY_MAX bytes.  0, or -EINVAL for "<txid>/"
 * or a malformed key. */
int key_txn_parse(const char *rest, size_t len, char *txid, char *part, char *comp);

/*
 * Which directory a key under prefix is in: the directory (>= 0), and in
 * *ret_rest (not NUL-terminated, *ret_len bytes) what follows "<dir>/";
 * -ENOENT for a key outside the directories (leader, bq-seq, a process's
 * current_epoch, ...) or outside prefix.
 */
int key_parse(const char *prefix, const char *key, size_t len, const char **ret_rest, size_t *ret_len);
/* Splits "<a>/<b>" at its first '/' into a and b (buffers of STORE_KEY_MAX
 * bytes), NUL-terminated; both must be non-empty.  0 or -EINVAL. */
int key_split_pair(const char *rest, size_t len, char *a, char *b);
/* The number of "<digits>" or "<digits>/..." at the start of rest: 0 or -EINVAL. */
int key_parse_number(const char *rest, size_t len, uint64_t *ret);
