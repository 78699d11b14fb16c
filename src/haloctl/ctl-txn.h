/* SPDX-License-Identifier: MIT */
/* haloctl txn: the transactions in flight (docs/transactions.md). */
#pragma once

#include <stdbool.h>

/* Prints halod's list of transactions (Admin TXN_LIST's json) as a table, or as it is with json.
 * Returns the exit status. */
int ctl_txn_print(const char *list, bool json);
