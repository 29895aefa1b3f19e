/* cl_submit: submitting jobs of the kinds the server describes. */
#include "cl_submit.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cl_args.h"
#include "cl_cli.h"
#include "cl_kinds.h"
#include "cl_prog.h"
#include "ts_util.h"

/* Options of the job itself (docs/API.md), not of its kernel. */
static const struct {
	const char *option, *key;
	uint64_t min, max;
} job_options[] = {
	{"units", "units", 1, INT64_MAX},
	{"unit-size", "unit_size", 1, INT64_MAX},
	{"replication", "replication", 1, INT64_MAX},
	{"quorum", "quorum", 1, INT64_MAX},
	{"deadline", "deadline_s", 1, INT64_MAX},
};

int cl_submit_scan(int argc, char **argv, const char *short_opts, cl_submit_line *line)
{
	memset(line, 0, sizeof(*line));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--") == 0) {
			line->rest = argv + i + 1;
			line->nrest = argc - i - 1;
			break;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			line->help = 1;
			continue;
		}
		if (strcmp(a, "--adaptive") == 0) {
			line->adaptive = 1;
			continue;
		}
		if (a[0] != '-' || a[1] == '\0') {
			if (line->nwords == CL_SUBMIT_WORDS_MAX)
				return cl_args_usage_error("too many arguments");
			line->words[line->nwords++] = a;
			continue;
		}
		if (line->nopts == CL_SUBMIT_OPTS_MAX)
			return cl_args_usage_error("too many options");
		char *name = line->opts[line->nopts].name;
		const char *value = NULL;
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			if (n == 0 || n >= CL_SUBMIT_NAME_MAX)
				return cl_args_usage_error("unknown option '%.80s'", a);
			memcpy(name, a + 2, n);
			name[n] = '\0';
			value = eq ? eq + 1 : NULL;
		} else {
			if (!short_opts || !strchr(short_opts, a[1]))
				return cl_args_usage_error("unknown option '%.80s'", a);
			name[0] = a[1];
			name[1] = '\0';
			line->opts[line->nopts].is_short = 1;
			value = a[2] ? a + 2 : NULL;
		}
		if (!value) {
			if (i + 1 == argc)
				return cl_args_usage_error("%s%s needs a value", a[1] == '-' ? "" : "-", a[1] == '-' ? a : name);
			value = argv[++i];
		}
		line->opts[line->nopts++].value = value;
	}
	return 0;
}

int cl_submit_job_option(const char *name, const char *value, json_t *body)
{
	for (size_t i = 0; i < TS_ARRAY_LEN(job_options); i++) {
		uint64_t v;
		if (strcmp(name, job_options[i].option) != 0)
			continue;
		if (cl_args_u64(value, job_options[i].min, job_options[i].max, &v) != 0)
			return cl_args_usage_error("--%s must be an integer from %llu to %llu (2e10 works), not "
						   "'%s'",
						   name, (unsigned long long)job_options[i].min,
						   (unsigned long long)job_options[i].max, value);
		json_object_set_new(body, job_options[i].key, json_integer((json_int_t)v));
		return 1;
	}
	return 0;
}

int cl_submit_job_check(const json_t *body)
{
	if (json_object_get(body, "units") && json_object_get(body, "unit_size"))
		return cl_args_usage_error("give --units or --unit-size, not both");
	const json_t *r = json_object_get(body, "replication"), *q = json_object_get(body, "quorum");
	if (q && json_integer_value(q) > (r ? json_integer_value(r) : 1))
		return cl_args_usage_error("--quorum %" JSON_INTEGER_FORMAT " exceeds the replication %"
					   JSON_INTEGER_FORMAT " (give --replication R with R >= Q)",
					   json_integer_value(q), r ? json_integer_value(r) : 1);
	return 0;
}

int cl_submit_kinds(const cl_state_config *cfg, cl_http *http, json_t **kinds, int *legacy)
{
	char msg[CL_HTTP_MSG_MAX];
	int status = 0;
	*kinds = NULL;
	*legacy = 0;
	ts_err e = cl_http_request(http, "GET", "/api/v1/kernels", NULL, &status, kinds, msg, sizeof(msg));
	if (e == TS_OK && json_is_array(json_object_get(*kinds, "kernels")))
		return 0;
	json_decref(*kinds);
	*kinds = NULL;
	if (e == TS_OK) {
		fprintf(stderr, "the server's GET /api/v1/kernels has no kernels list\n");
		return -1;
	}
	if (status == 404) {
		*legacy = 1;
		*kinds = cl_kinds_legacy();
		return *kinds ? 0 : -1;
	}
	cl_cli_request_failed(cfg, status, msg);
	return -1;
}

