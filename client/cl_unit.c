/* cl_unit: a node's program units (cl_unit.h). */
#define _XOPEN_SOURCE 700
#include "cl_unit.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_sandbox.h"
#include "kern_program.h"
#include "ts_util.h"

#define PROG_FILE_MAX (1u << 20) /* the server's cap on one file */
#define PROG_FILE_MB 256         /* largest file a program writes, and its /tmp */
#define PROG_DEADLINE_SLACK_S 20 /* the run ends this long before its lease, to report in time */

struct cl_unit {
	char dir[1024];      /* STATE_DIR/programs: files/ (by hash) and work/ (one per unit) */
	char hostfile[1024]; /* "" for none */
	cl_sandbox_caps caps;
	json_t *caps_json;
};

int cl_unit_is_program(const json_t *unit)
{
	const char *k = json_string_value(json_object_get(unit, "kernel"));
	return k && strcmp(k, kern_program.name) == 0;
}

ts_err cl_unit_open(const char *state_dir, const char *hostfile, int slots, cl_unit **out, char *why, size_t whylen)
{
	cl_unit *p = calloc(1, sizeof(*p));
	*out = NULL;
	if (!p) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	ts_err result = cl_sandbox_probe(hostfile, &p->caps);
	if (!result && !p->caps.ok)
		result = TS_ERR_UNAVAILABLE;
	if (result) {
		snprintf(why, whylen, "--programs: %s", p->caps.why[0] ? p->caps.why : "the sandbox cannot run here");
		free(p);
		return result;
	}
	snprintf(p->hostfile, sizeof(p->hostfile), "%s", hostfile ? hostfile : "");
	if (slots > 0 && p->caps.mpirun)
		p->caps.slots = slots; /* the volunteer's choice (mpirun oversubscribes) */
	char files[1100], work[1100];
	snprintf(p->dir, sizeof(p->dir), "%s/programs", state_dir);
	snprintf(files, sizeof(files), "%s/files", p->dir);
	snprintf(work, sizeof(work), "%s/work", p->dir);
	if (ts_mkdirs(files, 0700) || ts_mkdirs(work, 0700)) {
		snprintf(why, whylen, "cannot make %s: %s", p->dir, strerror(errno));
		free(p);
		return TS_ERR_IO;
	}
	if (!(p->caps_json = cl_sandbox_caps_json(&p->caps))) {
		snprintf(why, whylen, "out of memory");
		free(p);
		return TS_ERR_NOMEM;
	}
	*out = p;
	return TS_OK;
}

void cl_unit_close(cl_unit *p)
{
	if (!p)
		return;
	json_decref(p->caps_json);
	free(p);
}

const json_t *cl_unit_caps(const cl_unit *p)
{
	return p->caps_json;
}

