/* The `loom` command: main.c dispatches to one function per subcommand, each
 * in its own file (inspect.c, ops.c, ...); this header declares them and the
 * few helpers they share: exit codes and messages (util.c), human-readable
 * numbers (util.c) and a small JSON writer (json.c). Library code returns a
 * status and a message in g->err; only these functions decide to exit. */
#ifndef LOOM_CLI_H
#define LOOM_CLI_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "frontend.h"

#define LOOM_VERSION "0.1.0"

/* Exit codes. */
enum {
    CLI_OK = 0,    /* success */
    CLI_ERROR = 1, /* the input is bad: a malformed or unsupported model, a missing file */
    CLI_USAGE = 2, /* the command line is bad: unknown command or flag, missing argument */
};

/* A subcommand: argv[0] is its name, argc counts it. Returns the exit code. */
typedef int (*CliCommandFn)(int argc, char **argv);
int cli_compile(int argc, char **argv);
/* `loom profile` runs compile's pipeline (compile.c) and then fn, in place of
 * compile's summary, with the graph, which node's step each node runs in
 * (run_at, as cg_select made it) and the program folder; fn returns 0, or -1
 * with g->err. */
typedef int (*CliCompiledFn)(IrGraph *g, const int *run_at, const char *dir, void *arg);
void cli_compile_on_done(CliCompiledFn fn, void *arg);
int cli_profile(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_ops(int argc, char **argv);

/* ---- messages and arguments (util.c) ---- */
/* "loom CMD: MESSAGE; see 'loom CMD --help'" on stderr (cmd NULL: plain
 * "loom"); returns CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "loom: error: MESSAGE" on stderr as one line (control characters escaped);
 * returns CLI_ERROR. */
int cli_error(const char *msg);
int cli_is_help(const char *arg); /* "-h" or "--help" */
/* Whether argv[*i] is `flag` taking a value, as "--flag VALUE" or
 * "--flag=VALUE": 0 no; 1 yes, *val set and *i advanced past a separate
 * value; -1 yes but the value is missing. */
int cli_flag_value(int argc, char **argv, int *i, const char *flag, char **val);
/* What every command that reads a model takes: the model path, --dim and
 * --dump-after (which names one of `passes`). */
typedef struct {
    const char *path;
    OnnxDim *dims; /* room for argc bindings */
    int ndims;
    const char *dump_after;
    const char *const *passes;
    int npasses;
} CliModel;
/* When argv[*i] is one of those (a flag or the model path), consumes it and
 * returns 1 with *rc = CLI_OK or the usage error; else returns 0. */
int cli_model_arg(const char *cmd, int argc, char **argv, int *i, CliModel *m, int *rc);
/* Start a command's CliModel: room for argc --dim bindings and the passes
 * --dump-after may name. Returns 1 (after printing `usage`) when argv asks
 * for help, else 0. Free m->dims when done. */
int cli_model_init(CliModel *m, int argc, char **argv, const char *usage,
                   const char *const *passes, int npasses);
/* Between passes: the verifier, then the IR on stderr if `pass` is the one
 * --dump-after names. 0, or -1 with g->err. */
int cli_checkpoint(IrGraph *g, const CliModel *m, const char *pass);
/* The front of every pipeline: load and fold, each followed by a checkpoint. */
int cli_load_model(IrGraph *g, const CliModel *m);
/* Flushes stdout; CLI_ERROR with a message if any output was lost, else rc. */
int cli_finish(int rc);

/* Human-readable numbers, three significant digits: "1.50 KiB", "12.3M",
 * "1.23 GFLOP"; exact below the first unit ("512 B", "212", "96 FLOP"). */
const char *cli_fmt_bytes(double bytes, char *buf, size_t n);
const char *cli_fmt_count(double count, char *buf, size_t n);
const char *cli_fmt_flops(double flops, char *buf, size_t n);

/* ---- JSON (json.c) ----
 * A streaming writer: containers nest, commas and indentation are placed for
 * the caller. Inside an object every item has a key; in an array or at the
 * top, key is NULL. A "flat" container is written on one line. */
#define CLI_JSON_DEPTH 16
typedef struct {
    FILE *f;
    int depth;
    int count[CLI_JSON_DEPTH];          /* items written into each open container */
    char closer[CLI_JSON_DEPTH];        /* '}' or ']' */
    unsigned char flat[CLI_JSON_DEPTH];
} CliJson;

void cli_json_init(CliJson *j, FILE *f);
void cli_json_object(CliJson *j, const char *key, int flat);
void cli_json_array(CliJson *j, const char *key, int flat);
void cli_json_close(CliJson *j);
void cli_json_str(CliJson *j, const char *key, const char *s); /* NULL writes null */
void cli_json_int(CliJson *j, const char *key, int64_t v);
/* Integral values print exactly, others with 17 digits; inf and nan as null. */
void cli_json_num(CliJson *j, const char *key, double v);
void cli_json_null(CliJson *j, const char *key);
void cli_json_end(CliJson *j); /* after the top-level value: a newline */

#endif
