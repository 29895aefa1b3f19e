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
#include "cl_beat.h"
#include "cl_http.h"
#include "cl_mpi.h"
#include "cl_node.h"
#include "cl_prefs.h"
#include "cl_state.h"
#include "cl_unit.h"
#include "kern.h"
#include "ts_token.h"
#include "ts_util.h"

#define STATE_ENV "TESSERA_CLIENT_STATE"
#define STATE_HOME ".config/tessera-client"
#define ENROLL_TOKEN_ENV "TESSERA_ENROLL_TOKEN"
#define ENROLL_BENCH_S 0.5 /* per kernel */
#define RUN_BENCH_S 0.25   /* per kernel, when rates.json does not hold */
#define DEFAULT_MAX_UNITS 16
#define DEFAULT_SECONDS 20.0
#define DEFAULT_WAIT_S 30
#define WAIT_MAX_S 60

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

/* Threads per process: --threads, else the CPU share of this host's CPUs split among the
 * ranks that run on it, at least 1. */
static int node_threads(int given, int share, int local_ranks)
{
	if (given > 0)
		return given;
	int n = cl_node_share_threads(online_cpus(), share) / (local_ranks > 0 ? local_ranks : 1);
	return n > 0 ? n : 1;
}

/* The node's rates for threads x ranks: the saved ones while they hold, else measured now and
 * saved. NULL when they cannot be had: the server then sizes work by its own estimate. */
static json_t *node_rates(const char *dir, int threads, double seconds, cl_mpi *mpi)
{
	int ranks = mpi ? cl_mpi_size(mpi) : 1;
	char why[CL_STATE_PATH_MAX + 128];
	json_t *record = NULL, *rates = NULL;
	if (cl_state_rates_load(dir, &record, why, sizeof(why)) == TS_OK) {
		const json_t *saved = cl_bench_cache_fresh(record, threads, ranks, ts_now());
		if (saved) {
			rates = json_deep_copy(saved);
			goto out;
		}
	}
	ts_err e = mpi ? cl_mpi_bench(mpi, threads, seconds, &rates, why, sizeof(why))
		       : cl_bench_rates(threads, seconds, &rates, why, sizeof(why));
	if (e) {
		fprintf(stderr, "benchmark failed (%s): the server will use its own estimate\n", why);
		goto out;
	}
	json_t *fresh = cl_bench_cache_record(rates, threads, ranks, ts_now());
	if (!fresh || cl_state_rates_save(dir, fresh, why, sizeof(why)) != TS_OK)
		fprintf(stderr, "could not save the benchmark: %s\n", fresh ? why : "out of memory");
	json_decref(fresh);
out:
	json_decref(record);
	return rates;
}

