/* SPDX-License-Identifier: MIT */
/*
 * The participants of a recovery (seed 003's r.DTM.participants and
 * r.DTM.complete; docs/recovery.md, "Participants, their completion, and the
 * abort"): who they are, the failures that abort an attempt, and the
 * participants' completion reports, written by each participant's halod to
 * completed/<process>/<participant> and followed by the recovering process's.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "queue.h"
#include "recovery-model.h"
#include "store.h"

/* One participant of a recovery. */
struct dtm_part {
    const struct rm_process *p;
    uint64_t reported; /* the attempt (the seq of the RECOVERING) it last reported serving; 0: none */
    bool struck;       /* not ONLINE when the attempt started, or not ONLINE since: not awaited */
};

/* The participants of one recovery: the live members of its pool when it started. */
struct dtm_list {
    struct dtm_part parts[CONFIG_POOL_PROCESSES_MAX];
    size_t n;
};

/* ---- from the published states (no I/O) ---- */

/* Fills l with the members of p's pool but p that are published ONLINE. */
void dtm_list_live(struct dtm_list *l, const struct queue *q, const struct recovery_model *m,
                   const struct rm_process *p);
/* The participant of l that is p, or NULL. */
struct dtm_part *dtm_list_find(struct dtm_list *l, const struct rm_process *p);
/* A new attempt starts: every participant not published ONLINE now is struck, the others are not. */
void dtm_list_restart(struct dtm_list *l, const struct queue *q);
/* Strikes every participant not published ONLINE; returns how many are still
 * awaited for attempt (not struck and not reported for it; every one not
 * struck when attempt is 0, not known yet), their names in names. */
size_t dtm_awaited(struct dtm_list *l, const struct queue *q, uint64_t attempt, char *names, size_t size);
/* The failures among the other members of p's pool (a process not ONLINE,
 * or one of its devices FAILED, REPAIR, REPAIRED or REBALANCE), listed in
 * list ("ios-a FAILED, ios-c TRANSIENT"). */
unsigned dtm_failures(const struct queue *q, const struct recovery_model *m, const struct rm_process *p, char *list,
                      size_t size);
/* Whether a device state makes a failure permanent (FAILED, REPAIR, REPAIRED, REBALANCE). */
bool dtm_device_state_failed(int state);
/* The first of p's own devices in such a state: its state, and its object in
 * obj; -ENOENT if none. */
int dtm_device_failed(const struct queue *q, const struct rm_process *p, char *obj, size_t size);
/* Whether p may recover beyond its pool's tolerance, newest data first (the
 * pool failed as a whole and every member that failed after p is back);
 * failed: the seq of the published state with which p left ONLINE, 0 if not
 * known (then its current state's). */
bool dtm_newest_first(const struct queue *q, const struct recovery_model *m, const struct rm_process *p,
                      uint64_t failed);
/* Why an attempt of p's recovery may not go on (one of its own devices
 * failed, or the failures among the others are past limit), malloc'ed; NULL
 * if it may go on (or out of memory, logged by nobody: the check runs again
 * at the next event). */
char *dtm_abort_reason(const struct queue *q, const struct recovery_model *m, const struct rm_process *p,
                       unsigned limit);

/* ---- the completion reports in the store ---- */

struct dtm;

/* A participant reported it served an attempt of a recovery. */
typedef void (*dtm_completed_cb)(void *userdata, const struct rm_process *recovering,
                                 const struct rm_process *participant, uint64_t attempt);

/* 0, -ENOMEM. */
int dtm_new(store *s, const char *prefix, const struct queue *q, const struct recovery_model *m,
            dtm_completed_cb completed, void *userdata, struct dtm **ret);
/* Follows completed/: every report already there, then each new one, to the
 * callback (once per report; again after the store's history was lost).
 * 0, -EBUSY (already), or -errno. */
int dtm_follow(struct dtm *d);
/* Accepts NULL; returns NULL.  Run the loop once more for the follower's timer to close. */
struct dtm *dtm_free(struct dtm *d);

/*
 * participant (a pool process of this node) served its part of the recovery
 * of process (an object name), attempt the seq of the RECOVERING it served
 * (0: the current one).  Recorded in a pool with `participants: report`.
 * 0, -HALO_EUNKNOWN (process is not another member of participant's pool),
 * -HALO_EBADSTATE (process is not RECOVERING, or attempt is over), -ENOMEM,
 * or the store's error.
 */
int dtm_report(struct dtm *d, const struct rm_process *participant, const char *process, uint64_t attempt);
