/* kern: the kernel table and the threaded runner. */
#include "kern.h"

#include <pthread.h>
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
