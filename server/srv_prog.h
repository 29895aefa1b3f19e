/* srv_prog: users' programs on the server (docs/PROGRAMS-API.md): who may submit them, the files
 * they name, which nodes may run them, the outcomes nodes report, and the job's combined result.
 * The routes are declared in srv_http.h; the program kind's params are kernels/kern_program.c. */
#ifndef SRV_PROG_H
#define SRV_PROG_H

#include <stdint.h>

#include <jansson.h>

#include "kern_program.h"
#include "srv_http.h"
#include "srv_store.h"

#define SRV_PROG_FILE_MAX SRV_MAX_UPLOAD /* bytes of one uploaded file: one request's body */
#define SRV_PROG_JOB_FILES (16 << 20)   /* bytes of the files one job names */
#define SRV_PROG_USER_FILES (256 << 20) /* bytes a user keeps uploaded */
#define SRV_PROG_MAX_UNITS 10000        /* units of one program job */
#define SRV_PROG_CONCAT_MAX (64 << 20)  /* bytes of a concat job's combined output */


/* A program job about to be inserted: the submitter may run programs (admins, or granted), each
 * file is theirs, the files fit the job's cap, the units the program cap. Errors have r->why. */
ts_err srv_prog_submit_check(srv_ctx *ctx, srv_req *r, const kern_prog *p, uint64_t n_units);
/* After the job's row is in: what a node needs to run it, and the files it names. */
ts_err srv_prog_submitted(srv_db *db, int64_t job, const kern_prog *p);

/* A node's "programs" (enroll, heartbeat): checked and stored; JSON null clears them (the node
 * runs none). TS_ERR_BAD_REQUEST with why. */
ts_err srv_prog_node_caps(srv_db *db, int64_t node, const json_t *programs, char *why, size_t whylen);

/* Keeps a reported program outcome (the unit's result object) for its replica. */
ts_err srv_prog_output_put(srv_db *db, int64_t replica, const json_t *result);

/* A program unit became valid: if its outcome is a failure, the job fails with it (*failed 1). */
ts_err srv_prog_unit_settled(srv_db *db, srv_work_job *j, const wu_unit *u, int64_t now, int *failed);

/* A program job's result from its units' canonical outcomes (malloc'd JSON text in *text); when
 * they cannot be combined (an output that is not a number, an overflow) *text is NULL and
 * error says why: the job fails with it. */
ts_err srv_prog_finalize(srv_db *db, const srv_work_job *j, char **text, char *error, size_t errlen);

#endif
