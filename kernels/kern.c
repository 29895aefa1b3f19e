/* kern: the kernel table and the threaded runner. */
#include "kern.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern const kern kern_montecarlo_pi;
extern const kern kern_prime_count;
extern const kern kern_collatz;

/* One row per kernel; adding a kernel adds its file and a row here. */
static const kern *const kern_rows[] = {
	&kern_montecarlo_pi,
	&kern_prime_count,
	&kern_collatz,
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
