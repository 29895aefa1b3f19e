/* cl_submit: `tessera submit` and `tessera kernels`, whose kernels, aliases and parameter options
 * come from the server (GET /api/v1/kernels, through cl_kinds), and the command-line plumbing
 * that `submit program` and `run` (cl_prog) share with them.
 *
 * Commands follow cl_args_cmd's contract and run through cl_args_dispatch. */
#ifndef CL_SUBMIT_H
#define CL_SUBMIT_H

#include <stddef.h>

#include <jansson.h>

#include "cl_http.h"
#include "cl_state.h"

#define CL_SUBMIT_WORDS_MAX 8
#define CL_SUBMIT_OPTS_MAX 128
#define CL_SUBMIT_NAME_MAX 64

/* A submit-like command line: words, "--NAME VALUE" (or --NAME=VALUE, -n VALUE) options in
 * order, flags, and what follows "--". Values point into argv. */
typedef struct cl_submit_line {
	const char *words[CL_SUBMIT_WORDS_MAX];
	size_t nwords;
	struct {
		char name[CL_SUBMIT_NAME_MAX];
		const char *value;
		int is_short; /* -n, not --n */
	} opts[CL_SUBMIT_OPTS_MAX];
	size_t nopts;
	char **rest; /* after "--" (NULL when there was none) */
	int nrest;
	int help, adaptive;
} cl_submit_line;

/* Scans argv[1..] (argv[0] is the command). Every long option takes a value but --help and
 * --adaptive; short_opts lists the one-letter options, which all take one ("n" for -n N).
 * Returns 0, or the usage error's exit status (said on stderr). */
int cl_submit_scan(int argc, char **argv, const char *short_opts, cl_submit_line *line);

/* Sets a job option (--units, --unit-size, --replication, --quorum, --deadline) in body.
 * Returns 1 when name is one, 0 when it is not, or a usage error's exit status (said). */
int cl_submit_job_option(const char *name, const char *value, json_t *body);

/* Checks what spans job options (units and unit-size both; quorum above replication). 0, or the
 * usage error's exit status. */
int cl_submit_job_check(const json_t *body);

/* The server's kinds (GET /api/v1/kernels) in *kinds (a new reference). A server that predates
 * that route (404) gets cl_kinds_legacy() and *legacy = 1. -1 when the request failed (said). */
int cl_submit_kinds(const cl_state_config *cfg, cl_http *http, json_t **kinds, int *legacy);

/* POST /api/v1/jobs with body; prints the new job's id on stdout. 0 or -1 (said). With id not
 * NULL the id is stored there and not printed. */
int cl_submit_post(const cl_state_config *cfg, cl_http *http, const json_t *body, long long *id);

/* submit KERNEL [--PARAM VALUE]... [job options]; submit program ... goes to cl_prog_submit. */
int cl_submit_cmd(int argc, char **argv);
/* kernels [--json] */
int cl_submit_kernels_cmd(int argc, char **argv);

#endif
