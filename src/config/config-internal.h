/* SPDX-License-Identifier: MIT */
/*
 * What the files of the description loader share and nothing else sees: the loader's state, its
 * problem list, the YAML helpers, the inheritance layers and the parsing and verification passes.
 *
 * The loader runs in one direction: config.c reads the file (config-read.c), parses it section by
 * section (config-parse*.c, with config-inherit.c and config-path.c for components), verifies the
 * whole (config-verify.c) and formats the problems (config-diag.c).  Every pass records problems
 * and carries on, so that one run reports every mistake.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "config.h"
#include "macro.h"

/* The work one node of the document costs: see config_diag_charge(). */
#define COST_NODE 16
/* How much of a user's string a message quotes. */
#define QUOTE_MAX 64

struct config_problem; /* config-diag.c */

struct loader {
    const char *path;
    const char *basedir;
    yaml_document_t *doc;
    struct config_problem *problems;
    size_t n_problems, n_problems_alloc;
    size_t work;
    bool oom;     /* a problem could not be recorded; config_load returns -ENOMEM */
    bool too_big; /* the work budget ran out; everything stops */
    char *text;   /* the file's bytes as read (config_read()), handed to the config */
    size_t text_size;
};

/* ---- config.c ---------------------------------------------------------------------------- */

/* Free the first n items and the array; accept NULL. */
void config_strv_free(char **v, size_t n);

/* ---- config-diag.c: problems and the work budget ------------------------------------------ */

/* s, or its first QUOTE_MAX bytes and "..." in buf (QUOTE_MAX + 4 bytes). */
const char *config_diag_quote(char *buf, const char *s);
#define Q(s) config_diag_quote((char[QUOTE_MAX + 4]){0}, (s))

/* Record a problem at pos, or at the start of node n.  Never fail: an allocation failure is
 * remembered in l->oom. */
_printf_(3, 4) void config_diag_at(struct loader *l, struct config_pos pos, const char *fmt, ...);
_printf_(3, 4) void config_diag(struct loader *l, const yaml_node_t *n, const char *fmt, ...);

/* Charge work against the budget; false once it is exhausted (reported once). */
bool config_diag_charge(struct loader *l, size_t cost);
/* strdup() charged against the budget.  NULL only on -ENOMEM. */
char *config_diag_strdup(struct loader *l, const char *s);

/* Sort the problems by position and drop repeats. */
void config_diag_sort(struct loader *l);
/* Append the problems to *errors, one "FILE:LINE:COLUMN: message" line each.  0 or -ENOMEM. */
int config_diag_format(struct loader *l, char **errors);
/* Free the problem list. */
void config_diag_done(struct loader *l);

/* ---- config-read.c: the file into a YAML document, within the limits ----------------------- */

/*
 * Read l->path and load it into *ret_doc (the caller deletes it with yaml_document_delete()).
 * Returns 1 when loaded, 0 when not (problem recorded: syntax, size, nesting, aliases, ...),
 * -errno when the file cannot be read (problem recorded) or -ENOMEM.
 */
int config_read(struct loader *l, yaml_document_t *ret_doc);

/*
 * Opens path for reading, never waiting (a FIFO is refused, not waited on), and makes sure it is a
 * regular file.  Returns 0 with its fd and size, or -errno with a problem recorded at pos, its
 * message prefixed with what ("" or "'key' 'PATH': ").
 */
int config_open_regular(struct loader *l, struct config_pos pos, const char *what, const char *path, int *ret_fd,
                        off_t *ret_size);
/*
 * Reads the token in path (relative to the description's directory): one line of 1 to
 * CONFIG_TOKEN_MAX printable bytes, a trailing newline dropped.  0 and *ret (the caller frees it),
 * or -errno with a problem recorded at n.  halod's start reads it through here too, so that
 * --check opens exactly what the start will.
 */
int config_token_read(struct loader *l, const yaml_node_t *n, const char *path, char **ret);

/* ---- config-yaml.c: nodes, scalars, maps and lists ---------------------------------------- */

struct config_pos config_yaml_mark_pos(yaml_mark_t m);
struct config_pos config_yaml_pos(const yaml_node_t *n);
yaml_node_t *config_yaml_node(struct loader *l, int id);
/* A plain empty scalar, "~" or "null": "key:" with nothing after it. */
bool config_yaml_is_null(const yaml_node_t *n);
/* "a map", "a list", "an empty value" or the quoted scalar, for messages. */
const char *config_yaml_describe(char *buf, size_t size, const yaml_node_t *n);
#define DESCRIBE(n) config_yaml_describe((char[QUOTE_MAX + 8]){0}, QUOTE_MAX + 8, (n))

/* The text of a scalar, or NULL with a problem recorded ("what must be ..."): _scalar for a map,
 * a list or an embedded NUL, _string also for an empty value, _name for anything but a name. */
const char *config_yaml_scalar(struct loader *l, const yaml_node_t *n, const char *what);
const char *config_yaml_string(struct loader *l, const yaml_node_t *n, const char *what);
const char *config_yaml_name(struct loader *l, const yaml_node_t *n, const char *kind);
/* A count (decimal digits up to UINT_MAX), a boolean (true/yes/on, false/no/off) or a duration
 * (time-util.h); counts and booleans without quotes.  False (nothing recorded) for anything else. */
bool config_yaml_uint(const yaml_node_t *n, unsigned *ret);
bool config_yaml_bool(const yaml_node_t *n, bool *ret);
bool config_yaml_duration(const yaml_node_t *n, usec_t *ret);

/* One key of a map with its value. */
struct map_entry {
    const char *key;
    yaml_node_t *key_node;
    yaml_node_t *value;
};

