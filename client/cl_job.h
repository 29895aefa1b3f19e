/* cl_job: how the tessera CLI shows jobs, results and nodes (API JSON in, text out). */
#ifndef CL_JOB_H
#define CL_JOB_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

/* "[#########.....]  45.0%  90/200 units  12.3 s" for a job object and the seconds waited. */
void cl_job_bar(const json_t *job, double elapsed, char *out, size_t outlen);

/* The job's state, unit counts and progress, then its result or error: `tessera status`. */
void cl_job_print_summary(FILE *f, const json_t *job);

/* The finished job's result: estimate and error for montecarlo_pi, samples and hits, elapsed
 * time and rate, and units by node. The time is the server's started_at..finished_at (whole
 * seconds), or for jobs under 20 s observed_s, the wall time the caller watched the job run,
 * when it saw the job from its start (watched_start). observed_s <= 0: unknown. */
void cl_job_print_result(FILE *f, const json_t *job, double observed_s, int watched_start);

/* Tables for `tessera jobs` and `tessera nodes`. */
void cl_job_print_jobs(FILE *f, const json_t *jobs);
void cl_job_print_nodes(FILE *f, const json_t *nodes);

#endif
