/* cl_args: command-line plumbing shared by tessera-client and tessera: subcommand dispatch,
 * usage messages and range-checked numbers. */
#ifndef CL_ARGS_H
#define CL_ARGS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

/* Exit statuses of both programs. */
enum { CL_EXIT_OK = 0, CL_EXIT_ERROR = 1, CL_EXIT_USAGE = 2 };

typedef struct cl_args_cmd {
	const char *name;
	int (*fn)(int argc, char **argv); /* argv[0] is "PROG NAME"; returns the exit status */
	const char *synopsis;             /* "enroll URL TOKEN [--state DIR]" */
	const char *help;                 /* what --help prints after the synopsis */
} cl_args_cmd;

/* Runs the subcommand argv[1] of prog, with SIGPIPE ignored and libcurl initialised.
 * "--help", "-h" and "help" print the overview on stdout (exit 0); no or an unknown command
 * prints it on stderr (exit 2). */
int cl_args_dispatch(const char *prog, const char *about, const cl_args_cmd *cmds, size_t n,
		     int argc, char **argv);

/* For the running subcommand: its usage on stderr (exit 2), the same after a one-line
 * message, and its --help on stdout (exit 0). */
int cl_args_usage_bad(void);
__attribute__((format(printf, 1, 2))) int cl_args_usage_error(const char *fmt, ...);
int cl_args_help(void);

/* getopt_long over a subcommand's arguments, from the start each time. */
#define CL_ARGS_FOREACH_OPT(argc, argv, shortopts, longopts, opt)                                \
	for (cl_args_reset(); ((opt) = getopt_long((argc), (argv), (shortopts), (longopts), NULL)) != -1;)
void cl_args_reset(void);

/* Parses a whole-string integer in [min, max]; accepts exact e-notation ("2e10").
 * Returns 0 on success. */
int cl_args_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int cl_args_int(const char *s, int min, int max, int *out);
/* Parses a finite decimal number in [min, max]. Returns 0 on success. */
int cl_args_double(const char *s, double min, double max, double *out);
/* The same for the value of an option ("--threads"): on a bad value prints "--threads must be
 * an integer from MIN to MAX, not 'S'" with the subcommand's usage and returns CL_EXIT_USAGE;
 * returns 0 on success. */
int cl_args_int_opt(const char *option, const char *s, int min, int max, int *out);
int cl_args_double_opt(const char *option, const char *s, double min, double max, double *out);

#endif
