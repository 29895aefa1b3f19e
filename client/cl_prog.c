/* cl_prog: users' programs from the command line: check, upload, submit, watch, print. */
#include "cl_prog.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cl_args.h"
#include "cl_cli.h"
#include "cl_kinds.h"
#include "cl_submit.h"
#include "cl_watch.h"
#include "ts_util.h"

#define PROG_NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"

/* Command-line options of a program job and the parameters they set; the rest are job options
 * (cl_submit_job_option) or --file. run_ok: `run` takes it (a run is one unit). */
static const struct {
	const char *option, *param, *shown;
	int run_ok;
} prog_options[] = {
	{"n", "np", "-n N", 1},
	{"np", "np", NULL, 1},
	{"time", "time_s", "--time SECONDS", 1},
	{"memory", "memory_mb", "--memory MB", 1},
	{"space", "space", "--space S", 0},
	{"combine", "combine", "--combine C", 0},
};

const char *cl_prog_option_of(const char *kind, const char *param)
{
	if (!kind || strcmp(kind, "program") != 0)
		return NULL;
	if (strcmp(param, "main") == 0)
		return "FILE";
	if (strcmp(param, "files") == 0)
		return "--file FILE";
	if (strcmp(param, "args") == 0)
		return "-- ARGS";
	for (size_t i = 0; i < TS_ARRAY_LEN(prog_options); i++)
		if (prog_options[i].shown && strcmp(param, prog_options[i].param) == 0)
			return prog_options[i].shown;
	return NULL;
}

int cl_prog_exit_code(const char *status)
{
	int n;
	char tail;
	if (!status)
		return CL_PROG_EXIT_TESSERA;
	if (strcmp(status, "ok") == 0)
		return 0;
	if (sscanf(status, "exit status %d%c", &n, &tail) == 1 && n >= 0 && n <= 255)
		return n;
	if (sscanf(status, "killed: signal %d%c", &n, &tail) == 1 && n > 0 && n < 128)
		return 128 + n;
	if (strcmp(status, "killed: time limit") == 0 || strcmp(status, "killed: cpu limit") == 0)
		return CL_PROG_EXIT_LIMIT;
	if (strcmp(status, "killed: memory") == 0)
		return CL_PROG_EXIT_MEMORY;
	if (strcmp(status, "compile error") == 0)
		return CL_PROG_EXIT_COMPILE;
	return CL_PROG_EXIT_TESSERA;
}

const char *cl_prog_lang(const char *name)
{
	static const char *const langs[][2] = {{".py", "py"}, {".c", "c"}, {".sh", "sh"}};
	size_t n = strlen(name);
	for (size_t i = 0; i < TS_ARRAY_LEN(langs); i++) {
		size_t k = strlen(langs[i][0]);
		if (n > k && strcmp(name + n - k, langs[i][0]) == 0)
			return langs[i][1];
	}
	return NULL;
}

int cl_prog_name_ok(const char *name)
{
	size_t n = strlen(name);
	return n >= 1 && n <= CL_PROG_NAME_MAX && name[0] != '.' && strspn(name, PROG_NAME_CHARS) == n;
}

struct prog_file {
	const char *path;
	const char *name; /* the path's last part: the name the program sees */
	unsigned char *data;
	size_t size;
};

/* One run of `run` or `submit program`. */
struct prog_call {
	const char *cmd; /* "tessera run", for messages */
	int run;         /* tessera run: one unit, watched, its output printed */
	cl_submit_line line;
	struct prog_file files[CL_PROG_JOB_FILES]; /* [0] is the program */
	size_t nfiles;
	json_t *body, *params, *kinds;
	cl_state_config cfg;
	cl_http *http;
	const volatile sig_atomic_t *stop;
};

static void prog_call_free(struct prog_call *c)
{
	for (size_t i = 0; i < c->nfiles; i++)
		free(c->files[i].data);
	json_decref(c->body);
	json_decref(c->params);
	json_decref(c->kinds);
	memset(&c->cfg, 0, sizeof(c->cfg)); /* it holds the bearer token */
	cl_http_close(c->http);
}

/* Reads a file to send: a readable regular file under the caps, with a name a job may carry. */
/* A file that cannot be sent: said without the usage, which is not what is wrong. */
__attribute__((format(printf, 2, 3))) static int prog_refuse(const struct prog_call *c, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (nothing was sent)\n", stderr);
	return CL_EXIT_USAGE;
}

