/* cl_job: text views of the API's job and node objects. */
#include "cl_job.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ts_util.h"

#define BAR_WIDTH 30

static json_int_t job_int(const json_t *obj, const char *key)
{
	return json_integer_value(json_object_get(obj, key));
}

static const char *job_str(const json_t *obj, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(obj, key));
	return s ? s : dflt;
}

/* Progress in [0, 1]: the server's figure, else units done over total. */
static double job_progress(const json_t *job)
{
	const json_t *units = json_object_get(job, "units");
	json_t *p = json_object_get(job, "progress");
	double v;
	if (json_is_number(p))
		v = json_number_value(p);
	else if (job_int(units, "total") > 0)
		v = (double)job_int(units, "done") / (double)job_int(units, "total");
	else
		v = 0;
	return v < 0 ? 0 : v > 1 ? 1 : v;
}

void cl_job_bar(const json_t *job, double elapsed, char *out, size_t outlen)
{
	const json_t *units = json_object_get(job, "units");
	double p = job_progress(job);
	char bar[BAR_WIDTH + 1];
	int full = (int)(p * BAR_WIDTH + 1e-9);
	for (int i = 0; i < BAR_WIDTH; i++)
		bar[i] = i < full ? '#' : '.';
	bar[BAR_WIDTH] = '\0';
	snprintf(out, outlen,
		 "[%s] %5.1f%%  %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " units  %.1f s", bar,
		 p * 100.0, job_int(units, "done"), job_int(units, "total"), elapsed);
}

static void job_time(json_int_t t, char *out, size_t outlen)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (t <= 0 || !localtime_r(&tt, &tm) || !strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, outlen, "-");
}

/* The size of the job's index space when the params say it (for the rate). */
static double job_space(const json_t *job)
{
	const json_t *params = json_object_get(job, "params");
	const json_t *result = json_object_get(job, "result");
	if (json_is_integer(json_object_get(result, "samples")))
		return (double)job_int(result, "samples");
	if (json_is_integer(json_object_get(params, "samples")))
		return (double)job_int(params, "samples");
	if (json_is_integer(json_object_get(params, "to")))
		return (double)(job_int(params, "to") - job_int(params, "from"));
	return 0;
}

/* A program job's result (docs/PROGRAMS-API.md): one unit's status and sizes, or the combined
 * value of a split job; the output itself is `tessera output ID`'s. */
static void job_print_program(FILE *f, const json_t *job, const json_t *result)
{
	char shown[512];
	json_int_t id = job_int(job, "id");
	const char *combine = job_str(result, "combine", NULL);
	if (json_is_string(json_object_get(result, "status"))) {
		fprintf(f, "status: %s   stdout: %" JSON_INTEGER_FORMAT " bytes   stderr: %" JSON_INTEGER_FORMAT
			   " bytes\n",
			ts_escape_ctrl(job_str(result, "status", "?"), shown, sizeof(shown)),
			job_int(result, "stdout_bytes"), job_int(result, "stderr_bytes"));
		fprintf(f, "output: tessera output %" JSON_INTEGER_FORMAT " (stderr: tessera output %"
			   JSON_INTEGER_FORMAT " --unit 0 --stderr)\n", id, id);
	} else if (combine && strcmp(combine, "concat") == 0) {
		fprintf(f, "concat of %" JSON_INTEGER_FORMAT " units: %" JSON_INTEGER_FORMAT " bytes\n",
			job_int(result, "units"), job_int(result, "bytes"));
		fprintf(f, "output: tessera output %" JSON_INTEGER_FORMAT "\n", id);
	} else if (combine) {
		char *value = json_dumps(json_object_get(result, "value"), JSON_COMPACT | JSON_ENCODE_ANY);
		fprintf(f, "%s of %" JSON_INTEGER_FORMAT " units: %s\n",
			ts_escape_ctrl(combine, shown, sizeof(shown)), job_int(result, "units"),
			value ? value : "?");
		free(value);
	} else {
		char *text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
		fprintf(f, "result: %s\n", text ? text : "?");
		free(text);
	}
}

