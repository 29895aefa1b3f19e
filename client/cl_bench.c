/* cl_bench: kernel throughput on this machine. */
#include "cl_bench.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ts_util.h"

#define BENCH_WARM_S 0.05 /* a run shorter than this measures start-up, not throughput */

/* Parameters giving each kernel a large index space, and what an index is. A kernel without a
 * row is tried with the generic ones, in order, and its rate counted in indices. */
static const struct bench_row {
	const char *kernel;
	const char *params;
	const char *unit;
} bench_rows[] = {
	{"montecarlo_pi", "{\"samples\": 1000000000000000000, \"seed\": 0}", "samples/s"},
	{"prime_count", "{\"from\": 0, \"to\": 1000000000000}", "numbers/s"},
	{"collatz", "{\"from\": 1, \"to\": 1000000000000}", "numbers/s"},
	{NULL, "{\"samples\": 1000000000000000000}", "indices/s"},
	{NULL, "{\"from\": 1, \"to\": 1000000000000}", "indices/s"},
};

static ts_err bench_args(const kern *k, kern_args *args, const char **unit)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < TS_ARRAY_LEN(bench_rows); i++) {
			const struct bench_row *r = &bench_rows[i];
			/* First the kernel's own row, then the generic ones. */
			if (pass == 0 ? !r->kernel || strcmp(r->kernel, k->name) != 0 : r->kernel != NULL)
				continue;
			char why[256];
			json_t *params = json_loads(r->params, 0, NULL);
			ts_err e = params ? k->parse(params, args, why, sizeof(why)) : TS_ERR_NOMEM;
			json_decref(params);
			if (e == TS_OK) {
				*unit = r->unit;
				return TS_OK;
			}
		}
	}
	return TS_ERR_NOT_FOUND;
}

ts_err cl_bench_kernel(const kern *k, int threads, double seconds, cl_bench_result *out,
		       char *why, size_t whylen)
{
	kern_args args;
	kern_partial part;
	const char *unit = "indices/s";
	ts_err result = bench_args(k, &args, &unit);
	memset(out, 0, sizeof(*out));
	if (!k->compute) {
		snprintf(why, whylen, "%s is not a kernel to benchmark", k->name);
		return TS_ERR_NOT_FOUND; /* programs: the user's code, run in a sandbox */
	}
	if (result) {
		snprintf(why, whylen, "no benchmark parameters for kernel %s", k->name);
		goto out;
	}
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	/* Start at about 20 ms by the kernel's own cost estimate, then grow. */
	double ns = k->ns_per_index > 0 ? k->ns_per_index : 10.0;
	double count = 0.02 / (ns * 1e-9) * threads, rate = 0;
	double t_start = ts_mono(), dt = 0;
	for (;;) {
		if (count < 1000)
			count = 1000;
		if (count > (double)args.space)
			count = (double)args.space;
		uint64_t n = (uint64_t)count;
		double t0 = ts_mono();
		if ((result = kern_run(k, &args, 0, n, threads, &part, NULL)) != TS_OK) {
			snprintf(why, whylen, "%s failed: %s", k->name, ts_strerror(result));
			goto out;
		}
		dt = ts_mono() - t0;
		rate = dt > 0 ? (double)n / dt : 0;
		out->indices = n;
		double left = seconds - (ts_mono() - t_start);
		if (dt >= BENCH_WARM_S && (left <= dt || n == args.space))
			break; /* the last run was long enough, and another would overrun the time */
		if (dt < BENCH_WARM_S)
			count *= dt > 0 && BENCH_WARM_S * 2 / dt < 16 ? BENCH_WARM_S * 2 / dt : 16;
		else
			count = rate * left; /* fill the rest of the time with one measured run */
	}
	out->kernel = k->name;
	out->unit = unit;
	out->threads = threads;
	out->rate = rate;
	out->seconds = dt;
	result = TS_OK;
out:
	return result;
}

ts_err cl_bench_rates(int threads, double seconds_per_kernel, json_t **rates, char *why,
		      size_t whylen)
{
	json_t *out = json_object();
	*rates = NULL;
	if (!out) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	for (const kern *const *row = kern_table(); *row; row++) {
		cl_bench_result r;
		ts_err e = cl_bench_kernel(*row, threads, seconds_per_kernel, &r, why, whylen);
		if (e == TS_ERR_NOT_FOUND)
			continue; /* the server sizes its work by the kernel's own estimate */
		if (e) {
			json_decref(out);
			return e;
		}
		if (r.rate > 0)
			json_object_set_new(out, r.kernel, json_real(r.rate));
	}
	*rates = out;
	return TS_OK;
}

/* "collatz,montecarlo_pi,...": a new client version with other kernels measures again. */
static void bench_kernel_list(char *out, size_t outlen)
{
	size_t used = 0;
	out[0] = '\0';
	for (const kern *const *row = kern_table(); *row; row++) {
		if (!(*row)->compute)
			continue;
		int n = snprintf(out + used, outlen - used, "%s%s", used ? "," : "", (*row)->name);
		if (n < 0 || (size_t)n >= outlen - used)
			break;
		used += (size_t)n;
	}
}

json_t *cl_bench_cache_record(const json_t *rates, int threads, int ranks, int64_t now)
{
	char kernels[512];
	bench_kernel_list(kernels, sizeof(kernels));
	return json_pack("{s:i,s:i,s:s,s:I,s:O}", "threads", threads, "ranks", ranks, "kernels",
			 kernels, "measured_at", (json_int_t)now, "rates", (json_t *)rates);
}

const json_t *cl_bench_cache_fresh(const json_t *record, int threads, int ranks, int64_t now)
{
	char kernels[512];
	const char *saved = json_string_value(json_object_get(record, "kernels"));
	json_int_t at = json_integer_value(json_object_get(record, "measured_at"));
	const json_t *rates = json_object_get(record, "rates");
	bench_kernel_list(kernels, sizeof(kernels));
	if (json_integer_value(json_object_get(record, "threads")) != threads ||
	    json_integer_value(json_object_get(record, "ranks")) != ranks || !saved ||
	    strcmp(saved, kernels) != 0 || at > now || now - at >= CL_BENCH_CACHE_S ||
	    !json_is_object(rates) || json_object_size(rates) == 0)
		return NULL;
	return rates;
}
