/* tessera-client: a volunteer node. enroll with a token, run units, bench the kernels. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <jansson.h>

#include "cl_args.h"
#include "cl_bench.h"
#include "cl_http.h"
#include "cl_node.h"
#include "cl_state.h"
#include "kern.h"
#include "ts_token.h"
#include "ts_util.h"

#define STATE_ENV "TESSERA_CLIENT_STATE"
#define STATE_HOME ".config/tessera-client"


static int state_dir(const char *given, char *out, size_t outlen)
{
	if (given) {
		snprintf(out, outlen, "%s", given);
		return 0;
	}
	if (cl_state_dir(STATE_ENV, STATE_HOME, out, outlen) != TS_OK) {
		fprintf(stderr, "no state directory: set $%s or $HOME, or give --state DIR\n",
			STATE_ENV);
		return -1;
	}
	return 0;
}

static int online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

static int cmd_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'}, {"name", required_argument, NULL, 'n'},
		{"force", no_argument, NULL, 'f'},	 {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *state_opt = NULL, *name = NULL;
	int force = 0, opt, rc = CL_EXIT_ERROR;
	char dir[CL_STATE_PATH_MAX], why[CL_HTTP_MSG_MAX], msg[CL_HTTP_MSG_MAX];
	char secret[TS_TOKEN_MAX], pin[TS_PIN_MAX], host[CL_STATE_NAME_MAX] = "", platform[96];
	cl_http *http = NULL;
	json_t *body = NULL, *reply = NULL;
	cl_state_node node;
	struct utsname uts;
	memset(&node, 0, sizeof(node));
	CL_ARGS_FOREACH_OPT(argc, argv, "s:n:fh", opts, opt) {
		switch (opt) {
		case 's': state_opt = optarg; break;
		case 'n': name = optarg; break;
		case 'f': force = 1; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (argc - optind != 2)
		return cl_args_usage_error("%s", argc - optind < 2
							 ? "needs the server URL and an enrollment token"
							 : "too many arguments");
	const char *url = argv[optind], *token = argv[optind + 1];
	if (cl_http_url_check(url, why, sizeof(why)) != TS_OK)
		return cl_args_usage_error("%s", why);
	if (ts_token_parse_enroll(token, secret, pin) != TS_OK)
		return cl_args_usage_error("not an enrollment token (tse1.<secret>.<pin>): copy "
					   "the whole token that 'tessera token create' printed");
	if (!name) {
		if (gethostname(host, sizeof(host) - 1) != 0 || !host[0])
			snprintf(host, sizeof(host), "node");
		name = host;
	}
	if (!*name || strlen(name) >= sizeof(node.name))
		return cl_args_usage_error("--name must be 1 to %zu characters",
					   sizeof(node.name) - 1);
	if (state_dir(state_opt, dir, sizeof(dir)) != 0)
		goto out;
	if (cl_state_node_exists(dir) && !force) {
		cl_state_node old;
		if (cl_state_node_load(dir, &old, why, sizeof(why)) == TS_OK)
			fprintf(stderr, "already enrolled as node %lld (%s) at %s: use --force to enroll "
					"again, or another --state DIR\n",
				(long long)old.node_id, old.name, old.url);
		else
			fprintf(stderr, "%s/node.json exists: use --force to replace it\n", dir);
		goto out;
	}
	/* Before the token is spent: a node that cannot keep its credentials must not enroll. */
	if (cl_state_mkdir(dir, why, sizeof(why)) != TS_OK || access(dir, W_OK) != 0) {
		fprintf(stderr, "cannot use state directory %s: %s\n", dir,
			why[0] ? why : "not writable");
		goto out;
	}
	snprintf(platform, sizeof(platform), "linux-%s",
		 uname(&uts) == 0 ? uts.machine : "unknown");
	cl_http_opts hopts = {.url = url, .pin = pin};
	if (cl_http_open(&hopts, &http, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "%s\n", why);
		goto out;
	}
	body = json_pack("{s:s,s:s,s:s,s:i}", "token", token, "name", name, "platform", platform,
			 "cores", online_cpus());
	int status = 0;
	ts_err e = body ? cl_http_request(http, "POST", "/api/v1/nodes/enroll", body, &status, &reply,
					  msg, sizeof(msg))
			: TS_ERR_NOMEM;
	if (e == TS_ERR_PIN) {
		fprintf(stderr, "server key does not match the token's pin: refusing to enroll\n");
		goto out;
	}
	if (e == TS_ERR_NETWORK) {
		fprintf(stderr, "%s\n", msg);
		goto out;
	}
	if (e) {
		fprintf(stderr, "enrollment refused: %s\n", msg[0] ? msg : ts_strerror(e));
		goto out;
	}
	json_t *id = json_object_get(reply, "node_id");
	const char *ntok = json_string_value(json_object_get(reply, "node_token"));
	if (!json_is_integer(id) || json_integer_value(id) <= 0 || !ntok ||
	    strlen(ntok) >= sizeof(node.node_token)) {
		fprintf(stderr, "enrollment failed: the server's reply has no node id and token\n");
		goto out;
	}
	snprintf(node.url, sizeof(node.url), "%s", cl_http_url(http));
	snprintf(node.pin, sizeof(node.pin), "%s", pin);
	snprintf(node.node_token, sizeof(node.node_token), "%s", ntok);
	snprintf(node.name, sizeof(node.name), "%s", name);
	node.node_id = (int64_t)json_integer_value(id);
	if (cl_state_node_save(dir, &node, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "enrolled as node %lld but could not save it: %s\n",
			(long long)node.node_id, why);
		goto out;
	}
	/* A new enrollment: results computed for an earlier one would only be rejected. */
	cl_state_pending_clear(dir, why, sizeof(why));
	printf("enrolled as node %lld (%s) at %s\n", (long long)node.node_id, node.name, node.url);
	rc = CL_EXIT_OK;
