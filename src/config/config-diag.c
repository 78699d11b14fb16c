/* SPDX-License-Identifier: MIT */
/* The loader's problems, each at FILE:LINE:COLUMN, sorted and formatted; and the work budget that bounds them. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config-internal.h"

/*
 * Aliases and inheritance can multiply a small file into a lot of work (a
 * "billion laughs"), so every node visited, every byte copied and every
 * problem recorded is charged against a budget.
 */
#define CONFIG_WORK_MAX ((size_t)64 * 1024 * 1024)
#define MESSAGE_MAX 512

struct config_problem {
    unsigned line, column; /* line 0: about the file as a whole */
    size_t seq;
    char *msg;
};

/* Copies s into buf (QUOTE_MAX + 4 bytes), shortened at a UTF-8 boundary. */
const char *config_diag_quote(char *buf, const char *s) {
    size_t n = strlen(s);
    if (n <= QUOTE_MAX)
        return s;
    n = QUOTE_MAX;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    memcpy(buf, s, n);
    strcpy(buf + n, "...");
    return buf;
}

/* Records a problem.  Never fails: an allocation failure is remembered in l->oom. */
_printf_(3, 0) static void vproblem(struct loader *l, struct config_pos pos, const char *fmt, va_list ap) {
    char buf[MESSAGE_MAX];

    if (l->oom)
        return;
    int k = vsnprintf(buf, sizeof(buf), fmt, ap);
    if (k < 0)
        snprintf(buf, sizeof(buf), "(unprintable message)");
    else if ((size_t)k >= sizeof(buf)) {
        size_t n = sizeof(buf) - 4;
        while (n > 0 && ((unsigned char)buf[n] & 0xc0) == 0x80)
            n--;
        strcpy(buf + n, "...");
    }
    /* One problem is one line, whatever the user's strings contain. */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';

    if (l->n_problems == l->n_problems_alloc) {
        size_t n = MAX(l->n_problems_alloc * 2, (size_t)16);
        struct config_problem *p = reallocarray(l->problems, n, sizeof(*p));
        if (!p) {
            l->oom = true;
            return;
        }
        l->problems = p;
        l->n_problems_alloc = n;
    }
    char *msg = strdup(buf);
    if (!msg) {
        l->oom = true;
        return;
    }
    l->problems[l->n_problems] = (struct config_problem){pos.line, pos.column, l->n_problems, msg};
    l->n_problems++;
    l->work += strlen(msg) + COST_NODE;
}

void config_diag_at(struct loader *l, struct config_pos pos, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vproblem(l, pos, fmt, ap);
    va_end(ap);
}

void config_diag(struct loader *l, const yaml_node_t *n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vproblem(l, config_yaml_pos(n), fmt, ap);
    va_end(ap);
}

/* Charges work against the budget; false once it is exhausted (reported once). */
bool config_diag_charge(struct loader *l, size_t cost) {
    if (l->too_big)
        return false;
    l->work += cost;
    if (l->work <= CONFIG_WORK_MAX)
        return true;
    l->too_big = true;
    config_diag_at(l, (struct config_pos){1, 1},
                   "the description is too large to process: aliases, inherited settings or many "
                   "service units times many CSIs multiply it beyond the limit");
    return false;
}

/* strdup() charged against the budget.  NULL only on -ENOMEM. */
char *config_diag_strdup(struct loader *l, const char *s) {
    (void)config_diag_charge(l, strlen(s) + 1);
    return strdup(s);
}

static int problem_cmp(const void *a, const void *b) {
    const struct config_problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->column != y->column)
        return x->column < y->column ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int problem_msg_cmp(const void *a, const void *b) {
    const struct config_problem *x = a, *y = b;
    if (x->line != y->line || x->column != y->column)
        return problem_cmp(a, b);
    int c = strcmp(x->msg, y->msg);
    return c != 0 ? c : problem_cmp(a, b);
}

/*
 * Sorts the problems by position, in the order they were found within one position, and drops
 * repeats: a setting inherited by many components, or reached through an alias many times, is
 * reported once.
 */
void config_diag_sort(struct loader *l) {
    size_t k = 0;

    if (l->n_problems == 0)
        return;
    qsort(l->problems, l->n_problems, sizeof(*l->problems), problem_msg_cmp);
    for (size_t i = 0; i < l->n_problems; i++) {
        struct config_problem *p = &l->problems[i];
        if (k > 0 && l->problems[k - 1].line == p->line && l->problems[k - 1].column == p->column &&
            streq(l->problems[k - 1].msg, p->msg)) {
            free(p->msg);
            continue;
        }
        l->problems[k++] = *p;
    }
    l->n_problems = k;
    qsort(l->problems, l->n_problems, sizeof(*l->problems), problem_cmp);
}

/* Appends the problems to *errors, one line each. */
int config_diag_format(struct loader *l, char **errors) {
    size_t total = 0, old = *errors ? strlen(*errors) : 0;

    for (size_t i = 0; i < l->n_problems; i++)
        total += strlen(l->path) + strlen(l->problems[i].msg) + 32;
    char *s = realloc(*errors, old + total + 1);
    if (!s)
        return -ENOMEM;
    *errors = s;
    s += old;
    *s = 0;
    for (size_t i = 0; i < l->n_problems; i++) {
        const struct config_problem *p = &l->problems[i];
        if (p->line == 0)
            s += sprintf(s, "%s: %s\n", l->path, p->msg);
        else
            s += sprintf(s, "%s:%u:%u: %s\n", l->path, p->line, p->column, p->msg);
    }
    return 0;
}

void config_diag_done(struct loader *l) {
    for (size_t i = 0; i < l->n_problems; i++)
        free(l->problems[i].msg);
    free(l->problems);
}
