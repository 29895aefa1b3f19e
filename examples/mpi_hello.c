/* A C MPI program: every rank computes its part (the sum of the squares of its slice of
 * 1..N), rank 0 gathers the parts and prints them in rank order with their total.
 *
 *   tessera run examples/mpi_hello.c -n 4 -- 1000000
 *
 * The node compiles it with `mpicc -O2 -o prog mpi_hello.c -lm` first. Its output depends only
 * on N and the number of processes (no host names, no timing), so replicas agree. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	int rank, size;
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	unsigned long long n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000;
	/* This rank's slice of 1..n: even slices, the first n % size ranks one longer. */
	unsigned long long len = n / size + ((unsigned long long)rank < n % size ? 1 : 0);
	unsigned long long first = 1 + (unsigned long long)rank * (n / size) +
				   ((unsigned long long)rank < n % size ? rank : n % size);
	unsigned long long part = 0;
	for (unsigned long long i = first; i < first + len; i++)
		part += i * i;
	unsigned long long *parts = rank == 0 ? malloc(sizeof(*parts) * size) : NULL;
	MPI_Gather(&part, 1, MPI_UNSIGNED_LONG_LONG, parts, 1, MPI_UNSIGNED_LONG_LONG, 0,
		   MPI_COMM_WORLD);
	if (rank == 0) {
		unsigned long long total = 0;
		for (int r = 0; r < size; r++) {
			printf("rank %d of %d: %llu\n", r, size, parts[r]);
			total += parts[r];
		}
		printf("sum of squares 1..%llu = %llu\n", n, total);
		free(parts);
	}
	MPI_Finalize();
	return 0;
}