/* "pi.py, 3 processes, args [\"10\"], 100 units of 1e6" for `tessera status`. */
static void job_program_params(const json_t *params, char *out, size_t outlen)
{
	const json_t *main_file = json_object_get(params, "main");
	char *args = json_dumps(json_object_get(params, "args"), JSON_COMPACT | JSON_ENCODE_ANY);
	char name[256];
	size_t nfiles = json_array_size(json_object_get(params, "files"));
	ts_escape_ctrl(job_str(main_file, "name", "?"), name, sizeof(name));
	snprintf(out, outlen, "%s, %" JSON_INTEGER_FORMAT " process%s, %zu more file%s, time %" JSON_INTEGER_FORMAT
			      " s, memory %" JSON_INTEGER_FORMAT " MB, args %s",
		 name, job_int(params, "np") ? job_int(params, "np") : 1,
		 job_int(params, "np") > 1 ? "es" : "", nfiles, nfiles == 1 ? "" : "s",
		 job_int(params, "time_s") ? job_int(params, "time_s") : 600,
		 job_int(params, "memory_mb") ? job_int(params, "memory_mb") : 1024, args ? args : "[]");
	free(args);
}

void cl_job_print_result(FILE *f, const json_t *job, double observed_s, int watched_start)
{
	const json_t *result = json_object_get(job, "result");
	const char *kernel = job_str(job, "kernel", "?");
	int pi = strcmp(kernel, "montecarlo_pi") == 0;
	if (pi && json_is_integer(json_object_get(result, "samples")) &&
	    json_is_integer(json_object_get(result, "hits")) && job_int(result, "samples") > 0) {
		double n = (double)job_int(result, "samples"), h = (double)job_int(result, "hits");
		double est = 4.0 * h / n;
		json_t *se = json_object_get(result, "stderr");
		double stderr_v = json_is_number(se) ? json_number_value(se)
						     : 4.0 * sqrt(h / n * (1.0 - h / n) / n);
		fprintf(f, "pi ≈ %.10f  (error vs π: %+.1e, stderr %.1e)\n", est, est - M_PI, stderr_v);
		fprintf(f, "samples: %" JSON_INTEGER_FORMAT "  hits: %" JSON_INTEGER_FORMAT "\n",
			job_int(result, "samples"), job_int(result, "hits"));
	} else if (strcmp(kernel, "program") == 0 && json_is_object(result)) {
		job_print_program(f, job, result);
	} else {
		char *text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY);
		fprintf(f, "result: %s\n", text ? text : "?");
		free(text);
	}

	/* The server's span is the job's own run time, but in whole seconds: for a short job a
	 * wait that watched it from the start measures better (start-up latency included). */
	json_int_t started = job_int(job, "started_at"), finished = job_int(job, "finished_at");
	int have_span = started > 0 && finished >= started;
	double elapsed = 0;
	const char *how = NULL;
	if (observed_s > 0 && watched_start && (!have_span || finished - started < 20)) {
		elapsed = observed_s;
		how = "observed by this wait";
	} else if (have_span) {
		elapsed = (double)(finished - started);
		how = "server clock, whole seconds";
	} else if (observed_s > 0) {
		elapsed = observed_s;
		how = "observed by this wait, job already running";
	}
	double space = job_space(job);
	if (how && elapsed > 0 && space > 0)
		fprintf(f, "elapsed: %.1f s (%s)   rate: %.3g %s/s\n", elapsed, how, space / elapsed,
			pi ? "samples" : "indices");
	else if (how)
		fprintf(f, "elapsed: %.1f s (%s)\n", elapsed, how);

	const json_t *nodes = json_object_get(job, "nodes");
	if (json_array_size(nodes) > 0) {
		size_t i;
		json_t *nd;
		fprintf(f, "units by node:\n");
		json_array_foreach(nodes, i, nd)
			fprintf(f, "  %s (node %" JSON_INTEGER_FORMAT "): %" JSON_INTEGER_FORMAT " units\n",
				job_str(nd, "name", "?"), job_int(nd, "node_id"), job_int(nd, "units"));
	}
}