out:
	memset(&node, 0, sizeof(node));
	json_decref(body);
	json_decref(reply);
	cl_http_close(http);
	return rc;
}

static volatile sig_atomic_t stop_flag;
_Static_assert(sizeof(sig_atomic_t) == sizeof(int), "the kernels' cancel flag is an int");

static void on_signal(int sig)
{
	stop_flag = 1;
}

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'}, {"threads", required_argument, NULL, 't'},
		{"max-units", required_argument, NULL, 'm'}, {"quiet", no_argument, NULL, 'q'},
		{"help", no_argument, NULL, 'h'},	 {NULL, 0, NULL, 0},
	};
	const char *state_opt = NULL;
	int threads = 0, max_units = 1, quiet = 0, opt;
	char dir[CL_STATE_PATH_MAX], why[CL_HTTP_MSG_MAX + 256];
	cl_state_node node;
	cl_node_stats stats;
	CL_ARGS_FOREACH_OPT(argc, argv, "s:t:m:qh", opts, opt) {
		switch (opt) {
		case 's': state_opt = optarg; break;
		case 't':
			if (cl_args_int(optarg, 1, 1024, &threads) != 0)
				return cl_args_usage_error(
					"--threads must be an integer from 1 to 1024, not '%s'",
					optarg);
			break;
		case 'm':
			if (cl_args_int(optarg, 1, CL_NODE_MAX_UNITS, &max_units) != 0)
				return cl_args_usage_error(
					"--max-units must be an integer from 1 to 64, not '%s'",
					optarg);
			break;
		case 'q': quiet = 1; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (optind != argc)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind]);
	if (state_dir(state_opt, dir, sizeof(dir)) != 0)
		return CL_EXIT_ERROR;
	ts_err e = cl_state_node_load(dir, &node, why, sizeof(why));
	if (e == TS_ERR_NOT_FOUND) {
		fprintf(stderr, "not enrolled: run tessera-client enroll URL TOKEN first\n");
		return CL_EXIT_ERROR;
	}
	if (e) {
		fprintf(stderr, "%s\n", why);
		return CL_EXIT_ERROR;
	}
	/* No SA_RESTART: sleeps and waits wake up. SA_RESETHAND: a second ^C kills at once. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!quiet) {
		printf("node %lld (%s) at %s: %d threads, up to %d units per fetch\n",
		       (long long)node.node_id, node.name, node.url, threads ? threads : online_cpus(),
		       max_units);
		fflush(stdout);
	}
	cl_node_opts o = {.state_dir = dir, .threads = threads, .max_units = max_units,
			  .log = quiet ? NULL : stdout};
	e = cl_node_run(&o, &node, &stop_flag, &stats, why, sizeof(why));
	memset(&node, 0, sizeof(node));
	if (e) {
		fprintf(stderr, "%s\n", why);
		return CL_EXIT_ERROR;
	}
	printf("stopped: %llu units done", (unsigned long long)stats.done);
	if (stats.rejected)
		printf(", %llu rejected", (unsigned long long)stats.rejected);
	if (stats.skipped)
		printf(", %llu skipped", (unsigned long long)stats.skipped);
	if (stats.pending)
		printf(", %llu kept in %s/pending.json", (unsigned long long)stats.pending, dir);
	printf("\n");
	return CL_EXIT_OK;
}

static int cmd_bench(int argc, char **argv)
{
	static const struct option opts[] = {
		{"kernel", required_argument, NULL, 'k'}, {"threads", required_argument, NULL, 't'},
		{"seconds", required_argument, NULL, 'S'}, {"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},	  {NULL, 0, NULL, 0},
	};
	const char *kname = NULL;
	int threads = 0, as_json = 0, opt, rc = CL_EXIT_ERROR;
	double seconds = 2.0;
	char why[256];
	json_t *out = NULL;
	CL_ARGS_FOREACH_OPT(argc, argv, "k:t:S:jh", opts, opt) {
		switch (opt) {
		case 'k': kname = optarg; break;
		case 't':
			if (cl_args_int(optarg, 1, 1024, &threads) != 0)
				return cl_args_usage_error(
					"--threads must be an integer from 1 to 1024, not '%s'",
					optarg);
			break;
		case 'S':
			if (cl_args_double(optarg, 0.1, 3600, &seconds) != 0)
				return cl_args_usage_error(
					"--seconds must be a number from 0.1 to 3600, not '%s'",
					optarg);
			break;
		case 'j': as_json = 1; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (optind != argc)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind]);
	if (kname && !kern_find(kname))
		return cl_args_usage_error("unknown kernel '%s'", kname);
	if (!(out = json_array()))
		goto out;
	/* One kernel by name, or every row of the table. */
	const kern *only[2] = {kname ? kern_find(kname) : NULL, NULL};
	for (const kern *const *row = kname ? only : kern_table(); *row; row++) {
		const kern *k = *row;
		cl_bench_result r;
		if (cl_bench_kernel(k, threads, seconds, &r, why, sizeof(why)) != TS_OK) {
			fprintf(stderr, "%s\n", why);
			goto out;
		}
		if (as_json)
			json_array_append_new(out, json_pack("{s:s,s:i,s:f}", "kernel", r.kernel,
							     "threads", r.threads, "rate", r.rate));
		else
			printf("%-14s %3d threads  %10.4g %s  (%.4g per thread)\n", r.kernel, r.threads,
			       r.rate, r.unit, r.rate / r.threads);
		fflush(stdout);
	}
	if (as_json) {
		char *text = json_dumps(out, JSON_INDENT(2));
		if (!text)
			goto out;
		printf("%s\n", text);
		free(text);
	}
	rc = CL_EXIT_OK;
