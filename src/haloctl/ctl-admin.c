/* SPDX-License-Identifier: MIT */
/* haloctl admin: the AMF's maintenance operations, checked for the kind they apply to. */
#include "ctl-admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl-exit.h"
#include "halo/halo.h"
#include "macro.h"

enum { K_SU = 1 << 0, K_SG = 1 << 1, K_SI = 1 << 2, K_NODE = 1 << 3, K_COMP = 1 << 4 };
static const char *const kind_names[] = {"su", "sg", "si", "node", "comp"};

struct admin_op {
    const char *name;
    Halo__Link__Admin__Op op;
    unsigned kinds;
    const char *help;
    const char *bad_state; /* -HALO_EBADSTATE; every {} stands for the target */
    const char *already;   /* -HALO_EEXIST */
};

static const struct admin_op ops[] = {
    {"lock", HALO__LINK__ADMIN__OP__LOCK, K_SU | K_SG | K_NODE | K_SI,
     "out of service at once: every ACTIVE goes QUIESCED, then is removed",
     "{} cannot be locked now: an SI by the coordinator, a unit by its node while that node is in the cluster",
     "{} is locked already"},
    {"shutdown", HALO__LINK__ADMIN__OP__AMF_SHUTDOWN, K_SU | K_SG | K_NODE | K_SI,
     "out of service gracefully: every ACTIVE goes QUIESCING; answered once it holds nothing (then LOCKED)",
     "{} cannot be shut down now: an SI by the coordinator, a unit by its node while that node is in the "
     "cluster",
     "{} is locked or shutting down already"},
    {"unlock", HALO__LINK__ADMIN__OP__UNLOCK, K_SU | K_SG | K_NODE | K_SI, "back into service",
     "{} is LOCKED-INSTANTIATION: 'haloctl admin unlock-instantiation {}' first", "{} is unlocked already"},
    {"lock-instantiation", HALO__LINK__ADMIN__OP__LOCK_INSTANTIATION, K_SU | K_SG | K_NODE,
     "stop the processes of a locked unit; answered once they are gone",
     "lock-instantiation needs {} locked first, holding nothing ('haloctl admin lock {}')",
     "{} is LOCKED-INSTANTIATION already"},
    {"unlock-instantiation", HALO__LINK__ADMIN__OP__UNLOCK_INSTANTIATION, K_SU | K_SG | K_NODE,
     "start the processes again (the unit stays LOCKED)",
     "{} is not LOCKED-INSTANTIATION (or its processes are still stopping)", "{} is instantiated already"},
    {"restart", HALO__LINK__ADMIN__OP__RESTART, K_COMP | K_SU,
     "restart in place: the unit keeps its roles, the new processes get their CSIs again",
     "{} cannot restart in place now: it must run (registered; a non-SA-aware one runs only while ACTIVE) and "
     "its unit hold its roles steadily (not failing, no change under way)",
     NULL},
    {"repaired", HALO__LINK__ADMIN__OP__REPAIR, K_SU | K_NODE,
     "clear a DISABLED unit's failures and start it again (a node: every DISABLED unit of it, and its su-failover "
     "count); of an unkillable unit, say its processes are gone: its SIs fail over",
     "{} is neither DISABLED nor unkillable (a node: none of its units is DISABLED, and its su-failover count is 0)",
     NULL},
    {"si-swap", HALO__LINK__ADMIN__OP__SWITCHOVER, K_SI, "swap the ACTIVE and STANDBY of an SI, gracefully",
     "{} has no confirmed ACTIVE and STANDBY to swap, is locked, or a change is under way", NULL},
    {"sg-adjust", HALO__LINK__ADMIN__OP__SG_ADJUST, K_SG,
     "move ACTIVEs back to the most preferred units (lowest rank), gracefully",
     "{} cannot be adjusted here (only the coordinator moves roles)", NULL},
    {"switchover", HALO__LINK__ADMIN__OP__NODE_SWITCHOVER, K_NODE,
     "planned maintenance: every ACTIVE drained gracefully, then every unit's processes stopped",
     "{} cannot switch over now: one of its units is shutting down already, or it is not in the cluster", NULL},
};

/* fmt with every "{}" replaced by target (a format string would not be a literal). */
static void subst(char *buf, size_t size, const char *fmt, const char *target) {
    size_t len = 0;
    for (const char *p = fmt; *p && len + 1 < size; p++) {
        if (p[0] == '{' && p[1] == '}') {
            len += (size_t)snprintf(buf + len, size - len, "%s", target);
            p++;
        } else
            buf[len++] = *p;
        buf[MIN(len, size - 1)] = 0;
    }
    buf[MIN(len, size - 1)] = 0;
}

