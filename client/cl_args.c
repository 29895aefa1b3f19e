/* cl_args: number parsing with ranges, the same for every option of both programs. */
#include "cl_args.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>

#include "ts_util.h"

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

void cl_args_reset(void)
{
	/* glibc: optind 0 also resets its internal state (a half-parsed "-abc" cluster). */
	optind = 0;
	opterr = 1;
}