void cl_job_print_summary(FILE *f, const json_t *job)
{
	const json_t *units = json_object_get(job, "units");
	const char *state = job_str(job, "state", "?");
	char *params = json_dumps(json_object_get(job, "params"), JSON_COMPACT | JSON_ENCODE_ANY);
	char created[32], program[1024];
	if (strcmp(job_str(job, "kernel", "?"), "program") == 0 && params) {
		job_program_params(json_object_get(job, "params"), program, sizeof(program));
		free(params);
		params = strdup(program);
	}
	job_time(job_int(job, "created_at"), created, sizeof(created));
	fprintf(f, "job %" JSON_INTEGER_FORMAT ": %s\n", job_int(job, "id"), state);
	fprintf(f, "kernel: %s %s\n", job_str(job, "kernel", "?"), params ? params : "");
	fprintf(f, "owner: %s  created: %s\n", job_str(job, "owner", "?"), created);
	fprintf(f,
		"units: %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " done, %" JSON_INTEGER_FORMAT
		" leased, %" JSON_INTEGER_FORMAT " ready   progress: %.1f%%\n",
		job_int(units, "done"), job_int(units, "total"), job_int(units, "leased"),
		job_int(units, "ready"), job_progress(job) * 100.0);
	free(params);
	if (json_is_string(json_object_get(job, "note")))
		fprintf(f, "note: %s\n", job_str(job, "note", ""));
	if (strcmp(state, "done") == 0)
		cl_job_print_result(f, job, 0, 0);
	else if (json_is_string(json_object_get(job, "error")))
		fprintf(f, "error: %s\n", job_str(job, "error", ""));
}

void cl_job_print_jobs(FILE *f, const json_t *jobs)
{
	size_t i;
	json_t *job;
	if (json_array_size(jobs) == 0) {
		fprintf(f, "no jobs\n");
		return;
	}
	fprintf(f, "%6s  %-9s  %-16s  %8s  %s\n", "ID", "STATE", "KERNEL", "PROGRESS", "CREATED");
	json_array_foreach(jobs, i, job) {
		char created[32];
		job_time(job_int(job, "created_at"), created, sizeof(created));
		fprintf(f, "%6" JSON_INTEGER_FORMAT "  %-9s  %-16s  %7.1f%%  %s\n", job_int(job, "id"),
			job_str(job, "state", "?"), job_str(job, "kernel", "?"),
			job_progress(job) * 100.0, created);
	}
}

static void node_seen(json_int_t t, char *out, size_t outlen)
{
	long long ago = (long long)time(NULL) - (long long)t;
	if (t <= 0)
		snprintf(out, outlen, "never");
	else if (ago < 120)
		snprintf(out, outlen, "%lld s ago", ago < 0 ? 0 : ago);
	else if (ago < 7200)
		snprintf(out, outlen, "%lld min ago", ago / 60);
	else if (ago < 2 * 86400)
		snprintf(out, outlen, "%lld h ago", ago / 3600);
	else
		snprintf(out, outlen, "%lld days ago", ago / 86400);
}

void cl_job_print_nodes(FILE *f, const json_t *nodes)
{
	size_t i;
	json_t *nd;
	if (json_array_size(nodes) == 0) {
		fprintf(f, "no nodes\n");
		return;
	}
	fprintf(f, "%5s  %-20s  %-16s  %5s  %-12s  %6s  %10s  %5s  %s\n", "ID", "NAME", "PLATFORM",
		"CORES", "STATE", "RELIAB", "UNITS", "TOKEN", "LAST SEEN");
	json_array_foreach(nodes, i, nd) {
		char seen[32], rel[16] = "-", token[24] = "-", name[256], platform[256], state[40];
		const json_t *r = json_object_get(nd, "reliability");
		const char *st = job_str(nd, "state", "?");
		const char *paused = json_string_value(json_object_get(nd, "paused"));
		/* An online node that its volunteer's controls pause: "paused:hot" (the server only
		 * sends the four reasons). */
		if (paused && strcmp(st, "online") == 0)
			snprintf(state, sizeof(state), "paused:%.24s", paused);
		else
			snprintf(state, sizeof(state), "%.32s", st);
		node_seen(job_int(nd, "last_seen"), seen, sizeof(seen));
		if (json_is_number(r))
			snprintf(rel, sizeof(rel), "%.3f", json_number_value(r));
		/* The enrollment token the node came with: nodes with one token are one volunteer. */
		if (json_is_integer(json_object_get(nd, "enroll_token_id")))
			snprintf(token, sizeof(token), "%" JSON_INTEGER_FORMAT, job_int(nd, "enroll_token_id"));
		/* Names come from volunteers: never send their control characters to a terminal. */
		fprintf(f,
			"%5" JSON_INTEGER_FORMAT "  %-20s  %-16s  %5" JSON_INTEGER_FORMAT
			"  %-12s  %6s  %10" JSON_INTEGER_FORMAT "  %5s  %s\n",
			job_int(nd, "id"), ts_escape_ctrl(job_str(nd, "name", "?"), name, sizeof(name)),
			ts_escape_ctrl(job_str(nd, "platform", "?"), platform, sizeof(platform)),
			job_int(nd, "cores"), state, rel, job_int(nd, "units_done"),
			token, seen);
	}
}
