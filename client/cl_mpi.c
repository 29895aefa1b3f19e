/* cl_mpi: units spread over MPI ranks, combined in rank order on rank 0. */
#include "cl_mpi.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mpi.h>

#include "cl_bench.h"
#include "kern.h"
#include "ts_util.h"

/* What rank 0 broadcasts before each step: {op, start, count, text length, bench ms}. */
enum { OP_STOP = 1, OP_UNIT, OP_BENCH };
enum { H_OP, H_START, H_COUNT, H_TEXTLEN, H_BENCH_MS, H_N };
#define TEXT_MAX (1u << 20)  /* kernel name and params JSON of one unit */
#define POLL_MAX_S 0.01      /* longest sleep between MPI_Test calls */
#define STOP_GRACE_S 5.0     /* a signalled rank waits this long for rank 0 to end the run */
enum { G_V0, G_V1, G_ERR, G_N }; /* each rank's gathered partial and status */

struct cl_mpi {
	int rank, size, local_size;
	int released;
	volatile sig_atomic_t *stop;
	cl_node_runner runner;
};

/* Waits for req, sleeping between tests: MPI's own waits spin a CPU at 100%. A rank other
 * than 0 whose stop flag stays set past the grace ends the job. */
static void mpi_wait(cl_mpi *m, MPI_Request *req)
{
	double nap = 50e-6, stopped_at = 0;
	int done = 0;
	for (;;) {
		MPI_Test(req, &done, MPI_STATUS_IGNORE);
		if (done)
			return;
		if (m->rank != 0 && *m->stop) {
			double now = ts_mono();
			if (stopped_at == 0)
				stopped_at = now;
			else if (now - stopped_at > STOP_GRACE_S) {
				fprintf(stderr, "rank %d: stopped by a signal; ending the MPI job\n", m->rank);
				MPI_Abort(MPI_COMM_WORLD, 1);
			}
		}
		struct timespec ts = {0, (long)(nap * 1e9)};
		nanosleep(&ts, NULL);
		nap = nap * 2 < POLL_MAX_S ? nap * 2 : POLL_MAX_S;
	}
}

static void mpi_bcast(cl_mpi *m, void *buf, int n, MPI_Datatype type)
{
	MPI_Request req;
	MPI_Ibcast(buf, n, type, 0, MPI_COMM_WORLD, &req);
	mpi_wait(m, &req);
}

ts_err cl_mpi_init(int *argc, char ***argv, volatile sig_atomic_t *stop, cl_mpi **out,
		   char *why, size_t whylen)
{
	int provided = 0;
	MPI_Comm local;
	cl_mpi *m = calloc(1, sizeof(*m));
	*out = NULL;
	if (!m) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	/* Our compute and heartbeat threads never call MPI; only the main thread does. */
	if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
		snprintf(why, whylen, "MPI_Init_thread failed");
		free(m);
		return TS_ERR_INTERNAL;
	}
	MPI_Comm_rank(MPI_COMM_WORLD, &m->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &m->size);
	MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
	MPI_Comm_size(local, &m->local_size);
	MPI_Comm_free(&local);
	m->stop = stop;
	*out = m;
	return TS_OK;
}

int cl_mpi_rank(const cl_mpi *m)
{
	return m->rank;
}

int cl_mpi_size(const cl_mpi *m)
{
	return m->size;
}

int cl_mpi_local_size(const cl_mpi *m)
{
	return m->local_size;
}

