/* cl_watch: the polling loop behind `tessera wait` and `tessera run`. */
#include "cl_watch.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cl_cli.h"
#include "cl_job.h"
#include "ts_util.h"

#define WATCH_POLL_S 0.5
#define WATCH_LOG_EVERY_S 5.0 /* progress lines when stderr is not a terminal */
#define WATCH_RETRY_MAX_S 5.0

static volatile sig_atomic_t watch_interrupted;

static void watch_on_signal(int sig)
{
	watch_interrupted = 1;
}

const volatile sig_atomic_t *cl_watch_catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = watch_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	return &watch_interrupted;
}

int cl_watch_finished(const char *state)
{
	return state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0 ||
			 strcmp(state, "cancelled") == 0);
}

static void watch_sleep(double seconds)
{
	double until = ts_mono() + seconds;
	while (!watch_interrupted) {
		double left = until - ts_mono();
		if (left <= 0)
			break;
		struct timespec ts = {0, (long)((left > 0.1 ? 0.1 : left) * 1e9)};
		nanosleep(&ts, NULL);
	}
}

/* "job 12: running on pi-1  3.2 s" for one-unit jobs (programs). */
static void watch_state_line(const json_t *job, int64_t id, double elapsed, char *out, size_t outlen)
{
	const char *state = json_string_value(json_object_get(job, "state"));
	const json_t *nodes = json_object_get(job, "nodes");
	const char *node = json_string_value(json_object_get(json_array_get(nodes, 0), "name"));
	char shown[256];
	if (state && strcmp(state, "running") == 0 && node)
		snprintf(out, outlen, "job %lld: running on %s  %.1f s", (long long)id,
			 ts_escape_ctrl(node, shown, sizeof(shown)), elapsed);
	else
		snprintf(out, outlen, "job %lld: %s  %.1f s", (long long)id, state ? state : "?", elapsed);
}

int cl_watch_job(cl_watch *w, const cl_state_config *cfg, cl_http *http, int64_t id, json_t **out)
{
	char path[64], msg[CL_HTTP_MSG_MAX], shown[4 * CL_HTTP_MSG_MAX], line[400];
	char last_note[300] = "", last_state[32] = "";
	int tty = isatty(STDERR_FILENO), first = 1, warned = 0, rc = 1;
	double t0 = ts_mono(), retry = WATCH_POLL_S, last_line = -1e9;
	json_t *job = NULL;
	*out = NULL;
	w->elapsed_s = 0;
	w->watched_start = 0;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld", (long long)id);
	while (!watch_interrupted) {
		int status = 0;
		json_t *next = NULL;
		double t_req = ts_mono();
		ts_err e = cl_http_request(http, "GET", path, NULL, &status, &next, msg, sizeof(msg));
		if (e && !watch_interrupted && (status == 0 || status >= 500 || status == 429)) {
			/* Transient: the job runs on without us; keep asking, a little slower. */
			if (!warned++)
				fprintf(stderr, "%s%s; retrying\n", tty ? "\r\033[K" : "",
					ts_escape_ctrl(msg, shown, sizeof(shown)));
			retry = retry * 2 > WATCH_RETRY_MAX_S ? WATCH_RETRY_MAX_S : retry * 2;
			watch_sleep(retry);
			goto check_timeout;
		}
		if (e) {
			if (watch_interrupted)
				break;
			if (tty)
				fputc('\n', stderr);
			cl_cli_request_failed(cfg, status, msg);
			rc = -1;
			goto out;
		}
		retry = WATCH_POLL_S;
		warned = 0;
		json_decref(job);
		job = next;
		const char *state = json_string_value(json_object_get(job, "state"));
		if (first) {
			json_int_t done = json_integer_value(
				json_object_get(json_object_get(job, "units"), "done"));
			w->watched_start = (state && strcmp(state, "queued") == 0) || done == 0;
			first = 0;
		}
		double now = ts_mono();
		int finished = cl_watch_finished(state);
		if (finished)
			w->elapsed_s = now - t0;
		if (w->style == CL_WATCH_BAR)
			cl_job_bar(job, now - t0, line, sizeof(line));
		else
			watch_state_line(job, id, now - t0, line, sizeof(line));
		/* Why the job does not move (too few volunteers for its quorum, no node that runs
		 * programs), once per change. */
		const char *note = json_string_value(json_object_get(job, "note"));
		if (note && strcmp(note, last_note) != 0)
			fprintf(stderr, "%snote: %s\n", tty ? "\r\033[K" : "",
				ts_escape_ctrl(note, shown, sizeof(shown)));
		snprintf(last_note, sizeof(last_note), "%s", note ? note : "");
		int changed = strcmp(state ? state : "", last_state) != 0;
		snprintf(last_state, sizeof(last_state), "%s", state ? state : "");
		if (tty) {
			fprintf(stderr, "\r%s\033[K%s", line, finished ? "\n" : "");
		} else if (finished || now - last_line >= WATCH_LOG_EVERY_S ||
			   (changed && w->style == CL_WATCH_STATE)) {
			fprintf(stderr, "%s\n", line);
			last_line = now;
		}
		if (finished) {
			*out = job;
			job = NULL;
			rc = 0;
			goto out;
		}
		watch_sleep(WATCH_POLL_S - (ts_mono() - t_req));
	check_timeout:
		if (w->timeout_s > 0 && ts_mono() - t0 >= w->timeout_s) {
			if (tty)
				fputc('\n', stderr);
			fprintf(stderr, "timed out after %.1f s: job %lld is still %s\n", ts_mono() - t0,
				(long long)id,
				job ? json_string_value(json_object_get(job, "state")) : "unknown");
			goto out;
		}
	}
	if (tty)
		fputc('\n', stderr);
out:
	if (rc == 1)
		*out = job;
	else
		json_decref(job);
	return rc;
}
