/* SPDX-License-Identifier: MIT */
/* haloctl txn: the transactions in flight, one transaction, forget one (docs/transactions.md). */
#pragma once

#include <stdbool.h>

/* haloctl txn [TXID | forget TXID]; argv[0] is "txn".  Returns the exit status. */
int ctl_txn_main(int argc, char **argv, bool json);