/* "montecarlo_pi 1.93e+09/s, ..." for logs. */
static void rates_text(const json_t *rates, char *out, size_t outlen)
{
	const char *key;
	json_t *v;
	size_t used = 0;
	snprintf(out, outlen, "none");
	json_object_foreach((json_t *)rates, key, v) {
		int n = snprintf(out + used, outlen - used, "%s%s %.3g/s", used ? ", " : "", key,
				 json_number_value(v));
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

/* The enrollment token: the argument, a line of stdin for "-", else $TESSERA_ENROLL_TOKEN (so
 * that it need not show in ps or /proc/PID/cmdline). 0, or an exit code. */
static int enroll_token(const char *arg, char out[TS_TOKEN_MAX + 2])
{
	const char *from = arg ? arg : getenv(ENROLL_TOKEN_ENV);
	if (arg && strcmp(arg, "-") == 0) {
		if (!fgets(out, TS_TOKEN_MAX + 2, stdin))
			return cl_args_usage_error("no token on stdin (for '-')");
	} else if (from && *from) {
		if (strlen(from) >= TS_TOKEN_MAX)
			return cl_args_usage_error("the enrollment token is too long");
		snprintf(out, TS_TOKEN_MAX + 2, "%s", from);
	} else {
		return cl_args_usage_error("needs the server URL and an enrollment token (an argument, "
					   "'-' for stdin, or $" ENROLL_TOKEN_ENV ")");
	}
	out[strcspn(out, "\r\n")] = '\0';
	while (*out && (out[strlen(out) - 1] == ' ' || out[strlen(out) - 1] == '\t'))
		out[strlen(out) - 1] = '\0';
	return 0;
}

static int cmd_enroll(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'},   {"name", required_argument, NULL, 'n'},
		{"force", no_argument, NULL, 'f'},	   {"threads", required_argument, NULL, 't'},
		{"cpu-share", required_argument, NULL, 'c'}, {"no-bench", no_argument, NULL, 'B'},
		{"cacert", required_argument, NULL, 'C'},  {"help", no_argument, NULL, 'h'},
		{"token", required_argument, NULL, 'T'},
		{NULL, 0, NULL, 0},
	};
	const char *state_opt = NULL, *name = NULL, *cacert = NULL, *token_opt = NULL;
	int force = 0, opt, rc = CL_EXIT_ERROR, threads = 0, share = 100, bench = 1;
	char dir[CL_STATE_PATH_MAX], why[CL_HTTP_MSG_MAX], msg[CL_HTTP_MSG_MAX];
	char secret[TS_TOKEN_MAX], pin[TS_PIN_MAX], host[CL_STATE_NAME_MAX] = "", platform[96];
	char token[TS_TOKEN_MAX + 2];
	cl_http *http = NULL;
	json_t *body = NULL, *reply = NULL, *rates = NULL;
	cl_state_node node;
	struct utsname uts;
	memset(&node, 0, sizeof(node));
	CL_ARGS_FOREACH_OPT(argc, argv, "s:n:ft:c:Bh", opts, opt) {
		switch (opt) {
		case 's': state_opt = optarg; break;
		case 'n': name = optarg; break;
		case 'C': cacert = optarg; break;
		case 'T': token_opt = optarg; break;
		case 'f': force = 1; break;
		case 't':
			if ((rc = cl_args_int_opt("--threads", optarg, 1, 1024, &threads)))
				return rc;
			break;
		case 'c':
			if ((rc = cl_args_int_opt("--cpu-share", optarg, 1, 100, &share)))
				return rc;
			break;
		case 'B': bench = 0; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (argc - optind < 1 || argc - optind > 2 || (token_opt && argc - optind == 2))
		return cl_args_usage_error("%s", argc - optind < 1
							 ? "needs the server URL and an enrollment token"
							 : "too many arguments");
	const char *url = argv[optind];
	if (cl_http_url_check(url, why, sizeof(why)) != TS_OK)
		return cl_args_usage_error("%s", why);
	if ((rc = enroll_token(token_opt ? token_opt : argc - optind == 2 ? argv[optind + 1] : NULL, token)))
		return rc;
	rc = CL_EXIT_ERROR;
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
	/* An absolute path: run may start from another directory. */
	if (cacert && (!realpath(cacert, node.cacert) || access(node.cacert, R_OK) != 0)) {
		fprintf(stderr, "cannot read CA file %s\n", cacert);
		goto out;
	}
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
	cl_http_opts hopts = {.url = url, .pin = pin, .cacert = cacert ? node.cacert : NULL};
	if (cl_http_open(&hopts, &http, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "%s\n", why);
		goto out;
	}
	threads = node_threads(threads, share, 1);
	if (bench && (rates = node_rates(dir, threads, ENROLL_BENCH_S, NULL)) != NULL) {
		char text[256];
		rates_text(rates, text, sizeof(text));
		printf("benchmark on %d threads: %s\n", threads, text);
		fflush(stdout);
	}
	body = json_pack("{s:s,s:s,s:s,s:i}", "token", token, "name", name, "platform", platform,
			 "cores", online_cpus());
	if (body && rates)
		json_object_set(body, "rates", rates);
	int status = 0;
	ts_err e = body ? cl_http_request(http, "POST", "/api/v1/nodes/enroll", body, &status, &reply,
					  msg, sizeof(msg))
			: TS_ERR_NOMEM;
	if (e == TS_ERR_BAD_REQUEST && rates && strstr(msg, "rates")) {
		/* A server older than rates: a refused request changed nothing, the token is unspent. */
		json_object_del(body, "rates");
		e = cl_http_request(http, "POST", "/api/v1/nodes/enroll", body, &status, &reply, msg,
				    sizeof(msg));
	}
	if (e == TS_ERR_PIN) {
		fprintf(stderr, "server key does not match the token's pin: refusing to enroll\n");
		goto out;
	}
	if (e == TS_ERR_TLS) {
		fprintf(stderr, "%s: refusing to enroll\n", msg);
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
	printf("enrolled as node %lld (%s) at %s%s%s\n", (long long)node.node_id, node.name, node.url,
	       node.cacert[0] ? ", certificate verified against " : "", node.cacert);
	rc = CL_EXIT_OK;
out:
	memset(&node, 0, sizeof(node));
	json_decref(body);
	json_decref(reply);
	json_decref(rates);
	cl_http_close(http);
	return rc;
}

/* halt_flag is what the kernels check while volunteer controls are on: a pause sets it as
 * well as a signal (cl_node_opts.halt). */
static volatile sig_atomic_t stop_flag, halt_flag;
_Static_assert(sizeof(sig_atomic_t) == sizeof(int), "the kernels' cancel flag is an int");

static void on_signal(int sig)
{
	stop_flag = 1;
	halt_flag = 1;
}

/* The node's loop in this process (rank 0 in MPI mode). */
static int run_node(const char *dir, const cl_node_opts *base, int bench, int quiet, cl_mpi *mpi)
{
	char why[CL_HTTP_MSG_MAX + 256];
	cl_state_node node;
	cl_node_stats stats;
	cl_node_opts o = *base;
	json_t *rates = NULL;
	int rc = CL_EXIT_ERROR;
	ts_err e = cl_state_node_load(dir, &node, why, sizeof(why));
	if (e == TS_ERR_NOT_FOUND) {
		fprintf(stderr, "not enrolled: run tessera-client enroll URL TOKEN first\n");
		goto out;
	}
	if (e) {
		fprintf(stderr, "%s\n", why);
		goto out;
	}
	if (node.cacert[0] && access(node.cacert, R_OK) != 0) {
		fprintf(stderr, "cannot read CA file %s (named in %s/node.json)\n", node.cacert, dir);
		goto out;
	}
	if (bench)
		rates = node_rates(dir, o.threads, RUN_BENCH_S, mpi);
	o.rates = rates;
	o.runner = mpi ? cl_mpi_runner(mpi) : NULL;
	if (!quiet) {
		char text[256] = "not measured";
		if (rates)
			rates_text(rates, text, sizeof(text));
		if (mpi)
			printf("node %lld (%s) at %s: MPI, %d ranks x %d threads\n",
			       (long long)node.node_id, node.name, node.url, cl_mpi_size(mpi), o.threads);
		else
			printf("node %lld (%s) at %s: %d threads\n", (long long)node.node_id, node.name,
			       node.url, o.threads);
		if (o.programs) {
			char *caps = json_dumps(cl_unit_caps(o.programs), JSON_COMPACT);
			printf("runs programs in its sandbox: %s\n", caps ? caps : "?");
			free(caps);
		}
		printf("rates: %s; asking for 2 s of work ahead (at most %g s, %d units per fetch); "
		       "long-poll %d s; heartbeat every %g s\n",
		       text, o.seconds, o.max_units, o.wait_s, o.heartbeat_s);
		fflush(stdout);
	}
	e = cl_node_run(&o, &node, &stop_flag, &stats, why, sizeof(why));
	if (e) {
		fprintf(stderr, "%s\n", why);
		goto out;
	}
	printf("stopped: %llu units done", (unsigned long long)stats.done);
	if (stats.rejected)
		printf(", %llu rejected", (unsigned long long)stats.rejected);
	if (stats.declined)
		printf(", %llu declined", (unsigned long long)stats.declined);
	if (stats.pending)
		printf(", %llu kept in %s/pending.json", (unsigned long long)stats.pending, dir);
	printf("\n");
	rc = CL_EXIT_OK;
out:
	memset(&node, 0, sizeof(node));
	json_decref(rates);
	return rc;
}

/* Long options without a short one. */
enum { OPT_BUSY = 256, OPT_TEMP, OPT_HOURS, OPT_BATTERY };

static int cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'},     {"threads", required_argument, NULL, 't'},
		{"cpu-share", required_argument, NULL, 'c'}, {"max-units", required_argument, NULL, 'm'},
		{"seconds", required_argument, NULL, 'S'},   {"heartbeat", required_argument, NULL, 'H'},
		{"no-bench", no_argument, NULL, 'B'},	     {"mpi", no_argument, NULL, 'M'},
		{"quiet", no_argument, NULL, 'q'},	     {"help", no_argument, NULL, 'h'},
		{"max-rate", required_argument, NULL, 'R'},  {"wait", required_argument, NULL, 'W'},
		{"programs", no_argument, NULL, 'P'},	     {"hostfile", required_argument, NULL, 'F'},
		{"slots", required_argument, NULL, 'L'},
		{"pause-when-busy", required_argument, NULL, OPT_BUSY},
		{"max-temp", required_argument, NULL, OPT_TEMP},
		{"hours", required_argument, NULL, OPT_HOURS},
		{"run-on-battery", no_argument, NULL, OPT_BATTERY},
		{NULL, 0, NULL, 0},
	};
	const char *state_opt = NULL, *hostfile = NULL;
	int programs = 0, slots = 0;
	int threads = 0, share = 100, heartbeat = CL_BEAT_DEFAULT_S, bench = 1, use_mpi = 0;
	int quiet = 0, opt, rc;
	char dir[CL_STATE_PATH_MAX], why[256];
	cl_node_opts o = {.max_units = DEFAULT_MAX_UNITS, .seconds = DEFAULT_SECONDS,
			  .wait_s = DEFAULT_WAIT_S};
	cl_mpi *mpi = NULL;
	cl_prefs prefs;
	cl_prefs_init(&prefs);
	CL_ARGS_FOREACH_OPT(argc, argv, "s:t:c:m:S:H:R:W:F:L:PBMqh", opts, opt) {
		switch (opt) {
		case OPT_BUSY:
			if ((rc = cl_args_double_opt("--pause-when-busy", optarg, 1, 100, &prefs.busy_pct)))
				return rc;
			break;
		case OPT_TEMP:
			if ((rc = cl_args_double_opt("--max-temp", optarg, 30, 120, &prefs.max_temp_c)))
				return rc;
			break;
		case OPT_HOURS:
			if (cl_prefs_parse_hours(optarg, &prefs.hours_from, &prefs.hours_to, why, sizeof(why)))
				return cl_args_usage_error("%s", why);
			break;
		case OPT_BATTERY: prefs.run_on_battery = 1; break;
		case 's': state_opt = optarg; break;
		case 't':
			if ((rc = cl_args_int_opt("--threads", optarg, 1, 1024, &threads)))
				return rc;
			break;
		case 'c':
			if ((rc = cl_args_int_opt("--cpu-share", optarg, 1, 100, &share)))
				return rc;
			break;
		case 'm':
			if ((rc = cl_args_int_opt("--max-units", optarg, 1, CL_NODE_MAX_UNITS, &o.max_units)))
				return rc;
			break;
		case 'S':
			if ((rc = cl_args_double_opt("--seconds", optarg, 1, 3600, &o.seconds)))
				return rc;
			break;
		case 'H':
			if ((rc = cl_args_int_opt("--heartbeat", optarg, CL_BEAT_MIN_S, CL_BEAT_MAX_S, &heartbeat)))
				return rc;
			break;
		case 'R':
			if ((rc = cl_args_double_opt("--max-rate", optarg, 1, 1e18, &o.max_rate)))
				return rc;
			break;
		case 'W':
			if ((rc = cl_args_int_opt("--wait", optarg, 0, WAIT_MAX_S, &o.wait_s)))
				return rc;
			break;
		case 'B': bench = 0; break;
		case 'P': programs = 1; break;
		case 'F': hostfile = optarg; break;
		case 'L':
			if ((rc = cl_args_int_opt("--slots", optarg, 1, 1024, &slots)))
				return rc;
			break;
		case 'M': use_mpi = 1; break;
		case 'q': quiet = 1; break;
		case 'h': return cl_args_help();
		default: return cl_args_usage_bad();
		}
	}
	if (optind != argc)
		return cl_args_usage_error("unexpected argument '%s'", argv[optind]);
	if ((hostfile || slots) && !programs)
		return cl_args_usage_error("--hostfile and --slots say how --programs runs programs: give --programs too");
	if (programs && use_mpi)
		return cl_args_usage_error("--programs runs each program under its own mpirun: not with --mpi "
					   "(for a cluster, give --hostfile FILE)");
	if (state_dir(state_opt, dir, sizeof(dir)) != 0)
		return CL_EXIT_ERROR;
	/* Other people's code runs only in the sandbox: no sandbox, no programs, and we say why. */
	if (programs && cl_unit_open(dir, hostfile, slots, &o.programs, why, sizeof(why)) != TS_OK) {
		fprintf(stderr, "%s\n", why);
		return CL_EXIT_ERROR;
	}
	/* MPI only when asked: a plain run needs no mpirun. */
	if (use_mpi && cl_mpi_init(&argc, &argv, &stop_flag, &mpi, why, sizeof(why)) != TS_OK) {
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
	o.state_dir = dir;
	o.threads = node_threads(threads, share, mpi ? cl_mpi_local_size(mpi) : 1);
	o.heartbeat_s = heartbeat;
	o.log = quiet ? NULL : stdout;
	o.prefs = &prefs;
	o.halt = &halt_flag;
	if (mpi && cl_mpi_rank(mpi) != 0)
		rc = cl_mpi_serve(mpi, o.threads);
	else
		rc = run_node(dir, &o, bench, quiet, mpi);
	if (mpi) {
		cl_mpi_release(mpi); /* rank 0 ended early (not enrolled...): let the others go */
		cl_mpi_finalize(mpi);
	}
	cl_unit_close(o.programs);
	return rc;
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
			if ((rc = cl_args_int_opt("--threads", optarg, 1, 1024, &threads)))
				return rc;
			break;
		case 'S':
			if ((rc = cl_args_double_opt("--seconds", optarg, 0.1, 3600, &seconds)))
				return rc;
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
		if (!k->compute)
			continue; /* users' programs are not benchmarked */
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
	{"enroll", cmd_enroll,
	 "enroll URL [TOKEN | --token -] [--state DIR] [--name NAME] [--cacert FILE] [--force] "
	 "[--threads N | --cpu-share P] [--no-bench]",
	 "\nJoins the grid at URL (https://HOST:PORT) with an enrollment token from\n"
	 "'tessera token create'. The token carries the server's key pin, so nothing else\n"
	 "needs to be trusted. The node's credentials go to DIR/node.json (mode 0600).\n"
	 "The token is the argument (or --token TOKEN), or a line read from stdin with\n"
	 "--token - (or '-'), or else $" ENROLL_TOKEN_ENV ": those two keep it out of\n"
	 "ps and /proc/PID/cmdline, where any local user could read it.\n\n"
	 "  --token -     read the token from stdin (one line)\n"
	 "  --state DIR   state directory (default $" STATE_ENV " or ~/" STATE_HOME ")\n"
	 "  --name NAME   node name shown to users (default: the host name)\n"
	 "  --cacert FILE also verify the server's certificate chain against this CA file\n"
	 "                and its name against URL's host, as well as the pin (for a\n"
	 "                server with a certificate from a real CA); run does the same\n"
	 "  --force       replace an existing enrollment in DIR\n"
	 "  --threads N   threads the node will compute on, for the benchmark sent with\n"
	 "                the enrollment (default: all online CPUs)\n"
	 "  --cpu-share P or P percent of the online CPUs (1..100)\n"
	 "  --no-bench    enroll without measuring the node's speed\n"},
	{"run", cmd_run,
	 "run [--state DIR] [--threads N | --cpu-share P] [--seconds S] [--max-units K] "
	 "[--heartbeat S] [--wait S] [--no-bench] [--mpi] [--quiet] [--max-rate R] "
	 "[--programs [--slots N] [--hostfile FILE]] [--pause-when-busy PCT] [--max-temp C] "
	 "[--hours HH:MM-HH:MM] [--run-on-battery]",
	 "\nFetches work units, computes them and reports the results until SIGINT or\n"
	 "SIGTERM. Each result is reported as soon as its unit is done, while the next\n"
	 "unit computes; the node fetches a couple of seconds of work ahead so that it\n"
	 "never waits for the server, and with nothing to do it waits on the server\n"
	 "(long-poll) until work appears. Network errors are retried with backoff;\n"
	 "finished results are kept in DIR/pending.json until the server has them. At\n"
	 "start the node measures its speed (kept in DIR/rates.json for an hour) and\n"
	 "tells the server, which sizes each fetch by it: a fast machine gets more units\n"
	 "than a Pi.\n\n"
	 "  --state DIR     state directory (default $" STATE_ENV " or ~/" STATE_HOME ")\n"
	 "  --threads N     compute threads (per rank with --mpi; default: all online\n"
	 "                  CPUs, shared among the ranks on a host)\n"
	 "  --cpu-share P   use P percent of the online CPUs (1..100, default 100), at\n"
	 "                  least one thread: keep part of the machine for yourself\n"
	 "  --seconds S     seconds of work asked per fetch at most, 1..3600 (default\n"
	 "                  20; a current server is asked for 2 s of work ahead, an\n"
	 "                  older one, which cannot prefetch, for S)\n"
	 "  --max-units K   at most K units per fetch, 1..64 (default 16)\n"
	 "  --wait S        with nothing to do, ask the server to answer as soon as work\n"
	 "                  appears, or after S seconds, 0..60 (default 30; 0: poll\n"
	 "                  every few seconds instead)\n"
	 "  --heartbeat S   tell the server every S seconds that the node is alive (a\n"
	 "                  long unit computing, a long-poll waiting), 1..3600\n"
	 "                  (default 30)\n"
	 "  --no-bench      do not measure or send this node's speed\n"
	 "  --mpi           run under mpirun as one node: rank 0 talks to the server,\n"
	 "                  every rank computes a slice of each unit\n"
	 "                  (mpirun -np N tessera-client run --mpi)\n"
	 "  --programs      also run other people's programs (off by default: your\n"
	 "                  choice), each in a bubblewrap sandbox: no network, only its\n"
	 "                  own files, limits on time, memory and processes; refuses to\n"
	 "                  start, saying why, where the sandbox cannot run\n"
	 "  --slots N       with --programs: processes a program may run at once here\n"
	 "                  (default: the online CPUs, or the hostfile's slots)\n"
	 "  --hostfile FILE with --programs: run each program with mpirun --hostfile\n"
	 "                  FILE, across a cluster enrolled as this one node (its ranks\n"
	 "                  on other boards use those boards' network)\n"
	 "  --pause-when-busy PCT\n"
	 "                  pause while other processes use more than PCT percent of\n"
	 "                  the CPUs (1..100; resumes 5 points below)\n"
	 "  --max-temp C    pause while the CPU is hotter than C degrees Celsius\n"
	 "                  (30..120; resumes 5 degrees below; off where the machine\n"
	 "                  has no thermal zone, as the log says)\n"
	 "  --hours HH:MM-HH:MM\n"
	 "                  compute only in this window of local time, e.g.\n"
	 "                  22:00-07:00 (past midnight) or 09:00-17:30\n"
	 "  --run-on-battery\n"
	 "                  compute on battery power too (by default a laptop pauses\n"
	 "                  while it runs on its battery)\n"
	 "  --quiet         no line per unit\n"
	 "  --max-rate R    at most R indices a second: each unit is reported no sooner\n"
	 "                  than count / R seconds after it began (for tests that need\n"
	 "                  a unit to outlast a timeout whatever the machine's speed)\n"
	 "\nA pause (--pause-when-busy, --max-temp, --hours, battery) stops the unit in\n"
	 "progress within a second; the node keeps its units (heartbeats keep their\n"
	 "leases) and computes the unit again from its start on resume. The log says why\n"
	 "it paused (\"paused: hot (CPU 85.0 C > 75 C; ...)\") and when it resumed; the\n"
	 "server's node list shows \"paused\": \"hot\".\n"},
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
