/* The `loom` command: global flags and dispatch to a subcommand, in the
 * manner of QBE's main. Each subcommand is one function in its own file
 * (cli_inspect in inspect.c, ...); adding one means a row in `commands`.
 * Exit codes: 0 success, 1 bad input (the model), 2 bad command line. */
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    CliCommandFn run;
    const char *summary;
} commands[] = {
    {"compile", cli_compile, "compile a model into a standalone C inference program"},
    {"inspect", cli_inspect, "load a model and print its inputs, ops, parameters, FLOPs and IR"},
    {"ops", cli_ops, "list the ONNX operators loom supports"},
    {"plan", cli_plan, "plan a training step under a memory budget: what is recomputed, predicted time"},
    {"profile", cli_profile, "measure every node of the compiled program on this machine (costs.json)"},
};
enum { NCOMMANDS = sizeof commands / sizeof *commands };

static int help(void)
{
    printf("usage: loom COMMAND [ARGS]...\n"
           "\n"
           "loom compiles ONNX models into standalone C/CUDA training and inference programs.\n"
           "\n"
           "commands:\n");
    for (int i = 0; i < NCOMMANDS; i++) printf("  %-10s %s\n", commands[i].name, commands[i].summary);
    printf("\n"
           "global flags:\n"
           "  -h, --help     this help; 'loom COMMAND --help' for a command's own\n"
           "  --version      print loom's version\n"
           "\n"
           "exit codes: 0 success, 1 bad input (e.g. a malformed model), 2 bad command line\n");
    return cli_finish(CLI_OK);
}

int main(int argc, char **argv)
{
    if (argc < 2) return cli_usage(NULL, "no command given");
    const char *cmd = argv[1];
    if (cli_is_help(cmd)) return help();
    if (strcmp(cmd, "--version") == 0) {
        printf("loom %s\n", LOOM_VERSION);
        return cli_finish(CLI_OK);
    }
    if (cmd[0] == '-') return cli_usage(NULL, "unknown flag '%s'", cmd);
    for (int i = 0; i < NCOMMANDS; i++)
        if (strcmp(cmd, commands[i].name) == 0) return cli_finish(commands[i].run(argc - 1, argv + 1));
    return cli_usage(NULL, "unknown command '%s'", cmd);
}