static int prog_read(const struct prog_call *c, struct prog_file *f)
{
	struct stat st;
	int fd = -1, rc = CL_EXIT_USAGE;
	const char *slash = strrchr(f->path, '/');
	f->name = slash ? slash + 1 : f->path;
	if ((fd = open(f->path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0) {
		rc = prog_refuse(c, "cannot read %s: %s", f->path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = prog_refuse(c, "%s is not a regular file", f->path);
		goto out;
	}
	if (!cl_prog_name_ok(f->name)) {
		rc = prog_refuse(c, "'%s' cannot be a file name of a job: 1 to %d letters, digits, "
					 "'.', '_' or '-', not starting with '.' (rename it)",
					 f->name, CL_PROG_NAME_MAX);
		goto out;
	}
	if ((uint64_t)st.st_size > CL_PROG_FILE_MAX) {
		rc = prog_refuse(c, "%s has %lld bytes: a file may have at most %u MiB", f->path,
					 (long long)st.st_size, CL_PROG_FILE_MAX >> 20);
		goto out;
	}
	f->size = (size_t)st.st_size;
	if (!(f->data = malloc(f->size ? f->size : 1)))
		goto out;
	for (size_t got = 0; got < f->size;) {
		ssize_t r = read(fd, f->data + got, f->size - got);
		if (r <= 0) {
			rc = prog_refuse(c, "cannot read %s: %s", f->path,
						 r < 0 ? strerror(errno) : "it shrank while read");
			goto out;
		}
		got += (size_t)r;
	}
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* The command line, checked as far as it can be without the server. */
static int prog_parse(struct prog_call *c, int argc, char **argv)
{
	int rc;
	size_t first = c->run ? 0 : 1, argbytes = 0;
	if ((rc = cl_submit_scan(argc, argv, "n", &c->line)) != 0)
		return rc;
	if (c->line.help)
		return cl_args_help(), -1;
	if (c->line.nwords <= first)
		return cl_args_usage_error("needs a program FILE (.py, .c or .sh)");
	if (c->line.nwords > first + 1)
		return cl_args_usage_error("unexpected argument '%s' (the program's arguments go after --)",
					   c->line.words[first + 1]);
	c->files[c->nfiles++].path = c->line.words[first];
	for (size_t i = 0; i < c->line.nopts; i++) {
		const char *name = c->line.opts[i].name;
		if (c->run && (strcmp(name, "units") == 0 || strcmp(name, "unit-size") == 0 ||
			       strcmp(name, "space") == 0 || strcmp(name, "combine") == 0))
			return cl_args_usage_error("--%s: a run is one unit; split programs go with "
						   "tessera submit program",
						   name);
		if (strcmp(name, "file") != 0)
			continue;
		if (c->nfiles == CL_PROG_JOB_FILES)
			return cl_args_usage_error("a job has at most %d files, the program included",
						   CL_PROG_JOB_FILES);
		c->files[c->nfiles++].path = c->line.opts[i].value;
	}
	for (size_t i = 0; i < c->nfiles; i++) {
		if ((rc = prog_read(c, &c->files[i])) != 0)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(c->files[i].name, c->files[j].name) == 0)
				return prog_refuse(c, "two files are called %s: a job's file names "
							  "are unique", c->files[i].name);
	}
	if (!cl_prog_lang(c->files[0].name))
		return prog_refuse(c, "%s: a program ends in .py (python3), .c (compiled with "
					  "mpicc) or .sh (sh)", c->files[0].path);
	if (c->line.nrest > CL_PROG_ARGS_MAX)
		return cl_args_usage_error("a program takes at most %d arguments", CL_PROG_ARGS_MAX);
	for (int i = 0; i < c->line.nrest; i++)
		argbytes += strlen(c->line.rest[i]);
	if (argbytes > CL_PROG_ARGS_BYTES)
		return cl_args_usage_error("the program's arguments have more than %d bytes together",
					   CL_PROG_ARGS_BYTES);
	for (size_t i = 0; i < c->line.nopts; i++)
		if ((rc = cl_submit_job_option(c->line.opts[i].name, c->line.opts[i].value, c->body)) > 1)
			return rc;
	if (c->line.adaptive)
		json_object_set_new(c->body, "adaptive", json_true());
	return cl_submit_job_check(c->body);
}

/* The options that set parameters, checked against the server's program kind. */
static int prog_params(struct prog_call *c, const json_t *kind)
{
	char why[1024], shown[CL_SUBMIT_NAME_MAX + 2];
	for (size_t i = 0; i < c->line.nopts; i++) {
		const char *name = c->line.opts[i].name, *param = name;
		if (strcmp(name, "file") == 0 || cl_submit_job_option(name, c->line.opts[i].value, c->body) == 1)
			continue;
		for (size_t k = 0; k < TS_ARRAY_LEN(prog_options); k++)
			if (strcmp(name, prog_options[k].option) == 0)
				param = prog_options[k].param;
		snprintf(shown, sizeof(shown), "%s%s", c->line.opts[i].is_short ? "-" : "--", name);
		const json_t *spec = cl_kinds_param(kind, param);
		const char *type = json_string_value(json_object_get(spec, "type"));
		if (!spec || (type && (strcmp(type, "file") == 0 || strcmp(type, "files") == 0 ||
				       strcmp(type, "strings") == 0)))
			return cl_args_usage_error("unknown option %s (the program is FILE, more files "
						   "--file FILE, its arguments after --)", shown);
		json_t *v = NULL;
		if (cl_kinds_value(spec, shown, c->line.opts[i].value, &v, why, sizeof(why)) != 0)
			return cl_args_usage_error("%s", why);
		json_object_set_new(c->params, json_string_value(json_object_get(spec, "name")), v);
	}
	json_t *args = json_array();
	for (int i = 0; i < c->line.nrest; i++)
		json_array_append_new(args, json_string(c->line.rest[i]));
	json_object_set_new(c->params, "args", args);
	if (c->run) {
		json_object_set_new(c->params, "space", json_integer(1));
		json_object_set_new(c->body, "units", json_integer(1));
	}
	return 0;
}

/* PUT /api/v1/files: the file by content; its {"name","sha256"} for the job. */
static int prog_upload(struct prog_call *c, const struct prog_file *f, json_t **ref)
{
	char msg[CL_HTTP_MSG_MAX], hex[65];
	unsigned char digest[32];
	int status = 0, rc = -1;
	json_t *reply = NULL;
	*ref = NULL;
	ts_err e = cl_http_raw(c->http, "PUT", "/api/v1/files", f->data ? (const void *)f->data : "",
			       f->size, NULL, &status, &reply, msg, sizeof(msg));
	if (e) {
		if (status == 413)
			fprintf(stderr, "%s refused: %s\n", f->path, msg);
		else
			cl_cli_request_failed(&c->cfg, status, msg);
		goto out;
	}
	/* The server names the file by its hash: it must be the hash of what was read here. */
	ts_sha256(f->data, f->size, digest);
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", digest[i]);
	const char *sha = json_string_value(json_object_get(reply, "sha256"));
	if (!sha || strcmp(sha, hex) != 0) {
		fprintf(stderr, "upload of %s: the server's hash %s is not the file's (%s)\n", f->path,
			sha ? sha : "(none)", hex);
		goto out;
	}
	*ref = json_pack("{s:s,s:s}", "name", f->name, "sha256", hex);
	rc = *ref ? 0 : -1;
out:
	json_decref(reply);
	return rc;
}

/* Connects, reads the program kind, uploads the files and submits the job. 0 with the job's id,
 * else an exit status (CL_EXIT_USAGE for what the kind refuses; said on stderr). */
static int prog_send(struct prog_call *c, long long *id)
{
	int legacy = 0, rc;
	json_t *files = json_array(), *ref = NULL;
	if (cl_cli_connect(&c->cfg, &c->http, c->stop) != 0 ||
	    cl_submit_kinds(&c->cfg, c->http, &c->kinds, &legacy) != 0) {
		rc = CL_EXIT_ERROR;
		goto out;
	}
	const json_t *kind = cl_kinds_find(c->kinds, "program");
	if (!kind) {
		fprintf(stderr, "the server at %s runs no programs (%s)\n", cl_http_url(c->http),
			legacy ? "it predates them" : "GET /api/v1/kernels lists no kind 'program'");
		rc = CL_EXIT_ERROR;
		goto out;
	}
	if ((rc = prog_params(c, kind)) != 0)
		goto out;
	rc = CL_EXIT_ERROR;
	for (size_t i = 0; i < c->nfiles; i++) {
		if (prog_upload(c, &c->files[i], &ref) != 0)
			goto out;
		if (i == 0)
			json_object_set_new(c->params, "main", ref);
		else
			json_array_append_new(files, ref);
		ref = NULL;
	}
	json_object_set(c->params, "files", files);
	json_object_set_new(c->body, "kernel", json_string("program"));
	json_object_set(c->body, "params", c->params);
	if (cl_submit_post(&c->cfg, c->http, c->body, id) != 0)
		goto out;
	rc = 0;
out:
	json_decref(files);
	return rc;
}

static int prog_setup(struct prog_call *c, int run, int argc, char **argv)
{
	memset(c, 0, sizeof(*c));
	c->cmd = argv[0];
	c->run = run;
	c->body = json_object();
	c->params = json_object();
	if (!c->body || !c->params) {
		fprintf(stderr, "out of memory\n");
		return CL_EXIT_ERROR;
	}
	return prog_parse(c, argc, argv);
}

int cl_prog_submit(int argc, char **argv)
{
	struct prog_call c;
	long long id = 0;
	int rc = prog_setup(&c, 0, argc, argv);
	if (rc == 0)
		rc = prog_send(&c, &id);
	if (rc == 0)
		printf("%lld\n", id);
	prog_call_free(&c);
	return rc < 0 ? CL_EXIT_OK : rc;
}

/* Writes one raw stream of unit 0 (stdout or stderr) to f. 0, or -1 (said). */
static int prog_stream(struct prog_call *c, long long id, const char *stream, FILE *f)
{
	char path[128], msg[CL_HTTP_MSG_MAX];
	int status = 0;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/output?unit=0&stream=%s", id, stream);
	fflush(f);
	ts_err e = cl_http_raw(c->http, "GET", path, NULL, 0, f, &status, NULL, msg, sizeof(msg));
	fflush(f);
	if (e) {
		fprintf(stderr, "tessera run: the program's %s: ", stream);
		cl_cli_request_failed(&c->cfg, status, msg);
		return -1;
	}
	return 0;
}

/* The unit output of unit 0 (GET /outputs), or NULL. A new reference. */
static json_t *prog_unit0(struct prog_call *c, long long id)
{
	char path[96], msg[CL_HTTP_MSG_MAX];
	json_t *reply = NULL, *unit = NULL, *u;
	size_t i;
	snprintf(path, sizeof(path), "/api/v1/jobs/%lld/outputs", id);
	if (cl_http_request(c->http, "GET", path, NULL, NULL, &reply, msg, sizeof(msg)) != TS_OK)
		return NULL;
	json_array_foreach(json_object_get(reply, "units"), i, u) {
		if (json_integer_value(json_object_get(u, "seq")) == 0) {
			unit = json_incref(u);
			break;
		}
	}
	json_decref(reply);
	return unit;
}

/* After the job ended: the program's streams, then its exit status. */
static int prog_finish(struct prog_call *c, long long id, const json_t *job)
{
	char shown[1024];
	const char *state = json_string_value(json_object_get(job, "state"));
	const char *err = json_string_value(json_object_get(job, "error"));
	if (state && strcmp(state, "cancelled") == 0) {
		fprintf(stderr, "tessera run: job %lld was cancelled\n", id);
		return CL_PROG_EXIT_TESSERA;
	}
	json_t *unit = prog_unit0(c, id);
	const char *status = json_string_value(json_object_get(unit, "status"));
	if (!status && state && strcmp(state, "done") == 0)
		status = json_string_value(json_object_get(json_object_get(job, "result"), "status"));
	if (!status) {
		/* Failed before the program had a say (no unit output): the server's words. */
		fprintf(stderr, "tessera run: job %lld %s%s%s\n", id, state ? state : "ended", err ? ": " : "",
			err ? ts_escape_ctrl(err, shown, sizeof(shown)) : "");
		json_decref(unit);
		return CL_PROG_EXIT_TESSERA;
	}
	int code = cl_prog_exit_code(status);
	int rc = prog_stream(c, id, "stdout", stdout) | prog_stream(c, id, "stderr", stderr);
	for (int s = 0; s < 2; s++)
		if (json_is_true(json_object_get(unit, s ? "stderr_truncated" : "stdout_truncated")))
			fprintf(stderr, "tessera run: the program's %s was cut short on the node (%s)\n",
				s ? "stderr" : "stdout", s ? "64 KiB at most" : "256 KiB at most");
	if (code != 0 && strncmp(status, "exit status ", 12) != 0)
		fprintf(stderr, "tessera run: %s (job %lld)\n", ts_escape_ctrl(status, shown, sizeof(shown)), id);
	json_decref(unit);
	return rc ? CL_PROG_EXIT_TESSERA : code;
}

int cl_prog_run(int argc, char **argv)
{
	struct prog_call c;
	long long id = 0;
	cl_watch w = {.style = CL_WATCH_STATE};
	json_t *job = NULL;
	int rc = prog_setup(&c, 1, argc, argv);
	if (rc < 0) {
		rc = CL_EXIT_OK; /* --help */
		goto out;
	}
	if (rc != 0)
		goto fail;
	c.stop = cl_watch_catch_signals();
	if ((rc = prog_send(&c, &id)) != 0)
		goto fail;
	int r = cl_watch_job(&w, &c.cfg, c.http, id, &job);
	if (r > 0 && *c.stop) {
		fprintf(stderr, "interrupted: job %lld goes on; see it with tessera status %lld (its "
				"output: tessera output %lld --unit 0), stop it with tessera cancel %lld\n",
			id, id, id, id);
		rc = CL_PROG_EXIT_INTERRUPTED;
		goto out;
	}
	if (r != 0)
		goto fail;
	rc = prog_finish(&c, id, job);
	goto out;
fail:
	/* Ctrl-C before the job was being watched (an upload, the submission) is still 130. */
	rc = c.stop && *c.stop ? CL_PROG_EXIT_INTERRUPTED : CL_PROG_EXIT_TESSERA;
out:
	json_decref(job);
	prog_call_free(&c);
	return rc;
}

int cl_prog_output(int argc, char **argv)
{
	static const struct option opts[] = {
		{"unit", required_argument, NULL, 'u'}, {"stderr", no_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
	};
	char path[128], msg[CL_HTTP_MSG_MAX];
	uint64_t id, unit = 0;
	int opt, rc = CL_EXIT_ERROR, status = 0, has_unit = 0, err_stream = 0;
	cl_state_config cfg;
	cl_http *http = NULL;
	CL_ARGS_FOREACH_OPT(argc, argv, "h", opts, opt) {
		switch (opt) {
		case 'u':
			if (cl_args_u64(optarg, 0, INT64_MAX, &unit) != 0)
				return cl_args_usage_error("--unit takes a unit's number (0, 1, …), not '%s'",
							   optarg);
			has_unit = 1;
			break;
		case 'e': err_stream = 1; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (argc - optind != 1)
		return cl_args_usage_error("%s", argc == optind ? "needs a job id" : "too many arguments");
	if (cl_args_u64(argv[optind], 1, INT64_MAX, &id) != 0)
		return cl_args_usage_error("a job id is a positive integer, not '%s'", argv[optind]);
	if (err_stream && !has_unit)
		return cl_args_usage_error("--stderr goes with --unit SEQ: a job's combined output is "
					   "its units' stdout");
	if (has_unit)
		snprintf(path, sizeof(path), "/api/v1/jobs/%llu/output?unit=%llu&stream=%s",
			 (unsigned long long)id, (unsigned long long)unit, err_stream ? "stderr" : "stdout");
	else
		snprintf(path, sizeof(path), "/api/v1/jobs/%llu/output", (unsigned long long)id);
	if (cl_cli_connect(&cfg, &http, NULL) != 0)
		goto out;
	ts_err e = cl_http_raw(http, "GET", path, NULL, 0, stdout, &status, NULL, msg, sizeof(msg));
	if (fflush(stdout) != 0 && !e)
		e = TS_ERR_IO, snprintf(msg, sizeof(msg), "cannot write the output");
	if (e) {
		cl_cli_request_failed(&cfg, status, msg);
		if (status == 409 && !has_unit)
			fprintf(stderr, "one unit's output: tessera output %llu --unit SEQ [--stderr] (tessera "
					"status %llu says which failed)\n",
				(unsigned long long)id, (unsigned long long)id);
		goto out;
	}
	rc = CL_EXIT_OK;
out:
	memset(&cfg, 0, sizeof(cfg));
	cl_http_close(http);
	return rc;
}
