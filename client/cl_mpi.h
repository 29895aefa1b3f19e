/* cl_mpi: `tessera-client run --mpi`, a whole MPI job acting as one node.
 *
 * Rank 0 runs the node's loop (fetch, report, heartbeat, pending.json) and hands each unit to
 * every rank: it broadcasts the kernel, params and range, each rank computes its slice (the
 * split of cl_node_split) on its own threads, and rank 0 folds the gathered partials with the
 * kernel's combine in rank order, so the result is bit-identical to a one-process run. The
 * other ranks only compute, and wait between units with non-blocking calls and short sleeps
 * rather than MPI's busy polling, so an idle node leaves its CPUs idle.
 *
 * MPI errors stay fatal (MPI's default): a rank that dies ends the whole job, rank 0 included,
 * and the server reissues the unit when its lease ends. pending.json is written atomically, so
 * rank 0 never leaves half of it. Only this file calls MPI; a run without --mpi never starts
 * it. Not thread-safe: MPI is called from the main thread only (MPI_THREAD_FUNNELED). */
#ifndef CL_MPI_H
#define CL_MPI_H

#include <signal.h>
#include <stddef.h>

#include <jansson.h>

#include "cl_node.h"
#include "ts_err.h"

typedef struct cl_mpi cl_mpi;

/* MPI_Init_thread. stop is this process's signal flag: kernels watch it, and rank 0's is set
 * when another rank stops, which ends the run. On failure *out is NULL and why says why. */
ts_err cl_mpi_init(int *argc, char ***argv, volatile sig_atomic_t *stop, cl_mpi **out,
		   char *why, size_t whylen);
int cl_mpi_rank(const cl_mpi *m);
int cl_mpi_size(const cl_mpi *m);
/* Ranks on this host (for a default thread count that does not oversubscribe it). */
int cl_mpi_local_size(const cl_mpi *m);

/* Rank 0: the node's rates, {"kernel": indices/s} summed over all ranks, every rank timing
 * each kernel at the same time on its own threads for about seconds_per_kernel. A kernel that
 * some rank cannot bench is left out. */
ts_err cl_mpi_bench(cl_mpi *m, int threads, double seconds_per_kernel, json_t **rates,
		    char *why, size_t whylen);
/* Rank 0: the runner for cl_node_run. Owned by m. */
const cl_node_runner *cl_mpi_runner(cl_mpi *m);
/* Rank 0: lets the other ranks leave cl_mpi_serve. Idempotent; also the runner's done. */
void cl_mpi_release(cl_mpi *m);

/* Ranks other than 0: compute for rank 0 on threads threads until released. A rank whose stop
 * flag is set gives up its unit, which ends the run; one stopped while rank 0 sends nothing
 * for a few seconds aborts the whole job (MPI_Abort). Returns the exit status. */
int cl_mpi_serve(cl_mpi *m, int threads);

/* MPI_Finalize and free. NULL is fine. */
void cl_mpi_finalize(cl_mpi *m);

#endif