/* A program may leave a directory without permissions: open them all before removing. */
static int open_up(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	if (type == FTW_D || type == FTW_DNR)
		chmod(path, (st->st_mode & 07777) | S_IRWXU);
	return 0;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)st, (void)f;
	return (type == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

static void remove_tree(const char *dir)
{
	nftw(dir, open_up, 16, FTW_PHYS);
	nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The file of that hash from the cache, fetched and checked first if it is not there. */
static ts_err file_get(cl_unit *p, cl_http *http, const char *hash, unsigned char **data, size_t *len, char *why,
		       size_t whylen)
{
	char path[1200], url[128];
	snprintf(path, sizeof(path), "%s/files/%s", p->dir, hash);
	char *cached = NULL;
	unsigned char d[32];
	char hex[65];
	if (ts_read_file(path, PROG_FILE_MAX, &cached, len) == TS_OK) {
		ts_sha256(cached, *len, d);
		ts_hex(d, sizeof(d), hex);
		if (strcmp(hex, hash) == 0) {
			*data = (unsigned char *)cached;
			return TS_OK;
		}
		free(cached); /* damaged on disk: fetched again */
	}
	snprintf(url, sizeof(url), "/api/v1/files/%s", hash);
	int status = 0;
	char msg[CL_HTTP_MSG_MAX];
	char *buf = NULL;
	size_t n = 0;
	FILE *sink = open_memstream(&buf, &n);
	if (!sink) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	ts_err result = cl_http_raw(http, "GET", url, NULL, 0, sink, &status, NULL, msg, sizeof(msg));
	fclose(sink);
	*data = (unsigned char *)buf;
	*len = n;
	if (!result && n > PROG_FILE_MAX) {
		snprintf(msg, sizeof(msg), "over %u bytes", PROG_FILE_MAX);
		result = TS_ERR_TOO_LARGE;
	}
	if (result) {
		snprintf(why, whylen, "fetching file %.12s...: %s", hash, msg);
		free(buf);
		*data = NULL;
		return result;
	}
	ts_sha256(*data, *len, d);
	ts_hex(d, sizeof(d), hex);
	if (strcmp(hex, hash) != 0) {
		snprintf(why, whylen, "file %.12s... came with other content (sha256 %.12s...)", hash, hex);
		free(*data);
		*data = NULL;
		return TS_ERR_BAD_REQUEST;
	}
	if (ts_write_file(path, *data, *len, 0600) != TS_OK)
		fprintf(stderr, "could not cache %s (it is fetched again next time)\n", path);
	return TS_OK;
}

/* A fresh work dir for the unit, holding the job's files under their names. */
static ts_err work_make(cl_unit *p, cl_http *http, const kern_prog *kp, json_int_t unit, char *dir, size_t dirlen,
			char *why, size_t whylen)
{
	snprintf(dir, dirlen, "%s/work/unit-%" JSON_INTEGER_FORMAT, p->dir, unit);
	remove_tree(dir);
	if (mkdir(dir, 0700) != 0) {
		snprintf(why, whylen, "cannot make %s: %s", dir, strerror(errno));
		return TS_ERR_IO;
	}
	for (size_t i = 0; i < kp->n_files; i++) {
		unsigned char *data = NULL;
		size_t len = 0;
		ts_err result = file_get(p, http, kp->hashes[i], &data, &len, why, whylen);
		if (result)
			return result;
		char path[1400];
		snprintf(path, sizeof(path), "%s/%s", dir, kp->names[i]);
		result = ts_write_file(path, data, len, 0644);
		free(data);
		if (result) {
			snprintf(why, whylen, "cannot write %s", path);
			return result;
		}
	}
	return TS_OK;
}

static ts_err unit_u64(const json_t *unit, const char *key, uint64_t *out)
{
	json_t *v = json_object_get(unit, key);
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return TS_ERR_BAD_REQUEST;
	*out = (uint64_t)json_integer_value(v);
	return TS_OK;
}

/* Whether this node offers what the unit needs. */
static int prog_can_run(const cl_unit *p, const kern_prog *kp, char *why, size_t whylen)
{
	const json_t *langs = json_object_get(p->caps_json, "langs"), *l;
	size_t i;
	int lang = 0;
	json_array_foreach(langs, i, l)
		lang |= strcmp(json_string_value(l), kp->lang) == 0;
	if (!lang) {
		snprintf(why, whylen, "this node cannot run .%s programs", kp->lang);
		return 0;
	}
	if (kp->np > p->caps.slots) {
		snprintf(why, whylen, "the program needs %d processes; this node runs %d", kp->np, p->caps.slots);
		return 0;
	}
	return 1;
}

ts_err cl_unit_run(cl_unit *p, cl_http *http, const json_t *unit, const volatile int *cancel, json_t **item,
		   char *why, size_t whylen)
{
	uint64_t id = 0, job = 0, start = 0, count = 0, deadline = 0;
	const json_t *params = json_object_get(unit, "params");
	kern_prog kp;
	char pwhy[256], dir[1200];
	*item = NULL;
	if (unit_u64(unit, "id", &id) || !id || unit_u64(unit, "job_id", &job) || unit_u64(unit, "start", &start) ||
	    unit_u64(unit, "count", &count) || !count) {
		snprintf(why, whylen, "malformed unit from the server");
		return TS_ERR_BAD_REQUEST;
	}
	unit_u64(unit, "deadline", &deadline);
	if (kern_prog_parse(params, &kp, pwhy, sizeof(pwhy))) {
		snprintf(why, whylen, "bad params for a program: %s", pwhy);
		return TS_ERR_BAD_REQUEST;
	}
	if (!prog_can_run(p, &kp, why, whylen))
		return TS_ERR_NOT_FOUND;
	ts_err result = work_make(p, http, &kp, (json_int_t)id, dir, sizeof(dir), why, whylen);
	if (result) {
		remove_tree(dir);
		return result;
	}
	/* The environment of a split program's unit. */
	char env_start[64], env_count[64], env_space[64], env_np[32];
	snprintf(env_start, sizeof(env_start), "TESSERA_UNIT_START=%" PRIu64, start);
	snprintf(env_count, sizeof(env_count), "TESSERA_UNIT_COUNT=%" PRIu64, count);
	snprintf(env_space, sizeof(env_space), "TESSERA_SPACE=%" PRIu64, kp.space);
	snprintf(env_np, sizeof(env_np), "TESSERA_NP=%d", kp.np);
	const char *env[] = {env_start, env_count, env_space, env_np, NULL};
	const char *argv[65] = {NULL};
	json_t *args = json_object_get(params, "args"), *a;
	size_t i;
	json_array_foreach(args, i, a)
		if (i < TS_ARRAY_LEN(argv) - 1)
			argv[i] = json_string_value(a);
	/* The wall limit is the program's, and never past its lease (less time to report). */
	double wall = (double)kp.time_s;
	int64_t left = deadline ? (int64_t)deadline - ts_now() - PROG_DEADLINE_SLACK_S : 0;
	if (deadline && left > 0 && (double)left < wall)
		wall = (double)left;
	cl_sandbox_spec spec = {
		.work_dir = dir,
		.main = kp.names[0],
		.argv = argv,
		.env = env,
		.np = kp.np,
		.hostfile = p->hostfile[0] ? p->hostfile : NULL,
		.wall_s = wall,
		.cpu_s = (double)kp.time_s,
		.memory_mb = kp.memory_mb,
		.nproc = 64 + 16 * kp.np,
		.file_mb = PROG_FILE_MB,
		.stdout_max = KERN_PROG_STDOUT_MAX,
		.stderr_max = KERN_PROG_STDERR_MAX,
	};
	cl_sandbox_result res;
	double t0 = ts_mono();
	result = cl_sandbox_run(&spec, &res, cancel, why, whylen);
	double took = ts_mono() - t0;
	remove_tree(dir);
	if (!result) {
		kern_prog_outcome o = {.out = res.out, .err = res.err, .out_len = res.out_len, .err_len = res.err_len,
				       .out_truncated = res.out_truncated, .err_truncated = res.err_truncated};
		snprintf(o.status, sizeof(o.status), "%s", res.status);
		json_t *r = kern_prog_outcome_to_json(&o);
		*item = r ? json_pack("{s:{s:I,s:o,s:f},s:I,s:I,s:I}", "report", "unit_id", (json_int_t)id, "result", r,
				      "wall_s", took, "job_id", (json_int_t)job, "start", (json_int_t)start, "count",
				      (json_int_t)count)
			  : NULL;
		if (!*item) {
			snprintf(why, whylen, "out of memory");
			result = TS_ERR_NOMEM;
		}
	}
	cl_sandbox_result_free(&res);
	return result;
}
