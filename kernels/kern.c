/* kern: the kernel table and the threaded runner. */
#include "kern.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern const kern kern_montecarlo_pi;
extern const kern kern_prime_count;
extern const kern kern_collatz;
#ifndef KERN_NO_PROGRAMS /* the ARM kernel test (scripts/cross-arm.sh) builds the kernels alone */
extern const kern kern_program;
#endif

/* One row per kernel; adding a kernel adds its file and a row here. */
static const kern *const kern_rows[] = {
	&kern_montecarlo_pi,
	&kern_prime_count,
	&kern_collatz,
#ifndef KERN_NO_PROGRAMS
	&kern_program,
#endif
	NULL,
};

const kern *kern_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; kern_rows[i]; i++)
		if (strcmp(kern_rows[i]->name, name) == 0)
			return kern_rows[i];
	return NULL;
}

const kern *const *kern_table(void)
{
	return kern_rows;
}

int kern_partial_plausible(const kern *k, const json_t *params, uint64_t start, uint64_t count,
			   const kern_partial *p)
{
	kern_args args;
	char why[200];
	if (k->parse(params, &args, why, sizeof(why)) != TS_OK)
		return 0;
	if (count > args.space || start > args.space - count)
		return 0;
	return k->partial_plausible(&args, start, count, p);
}

/* A bound as people write it: 10^18 rather than 1000000000000000000. */
static void kern_num_words(double v, char *out, size_t len)
{
	int e = 0;
	double p = 1;
	while (e < 19 && p < v)
		p *= 10, e++;
	if (e >= 4 && p == v)
		snprintf(out, len, "10^%d", e);
	else if (v >= 9.2e18)
		snprintf(out, len, "2^63-1");
	else
		snprintf(out, len, "%.0f", v);
}

ts_err kern_params_check(const kern *k, const json_t *params, char *why, size_t whylen)
{
	const char *key;
	json_t *val;
	if (!json_is_object(params)) {
		snprintf(why, whylen, "params must be an object");
		return TS_ERR_BAD_REQUEST;
	}
	json_object_foreach((json_t *)params, key, val) {
		const kern_param *p = k->params;
		while (p->name && strcmp(p->name, key) != 0)
			p++;
		if (!p->name) {
			snprintf(why, whylen, "unknown parameter '%.64s' for %s", key, k->name);
			return TS_ERR_BAD_REQUEST;
		}
	}
	for (const kern_param *p = k->params; p->name; p++) {
		json_t *v = json_object_get(params, p->name);
		if (!v && p->required) {
			snprintf(why, whylen, "%s needs the parameter %s", k->name, p->name);
			return TS_ERR_BAD_REQUEST;
		}
		if (!v || strcmp(p->type, "integer") != 0)
			continue;
		/* JSON integers end at 2^63 - 1; the bounds are exact doubles of the table. */
		json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
		if (!json_is_integer(v) || (double)n < p->min || (double)n > p->max ||
		    (p->max < 9.2e18 && (uint64_t)n > (uint64_t)p->max)) {
			char lo[32], hi[32];
			kern_num_words(p->min, lo, sizeof(lo));
			kern_num_words(p->max, hi, sizeof(hi));
			snprintf(why, whylen, "%s must be an integer from %s to %s", p->name, lo, hi);
			return TS_ERR_BAD_REQUEST;
		}
	}
	return TS_OK;
}

uint64_t kern_param_u64(const json_t *params, const char *name, uint64_t def)
{
	json_t *v = json_object_get(params, name);
	return json_is_integer(v) ? (uint64_t)json_integer_value(v) : def;
}

json_t *kern_describe(const kern *k)
{
	json_t *params = json_array(), *example = k->example ? json_loads(k->example, 0, NULL) : NULL;
	for (const kern_param *p = k->params; params && p->name; p++) {
		json_t *d = json_pack("{s:s,s:s,s:b,s:s}", "name", p->name, "type", p->type, "required",
				      p->required, "help", p->help ? p->help : "");
		if (d && (p->min != 0 || p->max != 0)) {
			int integral = strcmp(p->type, "number") != 0; /* integers, and counts of items */
			json_object_set_new(d, "min", integral ? json_integer((json_int_t)p->min) : json_real(p->min));
			json_object_set_new(d, "max", !integral ? json_real(p->max) : p->max >= 9.2e18 ? json_integer(INT64_MAX)
											      : json_integer((json_int_t)p->max));
		}
		if (d && p->def)
			json_object_set_new(d, "default", json_loads(p->def, JSON_DECODE_ANY, NULL));
		if (d && p->choices) {
			json_t *c = json_array();
			for (const char *s = p->choices; c && *s;) {
				size_t n = strcspn(s, "|");
				json_array_append_new(c, json_stringn(s, n));
				s += n + (s[n] == '|');
			}
			json_object_set_new(d, "choices", c);
		}
		json_array_append_new(params, d);
	}
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:I,s:s}", "name", k->name, "alias", k->alias, "title",
			 k->title, "params", params, "example", example ? example : json_object(),
			 "default_unit", (json_int_t)k->default_unit, "result",
			 k->result_help ? k->result_help : "");
}