out:
	json_decref(out);
	return rc;
}

static const cl_args_cmd commands[] = {
	{"enroll", cmd_enroll, "enroll URL TOKEN [--state DIR] [--name NAME] [--force]",
	 "\nJoins the grid at URL (https://HOST:PORT) with an enrollment token from\n"
	 "'tessera token create'. The token carries the server's key pin, so nothing else\n"
	 "needs to be trusted. The node's credentials go to DIR/node.json (mode 0600).\n\n"
	 "  --state DIR   state directory (default $" STATE_ENV " or ~/" STATE_HOME ")\n"
	 "  --name NAME   node name shown to users (default: the host name)\n"
	 "  --force       replace an existing enrollment in DIR\n"},
	{"run", cmd_run, "run [--state DIR] [--threads N] [--max-units K] [--quiet]",
	 "\nFetches work units, computes them and reports the results until SIGINT or\n"
	 "SIGTERM. Network errors are retried with backoff; finished results are kept in\n"
	 "DIR/pending.json until the server has them.\n\n"
	 "  --state DIR     state directory (default $" STATE_ENV " or ~/" STATE_HOME ")\n"
	 "  --threads N     compute threads (default: all online CPUs)\n"
	 "  --max-units K   units asked for per fetch, 1..64 (default 1)\n"
	 "  --quiet         no line per unit\n"},
	{"bench", cmd_bench, "bench [--kernel K] [--threads N] [--seconds S] [--json]",
	 "\nMeasures how fast this machine runs each kernel.\n\n"
	 "  --kernel K    only this kernel\n"
	 "  --threads N   threads (default: all online CPUs)\n"
	 "  --seconds S   time per kernel (default 2)\n"
	 "  --json        print [{\"kernel\",\"threads\",\"rate\"}...]\n"},
};

int main(int argc, char **argv)
{
	return cl_args_dispatch("tessera-client", "a Tessera volunteer node", commands,
				TS_ARRAY_LEN(commands), argc, argv);
}
