/* SPDX-License-Identifier: MIT */
/*
 * Intrusive doubly linked lists with a head and a tail: O(1) append, prepend,
 * removal of any item and pop from the front, so the same macros serve for a
 * FIFO and for a set whose items leave in any order.
 *
 *     struct item { LIST_FIELDS(struct item, by_conn); ... };
 *     LIST_HEAD(struct item) items = {0};
 *     LIST_APPEND(by_conn, &items, it);
 *     LIST_FOREACH_SAFE(by_conn, i, next, &items)
 *         if (done(i)) LIST_REMOVE(by_conn, &items, i);
 *
 * An item may sit on several lists at once, one LIST_FIELDS name each.  A
 * removed item's links are cleared; removing an item that is on no list (or
 * on another one) is a bug the macros do not detect.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define LIST_FIELDS(type, name) type *name##_next, *name##_prev
#define LIST_HEAD(type)     \
    struct {                \
        type *first, *last; \
    }

#define LIST_IS_EMPTY(head) ((head)->first == NULL)

#define LIST_APPEND(name, head, item)        \
    do {                                     \
        __typeof__(*(item)) *_i_ = (item);   \
        _i_->name##_next = NULL;             \
        _i_->name##_prev = (head)->last;     \
        if ((head)->last)                    \
            (head)->last->name##_next = _i_; \
        else                                 \
            (head)->first = _i_;             \
        (head)->last = _i_;                  \
    } while (0)

#define LIST_PREPEND(name, head, item)        \
    do {                                      \
        __typeof__(*(item)) *_i_ = (item);    \
        _i_->name##_prev = NULL;              \
        _i_->name##_next = (head)->first;     \
        if ((head)->first)                    \
            (head)->first->name##_prev = _i_; \
        else                                  \
            (head)->last = _i_;               \
        (head)->first = _i_;                  \
    } while (0)

#define LIST_REMOVE(name, head, item)                         \
    do {                                                      \
        __typeof__(*(item)) *_i_ = (item);                    \
        if (_i_->name##_prev)                                 \
            _i_->name##_prev->name##_next = _i_->name##_next; \
        else                                                  \
            (head)->first = _i_->name##_next;                 \
        if (_i_->name##_next)                                 \
            _i_->name##_next->name##_prev = _i_->name##_prev; \
        else                                                  \
            (head)->last = _i_->name##_prev;                  \
        _i_->name##_next = _i_->name##_prev = NULL;           \
    } while (0)

/* Takes the first item off the list and returns it, or NULL when it is empty. */
#define LIST_POP(name, head)                           \
    ({                                                 \
        __typeof__((head)->first) _f_ = (head)->first; \
        if (_f_)                                       \
            LIST_REMOVE(name, head, _f_);              \
        _f_;                                           \
    })

#define LIST_FOREACH(name, i, head) for ((i) = (head)->first; (i); (i) = (i)->name##_next)

/* The loop body may remove (and free) i. */
#define LIST_FOREACH_SAFE(name, i, n, head) for ((i) = (head)->first; (i) && ((n) = (i)->name##_next, 1); (i) = (n))