/* Every rank: times each kernel of the table at once; rank 0 gets the sums. */
static ts_err mpi_bench_all(cl_mpi *m, int threads, double seconds, json_t *rates)
{
	for (const kern *const *row = kern_table(); *row; row++) {
		cl_bench_result r;
		char why[256];
		/* {rate, 1 if this rank measured it}: the kernel counts only if every rank did. */
		double mine[2] = {0, 0}, sum[2] = {0, 0};
		if (cl_bench_kernel(*row, threads, seconds, &r, why, sizeof(why)) == TS_OK &&
		    r.rate > 0) {
			mine[0] = r.rate;
			mine[1] = 1;
		}
		MPI_Reduce(mine, sum, 2, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
		if (m->rank == 0 && sum[1] == (double)m->size &&
		    json_object_set_new(rates, (*row)->name, json_real(sum[0])) != 0)
			return TS_ERR_NOMEM;
	}
	return TS_OK;
}

ts_err cl_mpi_bench(cl_mpi *m, int threads, double seconds_per_kernel, json_t **rates,
		    char *why, size_t whylen)
{
	uint64_t hdr[H_N] = {OP_BENCH, 0, 0, 0, (uint64_t)(seconds_per_kernel * 1000.0)};
	json_t *out = json_object();
	*rates = NULL;
	if (!out) {
		snprintf(why, whylen, "out of memory");
		return TS_ERR_NOMEM;
	}
	mpi_bcast(m, hdr, H_N, MPI_UINT64_T);
	ts_err e = mpi_bench_all(m, threads, seconds_per_kernel, out);
	if (e) {
		snprintf(why, whylen, "out of memory");
		json_decref(out);
		return e;
	}
	*rates = out;
	return TS_OK;
}

/* Every rank: its slice of the unit, then the gather of {v0, v1, err} to rank 0. */
static ts_err mpi_slice(cl_mpi *m, const kern *k, const kern_args *args, uint64_t start,
			uint64_t count, int threads, const volatile int *cancel, uint64_t *all)
{
	uint64_t s, n, mine[G_N];
	kern_partial part = k ? k->zero() : (kern_partial){{0, 0}};
	ts_err e = k ? TS_OK : TS_ERR_BAD_REQUEST;
	MPI_Request req;
	cl_node_split(start, count, m->size, m->rank, &s, &n);
	if (!e && n > 0)
		e = kern_run(k, args, s, n, threads, &part, cancel);
	mine[G_V0] = part.v[0];
	mine[G_V1] = part.v[1];
	mine[G_ERR] = (uint64_t)e;
	MPI_Igather(mine, G_N, MPI_UINT64_T, all, G_N, MPI_UINT64_T, 0, MPI_COMM_WORLD, &req);
	mpi_wait(m, &req);
	return e;
}

/* Rank 0's side of a unit: the runner's run. */
static ts_err mpi_run(void *arg, const kern *k, const json_t *params, const kern_args *args,
		      uint64_t start, uint64_t count, int threads, kern_partial *out,
		      const volatile int *cancel)
{
	cl_mpi *m = arg;
	ts_err result = TS_ERR_NOMEM;
	uint64_t *all = calloc((size_t)m->size, G_N * sizeof(uint64_t));
	char *ptext = json_dumps(params, JSON_COMPACT), *text = NULL;
	size_t klen = strlen(k->name), plen = ptext ? strlen(ptext) : 0;
	if (!all || !ptext || klen + plen + 2 > TEXT_MAX || !(text = malloc(klen + plen + 2)))
		goto out; /* nothing was sent: the other ranks still wait for a header */
	memcpy(text, k->name, klen + 1);
	memcpy(text + klen + 1, ptext, plen + 1);
	uint64_t hdr[H_N] = {OP_UNIT, start, count, klen + plen + 2, 0};
	mpi_bcast(m, hdr, H_N, MPI_UINT64_T);
	mpi_bcast(m, text, (int)hdr[H_TEXTLEN], MPI_CHAR);
	result = mpi_slice(m, k, args, start, count, threads, cancel, all);
	/* Rank order, the kernel's own combine: collatz's max needs it, and the sum is exact. */
	*out = k->zero();
	for (int r = 0; r < m->size; r++) {
		ts_err e = (ts_err)all[(size_t)r * G_N + G_ERR];
		kern_partial p = {{all[(size_t)r * G_N + G_V0], all[(size_t)r * G_N + G_V1]}};
		if (e && !result)
			result = e;
		if (e == TS_ERR_UNAVAILABLE && r > 0 && !*m->stop) {
			fprintf(stderr, "rank %d stopped: ending the run\n", r);
			*m->stop = 1; /* a rank that stops ends the run; the unit is reissued */
		}
		k->combine(out, &p);
	}
out:
	free(all);
	free(ptext);
	free(text);
	return result;
}

static void mpi_done(void *arg)
{
	cl_mpi_release(arg);
}

const cl_node_runner *cl_mpi_runner(cl_mpi *m)
{
	m->runner.run = mpi_run;
	m->runner.done = mpi_done;
	m->runner.arg = m;
	return &m->runner;
}

void cl_mpi_release(cl_mpi *m)
{
	uint64_t hdr[H_N] = {OP_STOP, 0, 0, 0, 0};
	if (m->rank != 0 || m->released)
		return;
	m->released = 1;
	mpi_bcast(m, hdr, H_N, MPI_UINT64_T);
}

/* A rank's side of a unit: the text after the header, parsed like rank 0 parsed it. */
static void serve_unit(cl_mpi *m, const uint64_t *hdr, int threads)
{
	char *text = hdr[H_TEXTLEN] <= TEXT_MAX ? calloc(1, hdr[H_TEXTLEN] + 1) : NULL;
	const kern *k = NULL;
	kern_args args;
	char why[256];
	json_t *params = NULL;
	if (!text) {
		/* Only on out of memory: MPI cannot receive without a buffer, so end the job. */
		fprintf(stderr, "rank %d: out of memory\n", m->rank);
		MPI_Abort(MPI_COMM_WORLD, 1);
	}
	mpi_bcast(m, text, (int)hdr[H_TEXTLEN], MPI_CHAR);
	size_t klen = strnlen(text, hdr[H_TEXTLEN]);
	if (klen + 1 < hdr[H_TEXTLEN] && (params = json_loads(text + klen + 1, 0, NULL)) &&
	    (k = kern_find(text)) && k->parse(params, &args, why, sizeof(why)) != TS_OK)
		k = NULL;
	mpi_slice(m, k, &args, hdr[H_START], hdr[H_COUNT], threads, (const volatile int *)m->stop,
		  NULL);
	json_decref(params);
	free(text);
}

int cl_mpi_serve(cl_mpi *m, int threads)
{
	for (;;) {
		uint64_t hdr[H_N];
		mpi_bcast(m, hdr, H_N, MPI_UINT64_T);
		switch (hdr[H_OP]) {
		case OP_STOP:
			return 0;
		case OP_BENCH:
			mpi_bench_all(m, threads, (double)hdr[H_BENCH_MS] / 1000.0, NULL);
			break;
		case OP_UNIT:
			serve_unit(m, hdr, threads);
			break;
		default:
			fprintf(stderr, "rank %d: unknown step %" PRIu64 " from rank 0\n", m->rank,
				hdr[H_OP]);
			MPI_Abort(MPI_COMM_WORLD, 1);
		}
	}
}

void cl_mpi_finalize(cl_mpi *m)
{
	if (!m)
		return;
	MPI_Finalize();
	free(m);
}