int cl_submit_post(const cl_state_config *cfg, cl_http *http, const json_t *body, long long *id)
{
	json_t *reply = NULL;
	int rc = -1;
	if (cl_cli_request(cfg, http, "POST", "/api/v1/jobs", body, &reply) != 0)
		goto out;
	json_t *jid = json_object_get(reply, "id");
	if (!json_is_integer(jid)) {
		fprintf(stderr, "submit: the server's reply has no job id\n");
		goto out;
	}
	if (id)
		*id = (long long)json_integer_value(jid);
	else
		printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(jid));
	rc = 0;
out:
	json_decref(reply);
	return rc;
}

int cl_submit_cmd(int argc, char **argv)
{
	char why[1024], known[512];
	int rc = CL_EXIT_ERROR, r, legacy = 0;
	cl_submit_line line;
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *body = json_object(), *params = json_object(), *kinds = NULL;
	if (!body || !params)
		goto out;
	/* -n is a program's (submit program FILE -n N): scanned here only to find the kind. */
	if ((rc = cl_submit_scan(argc, argv, "n", &line)) != 0)
		goto out;
	if (line.nwords > 0 && strcmp(line.words[0], "program") == 0) {
		rc = cl_prog_submit(argc, argv);
		goto out;
	}
	if (line.help) {
		rc = cl_args_help();
		goto out;
	}
	/* What the command line alone can tell, before anything is sent. */
	rc = CL_EXIT_USAGE;
	if (line.nwords != 1) {
		rc = cl_args_usage_error("%s", line.nwords ? "too many arguments"
							 : "needs a kernel (tessera kernels lists them)");
		goto out;
	}
	if (line.rest) {
		rc = cl_args_usage_error("'-- ARGS' goes with submit program");
		goto out;
	}
	for (size_t i = 0; i < line.nopts; i++) {
		if (line.opts[i].is_short) {
			rc = cl_args_usage_error("unknown option '-%s'", line.opts[i].name);
			goto out;
		}
		if ((r = cl_submit_job_option(line.opts[i].name, line.opts[i].value, body)) > 1) {
			rc = r;
			goto out;
		}
	}
	if ((rc = cl_submit_job_check(body)) != 0)
		goto out;
	if (line.adaptive)
		json_object_set_new(body, "adaptive", json_true());

	/* The kernel and its parameters, as the server describes them. */
	rc = CL_EXIT_ERROR;
	if (cl_cli_connect(&cfg, &http, NULL) != 0 || cl_submit_kinds(&cfg, http, &kinds, &legacy) != 0)
		goto out;
	const json_t *kind = cl_kinds_find(kinds, line.words[0]);
	if (!kind) {
		cl_kinds_known(kinds, known, sizeof(known));
		rc = cl_args_usage_error("unknown kernel '%s' (known: %s)%s", line.words[0], known,
					 legacy ? "; this server predates GET /api/v1/kernels and "
						  "describes no others" : "");
		goto out;
	}
	for (size_t i = 0; i < line.nopts; i++) {
		if (cl_submit_job_option(line.opts[i].name, line.opts[i].value, body) == 1)
			continue;
		if (cl_kinds_set(kind, params, line.opts[i].name, line.opts[i].value, why, sizeof(why)) != 0) {
			rc = cl_args_usage_error("%s", why);
			goto out;
		}
	}
	if (cl_kinds_check_required(kind, params, why, sizeof(why)) != 0) {
		rc = cl_args_usage_error("%s", why);
		goto out;
	}
	json_object_set_new(body, "kernel", json_string(json_string_value(json_object_get(kind, "name"))));
	json_object_set(body, "params", params);
	rc = cl_submit_post(&cfg, http, body, NULL) == 0 ? CL_EXIT_OK : CL_EXIT_ERROR;
out:
	json_decref(body);
	json_decref(params);
	json_decref(kinds);
	cl_http_close(http);
	return rc;
}

int cl_submit_kernels_cmd(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
	cl_state_config cfg;
	cl_http *http = NULL;
	json_t *kinds = NULL;
	int opt, rc = CL_EXIT_ERROR, legacy = 0, as_json = 0;
	CL_ARGS_FOREACH_OPT(argc, argv, "jh", opts, opt) {
		switch (opt) {
		case 'j': as_json = 1; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (optind != argc)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind]);
	if (cl_cli_connect(&cfg, &http, NULL) != 0 || cl_submit_kinds(&cfg, http, &kinds, &legacy) != 0)
		goto out;
	if (legacy)
		fprintf(stderr, "note: this server predates GET /api/v1/kernels; these are the kernels "
				"such servers have\n");
	if (as_json)
		cl_cli_print_json(kinds);
	else
		cl_kinds_print(stdout, kinds, cl_prog_option_of);
	rc = CL_EXIT_OK;
out:
	json_decref(kinds);
	cl_http_close(http);
	return rc;
}