static const struct admin_op *op_by_wire(Halo__Link__Admin__Op op) {
    for (size_t i = 0; i < ELEMENTSOF(ops); i++)
        if (ops[i].op == op)
            return &ops[i];
    return NULL;
}

static const char *kinds_of(unsigned kinds, char *buf, size_t size) {
    size_t len = 0;
    buf[0] = 0;
    for (size_t k = 0; k < ELEMENTSOF(kind_names); k++)
        if (kinds & (1u << k))
            len += (size_t)snprintf(buf + len, len < size ? size - len : 0, "%s%s", len ? ", " : "", kind_names[k]);
    return buf;
}

const char *ctl_admin_explain(Halo__Link__Admin__Op op, const char *target, int error, char *buf, size_t size) {
    const struct admin_op *o = op_by_wire(op);
    const char *fmt = NULL;
    if (error == -HALO_EBADSTATE && o)
        fmt = o->bad_state;
    else if (error == -HALO_EEXIST && o && o->already)
        fmt = o->already;
    else if (error == -HALO_EUNKNOWN)
        fmt = "no such object: {}";
    else if (error == -ECANCELED)
        fmt = "called off: {} was unlocked meanwhile";
    else if (error == -EBUSY)
        fmt = "{} is still stopping its processes";
    else if (error == -EACCES)
        fmt = "{} stays locked while the lock of its service group or node (or its node's switchover) holds it: "
              "unlock that";
    if (!fmt)
        snprintf(buf, size, "%s", halo_strerror(error));
    else
        subst(buf, size, fmt, target);
    return buf;
}

void ctl_admin_help(void) {
    printf("  admin OPERATION KIND:NAME\n"
           "                          the AMF's maintenance operations (KIND su, sg, si, node, comp):\n");
    for (size_t i = 0; i < ELEMENTSOF(ops); i++) {
        char kinds[64];
        printf("      %-21s %s: %s\n", ops[i].name, kinds_of(ops[i].kinds, kinds, sizeof(kinds)), ops[i].help);
    }
}

int ctl_admin_main(int argc, char **argv, bool json) {
    if (argc != 3) {
        fprintf(stderr, "haloctl: 'admin' takes an operation and a target, such as 'admin lock su:web-a'. Try "
                        "'haloctl --help'.\n");
        return 2;
    }
    const char *name = argv[1], *target = argv[2];
    const struct admin_op *o = NULL;
    for (size_t i = 0; i < ELEMENTSOF(ops) && !o; i++)
        if (streq(ops[i].name, name))
            o = &ops[i];
    if (!o && streq(name, "repair"))
        o = op_by_wire(HALO__LINK__ADMIN__OP__REPAIR);
    if (!o) {
        fprintf(stderr, "haloctl: unknown operation 'admin %s'. Try 'haloctl --help'.\n", name);
        return 2;
    }
    const char *colon = strchr(target, ':');
    size_t k = ELEMENTSOF(kind_names);
    for (size_t i = 0; colon && i < ELEMENTSOF(kind_names); i++)
        if (strlen(kind_names[i]) == (size_t)(colon - target) &&
            strncmp(target, kind_names[i], strlen(kind_names[i])) == 0)
            k = i;
    char kinds[64];
    if (k == ELEMENTSOF(kind_names) || !colon[1]) {
        fprintf(stderr, "haloctl: admin %s: the target is KIND:NAME with KIND one of %s, got '%s'\n", name,
                kinds_of(o->kinds, kinds, sizeof(kinds)), target);
        return 2;
    }
    if (!(o->kinds & (1u << k))) {
        fprintf(stderr, "haloctl: admin %s: the operation does not apply to %s (a %s); it applies to %s\n", name,
                target, kind_names[k], kinds_of(o->kinds, kinds, sizeof(kinds)));
        return 2;
    }
    int r = ctl_request(o->op, target, NULL);
    if (r == 0) {
        if (json)
            printf("{\"ok\":true}\n");
        else
            printf("admin %s %s: done\n", name, target);
        return 0;
    }
    if (r != -ECONNREFUSED && r != -ENOENT) {
        char why[512];
        fprintf(stderr, "haloctl: admin %s %s: %s\n", name, target,
                ctl_admin_explain(o->op, target, r, why, sizeof(why)));
    }
    return ctl_exit_code(r);
}
