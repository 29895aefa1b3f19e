/* cl_args: subcommands, usage and numbers, the same for every option of both programs. */
#include "cl_args.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ts_util.h"

/* The running subcommand, for the usage messages of its option parsing. */
static const char *args_prog = "tessera";
static const cl_args_cmd *args_cmd;

static void args_overview(FILE *f, const char *about, const cl_args_cmd *cmds, size_t n)
{
	fprintf(f, "%s: %s\n\nusage:\n", args_prog, about);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "  %s %s\n", args_prog, cmds[i].synopsis);
	fprintf(f, "  %s COMMAND --help\n", args_prog);
}

int cl_args_dispatch(const char *prog, const char *about, const cl_args_cmd *cmds, size_t n,
		     int argc, char **argv)
{
	static char name[128];
	args_prog = prog;
	if (argc < 2) {
		args_overview(stderr, about, cmds, n);
		return CL_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		args_overview(stdout, about, cmds, n);
		return CL_EXIT_OK;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(argv[1], cmds[i].name) != 0)
			continue;
		args_cmd = &cmds[i];
		snprintf(name, sizeof(name), "%s %s", prog, cmds[i].name);
		argv[1] = name; /* getopt's own messages then name the subcommand */
		/* A server closing a connection must be an error return, not a dead process. */
		signal(SIGPIPE, SIG_IGN);
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			fprintf(stderr, "%s: cannot initialise libcurl\n", prog);
			return CL_EXIT_ERROR;
		}
		int rc = cmds[i].fn(argc - 1, argv + 1);
		curl_global_cleanup();
		return rc;
	}
	fprintf(stderr, "%s: unknown command '%s'\n", prog, argv[1]);
	args_overview(stderr, about, cmds, n);
	return CL_EXIT_USAGE;
}

int cl_args_usage_bad(void)
{
	fprintf(stderr, "usage: %s %s\n", args_prog, args_cmd->synopsis);
	fprintf(stderr, "run '%s %s --help' for details\n", args_prog, args_cmd->name);
	return CL_EXIT_USAGE;
}

int cl_args_usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s %s: ", args_prog, args_cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return cl_args_usage_bad();
}

int cl_args_help(void)
{
	printf("usage: %s %s\n%s", args_prog, args_cmd->synopsis, args_cmd->help);
	return CL_EXIT_OK;
}

void cl_args_reset(void)
{
	/* glibc: optind 0 also resets its internal state (a half-parsed "-abc" cluster). */
	optind = 0;
	opterr = 1;
}

int cl_args_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;
	if (ts_parse_u64(s, &v) != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cl_args_int(const char *s, int min, int max, int *out)
{
	uint64_t v;
	if (min < 0 || cl_args_u64(s, (uint64_t)min, (uint64_t)max, &v) != 0)
		return -1;
	*out = (int)v;
	return 0;
}

int cl_args_double(const char *s, double min, double max, double *out)
{
	char *end;
	if (!s || !*s)
		return -1;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || !isfinite(v) || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int cl_args_int_opt(const char *option, const char *s, int min, int max, int *out)
{
	if (cl_args_int(s, min, max, out) == 0)
		return 0;
	return cl_args_usage_error("%s must be an integer from %d to %d, not '%s'", option, min, max, s);
}

int cl_args_double_opt(const char *option, const char *s, double min, double max, double *out)
{
	if (cl_args_double(s, min, max, out) == 0)
		return 0;
	return cl_args_usage_error("%s must be a number from %g to %g, not '%s'", option, min, max, s);
}