ts_err kern_params_only(const json_t *params, const char *kernel, const char *const *keys, char *why,
			size_t whylen)
{
	const char *key;
	json_t *val;
	if (!json_is_object(params)) {
		snprintf(why, whylen, "params must be an object");
		return TS_ERR_BAD_REQUEST;
	}
	json_object_foreach((json_t *)params, key, val) {
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], key) != 0)
			i++;
		if (!keys[i]) {
			snprintf(why, whylen, "unknown parameter '%.64s' for %s", key, kernel);
			return TS_ERR_BAD_REQUEST;
		}
	}
	return TS_OK;
}

ts_err kern_parse_range(const json_t *params, const char *kernel, uint64_t min_from, uint64_t max_to,
			kern_args *args, char *why, size_t whylen)
{
	static const char *const keys[] = {"from", "to", NULL};
	json_t *from = json_object_get(params, "from");
	json_t *to = json_object_get(params, "to");
	ts_err result = kern_params_only(params, kernel, keys, why, whylen);
	if (result)
		return result;
	/* JSON integers end at 2^63 - 1, and so does to. */
	if (!json_is_integer(from) || json_integer_value(from) < 0 ||
	    (uint64_t)json_integer_value(from) < min_from) {
		snprintf(why, whylen, "from must be an integer of at least %llu", (unsigned long long)min_from);
		return TS_ERR_BAD_REQUEST;
	}
	if (!json_is_integer(to) || json_integer_value(to) <= json_integer_value(from) ||
	    (uint64_t)json_integer_value(to) > max_to) {
		snprintf(why, whylen, "to must be an integer above from and at most %llu",
			 (unsigned long long)max_to);
		return TS_ERR_BAD_REQUEST;
	}
	args->seed = 0;
	args->from = (uint64_t)json_integer_value(from);
	args->space = (uint64_t)json_integer_value(to) - args->from;
	return TS_OK;
}

kern_partial kern_count_zero(void)
{
	return (kern_partial){{0, 0}};
}

void kern_count_combine(kern_partial *acc, const kern_partial *p)
{
	acc->v[0] += p->v[0];
}

json_t *kern_count_to_json(const char *name, const kern_partial *p)
{
	return json_pack("{s:I}", name, (json_int_t)p->v[0]);
}

ts_err kern_count_from_json(const char *name, const json_t *j, kern_partial *p)
{
	json_t *n = json_object_get(j, name);
	if (!json_is_object(j) || json_object_size(j) != 1 || !json_is_integer(n) || json_integer_value(n) < 0)
		return TS_ERR_BAD_REQUEST;
	*p = (kern_partial){{(uint64_t)json_integer_value(n), 0}};
	return TS_OK;
}

struct kern_job {
	const kern *k;
	const kern_args *args;
	uint64_t start, count;
	const volatile int *cancel;
	kern_partial out;
	ts_err result;
};

static void *kern_thread(void *arg)
{
	struct kern_job *j = arg;
	j->result = j->k->compute(j->args, j->start, j->count, &j->out, j->cancel);
	return NULL;
}

ts_err kern_run(const kern *k, const kern_args *args, uint64_t start, uint64_t count, int threads,
		kern_partial *out, const volatile int *cancel)
{
	enum { MAX_THREADS = 256 };
	if (!k->compute)
		return TS_ERR_NOT_FOUND; /* a program: the node runs it in its sandbox */
	if (threads <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		threads = n > 0 ? (int)n : 1;
	}
	if (threads > MAX_THREADS)
		threads = MAX_THREADS;
	if ((uint64_t)threads > count)
		threads = count > 0 ? (int)count : 1;
	if (threads == 1)
		return k->compute(args, start, count, out, cancel);

	struct kern_job jobs[MAX_THREADS];
	pthread_t tids[MAX_THREADS];
	int started = 0;
	ts_err result = TS_OK;
	/* Even slices; the first count % threads get one more, so every index is covered once. */
	uint64_t base = count / (uint64_t)threads, extra = count % (uint64_t)threads, at = start;
	for (int t = 0; t < threads; t++) {
		uint64_t n = base + ((uint64_t)t < extra);
		jobs[t] = (struct kern_job){k, args, at, n, cancel, k->zero(), TS_OK};
		at += n;
	}
	for (; started < threads - 1; started++)
		if (pthread_create(&tids[started], NULL, kern_thread, &jobs[started + 1]) != 0)
			break;
	/* Slices whose thread did not start run here, so a short thread limit only slows us. */
	kern_thread(&jobs[0]);
	for (int t = started + 1; t < threads; t++)
		kern_thread(&jobs[t]);
	for (int t = 0; t < started; t++)
		pthread_join(tids[t], NULL);
	*out = k->zero();
	for (int t = 0; t < threads; t++) {
		if (jobs[t].result && !result)
			result = jobs[t].result;
		k->combine(out, &jobs[t].out);
	}
	return result;
}
