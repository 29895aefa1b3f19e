/* cl_unit: a node's program units (tessera-client run --programs): the files a unit names,
 * fetched by hash and cached, a fresh work dir per unit, the sandbox run (cl_sandbox), and the
 * unit's outcome as a pending report item.
 *
 * A program's own failure (exit status, a limit, a compile error) is its result; only what is
 * the node's fault (the sandbox could not start, a file could not be fetched) gives the unit
 * back. */
#ifndef CL_UNIT_H
#define CL_UNIT_H

#include <stddef.h>

#include <jansson.h>

#include "cl_http.h"
#include "ts_err.h"

typedef struct cl_unit cl_unit;

/* Probes the sandbox (refusing with why when it cannot run: there is no unsandboxed mode) and
 * prepares STATE_DIR/programs. hostfile: run programs across a cluster with mpirun --hostfile
 * (NULL: on this machine). slots: processes it offers to run at once (0: the probe's, the
 * online CPUs or the hostfile's slots). */
ts_err cl_unit_open(const char *state_dir, const char *hostfile, int slots, cl_unit **out, char *why,
		    size_t whylen);
void cl_unit_close(cl_unit *p);

/* What the node tells the server it runs (the "programs" of enroll and heartbeat); owned by p. */
const json_t *cl_unit_caps(const cl_unit *p);

/* Runs one program unit as /work/fetch handed it out, downloading its files on http (the node's
 * connection). On TS_OK *item is a pending item like cl_node_compute's. Errors (why says
 * which) give the unit back: TS_ERR_NOT_FOUND when this node cannot run it (language, slots),
 * TS_ERR_UNAVAILABLE when *cancel was set, others for node-side failures. */
ts_err cl_unit_run(cl_unit *p, cl_http *http, const json_t *unit, const volatile int *cancel, json_t **item,
		   char *why, size_t whylen);

/* 1 when the unit is a program unit. */
int cl_unit_is_program(const json_t *unit);

#endif
