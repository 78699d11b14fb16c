/* SPDX-License-Identifier: MIT */
/*
 * halod's records into journald with their fields, in the native protocol sd_journal_sendv(3) speaks,
 * over a socket that never waits (journal.c says why): when stderr is the journal's stream, each
 * record goes through that protocol instead, as MESSAGE=, PRIORITY=, CODE_FILE=, CODE_LINE=,
 * SYSLOG_IDENTIFIER=halod (unless the record names another), HALO_AREA= and the record's own fields
 * (HALO_SU=, HALO_COMPONENT=, MESSAGE_ID=...).  Built without libsystemd: nothing changes.
 */
#pragma once

/* Makes the journal the sink of log.c's records (log_set_journal_sink()), when journald's socket is
 * there: otherwise records go to stderr, with their priority prefixes, as without libsystemd. */
void journal_install(void);