/* The entries of a map (duplicates reported and dropped; null is an empty map): 1, 0 when n is
 * not a map (problem recorded, no entries), or -ENOMEM. */
int config_yaml_map(struct loader *l, yaml_node_t *n, const char *what, struct map_entry **ret, size_t *ret_n);
/* A map with the keys of allowed (NULL-terminated) only: their nodes or NULL.  Like _map(). */
int config_yaml_fields(struct loader *l, yaml_node_t *n, const char *what, const char *const allowed[],
                       yaml_node_t *ret_keys[], yaml_node_t *ret_values[]);
/* The items of a list (null is an empty list); false with a problem recorded for anything else. */
bool config_yaml_seq(struct loader *l, yaml_node_t *n, const char *what, yaml_node_item_t **ret, size_t *ret_n);
/* Copies of a list's scalars (NULL-terminated) and of a map's scalar entries; 0 or -ENOMEM. */
int config_yaml_strv(struct loader *l, yaml_node_t *n, char ***ret, size_t *ret_n);
int config_yaml_kv(struct loader *l, yaml_node_t *n, const char *what, struct config_kv **ret, size_t *ret_n);

/* ---- config-inherit.c: component settings, layer by layer --------------------------------- */

/* The number of component settings: the keys of a component map and the numbers and durations
 * of its restart, health-check and timeouts sections, and the health-check keys. */
#define CONFIG_LAYER_SETTINGS 35

/*
 * One level of component settings (defaults.component, an SG's or SU's `component`, or an explicit
 * component): the YAML node of each setting it gives.  Values are checked when the layer is read,
 * so each mistake is reported once however many components inherit it; bad[] marks a setting that
 * was given but wrong, so that nothing derived from it is reported again.
 */
struct config_layer {
    yaml_node_t *v[CONFIG_LAYER_SETTINGS];
    bool bad[CONFIG_LAYER_SETTINGS];
};

/* Read one layer from n (NULL: an empty layer).  0 or -ENOMEM. */
int config_inherit_layer(struct loader *l, yaml_node_t *n, const char *what, struct config_layer *ret);
/* Build component c named name from its layers (later wins, setting by setting).  0 or -ENOMEM. */
int config_inherit_component(struct loader *l, const struct config_layer *const layers[], size_t n_layers,
                             const char *name, struct config_pos pos, struct config_component *c);

/* A command list of key, its items checked as scalars already: argv[0] resolved as a command.
 * *ret NULL when it does not resolve (reported).  0 or -ENOMEM. */
int config_command_list(struct loader *l, yaml_node_t *n, const char *key, char ***ret, size_t *ret_n);

/* ---- config-ext.c: monitor, the OCF agent and its params, user and group ---------------- */

/* The component's monitor, agent, params, user and group (v[0..4]: their nodes, NULL when not
 * given; its type is set).  0 or -ENOMEM; problems are recorded. */
int config_ext_component(struct loader *l, yaml_node_t *const v[5], struct config_component *c);

/* ---- config-path.c: commands and working directories -------------------------------------- */

/* The absolute path of command cmd (value of node n) in *ret, or NULL with a problem recorded
 * that names it what ("command", "'terminate' command").  0 or -ENOMEM. */
int config_path_command(struct loader *l, yaml_node_t *n, const char *what, const char *cmd, char **ret);
/* The absolute path of directory dir in *ret (a problem recorded if it is none).  0 or -ENOMEM. */
int config_path_workdir(struct loader *l, yaml_node_t *n, const char *dir, char **ret);
/* A component's `stdout` FILE: absolute, in a directory that exists, not something other than a
 * regular file or a character device; reported on n otherwise (*ret stays NULL).  0 or -ENOMEM. */
int config_path_output(struct loader *l, yaml_node_t *n, const char *file, char **ret);
/* path, or, when it is relative, the description's directory joined with it.  NULL on -ENOMEM. */
char *config_path_resolve(struct loader *l, const char *path);

/* ---- config-parse.c, config-parse-sg.c: the description, top down ------------------------- */

/* Parse the document's root into c.  0 or -ENOMEM; problems are recorded. */
int config_parse(struct loader *l, yaml_node_t *root, struct config *c);
/* Parse service group e into sg, its components inheriting from defaults.  0 or -ENOMEM. */
int config_parse_sg(struct loader *l, const struct map_entry *e, const struct config_layer *defaults,
                    struct config_sg *sg);

/* ---- config-logs.c: the log-streams section ---------------------------------------------- */

/* Parse the log-streams section (n NULL: none) into c.  0 or -ENOMEM; problems are recorded. */
int config_parse_log_streams(struct loader *l, yaml_node_t *n, struct config *c);

/* ---- config-recovery.c: recovery and escalation ------------------------------------------- */

/* The probation of an escalation rung when the description gives none. */
#define CONFIG_PROBATION_DEFAULT (60 * USEC_PER_SEC)
/* A component's 'recovery' value; false with a problem recorded. */
bool config_recovery_parse(struct loader *l, yaml_node_t *v, enum config_recovery *ret);
/* {max, probation} of key over the defaults in *e (given set when n is a map). */
void config_escalation_parse(struct loader *l, yaml_node_t *n, const char *key, struct config_escalation *e);
/* An SG's 'escalation' (n NULL: the defaults, max 0). */
void config_sg_escalation_parse(struct loader *l, yaml_node_t *n, struct config_sg *sg);

/* ---- config-verify.c: the description as a whole ------------------------------------------ */

/* Check what no single section can: references, names, roles, pools.  0 or -ENOMEM. */
int config_verify(struct loader *l, struct config *c);
/* config-models.c: each group's redundancy model, its keys and numbers, the SIs' depends-on; 0 or -ENOMEM. */
int config_models_verify(struct loader *l, const struct config *c);
