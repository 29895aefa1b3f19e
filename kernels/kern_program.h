/* kern_program: the `program` kind: users' own code, run on nodes in a sandbox (PROGRAMS-API.md).
 *
 * It is a row of the kernel table like the others (its params, checks and description live
 * here), but a node runs it in client/cl_sandbox.c instead of a compute function, and its
 * partial is not a count: it is the first 128 bits of SHA-256 of the unit's outcome (its status,
 * and its stdout when the status is "ok"), so that replicas agree exactly when their outcomes are
 * byte-identical and the quorum machinery of workunits/ compares them unchanged. The outcome
 * itself is kept by the server (srv_prog.c), which combines the canonical ones at the end. */
#ifndef KERN_PROGRAM_H
#define KERN_PROGRAM_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "kern.h"
#include "ts_err.h"

#define KERN_PROG_STDOUT_MAX (256 * 1024) /* bytes of a unit's stdout a result carries */
#define KERN_PROG_STDERR_MAX (64 * 1024)
#define KERN_PROG_FILES_MAX 16            /* files a job names, main included */
#define KERN_PROG_NAME_MAX 64
#define KERN_PROG_NP_MAX 64

enum kern_combine { KERN_CONCAT, KERN_SUM, KERN_MIN, KERN_MAX };

/* A program job's parsed params. Strings point into the params JSON. */
typedef struct kern_prog {
	const char *lang; /* "py", "c" or "sh", from the main file's name */
	int np;
	int64_t time_s, memory_mb;
	uint64_t space;
	enum kern_combine combine;
	size_t n_files;   /* main first */
	const char *names[KERN_PROG_FILES_MAX], *hashes[KERN_PROG_FILES_MAX];
} kern_prog;

/* Parses and checks a program job's params (shape, names, hashes' form, ranges); the reason
 * names what is wrong. Whether the files exist is the server's check. */
ts_err kern_prog_parse(const json_t *params, kern_prog *out, char *why, size_t whylen);
const char *kern_combine_name(enum kern_combine c);

/* One unit's outcome as a node reports it (result of a program unit). */
typedef struct kern_prog_outcome {
	char status[64];
	unsigned char *out, *err;
	size_t out_len, err_len;
	int out_truncated, err_truncated;
} kern_prog_outcome;

/* 1 for the status forms a node may report: "ok", "exit status N" (1..255), "killed: time
 * limit", "killed: cpu limit", "killed: memory", "killed: signal N" (1..64), "compile error". */
int kern_prog_status_valid(const char *status);
/* Decodes a result object (base64 streams within the caps, no unknown key); TS_ERR_BAD_REQUEST
 * if malformed. On success the caller frees with kern_prog_outcome_free. */
ts_err kern_prog_outcome_from_json(const json_t *j, kern_prog_outcome *o);
/* The result object of an outcome (NULL: out of memory). */
json_t *kern_prog_outcome_to_json(const kern_prog_outcome *o);
void kern_prog_outcome_free(kern_prog_outcome *o);
/* The partial replicas are compared by: SHA-256 of status, NUL, and stdout if status is "ok". */
kern_partial kern_prog_digest(const kern_prog_outcome *o);

extern const kern kern_program;

#endif
