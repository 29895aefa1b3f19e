/* cl_prog: users' own programs from the tessera CLI (docs/PROGRAMS-API.md): `run`, `submit
 * program` and `output`, and the local checks of a program's files before anything is sent.
 *
 * Files are uploaded with PUT /api/v1/files (the server keeps one copy of each content, so
 * every file is sent each time) and named by hash in the job. The numbers (-n, --time,
 * --memory, --space, --combine) are checked against the program kind of GET /api/v1/kernels.
 *
 * `tessera run` exits with the program's exit status; its own failures exit 125, as
 * `docker run` does (see cl_prog_exit_code for the rest). */
#ifndef CL_PROG_H
#define CL_PROG_H

#include <stddef.h>

/* The contract's caps, checked here before anything is sent (the server checks them too). */
#define CL_PROG_FILE_MAX (1u << 20) /* bytes of one file (one request body) */
#define CL_PROG_JOB_FILES 16        /* files of a job, the program included */
#define CL_PROG_ARGS_MAX 64
#define CL_PROG_ARGS_BYTES 4096
#define CL_PROG_NAME_MAX 64

/* Exit statuses of `tessera run` besides the program's own. */
enum {
	CL_PROG_EXIT_LIMIT = 124,   /* killed: time limit, killed: cpu limit (as timeout(1)) */
	CL_PROG_EXIT_TESSERA = 125, /* tessera itself failed: usage, files, refused, unreachable */
	CL_PROG_EXIT_COMPILE = 126, /* compile error: the program could not be started */
	CL_PROG_EXIT_MEMORY = 137,  /* killed: memory (as an OOM kill shows in a shell) */
	CL_PROG_EXIT_INTERRUPTED = 130,
};

/* The exit status for a unit's status: "ok" 0, "exit status N" N, "killed: signal N" 128+N,
 * the kills and "compile error" as above; anything else CL_PROG_EXIT_TESSERA. */
int cl_prog_exit_code(const char *status);

/* The language of a program file name by its extension: "py", "c", "sh", or NULL. */
const char *cl_prog_lang(const char *name);

/* Whether name is a file name a job may carry: 1..64 of A-Z a-z 0-9 . _ -, not starting
 * with '.'. */
int cl_prog_name_ok(const char *name);

/* How `tessera kernels` names the program kind's parameters on the command line ("FILE",
 * "-n N", "--file FILE"...); NULL for other kinds and unknown names (cl_kinds_print's
 * option_of). */
const char *cl_prog_option_of(const char *kind, const char *param);

/* run FILE [-n N] [--file EXTRA]... [--time S] [--memory MB] [--replication R --quorum Q]
 * [-- ARGS...] */
int cl_prog_run(int argc, char **argv);
/* submit program FILE [--space S] [--units K] [--combine C] ... [-- ARGS...]: prints the id */
int cl_prog_submit(int argc, char **argv);
/* output ID [--unit SEQ [--stderr]] */
int cl_prog_output(int argc, char **argv);

#endif
